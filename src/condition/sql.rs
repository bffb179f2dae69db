//! Compiling an audience condition to a parameterised `WHERE` fragment over the members
//! table aliased `m`, for SQLite and PostgreSQL, with the meaning `eval` gives it.
//!
//! Every value a marketer wrote (strings, numbers, booleans, tags, attribute names) and the
//! bounds computed from `now` are bound parameters; the SQL text holds only column names
//! from the schema, operators, placeholders and the constants `(1 = 1)` / `(1 = 0)`.
//!
//! How the rules of `eval.rs` become SQL:
//! - `and`/`or`/`not` and comparisons use SQL's own three-valued logic; `x == null` is
//!   `IS NULL`.
//! - `days_since(f) OP n` becomes a range on the bare column against a bound timestamp, so
//!   it can use the column's index: `days_since(f) > n` ⟺ `f <= now − (n+1)·24h`.
//! - `attributes.x` is extracted only when its JSON type matches the type it is compared
//!   with (`json_type`/`json_extract` with a bound path `$."x"` on SQLite,
//!   `jsonb_typeof(m.attributes -> $N)` and `->>` on PostgreSQL), and is NULL otherwise.
//! - Text is ordered by bytes: SQLite's default `BINARY` collation, `COLLATE "C"` on
//!   PostgreSQL.
//! - Timestamps are bound as `store::codec::sqlite_timestamp` text on SQLite (the format
//!   of the column) and as `TIMESTAMPTZ` on PostgreSQL.

use chrono::{DateTime, Datelike, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Postgres, Sqlite};

use super::ConditionError;
use super::ast::{CompareOp, Expr, ExprKind, Literal};
use super::check::{Scope, check};
use super::resolve::{self, Kind, Operand, TimestampRef, Ty, comparison_kind};
use crate::diagnostic::Severity;
use crate::store::codec::sqlite_timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The numbered placeholder of parameter `n` (1-based): `?N` on SQLite, `$N` on
    /// PostgreSQL. (Statements with thousands of parameters should use anonymous `?` on
    /// SQLite instead: see `store::Sql::bind`.)
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }
}

/// A WHERE-clause fragment over the members table aliased `m`, with its bound parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    pub sql: String,
    /// In placeholder order: `params[i]` is placeholder `first_param + i`.
    pub params: Vec<SqlParam>,
}

/// A bound value. Bind with [`BindSql`] (or [`SqlParam::bind_sqlite`] /
/// [`SqlParam::bind_postgres`]) so each engine gets its own encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
}

/// Compiles an audience condition to SQL. Placeholders are numbered from `first_param`
/// (`?N` on SQLite, `$N` on PostgreSQL) so the fragment can be embedded in a larger query.
///
/// Fails with the first error [`check`] reports for an audience (e.g. `C008` for
/// `days_until_birthday`, `C006` for `opened()` or `event.*`).
pub fn to_sql(
    expr: &Expr,
    dialect: Dialect,
    now: DateTime<Utc>,
    first_param: usize,
) -> Result<SqlFilter, ConditionError> {
    if let Some(error) = check(expr, &Scope::AUDIENCE).into_iter().find(|e| e.severity == Severity::Error) {
        return Err(error);
    }
    let mut compiler = Compiler { dialect, now, next: first_param, params: Vec::new() };
    let sql = compiler.condition(expr)?;
    Ok(SqlFilter { sql, params: compiler.params })
}

const TRUE: &str = "(1 = 1)";
const FALSE: &str = "(1 = 0)";

struct Compiler {
    dialect: Dialect,
    now: DateTime<Utc>,
    next: usize,
    params: Vec<SqlParam>,
}

/// A bound on a timestamp column: `now − k days`, or beyond every stored timestamp
/// (years 1 to 9999, which the SQLite text format can order).
enum Bound {
    At(DateTime<Utc>),
    BeforeAll,
    AfterAll,
}

fn unsupported(expr: &Expr, what: &str) -> ConditionError {
    ConditionError::error("C008", expr.span, format!("{what} cannot run in the database"))
}

impl Compiler {
    fn param(&mut self, value: SqlParam) -> String {
        let n = self.next;
        self.next += 1;
        self.params.push(value);
        self.dialect.placeholder(n)
    }

