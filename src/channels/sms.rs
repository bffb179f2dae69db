//! SMS through a Twilio-compatible API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`
//! with a form (`To`, `From` or `MessagingServiceSid`, `Body`) and HTTP basic auth
//! (account sid, auth token). The base URL is configurable, for Twilio-compatible providers
//! and for tests.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::rate::RateLimit;
use super::{ChannelConfigError, Outgoing, Receipt, SendError, Sender, http, wrong_message};
use crate::template::Rendered;

/// Who the message is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// A sending number in E.164.
    Number(String),
    /// A messaging service, which picks the number (`MS…`).
    MessagingService(String),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://api.twilio.com`, without a trailing path.
    pub base_url: String,
    pub account_sid: String,
    /// `TIDINGS_SMS_AUTH_TOKEN`.
    pub auth_token: String,
    pub from: From,
    pub timeout: Duration,
    /// 0 = no limit.
    pub messages_per_second: u32,
}

pub struct SmsSender {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: String,
    from: From,
    rate: RateLimit,
}

/// Twilio's success and error bodies (the parts we use).
#[derive(Deserialize)]
struct Answer {
    sid: Option<String>,
    code: Option<i64>,
    message: Option<String>,
}

impl SmsSender {
    pub fn new(settings: Settings) -> Result<SmsSender, ChannelConfigError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            settings.base_url.trim_end_matches('/'),
            settings.account_sid
        );
        Ok(SmsSender {
            client: http::client(settings.timeout)?,
            url,
            account_sid: settings.account_sid,
            auth_token: settings.auth_token,
            from: settings.from,
            rate: RateLimit::per_second(settings.messages_per_second),
        })
    }
}

/// `+` and 8 to 15 digits (E.164 allows at most 15).
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

#[async_trait]
impl Sender for SmsSender {
    async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let Rendered::Sms { body } = &msg.message else {
            return Err(wrong_message(msg));
        };
        if !is_e164(&msg.to) {
            return Err(SendError::permanent(format!("`{}` is not an E.164 phone number", msg.to)));
        }
        let from = match &self.from {
            From::Number(number) => ("From", number.as_str()),
            From::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let form = [("To", msg.to.as_str()), from, ("Body", body.as_str())];

        self.rate.wait().await;
        let response = self
            .client
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| http::unanswered("sms", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| http::unanswered("sms", e))?;
        let answer: Option<Answer> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return Ok(Receipt { provider_message_id: answer.and_then(|a| a.sid) });
        }
        let detail = match answer {
            Some(Answer { code: Some(code), message, .. }) => {
                format!("error {code}: {}", message.unwrap_or_default())
            }
            _ => text,
        };
        Err(http::classify("sms provider", status, &headers, &detail))
    }

    fn provider(&self) -> &'static str {
        "twilio"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_must_be_e164() {
        assert!(is_e164("+8613800138000"));
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("13800138000"));
        assert!(!is_e164("+86 138 0013 8000"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164(""));
    }
}
