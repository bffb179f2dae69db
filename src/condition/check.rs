//! The type checker: every problem of a condition where it is used, each with a code, a
//! span inside the expression and, where one helps, a hint.

use std::collections::HashMap;

use super::ConditionError;
use super::ast::{Call, CompareOp, Expr, ExprKind, Literal};
use super::resolve::{self, Operand, TimestampRef, Ty, comparison_kind, describe};
use crate::diagnostic::did_you_mean;
use crate::source::Span;

/// What a condition may refer to where it is used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// `event.*` is allowed (trigger `where`, `exit_when`); false in `audience`.
    pub event: bool,
    /// Steps of the journey for `opened/clicked/received(step)`: step id -> is it a `send`
    /// step. None where these functions cannot be used (audience, trigger where).
    pub steps: Option<&'a HashMap<String, bool>>,
    /// The condition must compile to SQL (audience): report what cannot.
    pub sql: bool,
}

impl Scope<'static> {
    /// Where an `audience` is used: members only, compiled to SQL.
    pub const AUDIENCE: Scope<'static> = Scope { event: false, steps: None, sql: true };
}

/// Every problem of `expr` in `scope`, in the order they appear. Errors and warnings
/// (`C009`); the expression is usable when there is no error.
pub fn check(expr: &Expr, scope: &Scope) -> Vec<ConditionError> {
    let mut checker = Checker { scope, errors: Vec::new() };
    checker.condition(expr);
    checker.errors
}

struct Checker<'s, 'a> {
    scope: &'s Scope<'a>,
    errors: Vec<ConditionError>,
}

