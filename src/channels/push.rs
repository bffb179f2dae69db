//! Push through FCM HTTP v1: `POST {base}/v1/projects/{project}/messages:send` with a bearer
//! token and `{"message": {"token", "notification": {"title", "body", "image"}, "data"}}`.
//! An `UNREGISTERED` answer becomes [`SendError::Unregistered`]: the caller removes that
//! token from the member.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::rate::RateLimit;
use super::{ChannelConfigError, Outgoing, Receipt, SendError, Sender, http, wrong_message};
use crate::template::Rendered;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://fcm.googleapis.com`.
    pub base_url: String,
    pub project_id: String,
    /// `TIDINGS_FCM_TOKEN`: an OAuth 2 access token for the project.
    pub access_token: String,
    pub timeout: Duration,
    pub messages_per_second: u32,
}

pub struct PushSender {
    client: reqwest::Client,
    url: String,
    access_token: String,
    rate: RateLimit,
}

/// FCM's error body: `{"error": {"code", "message", "status", "details": [{"errorCode"}]}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: FcmError,
}

#[derive(Deserialize)]
struct FcmError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

#[derive(Deserialize)]
struct Accepted {
    name: Option<String>,
}

impl PushSender {
    pub fn new(settings: Settings) -> Result<PushSender, ChannelConfigError> {
        let url =
            format!("{}/v1/projects/{}/messages:send", settings.base_url.trim_end_matches('/'), settings.project_id);
        Ok(PushSender {
            client: http::client(settings.timeout)?,
            url,
            access_token: settings.access_token,
            rate: RateLimit::per_second(settings.messages_per_second),
        })
    }
}

/// The request body for one message.
pub fn request_body(
    msg: &Outgoing,
    title: &str,
    body: &str,
    deep_link: Option<&str>,
    image: Option<&str>,
) -> serde_json::Value {
    let mut notification = json!({ "title": title, "body": body });
    if let Some(image) = image {
        notification["image"] = image.into();
    }
    // FCM's `data` is a map of strings.
    let mut data = BTreeMap::new();
    data.insert("delivery_id", msg.delivery_id.to_string());
    if let Some(link) = deep_link {
        data.insert("deep_link", link.to_string());
    }
    json!({ "message": { "token": msg.to, "notification": notification, "data": data } })
}

#[async_trait]
impl Sender for PushSender {
    async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let Rendered::Push { title, body, deep_link, image } = &msg.message else {
            return Err(wrong_message(msg));
        };
        if msg.to.trim().is_empty() {
            return Err(SendError::permanent("the member has no push token"));
        }
        let payload = request_body(msg, title, body, deep_link.as_deref(), image.as_deref());

        self.rate.wait().await;
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.access_token)
            .json(&payload)
            .send()
            .await
            .map_err(|e| http::unanswered("push", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| http::unanswered("push", e))?;
        if status.is_success() {
            let name = serde_json::from_str::<Accepted>(&text).ok().and_then(|a| a.name);
            return Ok(Receipt { provider_message_id: name });
        }
        let Ok(ErrorAnswer { error }) = serde_json::from_str::<ErrorAnswer>(&text) else {
            return Err(http::classify("fcm", status, &headers, &text));
        };
        let codes: Vec<&str> = error.details.iter().filter_map(|d| d.error_code.as_deref()).collect();
        if codes.contains(&"UNREGISTERED") {
            return Err(SendError::Unregistered { token: msg.to.clone() });
        }
        let code = codes.first().copied().unwrap_or(error.status.as_str());
        Err(http::classify("fcm", status, &headers, &format!("{code}: {}", error.message)))
    }

    fn provider(&self) -> &'static str {
        "fcm"
    }
}
