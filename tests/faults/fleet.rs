//! Faults of the fleet: workers killed (F1), the database restarted under them (F2), a
//! clock two minutes ahead (F9), SIGTERM under load on `serve` (F10); and the throughput
//! of 1, 2 and 3 workers (README, "Scaling out").

use std::time::{Duration, Instant};

use crate::harness::{Fleet, HELLO, SEND_CONCURRENCY, SIGNUP, sent_deliveries, terminate};
use crate::support::SmtpServer;
use crate::{enabled, secs};

/// Waits until the SMTP server has received `n` mails.
async fn mails_reach(fleet: &Fleet, n: usize, timeout: Duration) {
    let start = Instant::now();
    while fleet.smtp.mails().len() < n {
        assert!(start.elapsed() < timeout, "only {} mails after {timeout:?}", fleet.smtp.mails().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lost (never received) and duplicated (received more than once) deliveries of `members`.
fn lost_and_duplicates(fleet: &Fleet, members: usize) -> (usize, usize) {
    let received = fleet.received();
    let duplicates = received.values().map(|n| n - 1).sum();
    (members - received.len(), duplicates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_three_workers_killed_five_times_lose_nothing() {
    if !enabled("F1") {
        return;
    }
    let Some(fleet) = Fleet::new("f1").await else { return };
    let members = 20_000;
    fleet.members_join(members).await;
    let started = Instant::now();
    let mut workers: Vec<_> = (0..3).map(|_| fleet.worker()).collect();
    let kills = 5;
    for kill in 0..kills {
        mails_reach(&fleet, (kill + 1) * 3_000, Duration::from_secs(120)).await;
        let victim = &mut workers[kill % 3];
        victim.start_kill().unwrap(); // SIGKILL
        victim.wait().await.unwrap();
        *victim = fleet.worker();
    }
    fleet.wait_for("every delivery sent", sent_deliveries(), members as i64, Duration::from_secs(180)).await;
    let (lost, duplicates) = lost_and_duplicates(&fleet, members);
    eprintln!(
        "FIGURE F1: 3 workers, {members} emails, {kills} SIGKILLs: {lost} lost, {duplicates} duplicates (bound {} per kill), done in {}",
        2 * SEND_CONCURRENCY,
        secs(started.elapsed())
    );
    assert_eq!(lost, 0);
    assert!(duplicates <= kills * 2 * SEND_CONCURRENCY, "{duplicates}");
}

/// A PostgreSQL cluster of this test's own (`pg_createcluster`), so restarting it disturbs
/// nobody else's tests; dropped at the end.
struct Cluster {
    version: String,
    port: u16,
}

const CLUSTER: &str = "tidings_faults";

impl Cluster {
    fn run(args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .map_err(|e| format!("{}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    fn create(port: u16) -> Result<Cluster, String> {
        let version = std::fs::read_dir("/etc/postgresql")
            .map_err(|e| format!("/etc/postgresql: {e}"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max()
            .ok_or("no PostgreSQL version in /etc/postgresql")?;
        // A cluster left by an earlier run that was killed.
        let _ = Cluster::run(&["pg_dropcluster", "--stop", &version, CLUSTER]);
        let port_text = port.to_string();
        Cluster::run(&["pg_createcluster", &version, CLUSTER, "-p", &port_text, "--", "--auth=trust"])?;
        let cluster = Cluster { version, port };
        cluster.ctl("start")?;
        Ok(cluster)
    }

    fn ctl(&self, action: &str) -> Result<(), String> {
        Cluster::run(&["pg_ctlcluster", "--skip-systemctl-redirect", &self.version, CLUSTER, action])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Cluster::run(&["pg_dropcluster", "--stop", &self.version, CLUSTER]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_postgresql_restarted_under_three_workers_loses_nothing_and_the_run_finishes() {
    if !enabled("F2") {
        return;
    }
    if std::env::var(crate::support::POSTGRES_URL_VAR).is_err() {
        eprintln!("skipping F2: {} is not set", crate::support::POSTGRES_URL_VAR);
        return;
    }
    let cluster = match Cluster::create(5439) {
        Ok(cluster) => cluster,
        Err(reason) => {
            eprintln!("FIGURE F2: skipped, no PostgreSQL cluster of its own could be made: {reason}");
            return;
        }
    };
    let mut ready = false;
    for _ in 0..50 {
        if sqlx::PgPool::connect(&cluster.url()).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "the test's cluster did not come up");
    let (pool, url) = crate::support::postgres_schema_on(&cluster.url(), "f2").await;
    let fleet = Fleet::on(pool, url, "", &[("signup", SIGNUP)], SmtpServer::start(None).await);
    let members = 10_000;
    fleet.members_join(members).await;
    let started = Instant::now();
    let mut workers: Vec<_> = (0..3).map(|_| fleet.worker()).collect();
    mails_reach(&fleet, 2_000, Duration::from_secs(120)).await;
    let restart = Instant::now();
    cluster.ctl("restart").expect("restart the test's PostgreSQL");
    let restarted_in = restart.elapsed();
    let at_restart = fleet.smtp.mails().len();
    // The fleet's own pool reconnects too (its connections died with the server).
    fleet.wait_for("every delivery sent", sent_deliveries(), members as i64, Duration::from_secs(180)).await;
    let done_after_restart = restart.elapsed();
    for worker in &mut workers {
        assert!(worker.try_wait().unwrap().is_none(), "a worker exited on its own: {:?}", worker.try_wait());
    }
    let (lost, duplicates) = lost_and_duplicates(&fleet, members);
    eprintln!(
        "FIGURE F2: PostgreSQL restarted ({}) after {at_restart} of {members} emails under 3 workers: they reconnected on \
         their own, {lost} lost, {duplicates} duplicates, all sent {} after the restart ({} in all)",
        secs(restarted_in),
        secs(done_after_restart),
        secs(started.elapsed())
    );
    assert_eq!(lost, 0);
    assert_eq!(fleet.count("SELECT count(*) FROM deliveries WHERE status = 'failed'").await, 0);
    drop(workers);
    fleet.pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_a_worker_whose_clock_is_two_minutes_ahead_never_takes_a_held_lease() {
    if !enabled("F9") {
        return;
    }
    let Some(fleet) = Fleet::new("f9").await else { return };
    let members = 3_000;
    let _first = fleet.worker();
    fleet
        .wait_for(
            "the first worker holds the inbox and the scheduler",
            "SELECT count(*) FROM leases WHERE name IN ('inbox', 'scheduler')",
            2,
            Duration::from_secs(30),
        )
        .await;
    let holder = |name: &'static str| {
        let pool = fleet.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT holder FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&pool)
                .await
                .unwrap()
        }
    };
    let ahead = fleet.worker_with(&[("TIDINGS_TEST_CLOCK_SKEW_SECONDS", "120")]);
    // Worker names are `{host}-{pid}-{random}`.
    let skewed = format!("-{}-", ahead.id().unwrap());
    // Idle, the first worker renews its 3 s leases every tick, so they never run out: over
    // 12 s a worker reading its own clock two minutes ahead would see each as over at
    // once, and take it. (Under load a lease may run out between two ticks of its holder,
    // and then another worker takes it rightly.)
    let watch = Instant::now();
    let mut changes = 0;
    while watch.elapsed() < Duration::from_secs(12) {
        for name in ["inbox", "scheduler"] {
            if holder(name).await.is_some_and(|h| h.contains(&skewed)) {
                changes += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Then both send: the skewed worker claims deliveries on the database's clock too.
    fleet.members_join(members).await;
    fleet.wait_for("every delivery sent", sent_deliveries(), members as i64, Duration::from_secs(120)).await;
    let (lost, duplicates) = lost_and_duplicates(&fleet, members);
    eprintln!(
        "FIGURE F9: a worker 120 s ahead beside one on time: seen holding a lease the other held {changes} times in 12 s; \
         then {members} emails, {lost} lost, {duplicates} duplicates"
    );
    assert_eq!(changes, 0, "the skewed worker took a lease another held");
    assert_eq!((lost, duplicates), (0, 0));
}

const MINUTELY: &str = r#"id: minutely
name: Every minute
trigger: { schedule: "* * * * *" }
audience: email_consent
entry: { reentry: never }
steps:
  - id: hello
    send: { channel: email, template: t/hello }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_sigterm_under_load_on_serve_with_a_minutely_schedule_exits_within_the_bound() {
    if !enabled("F10") {
        return;
    }
    let Some(fleet) =
        Fleet::with("f10", "listen = \"127.0.0.1:0\"\n", &[("minutely", MINUTELY)], SmtpServer::start(None).await)
            .await
    else {
        return;
    };
    // The schedule's firings of the last hour were all missed: a fresh start owes 60.
    let members = 50_000;
    let base: Vec<tidings::member::Member> = (0..members)
        .map(|i| tidings::member::Member {
            id: format!("m{i:06}"),
            email: Some(format!("m{i}@example.com")),
            email_consent: true,
            first_name: Some(format!("M{i}")),
            ..Default::default()
        })
        .collect();
    crate::support::insert_members_postgres(&fleet.pool, &base).await;
    let mut serve = fleet.process("serve", &[("RUST_LOG", "info")]);
    fleet
        .wait_for(
            "the schedule fired",
            "SELECT count(*) FROM firings WHERE journey_id = 'minutely'",
            1,
            Duration::from_secs(60),
        )
        .await;
    mails_reach(&fleet, 1_000, Duration::from_secs(120)).await;
    terminate(&serve);
    let asked = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(60), serve.wait()).await.expect("exits").unwrap();
    let took = asked.elapsed();
    let firings = fleet.count("SELECT count(*) FROM firings WHERE journey_id = 'minutely'").await;
    let sending = fleet.count("SELECT count(*) FROM deliveries WHERE status = 'sending'").await;
    let leases = fleet.count("SELECT count(*) FROM leases").await;
    let sent = fleet.count(sent_deliveries()).await;
    let received = fleet.smtp.mails().len() as i64;
    eprintln!(
        "FIGURE F10: serve over {members} members with a minutely schedule, SIGTERM mid-send: exit {:?} in {} \
         (bound 40 s); {firings} firing(s) after an hour of missed ones; {sending} deliveries half-sent, {leases} leases \
         left; {sent} recorded sent, {received} received",
        status.code(),
        secs(took)
    );
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(40));
    assert!(firings <= 2, "missed firings coalesce: {firings}");
    assert_eq!((sending, leases), (0, 0));
    assert_eq!(sent, received, "what was sent is recorded, and only that");
}

/// Emails per second for `workers` workers sending `members` emails, from the first
/// worker's start to the last delivery recorded.
async fn throughput(workers: usize, members: usize) -> Option<f64> {
    let fleet =
        Fleet::with(&format!("scale{workers}"), "", &[("signup", SIGNUP)], SmtpServer::start(None).await).await?;
    let _ = HELLO;
    fleet.members_join(members).await;
    let start = Instant::now();
    let _workers: Vec<_> = (0..workers).map(|_| fleet.worker()).collect();
    fleet.wait_for("every delivery sent", sent_deliveries(), members as i64, Duration::from_secs(240)).await;
    Some(members as f64 / start.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_one_two_and_three_workers() {
    if !enabled("scaling") {
        return;
    }
    let members = 4_000;
    let mut figures = Vec::new();
    for workers in 1..=3 {
        let Some(rate) = throughput(workers, members).await else { return };
        figures.push(format!("{workers} worker(s) {rate:.0}/s"));
    }
    eprintln!(
        "FIGURE scaling: {members} emails (event → run → SMTP) on one PostgreSQL, this machine: {}",
        figures.join(", ")
    );
}
