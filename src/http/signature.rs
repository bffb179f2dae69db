//! Webhook signatures, pure: the shops' HMAC headers and Standard Webhooks.
//!
//! - **Shopify** (`X-Shopify-Hmac-Sha256`) and **WooCommerce** (`X-WC-Webhook-Signature`):
//!   base64 of HMAC-SHA256 over the raw body, keyed by the shop's secret as bytes.
//! - **Standard Webhooks** (`webhook-id`, `webhook-timestamp`, `webhook-signature`): the
//!   secret is `whsec_` + base64 key; the signed content is `{id}.{timestamp}.{body}`; the
//!   header lists one or more `v1,<base64>` separated by spaces (key rotation), any one of
//!   which may match; the timestamp must be within five minutes of now, either way.
//!
//! Every comparison is constant-time (`Mac::verify_slice`, `subtle`). `now` is a parameter.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// How far a Standard Webhooks timestamp may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Why a signature was refused (each answers 401 with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing the `{0}` header")]
    Missing(&'static str),
    #[error("the `{0}` header is not valid base64")]
    NotBase64(&'static str),
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the `webhook-timestamp` header is not a Unix time in seconds")]
    BadTimestamp,
    #[error("the `webhook-timestamp` is more than 5 minutes from now (replayed or a skewed clock)")]
    Stale,
    #[error("the server's webhook secret is not set ({0})")]
    NoSecret(&'static str),
    #[error("TIDINGS_WEBHOOK_SECRET must be `whsec_` followed by a base64 key")]
    BadSecret,
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Checks a shop's `base64(HMAC-SHA256(secret, body))` header (`header_name` names it in
/// errors).
pub fn verify_body_hmac(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
    header_name: &'static str,
) -> Result<(), SignatureError> {
    let given = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(SignatureError::Missing(header_name))?;
    let given = STANDARD.decode(given).map_err(|_| SignatureError::NotBase64(header_name))?;
    let mut mac = hmac(secret);
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| SignatureError::Mismatch)
}

/// The signature header value a shop would send (tests and the bench sign with it).
pub fn sign_body_hmac(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac(secret);
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The key of a `whsec_…` secret.
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let key = secret.trim().strip_prefix("whsec_").ok_or(SignatureError::BadSecret)?;
    STANDARD
        .decode(key)
        .map_err(|_| SignatureError::BadSecret)
        .and_then(|k| if k.is_empty() { Err(SignatureError::BadSecret) } else { Ok(k) })
}

/// The three Standard Webhooks headers of a request.
#[derive(Debug, Clone, Copy)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks a Standard Webhooks signature at `now`; `key` is from [`standard_webhooks_key`].
pub fn verify_standard(
    key: &[u8],
    headers: StandardHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let id = headers.id.filter(|v| !v.is_empty()).ok_or(SignatureError::Missing("webhook-id"))?;
    let timestamp = headers.timestamp.ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signatures = headers.signature.ok_or(SignatureError::Missing("webhook-signature"))?;
    let seconds: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now.timestamp() - seconds).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    let mut mac = hmac(key);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let mut any_v1 = false;
    for candidate in signatures.split_ascii_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else { continue };
        any_v1 = true;
        let Ok(given) = STANDARD.decode(encoded) else { continue };
        // Constant-time in the bytes (a length mismatch is not a secret).
        if bool::from(expected[..].ct_eq(&given)) {
            return Ok(());
        }
    }
    if any_v1 { Err(SignatureError::Mismatch) } else { Err(SignatureError::Missing("webhook-signature (v1,…)")) }
}