    fn condition(&mut self, expr: &Expr) -> Result<String, ConditionError> {
        Ok(match &expr.kind {
            ExprKind::And(a, b) => format!("({} AND {})", self.condition(a)?, self.condition(b)?),
            ExprKind::Or(a, b) => format!("({} OR {})", self.condition(a)?, self.condition(b)?),
            ExprKind::Not(inner) => format!("(NOT {})", self.condition(inner)?),
            ExprKind::Compare { op, left, right, .. } => self.compare(expr, *op, left, right)?,
            ExprKind::In { value, list, negated } => {
                let found = self.in_list(value, list)?;
                if *negated { format!("(NOT {found})") } else { found }
            }
            ExprKind::Call(call) if call.name.name == "has_tag" => {
                let [Expr { kind: ExprKind::Literal(Literal::String(tag)), .. }] = call.args.as_slice() else {
                    return Err(unsupported(expr, "this `has_tag`"));
                };
                let tag = self.param(SqlParam::Text(tag.clone()));
                // Not a correlated `EXISTS (... t.member_id = m.id ...)`: SQLite runs that as a
                // walk of every member with one tag lookup each, and this as two index searches
                // (`member_id` is never NULL, so `IN` is never unknown, as `EXISTS`).
                format!("(m.id IN (SELECT t.member_id FROM member_tags t WHERE t.tag = {tag}))")
            }
            _ => match resolve::operand(expr)? {
                Operand::Column(field) if field.ty == crate::schema::FieldType::Bool => match self.dialect {
                    Dialect::Sqlite => format!("(m.{} = 1)", field.name),
                    Dialect::Postgres => format!("m.{}", field.name),
                },
                Operand::Literal(Literal::Bool(b)) => (if *b { TRUE } else { FALSE }).to_string(),
                Operand::Attribute(path) => self.attribute(path, Kind::Bool),
                _ => return Err(unsupported(expr, &format!("`{expr}`"))),
            },
        })
    }

    fn compare(&mut self, expr: &Expr, op: CompareOp, left: &Expr, right: &Expr) -> Result<String, ConditionError> {
        let (l, r) = (resolve::operand(left)?, resolve::operand(right)?);
        let kind = comparison_kind(op, &l, &r)
            .map_err(|m| ConditionError::error("C003", expr.span, m.message).with_optional_hint(m.hint))?;
        match kind {
            Kind::NullTest => {
                let null = match (&l, &r) {
                    (Operand::Literal(Literal::Null), Operand::Literal(Literal::Null)) => TRUE.to_string(),
                    (Operand::Literal(Literal::Null), other) | (other, _) => self.is_null(expr, other)?,
                };
                Ok(if op == CompareOp::Eq { null } else { format!("(NOT {null})") })
            }
            Kind::Days => {
                let (days, op, number) = if l.ty() == Ty::Days { (&l, op, &r) } else { (&r, op.flip(), &l) };
                let n = match number {
                    Operand::Literal(Literal::Int(n)) => *n,
                    Operand::Literal(Literal::Duration(d)) => {
                        d.as_whole_days().ok_or_else(|| unsupported(expr, "this comparison"))?
                    }
                    _ => return Err(unsupported(expr, "comparing a number of days with a non-literal")),
                };
                match days {
                    Operand::DaysSince(TimestampRef::Member(field)) => {
                        Ok(self.days_since(&format!("m.{}", field.name), op, n))
                    }
                    _ => Err(unsupported(expr, &format!("`{expr}`"))),
                }
            }
            Kind::Num | Kind::Str | Kind::Bool | Kind::Timestamp => {
                let ls = self.value(expr, &l, kind)?;
                let rs = self.value(expr, &r, kind)?;
                let collate = if kind == Kind::Str && op.is_ordering() && self.dialect == Dialect::Postgres {
                    " COLLATE \"C\""
                } else {
                    ""
                };
                Ok(format!("({ls}{collate} {} {rs})", sql_op(op)))
            }
        }
    }

