//! The engine at scale, on SQLite (the embedded default), sending email into `smtp-sink`:
//!
//! SQLite (a file) by default; `TIDINGS_BENCH_POSTGRES_URL=postgres://…/db` runs it on a fresh
//! PostgreSQL database `tidings_bench_engine` on that server instead.
//!
//! 1. **enroll**: after the day's refresh of derived state (timed apart), a schedule
//!    trigger whose audience (`lifecycle == "dormant" and email_consent`) matches 100,000 of
//!    1,000,000 members fires (target ≤ 3 s);
//! 2. **advance**: the enrolled runs are decided (target ≥ 20,000 runs/s);
//! 3. **send**: their deliveries are rendered (signed links, open pixel) and sent over SMTP
//!    into Postfix's `smtp-sink` (`TIDINGS_BENCH_CHANNEL=outbox`: written to `outbox/`);
//!    the **ceiling** in the same run: `smtp-source` sends as many ~2 KB messages over as
//!    many sessions into the same sink;
//!    then **ticked**: the same offer from a second journey an hour later, enrolled and then
//!    decided and sent in one `Engine::tick`, as `serve` runs it;
//! 4. **rss**: 1,000,000 runs waiting (plus the ones above) and a real `tidings worker`
//!    process on the database (the runs wait until 2099, so it idles as a real worker does
//!    between firings): its peak resident memory (`VmHWM`) after 15 s of ticks, and how
//!    much of it is anonymous memory vs mapped files (target ≤ 200 MiB);
//! 5. **firing rss**: then `tidings serve` with a minutely schedule for every member added:
//!    its peak memory while it enrolls the whole base and advances the runs
//!    (`TIDINGS_BENCH_FIRING_SECONDS`, default 60).
//!
//! ```sh
//! cargo bench --bench engine                              # 1,000,000 members
//! TIDINGS_BENCH_MEMBERS=100000 cargo bench --bench engine
//! TIDINGS_BENCH_CHANNEL=outbox cargo bench --bench engine  # no smtp-sink
//! TIDINGS_BENCH_SMTP_CONNECTIONS=32 cargo bench --bench engine  # default 8, as `serve`
//! ```
//!
//! `smtp-sink` comes from `../shared/tools/get-smtp-sink` (or `SMTP_SINK_BIN`).
//!
//! Members are generated with one set-based `INSERT … SELECT` (what they are matters, not how
//! they got there: `benches/member_state.rs` measures the importer). One run, wall-clock time.

#[path = "support/database.rs"]
mod database;
#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tidings::channels::Channels;
use tidings::config::Config;
use tidings::engine::{self, Engine, Registry};
use tidings::links::LinkSigner;
use tidings::project::{Project, Sources};
use tidings::store::Store;

/// The offer journey `id`, firing daily at `hour`:00 in Shanghai to the dormant who consent.
fn journey(id: &str, hour: u32) -> String {
    format!(
        r#"id: {id}
name: Come back ({id})
trigger: {{ schedule: "0 {hour} * * *", timezone: Asia/Shanghai }}
audience: lifecycle == "dormant" and email_consent
entry: {{ reentry: after 90d }}
steps:
  - id: offer
    send: {{ channel: email, template: comeback/offer }}
  - id: done
    exit: true
"#
    )
}

