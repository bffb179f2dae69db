//! An audience selects the same members in SQLite, in PostgreSQL and in memory: for
//! hundreds of generated conditions over a seeded population of 10,000+ members, the ids
//! `SELECT m.id FROM members m WHERE <to_sql>` returns are exactly the ids `eval` accepts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};
use tidings::condition::{self, BindSql, Dialect, EvalContext, Expr, NoHistory, Scope};
use tidings::diagnostic::Severity;
use tidings::member::{Birthday, Member};
use tidings::schema::{LIFECYCLES, RFM_SEGMENTS};

use crate::support;

const MEMBERS: usize = 10_240;
const GENERATED_CONDITIONS: usize = 200;
const SEED: u64 = 0x7469_6469_6e67_7321;

/// `now` with nanoseconds, which the databases cannot store: bounds must be floored.
fn now() -> DateTime<Utc> {
    "2026-03-15T10:20:30.123456789Z".parse().unwrap()
}

/// SplitMix64: small, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn maybe<T>(&mut self, percent_none: u64, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.chance(percent_none) { None } else { Some(make(self)) }
    }
}

/// Strings that stress quoting, collation and typing. (No NUL: PostgreSQL text cannot hold it.)
const STRINGS: &[&str] = &[
    "",
    "gold",
    "Gold",
    "GOLD",
    "silver",
    "diamond",
    "gold ",
    "Zoë",
    "zoe",
    "Zoe",
    "é",
    "e\u{301}",
    "Ünïcödé",
    "日本語",
    "中文名字",
    "🎉",
    "'; DROP TABLE members; --",
    "\" OR 1=1 --",
    "Robert'); DROP TABLE member_tags;--",
    "back\\slash",
    "a b",
    "null",
    "NULL",
    "5",
    "5.0",
    "true",
    "O'Brien",
    "%",
    "_",
    "$1",
    "?1",
    "tab\there",
    "new\nline",
    "ß",
    "Z",
    "a",
];

const TAGS: &[&str] = &["vip", "VIP", "newsletter", "é-tag", "'; DROP TABLE member_tags; --", "b2b", "lapsed"];
const TIERS: &[&str] = &["silver", "gold", "diamond", "Gold", "", "platinum"];
const TIMEZONES: &[&str] = &["Asia/Shanghai", "America/New_York", "Pacific/Kiritimati", "Not/AZone"];
const STRING_FIELDS: &[&str] = &[
    "id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "timezone",
    "tier",
    "currency",
    "lifecycle",
    "rfm_segment",
];
const INT_FIELDS: &[&str] =
    &["points", "points_expiring", "total_spend", "order_count", "rfm_r", "rfm_f", "rfm_m", "clv"];
const BOOL_FIELDS: &[&str] = &["email_consent", "sms_consent", "push_consent"];
const TIMESTAMP_FIELDS: &[&str] = &["points_expire_at", "first_order_at", "last_order_at", "joined_at"];
const ATTRIBUTES: &[&str] = &["vip", "score", "nick", "count", "prefs"];

fn string(rng: &mut Rng) -> String {
    rng.pick(STRINGS).to_string()
}

/// A timestamp around `now`, at microsecond precision (what both engines store), often on
/// or next to an exact day boundary `now − k days`.
fn timestamp(rng: &mut Rng) -> DateTime<Utc> {
    let floor = |at: DateTime<Utc>| at - chrono::Duration::nanoseconds(i64::from(at.timestamp_subsec_nanos() % 1_000));
    let boundary = floor(now() - chrono::Duration::days(rng.range(-5, 200)));
    match rng.below(6) {
        0 => boundary,
        1 => boundary + chrono::Duration::microseconds(1),
        2 => boundary - chrono::Duration::microseconds(1),
        3 => boundary + chrono::Duration::microseconds(rng.range(-86_400_000_000, 86_400_000_000)),
        _ => floor(now()) + chrono::Duration::microseconds(rng.range(-400 * 86_400_000_000, 30 * 86_400_000_000)),
    }
}

