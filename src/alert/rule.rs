//! Alert rules: `[[alerts]]` in `tidings.toml` as written ([`RawRule`], with spans), and
//! the checked [`Rule`] the engine evaluates. [`compile`] turns the one into the other and
//! reports every problem as a [`Diagnostic`] (codes `A0xx`) pointing into the file.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::channel::Channel;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::duration::Duration;
use crate::journey::{Journey, StepKind};
use crate::source::{SourceFile, Span};

/// One `[[alerts]]` table as written. Every key but `kind` is optional: each kind has
/// defaults ([`Kind::defaults`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique among the rules; defaults to the kind (and the journey, when scoped).
    pub name: Option<Spanned<String>>,
    pub kind: Spanned<String>,
    /// The period the numbers are counted over, e.g. `15m`.
    pub window: Option<Spanned<String>>,
    /// `"5%"` for rates, `"-50%"` for `conversion_drop`, `"10m"` for `queue_lag`, a count
    /// for `no_sends`.
    pub threshold: Option<Spanned<toml::Value>>,
    /// The fewest attempts (sends, entries) a window needs before its rate means anything.
    pub min_sample: Option<Spanned<i64>>,
    /// How long the threshold must be crossed before the alert fires (and be back under it
    /// before it resolves).
    #[serde(rename = "for")]
    pub for_: Option<Spanned<String>>,
    /// `conversion_drop` and `no_sends`: the trailing period compared with the window.
    pub baseline: Option<Spanned<String>>,
    pub journey: Option<Spanned<String>>,
    pub step: Option<Spanned<String>>,
    pub channel: Option<Spanned<String>>,
    pub variant: Option<Spanned<String>>,
    /// Where this rule's notifications are emailed (besides `TIDINGS_ALERT_EMAIL`).
    pub email: Option<Spanned<String>>,
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    DeliveryFailureRate,
    BounceOrComplaintRate,
    UnsubscribeRate,
    ConversionDrop,
    QueueLag,
    NoSends,
}

/// The scope keys a rule may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeKey {
    Journey,
    Step,
    Channel,
    Variant,
}

/// A kind's values when the rule leaves them out.
pub struct Defaults {
    pub window: i64,
    pub threshold: f64,
    pub min_sample: i64,
    pub for_: i64,
    pub baseline: i64,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::DeliveryFailureRate,
        Kind::BounceOrComplaintRate,
        Kind::UnsubscribeRate,
        Kind::ConversionDrop,
        Kind::QueueLag,
        Kind::NoSends,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeliveryFailureRate => "delivery_failure_rate",
            Kind::BounceOrComplaintRate => "bounce_or_complaint_rate",
            Kind::UnsubscribeRate => "unsubscribe_rate",
            Kind::ConversionDrop => "conversion_drop",
            Kind::QueueLag => "queue_lag",
            Kind::NoSends => "no_sends",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Windows, thresholds, samples and `for` in seconds, fractions and counts.
    pub fn defaults(self) -> Defaults {
        const M: i64 = 60;
        const H: i64 = 3_600;
        const D: i64 = 86_400;
        match self {
            Kind::DeliveryFailureRate => {
                Defaults { window: 15 * M, threshold: 0.05, min_sample: 50, for_: 5 * M, baseline: 0 }
            }
            Kind::BounceOrComplaintRate => {
                Defaults { window: H, threshold: 0.02, min_sample: 100, for_: 10 * M, baseline: 0 }
            }
            Kind::UnsubscribeRate => {
                Defaults { window: H, threshold: 0.01, min_sample: 100, for_: 10 * M, baseline: 0 }
            }
            Kind::ConversionDrop => {
                Defaults { window: D, threshold: -0.5, min_sample: 50, for_: 30 * M, baseline: 7 * D }
            }
            Kind::QueueLag => {
                Defaults { window: 0, threshold: (10 * M) as f64, min_sample: 0, for_: 2 * M, baseline: 0 }
            }
            Kind::NoSends => Defaults { window: D, threshold: 0.0, min_sample: 20, for_: 0, baseline: 7 * D },
        }
    }

