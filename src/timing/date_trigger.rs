//! Date triggers (`date: birthday`, `at: "09:00"`, `offset: -3d`): when they fire for one
//! member, and which members can fire in a window.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::local::local_instant;
use crate::duration::Duration;
use crate::member::Birthday;

/// The calendar date of a yearly date in `year`: 29 February → 28 February in common years.
///
/// Any other day past the end of its month is moved back to the month's last day the same
/// way (only 29 February can happen for a valid date); a month outside 1–12 is clamped.
pub fn anniversary_in(month: u32, day: u32, year: i32) -> NaiveDate {
    let month = month.clamp(1, 12);
    let year = year.clamp(NaiveDate::MIN.year() + 1, NaiveDate::MAX.year() - 1);
    let last = last_day_of_month(year, month);
    NaiveDate::from_ymd_opt(year, month, day.clamp(1, last)).expect("a clamped date exists")
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    (28..=31).rev().find(|&d| NaiveDate::from_ymd_opt(year, month, d).is_some()).unwrap_or(28)
}

/// What a date trigger watches for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerDate {
    /// Comes back every year (birthdays, membership anniversaries).
    Yearly { month: u32, day: u32 },
    /// Happens once (`points_expire_at`, a date attribute).
    Once(NaiveDate),
}

impl TriggerDate {
    /// The trigger date of a member's date field: yearly for birthdays and anniversaries.
    pub fn of(date: NaiveDate, yearly: bool) -> TriggerDate {
        if yearly { TriggerDate::Yearly { month: date.month(), day: date.day() } } else { TriggerDate::Once(date) }
    }
}

impl From<&Birthday> for TriggerDate {
    fn from(birthday: &Birthday) -> TriggerDate {
        TriggerDate::Yearly { month: birthday.month, day: birthday.day }
    }
}

/// One firing of a date trigger for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateFiring {
    /// The occurrence's calendar date: the day the field falls on that year, before the
    /// offset (a 29 February birthday in 2027 → 2027-02-28). The idempotency key.
    pub key: NaiveDate,
    /// The UTC instant it fires.
    pub at: DateTime<Utc>,
}

/// An offset split the way marketers mean it: whole days move the calendar date (so `-3d`
/// at 09:00 is 09:00 three days before, even across a DST change); the rest moves the
/// instant. Both parts carry the offset's sign (`-1d12h` = one day earlier, then 12 h).
fn split_offset(offset: Duration) -> (i64, TimeDelta) {
    let seconds = offset.as_secs();
    (seconds / 86_400, TimeDelta::seconds(seconds % 86_400))
}

fn shift_date(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    if days >= 0 {
        date.checked_add_days(Days::new(days.unsigned_abs()))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    }
}

/// The firing for the occurrence on `key`.
fn firing(key: NaiveDate, at: NaiveTime, offset: Duration, tz: Tz) -> Option<DateFiring> {
    let (days, rest) = split_offset(offset);
    let date = shift_date(key, days)?;
    let instant = local_instant(date, at, tz).checked_add_signed(rest)?;
    Some(DateFiring { key, at: instant })
}

/// How far a member-local wall-clock time can be from the same reading in UTC: offsets
/// run from −12:00 to +14:00 (up to ±15:56 for historical local mean times), and a time in
/// a DST gap resolves to the gap's end, still within the old offset of it.
const MAX_ZONE_OFFSET: TimeDelta = TimeDelta::hours(16);

