//! Channels (DESIGN §4): one [`Sender`] per provider, one file each, chosen by what is
//! configured. A sender gets an [`Outgoing`] (a rendered message and who it is for) and
//! answers with a [`Receipt`] or a classified [`SendError`]; it never touches the store or
//! the engine, which decide what a failure means for the delivery and the member.
//!
//! - [`email`]: SMTP through lettre, over our own connection pool ([`smtp`]).
//! - [`sms`]: a Twilio-compatible HTTP API.
//! - [`push`]: FCM HTTP v1.
//! - [`webhook`]: a signed POST of the rendered JSON (Standard Webhooks).
//! - [`outbox`]: files under `outbox/`, the default for any channel not configured.
//!
//! [`retry`] computes when a transient failure is tried again; [`rate`] keeps each provider
//! under its messages-per-second limit; [`http`] classifies HTTP answers for the three
//! HTTP providers the same way.

pub mod email;
pub mod http;
pub mod outbox;
pub mod push;
pub mod rate;
pub mod retry;
pub mod sms;
pub mod smtp;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::channel::Channel;
use crate::config::Config;
use crate::template::Rendered;

pub use retry::{RetryPolicy, next_attempt};

/// One message for one recipient, as the engine hands it to a channel.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The delivery's id: the idempotency key of this send (Message-ID, webhook-id, the
    /// outbox file name).
    pub delivery_id: i64,
    pub member_id: String,
    pub channel: Channel,
    /// An email address, an E.164 phone number or a push token; `""` for webhooks (the URL
    /// comes from the config).
    pub to: String,
    pub message: Rendered,
    /// The one-click unsubscribe URL (`{public_url}/u/{token}`, see [`crate::links`]); email
    /// puts it in `List-Unsubscribe`. `None` for transactional messages.
    pub unsubscribe_url: Option<String>,
}

/// What [`Sender::prepare`] made of a message ahead of its send.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Nothing: the sender works from the [`Outgoing`] when it sends.
    Nothing,
    /// The bytes that go on the wire or into the file, with the SMTP envelope and the
    /// `Message-ID` when the message is an email.
    Bytes { bytes: Vec<u8>, envelope: Option<lettre::address::Envelope>, message_id: Option<String> },
}

/// What the provider said when it accepted the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's id for the message (Twilio's `sid`, FCM's `name`), or the Message-ID
    /// we set on an email; `None` when the provider gives none.
    pub provider_message_id: Option<String>,
}

/// A failed send, classified by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later ([`retry::next_attempt`]): timeouts, connection errors, 429, 5xx,
    /// SMTP 4xx, and answers that say our own configuration is wrong (401/403), which must
    /// not suppress the member's address.
    ///
    /// `scope` says whose problem it is: [`Scope::Message`] (an SMTP 4xx for this
    /// recipient: this delivery backs off) or [`Scope::Provider`] (the provider is down,
    /// timing out or throttling: every delivery to it waits, see [`crate::breaker`]).
    #[error("transient: {reason}")]
    Transient { reason: String, retry_after: Option<Duration>, scope: Scope },
    /// Never try this address on this channel again: SMTP 5xx, an invalid number, other 4xx.
    #[error("permanent: {reason}")]
    Permanent { reason: String },
    /// Push: the token is no longer valid; remove it from the member.
    #[error("push token is no longer registered: {token}")]
    Unregistered { token: String },
}

impl SendError {
    /// A transient failure of this one message (it backs off on its own).
    pub fn transient(reason: impl Into<String>) -> SendError {
        SendError::Transient { reason: reason.into(), retry_after: None, scope: Scope::Message }
    }

    /// The provider did not serve at all: down, timing out, throttling (`retry_after`).
    pub fn unavailable(reason: impl Into<String>, retry_after: Option<Duration>) -> SendError {
        SendError::Transient { reason: reason.into(), retry_after, scope: Scope::Provider }
    }

    pub fn permanent(reason: impl Into<String>) -> SendError {
        SendError::Permanent { reason: reason.into() }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }
}

/// Whose problem a transient failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This message's: it is retried with its own backoff.
    Message,
    /// The provider's: the provider is paused for every worker ([`crate::breaker`]).
    Provider,
}

/// A provider. Implementations are cheap to share (`Arc<dyn Sender>`) and safe to call
/// concurrently; each keeps its own connections and rate limit.
#[async_trait::async_trait]
pub trait Sender: Send + Sync {
    async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError>;