const TEMPLATE: &str = "---\nsubject: \"{{default member.first_name \\\"Hello\\\"}}, we saved you a seat\"\n---\n\
<p>Hi {{default member.first_name \"there\"}},</p><p>It has been a while. Here is 15% off: \
<a href=\"{{link \"https://shop.example.com/back\"}}\">come back</a>.</p>\
<p><a href=\"{{links.unsubscribe}}\">Unsubscribe</a></p>\n";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `n` members as of 1 June 2026, a fifth each dormant (last order 120 days before), churned,
/// new, and two fifths active, stored with the lifecycle the rules give them then; nine in ten
/// consent to email (so the dormant who consent are one in ten: `i % 10 == 5`).
async fn seed_members(store: &Store, n: u64) {
    // The same rows on both engines: SQLite counts with a recursive CTE, PostgreSQL with
    // generate_series.
    const COLUMNS: &str = "INSERT INTO members (id, email, first_name, timezone, tier, email_consent, \
        order_count, total_spend, last_order_at, joined_at, lifecycle) ";
    const VALUES: &str = "'Member', 'Asia/Shanghai',
                CASE i % 3 WHEN 0 THEN 'silver' WHEN 1 THEN 'gold' ELSE 'diamond' END,
                i % 10 <> 0, CASE i % 5 WHEN 2 THEN 1 ELSE 1 + i % 7 END, 10000 + i % 50000, {last_order}, {joined},
                CASE i % 5 WHEN 0 THEN 'dormant' WHEN 1 THEN 'churned' WHEN 2 THEN 'new' ELSE 'active' END";
    let last_order = "CASE i % 5 WHEN 0 THEN '2026-02-01T00:00:00.000000Z' WHEN 1 THEN '2025-10-01T00:00:00.000000Z'
                           WHEN 2 THEN '2026-05-21T00:00:00.000000Z' ELSE '2026-05-01T00:00:00.000000Z' END";
    let joined = "CASE i % 5 WHEN 2 THEN '2026-05-20T00:00:00.000000Z' ELSE '2024-01-01T00:00:00.000000Z' END";
    match store {
        Store::Sqlite(pool) => {
            let values = VALUES.replace("{last_order}", last_order).replace("{joined}", joined);
            let sql = format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {n}) {COLUMNS}
                 SELECT printf('m%07d', i), printf('m%d@example.com', i), {values} FROM n"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
        }
        Store::Postgres(pool) => {
            let values = VALUES
                .replace("{last_order}", &format!("({last_order})::timestamptz"))
                .replace("{joined}", &format!("({joined})::timestamptz"));
            let sql = format!(
                "{COLUMNS} SELECT 'm' || lpad(i::text, 7, '0'), 'm' || i || '@example.com', {values}
                 FROM generate_series(0, {n} - 1) AS i"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
            sqlx::query("ANALYZE members").execute(pool).await.unwrap();
        }
        Store::Memory(_) => unreachable!("the bench runs on SQLite or PostgreSQL"),
    }
}

/// One run per member waiting 30 days in another journey (the memory a waiting member costs).
async fn seed_waiting_runs(store: &Store, version: &str) {
    let (entered, due) = ("'2026-06-01T00:00:00.000000Z'", "'2099-01-01T00:00:00.000000Z'");
    let sql = |cast: &str| {
        format!(
            "INSERT INTO runs (member_id, journey_id, journey_version, step, status, entered_at, due_at, trigger_key)
             SELECT id, 'comeback', '{version}', 'offer', 'waiting', {entered}{cast}, {due}{cast}, 'bench-waiting'
             FROM members"
        )
    };
    match store {
        Store::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(sql(""))).execute(pool).await.map(drop),
        Store::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql("::timestamptz"))).execute(pool).await.map(drop),
        Store::Memory(_) => unreachable!(),
    }
    .unwrap();
}

async fn count_by_status(store: &Store) -> Vec<(String, i64)> {
    let sql = "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status";
    match store {
        Store::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Store::Memory(_) => unreachable!(),
    }
}

async fn journey_version(store: &Store) -> String {
    let sql = "SELECT version FROM journey_versions WHERE journey_id = 'comeback' LIMIT 1";
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Store::Memory(_) => unreachable!(),
    }
}

/// `smtp_url`: send email over SMTP there; none: to the outbox folder.
async fn engine(dir: &Path, store: Store, now: DateTime<Utc>, smtp_url: Option<&str>) -> Engine {
    // `TIDINGS_ENGINE_*` (batch, send concurrency) tune the engine as they tune `serve`.
    let tuning = |name: &str| name.starts_with("TIDINGS_ENGINE_").then(|| std::env::var(name).ok()).flatten();
    let config = Config::load(&dir.join("tidings.toml"), true, tuning).unwrap();
    let sources = Sources::standard(&config.workflows_dir, &config.templates_dir).unwrap();
    let project = Project::load(&sources, config.timezone());
    assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
    let registry = Registry::load(project, &store, config.timezone(), now).await.unwrap();
    let links = LinkSigner::new(&config.public_url, b"bench-link-secret-0123456789").unwrap();
    let policies = engine::policies(&config).unwrap();
    let options = engine::Options::from_config(&config, links);
    let channels = match smtp_url {
        Some(url) => {
            Channels::from_config(&config, |name| (name == "TIDINGS_SMTP_URL").then(|| url.to_string())).unwrap()
        }
        None => Channels::outbox(dir.join("outbox")),
    };
    Engine::new(store, registry, policies, config.state_settings(), channels, options)
}

