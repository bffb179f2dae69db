//! From a journey file to a validated [`Journey`] and every diagnostic found on the way.
//!
//! Each rule runs independently and reports what it finds; the journey is returned only
//! when no rule found an error. Codes are stable and listed in the README.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde_saphyr::{Location, Spanned};
use sha2::{Digest, Sha256};

use super::model::*;
use super::yaml::{self, JourneyFile, StepFile, Text, WaitFile};
use crate::channel::Channel;
use crate::condition::{self, ConditionError, Scope};
use crate::diagnostic::{Diagnostic, Severity, did_you_mean};
use crate::duration::Duration;
use crate::schedule::CronSchedule;
use crate::schema::{self, FieldType};
use crate::source::{SourceFile, Span};
use crate::template::TemplateCatalog;

/// What a journey is checked against besides itself.
pub struct Context<'a> {
    pub templates: &'a TemplateCatalog,
    pub default_timezone: Tz,
}

/// Compiles one journey file. The journey is `None` when any error was found.
pub fn compile(file: &Arc<SourceFile>, context: &Context) -> (Option<Journey>, Vec<Diagnostic>) {
    let mut compiler = Compiler { file: Arc::clone(file), context, journey_id: String::new(), diagnostics: Vec::new() };
    let journey = match serde_saphyr::from_str::<JourneyFile>(file.text()) {
        Ok(parsed) => compiler.journey(parsed),
        Err(error) => {
            compiler.yaml_error(&error);
            None
        }
    };
    let failed = compiler.diagnostics.iter().any(|d| d.severity == Severity::Error);
    (journey.filter(|_| !failed), compiler.diagnostics)
}

/// The version of a journey: a hash of the file's bytes.
pub fn version_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

struct Compiler<'a> {
    file: Arc<SourceFile>,
    context: &'a Context<'a>,
    journey_id: String,
    diagnostics: Vec<Diagnostic>,
}

/// Step ids known so far, for resolving `goto`, `next`, `on_event` and friends.
struct StepTable {
    index: HashMap<String, StepIndex>,
    /// step id → is it a `send` step (for `opened(step)`).
    sends: HashMap<String, bool>,
}

