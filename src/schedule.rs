//! Schedule triggers: standard 5-field cron, evaluated in a journey's time zone.
//!
//! The `cron` crate wants a seconds field and numbers weekdays 1–7 from Sunday; marketers
//! write crontab (`0 10 * * 1-5`, Sunday = 0 or 7). This module translates one to the other
//! so that `1-5` means Monday to Friday, as in every crontab.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    schedule: cron::Schedule,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("a cron schedule has 5 fields (minute hour day-of-month month day-of-week), found {0}")]
    FieldCount(usize),
    #[error("invalid cron schedule: {0}")]
    Invalid(String),
}

impl CronSchedule {
    pub fn parse(expression: &str) -> Result<CronSchedule, CronError> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount(fields.len()));
        }
        const RANGES: [(&str, u32, u32); 5] =
            [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)];
        for (field, (name, min, max)) in fields.iter().zip(RANGES) {
            let numbers = field.split([',', '-', '/']).filter_map(|n| n.parse::<u32>().ok());
            for n in numbers {
                if !(min..=max).contains(&n) && !field.contains(&format!("/{n}")) {
                    return Err(CronError::Invalid(format!("{name} {n} is outside {min}-{max}")));
                }
            }
        }
        let weekday = translate_weekdays(fields[4])?;
        let full = format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], weekday);
        let schedule = cron::Schedule::from_str(&full)
            .map_err(|_| CronError::Invalid(format!("`{expression}` is not a crontab schedule")))?;
        Ok(CronSchedule { expression: expression.to_string(), schedule })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first firing strictly after `after`, at wall-clock time in `timezone`.
    pub fn next_after(&self, after: DateTime<Utc>, timezone: Tz) -> Option<DateTime<Utc>> {
        self.schedule.after(&after.with_timezone(&timezone)).next().map(|at| at.with_timezone(&Utc))
    }
}

/// Crontab weekday numbers (0–7, Sunday = 0 and 7) to the crate's (1–7, Sunday = 1).
fn translate_weekdays(field: &str) -> Result<String, CronError> {
    let map = |n: &str| -> Result<String, CronError> {
        match n.parse::<u32>() {
            Ok(d @ 0..=6) => Ok((d + 1).to_string()),
            Ok(7) => Ok("1".to_string()),
            Ok(d) => Err(CronError::Invalid(format!("day of week {d} is out of range 0-7"))),
            Err(_) => Ok(n.to_string()), // names (MON) and `*` pass through
        }
    };
    field
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (map(a)?, map(b)?);
                    // `5-7` (Friday to Sunday) would become `6-1`; split it at Saturday.
                    match (a.parse::<u32>(), b.parse::<u32>()) {
                        (Ok(x), Ok(y)) if x > y && step.is_none() => format!("{x}-7,1-{y}"),
                        _ => format!("{a}-{b}"),
                    }
                }
                None => map(range)?,
            };
            Ok(match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|parts| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap().with_timezone(&Utc)
    }

    #[test]
    fn fires_at_wall_clock_time_in_the_journey_zone() {
        let s = CronSchedule::parse("0 10 * * *").unwrap();
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let after = at(shanghai, 2026, 11, 23, 10, 0);
        assert_eq!(s.next_after(after, shanghai), Some(at(shanghai, 2026, 11, 24, 10, 0)));
    }

    #[test]
    fn weekdays_count_from_sunday_zero_like_crontab() {
        let s = CronSchedule::parse("0 9 * * 1-5").unwrap();
        let utc: Tz = "UTC".parse().unwrap();
        // 2026-11-28 is a Saturday: next is Monday the 30th.
        assert_eq!(s.next_after(at(utc, 2026, 11, 28, 0, 0), utc), Some(at(utc, 2026, 11, 30, 9, 0)));
        let sunday = CronSchedule::parse("0 9 * * 0").unwrap();
        assert_eq!(sunday.next_after(at(utc, 2026, 11, 28, 0, 0), utc), Some(at(utc, 2026, 11, 29, 9, 0)));
        let weekend = CronSchedule::parse("0 9 * * 6-7").unwrap();
        assert_eq!(weekend.next_after(at(utc, 2026, 11, 27, 0, 0), utc), Some(at(utc, 2026, 11, 28, 9, 0)));
    }

    #[test]
    fn rejects_six_fields_and_nonsense() {
        assert_eq!(CronSchedule::parse("0 0 10 * * *").unwrap_err(), CronError::FieldCount(6));
        assert!(matches!(CronSchedule::parse("61 * * * *"), Err(CronError::Invalid(_))));
        assert_eq!(
            CronSchedule::parse("0 25 * * *").unwrap_err().to_string(),
            "invalid cron schedule: hour 25 is outside 0-23"
        );
        assert!(matches!(CronSchedule::parse("0 10 * * 8"), Err(CronError::Invalid(_))));
        assert!(matches!(CronSchedule::parse("0 10 * * funday"), Err(CronError::Invalid(_))));
    }
}
