//! Due runs: claim a batch, decide each ([`crate::decision::advance`]), write the batch.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::inbox::line;
use super::{Engine, EngineError, random_token};
use crate::channel::Channel;
use crate::condition::RunHistory;
use crate::decision::{self, Action, Facts, Next, Phase, Reason};
use crate::member::Event;
use crate::store::deliveries::SendHistory;
use crate::store::runs::{ClaimedRun, NewArm, NewDelivery, Progress, RunUpdate};

/// `opened(step)` & co. for one run.
struct RunSends<'a> {
    run: i64,
    history: &'a SendHistory,
}

impl RunHistory for RunSends<'_> {
    fn received(&self, step: &str) -> bool {
        self.history.received.contains(&(self.run, step.to_string()))
    }

    fn opened(&self, step: &str) -> bool {
        self.history.opened.contains(&(self.run, step.to_string()))
    }

    fn clicked(&self, step: &str) -> bool {
        self.history.clicked.contains(&(self.run, step.to_string()))
    }
}

impl Engine {
    pub(super) async fn advance_due(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let token = random_token();
        let runs = self.store.claim_due_runs(now, self.options.batch, self.options.lease, &token).await?;
        if runs.is_empty() {
            return Ok(0);
        }
        let member_ids: Vec<String> =
            runs.iter().map(|r| r.member_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let members = self.store.members(&member_ids).await?;
        let trigger_ids: Vec<String> = runs.iter().filter_map(|r| r.trigger_event_id.clone()).collect();
        let triggers = self.store.events_by_id(&trigger_ids).await?;
        let history = self.store.send_history(&runs.iter().map(|r| r.id).collect::<Vec<_>>()).await?;
        let mut recent = self.recent_sends(&member_ids, now).await?;
        let suppressed = self.suppressions(&members).await?;
        let assignments = self.store.assignments_of(&member_ids).await?;
        let no_assignments = HashMap::new();

        let mut progress = Progress::default();
        let mut changes: Vec<Event> = Vec::new();
        let mut registry = self.registry.lock().await;
        for run in &runs {
            let claim = Some(token.clone());
            let exit = |reason: &str| {
                let mut update = run.unchanged(claim.clone());
                update.status = "exited";
                update.step = None;
                update.due_at = None;
                update.finished_at = Some(now);
                update.exit_reason = Some(reason.to_string());
                update
            };
            let journey = registry.version(&self.store, &run.journey_id, &run.version).await?;
            let (Some(journey), Some(member)) = (journey, members.get(&run.member_id)) else {
                progress.updates.push(exit("journey_version_unavailable"));
                continue;
            };
            let Some((step, _)) = run.step.as_deref().and_then(|s| journey.step_by_id(s)) else {
                progress.updates.push(exit("step_removed"));
                continue;
            };
            let phase = if run.status == "waiting" { Phase::WaitOver } else { Phase::Arriving };
            let member_recent = recent.entry(member.id.clone()).or_default();
            let no_suppressions = Vec::new();
            let facts = Facts {
                member,
                trigger: run.trigger_event_id.as_ref().and_then(|id| triggers.get(id)),
                history: &RunSends { run: run.id, history: &history },
                recent_sends: member_recent,
                suppressed: suppressed.get(&member.id).unwrap_or(&no_suppressions),
                assigned: assignments.get(&(member.id.clone(), journey.id.clone())).unwrap_or(&no_assignments),
                now,
            };
            let outcome = decision::advance(&journey, step, phase, run.visits as u32, &facts, &self.policies);

            for record in &outcome.records {
                let step_id = record.step.map(|s| journey.step(s).id.clone());
                let mut entry =
                    line(now, &member.id, &journey.id, Some(run.id), step_id.as_deref(), record.action.as_str());
                entry.reason = record.reason.map(|r| r.as_str().to_string());
                if let Some(order) = &record.send {
                    entry.channel = Some(order.channel.as_str().to_string());
                    entry.template = order.template.clone();
                    entry.variant = order.variant.clone();
                    // A deferral is not the step's outcome: the send comes later.
                    if record.reason != Some(Reason::QuietHours) {
                        progress.deliveries.push(self.delivery(
                            run,
                            step_id.clone().unwrap_or_default(),
                            record.action,
                            record.reason,
                            order,
                            member,
                            now,
                        ));
                    }
                    if record.action == Action::Send {
                        *member_recent.entry(order.channel).or_default() += 1;
                    }
                }
                progress.journal.push(entry);
            }
            for (index, arm) in &outcome.arms {
                progress.arms.push(NewArm {
                    run_id: run.id,
                    member_id: member.id.clone(),
                    journey_id: journey.id.clone(),
                    step: journey.step(*index).id.clone(),
                    arm: arm.clone(),
                    at: now,
                });
            }
            for (index, change) in &outcome.changes {
                changes.push(update_event(
                    run,
                    &journey.step(*index).id,
                    run.visits + i64::from(outcome.visits),
                    change,
                    now,
                ));
            }
            progress.updates.push(self.next_state(run, &journey, outcome.next, outcome.visits, claim, now));
        }
        drop(registry);
        if !changes.is_empty() {
            self.store.ingest_events(&changes, now, &self.settings).await?;
        }
        let count = runs.len();
        self.store.record_progress(progress, now).await?;
        Ok(count)
    }

    #[allow(clippy::too_many_arguments)]
    fn delivery(
        &self,
        run: &ClaimedRun,
        step: String,
        action: Action,
        reason: Option<Reason>,
        order: &decision::SendOrder,
        member: &crate::member::Member,
        now: DateTime<Utc>,
    ) -> NewDelivery {
        NewDelivery {
            run_id: run.id,
            step,
            occurrence: i64::from(order.occurrence),
            member_id: member.id.clone(),
            journey_id: run.journey_id.clone(),
            version: run.version.clone(),
            channel: order.channel.as_str().to_string(),
            template: order.template.clone(),
            variant: order.variant.clone(),
            vars: serde_json::to_value(&order.vars).unwrap_or_default(),
            status: if action == Action::Send { "pending" } else { "skipped" },
            reason: reason.map(|r| r.as_str().to_string()),
            address: decision::address_of(member, order.channel),
            created_at: now,
        }
    }

    fn next_state(
        &self,
        run: &ClaimedRun,
        journey: &crate::journey::Journey,
        next: Next,
        visits: u32,
        claim: Option<String>,
        now: DateTime<Utc>,
    ) -> RunUpdate {
        let mut update = run.unchanged(claim);
        update.add_visits = i64::from(visits);
        update.waiting_for = None;
        match next {
            Next::Wait { step, until, for_event } => {
                update.step = Some(journey.step(step).id.clone());
                update.status = "waiting";
                update.due_at = Some(until);
                if for_event
                    && let crate::journey::StepKind::Wait(crate::journey::Wait::ForEvent { event, .. }) =
                        &journey.step(step).kind
                {
                    update.waiting_for = Some(event.clone());
                }
            }
            Next::Defer { step, until } => {
                update.step = Some(journey.step(step).id.clone());
                update.status = "active";
                update.due_at = Some(until);
            }
            Next::Finish(reason) => {
                update.step = None;
                update.status = if reason.is_some() { "exited" } else { "done" };
                update.exit_reason = reason.map(|r| r.as_str().to_string());
                update.due_at = None;
                update.finished_at = Some(now);
            }
        }
        update
    }

    /// Sends per member and channel inside each channel's cap window.
    async fn recent_sends(
        &self,
        members: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, HashMap<Channel, u32>>, EngineError> {
        let mut out: HashMap<String, HashMap<Channel, u32>> = HashMap::new();
        for (channel, cap) in &self.policies.frequency_caps {
            let since = now - cap.window.to_chrono();
            for ((member, ch), n) in self.store.recent_sends(members, since).await? {
                if ch == channel.as_str() {
                    out.entry(member).or_default().insert(*channel, n);
                }
            }
        }
        Ok(out)
    }

    /// The channels on which each member's address is suppressed.
    pub(super) async fn suppressions(
        &self,
        members: &HashMap<String, crate::member::Member>,
    ) -> Result<HashMap<String, Vec<Channel>>, EngineError> {
        let mut pairs = Vec::new();
        let mut owner: HashMap<(String, String), Vec<String>> = HashMap::new();
        for member in members.values() {
            for channel in [Channel::Email, Channel::Sms, Channel::Push] {
                if let Some(address) = decision::address_of(member, channel) {
                    let key = (channel.as_str().to_string(), address);
                    owner.entry(key.clone()).or_default().push(member.id.clone());
                    pairs.push(key);
                }
            }
        }
        let mut out: HashMap<String, Vec<Channel>> = HashMap::new();
        for (channel, address) in self.store.suppressed(&pairs).await? {
            let Some(c) = Channel::parse(&channel) else { continue };
            for member in owner.get(&(channel.clone(), address.clone())).into_iter().flatten() {
                out.entry(member.clone()).or_default().push(c);
            }
        }
        Ok(out)
    }
}

/// An `update` step's change as a `member.updated` event, keyed by run, step and visit so a
/// decision made twice (after a crash) changes the member once.
fn update_event(
    run: &ClaimedRun,
    step: &str,
    visit: i64,
    change: &decision::MemberChange,
    now: DateTime<Utc>,
) -> Event {
    let mut properties = serde_json::Map::new();
    if !change.set.is_empty() {
        properties.insert("attributes".into(), serde_json::to_value(&change.set).unwrap_or_default());
    }
    if let Some(tags) = &change.tags {
        properties.insert("tags".into(), serde_json::to_value(tags).unwrap_or_default());
    }
    Event {
        id: format!("run-{}-{step}-{visit}", run.id),
        member_id: run.member_id.clone(),
        name: "member.updated".to_string(),
        occurred_at: now,
        properties: serde_json::Value::Object(properties),
    }
}
