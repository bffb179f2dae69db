//! Email: a rendered message becomes one MIME message ([`Composer`]), sent over SMTP
//! ([`EmailSender`], through [`super::smtp::Pool`]) or written to the outbox as the same
//! bytes.
//!
//! Every message is `multipart/alternative` (text, then HTML), has a `Message-ID` derived
//! from the delivery (`<delivery-{id}.{member hash}@{domain of From}>`, so a retried send
//! keeps its id and receivers can drop the repeat), and, unless the message is
//! transactional, `List-Unsubscribe: <https…>, <mailto:…>` with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).

use std::time::Duration;

use async_trait::async_trait;
use lettre::Address;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};

use super::rate::RateLimit;
use super::smtp::{Pool, PoolSettings, SmtpUrl};
use super::{ChannelConfigError, Outgoing, Prepared, Receipt, SendError, Sender, wrong_message};
use crate::config::Config;
use crate::template::Rendered;

/// The sender defaults the templates' front matter may override.
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    unsubscribe_mailto: Option<Address>,
}

impl Composer {
    pub fn new(from: Mailbox, reply_to: Option<Mailbox>, unsubscribe_mailto: Option<Address>) -> Composer {
        Composer { from, reply_to, unsubscribe_mailto }
    }

    /// `[channels.email] from, reply_to, unsubscribe_mailto`; `from` defaults to the shop's
    /// name and support address.
    pub fn from_config(config: &Config) -> Result<Composer, ChannelConfigError> {
        let email = &config.channels.email;
        let invalid = |key: &str, value: &str, e: &dyn std::fmt::Display| ChannelConfigError::Invalid {
            key: key.to_string(),
            message: format!("`{value}` is not an email address: {e}"),
        };
        let from = match &email.from {
            Some(from) => from.parse::<Mailbox>().map_err(|e| invalid("channels.email.from", from, &e))?,
            None => {
                let address =
                    config.shop.support_email.parse::<Address>().map_err(|e| {
                        invalid("shop.support_email (the default sender)", &config.shop.support_email, &e)
                    })?;
                Mailbox::new(Some(config.shop.name.clone()), address)
            }
        };
        let reply_to = match &email.reply_to {
            Some(r) => Some(r.parse::<Mailbox>().map_err(|e| invalid("channels.email.reply_to", r, &e))?),
            None => None,
        };
        let unsubscribe_mailto = match &email.unsubscribe_mailto {
            Some(m) => {
                let address = m.trim().trim_start_matches("mailto:");
                Some(address.parse::<Address>().map_err(|e| invalid("channels.email.unsubscribe_mailto", m, &e))?)
            }
            None => None,
        };
        Ok(Composer { from, reply_to, unsubscribe_mailto })
    }

    /// The MIME message for `msg`. Fails (permanently) when `msg` is not an email or an
    /// address does not parse.
    pub fn compose(&self, msg: &Outgoing) -> Result<lettre::Message, SendError> {
        let Rendered::Email { subject, preheader: _, from, reply_to, html, text } = &msg.message else {
            return Err(wrong_message(msg));
        };
        let to = msg
            .to
            .trim()
            .parse::<Address>()
            .map_err(|e| SendError::permanent(format!("`{}` is not an email address: {e}", msg.to)))?;
        let mailbox = |what: &str, text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| SendError::permanent(format!("the template's `{what}` `{text}` is not a mailbox: {e}")))
        };
        let from = match from {
            Some(from) => mailbox("from", from)?,
            None => self.from.clone(),
        };
        let reply_to = match reply_to {
            Some(reply_to) => Some(mailbox("reply_to", reply_to)?),
            None => self.reply_to.clone(),
        };

        let mut builder = lettre::Message::builder()
            .message_id(Some(message_id(msg.delivery_id, &msg.member_id, &from)))
            .from(from)
            .to(Mailbox::new(None, to))
            .subject(subject.as_str());
        if let Some(reply_to) = reply_to {
            builder = builder.reply_to(reply_to);
        }
        if let Some(url) = &msg.unsubscribe_url {
            let mailto = self.unsubscribe_mailto.as_ref().map(|address| unsubscribe_mailto(address, url));
            builder = builder
                .header(ListUnsubscribe(match mailto {
                    Some(mailto) => format!("<{url}>, <{mailto}>"),
                    None => format!("<{url}>"),
                }))
                .header(ListUnsubscribePost);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
            .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))
    }
}

/// `<delivery-{id}.{first 16 hex digits of SHA-256(member id)}@{domain of From}>`: the same
/// for every attempt of a delivery, and without the member id in clear.
pub fn message_id(delivery_id: i64, member_id: &str, from: &Mailbox) -> String {
    let hash = Sha256::digest(member_id.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("<delivery-{delivery_id}.{hex}@{}>", from.email.domain())
}

/// `mailto:ADDRESS?subject=unsubscribe%20TOKEN`, with the token of the https link (its last
/// path segment) so the mailbox that receives it knows who asked.
fn unsubscribe_mailto(address: &Address, url: &str) -> String {
    let token = url.rsplit('/').next().unwrap_or("");
    let token = percent_encoding::utf8_percent_encode(token, UNRESERVED);
    format!("mailto:{address}?subject=unsubscribe%20{token}")
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `List-Unsubscribe` (RFC 2369), already formatted as `<https…>, <mailto:…>`.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_string())
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// SMTP connections open at once.
    pub connections: usize,
    /// Per connect, and per message.
    pub timeout: Duration,
    /// 0 = no limit.
    pub messages_per_second: u32,
    /// `TCP_NODELAY` on the SMTP sockets. Always on in production; off only to measure
    /// the stall it removes (`benches/email_send.rs`).
    pub nodelay: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { connections: 8, timeout: Duration::from_secs(30), messages_per_second: 0, nodelay: true }
    }
}