fn json_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 | 3 => json!(rng.range(-10, 10)),
        4 => json!(rng.range(-40, 40) as f64 / 4.0),
        5 | 6 => json!(string(rng)),
        7 => json!([1, "a"]),
        8 => json!({ "color": string(rng) }),
        _ => json!({ "color": rng.range(0, 3) }),
    }
}

fn member(i: usize, rng: &mut Rng) -> Member {
    let suffix = rng.pick(&["", "", "", "-é", "'; DROP TABLE members; --", " x", "Z"]);
    let mut attributes = serde_json::Map::new();
    for name in ATTRIBUTES {
        if rng.chance(70) {
            attributes.insert(name.to_string(), json_value(rng));
        }
    }
    let mut tags: Vec<String> = TAGS.iter().filter(|_| rng.chance(25)).map(|t| t.to_string()).collect();
    tags.dedup();
    Member {
        id: format!("m{i:05}{suffix}"),
        email: rng.maybe(20, |r| format!("{}@example.com", string(r))),
        phone: rng.maybe(50, |r| format!("+86138{:08}", r.below(100_000_000))),
        push_tokens: if rng.chance(30) { vec!["tok".into()] } else { vec![] },
        first_name: rng.maybe(15, string),
        last_name: rng.maybe(15, string),
        locale: rng.maybe(20, |r| r.pick(&["en", "zh-CN", "de", "EN"]).to_string()),
        timezone: rng.maybe(30, |r| r.pick(TIMEZONES).to_string()),
        birthday: rng.maybe(30, |r| Birthday {
            year: r.maybe(50, |r| r.range(1950, 2010) as i32),
            month: r.range(1, 12) as u32,
            day: r.range(1, 28) as u32,
        }),
        tier: rng.maybe(20, |r| r.pick(TIERS).to_string()),
        points: rng.range(-50, 5_000),
        points_expiring: if rng.chance(50) { 0 } else { rng.range(0, 500) },
        points_expire_at: rng.maybe(40, timestamp),
        total_spend: rng.range(0, 1_000_000),
        currency: rng.maybe(10, |r| r.pick(&["CNY", "USD", "EUR"]).to_string()),
        order_count: rng.range(0, 40),
        first_order_at: rng.maybe(25, timestamp),
        last_order_at: rng.maybe(25, timestamp),
        joined_at: rng.maybe(5, timestamp),
        email_consent: rng.chance(60),
        sms_consent: rng.chance(40),
        push_consent: rng.chance(30),
        tags,
        attributes,
        lifecycle: rng.maybe(10, |r| r.pick(LIFECYCLES).to_string()),
        rfm_r: rng.maybe(20, |r| r.range(1, 5)),
        rfm_f: rng.maybe(20, |r| r.range(1, 5)),
        rfm_m: rng.maybe(20, |r| r.range(1, 5)),
        rfm_segment: rng.maybe(20, |r| r.pick(RFM_SEGMENTS).to_string()),
        clv: rng.maybe(30, |r| r.range(0, 100_000)),
    }
}

fn population() -> Vec<Member> {
    let mut rng = Rng(SEED);
    let mut members: Vec<Member> = (0..MEMBERS).map(|i| member(i, &mut rng)).collect();
    // Fixed corner cases: a member with nothing optional, and one born on 29 February.
    members.push(Member { id: "empty".into(), ..Member::default() });
    members.push(Member {
        id: "leap".into(),
        birthday: Birthday::parse("--02-29"),
        last_order_at: Some(now()),
        joined_at: Some(now() + chrono::Duration::days(3)),
        ..Member::default()
    });
    members
}

fn literal(value: String) -> String {
    condition::Literal::String(value).to_string()
}

fn string_literal(rng: &mut Rng) -> String {
    condition::Literal::String(string(rng)).to_string()
}

fn int_literal(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => condition::Literal::Decimal(rng.range(-400, 20_000) as f64 / 4.0).to_string(),
        1 => rng.range(1, 5).to_string(),
        _ => rng.range(-100, 6_000).to_string(),
    }
}

