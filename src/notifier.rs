//! Alert notifications, delivered: the edge that takes the notification rows the alert
//! evaluation left (`store::alerts`) and POSTs them to the operators' webhook
//! (`TIDINGS_ALERT_WEBHOOK_URL`, signed the Standard Webhooks way with
//! `TIDINGS_WEBHOOK_SECRET`, Slack-compatible `text`) or emails them through the email
//! channel. Transient failures are tried again with the channels' backoff
//! (`channels::retry`); each notification is claimed with a lease, so with many workers
//! one sends it. It runs beside the engine's tick, never inside it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alert::message::Notice;
use crate::channel::Channel;
use crate::channels::{Channels, Outgoing, RetryPolicy, SendError, http, next_attempt};
use crate::store::alerts::{ClaimedNotification, NotificationOutcome};
use crate::store::{Store, StoreError};
use crate::template::Rendered;

/// The variables the notifier reads.
pub const WEBHOOK_URL_VAR: &str = "TIDINGS_ALERT_WEBHOOK_URL";
pub const SECRET_VAR: &str = "TIDINGS_WEBHOOK_SECRET";
pub const EMAIL_VAR: &str = "TIDINGS_ALERT_EMAIL";

/// Notifications claimed per pass.
const BATCH: i64 = 100;
/// How long a claimed notification is this worker's to send.
const LEASE: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("{0} is required when {WEBHOOK_URL_VAR} is set (the notifications are signed with it)")]
    MissingSecret(&'static str),
    #[error("{var}: {message}")]
    Invalid { var: &'static str, message: String },
}

/// The operators' webhook.
#[derive(Clone)]
struct Webhook {
    url: String,
    key: Vec<u8>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Delivers alert notifications.
#[derive(Clone)]
pub struct Notifier {
    store: Store,
    webhook: Option<Webhook>,
    channels: Channels,
    retry: RetryPolicy,
    public_url: Option<String>,
}

impl Notifier {
    /// The webhook from `TIDINGS_ALERT_WEBHOOK_URL` (with its secret), email through
    /// `channels`; `public_url` links notifications to the dashboard.
    pub fn from_env(
        store: Store,
        channels: Channels,
        retry: RetryPolicy,
        public_url: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Notifier, NotifierError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let webhook = match get(WEBHOOK_URL_VAR) {
            None => None,
            Some(url) => {
                let ok = url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok {
                    return Err(NotifierError::Invalid {
                        var: WEBHOOK_URL_VAR,
                        message: format!("`{url}` is not an http(s) URL"),
                    });
                }
                let secret = get(SECRET_VAR).ok_or(NotifierError::MissingSecret(SECRET_VAR))?;
                let key = crate::http::signature::standard_webhooks_key(&secret)
                    .map_err(|e| NotifierError::Invalid { var: SECRET_VAR, message: e.to_string() })?;
                let client = http::client(Duration::from_secs(10))
                    .map_err(|e| NotifierError::Invalid { var: WEBHOOK_URL_VAR, message: e.to_string() })?;
                Some(Webhook { url, key, client })
            }
        };
        Ok(Notifier { store, webhook, channels, retry, public_url })
    }

    /// Whether transitions get a `webhook` notification.
    pub fn has_webhook(&self) -> bool {
        self.webhook.is_some()
    }

    /// Sends every notification due at `now` (a batch at a time); returns how many were
    /// sent.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut sent = 0;
        loop {
            let claimed = self.store.claim_alert_notifications(now, BATCH, LEASE).await?;
            let n = claimed.len();
            for c in claimed {
                let result = self.send(&c, now).await;
                let outcome = match result {
                    Ok(()) => {
                        sent += 1;
                        NotificationOutcome::Sent
                    }
                    Err(error) => {
                        let retry_after = match &error {
                            SendError::Transient { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        let again = error
                            .is_transient()
                            .then(|| next_attempt(c.attempts as u32, now, retry_after, &self.retry, rand::random()))
                            .flatten();
                        tracing::warn!(notification = c.id, target = %c.target, %error, "alert notification failed");
                        match again {
                            Some(at) => NotificationOutcome::Retry { at, error: error.to_string() },
                            None => NotificationOutcome::Failed { error: error.to_string() },
                        }
                    }
                };
                self.store.record_alert_notification(c.id, &outcome, now).await?;
            }
            if (n as i64) < BATCH {
                return Ok(sent);
            }
        }
    }

    async fn send(&self, c: &ClaimedNotification, now: DateTime<Utc>) -> Result<(), SendError> {
        let public_url = self.public_url.as_deref();
        if c.target == "webhook" {
            let Some(webhook) = &self.webhook else {
                return Err(SendError::permanent(format!("{WEBHOOK_URL_VAR} is not set")));
            };
            return post(webhook, &c.notice, public_url, now).await;
        }
        let Some(address) = c.target.strip_prefix("email:") else {
            return Err(SendError::permanent(format!("unknown target `{}`", c.target)));
        };
        let (subject, text) = c.notice.email(public_url);
        let html = format!("<pre>{}</pre>", crate::http::dashboard::esc(&text));
        let message = Rendered::Email { subject, preheader: None, from: None, reply_to: None, html, text };
        let out = Outgoing {
            delivery_id: c.id,
            member_id: "tidings-alerts".to_string(),
            channel: Channel::Email,
            to: address.to_string(),
            message,
            unsubscribe_url: None,
        };
        self.channels.send(&out).await.map(|_| ())
    }
}

/// The `webhook-id` of a transition's notification: the same on every attempt.
pub fn webhook_id(notice: &Notice) -> String {
    format!("alert-{}", notice.id)
}

async fn post(
    webhook: &Webhook,
    notice: &Notice,
    public_url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SendError> {
    let body = serde_json::to_vec(&notice.body(public_url)).map_err(|e| SendError::permanent(e.to_string()))?;
    let id = webhook_id(notice);
    let timestamp = now.timestamp();
    let signature = crate::http::signature::sign_standard(&webhook.key, &id, timestamp, &body);
    let response = webhook
        .client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| http::unanswered("alert webhook", e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Err(http::classify("alert webhook", status, &headers, &text))
}

/// Runs [`Notifier::deliver_due`] every `every` until `stop` (serve and worker).
pub fn spawn(
    notifier: Arc<Notifier>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = notifier.deliver_due(Utc::now()).await {
                tracing::error!(%error, "delivering alert notifications failed; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    })
}
