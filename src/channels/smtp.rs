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
//! answer (it always does), so a message's body and its closing dot leave in one segment.
//! When the server offers `PIPELINING` (RFC 2920), a message's `MAIL FROM`, `RCPT TO` and
//! `DATA` go out in one write, and while more messages are queued each connection sends
//! the next one's commands behind this one's content: a message is then one round trip,
//! where lettre alone takes four. On loopback into smtp-sink most of a send's CPU was the
//! kernel's and the wake-ups', per segment.

use std::collections::VecDeque;
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
use tokio::sync::{Notify, oneshot};
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

/// At most `connections` SMTP connections, each driven by a task of its own that takes
/// messages from one queue: a message waits for the first connection free, and a
/// connection that has more waiting sends the next one's `MAIL`/`RCPT`/`DATA` behind this
/// one's content (see [`Conn::deliver`]). Tasks start when messages wait and no
/// connection is free, and end after [`IDLE_TIMEOUT`] without work or when the pool is
/// closed or dropped.
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    url: SmtpUrl,
    settings: PoolSettings,
    hello: ClientId,
    tls: Option<TlsConnector>,
    state: Mutex<State>,
    /// A message was queued, or the pool is closing.
    wake: Notify,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Connection tasks alive, and how many of them wait for a message.
    running: usize,
    waiting: usize,
    closing: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One message waiting for a connection, and where its answer goes.
struct Job {
    envelope: Envelope,
    email: Vec<u8>,
    answer: oneshot::Sender<Result<Response, SendError>>,
}

impl Job {
    /// Nobody waits for the answer any more (the send was dropped): the message must not
    /// go out, as a send dropped before it reached the wire never did.
    fn abandoned(&self) -> bool {
        self.answer.is_closed()
    }

    fn answer(self, result: Result<Response, SendError>) {
        let _ = self.answer.send(result);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("url", &self.shared.url).field("settings", &self.shared.settings).finish()
    }
}

impl Pool {
    pub fn new(url: SmtpUrl, settings: PoolSettings) -> Pool {
        let tls = (url.security == Security::Tls).then(|| TlsConnector::from(Arc::new(client_config())));
        let shared = Shared {
            url,
            settings,
            hello: ClientId::default(),
            tls,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        };
        Pool { shared: Arc::new(shared) }
    }

    /// Sends one message on a pooled connection. A connection that failed in any way is
    /// closed, never reused. Dropping the returned future before the message's commands
    /// were written means it is never sent.
    pub async fn send(&self, envelope: Envelope, email: Vec<u8>) -> Result<Response, SendError> {
        let (answer, answered) = oneshot::channel();
        {
            let mut state = self.shared.state.lock().expect("pool lock");
            if state.closing {
                return Err(SendError::transient("the SMTP pool is closed"));
            }
            state.queue.push_back(Job { envelope, email, answer });
            if state.queue.len() > state.waiting && state.running < self.shared.settings.connections.max(1) {
                state.running += 1;
                state.tasks.retain(|task| !task.is_finished());
                let shared = Arc::clone(&self.shared);
                state.tasks.push(tokio::spawn(shared.drive()));
            }
        }
        self.shared.wake.notify_one();
        answered.await.unwrap_or_else(|_| Err(SendError::transient("the SMTP connection's task ended unexpectedly")))
    }

    /// Lets the connections finish what is queued, then closes them politely (`QUIT`).
    pub async fn close(&self) {
        let tasks = {
            let mut state = self.shared.state.lock().expect("pool lock");
            state.closing = true;
            std::mem::take(&mut state.tasks)
        };
        self.shared.wake.notify_waiters();
        let all = futures_util::future::join_all(tasks);
        let _ = tokio::time::timeout(self.shared.settings.timeout + Duration::from_secs(2), all).await;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.state.lock().expect("pool lock").closing = true;
        self.shared.wake.notify_waiters();
    }
}

/// What [`Shared::next`] found.
enum Next {
    Job(Job),
    /// Nothing for [`IDLE_TIMEOUT`], or the pool is closing and nothing is queued.
    Done,
}