    /// `value in [a, b]` as `value == a OR value == b`, or `IN (..)` on a plain column.
    fn in_list(&mut self, value: &Expr, list: &[Expr]) -> Result<String, ConditionError> {
        if let Operand::Column(field) = resolve::operand(value)? {
            let literals: Option<Vec<SqlParam>> = list
                .iter()
                .map(|item| match (&item.kind, field.ty) {
                    (ExprKind::Literal(Literal::String(s)), crate::schema::FieldType::String) => {
                        Some(SqlParam::Text(s.clone()))
                    }
                    (ExprKind::Literal(Literal::Int(n)), crate::schema::FieldType::Int) => Some(SqlParam::Int(*n)),
                    _ => None,
                })
                .collect();
            if let Some(literals) = literals {
                let placeholders: Vec<String> = literals.into_iter().map(|p| self.param(p)).collect();
                return Ok(format!("(m.{} IN ({}))", field.name, placeholders.join(", ")));
            }
        }
        let mut alternatives = Vec::with_capacity(list.len());
        for item in list {
            let span = value.span.to(item.span);
            alternatives.push(self.compare(
                &Expr { kind: ExprKind::Literal(Literal::Null), span },
                CompareOp::Eq,
                value,
                item,
            )?);
        }
        Ok(format!("({})", alternatives.join(" OR ")))
    }

    /// SQL that is true when the operand is null, and never unknown.
    fn is_null(&mut self, expr: &Expr, operand: &Operand) -> Result<String, ConditionError> {
        Ok(match operand {
            Operand::Column(field) | Operand::DaysSince(TimestampRef::Member(field)) => {
                format!("(m.{} IS NULL)", field.name)
            }
            Operand::Attribute(path) => {
                let path = self.json_path(path);
                match self.dialect {
                    Dialect::Sqlite => format!("(COALESCE(json_type(m.attributes, {}), 'null') = 'null')", path.sqlite),
                    Dialect::Postgres => format!("(COALESCE(jsonb_typeof({}), 'null') = 'null')", path.object),
                }
            }
            Operand::Condition(condition) => format!("({} IS NULL)", self.condition(condition)?),
            Operand::Literal(_) => FALSE.to_string(),
            _ => return Err(unsupported(expr, &format!("`{expr}`"))),
        })
    }

    /// An operand as an SQL value of the comparison's kind.
    fn value(&mut self, expr: &Expr, operand: &Operand, kind: Kind) -> Result<String, ConditionError> {
        Ok(match operand {
            Operand::Literal(literal) => {
                let param = match literal {
                    Literal::Int(n) => SqlParam::Int(*n),
                    Literal::Decimal(x) => SqlParam::Float(*x),
                    Literal::String(s) => SqlParam::Text(s.clone()),
                    Literal::Bool(b) => SqlParam::Bool(*b),
                    Literal::Null | Literal::Duration(_) => return Err(unsupported(expr, &format!("`{expr}`"))),
                };
                self.param(param)
            }
            Operand::Column(field) => format!("m.{}", field.name),
            Operand::Attribute(path) => self.attribute(path, kind),
            Operand::Condition(condition) => self.condition(condition)?,
            _ => return Err(unsupported(expr, &format!("`{expr}`"))),
        })
    }

    /// `attributes.path` as a value of `kind`, NULL when its JSON type is another.
    fn attribute(&mut self, path: &[super::ast::Ident], kind: Kind) -> String {
        let path = self.json_path(path);
        match self.dialect {
            Dialect::Sqlite => {
                let (p, attrs) = (&path.sqlite, "m.attributes");
                match kind {
                    Kind::Num => format!(
                        "(CASE WHEN json_type({attrs}, {p}) IN ('integer', 'real') THEN json_extract({attrs}, {p}) END)"
                    ),
                    Kind::Str => {
                        format!("(CASE WHEN json_type({attrs}, {p}) = 'text' THEN json_extract({attrs}, {p}) END)")
                    }
                    _ => format!("(CASE json_type({attrs}, {p}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"),
                }
            }
            Dialect::Postgres => {
                let (object, text) = (&path.object, &path.text);
                match kind {
                    Kind::Num => format!("(CASE WHEN jsonb_typeof({object}) = 'number' THEN ({text})::numeric END)"),
                    Kind::Str => format!("(CASE WHEN jsonb_typeof({object}) = 'string' THEN {text} END)"),
                    _ => format!("(CASE WHEN jsonb_typeof({object}) = 'boolean' THEN ({text})::boolean END)"),
                }
            }
        }
    }

