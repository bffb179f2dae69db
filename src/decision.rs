//! The step decision: given a run, its member, what the store knows about them and `now`,
//! what happens next. Pure (DESIGN §2 steps and policies): no I/O, no clock, no randomness —
//! `serve` and `simulate` call exactly this, and so must agree.
//!
//! A run is at one step in one of two phases: *arriving* (the step has not run yet; status
//! `active` in the store) or *waiting* (inside a `wait` step; status `waiting`). [`advance`]
//! runs steps from there until the run has to wait (a `wait`, or a send deferred by quiet
//! hours) or ends, and returns everything that happened as [`Record`]s for the store to
//! write in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::assign;
use crate::channel::Channel;
use crate::condition::{self, EvalContext, RunHistory, Truth};
use crate::journey::{ExitWhen, Journey, Priority, StepIndex, StepKind, Vars, Wait};
use crate::member::{Event, Member};
use crate::timing::{FrequencyCap, QuietHours, next_local_time};

/// Channel policies of `tidings.toml` (DESIGN §2), parsed.
#[derive(Debug, Clone)]
pub struct Policies {
    pub default_timezone: Tz,
    pub quiet_hours: HashMap<Channel, QuietHours>,
    pub frequency_caps: HashMap<Channel, FrequencyCap>,
}

impl Policies {
    pub fn none(default_timezone: Tz) -> Policies {
        Policies { default_timezone, quiet_hours: HashMap::new(), frequency_caps: HashMap::new() }
    }

    /// The member's own time zone, or the default when it has none or an unknown one.
    pub fn timezone_of(&self, member: &Member) -> Tz {
        crate::timing::member_timezone(member.timezone.as_deref(), self.default_timezone)
    }
}

/// Where a run stands when it is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// About to run `step`.
    Arriving,
    /// Inside the `wait` at `step`; the wait is over (its time came).
    WaitOver,
    /// Inside the `wait: { for_event }` at `step`, and the event came.
    EventCame,
}

/// What a run needs besides its journey to decide.
pub struct Facts<'a> {
    pub member: &'a Member,
    /// The event that started the run, for `event.*` in conditions.
    pub trigger: Option<&'a Event>,
    pub history: &'a dyn RunHistory,
    /// Messages the member was sent (or is about to be) per channel inside each channel's
    /// frequency-cap window ending now, across all journeys.
    pub recent_sends: &'a HashMap<Channel, u32>,
    /// Channels on which the member's address is suppressed (bounced, unsubscribed).
    pub suppressed: &'a [Channel],
    /// The arm the member already holds at each experiment step of this journey (step id →
    /// arm name, from the store): kept while the step still has that arm, so a member's
    /// arm survives weight changes and new versions. Steps not in it are assigned by hash.
    pub assigned: &'a HashMap<String, String>,
    pub now: DateTime<Utc>,
}

/// The arm name of the members a send's holdout keeps back.
pub const HOLDOUT: &str = "holdout";

/// The arm name of a send variant (a plain send's one variant has no name).
pub fn arm_name(variant: &crate::journey::Variant) -> &str {
    variant.name.as_deref().unwrap_or("default")
}

/// Whether a send is an experiment (several variants, or a holdout).
pub fn is_experiment(send: &crate::journey::Send) -> bool {
    send.variants.len() > 1 || send.holdout > 0
}

/// Why a member did not get a message, or left a journey (DESIGN §5 reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Consent,
    /// No address on the channel (no email, phone or push token).
    NoAddress,
    Suppressed,
    FrequencyCap,
    QuietHours,
    Holdout,
    ExitWhen,
    Reentry,
    Audience,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Consent => "consent",
            Reason::NoAddress => "no_address",
            Reason::Suppressed => "suppressed",
            Reason::FrequencyCap => "frequency_cap",
            Reason::QuietHours => "quiet_hours",
            Reason::Holdout => "holdout",
            Reason::ExitWhen => "exit_when",
            Reason::Reentry => "reentry",
            Reason::Audience => "audience",
        }
    }
}