    fn allows(self, key: ScopeKey) -> bool {
        match self {
            Kind::DeliveryFailureRate | Kind::BounceOrComplaintRate | Kind::UnsubscribeRate => true,
            Kind::NoSends => key != ScopeKey::Variant,
            Kind::ConversionDrop => key == ScopeKey::Journey,
            Kind::QueueLag => false,
        }
    }

    /// Whether the threshold is an upper bound (rates, lag) or a lower one (a drop, sends).
    pub fn fires_above(self) -> bool {
        !matches!(self, Kind::ConversionDrop | Kind::NoSends)
    }

    /// How the threshold is written, for hints and messages.
    pub fn threshold_form(self) -> &'static str {
        match self {
            Kind::DeliveryFailureRate | Kind::BounceOrComplaintRate | Kind::UnsubscribeRate => {
                "a percentage of attempts such as \"5%\""
            }
            Kind::ConversionDrop => "a fall against the baseline such as \"-50%\"",
            Kind::QueueLag => "a duration such as \"10m\"",
            Kind::NoSends => "a number of sends (the alert fires at or below it), usually 0",
        }
    }

    /// A value as an operator reads it: `7.5%`, `-62%`, `14m 5s`, `0 sends`.
    pub fn format_value(self, value: f64) -> String {
        match self {
            Kind::DeliveryFailureRate | Kind::BounceOrComplaintRate | Kind::UnsubscribeRate => percent(value),
            Kind::ConversionDrop => {
                let p = percent(value);
                if value > 0.0 { format!("+{p}") } else { p }
            }
            Kind::QueueLag => {
                let s = value.max(0.0).round() as i64;
                match (s / 60, s % 60) {
                    (0, s) => format!("{s}s"),
                    (m, 0) => format!("{m}m"),
                    (m, s) => format!("{m}m {s}s"),
                }
            }
            Kind::NoSends => format!("{} sends", value.round() as i64),
        }
    }
}

/// `0.075` → `7.5%`, with at most one decimal.
fn percent(fraction: f64) -> String {
    let p = (fraction * 1000.0).round() / 10.0;
    if p.fract() == 0.0 { format!("{p:.0}%") } else { format!("{p:.1}%") }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which deliveries, runs or sends a rule counts; `None` counts all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Scope {
    pub journey: Option<String>,
    pub step: Option<String>,
    pub channel: Option<Channel>,
    pub variant: Option<String>,
}

impl Scope {
    /// `journey winback · step offer · email`, or `all journeys`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            self.journey.as_ref().map(|j| format!("journey {j}")),
            self.step.as_ref().map(|s| format!("step {s}")),
            self.variant.as_ref().map(|v| format!("variant {v}")),
            self.channel.map(|c| c.to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() { "all journeys".to_string() } else { parts.join(" · ") }
    }
}

/// A checked rule. Durations are whole seconds; the threshold is in the kind's unit (a
/// fraction for rates and drops, seconds for lag, a count for sends).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    pub window: i64,
    pub threshold: f64,
    pub min_sample: i64,
    #[serde(rename = "for")]
    pub for_: i64,
    pub baseline: i64,
    pub scope: Scope,
    pub email: Option<String>,
}

impl Rule {
    /// `delivery_failure_rate > 5% over 15m (min 50)`: the rule as one line.
    pub fn describe(&self) -> String {
        let w = |s: i64| Duration::from_secs(s).to_string();
        let t = self.kind.format_value(self.threshold);
        match self.kind {
            Kind::QueueLag => format!("oldest due work older than {t}"),
            Kind::ConversionDrop => format!(
                "conversion over {} at {t} or worse vs the previous {} (min {} entries)",
                w(self.window),
                w(self.baseline),
                self.min_sample
            ),
            Kind::NoSends => format!(
                "at most {} over {} where the previous {} had {}+",
                t,
                w(self.window),
                w(self.baseline),
                self.min_sample
            ),
            _ => format!("{} > {t} over {} (min {})", self.kind, w(self.window), self.min_sample),
        }
    }
}

