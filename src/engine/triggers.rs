//! Time-based triggers: schedule firings (cron in the journey's time zone) and date scans
//! (birthdays, anniversaries, points expiry, in each member's time zone).
//!
//! One worker at a time looks for due firings (the `scheduler` lease); each firing is also a
//! row claimed once in the database (`firings`), and each run it creates is unique per
//! (journey, member, firing), so two replicas firing the same tick enroll each member once.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::inbox::{line, matches, may_enter};
use super::{Engine, EngineError};
use crate::journey::{DateField, Journey, Reentry, Trigger};
use crate::store::runs::{NewRun, Progress, Reentry as StoreReentry};
use crate::store::versions::DateQuery;
use crate::timing::{self, TriggerDate};

pub(super) const LEASE: &str = "scheduler";

/// The `firings` row of the daily derived-state refresh, beside the journeys' rows (the
/// example journeys and the docs use plain names; a journey should not be called this).
const DERIVED: &str = "_derived";

/// Members of the base looked at per transaction when a schedule fires (a chunk is a range
/// of the members table, whether its members match or not).
const ENROLL_CHUNK: i64 = 50_000;

impl Engine {
    pub(super) async fn fire_triggers(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        if !self.hold_lease(LEASE, now).await? {
            return Ok(0);
        }
        self.refresh_derived(now).await?;
        self.refresh_models(now).await?;
        let journeys: Vec<Arc<Journey>> = self.registry.lock().await.current().cloned().collect();
        let mut enrolled = 0;
        for journey in journeys {
            // A stopping worker fires nothing more: what it has not fired, the next does.
            if self.is_stopping() {
                break;
            }
            enrolled += match &journey.trigger {
                Trigger::Schedule { .. } => self.fire_schedule(&journey, now).await?,
                Trigger::Date { .. } => self.scan_dates(&journey, now).await?,
                Trigger::Event { .. } => 0,
            };
        }
        Ok(enrolled)
    }

    /// Lifecycle, CLV and RFM move with time, not only with events (a member becomes
    /// `dormant` by not ordering): once per UTC day, before that day's firings, one worker
    /// recomputes them over the whole base — claimed like a firing, so replicas do it once.
    async fn refresh_derived(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let day = now.date_naive();
        let mut seen = self.derived_day.lock().await;
        if *seen == Some(day) {
            return Ok(());
        }
        let key = format!("derived:{day}");
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        if let Some(claim) = self.store.claim_firing(DERIVED, &key, midnight, now, self.options.lease).await? {
            let done = self.store.recompute_derived(now, &self.settings).await?;
            self.store.firing_progress(&claim, None, done.lifecycle_changed, now).await?;
            tracing::info!(%day, lifecycle_changed = done.lifecycle_changed, rfm_changed = done.rfm_changed, "derived state refreshed");
        }
        *seen = Some(day);
        Ok(())
    }

    /// The recommendation models (co-purchase neighbours, bestsellers) follow the day's
    /// orders: once per UTC day one worker rebuilds them, claimed like a firing. `simulate`
    /// calls this at every clock stop (a no-op but on a new day), since its clock may pass
    /// a day without a trigger tick.
    pub async fn refresh_models(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let day = now.date_naive();
        let mut seen = self.models_day.lock().await;
        if *seen == Some(day) {
            return Ok(());
        }
        let key = format!("models:{day}");
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        if let Some(claim) = self.store.claim_firing(DERIVED, &key, midnight, now, self.options.lease).await? {
            let model = self.store.recompute_recommendations(now, &self.options.recommend).await?;
            self.store.firing_progress(&claim, None, model.pairs, now).await?;
            tracing::info!(%day, pairs = model.pairs, bestsellers = model.bestsellers, "recommendation models rebuilt");
        }
        *seen = Some(day);
        Ok(())
    }

    /// Fires a schedule's latest firing in (where it left off, now], once: missed firings
    /// coalesce ([`crate::schedule::CronSchedule::due_firing`]). Where it left off is, at
    /// start, its last recorded firing but no earlier than `engine.catch_up` ago.
    async fn fire_schedule(&self, journey: &Journey, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let Trigger::Schedule { cron, timezone } = &journey.trigger else { return Ok(0) };
        let from = {
            let mut cursors = self.schedule_cursor.lock().await;
            match cursors.get(&journey.id) {
                Some(at) => *at,
                None => {
                    let last = self.store.last_firing(&journey.id).await?;
                    let floor = now - self.options.catch_up;
                    let from = last.map_or(floor, |l| l.max(floor));
                    cursors.insert(journey.id.clone(), from);
                    from
                }
            }
        };
        let Some(fire_at) = cron.due_firing(from, now, *timezone) else { return Ok(0) };
        if let Some(missed) = cron.next_after(from, *timezone).filter(|first| *first < fire_at) {
            tracing::info!(journey = %journey.id, first_missed = %missed, %fire_at, "missed firings coalesce into the latest");
        }
        let enrolled = self.fire(journey, fire_at, now).await?;
        self.schedule_cursor.lock().await.insert(journey.id.clone(), fire_at.max(from));
        Ok(enrolled)
    }

