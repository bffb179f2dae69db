//! SMTP connections for the email channel: `TIDINGS_SMTP_URL`, and a pool of lettre
//! connections opened by our own connector.
//!
//! Why not lettre's `AsyncSmtpTransport`: it cannot set `TCP_NODELAY`, and lettre writes
//! a message's body and its closing `\r\n.\r\n` as two writes before waiting for the
//! answer. With Nagle's algorithm on, the small second write waits until the server ACKs
//! the first, and the server delays that ACK (~40 ms on Linux) because it has nothing to
//! say until it sees the end of the message: every message stalled ~44 ms. Our connector
//! opens the socket with `TCP_NODELAY` and hands it to lettre
//! (`AsyncSmtpConnection::connect_with_transport`), for plain, STARTTLS and implicit TLS
//! alike. The pool also bounds the connections open at once (lettre's opens one per
//! concurrent send and closes the extras) and checks an idle connection with `NOOP` only
//! after it has been idle a while (lettre does it before every message).
//!
//! Under lettre the socket is a [`Wire`]: what lettre writes is held until it reads the
//! answer (it always does), so a message's body and its closing dot leave in one segment,
//! and when the server offers `PIPELINING` (RFC 2920) `MAIL FROM` and `RCPT TO` ride in
//! the same write as lettre's `DATA`. A message is then two round trips, not four: on
//! loopback into smtp-sink, most of a send's CPU was the kernel's, per segment.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

use super::SendError;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS (`smtp://host:port`): a local relay or a test server.
    Plain,
    /// `STARTTLS` after connecting (`smtp://…?tls=starttls`, or `?tls=opportunistic` to
    /// upgrade only when the server offers it).
    StartTls { required: bool },
    /// TLS from the first byte (`smtps://`, port 465 by default).
    Tls,
}

/// A parsed `TIDINGS_SMTP_URL`: `smtp[s]://[user:password@]host[:port][?tls=starttls]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .finish()
    }
}

impl SmtpUrl {
    pub fn parse(text: &str) -> Result<SmtpUrl, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
        let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.to_ascii_lowercase());
        let security = match (url.scheme(), tls.as_deref()) {
            ("smtps", None | Some("wrapper" | "tls" | "implicit")) => Security::Tls,
            ("smtp", None | Some("none" | "plain")) => Security::Plain,
            ("smtp", Some("starttls" | "required")) => Security::StartTls { required: true },
            ("smtp", Some("opportunistic")) => Security::StartTls { required: false },
            ("smtp" | "smtps", Some(other)) => {
                return Err(format!("`tls={other}`: use `tls=starttls` or `tls=opportunistic` (or smtps://)"));
            }
            (scheme, _) => return Err(format!("`{scheme}://`: use smtp:// or smtps://")),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port().unwrap_or(match security {
            Security::Tls => 465,
            Security::StartTls { .. } => 587,
            Security::Plain => 25,
        });
        let decode = |s: &str| percent_encoding_decode(s);
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => Some(Credentials::new(decode(user)?, decode(password.unwrap_or(""))?)),
        };
        Ok(SmtpUrl { host, port, security, credentials })
    }
}

fn percent_encoding_decode(text: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "the credentials are not UTF-8 once percent-decoded".to_string())
}

/// How the pool connects; `nodelay: false` only to measure what it costs.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub connections: usize,
    /// Per connect and per message.
    pub timeout: Duration,
    pub nodelay: bool,
}

/// Idle longer than this: checked with `NOOP` before it is used again.
const CHECK_AFTER: Duration = Duration::from_secs(10);
/// Idle longer than this: closed (servers drop idle clients after a few minutes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection and the [`Wire`] under it.
struct Conn {
    smtp: AsyncSmtpConnection,
    wire: Arc<WireState>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// At most `connections` SMTP connections, reused most-recent first.
pub struct Pool {
    url: SmtpUrl,
    settings: PoolSettings,
    hello: ClientId,
    tls: Option<TlsConnector>,
    slots: Semaphore,
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("url", &self.url).field("settings", &self.settings).finish()
    }
}

impl Pool {
    pub fn new(url: SmtpUrl, settings: PoolSettings) -> Pool {
        let tls = (url.security == Security::Tls).then(|| TlsConnector::from(Arc::new(client_config())));
        let slots = Semaphore::new(settings.connections.max(1));
        Pool { url, settings, hello: ClientId::default(), tls, slots, idle: Mutex::new(Vec::new()) }
    }