fn op(rng: &mut Rng) -> &'static str {
    rng.pick(&["==", "!=", "<", "<=", ">", ">="])
}

/// `a OP b`, sometimes written the other way round (`b FLIP(OP) a`).
fn comparison(rng: &mut Rng, a: String, op: &str, b: String) -> String {
    if rng.chance(25) {
        let flipped = match op {
            "<" => ">",
            "<=" => ">=",
            ">" => "<",
            ">=" => "<=",
            other => other,
        };
        format!("{b} {flipped} {a}")
    } else {
        format!("{a} {op} {b}")
    }
}

fn any_field(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng.pick(STRING_FIELDS).to_string(),
        1 => rng.pick(INT_FIELDS).to_string(),
        2 => rng.pick(TIMESTAMP_FIELDS).to_string(),
        3 => "birthday".into(),
        4 => format!("attributes.{}", rng.pick(ATTRIBUTES)),
        _ => "attributes.prefs.color".into(),
    }
}

/// An audience condition over everything SQL can do.
fn leaf(rng: &mut Rng) -> String {
    match rng.below(17) {
        0 | 1 => {
            let field = rng.pick(STRING_FIELDS).to_string();
            let value = match field.as_str() {
                "tier" if rng.chance(60) => literal(rng.pick(TIERS).to_string()),
                "lifecycle" if rng.chance(70) => literal(rng.pick(LIFECYCLES).to_string()),
                "rfm_segment" if rng.chance(70) => literal(rng.pick(RFM_SEGMENTS).to_string()),
                "id" if rng.chance(70) => literal(format!("m{:05}", rng.below(MEMBERS as u64))),
                _ => string_literal(rng),
            };
            let op = op(rng);
            comparison(rng, field, op, value)
        }
        2 | 3 => {
            let field = rng.pick(INT_FIELDS).to_string();
            let (op, value) = (op(rng), int_literal(rng));
            comparison(rng, field, op, value)
        }
        4 => match rng.below(3) {
            0 => rng.pick(BOOL_FIELDS).to_string(),
            1 => format!("{} {} {}", rng.pick(BOOL_FIELDS), rng.pick(&["==", "!="]), rng.chance(50)),
            _ => format!("{} == {}", rng.pick(BOOL_FIELDS), rng.pick(BOOL_FIELDS)),
        },
        5 => format!("{} {} null", any_field(rng), rng.pick(&["==", "!="])),
        6 | 7 => {
            let days = match rng.below(4) {
                0 => "days_since_last_order".to_string(),
                1 => "age_days".to_string(),
                _ => format!("days_since({})", rng.pick(TIMESTAMP_FIELDS)),
            };
            let n = rng.range(-6, 210);
            let value = if rng.chance(30) { format!("{n}d") } else { n.to_string() };
            let op = op(rng);
            comparison(rng, days, op, value)
        }
        8 => format!("{} {} {}", rng.pick(TIMESTAMP_FIELDS), op(rng), rng.pick(TIMESTAMP_FIELDS)),
        9 => format!("has_tag({})", literal(rng.pick(TAGS).to_string())),
        10 => {
            let (field, items): (String, Vec<String>) = match rng.below(4) {
                0 => ("tier".into(), (0..rng.range(1, 4)).map(|_| literal(rng.pick(TIERS).to_string())).collect()),
                1 => (
                    "lifecycle".into(),
                    (0..rng.range(1, 3)).map(|_| literal(rng.pick(LIFECYCLES).to_string())).collect(),
                ),
                2 => (
                    rng.pick(INT_FIELDS).to_string(),
                    (0..rng.range(1, 4)).map(|_| rng.range(1, 5).to_string()).collect(),
                ),
                _ => (
                    format!("attributes.{}", rng.pick(ATTRIBUTES)),
                    (0..rng.range(1, 4)).map(|_| json_literal(rng)).collect(),
                ),
            };
            let mut items = items;
            if rng.chance(25) {
                items.push("null".into());
            }
            let not = if rng.chance(40) { "not " } else { "" };
            format!("{field} {not}in [{}]", items.join(", "))
        }
        11 | 12 => {
            let attribute = format!("attributes.{}", rng.pick(ATTRIBUTES));
            json_comparison(rng, attribute)
        }
        13 => format!("attributes.{}", rng.pick(ATTRIBUTES)),
        14 => match rng.below(3) {
            0 => json_comparison(rng, "attributes.prefs.color".into()),
            1 => format!("attributes.nick {} {}", op(rng), rng.pick(&["tier", "first_name", "id"])),
            _ => format!("attributes.score {} {}", op(rng), rng.pick(INT_FIELDS)),
        },
        15 => format!("{} {} {}", rng.pick(INT_FIELDS), op(rng), rng.pick(INT_FIELDS)),
        _ => format!("({}) {} {}", leaf(rng), rng.pick(&["==", "!="]), rng.pick(&["true", "false", "null"])),
    }
}

