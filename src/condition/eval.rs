//! Evaluating a condition in memory. The rules below are the meaning of the language;
//! [`to_sql`](super::to_sql) compiles audiences to SQL with exactly the same meaning on
//! SQLite and PostgreSQL (`tests/it/condition_sql.rs` proves it on 10,000 members).
//!
//! **Three values, as in SQL.** A condition is *true*, *false* or *unknown*, and it selects
//! a member (or takes a branch, or ends a run) only when it is *true*.
//! - A comparison with a null operand is unknown: a missing field, a missing attribute, an
//!   attribute that is JSON `null`, `days_since` of a missing timestamp, `event.x` with no
//!   event. So a member with no `last_order_at` matches neither
//!   `days_since(last_order_at) > 60` nor `not (days_since(last_order_at) > 60)`.
//! - `x == null` and `x != null` are the explicit null tests (SQL `IS NULL` / `IS NOT
//!   NULL`); they are never unknown. `null` cannot be ordered (`x < null` is an error).
//! - `not` unknown is unknown. `and` and `or` are Kleene's: false `and` anything is false,
//!   true `or` anything is true, otherwise unknown wins over the remaining value.
//! - `x in [a, b]` means `x == a or x == b` (so `x in [null, "a"]` also selects a null
//!   `x`); `x not in [a, b]` means `not (x in [a, b])`.
//! - A boolean field used bare (`email_consent`) is a condition; so is an attribute or an
//!   event property, which is true or false when it is a JSON boolean and unknown otherwise.
//!
//! **Values.**
//! - Integers and decimals compare numerically (an integer with a decimal as 64-bit
//!   floats). Strings compare by their UTF-8 bytes (SQLite's `BINARY`, PostgreSQL's
//!   `COLLATE "C"`), so `"Z" < "a" < "é"`. Timestamps compare with timestamps. Booleans
//!   test only `==` and `!=`.
//! - `days_since(f)` is the whole days elapsed, `floor((now − f) / 24h)`; negative for a
//!   timestamp in the future. `days_since_last_order` is `days_since(last_order_at)` and
//!   `age_days` is `days_since(joined_at)`. A number of days compares with whole numbers
//!   and whole-day durations (`30d` is 30).
//! - `days_until_birthday` is the days from today to the next birthday, both in the
//!   member's time zone (else the default one): 0 on the day; 29 February is celebrated on
//!   28 February in common years. It needs each member's zone, so it is never compiled to
//!   SQL: audiences use a `date: birthday` trigger instead.
//! - `attributes.x` and `event.x` are typed by use: compared with a number they match only
//!   a JSON number (the JSON string `"5"` is not 5: unknown), with a string only a JSON
//!   string, with a boolean only a JSON boolean; any other JSON type is unknown. A missing
//!   key and JSON `null` are null. `attributes.a.b` reads nested objects.
//! - `has_tag("x")` is true when the member has the tag `x`; `opened(step)`,
//!   `clicked(step)` and `received(step)` ask the run's history. These are never unknown.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

use super::ast::{CompareOp, Expr, ExprKind, Literal};
use super::resolve::{self, Operand, TimestampRef};
use crate::duration::Duration;
use crate::member::{Birthday, Event, Member};

/// The value of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    /// Whether the condition holds: unknown does not.
    pub fn is_true(self) -> bool {
        self == Truth::True
    }

    /// Kleene conjunction.
    pub fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::True, Truth::True) => Truth::True,
            _ => Truth::Unknown,
        }
    }

    /// Kleene disjunction.
    pub fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::False, Truth::False) => Truth::False,
            _ => Truth::Unknown,
        }
    }
}

impl std::ops::Not for Truth {
    type Output = Truth;

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }
}

impl From<bool> for Truth {
    fn from(value: bool) -> Truth {
        if value { Truth::True } else { Truth::False }
    }
}

/// What happened so far in the member's run of a journey, for `opened(step)` & co.
pub trait RunHistory {
    fn received(&self, step: &str) -> bool;
    fn opened(&self, step: &str) -> bool;
    fn clicked(&self, step: &str) -> bool;
}

/// No run (an audience, a trigger's `where`): nothing was received, opened or clicked.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHistory;

impl RunHistory for NoHistory {
    fn received(&self, _step: &str) -> bool {
        false
    }

