//! Member-local wall-clock times and the instants they name.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// A member's time zone: their own IANA name when it is known, else the configured default.
pub fn member_timezone(timezone: Option<&str>, default: Tz) -> Tz {
    timezone.and_then(|name| name.trim().parse::<Tz>().ok()).unwrap_or(default)
}

/// A member-local wall-clock time → the UTC instant.
///
/// A time that does not exist (the spring-forward gap) resolves to the first valid instant
/// after the gap (02:30 on a 02:00→03:00 day → 03:00 local); a time that occurs twice (the
/// autumn fold) resolves to the earlier instant, so it fires once.
pub fn local_instant(date: NaiveDate, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    resolve(date.and_time(time), tz)
}

/// [`local_instant`] for a whole local date-time.
pub(crate) fn resolve(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, later) => earlier.min(later).with_timezone(&Utc),
        LocalResult::None => end_of_gap(local, tz),
    }
}

/// The first instant after the gap that swallowed `missing`: the first local time after it
/// that exists. Gaps are an hour, half an hour (Lord Howe), or at most a day (Samoa
/// skipped 30 December 2011); we walk forward in quarter hours, then bisect to the second.
fn end_of_gap(missing: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    const STEP: TimeDelta = TimeDelta::minutes(15);
    let exists = |local: NaiveDateTime| !matches!(tz.from_local_datetime(&local), LocalResult::None);
    let mut before = missing;
    let mut after = missing;
    // Two days of quarter hours is more than any gap in the time zone database.
    for _ in 0..(2 * 96) {
        match after.checked_add_signed(STEP) {
            Some(next) => after = next,
            None => break,
        }
        if exists(after) {
            break;
        }
        before = after;
    }
    // Invariant: `before` does not exist, `after` does (or we ran out of road).
    while after - before > TimeDelta::seconds(1) {
        let middle = before + (after - before) / 2;
        if exists(middle) {
            after = middle;
        } else {
            before = middle;
        }
    }
    match tz.from_local_datetime(&after) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, later) => earlier.min(later).with_timezone(&Utc),
        // Beyond the supported range of dates: read the wall clock as UTC rather than panic.
        LocalResult::None => Utc.from_utc_datetime(&missing),
    }
}

