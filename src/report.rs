//! `tidings report JOURNEY` and the dashboard's numbers: the funnel per step and the
//! experiment results per arm (DESIGN §5, §7).
//!
//! Three parts, kept apart:
//! - the journey's [`Plan`] (steps in order, their kinds, experiment arms and weights, the
//!   goal), made from the validated model and stored with each version;
//! - [`build`], pure: counts the rows the store hands over ([`JourneyFacts`]) into a
//!   [`Report`], with the statistics of [`crate::stats`];
//! - rendering ([`render`]): a table for people, JSON for programs.
//!
//! Two attribution rules, each for its question:
//! - **funnel (last touch)**: a run's conversion belongs to the last send (or holdout
//!   skip) of that run at or before the goal event; the engine counts a goal only inside the
//!   window after entry, so it is inside the window after that touch too. A conversion with
//!   no touch before it (an order before the first message) is counted as unattributed.
//! - **experiments (intent to treat)**: every run that took an arm at an experiment step
//!   converts for that arm when its goal event came at or after the assignment, whatever
//!   later steps sent — so a holdout is compared with its variants on equal terms.

pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decision::{HOLDOUT, arm_name, is_experiment};
use crate::journey::{Journey, StepKind};
use crate::stats::{self, Rate, Uplift};
use crate::store::report::{ArmFact, JourneyFacts, TouchFact};

/// A journey as reports see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub journey: String,
    pub name: Option<String>,
    /// e.g. `order.placed within 14d`.
    pub goal: Option<String>,
    pub steps: Vec<StepPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    pub id: String,
    /// send | wait | branch | split | update | exit (`unknown` when read from data only).
    pub kind: String,
    /// The arms of an experiment step, as written (a holdout last); empty otherwise.
    pub arms: Vec<ArmPlan>,
    /// The arm others are compared with: the holdout when there is one, else the first arm.
    pub control: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmPlan {
    pub name: String,
    /// Percent of entrants.
    pub weight: u32,
}

impl Plan {
    pub fn of(journey: &Journey) -> Plan {
        let steps = journey
            .steps
            .iter()
            .map(|step| {
                let (kind, arms) = match &step.kind {
                    StepKind::Send(send) => {
                        let mut arms = Vec::new();
                        if is_experiment(send) {
                            arms = send
                                .variants
                                .iter()
                                .map(|v| ArmPlan { name: arm_name(v).to_string(), weight: v.weight })
                                .collect();
                            if send.holdout > 0 {
                                arms.push(ArmPlan { name: HOLDOUT.to_string(), weight: send.holdout });
                            }
                        }
                        ("send", arms)
                    }
                    StepKind::Wait(_) => ("wait", Vec::new()),
                    StepKind::Branch { .. } => ("branch", Vec::new()),
                    StepKind::Split(arms) => {
                        ("split", arms.iter().map(|a| ArmPlan { name: a.name.clone(), weight: a.weight }).collect())
                    }
                    StepKind::Update(_) => ("update", Vec::new()),
                    StepKind::Exit => ("exit", Vec::new()),
                };
                let control = control_of(&arms);
                StepPlan { id: step.id.clone(), kind: kind.to_string(), arms, control }
            })
            .collect();
        Plan {
            journey: journey.id.clone(),
            name: Some(journey.name.clone()),
            goal: journey.goal.as_ref().map(|g| format!("{} within {}", g.event, g.within)),
            steps,
        }
    }

