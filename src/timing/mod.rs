//! Time math for the engine, all pure: member-local times, date triggers, `wait: { until }`,
//! quiet hours and frequency caps. Nothing here reads the clock; `now` is passed in.
//!
//! The rules, everywhere a member-local wall-clock time becomes an instant:
//!
//! - **A time that does not exist** (the spring-forward gap: 02:30 on a 02:00→03:00 day)
//!   happens at the first valid instant after the gap (03:00 local).
//! - **A time that occurs twice** (the autumn fold: 01:30 on a 02:00→01:00 day) happens at
//!   its first occurrence only, so nothing fires twice.
//! - **29 February** is 28 February in common years.
//! - **Offsets** of date triggers: whole days move the calendar date (`-3d` at 09:00 is
//!   09:00 local three days earlier, whatever DST does in between), the rest moves the
//!   instant. The idempotency key of a firing is the date the field falls on, before the
//!   offset.
//! - **Quiet hours** defer a send to the window's member-local end, never drop it.
//! - **A member's time zone** is their own `timezone` if it names an IANA zone, else the
//!   configured `default_timezone` ([`member_timezone`]).
//!
//! [`crate::schedule`] uses [`local_instant`] too, so schedule triggers follow the same rules.

mod date_trigger;
mod frequency_cap;
mod local;
mod quiet_hours;

pub use date_trigger::{
    DateFiring, TriggerDate, anniversary_in, candidate_dates, candidate_month_days, date_firings, next_date_firing,
};
pub use frequency_cap::FrequencyCap;
pub use local::{local_instant, member_timezone, next_local_time};
pub use quiet_hours::QuietHours;

use crate::duration::DurationError;

/// Why a quiet-hours window or a frequency cap in the config does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("quiet hours cannot be empty")]
    EmptyQuietHours,
    #[error("`{text}` is not a window of two times like \"21:00-09:00\"")]
    NotAWindow { text: String },
    #[error("`{time}` in `{text}` is not a time of day")]
    NotATime { text: String, time: String },
    #[error("quiet hours `{text}` start and end at the same time")]
    EmptyWindow { text: String },
    #[error("`{text}` is not a frequency cap like \"3 per 7d\"")]
    NotACap { text: String },
    #[error("`{count}` in `{text}` is not a number of sends of at least 1")]
    CapCount { text: String, count: String },
    #[error("the window of `{text}` is not a duration: {source}")]
    CapWindow { text: String, source: DurationError },
    #[error("write `{short}`, not `{text}`")]
    CapWindowSpelledOut { text: String, short: String },
    #[error("the window of `{text}` must be longer than zero")]
    CapWindowNotPositive { text: String },
}

impl TimingError {
    /// What to write instead.
    pub fn hint(&self) -> &'static str {
        match self {
            TimingError::EmptyQuietHours | TimingError::NotAWindow { .. } => {
                "write the member-local start and end on a 24-hour clock, like \"21:00-09:00\" (it may cross midnight)"
            }
            TimingError::NotATime { .. } => "write times as HH:MM on a 24-hour clock, from 00:00 to 23:59",
            TimingError::EmptyWindow { .. } => {
                "a window needs two different times; to have no quiet hours for a channel, remove its line"
            }
            TimingError::NotACap { .. } => "write `<number> per <duration>`, like \"3 per 7d\" or \"1 per 24h\"",
            TimingError::CapCount { .. } => {
                "write how many sends are allowed, at least 1; to send nothing on a channel, remove its consent"
            }
            TimingError::CapWindow { .. }
            | TimingError::CapWindowSpelledOut { .. }
            | TimingError::CapWindowNotPositive { .. } => "write the window as a duration: `7d`, `24h`, `1w`",
        }
    }
}
