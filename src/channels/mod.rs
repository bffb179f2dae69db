//! Placeholder until the channels branch lands: the interface the engine calls, with every
//! channel writing to the outbox.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::channel::Channel;
use crate::template::Rendered;

#[derive(Debug, Clone)]
pub struct Outgoing {
    pub delivery_id: i64,
    pub member_id: String,
    pub channel: Channel,
    pub to: String,
    pub message: Rendered,
    pub unsubscribe_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub provider_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("transient: {reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    #[error("permanent: {reason}")]
    Permanent { reason: String },
    #[error("push token is no longer registered: {token}")]
    Unregistered { token: String },
}

#[derive(Debug, Clone)]
pub struct Channels {
    dir: PathBuf,
}

impl Channels {
    pub fn outbox(dir: PathBuf) -> Channels {
        Channels { dir }
    }

    pub async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| SendError::Transient { reason: e.to_string(), retry_after: None })?;
        let path = self.dir.join(format!("{}.json", msg.delivery_id));
        let body = format!("{:?}", msg.message);
        std::fs::write(path, body).map_err(|e| SendError::Transient { reason: e.to_string(), retry_after: None })?;
        Ok(Receipt { provider_message_id: None })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 8, base_delay: Duration::from_secs(60), max_delay: Duration::from_secs(3600) }
    }
}

pub fn next_attempt(
    attempt: u32,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
    policy: &RetryPolicy,
    _jitter: f64,
) -> Option<DateTime<Utc>> {
    (attempt < policy.max_attempts).then(|| {
        let delay = policy.base_delay.max(retry_after.unwrap_or_default());
        now + chrono::TimeDelta::from_std(delay).unwrap_or_default()
    })
}
