//! What the names in a condition refer to, and which comparisons make sense: the one place
//! that [`check`](super::check), [`eval`](super::eval) and [`to_sql`](super::to_sql) share,
//! so that they cannot disagree about what an expression means.

use super::ConditionError;
use super::ast::{CompareOp, Expr, ExprKind, FieldPath, Ident, Literal};
use crate::diagnostic::did_you_mean;
use crate::schema::{self, EVENT_FIELDS, Field, FieldType, MEMBER_FIELDS, Origin};

/// A timestamp `days_since` can count from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimestampRef {
    Member(&'static Field),
    EventOccurredAt,
}

/// An operand of a comparison (or a bare condition), resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operand<'e> {
    Literal(&'e Literal),
    /// A column of the members table, stored or derived (`tier`, `lifecycle`, `points`).
    Column(&'static Field),
    /// Whole days elapsed since a timestamp: `days_since(f)`, `days_since_last_order`,
    /// `age_days`.
    DaysSince(TimestampRef),
    DaysUntilBirthday,
    /// `attributes.a.b`: the path after `attributes`.
    Attribute(&'e [Ident]),
    /// `event.id`, `event.member_id`, `event.name`, `event.occurred_at`.
    EventField(&'static Field),
    /// `event.x.y`: a path into `event.properties`.
    EventProperty(&'e [Ident]),
    /// A boolean sub-expression: a comparison, `and`/`or`/`not`, `in`, `has_tag`, `opened`...
    Condition(&'e Expr),
}

/// The static type of an operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Num,
    Bool,
    Timestamp,
    Date,
    List,
    /// Typed by use.
    Json,
    /// A whole number of days (`days_since(..)`, `days_until_birthday`).
    Days,
    Null,
    Duration,
}

impl Ty {
    pub(crate) fn with_article(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Timestamp => "a timestamp",
            Ty::Date => "a date",
            Ty::List => "a list",
            Ty::Json => "a JSON value",
            Ty::Days => "a number of days",
            Ty::Null => "null",
            Ty::Duration => "a duration",
        }
    }
}

impl Operand<'_> {
    pub(crate) fn ty(&self) -> Ty {
        match self {
            Operand::Literal(literal) => match literal {
                Literal::Int(_) | Literal::Decimal(_) => Ty::Num,
                Literal::String(_) => Ty::Str,
                Literal::Bool(_) => Ty::Bool,
                Literal::Null => Ty::Null,
                Literal::Duration(_) => Ty::Duration,
            },
            Operand::Column(field) | Operand::EventField(field) => field_ty(field.ty),
            Operand::DaysSince(_) | Operand::DaysUntilBirthday => Ty::Days,
            Operand::Attribute(_) | Operand::EventProperty(_) => Ty::Json,
            Operand::Condition(_) => Ty::Bool,
        }
    }

    pub(crate) fn is_literal(&self) -> bool {
        matches!(self, Operand::Literal(_))
    }
}

fn field_ty(ty: FieldType) -> Ty {
    match ty {
        FieldType::String => Ty::Str,
        FieldType::Int => Ty::Num,
        FieldType::Bool => Ty::Bool,
        FieldType::Date => Ty::Date,
        FieldType::Timestamp => Ty::Timestamp,
        FieldType::StringList => Ty::List,
        FieldType::Json => Ty::Json,
    }
}

/// The functions whose result is a condition.
pub(crate) fn is_boolean_function(name: &str) -> bool {
    matches!(name, "has_tag" | "opened" | "clicked" | "received")
}

/// Resolves an operand. An error is the first problem with it (`C002`, `C003`, `C007`);
/// problems inside a [`Operand::Condition`] are found by checking it as a condition.
pub(crate) fn operand(expr: &Expr) -> Result<Operand<'_>, ConditionError> {
    match &expr.kind {
        ExprKind::Literal(literal) => Ok(Operand::Literal(literal)),
        ExprKind::Field(path) => field(path),
        ExprKind::Call(call) => match call.name.name.as_str() {
            "days_since" => {
                let [arg] = call.args.as_slice() else {
                    return Err(ConditionError::error(
                        "C003",
                        expr.span,
                        format!("`days_since` takes one timestamp field, not {}", count(call.args.len())),
                    )
                    .with_hint("e.g. `days_since(last_order_at) > 30`"));
                };
                days_since_argument(arg).map(Operand::DaysSince)
            }
            name if is_boolean_function(name) => Ok(Operand::Condition(expr)),
            name => Err(unknown_function(&call.name, name)),
        },
        ExprKind::Compare { .. } | ExprKind::In { .. } | ExprKind::Not(_) | ExprKind::And(..) | ExprKind::Or(..) => {
            Ok(Operand::Condition(expr))
        }
    }
}

fn count(n: usize) -> String {
    match n {
        0 => "none".into(),
        1 => "one".into(),
        n => n.to_string(),
    }
}

fn unknown_function(ident: &Ident, name: &str) -> ConditionError {
    let error = ConditionError::error("C007", ident.span, format!("unknown function `{name}`"));
    if schema::member_field(name).is_some() {
        return error.with_hint(format!("`{name}` is a field: write it without parentheses"));
    }
    error.with_optional_hint(
        did_you_mean(name, super::FUNCTIONS.iter().copied())
            .or_else(|| Some(format!("functions are {}", list(super::FUNCTIONS)))),
    )
}

/// `a`, `b` and `c`, each in backticks.
pub(crate) fn list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

fn days_since_argument(arg: &Expr) -> Result<TimestampRef, ConditionError> {
    let not_a_timestamp = |what: String| {
        ConditionError::error("C003", arg.span, format!("`days_since` needs a timestamp field; {what}"))
            .with_hint("e.g. `days_since(last_order_at)`, `days_since(joined_at)`")
    };
    let ExprKind::Field(path) = &arg.kind else {
        return Err(not_a_timestamp(format!("`{arg}` is not a field")));
    };
    match field(path)? {
        Operand::Column(f) if f.ty == FieldType::Timestamp => Ok(TimestampRef::Member(f)),
        Operand::EventField(f) if f.ty == FieldType::Timestamp => Ok(TimestampRef::EventOccurredAt),
        Operand::Column(f) if f.ty == FieldType::Date => Err(ConditionError::error(
            "C003",
            arg.span,
            format!("`days_since` needs a timestamp; `{}` is a date", f.name),
        )
        .with_hint("use `days_until_birthday`, e.g. `days_until_birthday <= 7`")),
        Operand::DaysSince(_) | Operand::DaysUntilBirthday => {
            Err(ConditionError::error("C003", arg.span, format!("`{path}` is already a number of days"))
                .with_hint(format!("compare it directly: `{path} > 30`")))
        }
        other => Err(not_a_timestamp(format!("`{path}` is {}", other.ty().with_article()))),
    }
}

/// Resolves a field path (`C002` when it names nothing).
pub(crate) fn field(path: &FieldPath) -> Result<Operand<'_>, ConditionError> {
    let head = &path.segments[0];
    let rest = path.rest();
    let no_fields = |name: &str| {
        let span = rest[0].span.to(rest[rest.len() - 1].span);
        ConditionError::error("C002", span, format!("`{name}` has no fields"))
    };
    match head.name.as_str() {
        "attributes" | "event" if rest.is_empty() => {
            Err(ConditionError::error("C002", head.span, format!("`{0}` needs a name: `{0}.NAME`", head.name)))
        }
        "attributes" => Ok(Operand::Attribute(rest)),
        "event" => match EVENT_FIELDS.iter().find(|f| f.name == rest[0].name) {
            Some(f) if rest.len() == 1 => Ok(Operand::EventField(f)),
            Some(f) => Err(ConditionError::error(
                "C002",
                rest[1].span.to(rest[rest.len() - 1].span),
                format!("`event.{}` has no fields", f.name),
            )),
            None => Ok(Operand::EventProperty(rest)),
        },
        name => {
            let Some(f) = MEMBER_FIELDS.iter().find(|f| f.name == name) else {
                let candidates = schema::member_field_names().chain(["attributes", "event"]);
                return Err(ConditionError::error("C002", head.span, format!("unknown field `{name}`"))
                    .with_optional_hint(did_you_mean(name, candidates)));
            };
            if !rest.is_empty() {
                return Err(no_fields(name));
            }
            Ok(match (f.origin, f.name) {
                (Origin::Computed, "days_until_birthday") => Operand::DaysUntilBirthday,
                (Origin::Computed, "days_since_last_order") => {
                    Operand::DaysSince(TimestampRef::Member(member("last_order_at")))
                }
                (Origin::Computed, "age_days") => Operand::DaysSince(TimestampRef::Member(member("joined_at"))),
                _ => Operand::Column(f),
            })
        }
    }
}