/// `attribute OP literal` with a literal of any JSON type (booleans only test equality).
fn json_comparison(rng: &mut Rng, attribute: String) -> String {
    let value = json_literal(rng);
    let op = if value == "true" || value == "false" { rng.pick(&["==", "!="]) } else { op(rng) };
    comparison(rng, attribute, op, value)
}

fn json_literal(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => rng.range(-10, 10).to_string(),
        1 => condition::Literal::Decimal(rng.range(-40, 40) as f64 / 4.0).to_string(),
        2 => rng.chance(50).to_string(),
        _ => string_literal(rng),
    }
}

fn generated_condition(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 || rng.chance(30) {
        return leaf(rng);
    }
    match rng.below(5) {
        0 | 1 => format!("({}) and ({})", generated_condition(rng, depth - 1), generated_condition(rng, depth - 1)),
        2 | 3 => format!("({}) or ({})", generated_condition(rng, depth - 1), generated_condition(rng, depth - 1)),
        _ => format!("not ({})", generated_condition(rng, depth - 1)),
    }
}

/// Conditions written by hand: the DESIGN examples and the corner cases of the rules.
const WRITTEN: &[&str] = &[
    r#"lifecycle == "churned" and email_consent and points > 0"#,
    "days_since(last_order_at) > 60",
    "not (days_since(last_order_at) > 60)",
    "days_since_last_order >= 60 and days_since_last_order < 180",
    "days_since(joined_at) == 0",
    "days_since(joined_at) == -1",
    "days_since(points_expire_at) != 3",
    "age_days <= 30d",
    "days_since(last_order_at) > 9223372036854775807",
    "days_since(last_order_at) < -9223372036854775807",
    r#"tier in ["gold", "diamond"] and not has_tag("vip")"#,
    r#"tier not in ["gold", null]"#,
    r#"first_name < "a" and first_name >= "Z""#,
    r#"first_name > "z""#,
    r#"last_name == "'; DROP TABLE members; --" or has_tag("'; DROP TABLE member_tags; --")"#,
    r#"attributes.score == 5 or attributes.score == "5""#,
    "attributes.count >= 2.5",
    "attributes.vip",
    "not attributes.vip",
    "attributes.vip == null",
    "attributes.prefs.color != null",
    r#"attributes.prefs.color == "gold" or attributes.prefs.color > 1"#,
    "attributes.nick == first_name",
    "(points > 100) == null",
    "email == null or not (email != null)",
    "birthday != null and rfm_segment in [\"champions\", \"loyal\"]",
    "clv > total_spend or clv == null",
    "last_order_at >= first_order_at",
    "true",
    "false or null == null",
    r#"id >= "m05000" and id < "m05100""#,
];