/// The actions of the timeline (DESIGN §5 `simulate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Enter,
    Send,
    Skip,
    Wait,
    Exit,
    Goal,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Enter => "enter",
            Action::Send => "send",
            Action::Skip => "skip",
            Action::Wait => "wait",
            Action::Exit => "exit",
            Action::Goal => "goal",
        }
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub step: Option<StepIndex>,
    pub action: Action,
    pub reason: Option<Reason>,
    /// For sends and send skips.
    pub send: Option<SendOrder>,
}

/// A message to create (action `send`) or the one that was not sent (action `skip`).
#[derive(Debug, Clone, PartialEq)]
pub struct SendOrder {
    pub channel: Channel,
    pub template: Option<String>,
    pub variant: Option<String>,
    pub vars: Vars,
    /// Which visit of this step in the run (loops come back), for the delivery's key.
    pub occurrence: u32,
}

/// Where the run goes after this decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Inside the wait at `step` until `until` (or until `for_event` comes).
    Wait { step: StepIndex, until: DateTime<Utc>, for_event: bool },
    /// Arriving at `step` again at `until` (a send deferred by quiet hours).
    Defer { step: StepIndex, until: DateTime<Utc> },
    /// The run is over: it reached its end (`None`) or left early.
    Finish(Option<Reason>),
}

/// An `update` step's change to the member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberChange {
    pub set: Vars,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub records: Vec<Record>,
    pub next: Next,
    /// Changes from `update` steps, in order.
    pub changes: Vec<(StepIndex, MemberChange)>,
    /// Steps run by this decision (added to the run's visit counter).
    pub visits: u32,
    /// The arm taken at each experiment step passed (sends with variants or a holdout,
    /// splits), in order.
    pub arms: Vec<(StepIndex, String)>,
}

/// Steps one decision may run: validation rejects loops without a wait, so this is only a
/// guard against a bug turning into a hot loop.
const MAX_STEPS: u32 = 1_000;