/// Checks the rules against the journeys they name; returns the rules that are right and
/// a diagnostic for each problem (a rule with an error is left out).
pub fn compile(raw: &[RawRule], file: &Arc<SourceFile>, journeys: &[Journey]) -> (Vec<Rule>, Vec<Diagnostic>) {
    let mut rules: Vec<Rule> = Vec::new();
    let mut diagnostics = Vec::new();
    let mut names: Vec<(String, Span)> = Vec::new();
    for r in raw {
        let before = diagnostics.len();
        let rule = compile_one(r, file, journeys, &mut diagnostics);
        if let Some(rule) = rule.filter(|_| diagnostics.len() == before) {
            let span = r.name.as_ref().map_or_else(|| span(&r.kind), span);
            if names.iter().any(|(n, _)| *n == rule.name) {
                diagnostics.push(
                    Diagnostic::error("A010", file, span, format!("a second alert named `{}`", rule.name))
                        .with_hint("give each [[alerts]] table its own `name`"),
                );
                continue;
            }
            names.push((rule.name.clone(), span));
            rules.push(rule);
        }
    }
    diagnostics.sort_by_key(|d| d.span.start);
    (rules, diagnostics)
}

fn span<T>(s: &Spanned<T>) -> Span {
    let r = s.span();
    Span::new(r.start, r.end)
}

