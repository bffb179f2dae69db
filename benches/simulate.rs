//! `tidings simulate` at scale: 10,000 generated members and a year of their events through
//! every example journey (the README's target: well under a minute on 2 cores).
//!
//! ```sh
//! cargo bench --bench simulate
//! TIDINGS_BENCH_MEMBERS=2000 TIDINGS_BENCH_DAYS=90 cargo bench --bench simulate
//! TIDINGS_BENCH_KEEP=/tmp/year cargo bench --bench simulate   # keep the fixtures
//! ```
//!
//! The kept `members.jsonl` and `events.jsonl` run by hand with `tidings simulate`, e.g.
//! with `TIDINGS_LOG=sqlx::query=debug` for every statement and its time.
//!
//! The same code path as the command: `simulate::run_pinned` (one CPU, see there) imports the members, builds the
//! engine as `serve` does and jumps the virtual clock from one instant with work to the
//! next. One run, wall-clock time, printed with what the year held.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tidings::config::Config;
use tidings::project::{Project, Sources};
use tidings::simulate::{self, Scenario};

/// A small deterministic generator (xorshift), so every run simulates the same year.
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

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const ZONES: &[&str] = &["Asia/Shanghai", "Asia/Shanghai", "Asia/Shanghai", "Europe/London", "America/New_York"];
const TIERS: &[&str] = &["silver", "silver", "gold", "diamond"];

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Members as of `from` (a quarter joined within the last 30 days, the rest over three
/// years; last orders from yesterday to two years ago), and a year of events: orders,
/// tier changes, points redeemed, and new members joining.
fn generate(dir: &Path, members: u64, from: DateTime<Utc>, days: i64) -> std::io::Result<(u64, u64)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut m = std::io::BufWriter::new(std::fs::File::create(dir.join("members.jsonl"))?);
    let mut events: Vec<(DateTime<Utc>, String)> = Vec::new();
    let minutes = |rng: &mut Rng, max_days: i64| Duration::minutes(rng.below((max_days * 24 * 60) as u64) as i64);
    for i in 0..members {
        let id = format!("m{i:05}");
        let joined = from - minutes(&mut rng, 3 * 365);
        let orders = rng.below(12);
        let mut member = serde_json::json!({
            "id": id,
            "first_name": format!("Member {i}"),
            "email": format!("{id}@example.com"),
            "email_consent": rng.chance(85),
            "phone": format!("+86138{:08}", i),
            "sms_consent": rng.chance(50),
            "push_consent": rng.chance(40),
            "push_tokens": [format!("fcm-{id}")],
            "timezone": ZONES[rng.below(ZONES.len() as u64) as usize],
            "birthday": format!("19{:02}-{:02}-{:02}", 60 + rng.below(40), 1 + rng.below(12), 1 + rng.below(28)),
            "tier": TIERS[rng.below(TIERS.len() as u64) as usize],
            "joined_at": ts(joined),
            "order_count": orders,
            "total_spend": orders * (5_000 + rng.below(30_000)),
            "currency": "CNY",
        });
        if orders > 0 {
            member["first_order_at"] = ts(joined + Duration::days(1)).into();
            member["last_order_at"] = ts(from - minutes(&mut rng, 720).min(from - joined)).into();
        }
        if rng.chance(30) {
            member["points"] = (500 + rng.below(5_000)).into();
            member["points_expiring"] = (100 + rng.below(400)).into();
            member["points_expire_at"] = ts(from + minutes(&mut rng, days)).into();
        }
        writeln!(m, "{member}")?;

        // About two orders a year each, at any minute; some tier changes and redemptions.
        for n in 0..rng.below(5) {
            let at = from + minutes(&mut rng, days);
            let total = 5_000 + rng.below(40_000);
            let e = serde_json::json!({ "id": format!("o-{id}-{n}"), "member_id": id, "name": "order.placed",
                "occurred_at": ts(at), "properties": { "order_id": format!("{id}-{n}"), "total": total, "currency": "CNY" } });
            events.push((at, e.to_string()));
        }
        if rng.chance(5) {
            let at = from + minutes(&mut rng, days);
            let to = ["gold", "diamond"][rng.below(2) as usize];
            let e = serde_json::json!({ "id": format!("t-{id}"), "member_id": id, "name": "tier.changed",
                "occurred_at": ts(at), "properties": { "from": "silver", "to": to } });
            events.push((at, e.to_string()));
        }
        if rng.chance(10) {
            let at = from + minutes(&mut rng, days);
            let e = serde_json::json!({ "id": format!("r-{id}"), "member_id": id, "name": "points.redeemed",
                "occurred_at": ts(at), "properties": { "points": 100 } });
            events.push((at, e.to_string()));
        }
    }
    // New members through the year: a tenth of the base.
    for i in 0..members / 10 {
        let id = format!("n{i:05}");
        let at = from + minutes(&mut rng, days);
        let e = serde_json::json!({ "id": format!("join-{id}"), "member_id": id, "name": "member.created",
            "occurred_at": ts(at), "properties": { "email": format!("{id}@example.com"), "email_consent": true,
            "first_name": format!("New {i}"), "timezone": ZONES[rng.below(ZONES.len() as u64) as usize] } });
        events.push((at, e.to_string()));
    }
    events.sort();
    let mut e = std::io::BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
    for (_, line) in &events {
        writeln!(e, "{line}")?;
    }
    Ok((members, events.len() as u64))
}

fn main() {
    let members: u64 = std::env::var("TIDINGS_BENCH_MEMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let days: i64 = std::env::var("TIDINGS_BENCH_DAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(365);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    // `TIDINGS_BENCH_KEEP=DIR` writes the fixtures there too, for `tidings simulate` by hand.
    let keep = std::env::var_os("TIDINGS_BENCH_KEEP").map(std::path::PathBuf::from);
    let from: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let until = from + Duration::days(days);
    let (members, events) = generate(dir.path(), members, from, days).expect("write the fixtures");
    if let Some(keep) = &keep {
        std::fs::create_dir_all(keep).expect("the directory to keep the fixtures in");
        for file in ["members.jsonl", "events.jsonl"] {
            std::fs::copy(dir.path().join(file), keep.join(file)).expect("copy a fixture");
        }
    }

    let config = Config::load(&root.join("tests/fixtures/simulate/tidings.toml"), true, |_| None).unwrap();
    let sources = Sources::standard(&root.join("workflows"), &root.join("templates")).unwrap();
    let project = Project::load(&sources, config.timezone());
    let scenario = Scenario {
        members: dir.path().join("members.jsonl"),
        events: Some(dir.path().join("events.jsonl")),
        products: None,
        from,
        until,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let timeline = runtime.block_on(simulate::run_pinned(config, project, scenario)).expect("the simulation runs");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "simulate: {members} members, {events} events, {days} days: {seconds:.1} s ({} clock stops, {} timeline lines)",
        timeline.wakes,
        timeline.lines.len()
    );
    print!("{}", timeline.summary());
    for line in timeline.lines.iter().filter(|l| l.reason.as_deref().is_some_and(|r| r.starts_with("failed"))).take(5) {
        println!(
            "  e.g. {} {}/{}: {}",
            line.member,
            line.journey,
            line.step.as_deref().unwrap_or("-"),
            line.reason.as_deref().unwrap_or("")
        );
    }
}
