//! Events that arrived: event triggers, `exit_when` events, `for_event` waits and goals.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{Engine, EngineError};
use crate::condition::{self, EvalContext, NoHistory, Truth};
use crate::decision::{self, Reaction};
use crate::journey::{Journey, Reentry, Trigger};
use crate::member::{Event, Member};
use crate::store::runs::{ClaimedRun, JournalEntry, NewRun, Progress, RunUpdate};

pub(super) const LEASE: &str = "inbox";

/// The longest goal window looked back over for conversions.
const MAX_GOAL_WINDOW_DAYS: i64 = 400;

pub(super) fn line(
    at: DateTime<Utc>,
    member: &str,
    journey: &str,
    run: Option<i64>,
    step: Option<&str>,
    action: &str,
) -> JournalEntry {
    JournalEntry {
        at,
        member_id: member.to_string(),
        journey_id: journey.to_string(),
        run_id: run,
        step: step.map(str::to_string),
        action: action.to_string(),
        channel: None,
        template: None,
        variant: None,
        reason: None,
    }
}

/// Whether a member matches a condition (`where` with the event, or an audience).
pub(super) fn matches(
    cond: Option<&crate::journey::Condition>,
    member: &Member,
    event: Option<&Event>,
    engine: &Engine,
    now: DateTime<Utc>,
) -> bool {
    cond.is_none_or(|c| {
        let ctx =
            EvalContext { member, event, history: &NoHistory, now, default_timezone: engine.policies.default_timezone };
        condition::eval(&c.expr, &ctx) == Truth::True
    })
}

/// Whether the reentry rule lets a member in again, given its last entry (and whether a run
/// is still in progress).
pub(super) fn may_enter(reentry: Reentry, last: Option<(DateTime<Utc>, bool)>, now: DateTime<Utc>) -> bool {
    match (reentry, last) {
        (_, None) | (Reentry::Always, _) => true,
        (Reentry::Never, Some(_)) => false,
        (Reentry::After(gap), Some((entered, open))) => !open && entered + gap.to_chrono() <= now,
    }
}

impl Engine {
    pub(super) async fn process_inbox(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        if !self.hold_lease(LEASE, now).await? {
            return Ok(0);
        }
        let mut settled = 0;
        loop {
            let events = self.store.inbox(self.options.batch).await?;
            if events.is_empty() {
                return Ok(settled);
            }
            let count = events.len();
            let done = self.react(&events, now).await?;
            settled += done;
            if done < count || (count as i64) < self.options.batch {
                // Some events wait for a run another worker holds: try them next tick.
                return Ok(settled);
            }
        }
    }

