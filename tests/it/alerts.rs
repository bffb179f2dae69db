//! Alerts, end to end: rules in `tidings.toml` checked by `validate` (and `serve` refusing
//! a bad one), an SMTP server refusing a share of recipients making
//! `delivery_failure_rate` fire and resolve with one signed notification each at a
//! wiremock receiver, a journey whose conversions fall making `conversion_drop` fire, three
//! workers on one PostgreSQL sending one notification per transition, and what operators
//! read (`GET /v1/alerts`, `/metrics`, the dashboard panel, `tidings alerts`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tidings::alert::Status;
use tidings::channels::{Channels, RetryPolicy};
use tidings::config::Config;
use tidings::engine::alerts::Alerting;
use tidings::engine::{self, Engine, Registry};
use tidings::http::signature::{StandardHeaders, standard_webhooks_key, verify_standard};
use tidings::links::LinkSigner;
use tidings::notifier::Notifier;
use tidings::project::{Project, Sources};
use tidings::store::Store;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::engine::WELCOME;
use crate::engines::on_both_engines;
use crate::shop::{HELLO_EMAIL, REMINDER_EMAIL, at, event, joined, write};
use crate::support::{LINK_SECRET, SmtpServer};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "alerts-token";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tidings(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .current_dir(dir)
        .args(args)
        .env_remove("TIDINGS_CONFIG")
        .env_remove("TIDINGS_DATABASE_URL")
        .output()
        .unwrap()
}

/// A folder with the example journeys and templates and this `tidings.toml`.
fn project_with(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "workflows_dir = {:?}\ntemplates_dir = {:?}\n{config}",
        root().join("workflows"),
        root().join("templates")
    );
    write(&dir.path().join("tidings.toml"), &toml);
    dir
}