    /// The part of a send that needs neither the network nor a wait (email: composing the
    /// MIME message), so the engine can do it on its render thread, ahead of the send, and
    /// its I/O task only sends. A failure here is the send's own failure. Nothing by
    /// default.
    fn prepare(&self, _msg: &Outgoing) -> Result<Prepared, SendError> {
        Ok(Prepared::Nothing)
    }

    /// Sends `msg` as [`Sender::prepare`] made it ready; by default [`Sender::send`].
    async fn send_prepared(&self, msg: &Outgoing, _prepared: Prepared) -> Result<Receipt, SendError> {
        self.send(msg).await
    }

    /// A short name for logs and `tidings serve`'s start-up line: `smtp`, `outbox`, ...
    fn provider(&self) -> &'static str {
        "custom"
    }

    /// Closes what the sender keeps open (at shutdown, after the last send): SMTP says
    /// `QUIT` on its pooled connections. Nothing by default.
    async fn close(&self) {}
}

/// The configuration does not let a channel be built.
#[derive(Debug, thiserror::Error)]
pub enum ChannelConfigError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{needed} is required when {because} is set")]
    MissingSecret { needed: &'static str, because: String },
}

/// One sender per channel.
#[derive(Clone)]
pub struct Channels {
    email: Arc<dyn Sender>,
    sms: Arc<dyn Sender>,
    push: Arc<dyn Sender>,
    webhook: Arc<dyn Sender>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Channels");
        for channel in Channel::ALL {
            s.field(channel.as_str(), &self.sender(channel).provider());
        }
        s.finish()
    }
}

/// The environment variables that carry secrets (never read from `tidings.toml`).
pub const SMTP_URL_VAR: &str = "TIDINGS_SMTP_URL";
pub const SMS_AUTH_TOKEN_VAR: &str = "TIDINGS_SMS_AUTH_TOKEN";
pub const FCM_TOKEN_VAR: &str = "TIDINGS_FCM_TOKEN";
pub const WEBHOOK_SIGNING_SECRET_VAR: &str = "TIDINGS_WEBHOOK_SIGNING_SECRET";

impl Channels {
    /// Builds each channel from the config and the secrets in `env`: email uses SMTP when
    /// `TIDINGS_SMTP_URL` is set, SMS when `channels.sms.account_sid` is, push when
    /// `channels.push.project_id` is, webhook when `channels.webhook.url` is; anything
    /// else writes to the outbox (`outbox_dir`, `TIDINGS_OUTBOX_DIR`). A provider that is
    /// configured without its secret is an error, never a silent fallback to the outbox.
    pub fn from_config(config: &Config, env: impl Fn(&str) -> Option<String>) -> Result<Channels, ChannelConfigError> {
        let c = &config.channels;
        let composer = email::Composer::from_config(config)?;
        let outbox: Arc<dyn Sender> = Arc::new(outbox::Outbox::new(config.outbox_dir.clone(), composer.clone()));
        let secret = |name: &str| env(name).filter(|v| !v.trim().is_empty());

        let email: Arc<dyn Sender> = match secret(SMTP_URL_VAR) {
            Some(url) => {
                let settings = email::Settings {
                    connections: c.email.connections as usize,
                    timeout: Config::seconds(&c.email.timeout),
                    messages_per_second: c.email.messages_per_second,
                    nodelay: true,
                };
                Arc::new(email::EmailSender::new(&url, composer, settings)?)
            }
            None => outbox.clone(),
        };

        let sms: Arc<dyn Sender> = match &c.sms.account_sid {
            Some(account_sid) => {
                let auth_token = secret(SMS_AUTH_TOKEN_VAR).ok_or_else(|| ChannelConfigError::MissingSecret {
                    needed: SMS_AUTH_TOKEN_VAR,
                    because: "channels.sms.account_sid".into(),
                })?;
                let sender = match (&c.sms.from, &c.sms.messaging_service_sid) {
                    (_, Some(sid)) => sms::From::MessagingService(sid.clone()),
                    (Some(number), None) => sms::From::Number(number.clone()),
                    (None, None) => {
                        return Err(ChannelConfigError::Invalid {
                            key: "channels.sms".into(),
                            message: "set `from` (a number) or `messaging_service_sid`".into(),
                        });
                    }
                };
                Arc::new(sms::SmsSender::new(sms::Settings {
                    base_url: c.sms.base_url.clone(),
                    account_sid: account_sid.clone(),
                    auth_token,
                    from: sender,
                    timeout: Config::seconds(&c.sms.timeout),
                    messages_per_second: c.sms.messages_per_second,
                })?)
            }
            None => outbox.clone(),
        };

        let push: Arc<dyn Sender> = match &c.push.project_id {
            Some(project_id) => {
                let access_token = secret(FCM_TOKEN_VAR).ok_or_else(|| ChannelConfigError::MissingSecret {
                    needed: FCM_TOKEN_VAR,
                    because: "channels.push.project_id".into(),
                })?;
                Arc::new(push::PushSender::new(push::Settings {
                    base_url: c.push.base_url.clone(),
                    project_id: project_id.clone(),
                    access_token,
                    timeout: Config::seconds(&c.push.timeout),
                    messages_per_second: c.push.messages_per_second,
                })?)
            }
            None => outbox.clone(),
        };

        let webhook: Arc<dyn Sender> = match &c.webhook.url {
            Some(url) => {
                let secret = secret(WEBHOOK_SIGNING_SECRET_VAR).ok_or_else(|| ChannelConfigError::MissingSecret {
                    needed: WEBHOOK_SIGNING_SECRET_VAR,
                    because: "channels.webhook.url".into(),
                })?;
                Arc::new(webhook::WebhookSender::new(webhook::Settings {
                    url: url.clone(),
                    secret: webhook::SigningSecret::parse(&secret).map_err(|message| ChannelConfigError::Invalid {
                        key: WEBHOOK_SIGNING_SECRET_VAR.into(),
                        message,
                    })?,
                    timeout: Config::seconds(&c.webhook.timeout),
                    messages_per_second: c.webhook.messages_per_second,
                })?)
            }
            None => outbox.clone(),
        };

        Ok(Channels { email, sms, push, webhook })
    }

