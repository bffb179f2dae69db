//! Frequency caps (`policies.frequency_caps`): at most `count` sends per channel to one
//! member in any rolling `window`, across all journeys.

use std::fmt;

use chrono::{DateTime, Utc};

use super::TimingError;
use crate::duration::Duration;

/// `3 per 7d`: at most `count` sends in any rolling `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub count: u32,
    pub window: Duration,
}

impl FrequencyCap {
    /// Parses `<n> per <duration>`, strictly: `3 per 7d`, `1 per 24h`, `2 per 1w`.
    pub fn parse(text: &str) -> Result<FrequencyCap, TimingError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [count, "per", window] = words[..] else {
            return Err(TimingError::NotACap { text: text.to_string() });
        };
        let count = match count.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => return Err(TimingError::CapCount { text: text.to_string(), count: count.to_string() }),
        };
        if let Some(short) = spelled_out(window) {
            return Err(TimingError::CapWindowSpelledOut {
                text: text.to_string(),
                short: format!("{count} per {short}"),
            });
        }
        let window =
            Duration::parse(window).map_err(|source| TimingError::CapWindow { text: text.to_string(), source })?;
        if window.as_secs() <= 0 {
            return Err(TimingError::CapWindowNotPositive { text: text.to_string() });
        }
        Ok(FrequencyCap { count, window })
    }

    /// The start of the window that ends at `now`: sends after it count against the cap.
    pub fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.window.to_chrono()).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Whether one more send is allowed, given how many were sent in the window.
    pub fn allows(&self, sent_in_window: u32) -> bool {
        sent_in_window < self.count
    }
}

/// `week` → `1w`: the duration a marketer meant by a unit written as a word.
fn spelled_out(window: &str) -> Option<&'static str> {
    Some(match window.to_ascii_lowercase().as_str() {
        "week" | "weeks" => "1w",
        "day" | "days" => "1d",
        "hour" | "hours" => "1h",
        "month" | "months" => "30d",
        _ => return None,
    })
}

impl fmt::Display for FrequencyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {}", self.count, self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_count_per_duration() {
        assert_eq!(FrequencyCap::parse("3 per 7d").unwrap(), FrequencyCap { count: 3, window: Duration::from_days(7) });
        assert_eq!(FrequencyCap::parse("1 per 24h").unwrap().window.as_secs(), 86_400);
        assert_eq!(
            FrequencyCap::parse("  2  per 1w ").unwrap(),
            FrequencyCap { count: 2, window: Duration::from_days(7) }
        );
        assert_eq!(FrequencyCap::parse("5 per 1d12h").unwrap().to_string(), "5 per 1d12h");
        assert_eq!(FrequencyCap::parse("3 per 7d").unwrap().to_string(), "3 per 7d");
    }

    #[test]
    fn rejects_what_is_not_a_cap_with_a_hint() {
        let err = |text: &str| FrequencyCap::parse(text).unwrap_err();
        assert_eq!(err("three a week"), TimingError::NotACap { text: "three a week".into() });
        assert_eq!(err("3 per week").to_string(), "write `3 per 1w`, not `3 per week`");
        assert_eq!(
            err("1 per Day"),
            TimingError::CapWindowSpelledOut { text: "1 per Day".into(), short: "1 per 1d".into() }
        );
        assert!(err("3 per 7 days").to_string().contains("3 per 7 days"));
        assert_eq!(
            err("3 per fortnight").to_string(),
            "the window of `3 per fortnight` is not a duration: unknown unit `f` in `fortnight`"
        );
        assert_eq!(err("3/7d"), TimingError::NotACap { text: "3/7d".into() });
        assert_eq!(err("3 per"), TimingError::NotACap { text: "3 per".into() });
        assert_eq!(err(""), TimingError::NotACap { text: "".into() });
        assert_eq!(err("3 PER 7d"), TimingError::NotACap { text: "3 PER 7d".into() });
        assert_eq!(err("0 per 7d"), TimingError::CapCount { text: "0 per 7d".into(), count: "0".into() });
        assert_eq!(err("-1 per 7d").to_string(), "`-1` in `-1 per 7d` is not a number of sends of at least 1");
        assert_eq!(err("3 per -7d"), TimingError::CapWindowNotPositive { text: "3 per -7d".into() });
        assert_eq!(err("3 per 0d"), TimingError::CapWindowNotPositive { text: "3 per 0d".into() });
        assert!(err("3 per 7").to_string().contains("missing a unit"));
        assert!(err("three a week").hint().contains("3 per 7d"));
    }

    #[test]
    fn the_window_rolls_back_from_now() {
        let cap = FrequencyCap::parse("3 per 7d").unwrap();
        let now = "2027-06-08T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(cap.window_start(now), "2027-06-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert!(cap.allows(0) && cap.allows(2));
        assert!(!cap.allows(3) && !cap.allows(4));
    }
}