/// Email over SMTP.
pub struct EmailSender {
    pool: Pool,
    composer: Composer,
    rate: RateLimit,
}

impl EmailSender {
    /// From `TIDINGS_SMTP_URL` (`smtp://host:port`, `smtp://…?tls=starttls`, `smtps://…`,
    /// credentials as `user:password@`). Connects lazily, on the first send.
    pub fn new(url: &str, composer: Composer, settings: Settings) -> Result<EmailSender, ChannelConfigError> {
        let url = SmtpUrl::parse(url)
            .map_err(|message| ChannelConfigError::Invalid { key: super::SMTP_URL_VAR.into(), message })?;
        let pool = Pool::new(
            url,
            PoolSettings { connections: settings.connections, timeout: settings.timeout, nodelay: settings.nodelay },
        );
        Ok(EmailSender { pool, composer, rate: RateLimit::per_second(settings.messages_per_second) })
    }
}

#[async_trait]
impl Sender for EmailSender {
    async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let prepared = self.prepare(msg)?;
        self.send_prepared(msg, prepared).await
    }

    /// Composes the MIME message: the CPU part of an email's send.
    fn prepare(&self, msg: &Outgoing) -> Result<Prepared, SendError> {
        let message = self.composer.compose(msg)?;
        let message_id = message.headers().get_raw("Message-ID").map(str::to_string);
        Ok(Prepared::Bytes { bytes: message.formatted(), envelope: Some(message.envelope().clone()), message_id })
    }

    async fn send_prepared(&self, msg: &Outgoing, prepared: Prepared) -> Result<Receipt, SendError> {
        let Prepared::Bytes { bytes, envelope: Some(envelope), message_id } = prepared else {
            return self.send(msg).await;
        };
        self.rate.wait().await;
        self.pool.send(envelope, bytes).await?;
        Ok(Receipt { provider_message_id: message_id })
    }

    fn provider(&self) -> &'static str {
        "smtp"
    }

    /// Closes the idle SMTP connections with `QUIT` (at shutdown).
    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channel;

    fn outgoing(unsubscribe: Option<&str>) -> Outgoing {
        Outgoing {
            delivery_id: 42,
            member_id: "m-1".into(),
            channel: Channel::Email,
            to: "li.wei@example.com".into(),
            message: Rendered::Email {
                subject: "生日快乐".into(),
                preheader: None,
                from: None,
                reply_to: None,
                html: "<p>Hi</p>".into(),
                text: "Hi".into(),
            },
            unsubscribe_url: unsubscribe.map(str::to_string),
        }
    }

    fn composer() -> Composer {
        Composer::new(
            "Tea House <hello@teahouse.example>".parse().unwrap(),
            None,
            Some("unsubscribe@teahouse.example".parse().unwrap()),
        )
    }

    #[test]
    fn message_ids_are_stable_per_delivery_and_hide_the_member() {
        let from: Mailbox = "hello@teahouse.example".parse().unwrap();
        let id = message_id(42, "m-1", &from);
        assert_eq!(id, message_id(42, "m-1", &from));
        assert!(id.starts_with("<delivery-42.") && id.ends_with("@teahouse.example>"), "{id}");
        assert!(!id.contains("m-1"));
        assert_ne!(id, message_id(43, "m-1", &from));
    }

    #[test]
    fn transactional_messages_have_no_unsubscribe_headers() {
        let formatted = String::from_utf8(composer().compose(&outgoing(None)).unwrap().formatted()).unwrap();
        assert!(!formatted.contains("List-Unsubscribe"), "{formatted}");
        let formatted =
            String::from_utf8(composer().compose(&outgoing(Some("https://t.example/u/abc.def"))).unwrap().formatted())
                .unwrap();
        assert!(formatted.contains("List-Unsubscribe: <https://t.example/u/abc.def>,"), "{formatted}");
        assert!(formatted.contains("<mailto:unsubscribe@teahouse.example?subject=unsubscribe%20abc.def>"));
        assert!(formatted.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    }

    #[test]
    fn bad_addresses_are_permanent_failures() {
        let mut msg = outgoing(None);
        msg.to = "not an address".into();
        assert!(matches!(composer().compose(&msg), Err(SendError::Permanent { .. })));
        let mut msg = outgoing(None);
        msg.channel = Channel::Sms;
        msg.message = Rendered::Sms { body: "hi".into() };
        assert!(matches!(composer().compose(&msg), Err(SendError::Permanent { .. })));
    }
}
