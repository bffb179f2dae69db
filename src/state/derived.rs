//! The derived fields of DESIGN §1 as pure functions of a member and `now`: lifecycle,
//! CLV, the RFM segment table, and the day counts. The store computes lifecycle and CLV
//! for the whole base in SQL with exactly these rules (`store::derived`, and a test holds
//! the two equal); RFM scores need the whole base and exist only there.
//!
//! - **lifecycle** — `new` when joined less than `new_within` ago (default 30 days) with
//!   fewer than two orders; otherwise by the time since the last order (or, with no order,
//!   since joining): at least `churned_after` (180 days) → `churned`, at least
//!   `dormant_after` (60 days) → `dormant`, else `active`. A member with neither date is
//!   `active`.
//! - **clv** — average order value × orders per year × expected years, in minor units:
//!   `total_spend / order_count × order_count / tenure_years × clv_years`
//!   = `total_spend × (clv_years·12) / max(tenure_months, 12)`, where tenure runs from
//!   the first order (else joining) to now in whole 30-day months and counts at least one
//!   year, so a first-week buyer is not projected at 52 orders a year. Whole months keep
//!   CLV still from day to day (a member's CLV changes when they order, or once a month).
//!   Integer arithmetic, truncated; 0 without orders or spend.
//! - **rfm_r / rfm_f / rfm_m** — quintiles over every member with an order, by recency
//!   (`last_order_at`), frequency (`order_count`) and monetary value (`total_spend`), 5
//!   the best: `1 + 5·(rank − 1) / n` with SQL `RANK()` (ties share the lower score, so
//!   equal members always score alike; `NTILE` would split them at random). Members
//!   without orders have no scores and no segment.
//! - **rfm_segment** — [`rfm_segment`] from R and FM = ⌈(F + M) / 2⌉, by [`RFM_GRID`].

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;

use crate::duration::Duration;
use crate::member::Member;

/// The thresholds and horizon the derived fields use (`[lifecycle]` in tidings.toml, read by
/// `Config::state_settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub new_within: Duration,
    pub dormant_after: Duration,
    pub churned_after: Duration,
    /// `clv_years` × 12, rounded.
    pub clv_months: i64,
    pub default_timezone: Tz,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            new_within: Duration::from_days(30),
            dormant_after: Duration::from_days(60),
            churned_after: Duration::from_days(180),
            clv_months: 36,
            default_timezone: Tz::Asia__Shanghai,
        }
    }
}

/// `now` at the microsecond precision timestamps are stored with, so that comparisons in
/// memory and in SQL agree.
pub fn stored_now(now: DateTime<Utc>) -> DateTime<Utc> {
    now.trunc_subsecs(6)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    New,
    Active,
    Dormant,
    Churned,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::Dormant => "dormant",
            Lifecycle::Churned => "churned",
        }
    }
}

pub fn lifecycle(m: &Member, now: DateTime<Utc>, settings: &Settings) -> Lifecycle {
    let now = stored_now(now);
    let ago = |d: Duration| now - d.to_chrono();
    if m.joined_at.is_some_and(|j| j > ago(settings.new_within)) && m.order_count < 2 {
        return Lifecycle::New;
    }
    match m.last_order_at.or(m.joined_at) {
        Some(t) if t <= ago(settings.churned_after) => Lifecycle::Churned,
        Some(t) if t <= ago(settings.dormant_after) => Lifecycle::Dormant,
        _ => Lifecycle::Active,
    }
}

/// Whole seconds since the epoch, floored (SQLite's `unixepoch`, PostgreSQL's
/// `floor(extract(epoch ...))`).
fn epoch_seconds(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// A month of tenure: 30 days.
const MONTH_SECONDS: i64 = 30 * 86_400;

pub fn clv(m: &Member, now: DateTime<Utc>, settings: &Settings) -> i64 {
    if m.order_count <= 0 || m.total_spend <= 0 {
        return 0;
    }
    let since = m.first_order_at.or(m.joined_at);
    let tenure_months = since.map_or(0, |t| (epoch_seconds(stored_now(now)) - epoch_seconds(t)) / MONTH_SECONDS);
    let clv = i128::from(m.total_spend) * i128::from(settings.clv_months) / i128::from(tenure_months.max(12));
    i64::try_from(clv).unwrap_or(i64::MAX)
}

/// The RFM segment of each (R, FM) pair: `RFM_GRID[r - 1][fm - 1]`.
pub const RFM_GRID: [[&str; 5]; 5] = [
    // FM:  1             2              3                     4                     5
    ["lost", "hibernating", "at_risk", "at_risk", "cant_lose"], // R 1
    ["hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"], // R 2
    ["about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"], // R 3
    ["promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"], // R 4
    ["new_customer", "potential_loyalist", "potential_loyalist", "champions", "champions"], // R 5
];

/// The combined frequency–monetary score: ⌈(F + M) / 2⌉.
pub fn fm_score(f: i64, m: i64) -> i64 {
    (f + m + 1) / 2
}

/// The named segment of RFM scores (each 1–5); `None` outside that range.
pub fn rfm_segment(r: i64, f: i64, m: i64) -> Option<&'static str> {
    let ok = |s: i64| (1..=5).contains(&s);
    if !(ok(r) && ok(f) && ok(m)) {
        return None;
    }
    Some(RFM_GRID[(r - 1) as usize][(fm_score(f, m) - 1) as usize])
}