impl Shared {
    /// One connection's task: takes messages until it is idle too long or the pool closes.
    async fn drive(self: Arc<Shared>) {
        let mut conn: Option<Conn> = None;
        let mut idle_since = Instant::now();
        let mut taken: Option<Job> = None;
        loop {
            let job = match taken.take() {
                Some(job) => job,
                None => match self.next().await {
                    Next::Job(job) => job,
                    Next::Done => break,
                },
            };
            if job.abandoned() {
                continue;
            }
            if let Some(open) = conn.as_mut()
                && idle_since.elapsed() > CHECK_AFTER
                && !open.smtp.test_connected().await
            {
                conn = None;
            }
            let open = match conn.as_mut() {
                Some(open) => open,
                None => match tokio::time::timeout(self.settings.timeout, self.connect()).await {
                    Ok(Ok(open)) => conn.insert(open),
                    Ok(Err(error)) => {
                        job.answer(Err(error));
                        continue;
                    }
                    Err(_) => {
                        let (url, timeout) = (&self.url, self.settings.timeout);
                        let reason = format!("could not connect to {}:{} within {timeout:?}", url.host, url.port);
                        job.answer(Err(SendError::unavailable(reason, None)));
                        continue;
                    }
                },
            };
            let (keep, next) = open.deliver(&self, job).await;
            if !keep || open.smtp.has_broken() {
                conn = None;
            }
            taken = next;
            idle_since = Instant::now();
        }
        if let Some(mut open) = conn {
            let _ = tokio::time::timeout(Duration::from_secs(2), open.smtp.quit()).await;
        }
    }

    /// The next message to send, waiting for one up to [`IDLE_TIMEOUT`]. A task that
    /// gives up only does so with nothing queued, so no message waits without a task.
    async fn next(&self) -> Next {
        let deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            {
                let mut state = self.state.lock().expect("pool lock");
                if let Some(job) = state.queue.pop_front() {
                    return Next::Job(job);
                }
                if state.closing || tokio::time::Instant::now() >= deadline {
                    state.running -= 1;
                    return Next::Done;
                }
                // Registered before the lock is let go: a wake-up in between is not lost.
                woken.as_mut().enable();
                state.waiting += 1;
            }
            let _ = tokio::time::timeout_at(deadline, woken).await;
            self.state.lock().expect("pool lock").waiting -= 1;
        }
    }

    /// A queued message, if one is there now (abandoned ones are dropped).
    fn try_next(&self) -> Option<Job> {
        let mut state = self.state.lock().expect("pool lock");
        while let Some(job) = state.queue.pop_front() {
            if !job.abandoned() {
                return Some(job);
            }
        }
        None
    }

    /// Puts a message whose commands went out on a connection that then failed back at
    /// the head of the queue: without its content it was not delivered.
    fn requeue(&self, job: Job) {
        self.state.lock().expect("pool lock").queue.push_front(job);
        self.wake.notify_one();
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
        wire.sniffing.store(false, Ordering::Relaxed);
        Ok(Conn { smtp: conn, wire })
    }

    /// One step of a message's exchange within the per-message timeout, its failure
    /// classified ([`classify`]; no answer in time is the provider's).
    async fn within<T>(
        &self,
        step: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, SendError> {
        match tokio::time::timeout(self.settings.timeout, step).await {
            Ok(result) => result.map_err(|error| classify(&error)),
            Err(_) => Err(SendError::unavailable(
                format!("the SMTP server did not answer within {:?}", self.settings.timeout),
                None,
            )),
        }
    }
}

/// A connection and the [`Wire`] under it.
struct Conn {
    smtp: AsyncSmtpConnection,
    wire: Arc<WireState>,
}