    fn opened(&self, _step: &str) -> bool {
        false
    }

    fn clicked(&self, _step: &str) -> bool {
        false
    }
}

/// Everything a condition can look at.
pub struct EvalContext<'a> {
    pub member: &'a Member,
    /// The triggering event (`event.*`); None where there is none.
    pub event: Option<&'a Event>,
    pub history: &'a dyn RunHistory,
    pub now: DateTime<Utc>,
    /// For members without a (valid) `timezone`.
    pub default_timezone: Tz,
}

/// Evaluates a condition (see the rules at the top of this file). An expression that does
/// not [`check`](super::check) evaluates its faulty parts to unknown.
pub fn eval(expr: &Expr, ctx: &EvalContext) -> Truth {
    match &expr.kind {
        ExprKind::And(a, b) => match eval(a, ctx) {
            Truth::False => Truth::False,
            left => left.and(eval(b, ctx)),
        },
        ExprKind::Or(a, b) => match eval(a, ctx) {
            Truth::True => Truth::True,
            left => left.or(eval(b, ctx)),
        },
        ExprKind::Not(inner) => !eval(inner, ctx),
        ExprKind::Compare { op, left, right, .. } => compare(*op, left, right, ctx),
        ExprKind::In { value, list, negated } => {
            let found =
                list.iter().fold(Truth::False, |found, item| found.or(compare(CompareOp::Eq, value, item, ctx)));
            if *negated { !found } else { found }
        }
        ExprKind::Call(call) if resolve::is_boolean_function(&call.name.name) => {
            let arg = call.args.first().map(|a| &a.kind);
            match (call.name.name.as_str(), arg, call.args.len()) {
                ("has_tag", Some(ExprKind::Literal(Literal::String(tag))), 1) => ctx.member.tags.contains(tag).into(),
                (function, Some(ExprKind::Field(path)), 1) if path.segments.len() == 1 => {
                    let step = path.head();
                    match function {
                        "opened" => ctx.history.opened(step).into(),
                        "clicked" => ctx.history.clicked(step).into(),
                        _ => ctx.history.received(step).into(),
                    }
                }
                _ => Truth::Unknown,
            }
        }
        _ => match value(expr, ctx) {
            Val::Bool(b) => b.into(),
            Val::Json(json) => json.as_bool().map_or(Truth::Unknown, Truth::from),
            _ => Truth::Unknown,
        },
    }
}

/// The days from `now`'s date to the next occurrence of the birthday, both in `timezone`:
/// 0 on the day. 29 February falls on 28 February in common years.
pub fn days_until_birthday(birthday: &Birthday, timezone: Tz, now: DateTime<Utc>) -> i64 {
    let today = now.with_timezone(&timezone).date_naive();
    let this_year = occurrence(birthday, today.year());
    let next = match this_year {
        Some(date) if date >= today => Some(date),
        _ => occurrence(birthday, today.year() + 1),
    };
    next.map_or(0, |date| (date - today).num_days())
}

/// The birthday in `year`; a day the month does not have (29 February in a common year)
/// becomes the month's last day.
fn occurrence(birthday: &Birthday, year: i32) -> Option<NaiveDate> {
    (0..4).find_map(|back| NaiveDate::from_ymd_opt(year, birthday.month, birthday.day.checked_sub(back)?))
}