fn compile_one(r: &RawRule, file: &Arc<SourceFile>, journeys: &[Journey], out: &mut Vec<Diagnostic>) -> Option<Rule> {
    let Some(kind) = Kind::parse(r.kind.get_ref()) else {
        let hint = did_you_mean(r.kind.get_ref(), Kind::ALL.iter().map(|k| k.as_str()))
            .unwrap_or_else(|| format!("the kinds are {}", Kind::ALL.map(Kind::as_str).join(", ")));
        out.push(
            Diagnostic::error("A001", file, span(&r.kind), format!("unknown alert kind `{}`", r.kind.get_ref()))
                .with_hint(hint),
        );
        return None;
    };
    let defaults = kind.defaults();
    let duration = |value: &Option<Spanned<String>>, key: &str, default: i64, out: &mut Vec<Diagnostic>| {
        let Some(value) = value else { return default };
        match Duration::parse(value.get_ref()) {
            Ok(d) if d.as_secs() > 0 || (key == "for" && d.as_secs() == 0) => d.as_secs(),
            Ok(_) => {
                out.push(Diagnostic::error("A002", file, span(value), format!("`{key}` must be longer than 0s")));
                default
            }
            Err(e) => {
                out.push(Diagnostic::error("A002", file, span(value), format!("`{key}`: {e}")).with_hint(e.hint()));
                default
            }
        }
    };
    let window = duration(&r.window, "window", defaults.window, out);
    let for_ = duration(&r.for_, "for", defaults.for_, out);
    let baseline = duration(&r.baseline, "baseline", defaults.baseline, out);
    if kind == Kind::QueueLag
        && let Some(w) = &r.window
    {
        out.push(
            Diagnostic::error("A009", file, span(w), "`queue_lag` has no window")
                .with_hint("it measures how late the oldest due run or delivery is now; set `threshold = \"10m\"`"),
        );
    }
    if !matches!(kind, Kind::ConversionDrop | Kind::NoSends)
        && let Some(b) = &r.baseline
    {
        out.push(
            Diagnostic::error("A009", file, span(b), format!("`{kind}` has no baseline"))
                .with_hint("only `conversion_drop` and `no_sends` compare with a trailing period"),
        );
    }

    let threshold = match &r.threshold {
        None => defaults.threshold,
        Some(t) => match parse_threshold(kind, t.get_ref()) {
            Ok(v) => v,
            Err(message) => {
                out.push(
                    Diagnostic::error("A003", file, span(t), message)
                        .with_hint(format!("`{kind}` takes {}", kind.threshold_form())),
                );
                defaults.threshold
            }
        },
    };
    let min_sample = match &r.min_sample {
        None => defaults.min_sample,
        Some(m) if kind == Kind::QueueLag => {
            out.push(
                Diagnostic::error("A004", file, span(m), "`queue_lag` counts no sample")
                    .with_hint("remove `min_sample`: the lag of the oldest due work is measured, not a rate"),
            );
            0
        }
        Some(m) if *m.get_ref() < 1 => {
            out.push(
                Diagnostic::error(
                    "A004",
                    file,
                    span(m),
                    format!("`min_sample` must be at least 1, not {}", m.get_ref()),
                )
                .with_hint("a rate over fewer attempts than this is not trusted; 50 is a usual minimum"),
            );
            defaults.min_sample
        }
        Some(m) => *m.get_ref(),
    };

    // The scope: each key must be one the kind counts by, and name something that exists.
    let keys = [
        (ScopeKey::Journey, "journey", &r.journey),
        (ScopeKey::Step, "step", &r.step),
        (ScopeKey::Channel, "channel", &r.channel),
        (ScopeKey::Variant, "variant", &r.variant),
    ];
    for (key, name, value) in keys {
        if let Some(v) = value
            && !kind.allows(key)
        {
            out.push(
                Diagnostic::error("A009", file, span(v), format!("`{kind}` cannot be scoped by `{name}`")).with_hint(
                    match kind {
                        Kind::QueueLag => "queue lag is the whole engine's: remove the scope".to_string(),
                        Kind::ConversionDrop => "a conversion rate is a journey's: keep only `journey`".to_string(),
                        _ => "variants are counted by the rate kinds only".to_string(),
                    },
                ),
            );
        }
    }
    let journey = match &r.journey {
        None => None,
        Some(j) => match journeys.iter().find(|x| x.id == *j.get_ref()) {
            Some(found) => Some(found),
            None => {
                let hint = did_you_mean(j.get_ref(), journeys.iter().map(|x| x.id.as_str()))
                    .unwrap_or_else(|| "name a journey under workflows/ by its `id`".to_string());
                out.push(
                    Diagnostic::error("A005", file, span(j), format!("no journey `{}`", j.get_ref())).with_hint(hint),
                );
                None
            }
        },
    };
    if kind == Kind::ConversionDrop
        && let (Some(found), Some(j)) = (journey, &r.journey)
        && found.goal.is_none()
    {
        out.push(
            Diagnostic::error("A012", file, span(j), format!("journey `{}` has no goal to convert to", found.id))
                .with_hint("add `goal: { event: order.placed, within: 14d }` to the journey, or watch another one"),
        );
    }
    if kind == Kind::ConversionDrop && r.journey.is_none() {
        out.push(
            Diagnostic::error("A014", file, span(&r.kind), "`conversion_drop` watches one journey: name it")
                .with_hint("add `journey = \"…\"` (a journey with a `goal`)"),
        );
    }
    let mut send_step = None;
    if let Some(s) = &r.step {
        match (&r.journey, journey) {
            (None, _) => out.push(
                Diagnostic::error("A011", file, span(s), "a `step` needs the `journey` it belongs to")
                    .with_hint("add `journey = \"…\"` to this rule"),
            ),
            (Some(_), None) => {} // the journey is already reported
            (Some(_), Some(found)) => match found.step_by_id(s.get_ref()) {
                Some((_, step)) => match &step.kind {
                    StepKind::Send(send) => send_step = Some(send),
                    _ => out.push(
                        Diagnostic::error("A006", file, span(s), format!("step `{}` sends nothing", s.get_ref()))
                            .with_hint("alerts count messages: name a `send` step"),
                    ),
                },
                None => {
                    let hint = did_you_mean(s.get_ref(), found.steps.iter().map(|x| x.id.as_str()))
                        .unwrap_or_else(|| format!("journey `{}` has no such step", found.id));
                    out.push(
                        Diagnostic::error(
                            "A006",
                            file,
                            span(s),
                            format!("journey `{}` has no step `{}`", found.id, s.get_ref()),
                        )
                        .with_hint(hint),
                    );
                }
            },
        }
    }
    if let Some(v) = &r.variant {
        match (&r.step, send_step) {
            (None, _) => out.push(
                Diagnostic::error("A011", file, span(v), "a `variant` needs the `step` (and `journey`) it belongs to")
                    .with_hint("add `journey = \"…\"` and `step = \"…\"` to this rule"),
            ),
            (Some(_), None) => {}
            (Some(s), Some(send)) => {
                let names: Vec<&str> = send.variants.iter().filter_map(|x| x.name.as_deref()).collect();
                if !names.contains(&v.get_ref().as_str()) {
                    let hint = did_you_mean(v.get_ref(), names.iter().copied()).unwrap_or_else(|| {
                        if names.is_empty() {
                            format!("step `{}` is not an A/B test", s.get_ref())
                        } else {
                            format!("its variants are {}", names.join(", "))
                        }
                    });
                    out.push(
                        Diagnostic::error(
                            "A007",
                            file,
                            span(v),
                            format!("step `{}` has no variant `{}`", s.get_ref(), v.get_ref()),
                        )
                        .with_hint(hint),
                    );
                }
            }
        }
    }
    let channel = match &r.channel {
        None => None,
        Some(c) => match Channel::parse(c.get_ref()) {
            Some(ch) => {
                if let Some(send) = send_step
                    && send.channel != ch
                {
                    out.push(Diagnostic::error(
                        "A008",
                        file,
                        span(c),
                        format!(
                            "step `{}` sends by {}, not {ch}",
                            r.step.as_ref().map_or("", |s| s.get_ref()),
                            send.channel
                        ),
                    ));
                }
                Some(ch)
            }
            None => {
                out.push(
                    Diagnostic::error("A008", file, span(c), format!("unknown channel `{}`", c.get_ref()))
                        .with_hint("the channels are email, sms, push, webhook"),
                );
                None
            }
        },
    };
    if let Some(e) = &r.email {
        let text = e.get_ref().trim();
        let ok = text.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !text.contains(char::is_whitespace);
        if !ok {
            out.push(
                Diagnostic::error("A013", file, span(e), format!("`{text}` is not an email address"))
                    .with_hint("write one address, like \"ops@shop.example\""),
            );
        }
    }
    let name = match &r.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            out.push(Diagnostic::error("A010", file, span(n), "an alert's `name` cannot be empty"));
            return None;
        }
        Some(n) => n.get_ref().clone(),
        None => match &r.journey {
            Some(j) => format!("{kind}:{}", j.get_ref()),
            None => kind.as_str().to_string(),
        },
    };
    Some(Rule {
        name,
        kind,
        window,
        threshold,
        min_sample,
        for_,
        baseline,
        scope: Scope {
            journey: r.journey.as_ref().map(|j| j.get_ref().clone()),
            step: r.step.as_ref().map(|s| s.get_ref().clone()),
            channel,
            variant: r.variant.as_ref().map(|v| v.get_ref().clone()),
        },
        email: r.email.as_ref().map(|e| e.get_ref().trim().to_string()),
    })
}