impl Conn {
    /// Sends `job`, and while more are queued, each next one with its commands behind the
    /// previous one's content (RFC 2920 lets a message's content lead a pipelined group):
    /// a message is then one round trip, its content and the next one's `MAIL`, `RCPT`
    /// and `DATA` in one write, their answers in one read. Without `PIPELINING` (or for
    /// addresses lettre must announce as `SMTPUTF8`) it is lettre's own `send`.
    ///
    /// Answers each job; returns whether the connection may be used again and a job taken
    /// from the queue but not started.
    async fn deliver(&mut self, pool: &Shared, job: Job) -> (bool, Option<Job>) {
        let Some(commands) = self.commands(&job) else {
            let sent = pool.within(self.smtp.send(&job.envelope, &job.email)).await;
            let kept = sent.is_ok();
            job.answer(sent);
            return (kept, None);
        };
        self.wire.put_ahead(commands.as_bytes());
        let mut current = job;
        loop {
            // `current`'s commands are written: read their answers.
            if let Err(error) = pool.within(self.opened(&current)).await {
                // The server may be waiting for content (a 354 after a refused recipient),
                // so not even `QUIT` would be heard: the connection goes.
                current.answer(Err(error));
                return (false, None);
            }
            if current.abandoned() {
                // Past its 354 a message can only be sent or cut off with the connection.
                return (false, None);
            }
            let next = pool.try_next();
            let behind = next.as_ref().and_then(|next| self.commands(next));
            if let Some(commands) = &behind {
                self.wire.put_behind(commands.as_bytes());
            }
            let sent = pool.within(self.smtp.message(&current.email)).await;
            let kept = sent.is_ok();
            current.answer(sent);
            match (next, behind.is_some()) {
                (Some(next), true) if kept => current = next,
                (Some(next), true) => {
                    pool.requeue(next);
                    return (false, None);
                }
                (next, _) => return (kept, next),
            }
        }
    }

    /// `MAIL`, each `RCPT` and `DATA` for `job`, to be written in one go, or `None` when
    /// this connection cannot pipeline them.
    fn commands(&self, job: &Job) -> Option<String> {
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let envelope = &job.envelope;
        let ascii_addresses = envelope.from().is_none_or(ascii) && envelope.to().iter().all(ascii);
        let eight_bit = !job.email.is_ascii();
        if !self.wire.pipelining.load(Ordering::Relaxed)
            || !ascii_addresses
            || (eight_bit && !self.smtp.server_info().supports_feature(Extension::EightBitMime))
        {
            return None;
        }
        let options = if eight_bit { vec![MailParameter::Body(MailBodyParameter::EightBitMime)] } else { Vec::new() };
        let mut commands = Mail::new(envelope.from().cloned(), options).to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        commands.push_str(&Data.to_string());
        Some(commands)
    }

    /// Reads the answers to `job`'s `MAIL`, each `RCPT` and `DATA`, in order; the first
    /// refusal is the error.
    async fn opened(&mut self, job: &Job) -> Result<(), lettre::transport::smtp::Error> {
        for _ in 0..job.envelope.to().len() + 2 {
            self.smtp.read_response().await?;
        }
        Ok(())
    }
}

/// What a [`Wire`] shares with the connection above it.
#[derive(Debug)]
struct WireState {
    /// Bytes written and not yet sent (sent when lettre next reads).
    out: Mutex<Vec<u8>>,
    /// Bytes to send after what lettre writes next, in the same write (the next message's
    /// commands behind this one's content).
    behind: Mutex<Vec<u8>>,
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
            behind: Mutex::new(Vec::new()),
            pipelining: AtomicBool::new(false),
            sniffing: AtomicBool::new(allowed),
        }
    }

    /// Commands to send ahead of lettre's next write, in the same segment.
    fn put_ahead(&self, bytes: &[u8]) {
        self.out.lock().expect("wire lock").extend_from_slice(bytes);
    }

    /// Commands to send behind lettre's next write, in the same segment.
    fn put_behind(&self, bytes: &[u8]) {
        self.behind.lock().expect("wire lock").extend_from_slice(bytes);
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
        if self.sent == 0 && !out.is_empty() {
            out.append(&mut self.state.behind.lock().expect("wire lock"));
        }
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
