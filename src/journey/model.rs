//! The validated journey: enums and resolved step references. A value of these types has
//! passed every check in [`super::compile`], so a worker never meets a typo.

use std::collections::BTreeMap;

use chrono::NaiveTime;
use chrono_tz::Tz;

use crate::channel::Channel;
use crate::condition::Expr;
use crate::duration::Duration;
use crate::schedule::CronSchedule;

/// Index of a step in [`Journey::steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepIndex(pub usize);

#[derive(Debug, Clone)]
pub struct Journey {
    pub id: String,
    pub name: String,
    /// Content hash of the file: a run stays on the version it entered.
    pub version: String,
    pub trigger: Trigger,
    pub audience: Option<Condition>,
    pub reentry: Reentry,
    pub exit_when: Option<ExitWhen>,
    pub goal: Option<Goal>,
    pub priority: Priority,
    pub steps: Vec<Step>,
}

impl Journey {
    pub fn step(&self, index: StepIndex) -> &Step {
        &self.steps[index.0]
    }

    pub fn step_by_id(&self, id: &str) -> Option<(StepIndex, &Step)> {
        self.steps.iter().enumerate().find(|(_, s)| s.id == id).map(|(i, s)| (StepIndex(i), s))
    }
}

/// A condition with the text it was written as.
#[derive(Debug, Clone)]
pub struct Condition {
    pub text: String,
    pub expr: Expr,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Event { name: String, filter: Option<Condition> },
    Schedule { cron: CronSchedule, timezone: Tz },
    Date { field: DateField, at: NaiveTime, offset: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateField {
    /// A member field of the schema (`birthday`, `joined_at`, ...).
    Member(&'static str),
    /// `attributes.NAME` holding a `YYYY-MM-DD` date.
    Attribute(String),
}

impl DateField {
    /// Whether the date comes back every year (birthdays, anniversaries) or happens once.
    pub fn recurs_yearly(&self) -> bool {
        matches!(self, DateField::Member("birthday") | DateField::Member("joined_at"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reentry {
    Never,
    Always,
    After(Duration),
}

#[derive(Debug, Clone)]
pub enum ExitWhen {
    Event(String),
    Condition(Condition),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub event: String,
    pub within: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    #[default]
    Marketing,
    /// Bypasses frequency caps and quiet hours, never consent.
    Transactional,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    /// Where the run goes after this step (`next:` or the following step); None ends the run.
    pub next: Option<StepIndex>,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Send(Send),
    Wait(Wait),
    Branch { arms: Vec<BranchArm>, otherwise: StepIndex },
    Split(Vec<SplitArm>),
    Update(Update),
    Exit,
}

pub type Vars = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone)]
pub struct Send {
    pub channel: Channel,
    /// One entry for a plain send; several for an A/B(/n) test.
    pub variants: Vec<Variant>,
    /// Percent of entrants who get nothing (the control group).
    pub holdout: u32,
}

#[derive(Debug, Clone)]
pub struct Variant {
    /// None for a plain send.
    pub name: Option<String>,
    /// Percent of entrants; for a plain send, 100 − holdout.
    pub weight: u32,
    pub template: String,
    pub vars: Vars,
}

#[derive(Debug, Clone)]
pub enum Wait {
    For(Duration),
    /// Until the next member-local time of day.
    Until(NaiveTime),
    ForEvent {
        event: String,
        timeout: Duration,
        on_event: Option<StepIndex>,
        on_timeout: Option<StepIndex>,
    },
}

#[derive(Debug, Clone)]
pub struct BranchArm {
    pub condition: Condition,
    pub goto: StepIndex,
}

#[derive(Debug, Clone)]
pub struct SplitArm {
    pub name: String,
    pub weight: u32,
    pub goto: StepIndex,
}

#[derive(Debug, Clone, Default)]
pub struct Update {
    pub set: Vars,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
}
