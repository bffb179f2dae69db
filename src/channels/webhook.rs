//! Webhook steps: POST the rendered JSON body to the configured URL, signed the Standard
//! Webhooks way: `webhook-id` (the delivery, so the receiver can drop repeats),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, keyed by `TIDINGS_WEBHOOK_SIGNING_SECRET` (`whsec_…`).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::rate::RateLimit;
use super::{ChannelConfigError, Outgoing, Receipt, SendError, Sender, http, wrong_message};
use crate::template::Rendered;

/// The key of a `whsec_<base64>` secret.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

impl SigningSecret {
    /// `whsec_` followed by base64 (the prefix is optional), at least 16 bytes of key.
    pub fn parse(text: &str) -> Result<SigningSecret, String> {
        let encoded = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = STANDARD.decode(encoded).map_err(|_| "not `whsec_` followed by base64".to_string())?;
        if key.len() < 16 {
            return Err(format!("the key is {} bytes; use at least 16 (24 to 64 is usual)", key.len()));
        }
        Ok(SigningSecret(key))
    }

    /// `v1,<signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub secret: SigningSecret,
    pub timeout: Duration,
    pub messages_per_second: u32,
}

pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    secret: SigningSecret,
    rate: RateLimit,
}

impl WebhookSender {
    pub fn new(settings: Settings) -> Result<WebhookSender, ChannelConfigError> {
        Ok(WebhookSender {
            client: http::client(settings.timeout)?,
            url: settings.url,
            secret: settings.secret,
            rate: RateLimit::per_second(settings.messages_per_second),
        })
    }
}

/// The `webhook-id` of a delivery: the same on every attempt.
pub fn webhook_id(delivery_id: i64) -> String {
    format!("delivery-{delivery_id}")
}

#[async_trait]
impl Sender for WebhookSender {
    async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let Rendered::Webhook { body } = &msg.message else {
            return Err(wrong_message(msg));
        };
        let body = serde_json::to_vec(body).map_err(|e| SendError::permanent(e.to_string()))?;
        let id = webhook_id(msg.delivery_id);

        self.rate.wait().await;
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self.secret.sign(&id, timestamp, &body);
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| http::unanswered("webhook", e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Receipt { provider_message_id: None });
        }
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Err(http::classify("webhook receiver", status, &headers, &text))
    }

    fn provider(&self) -> &'static str {
        "webhook"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_must_be_base64_keys_of_some_length() {
        assert!(SigningSecret::parse("whsec_not base64!").is_err());
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    }
}