/// A threshold in the kind's unit: `"5%"` → 0.05, `"-50%"` → -0.5, `"10m"` → 600, `0` → 0.
fn parse_threshold(kind: Kind, value: &toml::Value) -> Result<f64, String> {
    let percent = |value: &toml::Value| -> Result<f64, String> {
        let text = value.as_str().ok_or_else(|| format!("`{value}` is not a percentage"))?;
        let number = text.trim().strip_suffix('%').ok_or_else(|| format!("`{text}` is not a percentage"))?;
        number.trim().parse::<f64>().map(|p| p / 100.0).map_err(|_| format!("`{text}` is not a percentage"))
    };
    match kind {
        Kind::DeliveryFailureRate | Kind::BounceOrComplaintRate | Kind::UnsubscribeRate => {
            let p = percent(value)?;
            if p > 0.0 && p < 1.0 { Ok(p) } else { Err(format!("{value} is not between 0% and 100%")) }
        }
        Kind::ConversionDrop => {
            let p = percent(value)?;
            if p < 0.0 && p > -1.0 {
                Ok(p)
            } else {
                Err(format!("{value} is not a fall: write a negative percentage above -100%"))
            }
        }
        Kind::QueueLag => {
            let text = value.as_str().ok_or_else(|| format!("`{value}` is not a duration"))?;
            match Duration::parse(text) {
                Ok(d) if d.as_secs() > 0 => Ok(d.as_secs() as f64),
                Ok(_) => Err("the lag must be longer than 0s".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Kind::NoSends => match value.as_integer() {
            Some(n) if n >= 0 => Ok(n as f64),
            _ => Err(format!("`{value}` is not a number of sends")),
        },
    }
}
