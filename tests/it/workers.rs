//! Scale-out and crashes with real `tidings worker` processes on one PostgreSQL, sending
//! real mail into an SMTP server in this test: many workers send each delivery once and
//! enroll a schedule's members once; a worker killed with SIGKILL loses nothing and re-sends
//! at most the group of sends it had in flight.
//!
//! PostgreSQL only (scale-out is what it is for): skipped, with the reason printed, when
//! `TIDINGS_TEST_POSTGRES_URL` is unset.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use tidings::member::Event;
use tidings::store::Store;

use crate::shop::write;
use crate::support::{SmtpServer, postgres_schema};

const SIGNUP: &str = r#"id: signup
name: Signup
trigger: { event: member.created }
audience: email_consent
steps:
  - id: hello
    send: { channel: email, template: t/hello }
"#;

/// Fires every hour; started mid-hour, every worker sees the last firing as missed (within
/// `catch_up`) at once, and all three race to run it.
const HOURLY: &str = r#"id: hourly
name: Hourly gold check
trigger: { schedule: "0 * * * *" }
audience: tier == "gold"
entry: { reentry: always }
steps:
  - id: later
    wait: 30d
  - id: done
    exit: true
"#;

const HELLO: &str = "---\nsubject: \"Hello {{member.first_name}}\"\n---\n<p>Hi {{member.first_name}}.</p>\n";

/// Workers send at most this many at once (also the group whose outcomes commit together).
const SEND_CONCURRENCY: usize = 32;

struct Fleet {
    dir: tempfile::TempDir,
    url: String,
    pool: PgPool,
    smtp: SmtpServer,
}

impl Fleet {
    async fn new(test: &str) -> Option<Fleet> {
        let (pool, url) = postgres_schema(test).await?;
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "default_timezone = \"Asia/Shanghai\"\n[engine]\nlease = \"3s\"\nbatch = 500\nsend_concurrency = {SEND_CONCURRENCY}\n"
        );
        write(&dir.path().join("tidings.toml"), &config);
        write(&dir.path().join("workflows/signup.yaml"), SIGNUP);
        write(&dir.path().join("workflows/hourly.yaml"), HOURLY);
        write(&dir.path().join("templates/t/hello.email.hbs"), HELLO);
        let smtp = SmtpServer::start(None).await;
        Some(Fleet { dir, url, pool, smtp })
    }

    /// `count` members join (every tenth is gold): their `member.created` events wait in
    /// the inbox for the workers.
    async fn members_join(&self, count: usize) {
        let store = Store::Postgres(self.pool.clone());
        let now = Utc::now();
        let events: Vec<Event> = (0..count)
            .map(|i| Event {
                id: format!("join-{i}"),
                member_id: format!("m{i:05}"),
                name: "member.created".into(),
                occurred_at: now,
                properties: json!({
                    "email": format!("m{i}@example.com"), "email_consent": true, "first_name": format!("M{i}"),
                    "tier": if i % 10 == 0 { "gold" } else { "silver" },
                }),
            })
            .collect();
        for chunk in events.chunks(5_000) {
            store.ingest_events(chunk, now, &tidings::state::Settings::default()).await.unwrap();
        }
    }

    fn worker(&self) -> tokio::process::Child {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("worker")
            .current_dir(self.dir.path())
            .env("TIDINGS_CONFIG", self.dir.path().join("tidings.toml"))
            .env("TIDINGS_DATABASE_URL", &self.url)
            .env("TIDINGS_SMTP_URL", &self.smtp.url)
            .env("TIDINGS_LINK_SECRET", "workers-test-link-secret-0123456789")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start `tidings worker`")
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    async fn wait_for(&self, what: &str, sql: &'static str, expected: i64, timeout: Duration) {
        let start = Instant::now();
        loop {
            let n = self.count(sql).await;
            if n >= expected {
                return;
            }
            assert!(start.elapsed() < timeout, "{what}: {n} of {expected} after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many times the SMTP server received each delivery (by its `Message-ID`).
    fn received(&self) -> HashMap<i64, usize> {
        let mut seen = HashMap::new();
        for mail in self.smtp.mails() {
            let text = String::from_utf8_lossy(&mail.data);
            let at = text.find("<delivery-").expect("every message has our Message-ID") + "<delivery-".len();
            let id = text[at..].split('.').next().unwrap().parse::<i64>().unwrap();
            *seen.entry(id).or_default() += 1;
        }
        seen
    }
}

fn sent_deliveries() -> &'static str {
    "SELECT count(*) FROM deliveries WHERE status = 'sent'"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_send_each_of_20000_deliveries_once_and_enroll_a_schedule_once() {
    let Some(fleet) = Fleet::new("three_workers").await else { return };
    let members = 20_000;
    fleet.members_join(members).await;
    let _workers: Vec<_> = (0..3).map(|_| fleet.worker()).collect();

    fleet.wait_for("deliveries sent", sent_deliveries(), members as i64, Duration::from_secs(240)).await;
    let received = fleet.received();
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(received.len(), members, "every delivery reached the SMTP server");
    assert!(twice.is_empty(), "{} sent more than once, e.g. {:?}", twice.len(), &twice[..twice.len().min(5)]);
    assert_eq!(fleet.count("SELECT count(*) FROM deliveries").await, members as i64, "one delivery per member");
    // Each worker keeps at most 8 SMTP connections (the default): more means they shared the work.
    let connections = fleet.smtp.connections.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("three workers sent {members} emails over {connections} SMTP connections");
    assert!(connections > 8, "more than one worker sent ({connections} connections)");

    // The hourly firing: claimed by one worker, each gold member enrolled once.
    fleet
        .wait_for(
            "schedule firing done",
            "SELECT count(*) FROM firings WHERE journey_id = 'hourly' AND status = 'done'",
            1,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(fleet.count("SELECT count(*) FROM firings WHERE journey_id = 'hourly'").await, 1);
    let gold = (members / 10) as i64;
    assert_eq!(fleet.count("SELECT count(*) FROM runs WHERE journey_id = 'hourly'").await, gold);
    assert_eq!(fleet.count("SELECT count(DISTINCT member_id) FROM runs WHERE journey_id = 'hourly'").await, gold);
    assert_eq!(fleet.count("SELECT sum(enrolled)::bigint FROM firings WHERE journey_id = 'hourly'").await, gold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_no_delivery_and_resends_at_most_what_was_in_flight() {
    let Some(fleet) = Fleet::new("sigkill").await else { return };
    let members = 5_000;
    fleet.members_join(members).await;
    let mut worker = fleet.worker();
    let start = Instant::now();
    while fleet.smtp.mails().len() < 1_000 {
        assert!(start.elapsed() < Duration::from_secs(120), "the worker sent {} mails", fleet.smtp.mails().len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.start_kill().unwrap(); // SIGKILL: no shutdown, no cleanup
    worker.wait().await.unwrap();
    let at_kill = fleet.smtp.mails().len();
    let recorded_at_kill = fleet.count(sent_deliveries()).await;

    let _restarted = fleet.worker();
    fleet
        .wait_for("deliveries sent after the restart", sent_deliveries(), members as i64, Duration::from_secs(180))
        .await;
    let received = fleet.received();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    eprintln!(
        "SIGKILL after {at_kill} mails ({recorded_at_kill} recorded as sent): {} delivered, {duplicates} sent twice",
        received.len()
    );
    assert_eq!(received.len(), members, "no delivery lost");
    assert!(
        duplicates <= 2 * SEND_CONCURRENCY,
        "re-sends ({duplicates}) are bounded by the sends in flight and the group awaiting its commit"
    );
}
