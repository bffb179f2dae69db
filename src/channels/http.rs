//! What the HTTP providers (SMS, push, webhook) share: one way to build a client and one
//! classification of answers, so a 429 means the same thing everywhere.
//!
//! | answer | class |
//! |---|---|
//! | timeout, connection refused or reset | transient, the provider's (it is paused) |
//! | 429, 5xx | transient, the provider's, paused for `Retry-After` when given |
//! | 408, 425 | transient, this message's |
//! | 401, 403, 404 | transient, the provider's: our credentials or URL are wrong, not the recipient |
//! | any other 4xx | permanent |

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{ChannelConfigError, SendError};

/// A client with a total timeout per request (connect, send, answer).
pub fn client(timeout: Duration) -> Result<reqwest::Client, ChannelConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ChannelConfigError::Invalid { key: "http client".into(), message: e.to_string() })
}

/// A request that got no answer: always worth another try.
pub fn unanswered(provider: &str, error: reqwest::Error) -> SendError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // Without the URL: it may carry an account id, and the config names it anyway.
    SendError::unavailable(format!("{provider} request {what}: {}", error.without_url()), None)
}

/// `Retry-After` as seconds or an HTTP date (relative to `now`).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Classifies an answer that is not a success (see the module table).
pub fn classify(provider: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> SendError {
    let reason = format!("{provider} answered {status}: {}", excerpt(body));
    match status.as_u16() {
        // The provider throttles or fails: every message to it waits (its `Retry-After`
        // pauses the provider for every worker).
        429 | 500..=599 => SendError::unavailable(reason, retry_after(headers, Utc::now())),
        408 | 425 => {
            SendError::Transient { reason, retry_after: retry_after(headers, Utc::now()), scope: super::Scope::Message }
        }
        // Our credentials or URL are wrong: no message to this provider can go.
        401 | 403 | 404 => SendError::unavailable(format!("{reason} (check the channel's credentials and URL)"), None),
        _ => SendError::Permanent { reason },
    }
}

/// The start of a body, on one line, for a reason.
pub fn excerpt(body: &str) -> String {
    const MAX: usize = 300;
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: DateTime<Utc> = "2025-05-01T08:00:00Z".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Thu, 01 May 2025 08:01:30 GMT"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Thu, 01 May 2025 07:00:00 GMT"));
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn answers_are_classified_by_status() {
        let h = HeaderMap::new();
        let class = |code: u16| match classify("x", StatusCode::from_u16(code).unwrap(), &h, "") {
            SendError::Transient { .. } => "transient",
            SendError::Permanent { .. } => "permanent",
            SendError::Unregistered { .. } => "unregistered",
        };
        for code in [408, 425, 429, 500, 502, 503, 504, 401, 403, 404] {
            assert_eq!(class(code), "transient", "{code}");
        }
        for code in [400, 405, 410, 413, 422] {
            assert_eq!(class(code), "permanent", "{code}");
        }
    }

    #[test]
    fn reasons_are_one_short_line() {
        assert_eq!(excerpt("a\n  b\tc"), "a b c");
        assert_eq!(excerpt(&"é".repeat(400)).chars().count(), 301);
    }
}