    /// Works out what a batch of events does and writes it.
    async fn react(&self, events: &[Event], now: DateTime<Utc>) -> Result<usize, EngineError> {
        let member_ids: Vec<String> =
            events.iter().map(|e| e.member_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let members = self.store.members(&member_ids).await?;
        let earliest = events.iter().map(|e| e.occurred_at).min().unwrap_or(now);
        let since = earliest - chrono::Duration::days(MAX_GOAL_WINDOW_DAYS);
        let mut runs: HashMap<String, Vec<ClaimedRun>> = HashMap::new();
        for run in self.store.open_runs_of(&member_ids, since).await? {
            runs.entry(run.member_id.clone()).or_default().push(run);
        }
        let mut last_entries = self.store.last_entries(&member_ids).await?;

        let mut registry = self.registry.lock().await;
        let triggered: Vec<std::sync::Arc<Journey>> =
            registry.current().filter(|j| matches!(j.trigger, Trigger::Event { .. })).cloned().collect();

        let mut progress = Progress::default();
        let mut updates: HashMap<i64, RunUpdate> = HashMap::new();
        let mut settled: Vec<(String, Vec<i64>)> = Vec::with_capacity(events.len());
        for event in events {
            let mut touched = Vec::new();
            for run in runs.get_mut(&event.member_id).into_iter().flatten() {
                let Some(journey) = registry.version(&self.store, &run.journey_id, &run.version).await? else {
                    continue;
                };
                let update = updates.entry(run.id).or_insert_with(|| run.unchanged(None));
                // A finished run (or one this batch ended) can still reach its goal.
                let finished = matches!(update.status, "exited" | "done");
                let step = update.step.as_deref().and_then(|s| journey.step_by_id(s)).map(|(i, _)| i);
                let waiting = update.status == "waiting";
                let converted = run.converted || update.converted_at.is_some();
                for reaction in decision::react(&journey, step, waiting, run.entered_at, converted, event) {
                    if finished && reaction != Reaction::Convert {
                        continue;
                    }
                    touched.push(run.id);
                    match reaction {
                        Reaction::Convert => {
                            update.converted_at = Some(event.occurred_at);
                            update.goal_event_id = Some(event.id.clone());
                            progress.journal.push(line(
                                now,
                                &run.member_id,
                                &run.journey_id,
                                Some(run.id),
                                update.step.as_deref(),
                                "goal",
                            ));
                        }
                        Reaction::Exit => {
                            let mut entry = line(
                                now,
                                &run.member_id,
                                &run.journey_id,
                                Some(run.id),
                                update.step.as_deref(),
                                "exit",
                            );
                            entry.reason = Some(decision::Reason::ExitWhen.as_str().to_string());
                            progress.journal.push(entry);
                            update.status = "exited";
                            update.exit_reason = Some(decision::Reason::ExitWhen.as_str().to_string());
                            update.finished_at = Some(now);
                            update.due_at = None;
                            update.waiting_for = None;
                        }
                        Reaction::Wake => {
                            let next = step.and_then(|s| decision::after_wait(&journey, s, true));
                            match next {
                                Some(next) => {
                                    update.step = Some(journey.step(next).id.clone());
                                    update.status = "active";
                                    update.due_at = Some(now);
                                }
                                None => {
                                    progress.journal.push(line(
                                        now,
                                        &run.member_id,
                                        &run.journey_id,
                                        Some(run.id),
                                        None,
                                        "exit",
                                    ));
                                    update.status = "done";
                                    update.finished_at = Some(now);
                                    update.due_at = None;
                                }
                            }
                            update.waiting_for = None;
                        }
                    }
                }
            }
            touched.dedup();

            if let Some(member) = members.get(&event.member_id) {
                for journey in &triggered {
                    let Trigger::Event { name, filter } = &journey.trigger else { continue };
                    if *name != event.name || !matches(filter.as_ref(), member, Some(event), self, now) {
                        continue;
                    }
                    // The event is this journey's trigger, but the member is not its audience:
                    // recorded, so "why did X not get the welcome?" has an answer.
                    if !matches(journey.audience.as_ref(), member, Some(event), self, now) {
                        let mut entry = line(now, &member.id, &journey.id, None, None, "skip");
                        entry.reason = Some(decision::Reason::Audience.as_str().to_string());
                        progress.journal.push(entry);
                        continue;
                    }
                    let key = (member.id.clone(), journey.id.clone());
                    if !may_enter(journey.reentry, last_entries.get(&key).copied(), now) {
                        let mut entry = line(now, &member.id, &journey.id, None, None, "skip");
                        entry.reason = Some(decision::Reason::Reentry.as_str().to_string());
                        progress.journal.push(entry);
                        continue;
                    }
                    last_entries.insert(key, (now, true));
                    progress.enroll.push(NewRun {
                        member_id: member.id.clone(),
                        journey_id: journey.id.clone(),
                        version: journey.version.clone(),
                        first_step: journey.steps[0].id.clone(),
                        trigger_key: event.id.clone(),
                        trigger_event_id: Some(event.id.clone()),
                    });
                }
            }
            settled.push((event.id.clone(), touched));
        }
        drop(registry);
        let touched: HashSet<i64> = settled.iter().flat_map(|(_, runs)| runs.iter().copied()).collect();
        progress.updates = updates.into_values().filter(|u| touched.contains(&u.id)).collect();
        Ok(self.store.settle_inbox(&settled, progress, now).await?)
    }
}