    fn json_path(&mut self, path: &[super::ast::Ident]) -> JsonPath {
        match self.dialect {
            Dialect::Sqlite => {
                let text: String = path.iter().map(|segment| format!(".\"{}\"", segment.name)).collect();
                JsonPath {
                    sqlite: self.param(SqlParam::Text(format!("${text}"))),
                    object: String::new(),
                    text: String::new(),
                }
            }
            Dialect::Postgres => {
                let keys: Vec<String> =
                    path.iter().map(|segment| self.param(SqlParam::Text(segment.name.clone()))).collect();
                let (last, init) = keys.split_last().expect("an attribute path has a name");
                let prefix: String = init.iter().map(|k| format!(" -> {k}")).collect();
                JsonPath {
                    sqlite: String::new(),
                    object: format!("m.attributes{prefix} -> {last}"),
                    text: format!("m.attributes{prefix} ->> {last}"),
                }
            }
        }
    }

    /// `days_since(column) OP n` as a range on the column.
    fn days_since(&mut self, column: &str, op: CompareOp, n: i64) -> String {
        // floor((now − f) / D) ≥ k  ⟺  f ≤ now − k·D
        let at_least = |this: &mut Self, k: Option<i64>| this.bound_compare(column, "<=", k);
        let below = |this: &mut Self, k: Option<i64>| this.bound_compare(column, ">", k);
        let next = n.checked_add(1);
        match op {
            CompareOp::Gt => at_least(self, next),
            CompareOp::Ge => at_least(self, Some(n)),
            CompareOp::Lt => below(self, Some(n)),
            CompareOp::Le => below(self, next),
            CompareOp::Eq => {
                let low = at_least(self, Some(n));
                let high = below(self, next);
                format!("({low} AND {high})")
            }
            CompareOp::Ne => {
                let low = below(self, Some(n));
                let high = at_least(self, next);
                format!("({low} OR {high})")
            }
        }
    }

    /// `column <= now − k days` or `column > now − k days` (`k` None: beyond i64).
    fn bound_compare(&mut self, column: &str, op: &str, k: Option<i64>) -> String {
        let bound = match k.and_then(|k| self.days_ago(k)) {
            Some(at) if (1..=9999).contains(&at.year()) => Bound::At(at),
            // Overflow only happens for `n + 1` with n = i64::MAX: far in the past.
            _ if k.is_none_or(|k| k > 0) => Bound::BeforeAll,
            _ => Bound::AfterAll,
        };
        let constant = |holds: bool| {
            let value = if holds { TRUE } else { FALSE };
            format!("(CASE WHEN {column} IS NULL THEN NULL ELSE {value} END)")
        };
        match (bound, op) {
            (Bound::At(at), op) => {
                let placeholder = self.param(SqlParam::Timestamp(at));
                format!("({column} {op} {placeholder})")
            }
            (Bound::BeforeAll, "<=") | (Bound::AfterAll, ">") => constant(false),
            _ => constant(true),
        }
    }

    /// `now − k days`, floored to the microsecond both engines store.
    fn days_ago(&self, k: i64) -> Option<DateTime<Utc>> {
        let at = self.now.checked_sub_signed(chrono::Duration::try_seconds(k.checked_mul(86_400)?)?)?;
        let sub_micro = i64::from(at.timestamp_subsec_nanos() % 1_000);
        at.checked_sub_signed(chrono::Duration::nanoseconds(sub_micro))
    }
}

struct JsonPath {
    /// SQLite: the placeholder of a bound `$."a"."b"` path.
    sqlite: String,
    /// PostgreSQL: `m.attributes -> $1 -> $2` (jsonb) and `m.attributes -> $1 ->> $2` (text).
    object: String,
    text: String,
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
    }
}

/// Binding [`SqlParam`]s to a sqlx query, encoded for the query's engine.
pub trait BindSql: Sized {
    fn bind_sql(self, param: &SqlParam) -> Self;

    /// Binds all of a filter's parameters, in order.
    fn bind_filter(self, filter: &SqlFilter) -> Self {
        filter.params.iter().fold(self, |query, param| query.bind_sql(param))
    }
}

macro_rules! impl_bind_sql {
    ($(impl<$($generic:tt),*> for $query:ty => $timestamp:path;)*) => {$(
        impl<$($generic),*> BindSql for $query {
            fn bind_sql(self, param: &SqlParam) -> Self {
                match param {
                    SqlParam::Text(text) => self.bind(text.clone()),
                    SqlParam::Int(n) => self.bind(*n),
                    SqlParam::Float(x) => self.bind(*x),
                    SqlParam::Bool(b) => self.bind(*b),
                    SqlParam::Timestamp(at) => self.bind($timestamp(*at)),
                }
            }
        }
    )*};
}

