//! The alert state machine, pure: (rule, previous state, measured numbers, `now`) → next
//! state, and whether that is a transition.
//!
//! ```text
//!            breach                 breach held for `for`
//!   ok ─────────────────▶ pending ─────────────────────────▶ firing
//!   ▲  (for = 0: straight to firing)  │ no breach                 │ clear held for `for`
//!   │                                 ▼                           ▼
//!   └──────────────────────────────── ok ◀────────────────── resolved
//! ```
//!
//! - **Breach**: the value is past the threshold (above it for rates and lag, at or below
//!   it for `conversion_drop` and `no_sends`).
//! - **Clear** (hysteresis): the value is back on the right side of the threshold *with a
//!   margin* — under 80 % of it for rates and lag, a drop smaller than 80 % of the
//!   threshold's for `conversion_drop`, more sends than the threshold for `no_sends`. A
//!   value between the two (in the band) keeps a firing alert firing, so a rate hovering at
//!   the threshold does not page on every minute.
//! - A firing alert resolves only after it has been clear for `for` (at once when `for` is
//!   0); one breach in between starts the count again.
//! - **No evidence** (fewer than `min_sample` attempts, or no baseline): a pending alert goes
//!   back to ok (a quiet night never pages), a firing alert stays firing (a quiet night
//!   never resolves an outage either).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rule::{Kind, Rule};

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Pending,
    Firing,
    /// Was firing and is clear again; behaves as `ok`.
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Pending => "pending",
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [Status::Ok, Status::Pending, Status::Firing, Status::Resolved].into_iter().find(|s| s.as_str() == text)
    }

    /// Firing and resolved are what operators are told about.
    pub fn notifies(self) -> bool {
        matches!(self, Status::Firing | Status::Resolved)
    }
}

/// The numbers a rule's window gave (the store counts them, set-based).
///
/// | kind | `count` | `sample` | `baseline_count` / `baseline_sample` |
/// |---|---|---|---|
/// | `delivery_failure_rate` | attempts whose last try failed | attempts | — |
/// | `bounce_or_complaint_rate` | permanent failures + bounce/complaint events | attempts | — |
/// | `unsubscribe_rate` | `member.unsubscribed` | sends | — |
/// | `conversion_drop` | goals reached | runs entered | the same, over the baseline period |
/// | `queue_lag` | seconds the oldest due work has waited | — | — |
/// | `no_sends` | sends | — | sends over the baseline period |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Measured {
    pub count: i64,
    pub sample: i64,
    pub baseline_count: i64,
    pub baseline_sample: i64,
}

impl Measured {
    /// The rule's value, or `None` when the window holds too little to judge by.
    pub fn value(&self, rule: &Rule) -> Option<f64> {
        let enough = |n: i64| n >= rule.min_sample.max(1);
        match rule.kind {
            Kind::DeliveryFailureRate | Kind::BounceOrComplaintRate | Kind::UnsubscribeRate => {
                enough(self.sample).then(|| self.count as f64 / self.sample as f64)
            }
            Kind::ConversionDrop => {
                let judged = enough(self.sample) && enough(self.baseline_sample) && self.baseline_count > 0;
                judged.then(|| {
                    let now = self.count as f64 / self.sample as f64;
                    let before = self.baseline_count as f64 / self.baseline_sample as f64;
                    now / before - 1.0
                })
            }
            Kind::QueueLag => Some(self.count as f64),
            Kind::NoSends => enough(self.baseline_count).then_some(self.count as f64),
        }
    }
}

/// How a value stands against a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Breach,
    /// Between the threshold and the clear level: neither fires nor resolves.
    Band,
    Clear,
    /// Too little data.
    Unknown,
}

/// The clear level is this share of the threshold (see the module docs).
pub const CLEAR_MARGIN: f64 = 0.8;

pub fn read(rule: &Rule, value: Option<f64>) -> Reading {
    let Some(v) = value else { return Reading::Unknown };
    let t = rule.threshold;
    let (breach, clear) = match rule.kind {
        Kind::ConversionDrop => (v <= t, v > t * CLEAR_MARGIN),
        Kind::NoSends => (v <= t, v > t),
        _ => (v > t, v <= t * CLEAR_MARGIN),
    };
    if breach {
        Reading::Breach
    } else if clear {
        Reading::Clear
    } else {
        Reading::Band
    }
}

