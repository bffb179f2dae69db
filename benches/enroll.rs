//! Schedule enrollment of a whole base (issue 21, target 5: a 1,000,000-member audience
//! enrolled in ≤ 3 s from the firing to the last run written), on SQLite and PostgreSQL.
//!
//! For each engine: `n` members (all consenting to email), the day's refresh of derived
//! state (timed apart, as `benches/engine.rs` does), then two schedule firings through
//! `Engine::enroll`, the code `serve`'s trigger phase runs:
//!
//! 1. **never**: `audience: email_consent`, `entry: { reentry: never }` — every member, and
//!    the reentry rule's second check per member;
//! 2. **after**: the same audience an hour later in a second journey, `reentry: after 90d`.
//!
//! Before them, in the same run, the **ceiling**: one bare `INSERT INTO runs … SELECT … FROM
//! members` of the whole base into the same table (same indexes), with no audience, no
//! reentry or exactly-once check, no timeline lines and one transaction: what the database
//! itself needs to write that many runs. It is written into the same empty table the first
//! firing then writes to, and removed (untimed) before it.
//!
//! ```sh
//! cargo bench --bench enroll                                  # SQLite, 1,000,000 members
//! TIDINGS_BENCH_MEMBERS=100000 cargo bench --bench enroll
//! TIDINGS_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench enroll
//! ```
//!
//! With `TIDINGS_BENCH_POSTGRES_URL` PostgreSQL runs too, in a schema of its own (dropped at
//! the end). One run, wall-clock time: run it twice and read the spread.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tidings::channels::Channels;
use tidings::config::Config;
use tidings::engine::{self, Engine, Registry};
use tidings::links::LinkSigner;
use tidings::project::{Project, Sources};
use tidings::store::Store;

/// Journey `id` firing daily at `hour`:00 in Shanghai to every member who consents.
fn journey(id: &str, hour: u32, reentry: &str) -> String {
    format!(
        r#"id: {id}
name: Everyone ({id})
trigger: {{ schedule: "0 {hour} * * *", timezone: Asia/Shanghai }}
audience: email_consent
entry: {{ reentry: {reentry} }}
steps:
  - id: offer
    send: {{ channel: email, template: everyone/offer }}
  - id: done
    exit: true
"#
    )
}

const TEMPLATE: &str = "---\nsubject: \"Hello\"\n---\n<p>Hi</p>\n";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `n` members, every one consenting to email, with the lifecycle the rules give them on
/// 1 June 2026 (so the day's refresh changes nothing).
async fn seed_members(store: &Store, n: u64) {
    match store {
        Store::Sqlite(pool) => {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
                 INSERT INTO members (id, email, first_name, timezone, tier, email_consent, order_count,
                                      total_spend, last_order_at, joined_at, lifecycle)
                 SELECT printf('m%07d', i), printf('m%d@example.com', i), 'Member', 'Asia/Shanghai', 'gold', 1,
                        2, 10000 + i % 50000, '2026-05-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z', 'active'
                 FROM n",
            )
            .bind(n as i64)
            .execute(pool)
            .await
            .unwrap();
        }
        Store::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO members (id, email, first_name, timezone, tier, email_consent, order_count,
                                      total_spend, last_order_at, joined_at, lifecycle)
                 SELECT 'm' || lpad(i::text, 7, '0'), 'm' || i || '@example.com', 'Member', 'Asia/Shanghai', 'gold',
                        TRUE, 2, 10000 + i % 50000, '2026-05-01T00:00:00Z', '2024-01-01T00:00:00Z', 'active'
                 FROM generate_series(0, $1 - 1) AS i",
            )
            .bind(n as i64)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE members").execute(pool).await.unwrap();
        }
        Store::Memory(_) => unreachable!(),
    }
}

/// The ceiling: every member a run in one bare `INSERT … SELECT`, returning the count.
async fn ceiling(store: &Store) -> u64 {
    let sql = "INSERT INTO runs (member_id, journey_id, journey_version, step, status, entered_at, due_at,
                                 trigger_key, trigger_event_id, visits)
               SELECT id, 'ceiling', 'v', 'offer', 'active', TS, TS, 'ceiling', NULL, 0 FROM members";
    match store {
        Store::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(sql.replace("TS", "'2026-06-01T02:00:05.000000Z'")))
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        Store::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql.replace("TS", "'2026-06-01T02:00:05Z'")))
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        Store::Memory(_) => unreachable!(),
    }
}