#[test]
fn the_example_alert_rules_are_valid_with_the_example_journeys() {
    let out = tidings(root(), &["--config", "tidings.toml", "validate", "--format", "short"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let config = Config::load(&root().join("tidings.toml"), true, |_| None).unwrap();
    assert!(config.alerts.len() >= 6, "the example ships default rules");
}

#[test]
fn validate_points_at_each_bad_alert_rule_with_a_hint() {
    let dir = project_with(
        r#"
[[alerts]]
kind = "delivery_failure"

[[alerts]]
name = "slow"
kind = "delivery_failure_rate"
window = "15 minutes"
threshold = "5"

[[alerts]]
name = "winback_offer"
kind = "unsubscribe_rate"
journey = "winbak"

[[alerts]]
name = "welcome_step"
kind = "unsubscribe_rate"
journey = "welcome"
step = "helo"

[[alerts]]
name = "lag"
kind = "queue_lag"
journey = "welcome"
"#,
    );
    let out = tidings(dir.path(), &["validate", "--format", "short"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let toml = "tidings.toml";
    for (location, code) in [
        ("5:8", "A001"),   // unknown kind
        ("10:10", "A002"), // a window that is not a duration
        ("11:13", "A003"), // a rate threshold that is not a percentage
        ("16:11", "A005"), // a journey that does not exist
        ("22:8", "A006"),  // a step the journey does not have
        ("27:11", "A009"), // a scope the kind does not count by
    ] {
        let line = format!("{toml}:{location}: error[{code}]");
        assert!(stdout.lines().any(|l| l.starts_with(&line)), "expected `{line}` in:\n{stdout}");
    }
    let full = String::from_utf8_lossy(&tidings(dir.path(), &["validate"]).stdout).to_string();
    assert!(full.contains("hint: did you mean `delivery_failure_rate`?"), "{full}");
    assert!(full.contains("hint: did you mean `winback`?"), "{full}");
    assert!(full.contains("hint: did you mean `hello`?"), "{full}");
}

#[test]
fn serve_refuses_to_start_with_a_bad_alert_rule() {
    let dir = project_with("[[alerts]]\nkind = \"conversion_drop\"\njourney = \"tier_upgrade\"\n");
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .current_dir(dir.path())
        .args(["serve"])
        .env_remove("TIDINGS_CONFIG")
        .env("TIDINGS_DATABASE_URL", db)
        .env("TIDINGS_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("error[A012]") && stderr.contains("tier_upgrade"), "{stderr}");
    assert!(stderr.contains("error(s) in the alert rules"), "{stderr}");
}

/// A journey that emails every new member at once.
const SIGNUP: &str = r#"id: signup
name: Signup
trigger: { event: member.created }
audience: email_consent
steps:
  - id: hello
    send: { channel: email, template: t/hello }
"#;

const FAILURES: &str = r#"
[[alerts]]
name = "delivery_failures"
kind = "delivery_failure_rate"
channel = "email"
window = "15m"
threshold = "5%"
min_sample = 10
for = "2m"
"#;

/// Journeys, templates and `config` in a folder; `engines` engines over `store` (one per
/// worker) sending email through `smtp_url`, each with the config's alert rules; and a
/// notifier per worker posting to `webhook_url`.
struct Watched {
    _dir: tempfile::TempDir,
    store: Store,
    engines: Vec<Engine>,
    notifiers: Vec<Notifier>,
}

async fn watched(
    store: Store,
    journeys: &[&str],
    config: &str,
    smtp_url: Option<&str>,
    webhook_url: Option<&str>,
    workers: usize,
    now: DateTime<Utc>,
) -> Watched {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("tidings.toml"), &format!("default_timezone = \"Asia/Shanghai\"\n{config}"));
    for journey in journeys {
        let id = journey.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
        write(&dir.path().join("workflows").join(format!("{id}.yaml")), journey);
    }
    write(&dir.path().join("templates/t/hello.email.hbs"), HELLO_EMAIL);
    write(&dir.path().join("templates/t/reminder.email.hbs"), REMINDER_EMAIL);
    let config = Config::load(&dir.path().join("tidings.toml"), true, |_| None).unwrap();
    let env = |name: &str| -> Option<String> {
        match name {
            "TIDINGS_SMTP_URL" => smtp_url.map(str::to_string),
            "TIDINGS_ALERT_WEBHOOK_URL" => webhook_url.map(str::to_string),
            "TIDINGS_WEBHOOK_SECRET" => Some(SECRET.to_string()),
            _ => None,
        }
    };
    let channels = match smtp_url {
        Some(_) => Channels::from_config(&config, env).unwrap(),
        None => Channels::outbox(dir.path().join("outbox")),
    };
    let mut engines = Vec::new();
    let mut notifiers = Vec::new();
    for _ in 0..workers {
        let sources = Sources::standard(&config.workflows_dir, &config.templates_dir).unwrap();
        let project = Project::load(&sources, config.timezone());
        assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
        let (rules, problems) = tidings::service::alert_rules(&config, &project);
        assert!(problems.is_empty(), "{:?}", problems.iter().map(|d| d.render_short()).collect::<Vec<_>>());
        let registry = Registry::load(project, &store, config.timezone(), now).await.unwrap();
        let options = engine::Options::from_config(&config, LinkSigner::new(&config.public_url, LINK_SECRET).unwrap());
        let policies = engine::policies(&config).unwrap();
        let engine = Engine::new(store.clone(), registry, policies, config.state_settings(), channels.clone(), options);
        engine.set_alerting(Alerting { rules, webhook: webhook_url.is_some(), email: None });
        engines.push(engine);
        let retry = RetryPolicy::from_config(&config.channels.retry);
        let public = Some("https://tidings.example".to_string());
        notifiers.push(Notifier::from_env(store.clone(), channels.clone(), retry, public, env).unwrap());
    }
    Watched { _dir: dir, store, engines, notifiers }
}

impl Watched {
    /// Every worker ticks at `now` at once, until nothing is left to do; then every
    /// notifier delivers what is due, at once.
    async fn at(&self, now: DateTime<Utc>) {
        futures_util::future::join_all(self.engines.iter().map(|e| e.settle(now))).await.into_iter().for_each(|r| {
            r.unwrap();
        });
        futures_util::future::join_all(self.notifiers.iter().map(|n| n.deliver_due(now))).await.into_iter().for_each(
            |r| {
                r.unwrap();
            },
        );
    }

    async fn happen(&self, events: &[tidings::member::Event], now: DateTime<Utc>) {
        self.store.ingest_events(events, now, self.engines[0].settings()).await.unwrap();
        self.at(now).await;
    }

    async fn status(&self, rule: &str) -> Option<Status> {
        self.store.alerts().await.unwrap().into_iter().find(|a| a.rule == rule).map(|a| a.status)
    }
}

fn members(prefix: &str, n: usize, at: DateTime<Utc>, bad_every: usize) -> Vec<tidings::member::Event> {
    (0..n)
        .map(|i| {
            let domain = if bad_every > 0 && i % bad_every == 0 { "gone.example" } else { "example.com" };
            let email = format!("{prefix}{i}@{domain}");
            joined(&format!("{prefix}{i}"), at, json!({ "email": email, "email_consent": true }))
        })
        .collect()
}

fn refuse_gone(recipient: &str) -> bool {
    recipient.contains("@gone.example")
}

/// The notifications the receiver got: (webhook-id, body), each checked to be signed the
/// Standard Webhooks way with `TIDINGS_WEBHOOK_SECRET` at `now`.
async fn signed_notifications(server: &MockServer, now: DateTime<Utc>) -> Vec<(String, Value)> {
    let key = standard_webhooks_key(SECRET).unwrap();
    let mut out = Vec::new();
    for request in server.received_requests().await.unwrap() {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let signed = StandardHeaders {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
        };
        let timestamp: i64 = signed.timestamp.unwrap().parse().unwrap();
        let sent_at = DateTime::from_timestamp(timestamp, 0).unwrap();
        verify_standard(&key, signed, &request.body, sent_at).expect("signed with TIDINGS_WEBHOOK_SECRET");
        assert!(sent_at <= now);
        out.push((signed.id.unwrap().to_string(), serde_json::from_slice(&request.body).unwrap()));
    }
    out
}

/// The issue's case: a quarter of the recipients refused (SMTP 550) fires
/// `delivery_failure_rate` after `for`; one signed notification; then, with the bad
/// addresses gone from the window and the next sends delivered, one `resolved`.
async fn failures_fire_and_resolve(store: Store, workers: usize) {
    let smtp = SmtpServer::refusing("550 5.1.1 no such user", refuse_gone).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let t0 = at("2026-03-02T02:00:00Z");
    let shop = watched(store, &[SIGNUP], FAILURES, Some(&smtp.url), Some(&receiver.uri()), workers, t0).await;
    let minute = |n: i64| t0 + Duration::minutes(n);

    // With several workers, the one that claims a minute may evaluate it before another
    // worker's sends of that minute are written: those count from the next minute on.
    shop.happen(&members("a", 20, t0, 4), t0).await;
    assert_eq!(smtp.mails().len(), 15, "15 accepted, 5 refused");
    shop.at(minute(1)).await;
    assert_eq!(shop.status("delivery_failures").await, Some(Status::Pending), "25% > 5%, not yet for 2m");
    assert!(receiver.received_requests().await.unwrap().is_empty(), "nothing is said while pending");
    shop.at(minute(2)).await;
    shop.at(minute(3)).await;
    assert_eq!(shop.status("delivery_failures").await, Some(Status::Firing));
    let sent = signed_notifications(&receiver, minute(3)).await;
    assert_eq!(sent.len(), 1, "one notification for the transition to firing: {sent:?}");
    let (id, body) = &sent[0];
    assert!(id.starts_with("alert-"), "{id}");
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("[FIRING] delivery_failures (delivery_failure_rate): 25%"), "{text}");
    assert!(text.contains("5 of 20 attempts failed in 15m"), "{text}");
    assert_eq!(body["alert"]["status"], "firing");
    assert_eq!(body["alert"]["numbers"]["count"], 5);
    assert_eq!(body["alert"]["numbers"]["sample"], 20);

    // Recovery: new members with good addresses; the refused sends leave the window.
    shop.happen(&members("b", 20, minute(20), 0), minute(20)).await;
    assert_eq!(shop.status("delivery_failures").await, Some(Status::Firing), "clear, but not for 2m yet");
    shop.at(minute(21)).await;
    assert_eq!(shop.status("delivery_failures").await, Some(Status::Firing), "clear for less than 2m");
    for n in 22..26 {
        shop.at(minute(n)).await;
    }
    assert_eq!(shop.status("delivery_failures").await, Some(Status::Resolved));
    let sent = signed_notifications(&receiver, minute(25)).await;
    assert_eq!(sent.len(), 2, "one firing, one resolved: {sent:?}");
    assert!(sent[1].1["text"].as_str().unwrap().starts_with("[RESOLVED] delivery_failures"), "{sent:?}");
    assert_ne!(sent[0].0, sent[1].0, "each transition has its own webhook-id");

    let transitions = shop.store.alert_transitions(10).await.unwrap();
    let path: Vec<_> = transitions.iter().rev().map(|t| (t.from.as_str(), t.status.as_str())).collect();
    assert_eq!(path, [("ok", "pending"), ("pending", "firing"), ("firing", "resolved")]);
    let firing = &transitions[1];
    assert_eq!((firing.measured.count, firing.measured.sample), (5, 20));
    assert!(firing.at == minute(2) || (workers > 1 && firing.at == minute(3)), "{firing:?}");
    let notified = shop.store.alert_notifications_of(firing.id).await.unwrap();
    assert_eq!(notified, [("webhook".to_string(), "sent".to_string(), 1, None)]);
}

on_both_engines! {
    async fn an_smtp_server_refusing_a_quarter_of_recipients_fires_the_failure_alert_and_it_resolves(store) {
        failures_fire_and_resolve(store, 1).await;
    }

    async fn a_journey_whose_conversions_fall_fires_conversion_drop(store) {
        let config = r#"
[[alerts]]
name = "welcome_conversion"
kind = "conversion_drop"
journey = "welcome"
window = "1h"
baseline = "6h"
threshold = "-50%"
min_sample = 10
for = "0s"
"#;
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = watched(store, &[WELCOME], config, None, None, 1, t0).await;
        let hour = |n: i64| t0 + Duration::hours(n);
        // The baseline: 20 members join, half of them order within the hour.
        shop.happen(&members("a", 20, hour(1), 0), hour(1)).await;
        let orders: Vec<_> = (0..10)
            .map(|i| event(&format!("o{i}"), &format!("a{i}"), "order.placed", hour(1) + Duration::minutes(30), json!({ "total": 5_000 })))
            .collect();
        shop.happen(&orders, hour(1) + Duration::minutes(30)).await;
        shop.at(hour(2)).await;
        assert_eq!(shop.status("welcome_conversion").await, Some(Status::Ok), "50% converted: nothing fell");
        // Then 20 more join and nobody orders.
        shop.happen(&members("b", 20, hour(6) + Duration::minutes(30), 0), hour(6) + Duration::minutes(30)).await;
        shop.at(hour(7)).await;
        assert_eq!(shop.status("welcome_conversion").await, Some(Status::Firing));
        let alert = shop.store.alerts().await.unwrap().into_iter().next().unwrap();
        assert_eq!(alert.value, Some(-1.0), "0% against 50%: a 100% fall");
        assert_eq!((alert.numbers.count, alert.numbers.sample), (0, 20));
        assert_eq!((alert.numbers.baseline_count, alert.numbers.baseline_sample), (10, 20));
        let text = &shop.store.alert_transitions(1).await.unwrap()[0];
        assert_eq!(text.status, Status::Firing);
    }
}

#[tokio::test]
async fn three_workers_on_postgres_send_one_notification_per_transition() {
    let Some(pool) = crate::support::postgres_pool("alerts_three_workers").await else { return };
    failures_fire_and_resolve(Store::Postgres(pool), 3).await;
}

#[tokio::test]
async fn a_receiver_that_is_down_delays_the_notification_and_never_the_sends() {
    let (pool, _tmp) = crate::support::sqlite_pool().await;
    let smtp = SmtpServer::refusing("550 5.1.1 no such user", refuse_gone).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&receiver).await;
    let config = FAILURES.replace("for = \"2m\"", "for = \"0s\"");
    let t0 = at("2026-03-02T02:00:00Z");
    let shop = watched(Store::Sqlite(pool), &[SIGNUP], &config, Some(&smtp.url), Some(&receiver.uri()), 1, t0).await;
    shop.happen(&members("a", 20, t0, 2), t0).await;
    assert_eq!(shop.status("delivery_failures").await, Some(Status::Firing));
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1, "tried once, answered 503");
    // Sending goes on while the receiver is down.
    shop.happen(&members("b", 10, t0 + Duration::seconds(10), 0), t0 + Duration::seconds(10)).await;
    assert_eq!(smtp.mails().len(), 20);
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1, "the retry waits for its backoff");
    let firing = shop.store.alert_transitions(1).await.unwrap().remove(0);
    let pending = shop.store.alert_notifications_of(firing.id).await.unwrap();
    assert_eq!(pending[0].1, "pending");
    assert!(pending[0].3.as_deref().unwrap_or("").contains("503"), "{pending:?}");
    // The receiver is back; after the backoff (30-60 s for the first retry) it is told once.
    receiver.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    shop.at(t0 + Duration::minutes(2)).await;
    shop.at(t0 + Duration::minutes(3)).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1);
    assert_eq!(shop.store.alert_notifications_of(firing.id).await.unwrap()[0].1, "sent");
}