    /// A plan from the data alone (the journey's file is not known): the steps in the order
    /// runs first reached them, experiments wherever arms were recorded.
    pub fn from_facts(journey: &str, facts: &JourneyFacts) -> Plan {
        let mut first_seen: BTreeMap<String, (DateTime<Utc>, &'static str)> = BTreeMap::new();
        let mut see = |step: &str, at: DateTime<Utc>, kind: &'static str| {
            let entry = first_seen.entry(step.to_string()).or_insert((at, kind));
            if at < entry.0 {
                entry.0 = at;
            }
            if kind == "send" {
                entry.1 = "send";
            }
        };
        for t in &facts.touches {
            see(&t.step, t.created_at, "send");
        }
        for a in &facts.arms {
            see(&a.step, a.at, "split");
        }
        let mut order: Vec<(DateTime<Utc>, String, &'static str)> =
            first_seen.into_iter().map(|(step, (at, kind))| (at, step, kind)).collect();
        order.sort();
        let mut steps: Vec<StepPlan> = order
            .into_iter()
            .map(|(_, id, kind)| {
                let arms: Vec<ArmPlan> = facts
                    .arms
                    .iter()
                    .filter(|a| a.step == id)
                    .map(|a| a.arm.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .map(|name| ArmPlan { name, weight: 0 })
                    .collect();
                let control = control_of(&arms);
                StepPlan { id, kind: kind.to_string(), arms, control }
            })
            .collect();
        let known: HashSet<String> = steps.iter().map(|s| s.id.clone()).collect();
        let mut others: BTreeSet<String> = BTreeSet::new();
        for line in &facts.journal {
            if let Some(step) = &line.step
                && !known.contains(step)
            {
                others.insert(step.clone());
            }
        }
        steps.extend(others.into_iter().map(|id| StepPlan { id, kind: "unknown".into(), arms: vec![], control: None }));
        Plan { journey: journey.to_string(), name: None, goal: None, steps }
    }
}

fn control_of(arms: &[ArmPlan]) -> Option<String> {
    arms.iter().find(|a| a.name == HOLDOUT).or(arms.first()).map(|a| a.name.clone())
}

/// A journey's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub journey: String,
    pub name: Option<String>,
    pub goal: Option<String>,
    pub totals: Totals,
    pub funnel: Vec<StepFunnel>,
    pub experiments: Vec<Experiment>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Runs (a member entering twice counts twice).
    pub entered: u64,
    pub converted: u64,
    /// Sum of the goal events' `total` (minor units).
    pub revenue: i64,
    pub conversion: Rate,
    /// Conversions with no send or holdout before them.
    pub unattributed: u64,
    /// Members turned away at the door (`reentry`) and runs that left early (`exit_when`), by reason.
    pub refused: BTreeMap<String, u64>,
    pub exited: BTreeMap<String, u64>,
}

/// One step of the funnel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFunnel {
    pub step: String,
    pub kind: String,
    /// Runs that reached the step; None for steps that leave no record (branch, update).
    pub entered: Option<u64>,
    /// Runs the step's message went out to (sent or delivered).
    pub sent: u64,
    /// Runs whose message is still queued (pending, sending, or a retry).
    pub pending: u64,
    pub failed: u64,
    /// Runs not sent to, by reason (consent, frequency_cap, holdout, ...).
    pub skipped: BTreeMap<String, u64>,
    /// Conversions attributed to this step (last touch).
    pub converted: u64,
    pub revenue: i64,
}

/// One experiment step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub step: String,
    /// send | split
    pub kind: String,
    pub control: Option<String>,
    pub arms: Vec<ArmResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmResult {
    pub arm: String,
    /// Percent of entrants as written; None for an arm the current version no longer has.
    pub weight: Option<u32>,
    pub is_control: bool,
    /// Runs assigned to the arm.
    pub entered: u64,
    /// Runs sent a message (at the step, or after a split).
    pub sent: u64,
    pub delivered: u64,
    /// Runs that opened (a click counts as an open: images may be blocked).
    pub opened: u64,
    pub clicked: u64,
    pub converted: u64,
    pub revenue: i64,
    /// `converted / entered` with its 95 % Wilson interval.
    pub conversion: Rate,
    /// P(this arm's rate > the control's), Beta-Binomial; None for the control.
    pub prob_beats_control: Option<f64>,
    /// Against the control; None for the control.
    pub uplift: Option<Uplift>,
}

/// The revenue of a goal event: `total` (order.placed, minor units), else `total_spend`.
pub fn revenue_of(properties: Option<&serde_json::Value>) -> i64 {
    let Some(p) = properties else { return 0 };
    ["total", "total_spend"]
        .iter()
        .find_map(|k| p.get(*k).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64))))
        .unwrap_or(0)
}

fn is_touch(t: &TouchFact) -> bool {
    matches!(t.status.as_str(), "sent" | "delivered") || (t.status == "skipped" && t.reason.as_deref() == Some(HOLDOUT))
}

fn is_sent(t: &TouchFact) -> bool {
    matches!(t.status.as_str(), "sent" | "delivered")
}

