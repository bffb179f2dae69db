//! Bad input (F7, F8) against a real `serve`: the same signed event delivered three
//! times and out of order, a replay older than the tolerance; a template that cannot render
//! for one member.

use std::time::{Duration, Instant};

use serde_json::json;
use tidings::http::signature::sign_standard;

use crate::harness::{Fleet, sent_deliveries, terminate};
use crate::support::SmtpServer;
use crate::{enabled, secs};

/// `whsec_` + base64 of this key.
const KEY: &[u8] = b"fault-suite-standard-webhooks-key";

fn whsec() -> String {
    use base64::Engine as _;
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(KEY))
}

/// A free port on the loopback (bound and let go: `serve` binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn up(base: &str) {
    let start = Instant::now();
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const ORDERED: &str = r#"id: ordered
name: Thanks for the order
trigger: { event: order.placed }
audience: email_consent
entry: { reentry: always }
steps:
  - id: thank
    send: { channel: email, template: t/hello }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_a_webhook_delivered_three_times_out_of_order_is_one_event_and_a_stale_replay_is_refused() {
    if !enabled("F7") {
        return;
    }
    let port = free_port();
    let config = format!("listen = \"127.0.0.1:{port}\"\n");
    let Some(fleet) = Fleet::with("f7", &config, &[("ordered", ORDERED)], SmtpServer::start(None).await).await else {
        return;
    };
    fleet.members_join(1).await;
    let mut serve = fleet.process("serve", &[("TIDINGS_WEBHOOK_SECRET", &whsec())]);
    let base = format!("http://127.0.0.1:{port}");
    up(&base).await;
    let client = reqwest::Client::new();
    let send = |id: &'static str, at: i64, body: String| {
        let client = client.clone();
        let url = format!("{base}/v1/events");
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", at.to_string())
                .header("webhook-signature", sign_standard(KEY, id, at, body.as_bytes()))
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let now = chrono::Utc::now();
    let event = |id: &str, minutes_ago: i64| {
        json!({ "id": id, "member_id": "m00000", "name": "order.placed",
                "occurred_at": (now - chrono::Duration::minutes(minutes_ago)).to_rfc3339(),
                "properties": { "total": 1000, "currency": "CNY" } })
        .to_string()
    };
    // The later order first, then the earlier one three times (a shop retrying).
    let mut statuses = vec![send("msg_b", now.timestamp(), event("order-b", 1)).await.status().as_u16()];
    for _ in 0..3 {
        statuses.push(send("msg_a", now.timestamp(), event("order-a", 2)).await.status().as_u16());
    }
    // A replay of a captured delivery, signed ten minutes ago.
    let stale = send("msg_a", now.timestamp() - 600, event("order-a", 2)).await;
    let stale_status = stale.status().as_u16();
    let stale_reason = stale.text().await.unwrap_or_default();
    fleet.wait_for("two thanks sent", sent_deliveries(), 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = fleet.count("SELECT count(*) FROM events WHERE name = 'order.placed'").await;
    let runs = fleet.count("SELECT count(*) FROM runs WHERE journey_id = 'ordered'").await;
    let mails = fleet.smtp.mails().len();
    terminate(&serve);
    let _ = serve.wait().await;
    eprintln!(
        "FIGURE F7: 2 orders, one delivered 3 times and out of order ({statuses:?}), a replay signed 10 min ago \
         answered {stale_status}: {events} events stored, {runs} runs, {mails} emails"
    );
    assert_eq!(statuses, [202, 202, 202, 202]);
    assert_eq!(stale_status, 401, "{stale_reason}");
    assert_eq!((events, runs, mails), (2, 2, 2));
}

const NICKNAMED: &str = r#"id: nicknamed
name: By nickname
trigger: { event: member.created }
audience: email_consent
steps:
  - id: hello
    send: { channel: email, template: t/nick }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_a_template_that_fails_for_one_member_fails_that_delivery_only() {
    if !enabled("F8") {
        return;
    }
    let Some(fleet) = Fleet::with("f8", "", &[("nicknamed", NICKNAMED)], SmtpServer::start(None).await).await else {
        return;
    };
    std::fs::write(
        fleet.dir.path().join("templates/t/nick.email.hbs"),
        "---\nsubject: \"Hi {{member.attributes.nickname}}\"\n---\n<p>Hi {{member.attributes.nickname}}.</p>\n",
    )
    .unwrap();
    let members = 1_000;
    // Every member has a nickname but m00007.
    let store = tidings::store::Store::Postgres(fleet.pool.clone());
    let now = chrono::Utc::now();
    let events: Vec<tidings::member::Event> = (0..members)
        .map(|i| tidings::member::Event {
            id: format!("join-{i}"),
            member_id: format!("m{i:05}"),
            name: "member.created".into(),
            occurred_at: now,
            properties: if i == 7 {
                json!({"email": format!("m{i}@example.com"), "email_consent": true})
            } else {
                json!({"email": format!("m{i}@example.com"), "email_consent": true, "attributes": {"nickname": format!("N{i}")}})
            },
        })
        .collect();
    store.ingest_events(&events, now, &tidings::state::Settings::default()).await.unwrap();
    let start = Instant::now();
    let _worker = fleet.worker();
    let settled = "SELECT count(*) FROM deliveries WHERE status IN ('sent', 'failed')";
    fleet.wait_for("every delivery settled", settled, members as i64, Duration::from_secs(60)).await;
    let took = start.elapsed();
    let failed: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT member_id, last_error FROM deliveries WHERE status = 'failed'")
            .fetch_all(&fleet.pool)
            .await
            .unwrap();
    let sent = fleet.count(sent_deliveries()).await;
    eprintln!(
        "FIGURE F8: {members} emails, one member without the field its template needs: {} failed ({:?}), {sent} sent, \
         all settled in {}",
        failed.len(),
        failed.first().map(|(m, e)| format!("{m}: {}", e.clone().unwrap_or_default())),
        secs(took)
    );
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "m00007");
    assert_eq!(sent, members as i64 - 1);
}