/// The generated and written audiences, parsed; each must check without errors.
fn conditions() -> Vec<(String, Expr)> {
    let mut rng = Rng(SEED ^ 0xC0DE);
    WRITTEN
        .iter()
        .map(|t| t.to_string())
        .chain((0..GENERATED_CONDITIONS).map(|_| generated_condition(&mut rng, 3)))
        .map(|text| {
            let expr = condition::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let errors: Vec<_> = condition::check(&expr, &Scope { event: false, steps: None, sql: true })
                .into_iter()
                .filter(|e| e.severity == Severity::Error)
                .collect();
            assert!(errors.is_empty(), "generated an invalid audience `{text}`: {errors:?}");
            (text, expr)
        })
        .collect()
}

/// Members as their positions in the population, in order: sets that compare cheaply.
type Selected = Vec<u32>;

/// What `eval` selects, per condition.
fn evaluate(members: &[Member], conditions: &[(String, Expr)]) -> Vec<Selected> {
    let now = now();
    conditions
        .iter()
        .map(|(_, expr)| {
            (0..members.len() as u32)
                .filter(|&i| {
                    let ctx = EvalContext {
                        member: &members[i as usize],
                        event: None,
                        history: &NoHistory,
                        now,
                        default_timezone: chrono_tz::Tz::Asia__Shanghai,
                    };
                    condition::eval(expr, &ctx).is_true()
                })
                .collect()
        })
        .collect()
}

/// A member that no condition may select, to prove the fragment embeds after `?1`/`$1`.
const SENTINEL: &str = "no such member";

/// The selected ids come back as one newline-separated text (no id holds a newline), which
/// is much faster to fetch than 10,000 rows in a debug build.
async fn select_sqlite(pool: &SqlitePool, expr: &Expr) -> (String, Option<String>) {
    let filter = condition::to_sql(expr, Dialect::Sqlite, now(), 2).expect("compiles for SQLite");
    let select = format!("SELECT m.id FROM members m WHERE m.id <> ?1 AND {}", filter.sql);
    let sql = format!("SELECT group_concat(id, char(10)) FROM ({select})");
    let query = sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql.clone())).bind(SENTINEL).bind_filter(&filter);
    let ids = query.fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    (select, ids)
}

async fn select_postgres(pool: &PgPool, expr: &Expr) -> (String, Option<String>) {
    let filter = condition::to_sql(expr, Dialect::Postgres, now(), 2).expect("compiles for PostgreSQL");
    let select = format!("SELECT m.id FROM members m WHERE m.id <> $1 AND {}", filter.sql);
    let sql = format!("SELECT string_agg(id, chr(10)) FROM ({select}) AS selected");
    let query = sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql.clone())).bind(SENTINEL).bind_filter(&filter);
    let ids = query.fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    (select, ids)
}

/// Production servers often default to a linguistic collation (`en_US.UTF-8`), under which
/// `"a" < "B"`; the test server may default to `C`. Give the text columns an ICU collation,
/// when the server has one, so the test proves that ordering follows bytes regardless.
async fn use_linguistic_collation(pool: &PgPool) {
    let icu: Option<String> = sqlx::query_scalar("SELECT collname::text FROM pg_collation WHERE collname = 'en-x-icu'")
        .fetch_optional(pool)
        .await
        .expect("query pg_collation");
    if icu.is_none() {
        eprintln!("PostgreSQL has no ICU collation: ordering is tested under the database default only");
        return;
    }
    for column in STRING_FIELDS {
        sqlx::query(AssertSqlSafe(format!("ALTER TABLE members ALTER COLUMN {column} TYPE TEXT COLLATE \"en-x-icu\"")))
            .execute(pool)
            .await
            .expect("set a linguistic collation");
    }
}

/// What one engine selected for each condition: the query, and the ids one per line.
type Selections = Vec<(String, Option<String>)>;