/// Serves the HTTP routes on a free port; returns the base URL.
async fn spawn_app(store: Store) -> String {
    let state = tidings::http::AppState::new(
        store,
        tidings::state::Settings::default(),
        Some(TOKEN.into()),
        Arc::new(Utc::now),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, tidings::http::router(state)).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn operators_see_a_firing_alert_in_the_api_the_metrics_the_dashboard_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tidings.db").display());
    let store = Store::open(&db).await.unwrap();
    let smtp = SmtpServer::refusing("550 5.1.1 no such user", refuse_gone).await;
    // A rule name with markup: the dashboard must escape it.
    let config = FAILURES
        .replace("for = \"2m\"", "for = \"0s\"")
        .replace("delivery_failures", "<b>failures</b>")
        .replace("channel = \"email\"", "channel = \"email\"\njourney = \"signup\"");
    let t0 = at("2026-03-02T02:00:00Z");
    let shop = watched(store.clone(), &[SIGNUP], &config, Some(&smtp.url), None, 1, t0).await;
    shop.happen(&members("a", 20, t0, 2), t0).await;

    let base = spawn_app(store.clone()).await;
    let client = reqwest::Client::new();
    let unauthorized = client.get(format!("{base}/v1/alerts")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    let body: Value =
        client.get(format!("{base}/v1/alerts")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["firing"], json!(["<b>failures</b>"]));
    assert_eq!(body["alerts"][0]["numbers"]["count"], 10);
    assert_eq!(body["alerts"][0]["scope"]["journey"], "signup");

    let metrics = client.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    let firing = metrics.lines().find(|l| l.starts_with("tidings_alert_firing{")).unwrap_or("");
    assert!(firing.contains("rule=\"<b>failures</b>\"") && firing.ends_with(" 1"), "{metrics}");
    assert!(metrics.contains("tidings_oldest_due_seconds"), "{metrics}");

    let html = client.get(format!("{base}/")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<tr class=\"alert-firing\"><td>&lt;b&gt;failures&lt;/b&gt;"), "{html}");
    assert!(html.contains("10 of 20 attempts failed in 15m"), "{html}");
    assert!(html.contains("href=\"/dashboard/journeys/signup\""), "{html}");
    assert!(!html.contains("<b>failures</b>"), "the rule name is escaped");

    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .current_dir(dir.path())
        .args(["alerts", "--database-url", &db])
        .env_remove("TIDINGS_CONFIG")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "exit 1 while an alert fires:\n{table}");
    assert!(
        table.lines().any(|l| l.starts_with("firing") && l.contains("<b>failures</b>") && l.contains("50%")),
        "{table}"
    );
    assert!(table.contains("ok → firing"), "{table}");
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .current_dir(dir.path())
        .args(["alerts", "--database-url", &db, "--format", "json"])
        .env_remove("TIDINGS_CONFIG")
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["alerts"][0]["status"], "firing");
    assert_eq!(json["transitions"][0]["status"], "firing");
}

