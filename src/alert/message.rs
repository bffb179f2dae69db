//! What an alert says, pure: the numbers in words, the Slack-compatible `text`, the JSON
//! body of the webhook and the email. Built from a stored transition ([`Notice`]), so a
//! notification says what the numbers were when the alert changed, even if the rule has
//! changed since.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rule::{Kind, Scope};
use super::state::{Measured, Status};
use crate::duration::Duration;

/// One stored transition, as notifications and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// The transition's id: the webhook's `webhook-id` is `alert-{id}`.
    pub id: i64,
    pub rule: String,
    pub kind: Kind,
    pub from: Status,
    pub status: Status,
    pub at: DateTime<Utc>,
    /// The rule's value (a fraction for rates and drops, seconds for lag, sends); `None`
    /// when the window held too little to judge.
    pub value: Option<f64>,
    pub threshold: f64,
    pub measured: Measured,
    /// Seconds.
    pub window: i64,
    pub baseline: i64,
    pub scope: Scope,
}

/// The numbers behind a value, in words.
pub fn numbers(kind: Kind, m: &Measured, window: i64, baseline: i64) -> String {
    let (w, b) = (Duration::from_secs(window), Duration::from_secs(baseline));
    let rate = |n: i64, d: i64| if d > 0 { kind.format_value(n as f64 / d as f64) } else { "n/a".into() };
    match kind {
        Kind::DeliveryFailureRate => {
            format!("{} of {} attempts failed in {w} ({})", m.count, m.sample, rate(m.count, m.sample))
        }
        Kind::BounceOrComplaintRate => {
            format!("{} bounces or complaints per {} attempts in {w} ({})", m.count, m.sample, rate(m.count, m.sample))
        }
        Kind::UnsubscribeRate => {
            format!("{} unsubscribes per {} sends in {w} ({})", m.count, m.sample, rate(m.count, m.sample))
        }
        Kind::ConversionDrop => {
            let pct =
                |n: i64, d: i64| Kind::UnsubscribeRate.format_value(if d > 0 { n as f64 / d as f64 } else { 0.0 });
            format!(
                "{} of {} entries converted in {w} ({}) against {} of {} in the {b} before ({})",
                m.count,
                m.sample,
                pct(m.count, m.sample),
                m.baseline_count,
                m.baseline_sample,
                pct(m.baseline_count, m.baseline_sample)
            )
        }
        Kind::QueueLag => format!("the oldest due work has waited {}", kind.format_value(m.count as f64)),
        Kind::NoSends => format!("{} sends in {w}, {} in the {b} before", m.count, m.baseline_count),
    }
}

impl Notice {
    /// `FIRING email_failures: 12.5% (12 of 96 attempts failed in 15m), threshold 5% · journey winback`
    pub fn text(&self, public_url: Option<&str>) -> String {
        let head = match self.status {
            Status::Firing => "FIRING",
            Status::Resolved => "RESOLVED",
            Status::Pending => "PENDING",
            Status::Ok => "OK",
        };
        let value = self.value.map_or_else(|| "no reading".to_string(), |v| self.kind.format_value(v));
        let mut text = format!(
            "[{head}] {} ({}): {value} — {}; threshold {} · {}",
            self.rule,
            self.kind,
            numbers(self.kind, &self.measured, self.window, self.baseline),
            self.kind.format_value(self.threshold),
            self.scope.describe()
        );
        if let (Some(url), Some(journey)) = (public_url, &self.scope.journey) {
            text.push_str(&format!(" · {}", journey_url(url, journey)));
        }
        text
    }

    /// The webhook's JSON: Slack reads `text`; programs read `alert`.
    pub fn body(&self, public_url: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "text": self.text(public_url),
            "alert": {
                "transition_id": self.id,
                "rule": self.rule,
                "kind": self.kind,
                "status": self.status,
                "from": self.from,
                "at": self.at,
                "value": self.value,
                "threshold": self.threshold,
                "numbers": self.measured,
                "window_seconds": self.window,
                "baseline_seconds": self.baseline,
                "scope": self.scope,
                "journey_url": public_url.zip(self.scope.journey.as_deref()).map(|(u, j)| journey_url(u, j)),
            }
        })
    }

    /// The email's subject and plain-text body.
    pub fn email(&self, public_url: Option<&str>) -> (String, String) {
        let subject = format!("[tidings] {} {}", self.status.as_str().to_uppercase(), self.rule);
        let body = format!(
            "{}\n\nRule: {} ({})\nStatus: {} (was {}) at {}\nScope: {}\n",
            self.text(public_url),
            self.rule,
            self.kind,
            self.status.as_str(),
            self.from.as_str(),
            self.at.to_rfc3339(),
            self.scope.describe()
        );
        (subject, body)
    }
}

/// The dashboard page of a journey.
pub fn journey_url(public_url: &str, journey: &str) -> String {
    let id = percent_encoding::utf8_percent_encode(journey, percent_encoding::NON_ALPHANUMERIC);
    format!("{}/dashboard/journeys/{id}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channel;

    #[test]
    fn the_text_gives_the_value_the_numbers_the_threshold_and_the_journey() {
        let notice = Notice {
            id: 7,
            rule: "email_failures".into(),
            kind: Kind::DeliveryFailureRate,
            from: Status::Pending,
            status: Status::Firing,
            at: "2026-03-02T10:05:00Z".parse().unwrap(),
            value: Some(0.125),
            threshold: 0.05,
            measured: Measured { count: 12, sample: 96, ..Measured::default() },
            window: 900,
            baseline: 0,
            scope: Scope { journey: Some("winback".into()), channel: Some(Channel::Email), ..Scope::default() },
        };
        assert_eq!(
            notice.text(Some("https://tidings.example/")),
            "[FIRING] email_failures (delivery_failure_rate): 12.5% — 12 of 96 attempts failed in 15m (12.5%); \
             threshold 5% · journey winback · email · https://tidings.example/dashboard/journeys/winback"
        );
        let body = notice.body(None);
        assert_eq!(body["alert"]["status"], "firing");
        assert_eq!(body["alert"]["numbers"]["sample"], 96);
        assert_eq!(notice.email(None).0, "[tidings] FIRING email_failures");
    }
}