impl Checker<'_, '_> {
    fn condition(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.condition(a);
                self.condition(b);
            }
            ExprKind::Not(inner) => self.condition(inner),
            ExprKind::Compare { op, left, right, .. } => self.compare(expr.span, *op, left, right),
            ExprKind::In { value, list, .. } => {
                let Some(value_operand) = self.operand(value) else { return };
                for item in list {
                    self.compare_operands(item.span, CompareOp::Eq, &value_operand, &Operand::Literal(literal(item)));
                }
            }
            ExprKind::Call(call) if resolve::is_boolean_function(&call.name.name) => self.boolean_call(expr, call),
            _ => {
                let Some(operand) = self.operand(expr) else { return };
                let ty = operand.ty();
                if !matches!(ty, Ty::Bool | Ty::Json) {
                    let error =
                        ConditionError::error("C010", expr.span, format!("{} is not a condition", describe(&operand)));
                    self.errors.push(error.with_optional_hint(condition_hint(expr, ty)));
                }
            }
        }
    }

    /// Resolves an operand and reports what is wrong with it here; None when it is unusable.
    fn operand<'e>(&mut self, expr: &'e Expr) -> Option<Operand<'e>> {
        let operand = match resolve::operand(expr) {
            Ok(operand) => operand,
            Err(error) => {
                self.errors.push(error);
                return None;
            }
        };
        match operand {
            Operand::EventField(_) | Operand::EventProperty(_) | Operand::DaysSince(TimestampRef::EventOccurredAt) => {
                if !self.scope.event {
                    self.errors.push(
                        ConditionError::error("C006", expr.span, format!("`{expr}` is not available here"))
                            .with_hint("an audience selects members, not events: use `event.*` in a trigger's `where` or in `exit_when`"),
                    );
                    return None;
                }
                if self.scope.sql {
                    self.errors.push(ConditionError::error(
                        "C008",
                        expr.span,
                        format!("`{expr}` cannot run in the database"),
                    ));
                    return None;
                }
            }
            Operand::DaysUntilBirthday if self.scope.sql => {
                self.errors.push(
                    ConditionError::error("C008", expr.span, "`days_until_birthday` cannot run in the database")
                        .with_hint(
                            "it depends on each member's time zone: use a `date: birthday` trigger with an `offset`",
                        ),
                );
            }
            Operand::Condition(inner) => self.condition(inner),
            _ => {}
        }
        Some(operand)
    }

    fn compare(&mut self, span: Span, op: CompareOp, left: &Expr, right: &Expr) {
        let left = self.operand(left);
        let right = self.operand(right);
        if let (Some(left), Some(right)) = (left, right) {
            self.compare_operands(span, op, &left, &right);
        }
    }

    fn compare_operands(&mut self, span: Span, op: CompareOp, left: &Operand, right: &Operand) {
        if let Err(mismatch) = comparison_kind(op, left, right) {
            self.errors.push(ConditionError::error("C003", span, mismatch.message).with_optional_hint(mismatch.hint));
            return;
        }
        let days = left.ty() == Ty::Days || right.ty() == Ty::Days;
        if days && self.scope.sql && !(left.is_literal() || right.is_literal()) {
            let days = if left.ty() == Ty::Days { left } else { right };
            self.errors.push(
                ConditionError::error(
                    "C008",
                    span,
                    format!(
                        "comparing {} with {} cannot run in the database",
                        describe(days),
                        describe(if left.ty() == Ty::Days { right } else { left })
                    ),
                )
                .with_hint("compare a number of days with a whole number, e.g. `days_since(last_order_at) > 30`"),
            );
        }
        if op.is_ordering() {
            return;
        }
        for (this, other) in [(left, right), (right, left)] {
            let (Operand::Column(field), Operand::Literal(Literal::String(value))) = (this, other) else { continue };
            if field.values.is_empty() || field.values.contains(&value.as_str()) {
                continue;
            }
            let hint = did_you_mean(value, field.values.iter().copied())
                .unwrap_or_else(|| format!("expected one of {}", resolve::list(field.values)));
            self.errors.push(
                ConditionError::warning("C009", span, format!("`{value}` is not a known `{}` value", field.name))
                    .with_hint(hint),
            );
        }
    }

    fn boolean_call(&mut self, expr: &Expr, call: &Call) {
        let name = call.name.name.as_str();
        if name == "has_tag" {
            if !matches!(call.args.as_slice(), [Expr { kind: ExprKind::Literal(Literal::String(_)), .. }]) {
                self.errors.push(
                    ConditionError::error("C003", expr.span, "`has_tag` takes one tag in quotes")
                        .with_hint("e.g. `has_tag(\"vip\")`"),
                );
            }
            return;
        }
        let Some(steps) = self.scope.steps else {
            let hint = if self.scope.sql {
                format!(
                    "an audience is chosen before members enter the journey: use `{name}()` in `branch.if` or `exit_when`"
                )
            } else {
                format!("`{name}()` looks at this run's messages: use it in `branch.if` or `exit_when`")
            };
            self.errors.push(
                ConditionError::error("C006", call.name.span, format!("`{name}()` is not available here"))
                    .with_hint(hint),
            );
            return;
        };
        let step = match call.args.as_slice() {
            [Expr { kind: ExprKind::Field(path), .. }] if path.segments.len() == 1 => &path.segments[0],
            [Expr { kind: ExprKind::Literal(Literal::String(s)), span }] => {
                self.errors.push(
                    ConditionError::error("C003", *span, format!("`{name}` takes a step id, not a string"))
                        .with_hint(format!("write the step id without quotes: `{name}({s})`")),
                );
                return;
            }
            _ => {
                self.errors.push(
                    ConditionError::error("C003", expr.span, format!("`{name}` takes one step id"))
                        .with_hint(format!("e.g. `{name}(offer)`")),
                );
                return;
            }
        };
        match steps.get(&step.name) {
            None => {
                let mut ids: Vec<&str> = steps.keys().map(String::as_str).collect();
                ids.sort_unstable();
                self.errors.push(
                    ConditionError::error("C004", step.span, format!("unknown step `{}`", step.name))
                        .with_optional_hint(did_you_mean(&step.name, ids.iter().copied())),
                );
            }
            Some(false) => self.errors.push(
                ConditionError::error("C005", step.span, format!("step `{}` is not a `send` step", step.name))
                    .with_hint(format!("`{name}()` refers to the message a `send` step sent")),
            ),
            Some(true) => {}
        }
    }
}

fn literal(expr: &Expr) -> &Literal {
    match &expr.kind {
        ExprKind::Literal(literal) => literal,
        // The parser only puts literals in lists.
        _ => &Literal::Null,
    }
}