const EVERY_KIND: &str = r#"
[[alerts]]
name = "bounces"
kind = "bounce_or_complaint_rate"
journey = "signup"
window = "1h"
threshold = "5%"
min_sample = 10
for = "0s"

[[alerts]]
name = "unsubscribes"
kind = "unsubscribe_rate"
journey = "signup"
step = "hello"
channel = "email"
window = "1h"
threshold = "5%"
min_sample = 10
for = "0s"

[[alerts]]
name = "silent"
kind = "no_sends"
journey = "signup"
window = "1h"
baseline = "6h"
min_sample = 5
"#;

on_both_engines! {
    async fn bounces_complaints_unsubscribes_silence_and_lag_are_counted_from_the_store(store) {
        use tidings::links::LinkKind;
        let smtp = SmtpServer::refusing("550 5.1.1 no such user", refuse_gone).await;
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = watched(store, &[SIGNUP], EVERY_KIND, Some(&smtp.url), None, 1, t0).await;
        shop.happen(&members("a", 20, t0, 10), t0).await;
        let mails = smtp.mails();
        assert_eq!(mails.len(), 18, "two permanent failures");
        let delivery = |i: usize| {
            let text = String::from_utf8_lossy(&mails[i].data).replace("=\r\n", "");
            crate::shop::signed_links(&text, LinkKind::Unsubscribe)[0].delivery_id
        };
        let later = t0 + Duration::minutes(10);
        let mut events = vec![
            // A bounce naming its delivery as a string, a complaint as a number, and a
            // bounce whose delivery id is not one (it cannot be in the journey's scope).
            event("b1", "x", "message.bounced", later, json!({ "delivery_id": delivery(0).to_string() })),
            event("c1", "x", "message.complained", later, json!({ "delivery_id": delivery(1) })),
            event("b2", "x", "message.bounced", later, json!({ "delivery_id": "mx-77" })),
        ];
        for i in 2..5 {
            events.push(event(&format!("u{i}"), "x", "member.unsubscribed", later, json!({ "delivery_id": delivery(i) })));
        }
        shop.happen(&events, later).await;
        let alerts: std::collections::HashMap<String, _> =
            shop.store.alerts().await.unwrap().into_iter().map(|a| (a.rule.clone(), a)).collect();
        let bounces = &alerts["bounces"];
        assert_eq!((bounces.numbers.count, bounces.numbers.sample), (4, 20), "2 refused + 1 bounce + 1 complaint");
        assert_eq!(bounces.status, Status::Firing);
        let unsubscribes = &alerts["unsubscribes"];
        assert_eq!((unsubscribes.numbers.count, unsubscribes.numbers.sample), (3, 18));
        assert_eq!(unsubscribes.status, Status::Firing);
        let silent = &alerts["silent"];
        assert_eq!((silent.numbers.count, silent.numbers.baseline_count, silent.status), (18, 0, Status::Ok));

        // Two hours on, the journey has sent nothing for an hour after 18 sends before.
        shop.at(t0 + Duration::hours(2)).await;
        assert_eq!(shop.status("silent").await, Some(Status::Firing));

        // Queue lag: an event waits in the inbox 15 minutes with nobody taking it.
        let late = t0 + Duration::hours(3);
        shop.store.ingest_events(&[event("late", "a1", "points.earned", late, json!({ "points": 5 }))], late, shop.engines[0].settings()).await.unwrap();
        let lag = tidings::alert::Rule {
            name: "lag".into(),
            kind: tidings::alert::Kind::QueueLag,
            window: 0,
            threshold: 600.0,
            min_sample: 0,
            for_: 0,
            baseline: 0,
            scope: tidings::alert::Scope::default(),
            email: None,
        };
        let now = late + Duration::minutes(15);
        let changed = shop.store.evaluate_alerts(std::slice::from_ref(&lag), "probe", now, &|_| Vec::new()).await.unwrap();
        let changed = changed.expect("the minute was not claimed before");
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].status, changed[0].measured.count), (Status::Firing, 900));
        assert_eq!(shop.store.queue_lag_seconds(now).await.unwrap(), 900);
        let again = shop.store.evaluate_alerts(&[lag], "other-worker", now, &|_| Vec::new()).await.unwrap();
        assert!(again.is_none(), "a minute is evaluated once");
    }
}