/// Firings in the half-open window `(from, to]`: the occurrence date plus the offset (whole
/// days shift the date, the rest shifts the instant) at member-local `at` in `tz`, ordered
/// by time.
pub fn date_firings(
    date: &TriggerDate,
    at: NaiveTime,
    offset: Duration,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateFiring> {
    let Some(keys) = candidate_dates(from, to, offset) else {
        return Vec::new();
    };
    let inside = |f: &DateFiring| from < f.at && f.at <= to;
    match *date {
        TriggerDate::Once(key) => firing(key, at, offset, tz).filter(inside).into_iter().collect(),
        TriggerDate::Yearly { month, day } => (keys.start().year()..=keys.end().year())
            .filter_map(|year| firing(anniversary_in(month, day, year), at, offset, tz))
            .filter(inside)
            .collect(),
    }
}

/// The next firing strictly after `after` (None for a one-off date already passed).
pub fn next_date_firing(
    date: &TriggerDate,
    at: NaiveTime,
    offset: Duration,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateFiring> {
    match *date {
        TriggerDate::Once(key) => firing(key, at, offset, tz).filter(|f| f.at > after),
        TriggerDate::Yearly { month, day } => {
            // Firings a year apart keep their order, so the first later one is the next.
            let start = after
                .checked_add_signed(TimeDelta::seconds(1))
                .and_then(|to| candidate_dates(after, to, offset))
                .map_or(after.year(), |keys| keys.start().year());
            (start..NaiveDate::MAX.year())
                .filter_map(|year| firing(anniversary_in(month, day, year), at, offset, tz))
                .find(|f| f.at > after)
        }
    }
}

/// The occurrence dates (the field's own calendar date, before the offset) that can fire in
/// `(from, to]` in some time zone at some time of day with this offset: about a day
/// generous on each side; never misses one. None for an empty window.
pub fn candidate_dates(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    offset: Duration,
) -> Option<std::ops::RangeInclusive<NaiveDate>> {
    if from >= to {
        return None;
    }
    let (days, rest) = split_offset(offset);
    // A firing on local date L (midnight as if UTC) at time t is at L + t ± the zone offset,
    // plus the sub-day rest: within [L − 16h + rest, L + 40h + rest).
    let earliest = from.naive_utc().checked_sub_signed(TimeDelta::hours(24) + MAX_ZONE_OFFSET + rest);
    let latest = to.naive_utc().checked_add_signed(MAX_ZONE_OFFSET - rest);
    let first = earliest.and_then(|t| shift_date(t.date(), -days)).unwrap_or(NaiveDate::MIN);
    let last = latest.and_then(|t| shift_date(t.date(), -days)).unwrap_or(NaiveDate::MAX);
    Some(first..=last)
}

/// Which member-local calendar `(month, day)` pairs can fire in `(from, to]` for some time
/// zone with this offset, so the engine can pre-select members by an indexed month-day
/// column before the exact check with [`date_firings`]. About a day generous on each side;
/// never misses. `(2, 29)` is included whenever 28 February of a common year is (those
/// birthdays fire then).
pub fn candidate_month_days(from: DateTime<Utc>, to: DateTime<Utc>, offset: Duration) -> Vec<(u32, u32)> {
    let Some(range) = candidate_dates(from, to, offset) else {
        return Vec::new();
    };
    let (first, last) = (*range.start(), *range.end());
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    if (last - first).num_days() >= 366 {
        // Every day of the year, 29 February included: the days of a leap year.
        let leap_year = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");
        pairs.extend(leap_year.iter_days().take(366).map(|d| (d.month(), d.day())));
    } else {
        for date in first.iter_days().take_while(|d| *d <= last) {
            pairs.push((date.month(), date.day()));
            if (date.month(), date.day()) == (2, 28) && !date.leap_year() {
                pairs.push((2, 29));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::local::tests::{date, local, time, utc, wall, zone};

    fn days(n: i64) -> Duration {
        Duration::from_days(n)
    }

    fn birthday(month: u32, day: u32) -> TriggerDate {
        TriggerDate::Yearly { month, day }
    }

    /// The firings between two UTC instants, as `key → member-local wall clock`.
    fn fired(date: TriggerDate, at: &str, offset: Duration, tz: Tz, from: &str, to: &str) -> Vec<(String, String)> {
        date_firings(&date, time(at), offset, tz, utc(from), utc(to))
            .into_iter()
            .map(|f| (f.key.to_string(), wall(f.at, tz)))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn anniversaries_fall_on_their_day_and_feb_29_on_feb_28_in_common_years() {
        assert_eq!(anniversary_in(5, 17, 2027), date(2027, 5, 17));
        assert_eq!(anniversary_in(2, 29, 2027), date(2027, 2, 28));
        assert_eq!(anniversary_in(2, 29, 2028), date(2028, 2, 29));
        assert_eq!(anniversary_in(2, 29, 2100), date(2100, 2, 28));
        assert_eq!(anniversary_in(2, 29, 2000), date(2000, 2, 29));
        assert_eq!(anniversary_in(2, 28, 2028), date(2028, 2, 28));
        // Never panics on a date that cannot exist.
        assert_eq!(anniversary_in(4, 31, 2027), date(2027, 4, 30));
        assert_eq!(anniversary_in(13, 0, 2027), date(2027, 12, 1));
    }

    #[test]
    fn birthday_on_feb_29_fires_on_feb_28_in_common_years() {
        let shanghai = zone("Asia/Shanghai");
        let firings = fired(birthday(2, 29), "09:00", Duration::ZERO, shanghai, "2026-01-01 00:00", "2029-01-01 00:00");
        assert_eq!(
            firings,
            pairs(&[
                ("2026-02-28", "2026-02-28 09:00 CST"),
                ("2027-02-28", "2027-02-28 09:00 CST"),
                ("2028-02-29", "2028-02-29 09:00 CST"),
            ])
        );
    }

    #[test]
    fn birthday_on_feb_29_fires_once_in_a_leap_year_not_also_on_feb_28() {
        let london = zone("Europe/London");
        let firings = fired(birthday(2, 29), "09:00", Duration::ZERO, london, "2028-02-01 00:00", "2028-03-31 00:00");
        assert_eq!(firings, pairs(&[("2028-02-29", "2028-02-29 09:00 GMT")]));
        let feb_28 = fired(birthday(2, 28), "09:00", Duration::ZERO, london, "2028-02-01 00:00", "2028-03-31 00:00");
        assert_eq!(feb_28, pairs(&[("2028-02-28", "2028-02-28 09:00 GMT")]));
    }

    #[test]
    fn a_birthday_fires_at_the_members_local_time_in_every_zone() {
        let cases = [
            ("Asia/Shanghai", "2027-05-17 01:00"),
            ("Asia/Kolkata", "2027-05-17 03:30"),
            ("Pacific/Chatham", "2027-05-16 20:15"),
            ("Pacific/Auckland", "2027-05-16 21:00"),
            ("America/St_Johns", "2027-05-17 11:30"),
            ("America/New_York", "2027-05-17 13:00"),
            ("Europe/London", "2027-05-17 08:00"),
        ];
        for (name, expected) in cases {
            let firings = date_firings(
                &birthday(5, 17),
                time("09:00"),
                Duration::ZERO,
                zone(name),
                utc("2027-01-01 00:00"),
                utc("2028-01-01 00:00"),
            );
            assert_eq!(firings, vec![DateFiring { key: date(2027, 5, 17), at: utc(expected) }], "{name}");
        }
    }

    #[test]
    fn birthday_on_jan_1_with_offset_minus_3d_fires_on_dec_29_of_the_year_before() {
        let ny = zone("America/New_York");
        let firings = fired(birthday(1, 1), "09:00", days(-3), ny, "2027-12-01 00:00", "2028-01-31 00:00");
        assert_eq!(firings, pairs(&[("2028-01-01", "2027-12-29 09:00 EST")]));
        let next = next_date_firing(&birthday(1, 1), time("09:00"), days(-3), ny, utc("2027-06-01 00:00"));
        assert_eq!(next, Some(DateFiring { key: date(2028, 1, 1), at: local(ny, "2027-12-29 09:00") }));
    }

    #[test]
    fn a_positive_offset_crosses_into_the_next_year_with_the_key_of_the_old_one() {
        let auckland = zone("Pacific/Auckland");
        let firings = fired(birthday(12, 30), "10:00", days(7), auckland, "2027-12-01 00:00", "2028-02-01 00:00");
        assert_eq!(firings, pairs(&[("2027-12-30", "2028-01-06 10:00 NZDT")]));
    }

    #[test]
    fn an_offset_before_feb_29_counts_from_feb_28_in_common_years() {
        let shanghai = zone("Asia/Shanghai");
        let firings = fired(birthday(2, 29), "09:00", days(-7), shanghai, "2027-01-01 00:00", "2029-01-01 00:00");
        assert_eq!(firings, pairs(&[("2027-02-28", "2027-02-21 09:00 CST"), ("2028-02-29", "2028-02-22 09:00 CST")]));
    }

    #[test]
    fn sub_day_offsets_move_the_instant_and_whole_days_the_date() {
        let ny = zone("America/New_York");
        // 09:00 on the day, minus 12 hours: 21:00 the evening before.
        let firings = fired(
            birthday(6, 10),
            "09:00",
            Duration::from_secs(-12 * 3600),
            ny,
            "2027-06-01 00:00",
            "2027-07-01 00:00",
        );
        assert_eq!(firings, pairs(&[("2027-06-10", "2027-06-09 21:00 EDT")]));
        // -1d12h: one day earlier at 09:00, then 12 hours earlier still.
        let offset = Duration::parse("-1d12h").unwrap();
        let firings = fired(birthday(6, 10), "09:00", offset, ny, "2027-06-01 00:00", "2027-07-01 00:00");
        assert_eq!(firings, pairs(&[("2027-06-10", "2027-06-08 21:00 EDT")]));
        let firings = fired(
            birthday(6, 10),
            "09:00",
            Duration::parse("1d6h").unwrap(),
            ny,
            "2027-06-01 00:00",
            "2027-07-01 00:00",
        );
        assert_eq!(firings, pairs(&[("2027-06-10", "2027-06-11 15:00 EDT")]));
    }

    #[test]
    fn a_whole_day_offset_keeps_the_wall_clock_across_a_dst_change() {
        // Three days before a 16 March birthday is 13 March, before New York springs forward.
        let ny = zone("America/New_York");
        let firings = fired(birthday(3, 16), "09:00", days(-3), ny, "2027-03-01 00:00", "2027-04-01 00:00");
        assert_eq!(firings, pairs(&[("2027-03-16", "2027-03-13 09:00 EST")]));
    }

    #[test]
    fn a_date_trigger_at_a_time_in_the_gap_fires_once_at_the_end_of_the_gap() {
        let cases = [
            ("America/New_York", birthday(3, 14), "2027-03-14 03:00 EDT"),
            ("Europe/Berlin", birthday(3, 28), "2027-03-28 03:00 CEST"),
            ("Pacific/Auckland", birthday(9, 26), "2027-09-26 03:00 NZDT"),
            ("America/St_Johns", birthday(3, 14), "2027-03-14 03:00 NDT"),
        ];
        for (name, day, expected) in cases {
            let tz = zone(name);
            let firings = fired(day, "02:30", Duration::ZERO, tz, "2027-01-01 00:00", "2028-01-01 00:00");
            assert_eq!(firings.len(), 1, "{name}: {firings:?}");
            assert_eq!(firings[0].1, expected, "{name}");
        }
    }

    #[test]
    fn a_date_trigger_at_a_time_in_the_fold_fires_once_at_the_first_occurrence() {
        let cases = [
            ("America/New_York", birthday(11, 7), "2027-11-07 05:30"),
            ("Europe/London", birthday(10, 31), "2027-10-31 00:30"),
            ("Pacific/Auckland", birthday(4, 4), "2027-04-03 13:30"),
            ("America/St_Johns", birthday(11, 7), "2027-11-07 04:00"),
        ];
        for (name, day, expected) in cases {
            let tz = zone(name);
            let firings =
                date_firings(&day, time("01:30"), Duration::ZERO, tz, utc("2027-01-01 00:00"), utc("2028-01-01 00:00"));
            let at = if name == "Pacific/Auckland" { time("02:30") } else { time("01:30") };
            let firings_at =
                date_firings(&day, at, Duration::ZERO, tz, utc("2027-01-01 00:00"), utc("2028-01-01 00:00"));
            assert_eq!(firings.len(), 1, "{name}");
            assert_eq!(firings_at.iter().map(|f| f.at).collect::<Vec<_>>(), vec![utc(expected)], "{name}");
            // Asked again from inside the repeated hour, it does not fire a second time.
            let again = next_date_firing(&day, at, Duration::ZERO, tz, utc(expected) + TimeDelta::minutes(45));
            assert_eq!(again.map(|f| f.key.year()), Some(2028), "{name}");
        }
    }

    #[test]
    fn the_window_is_half_open_excluding_its_start_and_including_its_end() {
        let shanghai = zone("Asia/Shanghai");
        let b = birthday(5, 17);
        let nine = time("09:00");
        let at = local(shanghai, "2027-05-17 09:00");
        let one_second = TimeDelta::seconds(1);
        let window =
            |from: DateTime<Utc>, to: DateTime<Utc>| date_firings(&b, nine, Duration::ZERO, shanghai, from, to).len();
        assert_eq!(window(at - one_second, at), 1, "ends exactly at the firing");
        assert_eq!(window(at, at + one_second), 0, "starts exactly at the firing");
        assert_eq!(window(at - one_second, at + one_second), 1);
        assert_eq!(window(at, at), 0);
        assert_eq!(window(at + one_second, at - one_second), 0, "a backwards window is empty");
        // Consecutive windows see each firing exactly once.
        let hours: Vec<DateTime<Utc>> = (0..=24 * 3).map(|h| utc("2027-05-16 00:00") + TimeDelta::hours(h)).collect();
        let total: usize = hours.windows(2).map(|w| window(w[0], w[1])).sum();
        assert_eq!(total, 1);
    }

    #[test]
    fn a_long_window_has_one_firing_per_year_in_order() {
        let chatham = zone("Pacific/Chatham");
        let firings = date_firings(
            &birthday(7, 4),
            time("08:00"),
            days(-1),
            chatham,
            utc("2020-01-01 00:00"),
            utc("2030-01-01 00:00"),
        );
        let keys: Vec<i32> = firings.iter().map(|f| f.key.year()).collect();
        assert_eq!(keys, (2020..=2029).collect::<Vec<_>>());
        assert!(firings.windows(2).all(|w| w[0].at < w[1].at));
        assert_eq!(wall(firings[0].at, chatham), "2020-07-03 08:00 +1245");
    }

    #[test]
    fn a_one_off_date_fires_once_and_then_never() {
        let kolkata = zone("Asia/Kolkata");
        let expiry = TriggerDate::Once(date(2027, 8, 1));
        let ten = time("10:00");
        let week_before = days(-7);
        let expected = DateFiring { key: date(2027, 8, 1), at: utc("2027-07-25 04:30") };
        assert_eq!(next_date_firing(&expiry, ten, week_before, kolkata, utc("2027-01-01 00:00")), Some(expected));
        assert_eq!(next_date_firing(&expiry, ten, week_before, kolkata, expected.at), None);
        assert_eq!(
            date_firings(&expiry, ten, week_before, kolkata, utc("2020-01-01 00:00"), utc("2030-01-01 00:00")),
            vec![expected]
        );
        assert!(date_firings(&expiry, ten, week_before, kolkata, expected.at, utc("2030-01-01 00:00")).is_empty());
    }

    #[test]
    fn the_next_yearly_firing_is_this_years_until_it_passes_then_next_years() {
        let st_johns = zone("America/St_Johns");
        let b = birthday(8, 20);
        let nine = time("09:00");
        let this_year = local(st_johns, "2027-08-20 09:00");
        let next = |after| next_date_firing(&b, nine, Duration::ZERO, st_johns, after).map(|f| (f.key, f.at));
        assert_eq!(next(utc("2027-01-01 00:00")), Some((date(2027, 8, 20), this_year)));
        assert_eq!(next(this_year - TimeDelta::seconds(1)), Some((date(2027, 8, 20), this_year)));
        assert_eq!(next(this_year), Some((date(2028, 8, 20), local(st_johns, "2028-08-20 09:00"))));
        // Feb 29 steps through common and leap years.
        let leap = birthday(2, 29);
        let keys: Vec<NaiveDate> = std::iter::successors(
            next_date_firing(&leap, nine, Duration::ZERO, st_johns, utc("2027-01-01 00:00")),
            |f| next_date_firing(&leap, nine, Duration::ZERO, st_johns, f.at),
        )
        .take(3)
        .map(|f| f.key)
        .collect();
        assert_eq!(keys, vec![date(2027, 2, 28), date(2028, 2, 29), date(2029, 2, 28)]);
    }

    #[test]
    fn the_next_firing_agrees_with_the_firings_of_a_window() {
        let tz = zone("Pacific/Chatham");
        let b = birthday(1, 2);
        let after = utc("2027-01-01 00:00");
        let next = next_date_firing(&b, time("23:30"), days(-2), tz, after).unwrap();
        let window = date_firings(&b, time("23:30"), days(-2), tz, after, after + TimeDelta::days(400));
        assert_eq!(window.first(), Some(&next));
    }

    #[test]
    fn trigger_dates_come_from_birthdays_and_member_dates() {
        let b = Birthday { year: Some(1990), month: 2, day: 29 };
        assert_eq!(TriggerDate::from(&b), birthday(2, 29));
        assert_eq!(TriggerDate::of(date(2024, 3, 5), true), birthday(3, 5));
        assert_eq!(TriggerDate::of(date(2024, 3, 5), false), TriggerDate::Once(date(2024, 3, 5)));
    }

    #[test]
    fn candidate_month_days_cover_the_window_with_a_margin() {
        let md = candidate_month_days(utc("2027-06-10 00:00"), utc("2027-06-11 00:00"), Duration::ZERO);
        assert!(md.contains(&(6, 10)) && md.contains(&(6, 11)));
        assert!(md.len() <= 8, "{md:?}");
        // A negative offset looks ahead: -3d on 29 Dec means birthdays around 1 Jan.
        let md = candidate_month_days(utc("2027-12-29 00:00"), utc("2027-12-29 12:00"), days(-3));
        assert!(md.contains(&(1, 1)), "{md:?}");
        assert!(!md.contains(&(12, 29)), "{md:?}");
        assert!(candidate_month_days(utc("2027-06-10 00:00"), utc("2027-06-10 00:00"), Duration::ZERO).is_empty());
    }

    #[test]
    fn candidate_month_days_include_feb_29_with_feb_28_of_a_common_year() {
        let md = candidate_month_days(utc("2027-02-24 00:00"), utc("2027-02-25 00:00"), Duration::ZERO);
        assert!(!md.contains(&(2, 28)) && !md.contains(&(2, 29)), "{md:?}");
        let md = candidate_month_days(utc("2027-02-28 00:00"), utc("2027-02-28 01:00"), Duration::ZERO);
        assert!(md.contains(&(2, 28)) && md.contains(&(2, 29)), "{md:?}");
        // In a leap year 28 February is only itself; 29 February comes when it is near.
        let md = candidate_month_days(utc("2028-02-28 00:00"), utc("2028-02-28 01:00"), Duration::ZERO);
        assert!(md.contains(&(2, 28)) && !md.contains(&(2, 29)), "{md:?}");
        let md = candidate_month_days(utc("2028-02-29 00:00"), utc("2028-02-29 01:00"), Duration::ZERO);
        assert!(md.contains(&(2, 29)), "{md:?}");
        let year = candidate_month_days(utc("2027-01-01 00:00"), utc("2028-06-01 00:00"), Duration::ZERO);
        assert_eq!(year.len(), 366);
        assert!(year.contains(&(2, 29)));
    }

    /// Every zone of the database: a member's firings in the two years around a change of
    /// year and a 29 February are among the candidates of the tightest window around them.
    #[test]
    fn candidate_month_days_never_miss_a_firing_in_any_time_zone() {
        let mut checked = 0;
        for tz in chrono_tz::TZ_VARIANTS {
            for (month, day) in [(1, 1), (12, 31), (2, 28), (2, 29), (3, 1)] {
                for at in ["00:00", "02:30", "23:59"] {
                    for offset in
                        [Duration::ZERO, days(-3), Duration::from_secs(-(86_400 + 43_200)), Duration::from_secs(64_800)]
                    {
                        let b = birthday(month, day);
                        for f in
                            date_firings(&b, time(at), offset, tz, utc("2026-12-01 00:00"), utc("2028-04-01 00:00"))
                        {
                            let candidates = candidate_month_days(f.at - TimeDelta::seconds(1), f.at, offset);
                            assert!(
                                candidates.contains(&(month, day)),
                                "{month}-{day} at {at} offset {offset} in {tz} fires at {}: not in {candidates:?}",
                                f.at
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "only {checked} firings checked");
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        const ZONES: &[&str] = &[
            "Asia/Shanghai",
            "America/New_York",
            "Europe/London",
            "Europe/Berlin",
            "Pacific/Auckland",
            "Asia/Kolkata",
            "Pacific/Chatham",
            "America/St_Johns",
            "Australia/Lord_Howe",
            "Pacific/Kiritimati",
            "Pacific/Apia",
            "Etc/GMT+12",
            "Etc/GMT-14",
            "America/Sao_Paulo",
            "Asia/Tehran",
            "UTC",
        ];

        fn offsets() -> impl Strategy<Value = Duration> {
            prop_oneof![
                (-60i64..=60).prop_map(Duration::from_days),
                (-400 * 86_400i64..=400 * 86_400).prop_map(Duration::from_secs),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// A window around any firing of any member lists the member's month and day.
            #[test]
            fn candidate_month_days_never_miss_a_firing(
                zone_index in 0..ZONES.len(),
                month in 1u32..=12,
                day in 1u32..=31,
                hour in 0u32..24,
                minute in 0u32..60,
                offset in offsets(),
                year in 1995i32..2045,
                before in 1i64..=3 * 86_400,
                after in 0i64..=3 * 86_400,
            ) {
                let day = day.min(match month { 2 => 29, 4 | 6 | 9 | 11 => 30, _ => 31 });
                let tz = zone(ZONES[zone_index]);
                let at = NaiveTime::from_hms_opt(hour, minute, 0).unwrap();
                let b = birthday(month, day);
                let start = utc(&format!("{year}-01-01 00:00"));
                let firing = next_date_firing(&b, at, offset, tz, start).unwrap();
                let from = firing.at - TimeDelta::seconds(before);
                let to = firing.at + TimeDelta::seconds(after);
                let candidates = candidate_month_days(from, to, offset);
                prop_assert!(candidates.contains(&(month, day)), "{:?} not in {:?}", firing, candidates);
                // And the window's own firings are the ones it was built around.
                prop_assert!(date_firings(&b, at, offset, tz, from, to).contains(&firing));
                prop_assert_eq!(firing.key, anniversary_in(month, day, firing.key.year()));
            }

            /// Firings step through the years in order, one per year, a year apart ± a few days.
            #[test]
            fn next_date_firing_walks_the_years_in_order(
                zone_index in 0..ZONES.len(),
                month in 1u32..=12,
                day in 1u32..=31,
                hour in 0u32..24,
                offset in offsets(),
                year in 1995i32..2045,
            ) {
                let tz = zone(ZONES[zone_index]);
                let at = NaiveTime::from_hms_opt(hour, 0, 0).unwrap();
                let b = birthday(month, day);
                let first = next_date_firing(&b, at, offset, tz, utc(&format!("{year}-06-15 12:00"))).unwrap();
                let second = next_date_firing(&b, at, offset, tz, first.at).unwrap();
                prop_assert_eq!(second.key.year(), first.key.year() + 1);
                let gap = (second.at - first.at).num_hours();
                prop_assert!((360 * 24..=368 * 24).contains(&gap), "{:?} then {:?}", first, second);
            }
        }
    }
}