/// Runs the journey from `step` in `phase` until the run waits or ends. `visits` is how
/// many steps the run has run so far (it keys deliveries of steps visited more than once).
pub fn advance(
    journey: &Journey,
    step: StepIndex,
    phase: Phase,
    visits: u32,
    facts: &Facts,
    policies: &Policies,
) -> Outcome {
    let mut out =
        Outcome { records: Vec::new(), next: Next::Finish(None), changes: Vec::new(), visits: 0, arms: Vec::new() };
    let mut member = facts.member.clone();
    let mut recent = facts.recent_sends.clone();
    let tz = policies.timezone_of(&member);

    // A run that waited is still for the journey's audience only if the member still
    // matches it: one who no longer does leaves (reason `audience`). Enrollment checked it
    // for the first steps.
    if phase != Phase::Arriving
        && let Some(audience) = &journey.audience
        && condition::eval(&audience.expr, &context(&member, facts, policies)) != Truth::True
    {
        out.records.push(Record { step: Some(step), action: Action::Exit, reason: Some(Reason::Audience), send: None });
        out.next = Next::Finish(Some(Reason::Audience));
        return out;
    }
    let mut at = match phase {
        Phase::Arriving => Some(step),
        Phase::WaitOver | Phase::EventCame => after_wait(journey, step, phase == Phase::EventCame),
    };
    while let Some(current) = at {
        if out.visits >= MAX_STEPS {
            break;
        }
        if exits(journey, &member, facts, policies) {
            out.records.push(Record {
                step: Some(current),
                action: Action::Exit,
                reason: Some(Reason::ExitWhen),
                send: None,
            });
            out.next = Next::Finish(Some(Reason::ExitWhen));
            return out;
        }
        let this = journey.step(current);
        out.visits += 1;
        let occurrence = visits + out.visits;
        at = match &this.kind {
            StepKind::Send(send) => {
                let variant = send_arm(journey, current, send, &member.id, facts.assigned);
                if is_experiment(send) {
                    let arm = variant.map_or(HOLDOUT, |v| arm_name(&send.variants[v]));
                    out.arms.push((current, arm.to_string()));
                }
                let variant = variant.map(|v| &send.variants[v]);
                let (record, defer) =
                    decide_send(journey, current, send, variant, occurrence, &member, &recent, facts, policies);
                if let Some(until) = defer {
                    out.records.push(record);
                    out.next = Next::Defer { step: current, until };
                    return out;
                }
                if record.action == Action::Send {
                    *recent.entry(send.channel).or_default() += 1;
                }
                out.records.push(record);
                this.next
            }
            StepKind::Wait(wait) => {
                let (until, for_event) = match wait {
                    Wait::For(duration) => (facts.now + duration.to_chrono(), false),
                    Wait::Until(time) => (next_local_time(*time, tz, facts.now), false),
                    Wait::ForEvent { timeout, .. } => (facts.now + timeout.to_chrono(), true),
                };
                out.records.push(Record { step: Some(current), action: Action::Wait, reason: None, send: None });
                out.next = Next::Wait { step: current, until, for_event };
                return out;
            }
            StepKind::Branch { arms, otherwise } => {
                let ctx = context(&member, facts, policies);
                let taken = arms.iter().find(|arm| condition::eval(&arm.condition.expr, &ctx) == Truth::True);
                Some(taken.map_or(*otherwise, |arm| arm.goto))
            }
            StepKind::Split(arms) => {
                let stored = facts.assigned.get(&this.id).and_then(|name| arms.iter().position(|a| a.name == *name));
                let arm = stored.unwrap_or_else(|| {
                    let bucket = assign::bucket(&member.id, &journey.id, &this.id, "");
                    // Weights sum to 100 (validated), so a bucket always lands on an arm.
                    assign::pick(bucket, arms.iter().map(|a| a.weight)).unwrap_or(arms.len() - 1)
                });
                out.arms.push((current, arms[arm].name.clone()));
                Some(arms[arm].goto)
            }
            StepKind::Update(update) => {
                let mut change = MemberChange { set: update.set.clone(), tags: None };
                if !update.add_tags.is_empty() || !update.remove_tags.is_empty() {
                    let mut tags = member.tags.clone();
                    tags.retain(|t| !update.remove_tags.contains(t));
                    for tag in &update.add_tags {
                        if !tags.contains(tag) {
                            tags.push(tag.clone());
                        }
                    }
                    tags.sort();
                    member.tags = tags.clone();
                    change.tags = Some(tags);
                }
                for (key, value) in &update.set {
                    member.attributes.insert(key.clone(), value.clone());
                }
                out.changes.push((current, change));
                this.next
            }
            StepKind::Exit => {
                out.records.push(Record { step: Some(current), action: Action::Exit, reason: None, send: None });
                out.next = Next::Finish(None);
                return out;
            }
        };
    }
    out.records.push(Record { step: None, action: Action::Exit, reason: None, send: None });
    out.next = Next::Finish(None);
    out
}

/// Where a run goes when the wait at `step` is over (the event came, or its time did).
pub fn after_wait(journey: &Journey, step: StepIndex, event_came: bool) -> Option<StepIndex> {
    let this = journey.step(step);
    match &this.kind {
        StepKind::Wait(Wait::ForEvent { on_event, on_timeout, .. }) => {
            if event_came {
                on_event.or(this.next)
            } else {
                on_timeout.or(this.next)
            }
        }
        _ => this.next,
    }
}

fn context<'a>(member: &'a Member, facts: &'a Facts, policies: &Policies) -> EvalContext<'a> {
    EvalContext {
        member,
        event: facts.trigger,
        history: facts.history,
        now: facts.now,
        default_timezone: policies.default_timezone,
    }
}

/// Whether `exit_when` (a condition) holds now. An `exit_when` event is handled when the
/// event arrives ([`react`]).
fn exits(journey: &Journey, member: &Member, facts: &Facts, policies: &Policies) -> bool {
    match &journey.exit_when {
        Some(ExitWhen::Condition(c)) => condition::eval(&c.expr, &context(member, facts, policies)) == Truth::True,
        _ => false,
    }
}

/// The address of a member on a channel, if it has one.
pub fn address_of(member: &Member, channel: Channel) -> Option<String> {
    match channel {
        Channel::Email => member.email.clone().filter(|e| !e.is_empty()),
        Channel::Sms => member.phone.clone().filter(|p| !p.is_empty()),
        Channel::Push => member.push_tokens.first().cloned(),
        Channel::Webhook => Some(String::new()),
    }
}