fn assert_same(
    engine: &str,
    conditions: &[(String, Expr)],
    selections: &Selections,
    expected: &[Selected],
    members: &[Member],
) {
    let position: HashMap<&str, u32> = members.iter().enumerate().map(|(i, m)| (m.id.as_str(), i as u32)).collect();
    for (((text, _), (sql, ids)), expected) in conditions.iter().zip(selections).zip(expected) {
        let mut selected: Selected = ids
            .iter()
            .flat_map(|ids| ids.split('\n'))
            .map(|id| *position.get(id).unwrap_or_else(|| panic!("{engine} selected an unknown id {id:?}")))
            .collect();
        selected.sort_unstable();
        if &selected == expected {
            continue;
        }
        let only = |a: &Selected, b: &Selected| -> Vec<u32> {
            a.iter().filter(|i| b.binary_search(i).is_err()).copied().collect()
        };
        let show = |positions: &[u32]| {
            positions.iter().take(3).map(|&i| format!("{:?}", members[i as usize])).collect::<Vec<_>>().join("\n")
        };
        let (extra, missing) = (only(&selected, expected), only(expected, &selected));
        panic!(
            "{engine} disagrees with eval on `{text}`\nSQL: {sql}\nonly in {engine} ({}):\n{}\nonly in eval ({}):\n{}",
            extra.len(),
            show(&extra),
            missing.len(),
            show(&missing),
        );
    }
}

#[tokio::test]
async fn audiences_select_the_same_members_in_sqlite_postgres_and_memory() {
    let clock = Instant::now();
    let members = Arc::new(population());
    let conditions = Arc::new(conditions());
    assert!(members.iter().all(|m| !m.id.contains('\n')));

    // Evaluate in memory while the databases work.
    let evaluation = {
        let (members, conditions) = (Arc::clone(&members), Arc::clone(&conditions));
        tokio::task::spawn_blocking(move || {
            let expected = evaluate(&members, &conditions);
            (expected, clock.elapsed())
        })
    };

    // And run both engines at the same time too.
    let on_sqlite = async {
        let (sqlite, _dir) = support::sqlite_pool().await;
        let started = clock.elapsed();
        support::insert_members_sqlite(&sqlite, &members).await;
        let loading = clock.elapsed() - started;
        let mut selections = Vec::with_capacity(conditions.len());
        for (_, expr) in conditions.iter() {
            selections.push(select_sqlite(&sqlite, expr).await);
        }
        (selections, loading, clock.elapsed())
    };
    let on_postgres = async {
        let postgres = support::postgres_pool("condition_sql").await?;
        use_linguistic_collation(&postgres).await;
        let started = clock.elapsed();
        support::insert_members_postgres(&postgres, &members).await;
        let loading = clock.elapsed() - started;
        let mut selections = Vec::with_capacity(conditions.len());
        for (_, expr) in conditions.iter() {
            selections.push(select_postgres(&postgres, expr).await);
        }
        Some((selections, loading, clock.elapsed()))
    };
    let ((on_sqlite, sqlite_load, sqlite_done), on_postgres) = tokio::join!(on_sqlite, on_postgres);
    let mut report = format!("SQLite loaded in {sqlite_load:.1?}, done at {sqlite_done:.1?}");
    if let Some((_, postgres_load, postgres_done)) = &on_postgres {
        report += &format!(", PostgreSQL loaded in {postgres_load:.1?}, done at {postgres_done:.1?}");
    }

    let (expected, evaluated) = evaluation.await.expect("evaluation finished");
    // A test of equal sets means little if most sets are empty or everyone.
    let interesting = expected.iter().filter(|ids| !ids.is_empty() && ids.len() < members.len()).count();
    assert!(
        interesting * 3 >= expected.len() * 2,
        "only {interesting} of {} conditions select some but not all",
        expected.len()
    );

    assert_same("SQLite", &conditions, &on_sqlite, &expected, &members);
    if let Some((on_postgres, _, _)) = &on_postgres {
        assert_same("PostgreSQL", &conditions, on_postgres, &expected, &members);
    }
    eprintln!(
        "{} conditions ({interesting} select some but not all) over {} members: eval done at {evaluated:.1?}, \
         {report}, total {:.1?}",
        conditions.len(),
        members.len(),
        clock.elapsed()
    );
}