/// Whole days from `t` to `now`, floored (negative for a future `t`).
pub fn days_since(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let d = now - t;
    let nanos = i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos());
    i64::try_from(nanos.div_euclid(86_400 * 1_000_000_000)).unwrap_or(i64::MAX)
}

/// The fields computed from stored ones and `now` when they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Computed {
    pub days_since_last_order: Option<i64>,
    pub days_until_birthday: Option<i64>,
    pub age_days: Option<i64>,
}

pub fn computed(m: &Member, now: DateTime<Utc>, default_timezone: Tz) -> Computed {
    let tz = m.timezone.as_deref().and_then(|t| t.parse::<Tz>().ok()).unwrap_or(default_timezone);
    Computed {
        days_since_last_order: m.last_order_at.map(|t| days_since(t, now)),
        days_until_birthday: m.birthday.map(|b| crate::condition::days_until_birthday(&b, tz, now)),
        age_days: m.joined_at.map(|t| days_since(t, now)),
    }
}

/// Sets the per-member derived fields (lifecycle and CLV; RFM is set over the whole base).
pub fn refresh(m: &mut Member, now: DateTime<Utc>, settings: &Settings) {
    m.lifecycle = Some(lifecycle(m, now, settings).as_str().to_string());
    m.clv = Some(clv(m, now, settings));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn days_ago(d: i64) -> Option<DateTime<Utc>> {
        Some(now() - chrono::Duration::days(d))
    }

    fn member(joined: i64, last_order: Option<i64>, orders: i64) -> Member {
        Member {
            id: "m".into(),
            joined_at: days_ago(joined),
            last_order_at: last_order.and_then(days_ago),
            first_order_at: last_order.and_then(days_ago),
            order_count: orders,
            ..Member::default()
        }
    }

    #[test]
    fn lifecycle_follows_the_default_thresholds() {
        let s = Settings::default();
        let l = |m: Member| lifecycle(&m, now(), &s).as_str();
        assert_eq!(l(member(10, Some(10), 1)), "new");
        assert_eq!(l(member(10, Some(2), 2)), "active", "a second order ends `new`");
        assert_eq!(l(member(29, None, 0)), "new");
        assert_eq!(l(member(30, None, 0)), "active", "exactly 30 days is no longer new");
        assert_eq!(l(member(400, Some(59), 3)), "active");
        assert_eq!(l(member(400, Some(60), 3)), "dormant");
        assert_eq!(l(member(400, Some(179), 3)), "dormant");
        assert_eq!(l(member(400, Some(180), 3)), "churned");
        assert_eq!(l(member(90, None, 0)), "dormant", "no order: counted from joining");
        assert_eq!(l(Member::default()), "active");
    }

    #[test]
    fn lifecycle_thresholds_come_from_settings() {
        let s = Settings {
            new_within: Duration::from_days(7),
            dormant_after: Duration::from_days(30),
            churned_after: Duration::from_days(90),
            ..Settings::default()
        };
        assert_eq!(lifecycle(&member(10, Some(10), 1), now(), &s), Lifecycle::Active);
        assert_eq!(lifecycle(&member(400, Some(45), 3), now(), &s), Lifecycle::Dormant);
        assert_eq!(lifecycle(&member(400, Some(95), 3), now(), &s), Lifecycle::Churned);
    }

    #[test]
    fn clv_projects_yearly_spend_over_the_expected_years() {
        let s = Settings::default();
        let mut m = member(800, Some(10), 4);
        m.first_order_at = days_ago(730);
        m.total_spend = 40_000;
        // 20,000 a year for 3 years.
        assert_eq!(clv(&m, now(), &s), 60_000);
        // A first-week buyer counts a full year of tenure.
        m.first_order_at = days_ago(3);
        assert_eq!(clv(&m, now(), &s), 120_000);
        m.order_count = 0;
        assert_eq!(clv(&m, now(), &s), 0);
    }

    #[test]
    fn every_rfm_cell_has_a_segment_of_the_schema() {
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    let segment = rfm_segment(r, f, m).unwrap();
                    assert!(crate::schema::RFM_SEGMENTS.contains(&segment), "{segment}");
                }
            }
        }
        let used: std::collections::BTreeSet<&str> = RFM_GRID.iter().flatten().copied().collect();
        assert_eq!(used.len(), crate::schema::RFM_SEGMENTS.len(), "every segment is reachable");
        assert_eq!(rfm_segment(5, 5, 5), Some("champions"));
        assert_eq!(rfm_segment(1, 1, 1), Some("lost"));
        assert_eq!(rfm_segment(5, 1, 1), Some("new_customer"));
        assert_eq!(rfm_segment(1, 5, 4), Some("cant_lose"));
        assert_eq!(rfm_segment(0, 1, 1), None);
    }

    #[test]
    fn days_are_whole_and_floored() {
        let t: DateTime<Utc> = "2026-05-30T13:00:00Z".parse().unwrap();
        assert_eq!(days_since(t, now()), 1);
        let future: DateTime<Utc> = "2026-06-01T13:00:00Z".parse().unwrap();
        assert_eq!(days_since(future, now()), -1);
        assert_eq!(days_since(now(), now()), 0);
    }
}
