//! Quiet hours (`policies.quiet_hours`): a member-local window in which a send waits.

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::TimingError;
use super::local::local_instant;

/// A daily member-local window, `21:00-09:00`: from `start` (inside) to `end` (outside).
/// When `start` is later than `end` the window crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM` (24-hour clock; spaces around the dash are allowed).
    pub fn parse(text: &str) -> Result<QuietHours, TimingError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(TimingError::EmptyQuietHours);
        }
        let not_a_window = || TimingError::NotAWindow { text: text.to_string() };
        let (start, end) = trimmed.split_once('-').ok_or_else(not_a_window)?;
        let time = |part: &str| {
            parse_clock(part.trim())
                .ok_or_else(|| TimingError::NotATime { text: text.to_string(), time: part.trim().to_string() })
        };
        let (start, end) = (time(start)?, time(end)?);
        if start == end {
            return Err(TimingError::EmptyWindow { text: text.to_string() });
        }
        Ok(QuietHours { start, end })
    }

    /// Whether the window runs past midnight (`21:00-09:00`).
    pub fn crosses_midnight(&self) -> bool {
        self.start > self.end
    }

    /// Whether the member-local time of day `time` is inside the window.
    pub fn contains(&self, time: NaiveTime) -> bool {
        if self.crosses_midnight() {
            time >= self.start || time < self.end
        } else {
            self.start <= time && time < self.end
        }
    }

    /// None if `at` is outside the window; `Some(end)` = the instant the window ends when
    /// `at` is inside it: the next member-local `end` time, resolved as
    /// [`local_instant`](super::local_instant) (an end in the spring-forward gap → the end
    /// of the gap; an end in the autumn fold → its first occurrence, or the second when the
    /// member's clock already passed the first).
    pub fn deferral(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz);
        let time = local.time();
        if !self.contains(time) {
            return None;
        }
        let today = local.date_naive();
        // Inside a window that crosses midnight, before midnight: it ends tomorrow.
        let date = if self.crosses_midnight() && time >= self.start { today.succ_opt()? } else { today };
        let end = local_instant(date, self.end, tz);
        if end > at {
            return Some(end);
        }
        // In the repeated hour after the first occurrence of `end`: the clock reads `end`
        // again at the second one.
        match tz.from_local_datetime(&date.and_time(self.end)) {
            LocalResult::Ambiguous(earlier, later) => Some(earlier.max(later).with_timezone(&Utc)).filter(|e| *e > at),
            _ => None,
        }
    }
}

