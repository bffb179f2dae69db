//! Members and events as the pure core sees them (DESIGN §1).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A birthday; the year is optional (`--MM-DD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Birthday {
    pub year: Option<i32>,
    pub month: u32,
    pub day: u32,
}

impl Birthday {
    /// Parses `YYYY-MM-DD` or `--MM-DD`.
    pub fn parse(text: &str) -> Option<Birthday> {
        if let Some(md) = text.strip_prefix("--") {
            // Any leap year validates 29 February.
            let date = NaiveDate::parse_from_str(&format!("2000-{md}"), "%Y-%m-%d").ok()?;
            return Some(Birthday { year: None, month: date.month(), day: date.day() });
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(Birthday { year: Some(date.year()), month: date.month(), day: date.day() })
    }

    /// The full date, when the year is known.
    pub fn date(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year?, self.month, self.day)
    }
}

impl std::fmt::Display for Birthday {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.year {
            Some(y) => write!(f, "{y:04}-{:02}-{:02}", self.month, self.day),
            None => write!(f, "--{:02}-{:02}", self.month, self.day),
        }
    }
}

impl Serialize for Birthday {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Birthday {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Birthday::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid birthday `{text}`: expected YYYY-MM-DD or --MM-DD"))
        })
    }
}

/// One shop customer. Numbers and consents default to 0/false; text fields may be absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub push_tokens: Vec<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub birthday: Option<Birthday>,
    pub tier: Option<String>,
    pub points: i64,
    pub points_expiring: i64,
    pub points_expire_at: Option<DateTime<Utc>>,
    pub total_spend: i64,
    pub currency: Option<String>,
    pub order_count: i64,
    pub first_order_at: Option<DateTime<Utc>>,
    pub last_order_at: Option<DateTime<Utc>>,
    pub joined_at: Option<DateTime<Utc>>,
    pub email_consent: bool,
    pub sms_consent: bool,
    pub push_consent: bool,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Derived by the engine (`new`, `active`, `dormant`, `churned`).
    pub lifecycle: Option<String>,
    pub rfm_r: Option<i64>,
    pub rfm_f: Option<i64>,
    pub rfm_m: Option<i64>,
    pub rfm_segment: Option<String>,
    pub clv: Option<i64>,
}

/// Something that happened to a member (DESIGN §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub member_id: String,
    pub name: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub properties: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birthday_year_is_optional_and_feb_29_is_valid_without_one() {
        assert_eq!(Birthday::parse("--02-29"), Some(Birthday { year: None, month: 2, day: 29 }));
        assert_eq!(Birthday::parse("1990-07-04").unwrap().to_string(), "1990-07-04");
        assert_eq!(Birthday::parse("2023-02-29"), None);
        assert_eq!(Birthday::parse("--13-01"), None);
        assert_eq!(Birthday::parse("July 4"), None);
    }
}