/// `wait: { until: "09:00" }`: the next instant strictly after `now` when it is `time`
/// member-local, resolved as [`local_instant`] (a time in the gap → the end of the gap; a
/// time in the fold → its first occurrence only).
pub fn next_local_time(time: NaiveTime, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let mut date = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    // Resolved instants grow with the date, and each local date is at most two days from
    // `now`, so this ends within four steps.
    loop {
        let at = local_instant(date, time, tz);
        if at > now {
            return at;
        }
        match date.succ_opt() {
            Some(next) => date = next,
            None => return at, // the end of the calendar: nothing later exists
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono_tz::Tz;

    pub(crate) fn zone(name: &str) -> Tz {
        name.parse().expect("a time zone of the database")
    }

    pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
    }

    pub(crate) fn time(text: &str) -> NaiveTime {
        NaiveTime::parse_from_str(text, "%H:%M").expect("HH:MM")
    }

    /// A UTC instant written `2027-03-14 07:00`.
    pub(crate) fn utc(text: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("YYYY-MM-DD HH:MM").and_utc()
    }

    /// An instant as a member in `tz` reads it: `2027-03-14 03:00 EDT`.
    pub(crate) fn wall(at: DateTime<Utc>, tz: Tz) -> String {
        at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
    }

    /// The instant of an unambiguous member-local time.
    pub(crate) fn local(tz: Tz, text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("YYYY-MM-DD HH:MM");
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            other => panic!("{text} is not a single instant in {tz}: {other:?}"),
        }
    }

    #[test]
    fn a_local_time_is_the_instant_of_that_wall_clock_in_each_zone() {
        let nine = time("09:00");
        let cases = [
            ("Asia/Shanghai", "2027-06-01 01:00"),
            ("Asia/Kolkata", "2027-06-01 03:30"),
            ("Pacific/Chatham", "2027-05-31 20:15"),
            ("Pacific/Auckland", "2027-05-31 21:00"),
            ("America/St_Johns", "2027-06-01 11:30"),
            ("America/New_York", "2027-06-01 13:00"),
            ("Europe/London", "2027-06-01 08:00"),
            ("UTC", "2027-06-01 09:00"),
        ];
        for (name, expected) in cases {
            assert_eq!(local_instant(date(2027, 6, 1), nine, zone(name)), utc(expected), "{name}");
        }
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_is_the_end_of_the_gap() {
        let cases = [
            ("America/New_York", date(2027, 3, 14), "02:30", "2027-03-14 03:00 EDT"),
            ("America/New_York", date(2027, 3, 14), "02:00", "2027-03-14 03:00 EDT"),
            ("America/New_York", date(2027, 3, 14), "02:59", "2027-03-14 03:00 EDT"),
            ("Europe/Berlin", date(2027, 3, 28), "02:30", "2027-03-28 03:00 CEST"),
            ("Europe/London", date(2027, 3, 28), "01:30", "2027-03-28 02:00 BST"),
            ("Pacific/Auckland", date(2027, 9, 26), "02:30", "2027-09-26 03:00 NZDT"),
            ("America/St_Johns", date(2027, 3, 14), "02:30", "2027-03-14 03:00 NDT"),
            ("Pacific/Chatham", date(2027, 9, 26), "03:00", "2027-09-26 03:45 +1345"),
            ("Australia/Lord_Howe", date(2027, 10, 3), "02:15", "2027-10-03 02:30 +11"),
        ];
        for (name, day, at, expected) in cases {
            let tz = zone(name);
            assert_eq!(wall(local_instant(day, time(at), tz), tz), expected, "{name} {at}");
        }
    }

    #[test]
    fn the_edges_of_the_gap_are_ordinary_times() {
        let ny = zone("America/New_York");
        assert_eq!(local_instant(date(2027, 3, 14), time("01:59"), ny), utc("2027-03-14 06:59"));
        assert_eq!(local_instant(date(2027, 3, 14), time("03:00"), ny), utc("2027-03-14 07:00"));
    }

    #[test]
    fn a_time_in_the_autumn_fold_is_its_earlier_occurrence() {
        let cases = [
            ("America/New_York", date(2027, 11, 7), "01:30", "2027-11-07 05:30"),
            ("Europe/Berlin", date(2027, 10, 31), "02:30", "2027-10-31 00:30"),
            ("Europe/London", date(2027, 10, 31), "01:30", "2027-10-31 00:30"),
            ("Pacific/Auckland", date(2027, 4, 4), "02:30", "2027-04-03 13:30"),
            ("America/St_Johns", date(2027, 11, 7), "01:30", "2027-11-07 04:00"),
            ("Pacific/Chatham", date(2027, 4, 4), "03:00", "2027-04-03 13:15"),
        ];
        for (name, day, at, expected) in cases {
            assert_eq!(local_instant(day, time(at), zone(name)), utc(expected), "{name} {at}");
        }
    }

    #[test]
    fn a_whole_skipped_day_resolves_to_the_next_day_that_exists() {
        // Samoa moved across the date line: 30 December 2011 never happened in Apia.
        let apia = zone("Pacific/Apia");
        assert_eq!(wall(local_instant(date(2011, 12, 30), time("09:00"), apia), apia), "2011-12-31 00:00 +14");
    }

    #[test]
    fn a_member_without_a_known_time_zone_gets_the_default() {
        let shanghai = zone("Asia/Shanghai");
        assert_eq!(member_timezone(Some("Europe/London"), shanghai), zone("Europe/London"));
        assert_eq!(member_timezone(None, shanghai), shanghai);
        assert_eq!(member_timezone(Some("Mars/Olympus"), shanghai), shanghai);
        assert_eq!(member_timezone(Some(""), shanghai), shanghai);
    }

    #[test]
    fn waiting_until_a_time_waits_for_its_next_occurrence() {
        let shanghai = zone("Asia/Shanghai");
        let nine = time("09:00");
        assert_eq!(
            next_local_time(nine, shanghai, local(shanghai, "2027-06-01 08:59")),
            local(shanghai, "2027-06-01 09:00")
        );
        assert_eq!(
            next_local_time(nine, shanghai, local(shanghai, "2027-06-01 09:00")),
            local(shanghai, "2027-06-02 09:00")
        );
        assert_eq!(
            next_local_time(nine, shanghai, local(shanghai, "2027-06-01 23:00")),
            local(shanghai, "2027-06-02 09:00")
        );
        // In UTC it is already the next day in Auckland.
        let auckland = zone("Pacific/Auckland");
        assert_eq!(wall(next_local_time(nine, auckland, utc("2027-06-01 22:00")), auckland), "2027-06-03 09:00 NZST");
        let kolkata = zone("Asia/Kolkata");
        assert_eq!(next_local_time(nine, kolkata, utc("2027-06-01 03:29")), utc("2027-06-01 03:30"));
        assert_eq!(next_local_time(nine, kolkata, utc("2027-06-01 03:30")), utc("2027-06-02 03:30"));
    }

    #[test]
    fn waiting_until_a_time_in_the_gap_ends_at_the_end_of_the_gap_once() {
        let ny = zone("America/New_York");
        let half_past_two = time("02:30");
        let first = next_local_time(half_past_two, ny, local(ny, "2027-03-13 23:00"));
        assert_eq!(wall(first, ny), "2027-03-14 03:00 EDT");
        assert_eq!(wall(next_local_time(half_past_two, ny, first), ny), "2027-03-15 02:30 EDT");
    }

    #[test]
    fn waiting_until_a_time_in_the_fold_ends_at_its_first_occurrence_once() {
        let ny = zone("America/New_York");
        let half_past_one = time("01:30");
        let first = next_local_time(half_past_one, ny, local(ny, "2027-11-06 23:00"));
        assert_eq!(first, utc("2027-11-07 05:30"));
        assert_eq!(wall(first, ny), "2027-11-07 01:30 EDT");
        // Not again an hour later, when the clock reads 01:30 a second time.
        assert_eq!(wall(next_local_time(half_past_one, ny, first), ny), "2027-11-08 01:30 EST");
        assert_eq!(wall(next_local_time(half_past_one, ny, utc("2027-11-07 06:10")), ny), "2027-11-08 01:30 EST");
    }

    #[test]
    fn waiting_across_a_dst_change_keeps_the_wall_clock_time() {
        let london = zone("Europe/London");
        let nine = time("09:00");
        assert_eq!(
            wall(next_local_time(nine, london, local(london, "2027-03-27 10:00")), london),
            "2027-03-28 09:00 BST"
        );
        assert_eq!(
            wall(next_local_time(nine, london, local(london, "2027-10-30 10:00")), london),
            "2027-10-31 09:00 GMT"
        );
    }
}
