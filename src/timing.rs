//! Placeholder until the timing branch lands (same API).

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::duration::Duration;

pub fn local_instant(date: NaiveDate, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let mut local = date.and_time(time);
    for _ in 0..180 {
        match tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            chrono::LocalResult::None => local += chrono::Duration::minutes(1),
        }
    }
    date.and_time(time).and_utc()
}

pub fn anniversary_in(month: u32, day: u32, year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day)
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(year, month, day - 1).expect("28 Feb"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerDate {
    Yearly { month: u32, day: u32 },
    Once(NaiveDate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateFiring {
    pub key: NaiveDate,
    pub at: DateTime<Utc>,
}

fn firing(key: NaiveDate, at: NaiveTime, offset: Duration, tz: Tz) -> DateFiring {
    let secs = offset.as_secs();
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let date = if days >= 0 { key + Days::new(days as u64) } else { key - Days::new((-days) as u64) };
    DateFiring { key, at: local_instant(date, at, tz) + chrono::Duration::seconds(rest) }
}

pub fn date_firings(
    date: &TriggerDate,
    at: NaiveTime,
    offset: Duration,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateFiring> {
    let keys: Vec<NaiveDate> = match date {
        TriggerDate::Once(d) => vec![*d],
        TriggerDate::Yearly { month, day } => {
            ((from.year() - 2)..=(to.year() + 2)).map(|y| anniversary_in(*month, *day, y)).collect()
        }
    };
    keys.into_iter().map(|k| firing(k, at, offset, tz)).filter(|f| f.at > from && f.at <= to).collect()
}

pub fn next_date_firing(
    date: &TriggerDate,
    at: NaiveTime,
    offset: Duration,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateFiring> {
    date_firings(date, at, offset, tz, after, after + chrono::Duration::days(800)).into_iter().min_by_key(|f| f.at)
}

pub fn candidate_month_days(from: DateTime<Utc>, to: DateTime<Utc>, offset: Duration) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let start = (from - offset.to_chrono()).date_naive() - Days::new(2);
    let end = (to - offset.to_chrono()).date_naive() + Days::new(2);
    let mut d = start;
    while d <= end && out.len() < 367 {
        out.push((d.month(), d.day()));
        if d.month() == 2 && d.day() == 28 {
            out.push((2, 29));
        }
        d = d + Days::new(1);
    }
    out.sort();
    out.dedup();
    out
}

pub fn next_local_time(time: NaiveTime, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    for d in 0..3 {
        let at = local_instant(today + Days::new(d), time, tz);
        if at > now {
            return at;
        }
    }
    now
}

#[derive(Debug, thiserror::Error)]
pub enum TimingError {
    #[error("`{0}` is not a window like \"21:00-09:00\"")]
    Window(String),
    #[error("`{0}` is not a cap like \"3 per 7d\"")]
    Cap(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub fn parse(text: &str) -> Result<QuietHours, TimingError> {
        let err = || TimingError::Window(text.to_string());
        let (a, b) = text.split_once('-').ok_or_else(err)?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| err())?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| err())?;
        if start == end {
            return Err(err());
        }
        Ok(QuietHours { start, end })
    }

    pub fn deferral(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz);
        let t = local.time();
        let inside =
            if self.start < self.end { t >= self.start && t < self.end } else { t >= self.start || t < self.end };
        if !inside {
            return None;
        }
        let date = local.date_naive();
        let end_date = if self.start > self.end && t >= self.start { date + Days::new(1) } else { date };
        Some(local_instant(end_date, self.end, tz))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub count: u32,
    pub window: Duration,
}

impl FrequencyCap {
    pub fn parse(text: &str) -> Result<FrequencyCap, TimingError> {
        let err = || TimingError::Cap(text.to_string());
        let (n, w) = text.split_once(" per ").ok_or_else(err)?;
        Ok(FrequencyCap {
            count: n.trim().parse().map_err(|_| err())?,
            window: Duration::parse(w.trim()).map_err(|_| err())?,
        })
    }
}