    /// Sends one message on a pooled connection. A connection that failed in any way is
    /// closed, never reused.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, SendError> {
        let _slot = self.slots.acquire().await.map_err(|_| SendError::transient("the SMTP pool is closed"))?;
        let mut conn = self.checkout().await?;
        let sent = tokio::time::timeout(self.settings.timeout, conn.send(envelope, email)).await;
        match sent {
            Ok(Ok(response)) => {
                if !conn.smtp.has_broken() {
                    self.idle.lock().expect("pool lock").push(Idle { conn, since: Instant::now() });
                }
                Ok(response)
            }
            Ok(Err(error)) => Err(classify(&error)),
            Err(_) => Err(SendError::unavailable(
                format!("the SMTP server did not finish within {:?}", self.settings.timeout),
                None,
            )),
        }
    }

    /// Closes the idle connections politely (`QUIT`).
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        for mut idle in idle {
            let _ = tokio::time::timeout(Duration::from_secs(2), idle.conn.smtp.quit()).await;
        }
    }

    async fn checkout(&self) -> Result<Conn, SendError> {
        loop {
            let idle = self.idle.lock().expect("pool lock").pop();
            let Some(mut idle) = idle else { break };
            let age = idle.since.elapsed();
            if age > IDLE_TIMEOUT {
                continue;
            }
            if age <= CHECK_AFTER || idle.conn.smtp.test_connected().await {
                return Ok(idle.conn);
            }
        }
        match tokio::time::timeout(self.settings.timeout, self.connect()).await {
            Ok(result) => result,
            Err(_) => Err(SendError::unavailable(
                format!("could not connect to {}:{} within {:?}", self.url.host, self.url.port, self.settings.timeout),
                None,
            )),
        }
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let url = &self.url;
        let unreachable =
            |e: io::Error| SendError::unavailable(format!("cannot connect to {}:{}: {e}", url.host, url.port), None);
        let tcp = TcpStream::connect((url.host.as_str(), url.port)).await.map_err(unreachable)?;
        tcp.set_nodelay(self.settings.nodelay).map_err(unreachable)?;
        // Under STARTTLS, lettre puts TLS above the wire: bytes put ahead there would go out
        // in clear, so those connections never pipeline.
        let wire = Arc::new(WireState::new(!matches!(url.security, Security::StartTls { .. })));
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            Some(connector) => {
                let name = ServerName::try_from(url.host.clone())
                    .map_err(|e| SendError::transient(format!("`{}` is not a TLS server name: {e}", url.host)))?;
                let tls = connector.connect(name, tcp).await.map_err(|e| {
                    SendError::unavailable(format!("TLS with {}:{} failed: {e}", url.host, url.port), None)
                })?;
                Box::new(Wire::new(TlsStream(tls), wire.clone()))
            }
            None => Box::new(Wire::new(tcp, wire.clone())),
        };
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await.map_err(|e| classify(&e))?;
        if let Security::StartTls { required } = url.security {
            if conn.can_starttls() {
                let parameters = TlsParameters::new_rustls(url.host.clone()).map_err(|e| classify(&e))?;
                conn.starttls(parameters, &self.hello).await.map_err(|e| classify(&e))?;
            } else if required {
                return Err(SendError::transient(format!(
                    "{}:{} does not offer STARTTLS (use ?tls=opportunistic to allow plain text)",
                    url.host, url.port
                )));
            }
        }
        if let Some(credentials) = &url.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(|e| classify(&e))?;
        }
        Ok(Conn { smtp: conn, wire })
    }
}

impl Conn {
    /// One message: pipelined when the server offers it and lettre would send the same
    /// commands, else lettre's own `send`. [`Pool::send`] never reuses a connection whose
    /// send failed.
    async fn send(&mut self, envelope: &Envelope, email: &[u8]) -> Result<Response, lettre::transport::smtp::Error> {
        self.wire.sniffing.store(false, Ordering::Relaxed);
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let ascii_addresses = envelope.from().is_none_or(ascii) && envelope.to().iter().all(ascii);
        let eight_bit = !email.is_ascii();
        if !self.wire.pipelining.load(Ordering::Relaxed)
            || !ascii_addresses
            || (eight_bit && !self.smtp.server_info().supports_feature(Extension::EightBitMime))
        {
            return self.smtp.send(envelope, email).await;
        }
        let options = if eight_bit { vec![MailParameter::Body(MailBodyParameter::EightBitMime)] } else { Vec::new() };
        let mut ahead = Mail::new(envelope.from().cloned(), options).to_string();
        for to in envelope.to() {
            ahead.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        self.wire.put_ahead(ahead.as_bytes());
        // One write: MAIL, each RCPT, DATA. Then one answer each, in order: lettre's
        // `command` returns the first (MAIL's), the rest are read one by one. All are read
        // even after a refusal, so the first refusal is the one reported.
        let mut answers = vec![self.smtp.command(Data).await];
        for _ in 0..=envelope.to().len() {
            answers.push(self.smtp.read_response().await);
        }
        if let Some(refused) = answers.into_iter().find_map(Result::err) {
            // The server may be waiting for a body (a 354 after a refused recipient), so not
            // even `QUIT` would be heard: the pool drops a connection whose send failed.
            return Err(refused);
        }
        self.smtp.message(email).await
    }
}

/// What a [`Wire`] shares with the connection above it.
#[derive(Debug)]
struct WireState {
    /// Bytes written and not yet sent (sent when lettre next reads).
    out: Mutex<Vec<u8>>,
    /// The server offered `PIPELINING` in its `EHLO` answer (and pipelining is safe here).
    pipelining: AtomicBool,
    /// Still reading the greeting and `EHLO` answers, looking for `PIPELINING` (never, on
    /// a connection that may not pipeline).
    sniffing: AtomicBool,
}

impl WireState {
    /// `allowed`: whether this connection may pipeline at all (not under STARTTLS).
    fn new(allowed: bool) -> WireState {
        WireState {
            out: Mutex::new(Vec::new()),
            pipelining: AtomicBool::new(false),
            sniffing: AtomicBool::new(allowed),
        }
    }