/// `HH:MM`, two digits each, 00:00–23:59.
fn parse_clock(text: &str) -> Option<NaiveTime> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits =
        |s: &str| (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok()).flatten();
    NaiveTime::from_hms_opt(two_digits(hours)?, two_digits(minutes)?, 0)
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.start.hour(), self.start.minute(), self.end.hour(), self.end.minute())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::local::tests::{local, time, utc, wall, zone};
    use chrono::TimeDelta;

    fn quiet(text: &str) -> QuietHours {
        QuietHours::parse(text).unwrap()
    }

    #[test]
    fn parses_windows_that_cross_midnight_and_windows_that_do_not() {
        assert_eq!(quiet("21:00-09:00"), QuietHours { start: time("21:00"), end: time("09:00") });
        assert!(quiet("21:00-09:00").crosses_midnight());
        assert_eq!(quiet(" 12:00 - 14:00 "), QuietHours { start: time("12:00"), end: time("14:00") });
        assert!(!quiet("12:00-14:00").crosses_midnight());
        assert_eq!(quiet("00:00-06:30").to_string(), "00:00-06:30");
        assert_eq!(quiet("22:00-00:00").to_string(), "22:00-00:00");
    }

    #[test]
    fn rejects_what_is_not_a_window_with_a_hint() {
        let err = |text: &str| QuietHours::parse(text).unwrap_err();
        assert_eq!(err(""), TimingError::EmptyQuietHours);
        assert_eq!(err("  "), TimingError::EmptyQuietHours);
        assert_eq!(err("21:00"), TimingError::NotAWindow { text: "21:00".into() });
        assert_eq!(
            err("21:00 to 09:00").to_string(),
            "`21:00 to 09:00` is not a window of two times like \"21:00-09:00\""
        );
        assert_eq!(err("00:00-00:00"), TimingError::EmptyWindow { text: "00:00-00:00".into() });
        assert_eq!(err("09:00-09:00").to_string(), "quiet hours `09:00-09:00` start and end at the same time");
        assert_eq!(err("21:00-24:00"), TimingError::NotATime { text: "21:00-24:00".into(), time: "24:00".into() });
        assert_eq!(err("9pm-9am").to_string(), "`9pm` in `9pm-9am` is not a time of day");
        assert!(matches!(err("9:00-17:00"), TimingError::NotATime { .. }));
        assert!(matches!(err("21:00-09:00-10:00"), TimingError::NotATime { .. }));
        assert!(matches!(err("21:60-09:00"), TimingError::NotATime { .. }));
        assert!(err("21:00").hint().contains("21:00-09:00"));
        assert!(err("09:00-09:00").hint().contains("remove"));
    }

    #[test]
    fn quiet_hours_crossing_midnight_defer_to_the_end_the_next_morning() {
        let shanghai = zone("Asia/Shanghai");
        let q = quiet("21:00-09:00");
        let nine_tomorrow = local(shanghai, "2027-06-02 09:00");
        assert_eq!(q.deferral(local(shanghai, "2027-06-01 22:30"), shanghai), Some(nine_tomorrow), "before midnight");
        assert_eq!(q.deferral(local(shanghai, "2027-06-02 00:00"), shanghai), Some(nine_tomorrow), "at midnight");
        assert_eq!(q.deferral(local(shanghai, "2027-06-02 03:15"), shanghai), Some(nine_tomorrow), "after midnight");
        assert_eq!(q.deferral(local(shanghai, "2027-06-02 08:59"), shanghai), Some(nine_tomorrow));
        assert_eq!(q.deferral(local(shanghai, "2027-06-01 12:00"), shanghai), None, "in the day");
    }

    #[test]
    fn the_start_of_the_window_is_inside_and_the_end_is_outside() {
        let kolkata = zone("Asia/Kolkata");
        let q = quiet("21:00-09:00");
        let start = local(kolkata, "2027-06-01 21:00");
        assert_eq!(q.deferral(start, kolkata), Some(local(kolkata, "2027-06-02 09:00")));
        assert_eq!(q.deferral(start - TimeDelta::seconds(1), kolkata), None);
        let end = local(kolkata, "2027-06-02 09:00");
        assert_eq!(q.deferral(end, kolkata), None);
        assert_eq!(q.deferral(end - TimeDelta::seconds(1), kolkata), Some(end));
        // A deferred send lands outside the window.
        assert_eq!(q.deferral(q.deferral(start, kolkata).unwrap(), kolkata), None);
    }

    #[test]
    fn quiet_hours_not_crossing_midnight_cover_only_their_hours() {
        let london = zone("Europe/London");
        let q = quiet("12:00-14:00");
        assert_eq!(q.deferral(local(london, "2027-06-01 11:59"), london), None);
        assert_eq!(q.deferral(local(london, "2027-06-01 12:00"), london), Some(local(london, "2027-06-01 14:00")));
        assert_eq!(q.deferral(local(london, "2027-06-01 13:30"), london), Some(local(london, "2027-06-01 14:00")));
        assert_eq!(q.deferral(local(london, "2027-06-01 14:00"), london), None);
        assert_eq!(q.deferral(local(london, "2027-06-01 23:00"), london), None);
        assert_eq!(q.deferral(local(london, "2027-06-01 01:00"), london), None);
    }

    #[test]
    fn quiet_hours_are_member_local() {
        let q = quiet("21:00-09:00");
        // 14:00 UTC is 22:00 in Shanghai (quiet), 10:00 in New York (not), 03:45 in Chatham (quiet).
        let at = utc("2027-06-01 14:00");
        assert_eq!(wall(q.deferral(at, zone("Asia/Shanghai")).unwrap(), zone("Asia/Shanghai")), "2027-06-02 09:00 CST");
        assert_eq!(q.deferral(at, zone("America/New_York")), None);
        let chatham = zone("Pacific/Chatham");
        assert_eq!(wall(q.deferral(at, chatham).unwrap(), chatham), "2027-06-02 09:00 +1245");
        let st_johns = zone("America/St_Johns");
        assert_eq!(q.deferral(utc("2027-06-01 23:29"), st_johns), None, "20:59 NDT");
        assert_eq!(wall(q.deferral(utc("2027-06-01 23:30"), st_johns).unwrap(), st_johns), "2027-06-02 09:00 NDT");
    }

    #[test]
    fn the_window_ends_at_the_local_end_time_on_a_dst_change_night() {
        let ny = zone("America/New_York");
        let q = quiet("21:00-09:00");
        // Spring forward: the night is an hour shorter; it still ends at 09:00 local.
        let end = q.deferral(local(ny, "2027-03-13 23:00"), ny).unwrap();
        assert_eq!(wall(end, ny), "2027-03-14 09:00 EDT");
        assert_eq!(end, utc("2027-03-14 13:00"));
        // Fall back: an hour longer, from inside the repeated hour too.
        let end = q.deferral(local(ny, "2027-11-06 23:00"), ny).unwrap();
        assert_eq!(wall(end, ny), "2027-11-07 09:00 EST");
        assert_eq!(q.deferral(utc("2027-11-07 06:30"), ny), Some(end), "01:30 EST, the second time");
    }

    #[test]
    fn a_window_ending_in_the_gap_ends_when_the_gap_does() {
        let berlin = zone("Europe/Berlin");
        let q = quiet("22:00-02:30");
        let end = q.deferral(local(berlin, "2027-03-27 23:00"), berlin).unwrap();
        assert_eq!(wall(end, berlin), "2027-03-28 03:00 CEST");
        assert_eq!(q.deferral(end, berlin), None);
        // The hour before the gap is still quiet.
        assert_eq!(q.deferral(local(berlin, "2027-03-28 01:59"), berlin), Some(end));
    }

    #[test]
    fn a_window_ending_in_the_fold_ends_the_first_time_the_clock_reads_its_end() {
        let ny = zone("America/New_York");
        let q = quiet("23:00-01:30");
        let first = utc("2027-11-07 05:30");
        assert_eq!(q.deferral(local(ny, "2027-11-06 23:30"), ny), Some(first), "01:30 EDT");
        // 01:00 EST comes after 01:30 EDT: the clock reads 01:30 again at 01:30 EST.
        assert_eq!(q.deferral(utc("2027-11-07 06:00"), ny), Some(utc("2027-11-07 06:30")));
        assert_eq!(q.deferral(utc("2027-11-07 06:30"), ny), None);
    }
}
