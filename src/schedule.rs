//! Schedule triggers: standard 5-field cron, evaluated in a journey's time zone.
//!
//! The `cron` crate wants a seconds field and numbers weekdays 1–7 from Sunday; marketers
//! write crontab (`0 10 * * 1-5`, Sunday = 0 or 7). This module translates one to the other
//! so that `1-5` means Monday to Friday, as in every crontab.
//!
//! **Daylight saving time.** A schedule names wall-clock times in its time zone; each is
//! turned into an instant by [`timing::local_instant`], like every member-local time:
//!
//! - A time that does not exist on a spring-forward day (`30 2 * * *` on a 02:00→03:00
//!   day) fires once, at the first valid instant after the gap (03:00 local). The `cron`
//!   crate alone skips it, so the day would get no firing.
//! - A time that occurs twice on an autumn day (`30 1 * * *` on a 02:00→01:00 day) fires
//!   once, at its first occurrence. The `cron` crate alone yields both occurrences from one
//!   iterator, and, asked for the next firing after an instant inside the repeated hour,
//!   answers with the first occurrence, which is *before* that instant.
//! - So hourly schedules (`0 * * * *`): on a spring-forward day 02:00 resolves to 03:00,
//!   the same instant as the 03:00 firing, which fires once — only the hour that does not
//!   exist is missing. On an autumn day 01:00 fires at its first occurrence and the
//!   repeated hour has no firing of its own (the next is 02:00): each wall-clock time fires
//!   once, no instant fires twice.
//!
//! The `cron` crate still does the calendar: it enumerates matching wall-clock times in a
//! zone without DST (UTC used as a plain calendar), and this module resolves them.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::timing;

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

    /// The first firing strictly after `after`, at wall-clock time in `timezone` (see the
    /// module documentation for DST gaps and folds).
    pub fn next_after(&self, after: DateTime<Utc>, timezone: Tz) -> Option<DateTime<Utc>> {
        // Wall-clock times map to instants in order (a gap's times all land on its end, a
        // fold's on their first occurrence), and none before the local reading of `after`
        // can land after it: walk the wall-clock times from there and take the first that
        // resolves to a later instant. Times in a gap after their first resolve to the
        // same instant, which is not later, so they are skipped, never fired twice.
        let wall_clock = Utc.from_utc_datetime(&after.with_timezone(&timezone).naive_local());
        self.schedule
            .after(&wall_clock)
            .map(|local| timing::local_instant(local.date_naive(), local.time(), timezone))
            .find(|at| *at > after)
    }

    /// The one firing a schedule owes at `now`, given that it has fired (or was looked at)
    /// up to `after`: the **latest** firing in `(after, now]`, or `None`. Missed firings
    /// coalesce, as with cron daemons and Kubernetes CronJobs: after downtime (or a tick
    /// slower than the schedule) a schedule fires once, for its latest missed time, never
    /// once per missed time. The caller bounds `after` by its catch-up window.
    pub fn due_firing(&self, after: DateTime<Utc>, now: DateTime<Utc>, timezone: Tz) -> Option<DateTime<Utc>> {
        let mut due = None;
        let mut at = after;
        while let Some(next) = self.next_after(at, timezone) {
            if next > now {
                break;
            }
            due = Some(next);
            at = next;
        }
        due
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
    use chrono::{Datelike, NaiveDate};

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
    fn missed_firings_coalesce_into_the_latest() {
        let minutely = CronSchedule::parse("* * * * *").unwrap();
        let tz: Tz = "UTC".parse().unwrap();
        let down = at(tz, 2026, 3, 2, 9, 0);
        // An hour down: 60 firings missed, one owed, the latest.
        let now = at(tz, 2026, 3, 2, 10, 0) + chrono::TimeDelta::seconds(30);
        assert_eq!(minutely.due_firing(down, now, tz), Some(at(tz, 2026, 3, 2, 10, 0)));
        // Fired at 10:00: nothing more is owed until 10:01.
        assert_eq!(minutely.due_firing(at(tz, 2026, 3, 2, 10, 0), now, tz), None);
        // A daily schedule missed once fires once, for its time.
        let daily = CronSchedule::parse("0 10 * * *").unwrap();
        let now = at(tz, 2026, 3, 5, 12, 0);
        assert_eq!(daily.due_firing(at(tz, 2026, 3, 1, 0, 0), now, tz), Some(at(tz, 2026, 3, 5, 10, 0)));
        // A firing exactly at `now` is due; one at `after` is not.
        assert_eq!(
            daily.due_firing(at(tz, 2026, 3, 5, 10, 0), at(tz, 2026, 3, 6, 10, 0), tz),
            Some(at(tz, 2026, 3, 6, 10, 0))
        );
        assert_eq!(daily.due_firing(at(tz, 2026, 3, 6, 10, 0), at(tz, 2026, 3, 6, 10, 0), tz), None);
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

    /// The firings of `expression` in `zone` after `from`, as the zone's wall clock.
    fn firings(expression: &str, zone: &str, from: DateTime<Utc>, count: usize) -> Vec<String> {
        let s = CronSchedule::parse(expression).unwrap();
        let tz: Tz = zone.parse().unwrap();
        std::iter::successors(s.next_after(from, tz), |at| s.next_after(*at, tz))
            .take(count)
            .map(|at| at.with_timezone(&tz).format("%m-%d %H:%M %Z").to_string())
            .collect()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, 0).unwrap().and_utc()
    }

    #[test]
    fn a_daily_time_in_the_spring_forward_gap_fires_once_at_the_end_of_the_gap() {
        let ny = firings("30 2 * * *", "America/New_York", utc(2027, 3, 12, 12, 0), 4);
        assert_eq!(ny, ["03-13 02:30 EST", "03-14 03:00 EDT", "03-15 02:30 EDT", "03-16 02:30 EDT"]);
        let berlin = firings("30 2 * * *", "Europe/Berlin", utc(2027, 3, 26, 12, 0), 4);
        assert_eq!(berlin, ["03-27 02:30 CET", "03-28 03:00 CEST", "03-29 02:30 CEST", "03-30 02:30 CEST"]);
        let auckland = firings("0 2 * * *", "Pacific/Auckland", utc(2027, 9, 24, 0, 0), 3);
        assert_eq!(auckland, ["09-25 02:00 NZST", "09-26 03:00 NZDT", "09-27 02:00 NZDT"]);
    }

    #[test]
    fn a_daily_time_in_the_autumn_fold_fires_once_at_its_first_occurrence() {
        let ny = firings("30 1 * * *", "America/New_York", utc(2027, 11, 5, 12, 0), 4);
        assert_eq!(ny, ["11-06 01:30 EDT", "11-07 01:30 EDT", "11-08 01:30 EST", "11-09 01:30 EST"]);
        let berlin = firings("30 2 * * *", "Europe/Berlin", utc(2027, 10, 29, 12, 0), 4);
        assert_eq!(berlin, ["10-30 02:30 CEST", "10-31 02:30 CEST", "11-01 02:30 CET", "11-02 02:30 CET"]);
    }

    #[test]
    fn asked_from_inside_the_repeated_hour_the_next_firing_is_never_in_the_past() {
        // The cron crate alone answered 05:30 UTC (01:30 EDT) for an `after` of 06:00 UTC.
        let s = CronSchedule::parse("30 1 * * *").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let inside = utc(2027, 11, 7, 6, 0); // 01:00 EST, after 01:30 EDT
        assert_eq!(s.next_after(inside, ny), Some(at(ny, 2027, 11, 8, 1, 30)));
        for minutes in 0..180 {
            let after = utc(2027, 11, 7, 4, 0) + chrono::TimeDelta::minutes(minutes);
            let next = s.next_after(after, ny).unwrap();
            assert!(next > after, "{after} → {next}");
        }
    }

    #[test]
    fn an_hourly_schedule_loses_only_the_missing_hour_in_spring() {
        let ny = firings("0 * * * *", "America/New_York", utc(2027, 3, 14, 5, 30), 4);
        assert_eq!(ny, ["03-14 01:00 EST", "03-14 03:00 EDT", "03-14 04:00 EDT", "03-14 05:00 EDT"]);
        // Every firing is an hour after the one before: 02:00 and 03:00 are one instant.
        let s = CronSchedule::parse("0 * * * *").unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        let times: Vec<DateTime<Utc>> =
            std::iter::successors(s.next_after(utc(2027, 3, 14, 0, 0), tz), |t| s.next_after(*t, tz))
                .take(24)
                .collect();
        assert!(times.windows(2).all(|w| w[1] - w[0] == chrono::TimeDelta::hours(1)), "{times:?}");
    }

    #[test]
    fn an_hourly_schedule_fires_each_wall_clock_hour_once_in_autumn() {
        let ny = firings("0 * * * *", "America/New_York", utc(2027, 11, 7, 3, 30), 4);
        assert_eq!(ny, ["11-07 00:00 EDT", "11-07 01:00 EDT", "11-07 02:00 EST", "11-07 03:00 EST"]);
        let s = CronSchedule::parse("0 * * * *").unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        let times: Vec<DateTime<Utc>> =
            std::iter::successors(s.next_after(utc(2027, 11, 7, 0, 0), tz), |t| s.next_after(*t, tz))
                .take(24)
                .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        // One gap of two hours (the repeated 01:00 does not fire again), every other one hour.
        let gaps: Vec<i64> = times.windows(2).map(|w| (w[1] - w[0]).num_hours()).collect();
        assert_eq!(gaps.iter().filter(|&&h| h == 2).count(), 1, "{gaps:?}");
        assert!(gaps.iter().all(|&h| h == 1 || h == 2));
    }

    #[test]
    fn a_schedule_every_quarter_hour_in_the_gap_fires_once_at_its_end() {
        let ny = firings("*/15 2 * * *", "America/New_York", utc(2027, 3, 14, 0, 0), 3);
        assert_eq!(ny, ["03-14 03:00 EDT", "03-15 02:00 EDT", "03-15 02:15 EDT"]);
    }

    #[test]
    fn a_schedule_fires_once_per_local_date_through_a_year_of_dst_changes() {
        for zone in [
            "America/New_York",
            "Europe/Berlin",
            "Europe/London",
            "Pacific/Auckland",
            "Pacific/Chatham",
            "America/St_Johns",
        ] {
            let tz: Tz = zone.parse().unwrap();
            for expression in ["30 2 * * *", "30 1 * * *", "0 3 * * *", "0 0 * * *"] {
                let s = CronSchedule::parse(expression).unwrap();
                let local_dates: Vec<NaiveDate> =
                    std::iter::successors(s.next_after(utc(2026, 12, 30, 0, 0), tz), |t| s.next_after(*t, tz))
                        .map(|t| t.with_timezone(&tz).date_naive())
                        .skip_while(|d| d.year() < 2027)
                        .take_while(|d| d.year() == 2027)
                        .collect();
                // Every date of 2027, each once.
                let every_day: Vec<NaiveDate> =
                    NaiveDate::from_ymd_opt(2027, 1, 1).unwrap().iter_days().take(365).collect();
                assert_eq!(local_dates, every_day, "{zone} `{expression}`");
            }
        }
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        const ZONES: &[&str] = &[
            "America/New_York",
            "Europe/Berlin",
            "Europe/London",
            "Pacific/Auckland",
            "Pacific/Chatham",
            "America/St_Johns",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ];
        const SCHEDULES: &[&str] =
            &["30 2 * * *", "30 1 * * *", "0 * * * *", "*/15 * * * *", "45 2 * * 0", "0 10 * * 1-5", "0 0 1 * *"];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// The next firing is always later, and asked from just before it, it is found again:
            /// restarting never skips nor repeats a firing.
            #[test]
            fn the_next_firing_is_later_and_found_again_from_just_before_it(
                zone in 0..ZONES.len(),
                schedule in 0..SCHEDULES.len(),
                seconds in 0i64..(5 * 365 * 86_400),
            ) {
                let tz: Tz = ZONES[zone].parse().unwrap();
                let s = CronSchedule::parse(SCHEDULES[schedule]).unwrap();
                let after = utc(2026, 1, 1, 0, 0) + chrono::TimeDelta::seconds(seconds);
                let next = s.next_after(after, tz).unwrap();
                prop_assert!(next > after);
                prop_assert_eq!(s.next_after(next - chrono::TimeDelta::seconds(1), tz), Some(next));
                let following = s.next_after(next, tz).unwrap();
                prop_assert!(following > next);
            }
        }
    }
}
