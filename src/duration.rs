//! Durations as marketers write them: `30d`, `12h`, `90m`, `45s`, `2w`, or combined (`1d12h`).

use std::fmt;

/// A whole number of seconds, written with the units of DESIGN §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("a duration cannot be empty")]
    Empty,
    #[error("`{0}` is missing a unit")]
    MissingUnit(String),
    #[error("unknown unit `{unit}` in `{text}`")]
    UnknownUnit { text: String, unit: String },
    #[error("expected a number before `{0}`")]
    MissingNumber(String),
    #[error("`{0}` is too long")]
    Overflow(String),
    #[error("write `{short}`, not `{text}`")]
    SpelledOut { text: String, short: String },
}

impl DurationError {
    pub fn hint(&self) -> &'static str {
        "write a number and a unit: `30d`, `12h`, `90m`, `45s`, `2w`, or combined like `1d12h`"
    }
}

const UNITS: &[(char, i64)] = &[('w', 7 * 86_400), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl Duration {
    pub const ZERO: Duration = Duration { seconds: 0 };

    pub fn from_secs(seconds: i64) -> Self {
        Duration { seconds }
    }

    pub fn from_days(days: i64) -> Self {
        Duration { seconds: days * 86_400 }
    }

    pub fn as_secs(self) -> i64 {
        self.seconds
    }

    /// Whole days, when the duration is a whole number of days.
    pub fn as_whole_days(self) -> Option<i64> {
        (self.seconds % 86_400 == 0).then_some(self.seconds / 86_400)
    }

    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds)
    }

    /// Parses `30d`, `-3d` (a negative offset), `1d12h`.
    pub fn parse(text: &str) -> Result<Duration, DurationError> {
        let trimmed = text.trim();
        let (negative, body) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if body.is_empty() {
            return Err(DurationError::Empty);
        }
        if let Some(short) = spelled_out(body) {
            return Err(DurationError::SpelledOut { text: text.to_string(), short });
        }
        let mut total: i64 = 0;
        let mut number = String::new();
        for c in body.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == c) else {
                return Err(DurationError::UnknownUnit { text: text.to_string(), unit: c.to_string() });
            };
            if number.is_empty() {
                return Err(DurationError::MissingNumber(c.to_string()));
            }
            let n: i64 = number.parse().map_err(|_| DurationError::Overflow(text.to_string()))?;
            total = n
                .checked_mul(scale)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
            number.clear();
        }
        if !number.is_empty() {
            return Err(DurationError::MissingUnit(text.to_string()));
        }
        Ok(Duration { seconds: if negative { -total } else { total } })
    }
}

/// `3 days` → `3d`: what a marketer probably meant by a spelled-out unit.
fn spelled_out(text: &str) -> Option<String> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, word) = text.split_at(split);
    let word = word.trim().to_ascii_lowercase();
    let unit = match word.trim_end_matches('s') {
        "week" | "wk" => 'w',
        "day" => 'd',
        "hour" | "hr" => 'h',
        "minute" | "min" => 'm',
        "second" | "sec" => 's',
        _ => return None,
    };
    (!number.is_empty()).then(|| format!("{number}{unit}"))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return f.write_str("0s");
        }
        if self.seconds < 0 {
            f.write_str("-")?;
        }
        let mut rest = self.seconds.unsigned_abs() as i64;
        for &(unit, scale) in UNITS.iter().skip(1) {
            if rest >= scale {
                write!(f, "{}{unit}", rest / scale)?;
                rest %= scale;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_marketers_write() {
        assert_eq!(Duration::parse("3d").unwrap(), Duration::from_days(3));
        assert_eq!(Duration::parse("12h").unwrap().as_secs(), 43_200);
        assert_eq!(Duration::parse("2w").unwrap(), Duration::from_days(14));
        assert_eq!(Duration::parse("1d12h").unwrap().as_secs(), 129_600);
        assert_eq!(Duration::parse("-3d").unwrap(), Duration::from_days(-3));
        assert_eq!(Duration::parse("1d12h").unwrap().to_string(), "1d12h");
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert_eq!(Duration::parse("3").unwrap_err(), DurationError::MissingUnit("3".into()));
        assert_eq!(
            Duration::parse("3 days").unwrap_err(),
            DurationError::SpelledOut { text: "3 days".into(), short: "3d".into() }
        );
        assert!(matches!(Duration::parse("3x"), Err(DurationError::UnknownUnit { .. })));
        assert_eq!(Duration::parse("").unwrap_err(), DurationError::Empty);
        assert!(matches!(Duration::parse("d"), Err(DurationError::MissingNumber(_))));
        assert!(matches!(Duration::parse("99999999999999999999d"), Err(DurationError::Overflow(_))));
    }
}
