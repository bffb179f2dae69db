//! Member state at scale: importing 1,000,000 generated members from CSV into SQLite (the
//! README's target: at least 50,000 members/s on 2 cores) and recomputing lifecycle, CLV
//! and RFM over all of them (target: at most 10 s).
//!
//! ```sh
//! cargo bench --bench member_state                          # SQLite, 1,000,000 members
//! TIDINGS_BENCH_MEMBERS=100000 cargo bench --bench member_state
//! TIDINGS_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench member_state
//! ```
//!
//! The same code paths as `tidings import members FILE`: the streaming reader, batches of
//! 5,000 rows per transaction, the store's multi-row upserts. One run, wall-clock time.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tidings::import::{ImportKind, Options, import_file};
use tidings::state::Settings;
use tidings::store::{Store, Workload};

/// A small deterministic generator (xorshift), so every run imports the same members.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIRST: &[&str] = &["Mei", "美玲", "Ann", "Robert", "Zoë", "民준", "José", "Li", "Ola", "Sam"];
const LAST: &[&str] = &["Wang", "王", "Lee", "O'Brien", "Núñez", "김", "Silva", "Chen", "Nordmann", "Smith"];
const ZONES: &[&str] = &["Asia/Shanghai", "Asia/Tokyo", "Europe/Berlin", "America/New_York", "Asia/Seoul"];
const TIERS: &[&str] = &["silver", "gold", "diamond"];

/// Writes `n` members as CSV, with every §1 field a shop typically exports.
fn generate(path: &Path, n: u64, now: DateTime<Utc>) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        out,
        "id,email,phone,first_name,last_name,locale,timezone,birthday,tier,points,total_spend,currency,\
         order_count,first_order_at,last_order_at,joined_at,email_consent,sms_consent,tags,attributes.channel"
    )?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ts = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for i in 0..n {
        let joined = now - Duration::minutes(rng.below(3 * 365 * 24 * 60) as i64);
        let orders = rng.below(20);
        let (spend, first, last) = if orders == 0 {
            (0, String::new(), String::new())
        } else {
            let age = (now - joined).num_minutes().max(1) as u64;
            let first = joined + Duration::minutes(rng.below(age) as i64);
            let last = first + Duration::minutes(rng.below((now - first).num_minutes().max(1) as u64) as i64);
            (orders * (1_000 + rng.below(50_000)), ts(first), ts(last))
        };
        let birthday = if rng.below(4) == 0 {
            format!("--{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))
        } else {
            format!("{}-{:02}-{:02}", 1950 + rng.below(55), 1 + rng.below(12), 1 + rng.below(28))
        };
        let tags = match rng.below(10) {
            0 => "vip|newsletter",
            1 | 2 => "newsletter",
            _ => "",
        };
        writeln!(
            out,
            "c{i:07},member{i}@example.com,+86138{:08},{},{},zh-CN,{},{},{},{},{},CNY,{},{},{},{},{},{},{},{}",
            rng.below(100_000_000),
            FIRST[rng.below(FIRST.len() as u64) as usize],
            LAST[rng.below(LAST.len() as u64) as usize],
            ZONES[rng.below(ZONES.len() as u64) as usize],
            birthday,
            TIERS[rng.below(TIERS.len() as u64) as usize],
            rng.below(10_000),
            spend,
            orders,
            first,
            last,
            ts(joined),
            rng.below(10) < 8,
            rng.below(10) < 5,
            tags,
            if rng.below(2) == 0 { "app" } else { "web" },
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Imports with `bulk` (what `tidings import` opens) and recomputes with `service` (what
/// the engine's daily refresh runs on).
async fn run(bulk: &Store, service: &Store, label: &str, csv: &Path, n: u64, now: DateTime<Utc>) {
    let settings = Settings::default();
    let mut options = Options::new(now, settings);
    options.recompute = false;
    // `TIDINGS_BENCH_BULK=1` defers the member indexes whatever the file's size, `0` never;
    // unset, the import decides as `tidings import` does.
    options.bulk = std::env::var("TIDINGS_BENCH_BULK").ok().map(|v| v == "1");
    let started = Instant::now();
    let summary = import_file(bulk, ImportKind::Members, csv, &options).await.expect("import");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(summary.inserted, n, "{:?}", summary.rejected.first());
    println!("{label}: imported {n} members in {seconds:.2} s: {:.0} members/s", n as f64 / seconds);

    let started = Instant::now();
    let first = service.recompute_derived(now, &settings).await.expect("recompute");
    println!(
        "{label}: recomputed lifecycle, CLV and RFM for {n} members in {:.2} s ({} with orders scored; {} lifecycle/CLV and {} RFM rows written)",
        started.elapsed().as_secs_f64(),
        first.rfm_scored,
        first.lifecycle_changed,
        first.rfm_changed
    );
    let started = Instant::now();
    let next_day = service.recompute_derived(now + Duration::days(1), &settings).await.expect("recompute");
    println!(
        "{label}: the next day's recompute took {:.2} s ({} lifecycle/CLV and {} RFM rows changed)",
        started.elapsed().as_secs_f64(),
        next_day.lifecycle_changed,
        next_day.rfm_changed
    );

    let started = Instant::now();
    let again = import_file(bulk, ImportKind::Members, csv, &options).await.expect("re-import");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{label}: re-imported the same file (all {} updates) in {seconds:.2} s: {:.0} members/s",
        again.updated,
        n as f64 / seconds
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: u64 = std::env::var("TIDINGS_BENCH_MEMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let csv = dir.path().join("members.csv");
    let started = Instant::now();
    let bytes = generate(&csv, n, now).expect("write the CSV");
    println!("generated {n} members ({:.0} MB of CSV) in {:.2} s", bytes as f64 / 1e6, started.elapsed().as_secs_f64());

    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let bulk = Store::open_for(&url, Workload::Bulk).await.expect("open SQLite");
    let service = Store::open_for(&url, Workload::Service).await.expect("open SQLite");
    run(&bulk, &service, "sqlite", &csv, n, now).await;
    let size = std::fs::metadata(dir.path().join("bench.db")).map(|m| m.len()).unwrap_or(0);
    println!("sqlite: database file {:.0} MB", size as f64 / 1e6);

    if let Ok(url) = std::env::var("TIDINGS_BENCH_POSTGRES_URL") {
        let schema = format!("bench_{}", std::process::id());
        let admin = sqlx::PgPool::connect(&url).await.expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let store = Store::open(&format!("{url}{separator}options=-csearch_path%3D{schema}")).await.expect("open");
        run(&store, &store, "postgres", &csv, n, now).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
    }
}