impl_bind_sql! {
    impl<'q> for Query<'q, Sqlite, SqliteArguments> => sqlite_timestamp;
    impl<'q, O> for QueryAs<'q, Sqlite, O, SqliteArguments> => sqlite_timestamp;
    impl<'q, O> for QueryScalar<'q, Sqlite, O, SqliteArguments> => sqlite_timestamp;
    impl<'q> for Query<'q, Postgres, PgArguments> => postgres_timestamp;
    impl<'q, O> for QueryAs<'q, Postgres, O, PgArguments> => postgres_timestamp;
    impl<'q, O> for QueryScalar<'q, Postgres, O, PgArguments> => postgres_timestamp;
}

/// PostgreSQL takes the instant as `TIMESTAMPTZ`.
fn postgres_timestamp(at: DateTime<Utc>) -> DateTime<Utc> {
    at
}

impl SqlParam {
    /// Binds this value to a SQLite query (a timestamp as the column's text format).
    pub fn bind_sqlite<'q>(&self, query: Query<'q, Sqlite, SqliteArguments>) -> Query<'q, Sqlite, SqliteArguments> {
        query.bind_sql(self)
    }

    /// Binds this value to a PostgreSQL query.
    pub fn bind_postgres<'q>(&self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        query.bind_sql(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::parse;

    fn now() -> DateTime<Utc> {
        "2026-03-15T10:20:30.123456789Z".parse().unwrap()
    }

    fn sql(text: &str, dialect: Dialect) -> SqlFilter {
        to_sql(&parse(text).unwrap(), dialect, now(), 1).unwrap()
    }

    fn days_ago(days: i64) -> SqlParam {
        let at: DateTime<Utc> = "2026-03-15T10:20:30.123456Z".parse().unwrap();
        SqlParam::Timestamp(at - chrono::Duration::days(days))
    }

    #[test]
    fn days_since_becomes_a_range_on_the_bare_column() {
        let f = sql("days_since(last_order_at) > 60", Dialect::Sqlite);
        assert_eq!(f.sql, "(m.last_order_at <= ?1)");
        assert_eq!(f.params, vec![days_ago(61)]);

        let f = sql("30d >= days_since_last_order", Dialect::Postgres);
        assert_eq!(f.sql, "(m.last_order_at > $1)");
        assert_eq!(f.params, vec![days_ago(31)]);

        let f = sql("age_days == 7", Dialect::Sqlite);
        assert_eq!(f.sql, "((m.joined_at <= ?1) AND (m.joined_at > ?2))");
        assert_eq!(f.params, vec![days_ago(7), days_ago(8)]);
    }

    #[test]
    fn days_beyond_the_calendar_are_constant_but_stay_unknown_for_null() {
        let f = sql("days_since(last_order_at) > 9223372036854775807", Dialect::Sqlite);
        assert_eq!(f.sql, "(CASE WHEN m.last_order_at IS NULL THEN NULL ELSE (1 = 0) END)");
        let f = sql("days_since(last_order_at) > -99999999", Dialect::Postgres);
        assert_eq!(f.sql, "(CASE WHEN m.last_order_at IS NULL THEN NULL ELSE (1 = 1) END)");
        assert!(f.params.is_empty());
    }

    #[test]
    fn values_are_bound_never_pasted() {
        let text = r#"first_name == "'; DROP TABLE members; --" and attributes.nick < "x" and has_tag("o'k")"#;
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let f = sql(text, dialect);
            assert!(!f.sql.contains("DROP") && !f.sql.contains("nick") && !f.sql.contains("o'k"), "{}", f.sql);
            assert!(f.params.contains(&SqlParam::Text("'; DROP TABLE members; --".into())));
        }
        let f = sql(r#"attributes.nick < "x""#, Dialect::Sqlite);
        assert_eq!(
            f.sql,
            "((CASE WHEN json_type(m.attributes, ?1) = 'text' THEN json_extract(m.attributes, ?1) END) < ?2)"
        );
        assert_eq!(f.params, vec![SqlParam::Text("$.\"nick\"".into()), SqlParam::Text("x".into())]);
        let f = sql(r#"attributes.prefs.color < "x""#, Dialect::Postgres);
        assert_eq!(
            f.sql,
            "((CASE WHEN jsonb_typeof(m.attributes -> $1 -> $2) = 'string' THEN m.attributes -> $1 ->> $2 END) COLLATE \"C\" < $3)"
        );
    }

    #[test]
    fn placeholders_start_at_first_param() {
        let expr = parse(r#"tier in ["gold", "diamond"] and points > 10 and email != null"#).unwrap();
        let f = to_sql(&expr, Dialect::Postgres, now(), 3).unwrap();
        assert_eq!(f.sql, "(((m.tier IN ($3, $4)) AND (m.points > $5)) AND (NOT (m.email IS NULL)))");
        let f = to_sql(&expr, Dialect::Sqlite, now(), 3).unwrap();
        assert_eq!(f.sql, "(((m.tier IN (?3, ?4)) AND (m.points > ?5)) AND (NOT (m.email IS NULL)))");
        assert_eq!(f.params.len(), 3);
    }

    #[test]
    fn what_cannot_run_in_the_database_is_an_error() {
        let error = to_sql(&parse("days_until_birthday <= 7").unwrap(), Dialect::Sqlite, now(), 1).unwrap_err();
        assert_eq!(error.code, "C008");
        assert!(error.hint.unwrap().contains("use a `date: birthday` trigger"));
        let error = to_sql(&parse("opened(offer)").unwrap(), Dialect::Postgres, now(), 1).unwrap_err();
        assert_eq!(error.code, "C006");
        let error = to_sql(&parse("tier").unwrap(), Dialect::Postgres, now(), 1).unwrap_err();
        assert_eq!(error.code, "C010");
        // A warning does not stop compilation.
        assert!(to_sql(&parse("lifecycle == \"chruned\"").unwrap(), Dialect::Postgres, now(), 1).is_ok());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::condition::{EvalContext, NoHistory, Scope, check, eval, parse};
    use crate::member::Member;

    /// Operands, valid and not, so that the checker's verdicts are exercised both ways.
    fn operand() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "tier",
                "points",
                "email_consent",
                "last_order_at",
                "joined_at",
                "birthday",
                "tags",
                "lifecycle",
                "days_since_last_order",
                "age_days",
                "days_until_birthday",
                "attributes.vip",
                "attributes.a.b",
                "event.total",
                "event.occurred_at",
                "tierr",
                "clv",
                "rfm_segment",
                "push_tokens",
                "id",
            ])
            .prop_map(str::to_string),
            prop::sample::select(vec![
                "days_since(last_order_at)",
                "days_since(birthday)",
                "days_since(event.occurred_at)",
                "days_since(points)",
                "has_tag(\"vip\")",
                "has_tag(vip)",
                "opened(offer)",
                "nosuch(1)",
            ])
            .prop_map(str::to_string),
            prop::sample::select(vec![
                "0",
                "-3",
                "60",
                "2.5",
                "\"gold\"",
                "\"churned\"",
                "\"chruned\"",
                "true",
                "false",
                "null",
                "30d",
                "12h",
                "9223372036854775807",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn leaf() -> impl Strategy<Value = String> {
        let op = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
        prop_oneof![
            (operand(), op, operand()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (operand(), prop::bool::ANY, prop::collection::vec(operand(), 1..3)).prop_map(|(a, not, items)| format!(
                "{a} {}in [{}]",
                if not { "not " } else { "" },
                items.join(", ")
            )),
            operand(),
        ]
    }

    fn condition() -> impl Strategy<Value = String> {
        leaf().prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
                inner.prop_map(|a| format!("not ({a})")),
            ]
        })
    }

    proptest! {
        /// `check` in an audience is exactly the gate of `to_sql`: what it accepts compiles
        /// on both engines, and what it rejects does not.
        #[test]
        fn what_checks_as_an_audience_compiles_and_nothing_else(text in condition()) {
            let Ok(expr) = parse(&text) else { return Ok(()) };
            let now: DateTime<Utc> = "2026-03-15T10:20:30Z".parse().unwrap();
            let errors = check(&expr, &Scope::AUDIENCE).into_iter().filter(|e| e.severity == Severity::Error).count();
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let compiled = to_sql(&expr, dialect, now, 1);
                prop_assert_eq!(compiled.is_ok(), errors == 0, "{}: {:?}", text, compiled);
                if let Ok(filter) = compiled {
                    let placeholders = filter.sql.matches(['?', '$']).count();
                    prop_assert!(placeholders >= filter.params.len());
                }
            }
            let member = Member::default();
            let ctx = EvalContext { member: &member, event: None, history: &NoHistory, now, default_timezone: chrono_tz::Tz::UTC };
            let _ = eval(&expr, &ctx);
        }
    }
}