/// An alert between evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlertState {
    pub status: Status,
    /// When the alert took this status.
    pub since: DateTime<Utc>,
    /// A firing alert: since when it has been clear (resolves `for` later).
    pub clear_since: Option<DateTime<Utc>>,
}

impl AlertState {
    /// A rule never evaluated.
    pub fn new(now: DateTime<Utc>) -> AlertState {
        AlertState { status: Status::Ok, since: now, clear_since: None }
    }
}

/// One evaluation's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub state: AlertState,
    pub value: Option<f64>,
    /// The status the alert left, when it changed.
    pub from: Option<Status>,
}

/// The next state of `rule`'s alert, given the numbers measured at `now`.
pub fn evaluate(rule: &Rule, previous: &AlertState, measured: &Measured, now: DateTime<Utc>) -> Evaluation {
    let value = measured.value(rule);
    let reading = read(rule, value);
    let held = |since: DateTime<Utc>| (now - since).num_seconds() >= rule.for_;
    let to = |status: Status| AlertState { status, since: now, clear_since: None };
    let next = match (previous.status, reading) {
        (Status::Ok | Status::Resolved, Reading::Breach) => {
            if rule.for_ == 0 {
                to(Status::Firing)
            } else {
                to(Status::Pending)
            }
        }
        (Status::Ok | Status::Resolved, _) => *previous,
        (Status::Pending, Reading::Breach) if held(previous.since) => to(Status::Firing),
        (Status::Pending, Reading::Breach) => *previous,
        (Status::Pending, _) => to(Status::Ok),
        (Status::Firing, Reading::Breach | Reading::Band) => AlertState { clear_since: None, ..*previous },
        (Status::Firing, Reading::Unknown) => *previous,
        (Status::Firing, Reading::Clear) => {
            let clear_since = previous.clear_since.unwrap_or(now);
            if held(clear_since) {
                to(Status::Resolved)
            } else {
                AlertState { clear_since: Some(clear_since), ..*previous }
            }
        }
    };
    let from = (next.status != previous.status).then_some(previous.status);
    Evaluation { state: next, value, from }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rule::Scope;

    fn rule(kind: Kind, threshold: f64, for_: i64) -> Rule {
        Rule {
            name: "r".into(),
            kind,
            window: 900,
            threshold,
            min_sample: 10,
            for_,
            baseline: 7 * 86_400,
            scope: Scope::default(),
            email: None,
        }
    }

    fn minute(n: i64) -> DateTime<Utc> {
        "2026-03-02T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(n)
    }

    fn failures(count: i64, sample: i64) -> Measured {
        Measured { count, sample, ..Measured::default() }
    }

    /// Runs the rule over one measurement a minute and lists the statuses it took.
    fn run(rule: &Rule, minutes: &[Measured]) -> Vec<&'static str> {
        let mut state = AlertState::new(minute(0));
        minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                state = evaluate(rule, &state, m, minute(i as i64)).state;
                state.status.as_str()
            })
            .collect()
    }

    #[test]
    fn an_alert_fires_only_after_the_breach_has_lasted_for() {
        let r = rule(Kind::DeliveryFailureRate, 0.05, 180);
        let bad = failures(20, 100);
        assert_eq!(
            run(&r, &[failures(0, 100), bad, bad, bad, bad, bad]),
            ["ok", "pending", "pending", "pending", "firing", "firing"]
        );
    }

    #[test]
    fn a_short_spike_goes_back_to_ok_without_firing() {
        let r = rule(Kind::DeliveryFailureRate, 0.05, 180);
        let (bad, good) = (failures(20, 100), failures(1, 100));
        assert_eq!(run(&r, &[bad, bad, good, bad]), ["pending", "pending", "ok", "pending"]);
    }

    #[test]
    fn with_for_zero_a_breach_fires_at_once_and_a_clear_resolves_at_once() {
        let r = rule(Kind::DeliveryFailureRate, 0.05, 0);
        assert_eq!(run(&r, &[failures(20, 100), failures(0, 100)]), ["firing", "resolved"]);
    }

    #[test]
    fn a_rate_hovering_at_the_threshold_keeps_firing_instead_of_flapping() {
        // 5% threshold: 6% breaches, 4.5% is in the band (above 80% of 5% = 4%), 3% clears.
        let r = rule(Kind::DeliveryFailureRate, 0.05, 60);
        let (over, band, clear) = (failures(6, 100), failures(9, 200), failures(3, 100));
        assert_eq!(
            run(&r, &[over, over, band, over, band, band, clear, clear]),
            ["pending", "firing", "firing", "firing", "firing", "firing", "firing", "resolved"]
        );
    }

    #[test]
    fn a_breach_while_clearing_starts_the_clear_period_again() {
        let r = rule(Kind::DeliveryFailureRate, 0.05, 120);
        let (over, clear) = (failures(6, 100), failures(0, 100));
        assert_eq!(
            run(&r, &[over, over, over, clear, clear, over, clear, clear, clear]),
            ["pending", "pending", "firing", "firing", "firing", "firing", "firing", "firing", "resolved"]
        );
    }

    #[test]
    fn too_few_attempts_never_fire_and_never_resolve() {
        let r = rule(Kind::DeliveryFailureRate, 0.05, 0);
        let quiet = failures(3, 5); // 60%, but 5 attempts < min_sample 10
        assert_eq!(run(&r, &[quiet, quiet]), ["ok", "ok"]);
        assert_eq!(
            run(&r, &[failures(50, 100), quiet, quiet, failures(0, 100)]),
            ["firing", "firing", "firing", "resolved"]
        );
        let slow = rule(Kind::DeliveryFailureRate, 0.05, 120);
        assert_eq!(run(&slow, &[failures(50, 100), quiet]), ["pending", "ok"], "a pending alert needs evidence");
    }

    #[test]
    fn a_resolved_alert_can_fire_again() {
        let r = rule(Kind::DeliveryFailureRate, 0.05, 0);
        let (over, clear) = (failures(6, 100), failures(0, 100));
        assert_eq!(run(&r, &[over, clear, over]), ["firing", "resolved", "firing"]);
    }

    #[test]
    fn a_conversion_drop_compares_the_window_with_its_baseline() {
        let r = rule(Kind::ConversionDrop, -0.5, 0);
        // 10% before; 4% now is a 60% fall.
        let fell = Measured { count: 4, sample: 100, baseline_count: 100, baseline_sample: 1000 };
        assert!((fell.value(&r).unwrap() - -0.6).abs() < 1e-9);
        // 5.5% is a 45% fall: less than the threshold's, but more than 80% of it (-40%), so
        // it is in the band: still firing.
        let band = Measured { count: 55, sample: 1000, ..fell };
        let back = Measured { count: 9, sample: 100, ..fell };
        assert_eq!(run(&r, &[fell, band, back]), ["firing", "firing", "resolved"]);
        let no_baseline = Measured { baseline_count: 0, ..fell };
        assert_eq!(no_baseline.value(&r), None, "nothing converted before: nothing can fall");
        let quiet = Measured { sample: 5, count: 0, ..fell };
        assert_eq!(run(&r, &[quiet]), ["ok"], "a quiet night does not page");
    }

    #[test]
    fn no_sends_fires_when_a_journey_that_sent_goes_silent() {
        let r = rule(Kind::NoSends, 0.0, 0);
        let silent = Measured { count: 0, baseline_count: 300, ..Measured::default() };
        let never = Measured { count: 0, baseline_count: 2, ..Measured::default() };
        let back = Measured { count: 12, baseline_count: 300, ..Measured::default() };
        assert_eq!(run(&r, &[never, silent, back]), ["ok", "firing", "resolved"]);
    }

    #[test]
    fn queue_lag_is_seconds_against_a_bound() {
        let r = rule(Kind::QueueLag, 600.0, 60);
        let lag = |s| Measured { count: s, ..Measured::default() };
        assert_eq!(
            run(&r, &[lag(0), lag(700), lag(800), lag(500), lag(400), lag(0)]),
            ["ok", "pending", "firing", "firing", "firing", "resolved"]
        );
    }

    #[test]
    fn a_transition_names_the_status_it_left() {
        let r = rule(Kind::DeliveryFailureRate, 0.05, 0);
        let e = evaluate(&r, &AlertState::new(minute(0)), &failures(20, 100), minute(1));
        assert_eq!((e.from, e.state.status, e.state.since), (Some(Status::Ok), Status::Firing, minute(1)));
        assert_eq!(e.value, Some(0.2));
        let again = evaluate(&r, &e.state, &failures(20, 100), minute(2));
        assert_eq!((again.from, again.state.since), (None, minute(1)));
    }
}
