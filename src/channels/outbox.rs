//! The outbox: the channel of any provider not configured, so a fresh checkout runs with no
//! mail server or SMS account. Each message is one file, named after its delivery so a
//! repeated send overwrites instead of duplicating:
//!
//! - `{dir}/email/{delivery_id}.eml` — the MIME message, byte for byte what SMTP would
//!   carry (headers, `multipart/alternative`, List-Unsubscribe), openable in a mail client;
//! - `{dir}/{sms,push,webhook}/{delivery_id}.json` — the delivery, the recipient and the
//!   rendered message as JSON.
//!
//! Files are written to a temporary name and renamed, so a reader never sees half a file.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::json;

use super::email::Composer;
use super::{Outgoing, Prepared, Receipt, SendError, Sender};
use crate::channel::Channel;
use crate::template::Rendered;

#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    composer: Composer,
}

impl Outbox {
    pub fn new(dir: PathBuf, composer: Composer) -> Outbox {
        Outbox { dir, composer }
    }

    /// Where the message of a delivery is written.
    pub fn path(&self, channel: Channel, delivery_id: i64) -> PathBuf {
        let extension = if channel == Channel::Email { "eml" } else { "json" };
        self.dir.join(channel.as_str()).join(format!("{delivery_id}.{extension}"))
    }

    /// The file's contents for `msg`.
    pub fn contents(&self, msg: &Outgoing) -> Result<Vec<u8>, SendError> {
        let head = |channel: &str| json!({ "delivery_id": msg.delivery_id, "member_id": msg.member_id, "channel": channel, "to": msg.to });
        let value = match &msg.message {
            Rendered::Email { .. } => return Ok(self.composer.compose(msg)?.formatted()),
            Rendered::Sms { body } => {
                let mut value = head("sms");
                value["body"] = body.as_str().into();
                value
            }
            Rendered::Push { title, body, deep_link, image } => {
                let mut value = head("push");
                value["title"] = title.as_str().into();
                value["body"] = body.as_str().into();
                value["deep_link"] = deep_link.clone().into();
                value["image"] = image.clone().into();
                value
            }
            Rendered::Webhook { body } => {
                let mut value = head("webhook");
                value["body"] = body.clone();
                value
            }
        };
        let mut bytes = serde_json::to_vec_pretty(&value).map_err(|e| SendError::permanent(e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("outbox paths have a folder");
    tokio::fs::create_dir_all(dir).await?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("message");
    let temporary = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    // A failed write (a full disk) leaves nothing behind: no half a message under its name,
    // and no temporary file taking the space that is left.
    let written = match tokio::fs::write(&temporary, bytes).await {
        Ok(()) => tokio::fs::rename(&temporary, path).await,
        Err(e) => Err(e),
    };
    if written.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    written
}

#[async_trait]
impl Sender for Outbox {
    async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let prepared = self.prepare(msg)?;
        self.send_prepared(msg, prepared).await
    }

    /// The file's contents (for an email, its MIME message).
    fn prepare(&self, msg: &Outgoing) -> Result<Prepared, SendError> {
        let channel = match &msg.message {
            Rendered::Email { .. } => Channel::Email,
            Rendered::Sms { .. } => Channel::Sms,
            Rendered::Push { .. } => Channel::Push,
            Rendered::Webhook { .. } => Channel::Webhook,
        };
        if channel != msg.channel {
            return Err(super::wrong_message(msg));
        }
        Ok(Prepared::Bytes { bytes: self.contents(msg)?, envelope: None, message_id: None })
    }

    async fn send_prepared(&self, msg: &Outgoing, prepared: Prepared) -> Result<Receipt, SendError> {
        let Prepared::Bytes { bytes, .. } = prepared else { return self.send(msg).await };
        let path = self.path(msg.channel, msg.delivery_id);
        write_atomically(&path, &bytes)
            .await
            .map_err(|e| SendError::unavailable(format!("cannot write {}: {e}", path.display()), None))?;
        Ok(Receipt { provider_message_id: Some(path.display().to_string()) })
    }

    fn provider(&self) -> &'static str {
        "outbox"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(dir: &Path) -> Outbox {
        let composer = Composer::new("Tea House <hello@teahouse.example>".parse().unwrap(), None, None);
        Outbox::new(dir.to_path_buf(), composer)
    }

    fn outgoing(channel: Channel, to: &str, message: Rendered) -> Outgoing {
        Outgoing { delivery_id: 7, member_id: "m-7".into(), channel, to: to.into(), message, unsubscribe_url: None }
    }

    #[tokio::test]
    async fn sms_push_and_webhook_are_written_as_json_named_after_the_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = outbox(dir.path());
        let sms = outgoing(Channel::Sms, "+8613800138000", Rendered::Sms { body: "积分即将过期".into() });
        let receipt = outbox.send(&sms).await.unwrap();
        let path = dir.path().join("sms/7.json");
        assert_eq!(receipt.provider_message_id.as_deref(), Some(path.to_str().unwrap()));
        let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            written,
            json!({"delivery_id": 7, "member_id": "m-7", "channel": "sms", "to": "+8613800138000", "body": "积分即将过期"})
        );

        let push = Rendered::Push {
            title: "Hi".into(),
            body: "Gift".into(),
            deep_link: Some("app://gift".into()),
            image: None,
        };
        outbox.send(&outgoing(Channel::Push, "tok", push)).await.unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("push/7.json")).unwrap()).unwrap();
        assert_eq!(written["title"], "Hi");
        assert_eq!(written["deep_link"], "app://gift");
        assert_eq!(written["image"], serde_json::Value::Null);

        let hook = Rendered::Webhook { body: json!({"coupon": "TEN"}) };
        outbox.send(&outgoing(Channel::Webhook, "", hook)).await.unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("webhook/7.json")).unwrap()).unwrap();
        assert_eq!(written["body"], json!({"coupon": "TEN"}));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sms")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files are left behind");
    }

    #[tokio::test]
    async fn email_is_written_as_the_mime_message_smtp_would_carry() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = outbox(dir.path());
        let email = Rendered::Email {
            subject: "Welcome".into(),
            preheader: None,
            from: None,
            reply_to: None,
            html: "<p>Hello</p>".into(),
            text: "Hello".into(),
        };
        let mut msg = outgoing(Channel::Email, "li@example.com", email);
        msg.unsubscribe_url = Some("https://t.example/u/tok".into());
        outbox.send(&msg).await.unwrap();
        let eml = std::fs::read_to_string(dir.path().join("email/7.eml")).unwrap();
        assert!(eml.contains("From: \"Tea House\" <hello@teahouse.example>"), "{eml}");
        assert!(eml.contains("To: li@example.com"));
        assert!(eml.contains("Message-ID: <delivery-7."));
        assert!(eml.contains("List-Unsubscribe: <https://t.example/u/tok>"));
        assert!(eml.contains("multipart/alternative"));
        assert!(eml.contains("<p>Hello</p>"));

        // Sent again (a retry after a crash): the same file, not a second one.
        outbox.send(&msg).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("email")).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_message_for_another_channel_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let msg = outgoing(Channel::Email, "x@example.com", Rendered::Sms { body: "hi".into() });
        assert!(matches!(outbox(dir.path()).send(&msg).await, Err(SendError::Permanent { .. })));
    }
}