fn member(name: &str) -> &'static Field {
    schema::member_field(name).expect("a member field of the schema")
}

/// How two operands are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `x == null`, `x != null`: never unknown.
    NullTest,
    Num,
    Str,
    Bool,
    Timestamp,
    /// A number of days against a whole number or a whole-day duration.
    Days,
}

/// Why two operands cannot be compared: a message and a hint.
pub(crate) struct Mismatch {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// Decides how `left op right` compares, or why it cannot.
pub(crate) fn comparison_kind(op: CompareOp, left: &Operand, right: &Operand) -> Result<Kind, Mismatch> {
    let (lt, rt) = (left.ty(), right.ty());
    let mismatch = |message: String, hint: Option<String>| Err(Mismatch { message, hint });
    let cannot = || format!("cannot compare {} with {}", describe(left), describe(right));

    for this in [left, right] {
        if this.ty() == Ty::List {
            let hint = match this {
                Operand::Column(f) if f.name == "tags" => Some("use `has_tag(\"vip\")`".to_string()),
                _ => None,
            };
            return mismatch(format!("{} cannot be compared", describe(this)), hint);
        }
    }
    if lt == Ty::Null || rt == Ty::Null {
        if op.is_ordering() {
            return mismatch(
                format!("`{op}` cannot compare with null"),
                Some("test for null with `== null` or `!= null`".into()),
            );
        }
        return Ok(Kind::NullTest);
    }
    for (this, other) in [(left, right), (right, left)] {
        match this.ty() {
            Ty::Date => {
                return mismatch(cannot(), Some("use `days_until_birthday`, e.g. `days_until_birthday <= 7`".into()));
            }
            Ty::Timestamp if other.ty() != Ty::Timestamp => {
                let name = match this {
                    Operand::Column(f) => f.name.to_string(),
                    _ => "event.occurred_at".to_string(),
                };
                return mismatch(cannot(), Some(format!("compare the days elapsed: `days_since({name}) > 30`")));
            }
            _ => {}
        }
    }
    match (lt, rt) {
        (Ty::Json, Ty::Json) => mismatch(
            format!("cannot compare {} with {}", describe(left), describe(right)),
            Some("compare a JSON value with a literal or a typed field, so its type is known".into()),
        ),
        (Ty::Json, other) | (other, Ty::Json) => match other {
            Ty::Str => Ok(Kind::Str),
            Ty::Num | Ty::Days => Ok(Kind::Num),
            Ty::Bool if !op.is_ordering() => Ok(Kind::Bool),
            Ty::Bool => mismatch(format!("`{op}` cannot compare booleans"), Some("use `==` or `!=`".into())),
            _ => mismatch(cannot(), None),
        },
        (Ty::Days, Ty::Days | Ty::Num | Ty::Duration) | (Ty::Num | Ty::Duration, Ty::Days) => {
            for side in [left, right] {
                match side {
                    Operand::Literal(Literal::Decimal(x)) => {
                        return mismatch(
                            format!("days are whole numbers; `{}` is not", Literal::Decimal(*x)),
                            Some("compare with a whole number, e.g. `days_since(last_order_at) > 30`".into()),
                        );
                    }
                    Operand::Literal(Literal::Duration(d)) if d.as_whole_days().is_none() => {
                        return mismatch(
                            format!("`{d}` is not a whole number of days"),
                            Some("compare a number of days with whole days, e.g. `30d`".into()),
                        );
                    }
                    _ => {}
                }
            }
            Ok(Kind::Days)
        }
        (Ty::Duration, _) | (_, Ty::Duration) => mismatch(
            cannot(),
            Some("a duration compares with a number of days, e.g. `days_since(last_order_at) > 30d`".into()),
        ),
        (Ty::Num, Ty::Num) => Ok(Kind::Num),
        (Ty::Str, Ty::Str) => Ok(Kind::Str),
        (Ty::Timestamp, Ty::Timestamp) => Ok(Kind::Timestamp),
        (Ty::Bool, Ty::Bool) if !op.is_ordering() => Ok(Kind::Bool),
        (Ty::Bool, Ty::Bool) => mismatch(format!("`{op}` cannot compare booleans"), Some("use `==` or `!=`".into())),
        _ => mismatch(cannot(), None),
    }
}

/// "`tier` (string)" or "a string" — an operand as messages name it.
pub(crate) fn describe(operand: &Operand) -> String {
    match operand {
        Operand::Literal(Literal::Null) => "null".into(),
        Operand::Literal(_) => operand.ty().with_article().into(),
        Operand::Column(f) => format!("`{}` ({})", f.name, f.ty.describe()),
        Operand::DaysSince(TimestampRef::Member(f)) => format!("`days_since({})` (number of days)", f.name),
        Operand::DaysSince(TimestampRef::EventOccurredAt) => "`days_since(event.occurred_at)` (number of days)".into(),
        Operand::DaysUntilBirthday => "`days_until_birthday` (number of days)".into(),
        Operand::Attribute(path) => format!("`attributes.{}` (JSON value)", join(path)),
        Operand::EventField(f) => format!("`event.{}` ({})", f.name, f.ty.describe()),
        Operand::EventProperty(path) => format!("`event.{}` (JSON value)", join(path)),
        Operand::Condition(expr) => format!("`{expr}` (condition)"),
    }
}

pub(crate) fn join(path: &[Ident]) -> String {
    path.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(".")
}