    /// Every channel writes files under `dir` (with the default config's sender address).
    pub fn outbox(dir: PathBuf) -> Channels {
        let composer = email::Composer::from_config(&Config::default()).expect("the default config has a valid sender");
        let outbox: Arc<dyn Sender> = Arc::new(outbox::Outbox::new(dir, composer));
        Channels { email: outbox.clone(), sms: outbox.clone(), push: outbox.clone(), webhook: outbox }
    }

    /// Channels from the given senders (tests, and callers that build their own).
    pub fn new(
        email: Arc<dyn Sender>,
        sms: Arc<dyn Sender>,
        push: Arc<dyn Sender>,
        webhook: Arc<dyn Sender>,
    ) -> Channels {
        Channels { email, sms, push, webhook }
    }

    /// These channels with `sender` on `channel` (tests, and callers that build their own).
    pub fn with(mut self, channel: Channel, sender: Arc<dyn Sender>) -> Channels {
        match channel {
            Channel::Email => self.email = sender,
            Channel::Sms => self.sms = sender,
            Channel::Push => self.push = sender,
            Channel::Webhook => self.webhook = sender,
        }
        self
    }

    pub fn sender(&self, channel: Channel) -> &dyn Sender {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.sms.as_ref(),
            Channel::Push => self.push.as_ref(),
            Channel::Webhook => self.webhook.as_ref(),
        }
    }

    /// Closes every channel's connections ([`Sender::close`]), at shutdown.
    pub async fn close(&self) {
        for channel in Channel::ALL {
            self.sender(channel).close().await;
        }
    }

    /// Sends on the message's channel.
    pub async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        self.sender(msg.channel).send(msg).await
    }

    /// [`Sender::prepare`] on the message's channel.
    pub fn prepare(&self, msg: &Outgoing) -> Result<Prepared, SendError> {
        self.sender(msg.channel).prepare(msg)
    }

    /// [`Sender::send_prepared`] on the message's channel.
    pub async fn send_prepared(&self, msg: &Outgoing, prepared: Prepared) -> Result<Receipt, SendError> {
        self.sender(msg.channel).send_prepared(msg, prepared).await
    }
}

/// The message of an [`Outgoing`] did not match its channel: a bug in the caller.
fn wrong_message(msg: &Outgoing) -> SendError {
    SendError::permanent(format!(
        "delivery {} is a {} message but was rendered for another channel",
        msg.delivery_id, msg.channel
    ))
}
