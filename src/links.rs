//! Signed links in messages: one-click unsubscribe (`/u/{token}`), the open pixel
//! (`/o/{token}`) and tracked clicks (`/c/{token}`), all under `TIDINGS_PUBLIC_URL`.
//!
//! A token is `{payload}.{signature}`, both base64url without padding: the payload is the
//! JSON array `[kind, delivery id, member id, channel, target URL or null]`, the signature
//! HMAC-SHA256 of `tidings-link-v1.{payload}` keyed by `TIDINGS_LINK_SECRET`. Changing any
//! byte of a token breaks the signature, and verification compares in constant time. A
//! click token carries its target, so the redirect can never be pointed elsewhere (no open
//! redirect). Tokens do not expire: an unsubscribe link must work for as long as the mail
//! sits in an inbox.
//!
//! The HTTP routes that read these tokens live with the server; this module only makes and
//! checks them.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::channel::Channel;
use crate::template::LinkTracker;

/// What a link does when followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Unsubscribe,
    Open,
    Click,
}

impl LinkKind {
    /// The code in the token, and the path segment of the URL.
    pub fn code(self) -> &'static str {
        match self {
            LinkKind::Unsubscribe => "u",
            LinkKind::Open => "o",
            LinkKind::Click => "c",
        }
    }

    fn parse(code: &str) -> Option<LinkKind> {
        [LinkKind::Unsubscribe, LinkKind::Open, LinkKind::Click].into_iter().find(|k| k.code() == code)
    }
}

/// What a token says, once its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub kind: LinkKind,
    pub delivery_id: i64,
    pub member_id: String,
    pub channel: Channel,
    /// The target of a click; `None` for the other kinds.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link token is malformed")]
    Malformed,
    #[error("the link token's signature does not match")]
    BadSignature,
    #[error("TIDINGS_LINK_SECRET must be at least 16 bytes")]
    WeakSecret,
}

const CONTEXT: &[u8] = b"tidings-link-v1.";

fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(CONTEXT);
    mac.update(payload.as_bytes());
    mac
}

/// The token for `claims`.
pub fn sign(secret: &[u8], claims: &LinkClaims) -> String {
    let payload =
        json!([claims.kind.code(), claims.delivery_id, claims.member_id, claims.channel.as_str(), claims.url]);
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// The claims of a token signed with `secret`; any change to it is [`LinkError`].
pub fn verify(secret: &[u8], token: &str) -> Result<LinkClaims, LinkError> {
    let (payload, signature) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| LinkError::Malformed)?;
    mac(secret, payload).verify_slice(&signature).map_err(|_| LinkError::BadSignature)?;
    // Signed by us: what follows fails only if a secret was shared with another format.
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed)?;
    let Ok(Value::Array(fields)) = serde_json::from_slice::<Value>(&payload) else {
        return Err(LinkError::Malformed);
    };
    let [kind, delivery_id, member_id, channel, url] = fields.as_slice() else {
        return Err(LinkError::Malformed);
    };
    let kind = kind.as_str().and_then(LinkKind::parse).ok_or(LinkError::Malformed)?;
    let url = match url {
        Value::Null => None,
        Value::String(url) => Some(url.clone()),
        _ => return Err(LinkError::Malformed),
    };
    if (kind == LinkKind::Click) != url.is_some() {
        return Err(LinkError::Malformed);
    }
    Ok(LinkClaims {
        kind,
        delivery_id: delivery_id.as_i64().ok_or(LinkError::Malformed)?,
        member_id: member_id.as_str().ok_or(LinkError::Malformed)?.to_string(),
        channel: channel.as_str().and_then(Channel::parse).ok_or(LinkError::Malformed)?,
        url,
    })
}

/// Makes the links of every delivery: the public base URL and the secret.
#[derive(Clone)]
pub struct LinkSigner {
    public_url: Arc<str>,
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner").field("public_url", &self.public_url).finish_non_exhaustive()
    }
}

impl LinkSigner {
    /// `public_url` is `TIDINGS_PUBLIC_URL` (a trailing `/` is dropped); `secret` is
    /// `TIDINGS_LINK_SECRET`, at least 16 bytes.
    pub fn new(public_url: &str, secret: &[u8]) -> Result<LinkSigner, LinkError> {
        if secret.len() < 16 {
            return Err(LinkError::WeakSecret);
        }
        Ok(LinkSigner { public_url: public_url.trim_end_matches('/').into(), secret: secret.into() })
    }

    /// The links of one delivery; also the [`LinkTracker`] to render its message with.
    pub fn for_delivery(&self, delivery_id: i64, member_id: &str, channel: Channel) -> DeliveryLinks {
        DeliveryLinks { signer: self.clone(), delivery_id, member_id: member_id.to_string(), channel }
    }

    /// The signer `serve` and `worker` use: `TIDINGS_LINK_SECRET` from `env`. Without it,
    /// a random secret for this process, with a warning: links work until the process
    /// restarts, and a second process (a `worker`) cannot check the first one's links.
    /// That keeps a fresh clone running; production sets the variable.
    pub fn from_env(public_url: &str, env: impl Fn(&str) -> Option<String>) -> Result<LinkSigner, LinkError> {
        match env(SECRET_VAR).filter(|s| !s.is_empty()) {
            Some(secret) => LinkSigner::new(public_url, secret.as_bytes()),
            None => {
                tracing::warn!(
                    "{SECRET_VAR} is not set: signing links with a random secret that dies with this process; \
                     set it (32+ random bytes) so unsubscribe and tracking links keep working"
                );
                LinkSigner::new(public_url, &rand::random::<[u8; 32]>())
            }
        }
    }