/// The `webhook-signature` header value for a message (tests, the bench, and senders).
pub fn sign_standard(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac(key);
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shop_signature_over_the_raw_body_verifies_and_any_change_is_refused() {
        let body = br#"{"id":1,"email":"a@example.com"}"#;
        let header = sign_body_hmac(b"shop-secret", body);
        assert_eq!(verify_body_hmac(b"shop-secret", body, Some(&header), "X"), Ok(()));
        assert_eq!(verify_body_hmac(b"other-secret", body, Some(&header), "X"), Err(SignatureError::Mismatch));
        assert_eq!(
            verify_body_hmac(b"shop-secret", br#"{"id":2,"email":"a@example.com"}"#, Some(&header), "X"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_body_hmac(b"shop-secret", body, None, "X"), Err(SignatureError::Missing("X")));
        assert_eq!(verify_body_hmac(b"shop-secret", body, Some("%%%"), "X"), Err(SignatureError::NotBase64("X")));
        assert_eq!(verify_body_hmac(b"shop-secret", body, Some("AAAA"), "X"), Err(SignatureError::Mismatch));
    }

    // The example of the Standard Webhooks specification's reference implementations.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_now() -> DateTime<Utc> {
        DateTime::from_timestamp(SPEC_TIMESTAMP + 10, 0).unwrap()
    }

    #[test]
    fn the_specifications_example_verifies() {
        let key = standard_webhooks_key(SPEC_SECRET).unwrap();
        assert_eq!(sign_standard(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
        let ts = SPEC_TIMESTAMP.to_string();
        let headers = StandardHeaders { id: Some(SPEC_ID), timestamp: Some(&ts), signature: Some(SPEC_SIGNATURE) };
        assert_eq!(verify_standard(&key, headers, SPEC_BODY, spec_now()), Ok(()));
    }

    #[test]
    fn any_of_several_signatures_may_match_and_other_versions_are_ignored() {
        let key = standard_webhooks_key(SPEC_SECRET).unwrap();
        let ts = SPEC_TIMESTAMP.to_string();
        let several = format!("v1,AAAA v1a,whatever {SPEC_SIGNATURE}");
        let headers = StandardHeaders { id: Some(SPEC_ID), timestamp: Some(&ts), signature: Some(&several) };
        assert_eq!(verify_standard(&key, headers, SPEC_BODY, spec_now()), Ok(()));
        let only_other = "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let headers = StandardHeaders { signature: Some(only_other), ..headers };
        assert!(matches!(verify_standard(&key, headers, SPEC_BODY, spec_now()), Err(SignatureError::Missing(_))));
    }

    #[test]
    fn a_standard_signature_is_refused_when_anything_signed_changes_or_the_timestamp_is_stale() {
        let key = standard_webhooks_key(SPEC_SECRET).unwrap();
        let ts = SPEC_TIMESTAMP.to_string();
        let good = StandardHeaders { id: Some(SPEC_ID), timestamp: Some(&ts), signature: Some(SPEC_SIGNATURE) };
        let check = |h: StandardHeaders<'_>, body: &[u8], now| verify_standard(&key, h, body, now);
        assert_eq!(check(good, br#"{"test": 2432232315}"#, spec_now()), Err(SignatureError::Mismatch));
        assert_eq!(
            check(StandardHeaders { id: Some("msg_other"), ..good }, SPEC_BODY, spec_now()),
            Err(SignatureError::Mismatch)
        );
        let later = (SPEC_TIMESTAMP + 1).to_string();
        let now = spec_now();
        assert_eq!(
            check(StandardHeaders { timestamp: Some(&later), ..good }, SPEC_BODY, now),
            Err(SignatureError::Mismatch)
        );
        let at = |s: i64| DateTime::from_timestamp(SPEC_TIMESTAMP + s, 0).unwrap();
        assert_eq!(check(good, SPEC_BODY, at(300)), Ok(()));
        assert_eq!(check(good, SPEC_BODY, at(-300)), Ok(()));
        assert_eq!(check(good, SPEC_BODY, at(301)), Err(SignatureError::Stale));
        assert_eq!(check(good, SPEC_BODY, at(-301)), Err(SignatureError::Stale), "from the future");
        assert_eq!(
            check(StandardHeaders { timestamp: Some("soon"), ..good }, SPEC_BODY, now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            check(StandardHeaders { id: None, ..good }, SPEC_BODY, now),
            Err(SignatureError::Missing("webhook-id"))
        );
        let other = standard_webhooks_key("whsec_c2Vjb25kIGtleQ==").unwrap();
        assert_eq!(verify_standard(&other, good, SPEC_BODY, now), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_webhook_secret_must_be_whsec_and_base64() {
        assert_eq!(standard_webhooks_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SignatureError::BadSecret));
        assert_eq!(standard_webhooks_key("whsec_!!!"), Err(SignatureError::BadSecret));
        assert_eq!(standard_webhooks_key("whsec_"), Err(SignatureError::BadSecret));
    }
}