#[tokio::test]
async fn a_firing_alert_is_emailed_once_to_the_address_of_its_rule() {
    let (pool, _tmp) = crate::support::sqlite_pool().await;
    let smtp = SmtpServer::refusing("550 5.1.1 no such user", refuse_gone).await;
    let config = FAILURES.replace("for = \"2m\"", "for = \"0s\"\nemail = \"ops@shop.example\"");
    let t0 = at("2026-03-02T02:00:00Z");
    let shop = watched(Store::Sqlite(pool), &[SIGNUP], &config, Some(&smtp.url), None, 1, t0).await;
    shop.happen(&members("a", 20, t0, 2), t0).await;
    shop.at(t0 + Duration::minutes(1)).await;
    let to_ops: Vec<_> =
        smtp.mails().into_iter().filter(|m| m.rcpt_to.iter().any(|r| r.contains("ops@shop.example"))).collect();
    assert_eq!(to_ops.len(), 1, "one email for the transition to firing");
    let mail = mailparse::parse_mail(&to_ops[0].data).unwrap();
    use mailparse::MailHeaderMap as _;
    assert_eq!(mail.headers.get_first_value("Subject").unwrap(), "[tidings] FIRING delivery_failures");
    let text = mail.subparts.iter().find(|p| p.ctype.mimetype == "text/plain").unwrap().get_body().unwrap();
    assert!(text.contains("10 of 20 attempts failed in 15m (50%)"), "{text}");
    assert!(mail.headers.get_first_value("List-Unsubscribe").is_none(), "an alert is not marketing");
}