    pub fn verify(&self, token: &str) -> Result<LinkClaims, LinkError> {
        verify(&self.secret, token)
    }
}

/// The environment variable that holds the link secret (DESIGN §5).
pub const SECRET_VAR: &str = "TIDINGS_LINK_SECRET";

/// The signed links of one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryLinks {
    signer: LinkSigner,
    delivery_id: i64,
    member_id: String,
    channel: Channel,
}

impl DeliveryLinks {
    fn url(&self, kind: LinkKind, target: Option<&str>) -> String {
        let claims = LinkClaims {
            kind,
            delivery_id: self.delivery_id,
            member_id: self.member_id.clone(),
            channel: self.channel,
            url: target.map(str::to_string),
        };
        format!("{}/{}/{}", self.signer.public_url, kind.code(), sign(&self.signer.secret, &claims))
    }

    /// `{public_url}/u/{token}`: `links.unsubscribe` in templates, and `List-Unsubscribe`.
    pub fn unsubscribe_url(&self) -> String {
        self.url(LinkKind::Unsubscribe, None)
    }

    /// `{public_url}/o/{token}`: the open pixel's source.
    pub fn open_url(&self) -> String {
        self.url(LinkKind::Open, None)
    }

    /// `{public_url}/c/{token}`: redirects to `target` after recording the click.
    pub fn click_url(&self, target: &str) -> String {
        self.url(LinkKind::Click, Some(target))
    }
}

impl LinkTracker for DeliveryLinks {
    /// http(s) links become click redirects; `mailto:` links stay as they are.
    fn track(&self, url: &str) -> String {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            self.click_url(url)
        } else {
            url.to_string()
        }
    }

    fn open_pixel(&self) -> Option<String> {
        Some(format!(
            r#"<img src="{}" width="1" height="1" alt="" style="display:block; width:1px; height:1px; border:0;">"#,
            self.open_url()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn click() -> LinkClaims {
        LinkClaims {
            kind: LinkKind::Click,
            delivery_id: 9_007_199_254_740_993,
            member_id: "cust|42 \"李\"".into(),
            channel: Channel::Email,
            url: Some("https://teahouse.example/offer?x=1&y=2#top".into()),
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let token = sign(SECRET, &click());
        assert_eq!(verify(SECRET, &token), Ok(click()));
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe: {token}");
        for kind in [LinkKind::Unsubscribe, LinkKind::Open] {
            let claims = LinkClaims { kind, url: None, channel: Channel::Sms, ..click() };
            assert_eq!(verify(SECRET, &sign(SECRET, &claims)), Ok(claims));
        }
    }

    #[test]
    fn any_change_to_a_token_is_rejected() {
        let token = sign(SECRET, &click());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != token {
                assert!(verify(SECRET, &tampered).is_err(), "changed byte {i}: {tampered}");
            }
        }
        assert_eq!(verify(b"another secret of sixteen+ bytes", &token), Err(LinkError::BadSignature));
        assert_eq!(verify(SECRET, "no-dot"), Err(LinkError::Malformed));
        assert_eq!(verify(SECRET, ""), Err(LinkError::Malformed));
        assert!(verify(SECRET, &token[..token.len() - 1]).is_err());
    }

    #[test]
    fn a_click_token_cannot_be_pointed_at_another_url() {
        let token = sign(SECRET, &click());
        let (_, signature) = token.split_once('.').unwrap();
        let other = LinkClaims { url: Some("https://evil.example/".into()), ..click() };
        let (payload, _) = sign(SECRET, &other).split_once('.').map(|(p, s)| (p.to_string(), s.to_string())).unwrap();
        assert_eq!(verify(SECRET, &format!("{payload}.{signature}")), Err(LinkError::BadSignature));
    }

    #[test]
    fn delivery_links_live_under_the_public_url() {
        let signer = LinkSigner::new("https://t.example/", SECRET).unwrap();
        let links = signer.for_delivery(5, "m-5", Channel::Email);
        let unsubscribe = links.unsubscribe_url();
        let token = unsubscribe.strip_prefix("https://t.example/u/").expect(&unsubscribe);
        let claims = signer.verify(token).unwrap();
        assert_eq!((claims.kind, claims.delivery_id, claims.member_id.as_str()), (LinkKind::Unsubscribe, 5, "m-5"));

        let tracked = links.track("https://teahouse.example/a");
        let token = tracked.strip_prefix("https://t.example/c/").expect(&tracked);
        assert_eq!(signer.verify(token).unwrap().url.as_deref(), Some("https://teahouse.example/a"));
        assert_eq!(links.track("mailto:help@teahouse.example"), "mailto:help@teahouse.example");

        let pixel = links.open_pixel().unwrap();
        assert!(pixel.starts_with(r#"<img src="https://t.example/o/"#), "{pixel}");
        assert!(LinkSigner::new("https://t.example", b"short").is_err());
    }
}