/// Removes the ceiling's runs (`TRUNCATE` on PostgreSQL: no dead rows left behind).
async fn empty_runs(store: &Store) {
    match store {
        Store::Sqlite(pool) => {
            sqlx::query("DELETE FROM runs").execute(pool).await.unwrap();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await.unwrap();
        }
        Store::Postgres(pool) => {
            sqlx::query("TRUNCATE runs CASCADE").execute(pool).await.unwrap();
        }
        Store::Memory(_) => unreachable!(),
    }
}

async fn engine(dir: &Path, store: Store, now: DateTime<Utc>) -> Engine {
    let config = Config::load(&dir.join("tidings.toml"), true, |_| None).unwrap();
    let sources = Sources::standard(&config.workflows_dir, &config.templates_dir).unwrap();
    let project = Project::load(&sources, config.timezone());
    assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
    let registry = Registry::load(project, &store, config.timezone(), now).await.unwrap();
    let links = LinkSigner::new(&config.public_url, b"bench-link-secret-0123456789").unwrap();
    let policies = engine::policies(&config).unwrap();
    let options = engine::Options::from_config(&config, links);
    let channels = Channels::outbox(dir.join("outbox"));
    Engine::new(store, registry, policies, config.state_settings(), channels, options)
}

fn per_second(n: u64, elapsed: Duration) -> String {
    format!("{:.0}/s", n as f64 / elapsed.as_secs_f64())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn run(label: &str, dir: &Path, store: Store, members: u64) {
    let started = Instant::now();
    seed_members(&store, members).await;
    println!("{label:<8} seed     {members} members in {:.1?} (load {})", started.elapsed(), load());

    // 10:00 Shanghai on 1 June 2026 is 02:00Z; start just after it.
    let now: DateTime<Utc> = "2026-06-01T02:00:05Z".parse().unwrap();
    let engine = engine(dir, store.clone(), now).await;
    let started = Instant::now();
    assert_eq!(engine.enroll(now - chrono::Duration::minutes(30)).await.unwrap(), 0);
    println!("{label:<8} refresh  derived state of {members} members in {:.2?}", started.elapsed());

    // The ceiling first, into the same empty table the first firing writes to; then the
    // table is emptied again (untimed).
    let started = Instant::now();
    let written = ceiling(&store).await;
    let took = started.elapsed();
    println!(
        "{label:<8} ceiling  {written} runs in one bare INSERT … SELECT in {took:.2?} ({}; load {})",
        per_second(written, took),
        load()
    );
    empty_runs(&store).await;

    let started = Instant::now();
    let enrolled = engine.enroll(now).await.unwrap();
    let took = started.elapsed();
    assert_eq!(enrolled, members, "the whole base is the audience");
    println!(
        "{label:<8} never    {enrolled} of {members} enrolled (reentry: never) in {took:.2?} ({}; load {})",
        per_second(enrolled, took),
        load()
    );

    let later = now + chrono::Duration::hours(1);
    let started = Instant::now();
    let enrolled = engine.enroll(later).await.unwrap();
    let took = started.elapsed();
    assert_eq!(enrolled, members, "the whole base is the audience");
    println!(
        "{label:<8} after    {enrolled} of {members} enrolled (reentry: after 90d) in {took:.2?} ({}; load {})",
        per_second(enrolled, took),
        load()
    );
}

fn project(dir: &Path, database_url: &str) {
    write(&dir.join("tidings.toml"), &format!("database_url = \"{database_url}\"\n"));
    write(&dir.join("workflows/everyone_never.yaml"), &journey("everyone_never", 10, "never"));
    write(&dir.join("workflows/everyone_after.yaml"), &journey("everyone_after", 11, "after 90d"));
    write(&dir.join("templates/everyone/offer.email.hbs"), TEMPLATE);
}

#[tokio::main]
async fn main() {
    let members: u64 = std::env::var("TIDINGS_BENCH_MEMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    project(dir.path(), &url);
    let store = Store::open(&url).await.unwrap();
    run("sqlite", dir.path(), store, members).await;

    if let Ok(base) = std::env::var("TIDINGS_BENCH_POSTGRES_URL") {
        let schema = format!("bench_enroll_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&base).await.expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-csearch_path%3D{schema}");
        let dir = tempfile::tempdir().unwrap();
        project(dir.path(), &url);
        let store = Store::open(&url).await.expect("open");
        run("postgres", dir.path(), store.clone(), members).await;
        if let Store::Postgres(pool) = &store {
            pool.close().await;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
    }
}