    /// One firing: claims it, then enrolls the audience in chunks, recording the cursor so
    /// a crash resumes where it stopped.
    async fn fire(&self, journey: &Journey, fire_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let key = format!("schedule:{}", fire_at.to_rfc3339());
        let Some(firing) = self.store.claim_firing(&journey.id, &key, fire_at, now, self.options.lease).await? else {
            return Ok(0);
        };
        let reentry = match journey.reentry {
            Reentry::Never => StoreReentry::Never,
            Reentry::Always => StoreReentry::Always,
            Reentry::After(gap) => StoreReentry::Since(now - gap.to_chrono()),
        };
        let mut cursor = firing.cursor.clone();
        let mut total = 0;
        loop {
            let (n, next) = self
                .store
                .enroll_audience(
                    &journey.id,
                    &journey.version,
                    &journey.steps[0].id,
                    &key,
                    journey.audience.as_ref().map(|a| &a.expr),
                    reentry,
                    cursor.as_deref(),
                    ENROLL_CHUNK,
                    now,
                )
                .await?;
            total += n;
            self.store.firing_progress(&firing, next.as_deref(), n, now + self.options.lease).await?;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.store.after_enrollment(total).await?;
        tracing::info!(journey = %journey.id, %fire_at, enrolled = total, "schedule fired");
        Ok(total)
    }

    /// Enrolls members whose date trigger fires in (where the scan left off, now].
    async fn scan_dates(&self, journey: &Journey, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let Trigger::Date { field, at, offset } = &journey.trigger else { return Ok(0) };
        // After downtime, dates of the last day still fire (a birthday a few hours late is
        // better than none); older ones do not (a birthday message a week late is worse).
        let floor = now - chrono::Duration::days(1);
        let from = self.store.date_scan_cursor(&journey.id).await?.map_or(floor, |c| c.max(floor));
        if from >= now {
            return Ok(0);
        }
        let query = match field {
            DateField::Member("birthday") | DateField::Member("joined_at") => {
                let days: Vec<String> = timing::candidate_month_days(from, now, *offset)
                    .into_iter()
                    .map(|(m, d)| format!("{m:02}-{d:02}"))
                    .collect();
                if *field == DateField::Member("birthday") {
                    DateQuery::Birthday(days)
                } else {
                    DateQuery::JoinedAt(days)
                }
            }
            DateField::Member(_) => {
                // A one-off timestamp: it fires `offset` from it, in a window two days wide
                // on either side for time zones.
                let margin = chrono::Duration::days(2);
                DateQuery::PointsExpireAt(from - offset.to_chrono() - margin, now - offset.to_chrono() + margin)
            }
            DateField::Attribute(name) => DateQuery::Attribute(name.clone()),
        };
        // The firings in the window, from what the candidates were read with; only members
        // with one are read whole (audience, entry rules).
        let mut firings: BTreeMap<String, Vec<timing::DateFiring>> = BTreeMap::new();
        for candidate in self.store.date_candidates(&query).await? {
            let tz = self.policies.timezone_of(&candidate);
            let Some(date) = trigger_date(field, &candidate, tz) else { continue };
            let fires = timing::date_firings(&date, *at, *offset, tz, from, now);
            if !fires.is_empty() {
                firings.insert(candidate.id, fires);
            }
        }
        let candidates: Vec<String> = firings.keys().cloned().collect();
        let mut progress = Progress::default();
        for chunk in candidates.chunks(self.options.batch as usize) {
            let members = self.store.members(chunk).await?;
            let last_entries = self.store.last_entries(chunk).await?;
            for member in members.values() {
                for firing in firings.get(&member.id).into_iter().flatten() {
                    // An anniversary is of a day at least a year gone, never the join day.
                    if *field == DateField::Member("joined_at")
                        && member
                            .joined_at
                            .is_some_and(|j| firing.at - offset.to_chrono() < j + chrono::Duration::days(300))
                    {
                        continue;
                    }
                    if !matches(journey.audience.as_ref(), member, None, self, now) {
                        continue;
                    }
                    // A date trigger fires once per occurrence (the run's key); `reentry:
                    // after` still spaces occurrences out, and no member is in twice at once.
                    let last = last_entries.get(&(member.id.clone(), journey.id.clone())).copied();
                    let rule = match journey.reentry {
                        Reentry::Never => Reentry::Always,
                        other => other,
                    };
                    if last.is_some_and(|(_, open)| open) || !may_enter(rule, last, now) {
                        let mut entry = line(now, &member.id, &journey.id, None, None, "skip");
                        entry.reason = Some(crate::decision::Reason::Reentry.as_str().to_string());
                        progress.journal.push(entry);
                        continue;
                    }
                    progress.enroll.push(NewRun {
                        member_id: member.id.clone(),
                        journey_id: journey.id.clone(),
                        version: journey.version.clone(),
                        first_step: journey.steps[0].id.clone(),
                        trigger_key: format!("date:{}", firing.key),
                        trigger_event_id: None,
                    });
                }
            }
        }
        let enrolled = progress.enroll.len() as u64;
        self.store.record_progress(progress, now).await?;
        self.store.set_date_scan_cursor(&journey.id, now).await?;
        Ok(enrolled)
    }
}

/// The date a member's field gives a date trigger, if it has one: a timestamp's date is the
/// member's local date (points expiring at midnight in Shanghai expire on that day there).
fn trigger_date(field: &DateField, member: &crate::member::Member, tz: chrono_tz::Tz) -> Option<TriggerDate> {
    let local = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
    match field {
        DateField::Member("birthday") => member.birthday.as_ref().map(TriggerDate::from),
        DateField::Member("joined_at") => member.joined_at.map(|j| TriggerDate::of(local(j), true)),
        DateField::Member("points_expire_at") => member.points_expire_at.map(|at| TriggerDate::of(local(at), false)),
        DateField::Member(_) => None,
        DateField::Attribute(name) => member
            .attributes
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
            .map(|date| TriggerDate::of(date, false)),
    }
}