/// Counts a journey's rows into its report. Pure.
pub fn build(plan: &Plan, facts: &JourneyFacts) -> Report {
    let runs: HashMap<i64, (Option<DateTime<Utc>>, i64)> = facts
        .runs
        .iter()
        .map(|r| (r.id, (r.converted_at, if r.converted_at.is_some() { revenue_of(r.goal.as_ref()) } else { 0 })))
        .collect();
    let mut touches_of: HashMap<i64, Vec<&TouchFact>> = HashMap::new();
    for t in &facts.touches {
        touches_of.entry(t.run_id).or_default().push(t);
    }

    // Last touch: (step) → (conversions, revenue).
    let mut attributed: HashMap<&str, (u64, i64)> = HashMap::new();
    let mut unattributed = 0;
    for r in &facts.runs {
        let Some(converted_at) = r.converted_at else { continue };
        let last = touches_of
            .get(&r.id)
            .into_iter()
            .flatten()
            .filter(|t| is_touch(t) && t.created_at <= converted_at)
            .max_by_key(|t| t.created_at);
        match last {
            Some(t) => {
                let entry = attributed.entry(t.step.as_str()).or_default();
                entry.0 += 1;
                entry.1 += runs[&r.id].1;
            }
            None => unattributed += 1,
        }
    }

    let mut journal_runs: HashMap<(Option<&str>, &str, Option<&str>), u64> = HashMap::new();
    for line in &facts.journal {
        *journal_runs.entry((line.step.as_deref(), line.action.as_str(), line.reason.as_deref())).or_default() +=
            line.runs;
    }
    let journal_total = |step: &str, action: &str| -> u64 {
        journal_runs.iter().filter(|((s, a, _), _)| *s == Some(step) && *a == action).map(|(_, n)| n).sum()
    };

    let funnel = plan
        .steps
        .iter()
        .map(|step| {
            let at_step: Vec<&TouchFact> = facts.touches.iter().filter(|t| t.step == step.id).collect();
            let runs_where = |keep: &dyn Fn(&TouchFact) -> bool| -> u64 {
                at_step.iter().filter(|t| keep(t)).map(|t| t.run_id).collect::<HashSet<_>>().len() as u64
            };
            let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
            for t in at_step.iter().filter(|t| t.status == "skipped") {
                *skipped.entry(t.reason.clone().unwrap_or_else(|| "unknown".into())).or_default() += 1;
            }
            let arm_runs = facts.arms.iter().filter(|a| a.step == step.id).count() as u64;
            let entered = match step.kind.as_str() {
                "send" => Some(runs_where(&|_| true)),
                "wait" => Some(journal_total(&step.id, "wait")),
                "exit" => Some(journal_total(&step.id, "exit")),
                "split" => Some(arm_runs),
                "unknown" => Some(runs_where(&|_| true).max(arm_runs)),
                _ => None,
            };
            let (converted, revenue) = attributed.get(step.id.as_str()).copied().unwrap_or_default();
            StepFunnel {
                step: step.id.clone(),
                kind: step.kind.clone(),
                entered,
                sent: runs_where(&is_sent),
                pending: runs_where(&|t| matches!(t.status.as_str(), "pending" | "sending")),
                failed: runs_where(&|t| t.status == "failed"),
                skipped,
                converted,
                revenue,
            }
        })
        .collect();

    let experiments = plan
        .steps
        .iter()
        .filter(|s| !s.arms.is_empty())
        .map(|step| experiment(step, facts, &runs, &touches_of))
        .collect();

    let mut refused = BTreeMap::new();
    let mut exited = BTreeMap::new();
    for ((step, action, reason), n) in &journal_runs {
        match (*step, *action, *reason) {
            (None, "skip", Some(reason)) => *refused.entry(reason.to_string()).or_default() += n,
            (_, "exit", Some(reason)) => *exited.entry(reason.to_string()).or_default() += n,
            _ => {}
        }
    }
    let entered = facts.runs.len() as u64;
    let converted = facts.runs.iter().filter(|r| r.converted_at.is_some()).count() as u64;
    Report {
        journey: plan.journey.clone(),
        name: plan.name.clone(),
        goal: plan.goal.clone(),
        totals: Totals {
            entered,
            converted,
            revenue: runs.values().map(|(_, revenue)| revenue).sum(),
            conversion: Rate::of(converted, entered),
            unattributed,
            refused,
            exited,
        },
        funnel,
        experiments,
    }
}