fn per_second(n: usize, elapsed: Duration) -> String {
    format!("{:.0}/s", n as f64 / elapsed.as_secs_f64())
}

/// A memory figure of process `pid` from `/proc/{pid}/status` (`VmHWM`, `RssAnon`, …), in MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

/// `used` spread over `n` items, in microseconds each.
fn micros_each(used: Duration, n: usize) -> f64 {
    used.as_secs_f64() * 1e6 / n.max(1) as f64
}

#[tokio::main]
async fn main() {
    // On a runtime worker, as `serve` runs its engine (in a spawned task): on the thread
    // that blocks on `main` every task the engine spawns would go through the runtime's
    // shared queue and wake a worker, a shape `serve` never has.
    tokio::spawn(bench()).await.unwrap();
}

async fn bench() {
    let members: u64 = std::env::var("TIDINGS_BENCH_MEMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let database_url = database::database(dir.path(), "tidings_bench_engine").await;
    let connections: usize =
        std::env::var("TIDINGS_BENCH_SMTP_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    write(
        &dir.path().join("tidings.toml"),
        &format!(
            "database_url = \"{database_url}\"\n[engine]\ncatch_up = \"1h\"\n[channels.email]\nconnections = {connections}\n"
        ),
    );
    write(&dir.path().join("workflows/comeback.yaml"), &journey("comeback", 10));
    // The same offer an hour later, for the end-to-end run through `Engine::tick`.
    write(&dir.path().join("workflows/comeback_tick.yaml"), &journey("comeback_tick", 11));
    write(&dir.path().join("templates/comeback/offer.email.hbs"), TEMPLATE);
    let store = Store::open(&database_url).await.unwrap();
    println!("database   {}", if database_url.starts_with("sqlite") { "SQLite (a file)" } else { "PostgreSQL" });

    let started = Instant::now();
    seed_members(&store, members).await;
    println!("seed       {members} members in {:.1?}", started.elapsed());

    // 10:00 Shanghai on 1 June 2026 is 02:00Z; start just after it.
    let now: DateTime<Utc> = "2026-06-01T02:00:05Z".parse().unwrap();
    let outbox = std::env::var("TIDINGS_BENCH_CHANNEL").is_ok_and(|c| c == "outbox");
    let (sink, smtp_url) = if outbox {
        (None, None)
    } else {
        let (tools, port) = (smtp_sink::tools(), smtp_sink::free_port());
        (Some((smtp_sink::start(&tools, port), tools, port)), Some(format!("smtp://127.0.0.1:{port}")))
    };
    let engine = engine(dir.path(), store.clone(), now, smtp_url.as_deref()).await;

    // The day's first trigger phase, before the firing, refreshes lifecycle, CLV and RFM
    // over the whole base (once per UTC day): timed on its own, so `enroll` is the firing.
    let started = Instant::now();
    let before = engine.enroll(now - chrono::Duration::minutes(30)).await.unwrap();
    assert_eq!(before, 0, "nothing fires before 10:00 Shanghai");
    println!("refresh    lifecycle, CLV and RFM of {members} members (once a day) in {:.2?}", started.elapsed());

    // Each phase's CPU in this process, per member, run or email it handled.
    let cpu_each = |before: Duration, n: usize| {
        format!("{:.0} µs of CPU each", micros_each(smtp_sink::process_cpu("self").saturating_sub(before), n))
    };
    let (started, cpu) = (Instant::now(), smtp_sink::process_cpu("self"));
    let enrolled = engine.enroll(now).await.unwrap();
    let enroll = started.elapsed();
    println!(
        "enroll     {enrolled} of {members} members in {enroll:.2?} ({}; {})",
        per_second(enrolled as usize, enroll),
        cpu_each(cpu, enrolled as usize)
    );

    let (started, cpu) = (Instant::now(), smtp_sink::process_cpu("self"));
    let advanced = engine.advance(now).await.unwrap();
    let advance = started.elapsed();
    println!(
        "advance    {advanced} runs in {advance:.2?} ({}; {})",
        per_second(advanced, advance),
        cpu_each(cpu, advanced)
    );

    let (started, cpu) = (Instant::now(), smtp_sink::process_cpu("self"));
    let sink_cpu = sink.as_ref().map(|(sink, _, _)| sink.cpu());
    let sent = engine.send(now).await.unwrap();
    let send = started.elapsed();
    let to = if outbox { "written to the outbox" } else { "sent into smtp-sink" };
    let sink_each = sink.as_ref().zip(sink_cpu).map_or(String::new(), |((sink, _, _), before)| {
        format!(", smtp-sink {:.0} µs", micros_each(sink.cpu() - before, sent))
    });
    println!(
        "send       {sent} emails rendered and {to} in {send:.2?} ({}; {}{sink_each})",
        per_second(sent, send),
        cpu_each(cpu, sent)
    );
    println!("deliveries {:?}", count_by_status(&store).await);
    let end_to_end = enroll + advance + send;
    println!("end-to-end {sent} deliveries from the firing in {end_to_end:.2?} ({})", per_second(sent, end_to_end));
    // The ceiling, in the same run: Postfix's own client into the same sink, as many
    // messages over as many sessions, ~2 KB each (our offer email is about that size).
    if let Some((_, tools, port)) = &sink {
        let cpu = smtp_sink::ended_children_cpu();
        let ceiling = smtp_sink::smtp_source(tools, *port, sent.max(1), connections, 2_048);
        let source_each = micros_each(smtp_sink::ended_children_cpu() - cpu, sent);
        let ours = sent as f64 / end_to_end.as_secs_f64();
        println!(
            "ceiling    smtp-source, {connections} sessions, 2 KB: {ceiling:.0}/s ({source_each:.0} µs of CPU a \
             message); end to end is {:.2}× that",
            ours / ceiling
        );
    }

    // The same again an hour later as `serve` runs it: the firing, then one tick (take the
    // events, fire the triggers, decide the due runs, send the due deliveries).
    let later = now + chrono::Duration::hours(1);
    let cpu_before = (smtp_sink::process_cpu("self"), sink.as_ref().map(|(sink, _, _)| sink.cpu()));
    let switches_before = smtp_sink::context_switches();
    // On PostgreSQL the server's CPU is part of the cost (a local server, same cores).
    let postgres = matches!(store, Store::Postgres(_));
    let server_before = smtp_sink::named_processes_cpu("postgres");
    let started = Instant::now();
    let enrolled = engine.enroll(later).await.unwrap();
    let enroll = started.elapsed();
    let tick = engine.tick(later).await.unwrap();
    let end_to_end = started.elapsed();
    assert_eq!((tick.advanced, tick.sent), (enrolled as usize, enrolled as usize), "one tick decides and sends all");
    println!(
        "ticked     {} deliveries from the firing in {end_to_end:.2?} ({}): enroll {enroll:.2?}, then one tick",
        tick.sent,
        per_second(tick.sent, end_to_end)
    );
    // What the tick cost in CPU, here (engine, SQLite, rendering) and in smtp-sink: on this
    // machine's cores, the shortest the tick could take if nothing ever waited.
    let ours = smtp_sink::process_cpu("self").saturating_sub(cpu_before.0);
    let theirs = sink.as_ref().zip(cpu_before.1).map_or(Duration::ZERO, |((sink, _, _), before)| sink.cpu() - before);
    let server = if postgres {
        smtp_sink::named_processes_cpu("postgres").saturating_sub(server_before)
    } else {
        Duration::ZERO
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let floor = (ours + theirs + server) / cores as u32;
    let server_part = if postgres { format!(", {server:.2?} in the PostgreSQL server") } else { String::new() };
    println!(
        "cpu        the tick used {ours:.2?} of CPU here{server_part} and {theirs:.2?} in smtp-sink: on {cores} cores \
         at least {floor:.2?} ({} at most); it took {end_to_end:.2?}, the cores {:.0} % busy",
        per_second(tick.sent, floor),
        100.0 * floor.as_secs_f64() / end_to_end.as_secs_f64()
    );
    let switches = smtp_sink::context_switches();
    let (waits, preempted) = (switches.0 - switches_before.0, switches.1 - switches_before.1);
    let per = |n: u64| n as f64 / tick.sent.max(1) as f64;
    println!(
        "switches   this process's threads gave up a core {waits} times waiting and were preempted {preempted} \
         times: {:.1} and {:.1} a message",
        per(waits),
        per(preempted)
    );
    if let Some((_, tools, port)) = &sink {
        let ceiling = smtp_sink::smtp_source(tools, *port, tick.sent.max(1), connections, 2_048);
        let ours = tick.sent as f64 / end_to_end.as_secs_f64();
        println!(
            "ceiling    smtp-source, {connections} sessions, 2 KB: {ceiling:.0}/s; the tick end to end is {:.2}× that",
            ours / ceiling
        );
    }
    drop(engine);

    let version = journey_version(&store).await;
    let started = Instant::now();
    seed_waiting_runs(&store, &version).await;
    println!("seed       {members} waiting runs in {:.1?}", started.elapsed());
    match &store {
        Store::Sqlite(pool) => pool.close().await,
        Store::Postgres(pool) => pool.close().await,
        Store::Memory(_) => {}
    }

    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("worker")
        .current_dir(dir.path())
        .env("TIDINGS_CONFIG", dir.path().join("tidings.toml"))
        .env("TIDINGS_LINK_SECRET", "bench-link-secret-0123456789")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start `tidings worker` (cargo bench builds it)");
    std::thread::sleep(Duration::from_secs(15));
    let (peak, anon, file) =
        (memory_mib(worker.id(), "VmHWM:"), memory_mib(worker.id(), "RssAnon:"), memory_mib(worker.id(), "RssFile:"));
    // SIGTERM, so the worker gives back its leases (the scheduler's among them) and `serve`
    // below fires at once instead of waiting for a dead holder's lease to run out.
    let stopped = std::process::Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    worker.wait().unwrap();
    println!(
        "rss        `tidings worker` over {members} members and {members}+ waiting runs: peak {peak:.0} MiB \
         (now {anon:.0} MiB anonymous, {file:.0} MiB mapped files: the binary and SQLite's mmap)"
    );

    // The whole base fires while `serve` runs: a minutely schedule for every member, which
    // its first tick fires (the latest missed firing), enrolling all of them into a 30-day
    // wait, on top of the runs already waiting.
    write(&dir.path().join("workflows/everyone.yaml"), EVERYONE);
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("serve")
        .current_dir(dir.path())
        .env("TIDINGS_CONFIG", dir.path().join("tidings.toml"))
        .env("TIDINGS_LINK_SECRET", "bench-link-secret-0123456789")
        .env("TIDINGS_LISTEN", format!("127.0.0.1:{}", smtp_sink::free_port()))
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start `tidings serve` (cargo bench builds it)");
    let started = Instant::now();
    let waited = Duration::from_secs(
        std::env::var("TIDINGS_BENCH_FIRING_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(45),
    );
    std::thread::sleep(waited);
    let (peak, anon) = (memory_mib(serve.id(), "VmHWM:"), memory_mib(serve.id(), "RssAnon:"));
    serve.kill().unwrap();
    serve.wait().unwrap();
    let store = Store::open(&database_url).await.unwrap();
    let (enrolled, waiting) = runs_of(&store, "everyone").await;
    println!(
        "rss        `tidings serve` during a firing of the whole base ({members} members, {members}+ runs \
         waiting): {enrolled} enrolled, {waiting} of them advanced to their wait in {:.0?}; peak {peak:.0} MiB \
         (at the end {anon:.0} MiB anonymous)",
        started.elapsed()
    );
}

const EVERYONE: &str = "id: everyone
name: Everyone, every minute
trigger: { schedule: \"* * * * *\", timezone: Asia/Shanghai }
audience: points >= 0
entry: { reentry: never }
steps:
  - id: later
    wait: 30d
  - id: done
    exit: true
";

/// How many runs a journey has, and how many of them wait.
async fn runs_of(store: &Store, journey: &str) -> (i64, i64) {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'waiting' THEN 1 ELSE 0 END), 0) FROM runs WHERE journey_id = '{journey}'"
    );
    match store {
        Store::Sqlite(pool) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap(),
        Store::Memory(_) => unreachable!(),
    }
}