/// `floor((now − then) / 24h)`, exactly.
pub(crate) fn days_since(now: DateTime<Utc>, then: DateTime<Utc>) -> i64 {
    let seconds = i128::from(now.timestamp()) - i128::from(then.timestamp());
    let nanos =
        seconds * 1_000_000_000 + i128::from(now.timestamp_subsec_nanos()) - i128::from(then.timestamp_subsec_nanos());
    // |result| is bounded by chrono's ±262,000-year range.
    nanos.div_euclid(86_400 * 1_000_000_000) as i64
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    /// An operand that does not check (unknown field or function): makes its comparison unknown.
    Invalid,
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bool(bool),
    Timestamp(DateTime<Utc>),
    Duration(Duration),
    /// A JSON value that is not null, typed by use.
    Json(&'a serde_json::Value),
    /// A non-null date or list: only testable against null.
    Opaque,
}

fn compare(op: CompareOp, left: &Expr, right: &Expr, ctx: &EvalContext) -> Truth {
    let is_null = |e: &Expr| matches!(e.kind, ExprKind::Literal(Literal::Null));
    if is_null(left) || is_null(right) {
        if op.is_ordering() {
            return Truth::Unknown;
        }
        let other = if is_null(left) { right } else { left };
        let null = match value(other, ctx) {
            Val::Null => true,
            Val::Invalid => return Truth::Unknown,
            _ => false,
        };
        return (null == (op == CompareOp::Eq)).into();
    }
    compare_values(op, value(left, ctx), value(right, ctx))
}

fn compare_values(op: CompareOp, left: Val, right: Val) -> Truth {
    use Val::*;
    let (left, right) = match (left, right) {
        (Null | Invalid, _) | (_, Null | Invalid) | (Json(_), Json(_)) => return Truth::Unknown,
        (Json(json), other) => (typed_by(json, other), other),
        (other, Json(json)) => (other, typed_by(json, other)),
        (Duration(d), Int(n)) => (whole_days(d), Int(n)),
        (Int(n), Duration(d)) => (Int(n), whole_days(d)),
        pair => pair,
    };
    let ordering = match (left, right) {
        (Int(a), Int(b)) => Some(a.cmp(&b)),
        (Int(_) | Float(_), Int(_) | Float(_)) => as_f64(left).partial_cmp(&as_f64(right)),
        (Str(a), Str(b)) => Some(a.cmp(b)),
        (Bool(a), Bool(b)) => Some(a.cmp(&b)),
        (Timestamp(a), Timestamp(b)) => Some(a.cmp(&b)),
        _ => None,
    };
    ordering.map_or(Truth::Unknown, |o| op.holds(o).into())
}

/// A JSON value as the type of what it is compared with, or Null when it is another type.
fn typed_by<'a>(json: &'a serde_json::Value, other: Val) -> Val<'a> {
    let typed = match other {
        Val::Int(_) | Val::Float(_) => json.as_number().map(|n| match n.as_i64() {
            Some(i) => Val::Int(i),
            None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Val::Str(_) => json.as_str().map(Val::Str),
        Val::Bool(_) => json.as_bool().map(Val::Bool),
        _ => None,
    };
    typed.unwrap_or(Val::Null)
}

fn whole_days(duration: Duration) -> Val<'static> {
    duration.as_whole_days().map_or(Val::Invalid, Val::Int)
}

fn as_f64(value: Val) -> f64 {
    match value {
        Val::Int(i) => i as f64,
        Val::Float(x) => x,
        _ => f64::NAN,
    }
}

fn value<'v>(expr: &'v Expr, ctx: &'v EvalContext) -> Val<'v> {
    let Ok(operand) = resolve::operand(expr) else { return Val::Invalid };
    match operand {
        Operand::Literal(literal) => match literal {
            Literal::Int(n) => Val::Int(*n),
            Literal::Decimal(x) => Val::Float(*x),
            Literal::String(s) => Val::Str(s),
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Null => Val::Null,
            Literal::Duration(d) => Val::Duration(*d),
        },
        Operand::Column(field) => member_column(ctx.member, field.name),
        Operand::DaysSince(timestamp) => {
            let at = match timestamp {
                TimestampRef::Member(field) => match member_column(ctx.member, field.name) {
                    Val::Timestamp(at) => Some(at),
                    _ => None,
                },
                TimestampRef::EventOccurredAt => ctx.event.map(|e| e.occurred_at),
            };
            at.map_or(Val::Null, |at| Val::Int(days_since(ctx.now, at)))
        }
        Operand::DaysUntilBirthday => match &ctx.member.birthday {
            Some(birthday) => {
                let timezone = ctx.member.timezone.as_deref().and_then(|tz| tz.parse::<Tz>().ok());
                Val::Int(days_until_birthday(birthday, timezone.unwrap_or(ctx.default_timezone), ctx.now))
            }
            None => Val::Null,
        },
        Operand::Attribute(path) => json_at(ctx.member.attributes.get(&path[0].name), &path[1..]),
        Operand::EventField(field) => match ctx.event {
            None => Val::Null,
            Some(event) => match field.name {
                "id" => Val::Str(&event.id),
                "member_id" => Val::Str(&event.member_id),
                "name" => Val::Str(&event.name),
                "occurred_at" => Val::Timestamp(event.occurred_at),
                _ => Val::Invalid,
            },
        },
        Operand::EventProperty(path) => match ctx.event {
            None => Val::Null,
            Some(event) => json_at(Some(&event.properties), path),
        },
        Operand::Condition(condition) => match eval(condition, ctx) {
            Truth::True => Val::Bool(true),
            Truth::False => Val::Bool(false),
            Truth::Unknown => Val::Null,
        },
    }
}