fn experiment(
    step: &StepPlan,
    facts: &JourneyFacts,
    runs: &HashMap<i64, (Option<DateTime<Utc>>, i64)>,
    touches_of: &HashMap<i64, Vec<&TouchFact>>,
) -> Experiment {
    let mut by_arm: BTreeMap<&str, Vec<&ArmFact>> = BTreeMap::new();
    for a in facts.arms.iter().filter(|a| a.step == step.id) {
        by_arm.entry(a.arm.as_str()).or_default().push(a);
    }
    // Arms as written, then any only older versions had.
    let mut names: Vec<(String, Option<u32>)> =
        step.arms.iter().map(|a| (a.name.clone(), (a.weight > 0).then_some(a.weight))).collect();
    for name in by_arm.keys() {
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.to_string(), None));
        }
    }
    let mut arms: Vec<ArmResult> = names
        .into_iter()
        .map(|(name, weight)| {
            let members = by_arm.get(name.as_str()).map(Vec::as_slice).unwrap_or_default();
            let mut counts = [0u64; 5]; // sent, delivered, opened, clicked, converted
            let mut revenue = 0;
            for a in members {
                // At a send step, that step's message; after a split, anything sent after it.
                let touches: Vec<&&TouchFact> = touches_of
                    .get(&a.run_id)
                    .into_iter()
                    .flatten()
                    .filter(|t| if step.kind == "send" { t.step == step.id } else { t.created_at >= a.at })
                    .collect();
                let sent: Vec<&&&TouchFact> = touches.iter().filter(|t| is_sent(t)).collect();
                let flags = [
                    !sent.is_empty(),
                    sent.iter().any(|t| t.delivered),
                    sent.iter().any(|t| t.opened || t.clicked),
                    sent.iter().any(|t| t.clicked),
                ];
                for (count, flag) in counts.iter_mut().zip(flags) {
                    *count += u64::from(flag);
                }
                if let Some((Some(converted_at), value)) = runs.get(&a.run_id)
                    && *converted_at >= a.at
                {
                    counts[4] += 1;
                    revenue += value;
                }
            }
            let entered = members.len() as u64;
            ArmResult {
                is_control: step.control.as_deref() == Some(name.as_str()),
                arm: name,
                weight,
                entered,
                sent: counts[0],
                delivered: counts[1],
                opened: counts[2],
                clicked: counts[3],
                converted: counts[4],
                revenue,
                conversion: Rate::of(counts[4], entered),
                prob_beats_control: None,
                uplift: None,
            }
        })
        .collect();
    if let Some(control) = arms.iter().find(|a| a.is_control).cloned() {
        for arm in arms.iter_mut().filter(|a| !a.is_control) {
            arm.prob_beats_control =
                Some(stats::prob_beats(control.converted, control.entered, arm.converted, arm.entered));
            arm.uplift = Some(stats::uplift(arm.conversion.rate, control.conversion.rate));
        }
    }
    Experiment { step: step.id.clone(), kind: step.kind.clone(), control: step.control.clone(), arms }
}

/// Reads a journey's report: the plan from `plan` when given (the project's journey), else
/// the outline stored with its latest version, else from the data alone. None when the
/// journey has no runs and no stored version.
pub async fn load(
    store: &crate::store::Store,
    journey_id: &str,
    plan: Option<Plan>,
) -> Result<Option<Report>, crate::store::StoreError> {
    let facts = store.journey_facts(journey_id).await?;
    let plan = match plan {
        Some(plan) => Some(plan),
        None => store.latest_outline(journey_id).await?.and_then(|text| serde_json::from_str::<Plan>(&text).ok()),
    };
    if plan.is_none() && facts.runs.is_empty() {
        return Ok(None);
    }
    let plan = plan.unwrap_or_else(|| Plan::from_facts(journey_id, &facts));
    Ok(Some(build(&plan, &facts)))
}