fn condition_hint(expr: &Expr, ty: Ty) -> Option<String> {
    let text = expr.to_string();
    match (&expr.kind, ty) {
        (ExprKind::Literal(_), _) => None,
        (_, Ty::Str) => Some(format!("compare it, e.g. `{text} == \"...\"` or `{text} != null`")),
        (_, Ty::Num | Ty::Days) => Some(format!("compare it, e.g. `{text} > 0`")),
        (_, Ty::Timestamp) => Some(format!("e.g. `days_since({text}) < 30` or `{text} != null`")),
        (_, Ty::Date) => Some(format!("e.g. `{text} != null` or `days_until_birthday <= 7`")),
        (_, Ty::List) => Some("e.g. `has_tag(\"vip\")`".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::parse;
    use crate::diagnostic::Severity;

    fn problems(text: &str, scope: &Scope) -> Vec<ConditionError> {
        check(&parse(text).unwrap(), scope)
    }

    fn only(text: &str, scope: &Scope) -> ConditionError {
        let mut all = problems(text, scope);
        assert_eq!(all.len(), 1, "{text}: {all:#?}");
        all.pop().unwrap()
    }

    fn at<'t>(text: &'t str, error: &ConditionError) -> &'t str {
        &text[error.span.start..error.span.end]
    }

    fn steps() -> HashMap<String, bool> {
        HashMap::from([("offer".to_string(), true), ("pause".to_string(), false), ("nudge".to_string(), true)])
    }

    const BRANCH: fn(&HashMap<String, bool>) -> Scope<'_> =
        |steps| Scope { event: true, steps: Some(steps), sql: false };
    const WHERE: Scope<'static> = Scope { event: true, steps: None, sql: false };

    #[test]
    fn valid_conditions_have_no_problems() {
        let steps = steps();
        for text in [
            r#"lifecycle == "churned" and email_consent and points > 0"#,
            "days_since(last_order_at) > 60 or days_since_last_order <= 30d",
            r#"tier in ["gold", "diamond"] and not has_tag("vip")"#,
            "attributes.vip and attributes.score >= 4.5 and attributes.nick != null",
            "birthday == null or last_order_at > first_order_at",
            r#"rfm_segment not in ["lost", "hibernating"] and clv >= 1000 and age_days < 365"#,
            "true",
            "(points > 0) == false",
        ] {
            assert_eq!(problems(text, &Scope::AUDIENCE), vec![], "{text}");
        }
        for text in
            ["opened(offer) or clicked(nudge) or received(offer)", "event.total > 100 and days_until_birthday <= 7"]
        {
            assert_eq!(problems(text, &BRANCH(&steps)), vec![], "{text}");
        }
    }

    #[test]
    fn c002_unknown_field_suggests_the_closest() {
        let text = r#"tierr == "gold""#;
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C002", "tierr"));
        assert_eq!(e.message, "unknown field `tierr`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `tier`?"));

        let text = "points > 0 and tier.name == \"x\"";
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C002", "name"));
        assert_eq!(only("attributes", &Scope::AUDIENCE).code, "C002");
        assert_eq!(
            only("days_since(last_ordr_at) > 3", &Scope::AUDIENCE).hint.as_deref(),
            Some("did you mean `last_order_at`?")
        );
    }

    #[test]
    fn c003_comparing_a_timestamp_with_a_string_suggests_days_since() {
        let text = r#"points > 0 and last_order_at < "2024-01-01""#;
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C003", r#"last_order_at < "2024-01-01""#));
        assert_eq!(e.message, "cannot compare `last_order_at` (timestamp) with a string");
        assert_eq!(e.hint.as_deref(), Some("compare the days elapsed: `days_since(last_order_at) > 30`"));
    }

    #[test]
    fn c003_other_mismatches() {
        let cases = [
            (r#"tier == 3"#, "cannot compare `tier` (string) with a number"),
            ("days_since(birthday) > 3", "`days_since` needs a timestamp; `birthday` is a date"),
            ("birthday == \"--07-04\"", "cannot compare `birthday` (date) with a string"),
            (r#"tags == "vip""#, "`tags` (list of strings) cannot be compared"),
            ("points > null", "`>` cannot compare with null"),
            ("days_since(joined_at) > 1.5", "days are whole numbers; `1.5` is not"),
            ("days_since(joined_at) > 12h", "`12h` is not a whole number of days"),
            ("points > 30d", "cannot compare `points` (integer) with a duration"),
            (
                "attributes.a == attributes.b",
                "cannot compare `attributes.a` (JSON value) with `attributes.b` (JSON value)",
            ),
            ("email_consent < true", "`<` cannot compare booleans"),
            ("has_tag(vip)", "`has_tag` takes one tag in quotes"),
            ("days_since(last_order_at, joined_at) > 1", "`days_since` takes one timestamp field, not 2"),
        ];
        for (text, message) in cases {
            let e = only(text, &Scope::AUDIENCE);
            assert_eq!((e.code, e.message.as_str()), ("C003", message), "{text}");
        }
        let e = only("days_since(birthday) > 3", &Scope::AUDIENCE);
        assert_eq!(e.hint.as_deref(), Some("use `days_until_birthday`, e.g. `days_until_birthday <= 7`"));
        let text = r#"tier in ["gold", 2]"#;
        assert_eq!(at(text, &only(text, &Scope::AUDIENCE)), "2");
    }

    #[test]
    fn c004_and_c005_check_step_references() {
        let steps = steps();
        let text = "opened(ofer)";
        let e = only(text, &BRANCH(&steps));
        assert_eq!((e.code, at(text, &e)), ("C004", "ofer"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `offer`?"));

        let text = "clicked(pause)";
        let e = only(text, &BRANCH(&steps));
        assert_eq!((e.code, at(text, &e)), ("C005", "pause"));

        assert_eq!(
            only("opened(\"offer\")", &BRANCH(&steps)).hint.as_deref(),
            Some("write the step id without quotes: `opened(offer)`")
        );
    }

    #[test]
    fn c006_run_functions_and_events_are_not_available_in_an_audience() {
        let text = "points > 0 and opened(offer)";
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C006", "opened"));
        assert_eq!(only("opened(offer)", &WHERE).code, "C006");

        let text = "event.total > 100";
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C006", "event.total"));
        assert_eq!(only("days_since(event.occurred_at) > 1", &Scope::AUDIENCE).code, "C006");
        assert_eq!(problems("event.total > 100", &WHERE), vec![]);
    }

    #[test]
    fn c007_unknown_function_suggests_the_closest() {
        let text = "has_tags(\"vip\")";
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C007", "has_tags"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `has_tag`?"));
        assert_eq!(
            only("age_days() > 3", &Scope::AUDIENCE).hint.as_deref(),
            Some("`age_days` is a field: write it without parentheses")
        );
    }

    #[test]
    fn c008_days_until_birthday_cannot_run_in_the_database() {
        let text = "email_consent and days_until_birthday <= 7";
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C008", "days_until_birthday"));
        assert!(e.hint.unwrap().contains("use a `date: birthday` trigger"));
        assert_eq!(problems(text, &WHERE), vec![]);

        let e = only("days_since(last_order_at) > points", &Scope::AUDIENCE);
        assert_eq!(e.code, "C008");
        assert_eq!(only("age_days == attributes.age", &Scope::AUDIENCE).code, "C008");
        assert_eq!(problems("days_since(last_order_at) > points", &WHERE), vec![]);
    }

    #[test]
    fn c009_warns_about_values_outside_an_enumeration() {
        let text = r#"lifecycle == "chruned""#;
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, e.severity), ("C009", Severity::Warning));
        assert_eq!(e.message, "`chruned` is not a known `lifecycle` value");
        assert_eq!(e.hint.as_deref(), Some("did you mean `churned`?"));
        let text = r#"rfm_segment in ["champions", "zzz"]"#;
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C009", "\"zzz\""));
        assert!(e.hint.unwrap().starts_with("expected one of `champions`, `loyal`"));
    }

    #[test]
    fn c010_a_value_is_not_a_condition() {
        let text = "tier";
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C010", "tier"));
        assert_eq!(e.message, "`tier` (string) is not a condition");
        let text = "email_consent and points";
        let e = only(text, &Scope::AUDIENCE);
        assert_eq!((e.code, at(text, &e)), ("C010", "points"));
        assert_eq!(only("not 5", &Scope::AUDIENCE).code, "C010");
        assert_eq!(problems("attributes.vip", &Scope::AUDIENCE), vec![]);
    }

    #[test]
    fn reports_every_problem_not_just_the_first() {
        let all = problems(r#"tierr == "gold" or opened(offer) or lifecycle == "chruned" or points"#, &Scope::AUDIENCE);
        let codes: Vec<_> = all.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["C002", "C006", "C009", "C010"]);
    }
}