    /// Commands to send ahead of lettre's next write, in the same segment.
    fn put_ahead(&self, bytes: &[u8]) {
        self.out.lock().expect("wire lock").extend_from_slice(bytes);
    }

    /// Looks for an `EHLO` keyword line `250-PIPELINING` / `250 PIPELINING` in `read`.
    fn sniff(&self, read: &[u8]) {
        if !self.sniffing.load(Ordering::Relaxed) {
            return;
        }
        let offered = read.split(|&b| b == b'\n').any(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.len() >= 14
                && line.starts_with(b"250")
                && matches!(line[3], b'-' | b' ')
                && line[4..].eq_ignore_ascii_case(b"PIPELINING")
        });
        if offered {
            self.pipelining.store(true, Ordering::Relaxed);
        }
    }
}

/// The socket under lettre: holds what is written until the next read (lettre reads the
/// answer to everything it writes, and a TLS handshake reads after it writes), then sends
/// it in one write.
#[derive(Debug)]
struct Wire<S> {
    inner: S,
    state: Arc<WireState>,
    /// Bytes of `state.out` already written to `inner`.
    sent: usize,
}

impl<S: AsyncTokioStream> Wire<S> {
    fn new(inner: S, state: Arc<WireState>) -> Wire<S> {
        Wire { inner, state, sent: 0 }
    }

    /// Writes out everything held, then flushes.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut out = self.state.out.lock().expect("wire lock");
        while self.sent < out.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &out[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        out.clear();
        self.sent = 0;
        drop(out);
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncTokioStream> AsyncRead for Wire<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.state.sniff(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncTokioStream> AsyncWrite for Wire<S> {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.state.out.lock().expect("wire lock").extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// Held until the next read: see [`Wire`].
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncTokioStream> AsyncTokioStream for Wire<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

/// SMTP 4xx, timeouts, network and TLS trouble are transient; SMTP 5xx is permanent.
pub fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let reason = format!("smtp: {error}");
    if error.is_permanent() {
        return SendError::Permanent { reason };
    }
    // A 4xx answer is about this message (greylisting, a full mailbox), except 421: the
    // server is closing the channel (overloaded, shutting down). No answer at all
    // (refused, reset, a TLS failure) is the server's too.
    match error.status() {
        Some(code) if code.to_string() != "421" => SendError::transient(reason),
        _ => SendError::unavailable(reason, None),
    }
}

/// rustls with the ring provider and the Mozilla roots (webpki-roots), as lettre uses.
fn client_config() -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Implicit TLS for lettre: it takes any tokio stream that can name its peer.
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_sees_pipelining_only_as_an_ehlo_keyword_of_a_connection_that_may_use_it() {
        let wire = WireState::new(true);
        wire.sniff(b"220 mx.example ESMTP PIPELINING is not a keyword here\r\n");
        assert!(!wire.pipelining.load(Ordering::Relaxed), "a greeting is not an EHLO answer");
        wire.sniff(b"250-mx.example\r\n250-SIZE 10240000\r\n250-pipelining\r\n250 8BITMIME\r\n");
        assert!(wire.pipelining.load(Ordering::Relaxed));

        let starttls = WireState::new(false);
        starttls.sniff(b"250-mx.example\r\n250 PIPELINING\r\n");
        assert!(!starttls.pipelining.load(Ordering::Relaxed), "under STARTTLS the wire is below TLS");
    }

    #[test]
    fn urls_choose_plain_starttls_or_tls_and_default_ports() {
        let url = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.security), ("127.0.0.1", 2525, Security::Plain));
        assert!(url.credentials.is_none());
        let url = SmtpUrl::parse("smtp://mail.example.com?tls=starttls").unwrap();
        assert_eq!((url.port, url.security), (587, Security::StartTls { required: true }));
        let url = SmtpUrl::parse("smtp://mail.example.com:25?tls=opportunistic").unwrap();
        assert_eq!((url.port, url.security), (25, Security::StartTls { required: false }));
        let url = SmtpUrl::parse("smtps://apikey:s%40cret%2Bx@smtp.example.com").unwrap();
        assert_eq!((url.port, url.security), (465, Security::Tls));
        assert_eq!(url.credentials, Some(Credentials::new("apikey".into(), "s@cret+x".into())));
        assert!(!format!("{url:?}").contains("cret"), "the password stays out of logs");
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        assert!(SmtpUrl::parse("http://x").unwrap_err().contains("smtp://"));
        assert!(SmtpUrl::parse("smtp://x?tls=maybe").unwrap_err().contains("starttls"));
        assert!(SmtpUrl::parse("mail.example.com:25").is_err());
    }
}