/// `tidings report JOURNEY`: exit 0 with the report, 1 when the journey is unknown.
pub async fn run(
    config: &crate::config::Config,
    journey_id: &str,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let store = crate::store::Store::open(&config.database_url)
        .await
        .with_context(|| format!("opening {}", config.database_url))?;
    // The journey as the project has it now, when the files are here and it compiles.
    let plan = crate::project::Sources::standard(&config.workflows_dir, &config.templates_dir)
        .ok()
        .map(|sources| crate::project::Project::load(&sources, config.timezone()))
        .and_then(|project| project.journeys.iter().find(|j| j.id == journey_id).map(Plan::of));
    let Some(report) = load(&store, journey_id, plan).await? else {
        eprintln!("no journey `{journey_id}` in {} (no runs, no stored version)", config.database_url);
        return Ok(std::process::ExitCode::from(1));
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", render::text(&report))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::report::RunFact;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + minute * 60, 0).unwrap()
    }

    fn touch(
        run: i64,
        step: &str,
        variant: Option<&str>,
        status: &str,
        reason: Option<&str>,
        minute: i64,
    ) -> TouchFact {
        TouchFact {
            run_id: run,
            step: step.into(),
            variant: variant.map(Into::into),
            status: status.into(),
            reason: reason.map(Into::into),
            created_at: at(minute),
            delivered: false,
            opened: false,
            clicked: false,
        }
    }

    fn plan() -> Plan {
        let arm = |name: &str, weight| ArmPlan { name: name.into(), weight };
        Plan {
            journey: "winback".into(),
            name: None,
            goal: Some("order.placed within 14d".into()),
            steps: vec![
                StepPlan {
                    id: "offer".into(),
                    kind: "send".into(),
                    arms: vec![arm("a", 45), arm("b", 45), arm("holdout", 10)],
                    control: Some("holdout".into()),
                },
                StepPlan { id: "nudge".into(), kind: "send".into(), arms: vec![], control: None },
            ],
        }
    }

    #[test]
    fn a_conversion_goes_to_the_last_touch_in_the_funnel_and_to_its_arm_in_the_experiment() {
        let run = |id, converted: Option<i64>, total| RunFact {
            id,
            entered_at: at(0),
            converted_at: converted.map(at),
            goal: Some(serde_json::json!({ "total": total })),
        };
        let arm = |run_id, name: &str| ArmFact { run_id, step: "offer".into(), arm: name.into(), at: at(0) };
        let facts = JourneyFacts {
            runs: vec![run(1, Some(30), 1_000), run(2, Some(5), 500), run(3, Some(50), 700), run(4, None, 0)],
            touches: vec![
                touch(1, "offer", Some("a"), "sent", None, 0),
                touch(1, "nudge", None, "sent", None, 20),
                touch(2, "offer", Some("b"), "sent", None, 0),
                touch(2, "nudge", None, "sent", None, 20),
                touch(3, "offer", None, "skipped", Some("holdout"), 0),
                touch(3, "nudge", None, "skipped", Some("consent"), 20),
                touch(4, "offer", Some("a"), "skipped", Some("consent"), 0),
            ],
            arms: vec![arm(1, "a"), arm(2, "b"), arm(3, "holdout"), arm(4, "a")],
            journal: vec![],
        };
        let report = build(&plan(), &facts);
        assert_eq!((report.totals.entered, report.totals.converted, report.totals.revenue), (4, 3, 2_200));
        let offer = &report.funnel[0];
        assert_eq!((offer.entered, offer.sent, offer.converted, offer.revenue), (Some(4), 2, 2, 1_200));
        assert_eq!(offer.skipped, BTreeMap::from([("consent".into(), 1), ("holdout".into(), 1)]));
        let nudge = &report.funnel[1];
        assert_eq!((nudge.sent, nudge.converted, nudge.revenue), (2, 1, 1_000), "run 1 converted after the nudge");

        let experiment = &report.experiments[0];
        let by_name = |n: &str| experiment.arms.iter().find(|a| a.arm == n).unwrap();
        assert_eq!(
            (by_name("a").entered, by_name("a").sent, by_name("a").converted, by_name("a").revenue),
            (2, 1, 1, 1_000)
        );
        assert_eq!((by_name("holdout").entered, by_name("holdout").sent, by_name("holdout").converted), (1, 0, 1));
        assert!(by_name("holdout").is_control && by_name("holdout").uplift.is_none());
        let uplift = by_name("b").uplift.unwrap();
        assert_eq!(uplift.absolute, 0.0);
        assert!((by_name("a").prob_beats_control.unwrap() - stats::prob_beats(1, 1, 1, 2)).abs() < 1e-12);
    }

    #[test]
    fn a_conversion_before_any_touch_is_unattributed_and_not_counted_for_a_later_arm() {
        let facts = JourneyFacts {
            runs: vec![RunFact { id: 1, entered_at: at(0), converted_at: Some(at(1)), goal: None }],
            touches: vec![touch(1, "offer", Some("a"), "sent", None, 10)],
            arms: vec![ArmFact { run_id: 1, step: "offer".into(), arm: "a".into(), at: at(10) }],
            journal: vec![],
        };
        let report = build(&plan(), &facts);
        assert_eq!(report.totals.unattributed, 1);
        assert_eq!(report.funnel[0].converted, 0);
        assert_eq!(report.experiments[0].arms[0].converted, 0);
    }

    #[test]
    fn revenue_reads_the_order_total_in_minor_units() {
        assert_eq!(revenue_of(Some(&serde_json::json!({ "total": 12_000, "currency": "CNY" }))), 12_000);
        assert_eq!(revenue_of(Some(&serde_json::json!({ "total_spend": 300 }))), 300);
        assert_eq!(revenue_of(Some(&serde_json::json!({ "total": "n/a" }))), 0);
        assert_eq!(revenue_of(None), 0);
    }
}