impl Compiler<'_> {
    // ---- positions and reporting -------------------------------------------------------

    fn span(&self, location: Location) -> Span {
        let span = location.span();
        match (span.byte_offset(), span.byte_len()) {
            (Some(offset), Some(len)) if offset as usize <= self.file.text().len() => {
                Span::new(offset as usize, offset as usize + len as usize)
            }
            _ => {
                let start = self.file.offset_of(location.line() as usize, location.column() as usize);
                Span::new(start, start + 1)
            }
        }
    }

    /// The span of a scalar's text without its quotes.
    fn value_span<T>(&self, value: &Spanned<T>) -> Span {
        let span = self.span(value.referenced);
        let text = self.file.text();
        match text.as_bytes().get(span.start) {
            Some(b'"' | b'\'') if span.len() >= 2 => Span::new(span.start + 1, span.end - 1),
            _ => span,
        }
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn error(&mut self, code: &'static str, location: Location, message: impl Into<String>, hint: Option<String>) {
        let span = self.span(location);
        let d = Diagnostic::error(code, &self.file, span, message).with_optional_hint(hint);
        self.report(d);
    }

    fn error_at(&mut self, code: &'static str, text: &Text, message: impl Into<String>, hint: Option<String>) {
        let span = self.value_span(text);
        let d = Diagnostic::error(code, &self.file, span, message).with_optional_hint(hint);
        self.report(d);
    }

    fn yaml_error(&mut self, error: &serde_saphyr::Error) {
        let location = error.location();
        let (code, message, hint) = match error.without_snippet() {
            serde_saphyr::Error::SerdeUnknownField { field, expected, .. } => (
                "J002",
                format!("unknown key `{field}`"),
                Some(
                    did_you_mean(field, expected.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", expected.join(", "))),
                ),
            ),
            serde_saphyr::Error::SerdeMissingField { field, .. } => {
                ("J020", format!("missing key `{field}`"), Some(format!("add `{field}:` here")))
            }
            serde_saphyr::Error::DuplicateMappingKey { .. } => {
                ("J001", plain_message(error), Some("each key may appear once in a mapping".to_string()))
            }
            serde_saphyr::Error::SerdeInvalidType { .. } | serde_saphyr::Error::SerdeInvalidValue { .. } => {
                ("J021", plain_message(error), Some("see `tidings schema` for the shape of each key".to_string()))
            }
            _ => (
                "J001",
                format!("invalid YAML: {}", plain_message(error)),
                Some("check indentation, colons and closing brackets or quotes".to_string()),
            ),
        };
        let span = match location {
            Some(location) => self.span(location),
            None => Span::new(0, 1),
        };
        let d = Diagnostic::error(code, &self.file, span, message).with_optional_hint(hint);
        self.report(d);
    }

    /// Moves a condition's problems into the file, when the scalar's text maps 1:1 onto it.
    fn condition_errors(&mut self, text: &Text, errors: Vec<ConditionError>) {
        let scalar = self.value_span(text);
        let exact = self.file.text().get(scalar.start..scalar.start + text.value.len()) == Some(text.value.as_str());
        for e in errors {
            let span = if exact { e.span.offset(scalar.start) } else { scalar };
            let d = Diagnostic {
                code: e.code,
                severity: e.severity,
                message: e.message,
                file: Arc::clone(&self.file),
                span,
                hint: e.hint,
            };
            self.report(d);
        }
    }

    fn condition(&mut self, text: &Text, scope: &Scope) -> Option<Condition> {
        match condition::parse(&text.value) {
            Ok(expr) => {
                let problems = condition::check(&expr, scope);
                let failed = problems.iter().any(|p| p.severity == Severity::Error);
                self.condition_errors(text, problems);
                (!failed).then(|| Condition { text: text.value.clone(), expr })
            }
            Err(e) => {
                self.condition_errors(text, vec![e]);
                None
            }
        }
    }

    fn duration(&mut self, text: &Text) -> Option<Duration> {
        match Duration::parse(&text.value) {
            Ok(d) => Some(d),
            Err(e) => {
                let hint = e.hint().to_string();
                self.error_at("J012", text, format!("invalid duration: {e}"), Some(hint));
                None
            }
        }
    }

    fn time_of_day(&mut self, text: &Text) -> Option<NaiveTime> {
        match NaiveTime::parse_from_str(&text.value, "%H:%M") {
            Ok(t) => Some(t),
            Err(_) => {
                self.error_at(
                    "J017",
                    text,
                    format!("invalid time of day `{}`", text.value),
                    Some("write 24-hour `HH:MM`, e.g. \"09:00\" (quoted)".to_string()),
                );
                None
            }
        }
    }

    fn event_name(&mut self, text: &Text) -> Option<String> {
        if schema::is_event_name(&text.value) {
            return Some(text.value.clone());
        }
        let hint = did_you_mean(&text.value, schema::EVENT_NAMES.iter().copied())
            .unwrap_or_else(|| "event names are lowercase dotted words, e.g. `order.placed`".to_string());
        self.error_at("J016", text, format!("invalid event name `{}`", text.value), Some(hint));
        None
    }

    fn timezone(&mut self, text: &Text) -> Option<Tz> {
        match text.value.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                let hint = did_you_mean(&text.value, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))
                    .unwrap_or_else(|| "use an IANA name such as `Asia/Shanghai` or `Europe/Berlin`".to_string());
                self.error_at("J010", text, format!("unknown time zone `{}`", text.value), Some(hint));
                None
            }
        }
    }

    // ---- the journey -------------------------------------------------------------------

    fn journey(&mut self, file: JourneyFile) -> Option<Journey> {
        self.journey_id = file.id.value.clone();
        let expected_id = self.file.path().file_stem().map(|s| s.to_string_lossy().into_owned());
        if let Some(expected) = &expected_id
            && *expected != file.id.value
        {
            self.error_at(
                "J013",
                &file.id,
                format!("journey id `{}` does not match its file name `{expected}.yaml`", file.id.value),
                Some(format!("rename the file or write `id: {expected}`")),
            );
        }

        let steps = self.step_table(&file.steps);
        let trigger = self.trigger(&file.trigger);
        let audience =
            file.audience.as_ref().and_then(|a| self.condition(a, &Scope { event: false, steps: None, sql: true }));
        if let (Some(Trigger::Schedule { .. }), None) = (&trigger, &file.audience) {
            let span = self.span(file.trigger.referenced);
            self.report(
                Diagnostic::warning("J022", &self.file, span, "this schedule enrolls every member at each firing")
                    .with_hint("add an `audience:` condition, e.g. `lifecycle == \"dormant\" and email_consent`"),
            );
        }
        let reentry = file.entry.as_ref().map_or(Some(Reentry::Never), |e| self.reentry(&e.reentry));
        let exit_when = file.exit_when.as_ref().and_then(|text| self.exit_when(text, &steps.sends));
        let goal = file.goal.as_ref().and_then(|g| {
            let event = self.event_name(&g.event);
            let within = self.duration(&g.within);
            Some(Goal { event: event?, within: within? })
        });
        let priority = match file.priority.as_ref().map(|p| p.value.as_str()) {
            None | Some("marketing") => Priority::Marketing,
            Some("transactional") => Priority::Transactional,
            Some(other) => {
                let hint = did_you_mean(other, ["marketing", "transactional"])
                    .unwrap_or_else(|| "use `marketing` (the default) or `transactional`".to_string());
                let text = file.priority.as_ref().expect("matched Some");
                self.error_at("J026", text, format!("unknown priority `{other}`"), Some(hint));
                Priority::Marketing
            }
        };

        let compiled: Vec<Option<Step>> =
            file.steps.value.iter().enumerate().map(|(i, s)| self.step(i, s, &file.steps.value, &steps)).collect();
        if file.steps.value.is_empty() {
            self.error("J014", file.steps.referenced, "a journey needs at least one step", None);
        }
        let steps: Option<Vec<Step>> = compiled.into_iter().collect();
        if let Some(steps) = &steps {
            self.check_graph(steps, &file.steps.value);
        }

        Some(Journey {
            id: file.id.value.clone(),
            name: file.name.value.clone(),
            version: version_of(self.file.text()),
            trigger: trigger?,
            audience,
            reentry: reentry?,
            exit_when,
            goal,
            priority,
            steps: steps?,
        })
    }

    fn reentry(&mut self, text: &Text) -> Option<Reentry> {
        let value = text.value.trim();
        match value {
            "never" => Some(Reentry::Never),
            "always" => Some(Reentry::Always),
            _ => match value.strip_prefix("after ") {
                Some(d) => match Duration::parse(d) {
                    Ok(d) => Some(Reentry::After(d)),
                    Err(e) => {
                        self.error_at(
                            "J012",
                            text,
                            format!("invalid duration in reentry: {e}"),
                            Some(e.hint().to_string()),
                        );
                        None
                    }
                },
                None => {
                    self.error_at(
                        "J025",
                        text,
                        format!("invalid reentry `{value}`"),
                        Some("use `never`, `always` or `after 90d`".to_string()),
                    );
                    None
                }
            },
        }
    }

    fn exit_when(&mut self, text: &Text, sends: &HashMap<String, bool>) -> Option<ExitWhen> {
        if let Some(name) = text.value.trim().strip_prefix("event ") {
            let name_text = Spanned::new(name.trim().to_string(), text.referenced, text.defined);
            return self.event_name(&name_text).map(ExitWhen::Event);
        }
        self.condition(text, &Scope { event: true, steps: Some(sends), sql: false }).map(ExitWhen::Condition)
    }

    fn trigger(&mut self, trigger: &Spanned<yaml::TriggerFile>) -> Option<Trigger> {
        let t = &trigger.value;
        let kinds: Vec<&str> =
            [("event", t.event.is_some()), ("schedule", t.schedule.is_some()), ("date", t.date.is_some())]
                .into_iter()
                .filter_map(|(k, present)| present.then_some(k))
                .collect();
        if kinds.len() != 1 {
            let message = if kinds.is_empty() {
                "a trigger needs one of `event`, `schedule` or `date`".to_string()
            } else {
                format!("a trigger has exactly one of `event`, `schedule` or `date`, found {}", kinds.join(" and "))
            };
            self.error("J015", trigger.referenced, message, Some("split it into one journey per trigger".to_string()));
            return None;
        }
        let misplaced =
            |key: &'static str, present: bool, allowed: &str| (present && !kinds.contains(&allowed)).then_some(key);
        let stray: Vec<(&str, &Text)> = [
            (misplaced("where", t.where_.is_some(), "event"), t.where_.as_ref()),
            (misplaced("timezone", t.timezone.is_some(), "schedule"), t.timezone.as_ref()),
            (misplaced("at", t.at.is_some(), "date"), t.at.as_ref()),
            (misplaced("offset", t.offset.is_some(), "date"), t.offset.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k?, v?)))
        .collect();
        for (key, value) in &stray {
            let applies = match *key {
                "where" => "event",
                "timezone" => "schedule",
                _ => "date",
            };
            self.error_at("J015", value, format!("`{key}` applies only to {applies} triggers"), None);
        }

        if let Some(event) = &t.event {
            let name = self.event_name(event);
            let filter = match &t.where_ {
                Some(w) => Some(self.condition(w, &Scope { event: true, steps: None, sql: false })?),
                None => None,
            };
            return Some(Trigger::Event { name: name?, filter });
        }
        if let Some(expression) = &t.schedule {
            let timezone = match &t.timezone {
                Some(tz) => self.timezone(tz),
                None => Some(self.context.default_timezone),
            };
            let cron = match CronSchedule::parse(&expression.value) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.error_at(
                        "J009",
                        expression,
                        e.to_string(),
                        Some(
                            "5 fields: minute hour day-of-month month day-of-week, e.g. \"0 10 * * *\" for 10:00 daily"
                                .to_string(),
                        ),
                    );
                    None
                }
            };
            return Some(Trigger::Schedule { cron: cron?, timezone: timezone? });
        }
        let date = t.date.as_ref().expect("exactly one trigger kind");
        let field = self.date_field(date);
        let at = match &t.at {
            Some(at) => self.time_of_day(at),
            None => NaiveTime::from_hms_opt(9, 0, 0),
        };
        let offset = match &t.offset {
            Some(o) => self.duration(o),
            None => Some(Duration::ZERO),
        };
        Some(Trigger::Date { field: field?, at: at?, offset: offset? })
    }

    fn date_field(&mut self, text: &Text) -> Option<DateField> {
        if let Some(name) = text.value.strip_prefix("attributes.") {
            return Some(DateField::Attribute(name.to_string()));
        }
        match schema::member_field(&text.value) {
            Some(f) if matches!(f.ty, FieldType::Date | FieldType::Timestamp) => Some(DateField::Member(f.name)),
            Some(f) => {
                let hint = format!(
                    "date triggers take one of {}, or `attributes.NAME`",
                    schema::DATE_TRIGGER_FIELDS.join(", ")
                );
                self.error_at("J011", text, format!("`{}` is a {}, not a date", f.name, f.ty.describe()), Some(hint));
                None
            }
            None => {
                let hint =
                    did_you_mean(&text.value, schema::DATE_TRIGGER_FIELDS.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "date triggers take one of {}, or `attributes.NAME`",
                            schema::DATE_TRIGGER_FIELDS.join(", ")
                        )
                    });
                self.error_at("J011", text, format!("unknown date field `{}`", text.value), Some(hint));
                None
            }
        }
    }

    // ---- steps -------------------------------------------------------------------------

    fn step_table(&mut self, steps: &Spanned<Vec<StepFile>>) -> StepTable {
        let mut index = HashMap::new();
        let mut sends = HashMap::new();
        for (i, step) in steps.value.iter().enumerate() {
            if let Some(&StepIndex(first)) = index.get(&step.id.value) {
                let first_line = self.file.line_col(self.value_span(&steps.value[first].id).start).0;
                self.error_at(
                    "J003",
                    &step.id,
                    format!("duplicate step id `{}`", step.id.value),
                    Some(format!(
                        "the first `{}` is on line {first_line}; step ids are unique within a journey",
                        step.id.value
                    )),
                );
                continue;
            }
            index.insert(step.id.value.clone(), StepIndex(i));
            sends.insert(step.id.value.clone(), step.send.is_some());
        }
        StepTable { index, sends }
    }

    fn resolve(&mut self, target: &Text, table: &StepTable) -> Option<StepIndex> {
        if let Some(&index) = table.index.get(&target.value) {
            return Some(index);
        }
        let hint = did_you_mean(&target.value, table.index.keys().map(String::as_str))
            .unwrap_or_else(|| "name the `id` of a step in this journey".to_string());
        self.error_at("J004", target, format!("no step named `{}`", target.value), Some(hint));
        None
    }

    fn step(&mut self, position: usize, step: &StepFile, all: &[StepFile], table: &StepTable) -> Option<Step> {
        let kinds = step.kinds();
        if kinds.len() != 1 {
            let message = if kinds.is_empty() {
                format!("step `{}` does nothing", step.id.value)
            } else {
                let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
                format!("step `{}` has {} — a step does exactly one thing", step.id.value, names.join(" and "))
            };
            let hint = "give it one of `send`, `wait`, `branch`, `split`, `update` or `exit`".to_string();
            self.error_at("J014", &step.id, message, Some(hint));
            return None;
        }
        let following = (position + 1 < all.len()).then_some(StepIndex(position + 1));
        let next = match &step.next {
            Some(n) => Some(self.resolve(n, table)?),
            None => following,
        };
        let kind = if let Some(send) = &step.send {
            StepKind::Send(self.send(&step.id.value, send)?)
        } else if let Some(wait) = &step.wait {
            StepKind::Wait(self.wait(wait, table)?)
        } else if let Some(branch) = &step.branch {
            self.branch(branch, table)?
        } else if let Some(split) = &step.split {
            StepKind::Split(self.split(split, table)?)
        } else if let Some(update) = &step.update {
            StepKind::Update(Update {
                set: update.value.set.clone().unwrap_or_default(),
                add_tags: update.value.add_tags.clone().unwrap_or_default(),
                remove_tags: update.value.remove_tags.clone().unwrap_or_default(),
            })
        } else {
            StepKind::Exit
        };
        let next = if matches!(kind, StepKind::Exit) { None } else { next };
        Some(Step { id: step.id.value.clone(), kind, next })
    }

    fn send(&mut self, step_id: &str, send: &Spanned<yaml::SendFile>) -> Option<Send> {
        let s = &send.value;
        let channel = match Channel::parse(&s.channel.value) {
            Some(c) => Some(c),
            None => {
                let hint = did_you_mean(&s.channel.value, Channel::ALL.iter().map(|c| c.as_str()))
                    .unwrap_or_else(|| "use `email`, `sms`, `push` or `webhook`".to_string());
                self.error_at("J019", &s.channel, format!("unknown channel `{}`", s.channel.value), Some(hint));
                None
            }
        };
        let holdout = s.holdout.as_ref().map_or(0, |h| h.value);
        let step_vars = s.vars.clone().unwrap_or_default();
        let variants: Vec<(Variant, &Text)> = match (&s.template, &s.variants) {
            (Some(template), None) => {
                if holdout > 100 {
                    let h = s.holdout.as_ref().expect("holdout is set");
                    self.error("J007", h.referenced, format!("holdout is {holdout}%, more than 100%"), None);
                }
                let variant = Variant {
                    name: None,
                    weight: 100u32.saturating_sub(holdout),
                    template: template.value.clone(),
                    vars: step_vars,
                };
                vec![(variant, template)]
            }
            (None, Some(variants)) => {
                let list: Vec<(Variant, &Text)> = variants
                    .value
                    .iter()
                    .map(|v| {
                        let mut vars = step_vars.clone();
                        vars.extend(v.vars.clone().unwrap_or_default());
                        let variant = Variant {
                            name: Some(v.name.value.clone()),
                            weight: v.weight.value,
                            template: v.template.value.clone(),
                            vars,
                        };
                        (variant, &v.template)
                    })
                    .collect();
                let mut seen = BTreeSet::new();
                for v in &variants.value {
                    if !seen.insert(v.name.value.as_str()) {
                        self.error_at("J024", &v.name, format!("duplicate variant name `{}`", v.name.value), None);
                    }
                }
                let total: u32 = list.iter().map(|(v, _)| v.weight).sum::<u32>() + holdout;
                if total != 100 {
                    let weights: Vec<String> = list.iter().map(|(v, _)| v.weight.to_string()).collect();
                    self.error(
                        "J007",
                        variants.referenced,
                        format!("variant weights plus holdout add up to {total}, not 100"),
                        Some(format!("weights {} + holdout {holdout} must make 100", weights.join(" + "))),
                    );
                }
                if list.is_empty() {
                    self.error(
                        "J014",
                        variants.referenced,
                        "`variants` is empty",
                        Some("list at least one variant".to_string()),
                    );
                }
                list
            }
            (Some(template), Some(_)) => {
                self.error_at(
                    "J014",
                    template,
                    "a send has `template` or `variants`, not both",
                    Some("move the template into a variant".to_string()),
                );
                return None;
            }
            (None, None) => {
                self.error("J020", send.referenced, "a send needs `template` or `variants`", None);
                return None;
            }
        };
        let channel = channel?;
        let used_by = format!("journey `{}` step `{step_id}`", self.journey_id);
        let mut ok = true;
        for (variant, template_text) in &variants {
            if !self.context.templates.has(&variant.template, channel) {
                ok = false;
                let names = self.context.templates.names(channel);
                let hint = did_you_mean(&variant.template, names.iter().copied())
                    .unwrap_or_else(|| format!("create templates/{}.{}.hbs", variant.template, channel.as_str()));
                self.error_at(
                    "J008",
                    template_text,
                    format!("no {channel} template named `{}`", variant.template),
                    Some(hint),
                );
                continue;
            }
            let keys: BTreeSet<String> = variant.vars.keys().cloned().collect();
            let problems = self.context.templates.check_variables(&variant.template, channel, &keys, &used_by);
            ok &= !problems.iter().any(|d| d.severity == Severity::Error);
            self.diagnostics.extend(problems);
        }
        ok.then(|| Send { channel, variants: variants.into_iter().map(|(v, _)| v).collect(), holdout })
    }

    fn wait(&mut self, wait: &Spanned<WaitFile>, table: &StepTable) -> Option<Wait> {
        match &wait.value {
            WaitFile::Duration(text) => {
                let spanned = Spanned::new(text.clone(), wait.referenced, wait.defined);
                self.duration(&spanned).map(Wait::For)
            }
            WaitFile::Spec(spec) => match (&spec.until, &spec.for_event) {
                (Some(until), None) => self.time_of_day(until).map(Wait::Until),
                (None, Some(event)) => {
                    let name = self.event_name(event);
                    let timeout = match &spec.timeout {
                        Some(t) => self.duration(t),
                        None => {
                            self.error_at(
                                "J020",
                                event,
                                "waiting for an event needs a `timeout`",
                                Some("add `timeout: 7d` so members do not wait forever".to_string()),
                            );
                            None
                        }
                    };
                    let on_event = match &spec.on_event {
                        Some(t) => Some(self.resolve(t, table)?),
                        None => None,
                    };
                    let on_timeout = match &spec.on_timeout {
                        Some(t) => Some(self.resolve(t, table)?),
                        None => None,
                    };
                    Some(Wait::ForEvent { event: name?, timeout: timeout?, on_event, on_timeout })
                }
                _ => {
                    self.error(
                        "J020",
                        wait.referenced,
                        "a wait needs a duration, `until` or `for_event` (one of them)",
                        Some("e.g. `wait: 3d`, `wait: { until: \"09:00\" }`".to_string()),
                    );
                    None
                }
            },
        }
    }

    fn branch(&mut self, branch: &Spanned<Vec<yaml::BranchArmFile>>, table: &StepTable) -> Option<StepKind> {
        let mut arms = Vec::new();
        let mut otherwise = None;
        let mut ok = true;
        let count = branch.value.len();
        for (i, arm) in branch.value.iter().enumerate() {
            match (&arm.if_, &arm.goto, &arm.else_) {
                (Some(condition), Some(goto), None) => {
                    let c = self.condition(condition, &Scope { event: false, steps: Some(&table.sends), sql: false });
                    let g = self.resolve(goto, table);
                    match (c, g) {
                        (Some(condition), Some(goto)) => arms.push(BranchArm { condition, goto }),
                        _ => ok = false,
                    }
                }
                (None, None, Some(target)) if i + 1 == count => {
                    otherwise = self.resolve(target, table).or_else(|| {
                        ok = false;
                        None
                    })
                }
                (None, None, Some(target)) => {
                    ok = false;
                    self.error_at("J018", target, "`else` must be the last arm of a branch", None);
                }
                _ => {
                    ok = false;
                    self.error(
                        "J018",
                        branch.referenced,
                        format!("branch arm {} must be `{{ if: CONDITION, goto: STEP }}` or `{{ else: STEP }}`", i + 1),
                        None,
                    );
                }
            }
        }
        if otherwise.is_none() && ok {
            self.error(
                "J018",
                branch.referenced,
                "a branch ends with an `else` arm",
                Some("add `- { else: STEP }` for members who match no condition".to_string()),
            );
            return None;
        }
        ok.then_some(StepKind::Branch { arms, otherwise: otherwise? })
    }

    fn split(&mut self, split: &Spanned<Vec<yaml::SplitArmFile>>, table: &StepTable) -> Option<Vec<SplitArm>> {
        let mut arms = Vec::new();
        let mut ok = true;
        for arm in &split.value {
            match self.resolve(&arm.goto, table) {
                Some(goto) => arms.push(SplitArm { name: arm.name.value.clone(), weight: arm.weight.value, goto }),
                None => ok = false,
            }
        }
        let total: u32 = split.value.iter().map(|a| a.weight.value).sum();
        if total != 100 {
            ok = false;
            self.error("J007", split.referenced, format!("split weights add up to {total}, not 100"), None);
        }
        ok.then_some(arms)
    }

    // ---- the step graph ------------------------------------------------------------------

    fn check_graph(&mut self, steps: &[Step], files: &[StepFile]) {
        let successors = |step: &Step| -> Vec<StepIndex> {
            let mut out: Vec<StepIndex> = step.next.into_iter().collect();
            match &step.kind {
                StepKind::Branch { arms, otherwise } => {
                    out = arms.iter().map(|a| a.goto).chain([*otherwise]).collect();
                }
                StepKind::Split(arms) => out = arms.iter().map(|a| a.goto).collect(),
                StepKind::Wait(Wait::ForEvent { on_event, on_timeout, .. }) => {
                    out = [on_event.or(step.next), on_timeout.or(step.next)].into_iter().flatten().collect();
                }
                _ => {}
            }
            out
        };
        let graph: Vec<Vec<StepIndex>> = steps.iter().map(successors).collect();

        // Unreachable: not visited from the first step.
        let mut seen = vec![false; steps.len()];
        let mut stack = vec![0];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(graph[i].iter().map(|s| s.0));
        }
        for (i, reached) in seen.iter().enumerate() {
            if !reached {
                self.error_at(
                    "J005",
                    &files[i].id,
                    format!("step `{}` can never be reached", steps[i].id),
                    Some("no step leads here: add a `goto`/`next` to it, or remove it".to_string()),
                );
            }
        }

        // A loop with no wait would spin a member through it forever.
        let is_wait = |i: usize| matches!(steps[i].kind, StepKind::Wait(_));
        let mut reported = BTreeSet::new();
        for start in 0..steps.len() {
            if is_wait(start) || !seen[start] {
                continue;
            }
            if let Some(cycle) = find_cycle_without_wait(start, &graph, &is_wait)
                && reported.insert(cycle.iter().min().copied())
            {
                let names: Vec<&str> =
                    cycle.iter().map(|&i| steps[i].id.as_str()).chain([steps[start].id.as_str()]).collect();
                self.error_at(
                    "J006",
                    &files[start].id,
                    format!("loop without a wait: {}", names.join(" → ")),
                    Some("add a `wait` step inside the loop, or end it with `exit`".to_string()),
                );
            }
        }
    }
}

