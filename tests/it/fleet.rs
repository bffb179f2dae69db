//! A fleet of real `tidings worker` processes on one fresh PostgreSQL schema, sending real
//! mail into an SMTP server in the test (`support::SmtpServer`): what `workers`, `shutdown`
//! and the fault suite (`tests/faults`) start, kill and count.
//!
//! PostgreSQL only (scale-out is what it is for): `Fleet::new` is `None`, with the reason
//! printed, when `TIDINGS_TEST_POSTGRES_URL` is unset.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use tidings::member::Event;
use tidings::store::Store;

use crate::support::{SmtpServer, postgres_schema};

pub const SIGNUP: &str = r#"id: signup
name: Signup
trigger: { event: member.created }
audience: email_consent
steps:
  - id: hello
    send: { channel: email, template: t/hello }
"#;

/// Fires every hour; started mid-hour, every worker sees the last firing as missed (within
/// `catch_up`) at once, and all three race to run it.
pub const HOURLY: &str = r#"id: hourly
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

pub const HELLO: &str = "---\nsubject: \"Hello {{member.first_name}}\"\n---\n<p>Hi {{member.first_name}}.</p>\n";

/// Workers send at most this many at once (also the group whose outcomes commit together).
pub const SEND_CONCURRENCY: usize = 32;

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub pool: PgPool,
    pub smtp: SmtpServer,
    /// Extra environment for every worker this fleet starts.
    pub env: Vec<(String, String)>,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

impl Fleet {
    /// The signup and hourly journeys, with a 3 s lease, batches of 500.
    pub async fn new(test: &str) -> Option<Fleet> {
        Fleet::with(test, "", &[("signup", SIGNUP), ("hourly", HOURLY)], SmtpServer::start(None).await).await
    }

    /// A fleet with `config` in the base `tidings.toml`, these journeys (id,
    /// YAML), the `t/hello` email template, and this SMTP server.
    pub async fn with(test: &str, config: &str, journeys: &[(&str, &str)], smtp: SmtpServer) -> Option<Fleet> {
        let (pool, url) = postgres_schema(test).await?;
        Some(Fleet::on(pool, url, config, journeys, smtp))
    }

    /// [`Fleet::with`] on a schema already made (another server's, say).
    pub fn on(pool: PgPool, url: String, config: &str, journeys: &[(&str, &str)], smtp: SmtpServer) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        // `config` goes between the top-level keys and `[engine]`, so it may hold both.
        let toml = format!(
            "default_timezone = \"Asia/Shanghai\"\n{config}\n[engine]\nlease = \"3s\"\nbatch = 500\nsend_concurrency = {SEND_CONCURRENCY}\n"
        );
        write(&dir.path().join("tidings.toml"), &toml);
        for (id, yaml) in journeys {
            write(&dir.path().join(format!("workflows/{id}.yaml")), yaml);
        }
        write(&dir.path().join("templates/t/hello.email.hbs"), HELLO);
        Fleet { dir, url, pool, smtp, env: Vec::new() }
    }

    /// `count` members join (every tenth is gold): their `member.created` events wait in
    /// the inbox for the workers.
    pub async fn members_join(&self, count: usize) {
        self.members_join_from(0, count).await;
    }

    /// Members `from..from + count` join.
    pub async fn members_join_from(&self, from: usize, count: usize) {
        let store = Store::Postgres(self.pool.clone());
        let now = Utc::now();
        let events: Vec<Event> = (from..from + count)
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

    /// A `tidings worker` (`TIDINGS_SMTP_URL` set to this fleet's server).
    pub fn worker(&self) -> tokio::process::Child {
        self.worker_with(&[])
    }

    /// A worker with more environment (`RUST_LOG`, a clock skew, ...).
    pub fn worker_with(&self, env: &[(&str, &str)]) -> tokio::process::Child {
        self.process("worker", env)
    }

    /// `tidings {command}` (`worker` or `serve`) with this fleet's config and database.
    pub fn process(&self, subcommand: &str, env: &[(&str, &str)]) -> tokio::process::Child {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"));
        command
            .arg(subcommand)
            .current_dir(self.dir.path())
            .env("TIDINGS_CONFIG", self.dir.path().join("tidings.toml"))
            .env("TIDINGS_DATABASE_URL", &self.url)
            .env("TIDINGS_SMTP_URL", &self.smtp.url)
            .env("TIDINGS_LINK_SECRET", "workers-test-link-secret-0123456789")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        command.spawn().expect("start `tidings worker`")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&self.pool).await.unwrap()
    }

    pub async fn wait_for(&self, what: &str, sql: &str, expected: i64, timeout: Duration) {
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
    pub fn received(&self) -> HashMap<i64, usize> {
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

pub fn sent_deliveries() -> &'static str {
    "SELECT count(*) FROM deliveries WHERE status = 'sent'"
}

/// Sends SIGTERM to a child process.
pub fn terminate(child: &tokio::process::Child) {
    let pid = child.id().expect("the worker is running");
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
}