/// `line:col` (1-based) of byte `at` in `text`.
fn line_col(text: &str, at: usize) -> String {
    let line = text[..at].matches('\n').count() + 1;
    let col = text[..at].rfind('\n').map_or(at, |nl| at - nl - 1) + 1;
    format!("{line}:{col}")
}

#[test]
fn validate_checks_variants_channels_names_addresses_and_what_each_kind_needs() {
    let rules = r#"
[[alerts]]
name = "offer_variant"
kind = "delivery_failure_rate"
journey = "winback"
step = "offer"
variant = "tenoff"

[[alerts]]
name = "offer_sms"
kind = "unsubscribe_rate"
journey = "winback"
step = "offer"
channel = "sms"

[[alerts]]
name = "twice"
kind = "queue_lag"

[[alerts]]
name = "twice"
kind = "queue_lag"
threshold = "15m"

[[alerts]]
name = "stepless"
kind = "unsubscribe_rate"
step = "offer"

[[alerts]]
name = "no_goal"
kind = "conversion_drop"
journey = "tier_upgrade"

[[alerts]]
name = "mailto"
kind = "delivery_failure_rate"
email = "ops at shop"

[[alerts]]
name = "whose_conversion"
kind = "conversion_drop"
min_sample = 0
"#;
    let dir = project_with(rules);
    let text = std::fs::read_to_string(dir.path().join("tidings.toml")).unwrap();
    let out = tidings(dir.path(), &["validate", "--format", "short"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // (the value the problem is about, which occurrence of it, the code)
    for (needle, nth, code) in [
        ("\"tenoff\"", 0, "A007"),
        ("\"sms\"", 0, "A008"),
        ("\"twice\"", 1, "A010"), // the second rule of that name
        ("\"offer\"", 2, "A011"),
        ("\"tier_upgrade\"", 0, "A012"),
        ("\"ops at shop\"", 0, "A013"),
        ("\"conversion_drop\"", 1, "A014"),
        ("0\n", 0, "A004"),
    ] {
        let at = text.match_indices(needle).nth(nth).unwrap().0;
        let location = line_col(&text, at);
        let line = format!("tidings.toml:{location}: error[{code}]");
        assert!(stdout.lines().any(|l| l.starts_with(&line)), "expected `{line}` in:\n{stdout}");
    }
    assert!(stdout.contains("and 8 alert rules: 8 errors"), "{stdout}");
}

/// Indicative cost of an evaluation of the example rules (`tidings.toml`) over a large
/// SQLite store: `TIDINGS_ALERT_BENCH_N` (default 1,000,000) runs and deliveries over 30
/// days across five journeys (2% failed, half of them permanently; 10% converted) and a
/// fifth as many events (5% bounces, 3% unsubscribes), generated in SQL.
/// `cargo test --release --test it alerts::evaluation_cost -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn evaluation_cost() {
    let n: i64 = std::env::var("TIDINGS_ALERT_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("bench.db").display())).await.unwrap();
    let Store::Sqlite(pool) = &store else { unreachable!() };
    let seeded = std::time::Instant::now();
    // Instants: 2026-03-01 + a scrambled second of 30 days, in the stored text form.
    let at = |seed: &str| {
        format!(
            "strftime('%Y-%m-%dT%H:%M:%S', 1772323200 + ({seed}) * 2654435761 % 2592000, 'unixepoch') || '.000000Z'"
        )
    };
    let journey = "CASE i % 5 WHEN 0 THEN 'welcome' WHEN 1 THEN 'winback' WHEN 2 THEN 'birthday' \
                   WHEN 3 THEN 'reactivation' ELSE 'points_expiry' END";
    for statement in [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
             INSERT INTO runs (id, member_id, journey_id, journey_version, status, entered_at, converted_at, trigger_key) \
             SELECT i, 'm' || i, {journey}, 'v1', 'done', {}, CASE WHEN (i / 5) % 10 = 3 THEN {} END, 'k' || i FROM n",
            at("i"),
            at("i + (i % 7) * 3600")
        ),
        "INSERT INTO deliveries (id, run_id, step, member_id, journey_id, channel, status, reason, created_at, \
             attempted_at, sent_at, last_error) \
             SELECT id, id, 'hello', member_id, journey_id, 'email', \
             CASE WHEN id % 50 = 0 THEN 'failed' ELSE 'sent' END, \
             CASE WHEN id % 100 = 0 THEN 'permanent_failure' WHEN id % 50 = 0 THEN 'failed' END, \
             entered_at, entered_at, CASE WHEN id % 50 <> 0 THEN entered_at END, \
             CASE WHEN id % 50 = 0 THEN '550 no such user' END FROM runs"
            .to_string(),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n} / 5) \
             INSERT INTO events (id, member_id, name, occurred_at, properties, received_at) \
             SELECT 'e' || i, 'm' || i, CASE WHEN i % 100 < 5 THEN 'message.bounced' \
             WHEN i % 100 < 8 THEN 'member.unsubscribed' ELSE 'message.opened' END, {at_e}, \
             json_object('delivery_id', i * 5 % {n} + 1), {at_e} FROM n",
            at_e = at("i * 7")
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(pool).await.unwrap();
    }
    println!("seeded {n} runs and deliveries, {} events in {:?}", n / 5, seeded.elapsed());
    let config = Config::load(&root().join("tidings.toml"), true, |_| None).unwrap();
    let sources = Sources::standard(&config.workflows_dir, &config.templates_dir).unwrap();
    let project = Project::load(&sources, config.timezone());
    let (rules, problems) = tidings::service::alert_rules(&config, &project);
    assert!(problems.is_empty());
    let now = at_time("2026-03-31T00:00:00Z");
    for minute in 0..5 {
        let started = std::time::Instant::now();
        let changed =
            store.evaluate_alerts(&rules, "bench", now + Duration::minutes(minute), &|_| Vec::new()).await.unwrap();
        println!(
            "evaluation {minute}: {} rules in {:?} ({} transitions)",
            rules.len(),
            started.elapsed(),
            changed.map_or(0, |c| c.len())
        );
    }
    for a in store.alerts().await.unwrap() {
        println!("{:<20} {:<8} {:?} {:?}", a.rule, a.status.as_str(), a.value, a.numbers);
    }
}

fn at_time(text: &str) -> DateTime<Utc> {
    at(text)
}
