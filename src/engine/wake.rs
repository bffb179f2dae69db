//! When the engine next has something to do: the earliest of a run coming due, a delivery
//! to (re)try, a schedule firing and a date trigger's member-local firing time. `serve`
//! polls; `simulate` jumps its virtual clock straight to this instant, so a year with
//! nothing happening between two firings costs two ticks, not half a million.
//!
//! Events are not here: they arrive from outside (the API, or a simulation's fixtures).

use std::sync::Arc;

use chrono::{DateTime, Days, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::{Engine, EngineError};
use crate::duration::Duration;
use crate::journey::{Journey, Trigger};
use crate::timing::{local_instant, member_timezone};

impl Engine {
    /// The earliest instant strictly after `after` at which a trigger can fire: a schedule
    /// firing, or a date trigger's member-local time in one of `zones`
    /// ([`Engine::member_zones`], which only an import or a `member.*` event changes).
    pub async fn next_trigger(&self, after: DateTime<Utc>, zones: &[Tz]) -> Option<DateTime<Utc>> {
        let journeys: Vec<Arc<Journey>> = self.registry.lock().await.current().cloned().collect();
        journeys
            .iter()
            .filter_map(|journey| match &journey.trigger {
                Trigger::Event { .. } => None,
                Trigger::Schedule { cron, timezone } => cron.next_after(after, *timezone),
                Trigger::Date { at, offset, .. } => next_date_boundary(*at, *offset, zones, after),
            })
            .min()
    }

    /// The earliest instant strictly after `now` at which a tick can do something that
    /// is not caused by a new event: a run or a delivery coming due, or a trigger.
    pub async fn next_wake(&self, now: DateTime<Utc>, zones: &[Tz]) -> Result<Option<DateTime<Utc>>, EngineError> {
        let due = self.store.next_due_after(now).await?;
        let trigger = self.next_trigger(now, zones).await;
        Ok(due.into_iter().chain(trigger).min())
    }

    /// Ticks at `now` until nothing is left to do at that instant (what [`Engine::settle`]
    /// does), for a clock that jumps from one [`Engine::next_wake`] to the next: `last` is
    /// the instant it stopped at before (nothing happened in between), and `triggers` says
    /// whether a trigger can fire in `(last, now]` ([`Engine::next_trigger`]).
    ///
    /// Three things make it cheaper than `settle`, and none changes a decision. It asks the
    /// store what is due ([`crate::store::Store::due_at`]: index reads, asked again after a
    /// phase did work) and skips a phase that would claim nothing. It proves it is done by
    /// that same question instead of one more whole tick. And it looks for trigger firings
    /// only when one can be due. In between, a polling clock's date scans would each have
    /// found no firing and moved their cursor on — so before the next scan, the cursors are
    /// moved to `last`, and the scan covers `(last, now]` with the members as they are,
    /// exactly the windows polling would have covered since. (A schedule with no firing
    /// changes nothing at all.) The date scans load every member whose date is near: between
    /// firings they were most of the work of a tick.
    pub async fn settle_jump(
        &self,
        now: DateTime<Utc>,
        last: DateTime<Utc>,
        triggers: bool,
    ) -> Result<super::Tick, EngineError> {
        let mut total = super::Tick::default();
        if triggers {
            let journeys: Vec<Arc<Journey>> = self.registry.lock().await.current().cloned().collect();
            for journey in journeys.iter().filter(|j| matches!(j.trigger, Trigger::Date { .. })) {
                let cursor = self.store.date_scan_cursor(&journey.id).await?;
                if cursor.is_none_or(|c| c < last) {
                    self.store.set_date_scan_cursor(&journey.id, last).await?;
                }
            }
            // One whole tick; a second at the same instant would find no firing (this one
            // moved the cursors to `now`).
            total = self.tick(now).await?;
        }
        for _ in 0..100 {
            // The phases of a tick, in order; each asks again after an earlier one did work.
            let mut due = self.store.due_at(now).await?;
            if !due.any() {
                break;
            }
            let events = if due.events { self.take_events(now).await? } else { 0 };
            if events > 0 {
                due = self.store.due_at(now).await?;
            }
            let advanced = if due.runs { self.advance(now).await? } else { 0 };
            if advanced > 0 {
                due = self.store.due_at(now).await?;
            }
            let sent = if due.deliveries { self.send(now).await? } else { 0 };
            total.events += events;
            total.advanced += advanced;
            total.sent += sent;
        }
        Ok(total)
    }

    /// The time zones members' local times are read in: their own, and the default (for
    /// members without one, including those an event creates later).
    pub async fn member_zones(&self) -> Result<Vec<Tz>, EngineError> {
        let mut zones: Vec<Tz> = self
            .store
            .member_timezones()
            .await?
            .iter()
            .map(|tz| member_timezone(tz.as_deref(), self.policies.default_timezone))
            .chain([self.policies.default_timezone])
            .collect();
        zones.sort_by_key(|tz| tz.name());
        zones.dedup();
        Ok(zones)
    }
}

/// The first instant strictly after `now` at which a date trigger firing at member-local
/// `at` with `offset` can fire for a member in one of `zones`: whole days of the offset
/// move the calendar date and so never change the time of day; the rest moves the instant
/// (as [`crate::timing::date_firings`] computes a firing). Every firing of every member is
/// one of these instants, so a scan there never misses or delays one.
pub fn next_date_boundary(at: NaiveTime, offset: Duration, zones: &[Tz], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let rest = TimeDelta::seconds(offset.as_secs() % 86_400);
    zones
        .iter()
        .filter_map(|tz| {
            let today = now.with_timezone(tz).date_naive();
            let start = today.checked_sub_days(Days::new(2))?;
            (0..6)
                .filter_map(|d| start.checked_add_days(Days::new(d)))
                .filter_map(|date| local_instant(date, at, *tz).checked_add_signed(rest))
                .find(|instant| *instant > now)
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn nine() -> NaiveTime {
        NaiveTime::from_hms_opt(9, 0, 0).unwrap()
    }

    #[test]
    fn the_next_boundary_is_the_earliest_local_time_across_zones() {
        let zones = [chrono_tz::Asia::Shanghai, chrono_tz::Europe::London];
        // 02:00 UTC: 10:00 in Shanghai (09:00 passed), 02:00 in London (09:00 UTC to come).
        assert_eq!(
            next_date_boundary(nine(), Duration::from_days(0), &zones, at("2027-01-10T02:00:00Z")),
            Some(at("2027-01-10T09:00:00Z"))
        );
        // Right at a boundary, the next one.
        assert_eq!(
            next_date_boundary(nine(), Duration::from_days(0), &zones, at("2027-01-10T09:00:00Z")),
            Some(at("2027-01-11T01:00:00Z"))
        );
    }

    #[test]
    fn boundaries_follow_daylight_saving_time() {
        let ny = [chrono_tz::America::New_York];
        // 14 March 2027: clocks go forward; 09:00 EDT is 13:00 UTC (the day before, 14:00).
        assert_eq!(
            next_date_boundary(nine(), Duration::from_days(0), &ny, at("2027-03-13T15:00:00Z")),
            Some(at("2027-03-14T13:00:00Z"))
        );
    }

    #[test]
    fn whole_day_offsets_keep_the_time_of_day_and_the_rest_moves_it() {
        let sh = [chrono_tz::Asia::Shanghai];
        let now = at("2027-01-10T00:00:00Z");
        assert_eq!(
            next_date_boundary(nine(), Duration::parse("-7d").unwrap(), &sh, now),
            Some(at("2027-01-10T01:00:00Z"))
        );
        assert_eq!(
            next_date_boundary(nine(), Duration::parse("-1d12h").unwrap(), &sh, now),
            Some(at("2027-01-10T13:00:00Z"))
        );
    }

    #[test]
    fn no_zones_no_boundary() {
        assert_eq!(next_date_boundary(nine(), Duration::from_days(0), &[], at("2027-01-10T00:00:00Z")), None);
    }
}