fn json_at<'a>(mut value: Option<&'a serde_json::Value>, path: &[super::ast::Ident]) -> Val<'a> {
    for segment in path {
        value = value.and_then(|v| v.get(&segment.name));
    }
    match value {
        None | Some(serde_json::Value::Null) => Val::Null,
        Some(json) => Val::Json(json),
    }
}

fn member_column<'m>(member: &'m Member, name: &str) -> Val<'m> {
    let text = |value: &'m Option<String>| value.as_deref().map_or(Val::Null, Val::Str);
    let int = |value: Option<i64>| value.map_or(Val::Null, Val::Int);
    let timestamp = |value: Option<DateTime<Utc>>| value.map_or(Val::Null, Val::Timestamp);
    match name {
        "id" => Val::Str(&member.id),
        "email" => text(&member.email),
        "phone" => text(&member.phone),
        "first_name" => text(&member.first_name),
        "last_name" => text(&member.last_name),
        "locale" => text(&member.locale),
        "timezone" => text(&member.timezone),
        "tier" => text(&member.tier),
        "currency" => text(&member.currency),
        "lifecycle" => text(&member.lifecycle),
        "rfm_segment" => text(&member.rfm_segment),
        "points" => Val::Int(member.points),
        "points_expiring" => Val::Int(member.points_expiring),
        "total_spend" => Val::Int(member.total_spend),
        "order_count" => Val::Int(member.order_count),
        "rfm_r" => int(member.rfm_r),
        "rfm_f" => int(member.rfm_f),
        "rfm_m" => int(member.rfm_m),
        "clv" => int(member.clv),
        "points_expire_at" => timestamp(member.points_expire_at),
        "first_order_at" => timestamp(member.first_order_at),
        "last_order_at" => timestamp(member.last_order_at),
        "joined_at" => timestamp(member.joined_at),
        "email_consent" => Val::Bool(member.email_consent),
        "sms_consent" => Val::Bool(member.sms_consent),
        "push_consent" => Val::Bool(member.push_consent),
        "birthday" => member.birthday.map_or(Val::Null, |_| Val::Opaque),
        "tags" | "push_tokens" => Val::Opaque,
        _ => Val::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::parse;
    use Truth::{False, True, Unknown};

    struct Sent(&'static str);

    impl RunHistory for Sent {
        fn received(&self, step: &str) -> bool {
            step == self.0
        }
        fn opened(&self, step: &str) -> bool {
            step == self.0
        }
        fn clicked(&self, _step: &str) -> bool {
            false
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-03-15T10:00:00Z".parse().unwrap()
    }

    fn member() -> Member {
        Member {
            id: "m1".into(),
            tier: Some("gold".into()),
            points: 120,
            email_consent: true,
            lifecycle: Some("churned".into()),
            last_order_at: Some("2026-01-01T12:00:00Z".parse().unwrap()),
            joined_at: Some("2025-03-15T10:00:00Z".parse().unwrap()),
            tags: vec!["vip".into()],
            attributes: serde_json::json!({
                "vip": true, "score": 4.5, "count": 5, "five": "5", "nick": "Zoë", "gone": null,
                "prefs": {"color": "red"}
            })
            .as_object()
            .unwrap()
            .clone(),
            ..Member::default()
        }
    }

    fn truth_of(text: &str, member: &Member) -> Truth {
        let ctx =
            EvalContext { member, event: None, history: &NoHistory, now: now(), default_timezone: Tz::Asia__Shanghai };
        eval(&parse(text).unwrap(), &ctx)
    }

    fn t(text: &str) -> Truth {
        truth_of(text, &member())
    }

    #[test]
    fn truth_tables_are_kleene() {
        let all = [True, False, Unknown];
        for a in all {
            assert_eq!(a.and(False), False);
            assert_eq!(a.or(True), True);
            assert_eq!(a.and(True), a);
            assert_eq!(a.or(False), a);
        }
        assert_eq!(Unknown.and(Unknown), Unknown);
        assert_eq!(!Unknown, Unknown);
        assert!(True.is_true() && !Unknown.is_true() && !False.is_true());
    }

    #[test]
    fn the_design_audience_selects_a_churned_consenting_member_with_points() {
        assert_eq!(t(r#"lifecycle == "churned" and email_consent and points > 0"#), True);
        assert_eq!(t(r#"lifecycle == "churned" and sms_consent"#), False);
    }

    #[test]
    fn a_missing_value_is_unknown_and_so_is_its_negation() {
        let mut m = member();
        m.last_order_at = None;
        assert_eq!(truth_of("days_since(last_order_at) > 60", &m), Unknown);
        assert_eq!(truth_of("not (days_since(last_order_at) > 60)", &m), Unknown);
        assert_eq!(truth_of("days_since(last_order_at) > 60 or email_consent", &m), True);
        assert_eq!(truth_of("days_since(last_order_at) > 60 and sms_consent", &m), False);
        assert_eq!(truth_of("last_order_at == null", &m), True);
        assert_eq!(truth_of("not (last_order_at != null)", &m), True);
        assert_eq!(truth_of("email == email", &m), Unknown);
        assert_eq!(truth_of("email in [null, \"x\"]", &m), True);
        assert_eq!(truth_of("email not in [\"x\"]", &m), Unknown);
        assert_eq!(truth_of("(email == \"x\") == null", &m), True);
        assert_eq!(truth_of("null == null", &m), True);
    }

    #[test]
    fn days_since_counts_whole_days_elapsed() {
        // 2026-01-01T12:00 to 2026-03-15T10:00 is 72 days and 22 hours.
        assert_eq!(t("days_since(last_order_at) == 72"), True);
        assert_eq!(t("days_since_last_order > 72"), False);
        assert_eq!(t("days_since(last_order_at) >= 72d"), True);
        assert_eq!(t("age_days == 365"), True);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(days_since(at("2026-03-15T10:00:00Z"), at("2026-03-14T10:00:00Z")), 1);
        assert_eq!(days_since(at("2026-03-15T10:00:00Z"), at("2026-03-14T10:00:00.000001Z")), 0);
        assert_eq!(days_since(at("2026-03-15T10:00:00Z"), at("2026-03-15T10:00:00.000001Z")), -1);
        assert_eq!(days_since(at("2026-03-15T10:00:00Z"), at("2026-03-17T10:00:00Z")), -2);
    }

    #[test]
    fn attributes_are_typed_by_use() {
        assert_eq!(t("attributes.vip"), True);
        assert_eq!(t("attributes.vip == true"), True);
        assert_eq!(t("attributes.score > 4"), True);
        assert_eq!(t("attributes.count == 5.0"), True);
        assert_eq!(t("attributes.five == 5"), Unknown);
        assert_eq!(t("attributes.five == \"5\""), True);
        assert_eq!(t("attributes.count == \"5\""), Unknown);
        assert_eq!(t("attributes.nick"), Unknown);
        assert_eq!(t("attributes.nick > \"Zoz\""), True, "bytes: ë sorts after z");
        assert_eq!(t("attributes.gone == null and attributes.missing == null"), True);
        assert_eq!(t("attributes.prefs.color == \"red\""), True);
        assert_eq!(t("attributes.prefs == \"red\""), Unknown);
        assert_eq!(t("attributes.missing > 1 or not (attributes.missing > 1)"), Unknown);
    }

    #[test]
    fn functions_look_at_tags_and_history() {
        assert_eq!(t("has_tag(\"vip\") and not has_tag(\"VIP\")"), True);
        let m = member();
        let ctx =
            EvalContext { member: &m, event: None, history: &Sent("offer"), now: now(), default_timezone: Tz::UTC };
        assert_eq!(eval(&parse("opened(offer) and received(offer) and not clicked(offer)").unwrap(), &ctx), True);
        assert_eq!(eval(&parse("opened(nudge)").unwrap(), &ctx), False);
        assert_eq!(t("nosuch(1)"), Unknown);
        assert_eq!(t("nosuch == null"), Unknown);
    }

    #[test]
    fn event_fields_and_properties() {
        let m = member();
        let event = Event {
            id: "e1".into(),
            member_id: "m1".into(),
            name: "order.placed".into(),
            occurred_at: "2026-03-10T00:00:00Z".parse().unwrap(),
            properties: serde_json::json!({"total": 250, "items": {"count": 3}}),
        };
        let ctx =
            EvalContext { member: &m, event: Some(&event), history: &NoHistory, now: now(), default_timezone: Tz::UTC };
        let e = |text: &str| eval(&parse(text).unwrap(), &ctx);
        assert_eq!(e("event.total > 100 and event.items.count == 3 and event.name == \"order.placed\""), True);
        assert_eq!(e("days_since(event.occurred_at) == 5"), True);
        assert_eq!(e("event.missing == null"), True);
        assert_eq!(t("event.total > 100"), Unknown);
    }

    #[test]
    fn strings_compare_by_bytes() {
        assert_eq!(t("tier > \"Zebra\""), True);
        assert_eq!(t("tier < \"gold \""), True);
        assert_eq!(t("tier in [\"silver\", \"gold\"]"), True);
        assert_eq!(t("tier not in [\"silver\", \"gold\"]"), False);
    }

    fn birthday(text: &str) -> Birthday {
        Birthday::parse(text).unwrap()
    }

    #[test]
    fn feb_29_birthdays_fall_on_feb_28_in_common_years() {
        let on = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let b = birthday("--02-29");
        assert_eq!(days_until_birthday(&b, Tz::UTC, on("2026-02-28T12:00:00Z")), 0);
        assert_eq!(days_until_birthday(&b, Tz::UTC, on("2026-02-27T12:00:00Z")), 1);
        // The day after, the next one is 28 February 2027 (common year too).
        assert_eq!(days_until_birthday(&b, Tz::UTC, on("2026-03-01T00:00:00Z")), 364);
        // In a leap year it is the 29th.
        assert_eq!(days_until_birthday(&b, Tz::UTC, on("2028-02-28T12:00:00Z")), 1);
        assert_eq!(days_until_birthday(&b, Tz::UTC, on("2028-02-29T12:00:00Z")), 0);
        assert_eq!(days_until_birthday(&birthday("1992-02-29"), Tz::UTC, on("2027-02-01T00:00:00Z")), 27);
    }

    #[test]
    fn days_until_birthday_is_counted_in_the_members_time_zone() {
        let b = birthday("--07-04");
        // 2026-07-03 20:00 UTC is already 4 July in Shanghai (UTC+8), still 3 July in New York.
        let now: DateTime<Utc> = "2026-07-03T20:00:00Z".parse().unwrap();
        assert_eq!(days_until_birthday(&b, Tz::Asia__Shanghai, now), 0);
        assert_eq!(days_until_birthday(&b, Tz::America__New_York, now), 1);
        // Across the date line: Kiritimati (UTC+14) is on 5 July, Pago Pago (UTC−11) on 3 July.
        let now: DateTime<Utc> = "2026-07-04T12:00:00Z".parse().unwrap();
        assert_eq!(days_until_birthday(&b, Tz::Pacific__Kiritimati, now), 364);
        assert_eq!(days_until_birthday(&b, Tz::Pacific__Pago_Pago, now), 0);
        assert_eq!(days_until_birthday(&b, Tz::UTC, now), 0);

        let mut m = member();
        m.birthday = Some(b);
        let now: DateTime<Utc> = "2026-07-03T20:00:00Z".parse().unwrap();
        let days = |m: &Member, default| {
            let ctx = EvalContext { member: m, event: None, history: &NoHistory, now, default_timezone: default };
            eval(&parse("days_until_birthday == 0").unwrap(), &ctx)
        };
        assert_eq!(days(&m, Tz::Asia__Shanghai), True, "no timezone: the default one");
        assert_eq!(days(&m, Tz::America__New_York), False);
        m.timezone = Some("Asia/Tokyo".into());
        assert_eq!(days(&m, Tz::America__New_York), True, "the member's own zone wins");
        m.birthday = None;
        assert_eq!(days(&m, Tz::UTC), Unknown);
    }
}