/// Consent for a channel: webhooks go to the shop, not the member, and need none.
pub fn consents(member: &Member, channel: Channel) -> bool {
    match channel {
        Channel::Email => member.email_consent,
        Channel::Sms => member.sms_consent,
        Channel::Push => member.push_consent,
        Channel::Webhook => true,
    }
}

/// The variant a member gets at a send step (None: the holdout): the arm it already holds
/// if the step still has it, else its hash bucket's.
pub fn send_arm(
    journey: &Journey,
    step: StepIndex,
    send: &crate::journey::Send,
    member_id: &str,
    assigned: &HashMap<String, String>,
) -> Option<usize> {
    let step_id = &journey.step(step).id;
    let stored = assigned.get(step_id).and_then(|arm| {
        if arm == HOLDOUT {
            (send.holdout > 0).then_some(None)
        } else {
            send.variants.iter().position(|v| arm_name(v) == arm).map(Some)
        }
    });
    stored.unwrap_or_else(|| {
        let bucket = assign::bucket(member_id, &journey.id, step_id, "");
        assign::pick(bucket, send.variants.iter().map(|v| v.weight))
    })
}

#[allow(clippy::too_many_arguments)]
fn decide_send(
    journey: &Journey,
    step: StepIndex,
    send: &crate::journey::Send,
    variant: Option<&crate::journey::Variant>,
    occurrence: u32,
    member: &Member,
    recent: &HashMap<Channel, u32>,
    facts: &Facts,
    policies: &Policies,
) -> (Record, Option<DateTime<Utc>>) {
    let order = SendOrder {
        channel: send.channel,
        template: variant.map(|v| v.template.clone()),
        variant: variant.and_then(|v| v.name.clone()),
        vars: variant.map(|v| v.vars.clone()).unwrap_or_default(),
        occurrence,
    };
    let skip = |reason| {
        (Record { step: Some(step), action: Action::Skip, reason: Some(reason), send: Some(order.clone()) }, None)
    };
    if variant.is_none() {
        return skip(Reason::Holdout);
    }
    if !consents(member, send.channel) {
        return skip(Reason::Consent);
    }
    if address_of(member, send.channel).is_none() {
        return skip(Reason::NoAddress);
    }
    if facts.suppressed.contains(&send.channel) {
        return skip(Reason::Suppressed);
    }
    if journey.priority != Priority::Transactional {
        if let Some(quiet) = policies.quiet_hours.get(&send.channel)
            && let Some(until) = quiet.deferral(facts.now, policies.timezone_of(member))
        {
            let (record, _) = skip(Reason::QuietHours);
            return (record, Some(until));
        }
        if let Some(cap) = policies.frequency_caps.get(&send.channel)
            && recent.get(&send.channel).copied().unwrap_or(0) >= cap.count
        {
            return skip(Reason::FrequencyCap);
        }
    }
    (Record { step: Some(step), action: Action::Send, reason: None, send: Some(order) }, None)
}

/// What an arriving event does to a run that is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// `exit_when: event NAME`: the run leaves.
    Exit,
    /// The run waits for this event: it continues now.
    Wake,
    /// The journey's goal, inside its window, not yet reached by this run.
    Convert,
}

/// How a run at `step` (waiting or not) reacts to `event`. A run may convert and exit on
/// the same event (e.g. `exit_when: event order.placed` and the goal `order.placed`).
pub fn react(
    journey: &Journey,
    step: Option<StepIndex>,
    waiting: bool,
    entered_at: DateTime<Utc>,
    converted: bool,
    event: &Event,
) -> Vec<Reaction> {
    let mut out = Vec::new();
    if let Some(goal) = &journey.goal {
        let inside = event.occurred_at >= entered_at && event.occurred_at <= entered_at + goal.within.to_chrono();
        if goal.event == event.name && inside && !converted {
            out.push(Reaction::Convert);
        }
    }
    if let Some(ExitWhen::Event(name)) = &journey.exit_when
        && *name == event.name
        && event.occurred_at >= entered_at
    {
        out.push(Reaction::Exit);
        return out;
    }
    if let (true, Some(step)) = (waiting, step)
        && let StepKind::Wait(Wait::ForEvent { event: name, .. }) = &journey.step(step).kind
        && *name == event.name
        && event.occurred_at >= entered_at
    {
        out.push(Reaction::Wake);
    }
    out
}