/// A path from `start` back to itself that passes no wait step, if there is one.
fn find_cycle_without_wait(
    start: usize,
    graph: &[Vec<StepIndex>],
    is_wait: &dyn Fn(usize) -> bool,
) -> Option<Vec<usize>> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut stack = vec![start];
    let mut visited = BTreeSet::new();
    while let Some(node) = stack.pop() {
        for &StepIndex(next) in &graph[node] {
            if next == start {
                let mut path = vec![node];
                let mut at = node;
                while at != start {
                    at = parent[&at];
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            if !is_wait(next) && visited.insert(next) {
                parent.insert(next, node);
                stack.push(next);
            }
        }
    }
    None
}

/// serde-saphyr's message without its "line N column M:" prefix (we print positions ourselves).
fn plain_message(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = match text.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((_, message)) => message,
        None => text,
    };
    let first = text.lines().next().unwrap_or_default();
    // The parser repeats the position at the end; we print our own.
    match first.rfind(" at line ") {
        Some(at) => first[..at].to_string(),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;
    use std::sync::LazyLock;

    static TEMPLATES: LazyLock<TemplateCatalog> =
        LazyLock::new(|| TemplateCatalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")).0);

    fn compile_text(name: &str, text: &str) -> (Option<Journey>, Vec<Diagnostic>) {
        let context = Context { templates: &TEMPLATES, default_timezone: chrono_tz::Asia::Shanghai };
        compile(&SourceFile::new(format!("workflows/{name}.yaml"), text), &context)
    }

    fn example(name: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("workflows/{name}.yaml"))).unwrap()
    }

    const EXAMPLES: [&str; 6] = ["welcome", "birthday", "reactivation", "winback", "points_expiry", "tier_upgrade"];

    #[test]
    fn the_winback_example_compiles_to_the_model_it_describes() {
        let (journey, diagnostics) = compile_text("winback", &example("winback"));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let journey = journey.unwrap();
        assert!(matches!(journey.trigger, Trigger::Schedule { timezone: chrono_tz::Asia::Shanghai, .. }));
        assert_eq!(journey.reentry, Reentry::After(Duration::from_days(180)));
        assert!(matches!(&journey.exit_when, Some(ExitWhen::Event(e)) if e == "order.placed"));
        let StepKind::Send(offer) = &journey.steps[0].kind else { panic!("offer is a send") };
        assert_eq!(offer.holdout, 10);
        assert_eq!(offer.variants.iter().map(|v| v.weight).collect::<Vec<_>>(), [45, 45]);
        assert_eq!(offer.variants[1].vars["discount"], serde_json::json!(20));
        let (check, _) = journey.step_by_id("check").unwrap();
        let StepKind::Branch { arms, otherwise } = &journey.step(check).kind else { panic!("check is a branch") };
        assert_eq!(journey.step(arms[0].goto).id, "done");
        assert_eq!(journey.step(*otherwise).id, "nudge");
        assert_eq!(journey.step_by_id("nudge").unwrap().1.next.map(|n| journey.step(n).id.as_str()), Some("done"));
        assert_eq!(journey.step_by_id("done").unwrap().1.next, None);
    }

    #[test]
    fn the_version_changes_with_the_file() {
        let a = example("welcome");
        let b = a.replace("wait: 3d", "wait: 4d");
        let version = |t: &str| compile_text("welcome", t).0.unwrap().version;
        assert_eq!(version(&a), version(&a));
        assert_ne!(version(&a), version(&b));
    }

    #[test]
    fn wait_forms_and_exit_when_conditions_compile() {
        let text = example("welcome")
            .replace(
                "    wait: 3d",
                "    wait: { for_event: order.placed, timeout: 3d, on_event: done, on_timeout: ordered }",
            )
            .replace("entry: { reentry: never }", "entry: { reentry: never }\nexit_when: has_tag(\"vip\")");
        let (journey, diagnostics) = compile_text("welcome", &text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let journey = journey.unwrap();
        assert!(matches!(journey.exit_when, Some(ExitWhen::Condition(_))));
        let StepKind::Wait(Wait::ForEvent { event, timeout, on_event, on_timeout }) = &journey.steps[1].kind else {
            panic!("pause waits for an event")
        };
        assert_eq!((event.as_str(), *timeout), ("order.placed", Duration::from_days(3)));
        assert_eq!(journey.step(on_event.unwrap()).id, "done");
        assert_eq!(journey.step(on_timeout.unwrap()).id, "ordered");
    }

    #[test]
    fn a_for_event_wait_without_a_timeout_is_an_error() {
        let text = example("welcome").replace("    wait: 3d", "    wait: { for_event: order.placed }");
        let (journey, diagnostics) = compile_text("welcome", &text);
        assert!(journey.is_none());
        assert_eq!(diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(), ["J020"]);
    }

    #[test]
    fn a_schedule_without_an_audience_is_a_warning_not_an_error() {
        let text = example("reactivation").replace("audience: lifecycle == \"dormant\" and email_consent\n", "");
        let (journey, diagnostics) = compile_text("reactivation", &text);
        assert!(journey.is_some());
        assert_eq!(diagnostics.iter().map(|d| (d.code, d.severity)).collect::<Vec<_>>(), [("J022", Severity::Warning)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random text never panics the compiler: it is an error or (rarely) a journey.
        #[test]
        fn random_text_never_panics(text in "\\PC{0,400}") {
            let (journey, diagnostics) = compile_text("random", &text);
            prop_assert!(journey.is_none() || diagnostics.iter().all(|d| d.severity != Severity::Error));
            prop_assert!(journey.is_some() || !diagnostics.is_empty());
        }

        /// Examples with random edits (deleted, inserted or replaced characters) never panic,
        /// and every diagnostic points inside the file.
        #[test]
        fn mutated_examples_never_panic(
            which in 0..EXAMPLES.len(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[ -~\\n\\t:{}\\[\\]\"'#&*!|>-]"), 1..6),
        ) {
            let mut text = example(EXAMPLES[which]);
            for (at, kind, insert) in edits {
                let mut chars: Vec<char> = text.chars().collect();
                let i = at.index(chars.len().max(1)).min(chars.len());
                match kind {
                    0 if i < chars.len() => { chars.remove(i); }
                    1 => chars.splice(i..i, insert.chars()).for_each(drop),
                    _ if i < chars.len() => chars.splice(i..=i, insert.chars()).for_each(drop),
                    _ => {}
                }
                text = chars.into_iter().collect();
            }
            let (_, diagnostics) = compile_text(EXAMPLES[which], &text);
            for d in &diagnostics {
                let inside = d.span.start <= d.file.text().len();
                prop_assert!(inside, "{} points outside its file", d.render_short());
                let _ = d.render();
            }
        }
    }
}
