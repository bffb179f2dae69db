//! The HTTP API over a real socket: the bearer token, Standard Webhooks signatures, JSON
//! errors, replays, body limits, overload, metrics.

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::json;
use tidings::http::signature::sign_standard;
use tidings::http::{AppState, IngestOptions, Secrets, router};
use tidings::store::Store;

use crate::engines::on_both_engines;

pub(crate) const API_TOKEN: &str = "s3cret";
pub(crate) const SHOPIFY_SECRET: &[u8] = b"shopify-test-secret";
pub(crate) const WOOCOMMERCE_SECRET: &[u8] = b"woocommerce-test-secret";
pub(crate) const WEBHOOK_KEY: &[u8] = b"standard-webhooks-test-key";

pub(crate) fn test_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T02:00:00Z").unwrap().with_timezone(&Utc)
}

/// The state of a test server at `now`: every secret set, links signed by
/// `support::link_signer`.
pub(crate) fn app_state(store: Store, now: DateTime<Utc>) -> AppState {
    let secrets = Secrets {
        shopify: Some(SHOPIFY_SECRET.to_vec()),
        woocommerce: Some(WOOCOMMERCE_SECRET.to_vec()),
        standard_webhooks: Some(WEBHOOK_KEY.to_vec()),
    };
    AppState::new(store, tidings::state::Settings::default(), Some(API_TOKEN.into()), Arc::new(move || now))
        .with_secrets(secrets)
        .with_links(crate::support::link_signer())
}

/// Serves `state` on a free port; returns its base URL.
pub(crate) async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    format!("http://{address}")
}

/// Serves the API on a free port at [`test_now`]; returns its base URL.
pub(crate) async fn spawn_app(store: Store) -> String {
    serve(app_state(store, test_now())).await
}

/// A client that shows redirects instead of following them.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A request to `url` signed with Standard Webhooks at `timestamp`.
fn signed(client: &reqwest::Client, url: &str, id: &str, timestamp: i64, body: &str) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign_standard(WEBHOOK_KEY, id, timestamp, body.as_bytes()))
        .body(body.to_string())
}

async fn error_of(answer: reqwest::Response) -> String {
    answer.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap_or_default().to_string()
}

on_both_engines! {
    async fn events_need_the_token_are_stored_once_and_bad_ones_change_nothing(store) {
        let base = spawn_app(store.clone()).await;
        let client = client();
        let order = json!({ "id": "evt-1", "member_id": "m1", "name": "order.placed",
                            "occurred_at": "2026-03-01T10:00:00Z", "properties": { "total": 12_000, "currency": "CNY" } });

        let no_token = client.post(format!("{base}/v1/events")).json(&order).send().await.unwrap();
        assert_eq!(no_token.status(), 401);
        let wrong = client.post(format!("{base}/v1/events")).bearer_auth("nope").json(&order).send().await.unwrap();
        assert_eq!(wrong.status(), 401);
        assert_eq!(store.event_count("m1").await.unwrap(), 0);

        for expected in [json!({ "accepted": 1, "duplicates": 0 }), json!({ "accepted": 0, "duplicates": 1 })] {
            let answer = client.post(format!("{base}/v1/events")).bearer_auth(API_TOKEN).json(&order).send().await.unwrap();
            assert_eq!(answer.status(), 202);
            assert_eq!(answer.json::<serde_json::Value>().await.unwrap(), expected);
        }
        assert_eq!(store.event_count("m1").await.unwrap(), 1, "a replayed id is stored once");
        assert_eq!(store.member("m1").await.unwrap().unwrap().total_spend, 12_000);
        assert_eq!(store.inbox_len().await.unwrap(), 1, "the engine will see it once");

        // A batch with one bad item is refused whole.
        let batch = json!([
            { "id": "evt-2", "member_id": "m1", "name": "order.placed", "properties": { "total": 500 } },
            { "id": "evt-3", "member_id": "m1", "name": "Order Placed" },
        ]);
        let answer = client.post(format!("{base}/v1/events")).bearer_auth(API_TOKEN).json(&batch).send().await.unwrap();
        assert_eq!(answer.status(), 400);
        let reason = answer.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().to_string();
        assert!(reason.contains("item 1") && reason.contains("Order Placed"), "{reason}");
        let broken = client.post(format!("{base}/v1/events")).bearer_auth(API_TOKEN).body("{not json").send().await.unwrap();
        assert_eq!(broken.status(), 400);
        assert_eq!(store.event_count("m1").await.unwrap(), 1, "nothing half-applied");

        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }

    async fn standard_webhooks_signed_requests_are_accepted_and_forged_or_stale_ones_refused(store) {
        let base = spawn_app(store.clone()).await;
        let client = client();
        let url = format!("{base}/v1/events");
        let now = test_now().timestamp();
        let body = json!({ "id": "sw-1", "member_id": "m2", "name": "referral.completed",
                           "occurred_at": "2026-03-01T10:00:00Z", "properties": { "friend": "m3" } }).to_string();

        // Forged: a signature over another body, another key, or nothing usable.
        let forged = signed(&client, &url, "msg_1", now, &body.replace("m3", "m4")).body(body.clone());
        assert_eq!(forged.send().await.unwrap().status(), 401);
        let other_key = client.post(&url).header("webhook-id", "msg_1").header("webhook-timestamp", now.to_string())
            .header("webhook-signature", sign_standard(b"another key", "msg_1", now, body.as_bytes())).body(body.clone());
        let answer = other_key.send().await.unwrap();
        assert_eq!(answer.status(), 401);
        assert!(error_of(answer).await.contains("does not match"));
        let no_version = client.post(&url).header("webhook-id", "msg_1").header("webhook-timestamp", now.to_string())
            .header("webhook-signature", "v2,AAAA").body(body.clone());
        assert_eq!(no_version.send().await.unwrap().status(), 401);
        // Stale, both ways: more than five minutes from the server's clock.
        for skew in [-301, 301] {
            let answer = signed(&client, &url, "msg_1", now + skew, &body).send().await.unwrap();
            assert_eq!(answer.status(), 401, "skew {skew}");
            assert!(error_of(answer).await.contains("5 minutes"));
        }
        assert_eq!(store.event_count("m2").await.unwrap(), 0, "nothing stored from refused requests");

        // Valid, at the edges of the tolerance; then the same message replayed.
        for (skew, accepted) in [(-300, 1), (300, 0), (0, 0)] {
            let answer = signed(&client, &url, "msg_1", now + skew, &body).send().await.unwrap();
            assert_eq!(answer.status(), 202);
            assert_eq!(answer.json::<serde_json::Value>().await.unwrap()["accepted"], accepted);
        }
        assert_eq!(store.event_count("m2").await.unwrap(), 1, "a replayed message is stored once");

        // Members: a signed upsert is keyed by its webhook-id, so a replay changes nothing.
        let members = format!("{base}/v1/members");
        let ada = json!([{ "id": "ada", "email": "ada@example.com", "email_consent": true }]).to_string();
        for accepted in [1, 0] {
            let answer = signed(&client, &members, "msg_2", now, &ada).send().await.unwrap();
            assert_eq!(answer.status(), 202);
            assert_eq!(answer.json::<serde_json::Value>().await.unwrap()["accepted"], accepted);
        }
        assert_eq!(store.event_count("ada").await.unwrap(), 1);
        assert_eq!(store.member("ada").await.unwrap().unwrap().email.as_deref(), Some("ada@example.com"));
        // Neither a token nor a signature.
        let answer = client.post(&members).body(ada.clone()).send().await.unwrap();
        assert_eq!(answer.status(), 401);
        assert!(error_of(answer).await.contains("Standard Webhooks"));
        // A bearer header always decides, even next to a valid signature.
        let both = signed(&client, &members, "msg_3", now, &ada).bearer_auth("nope");
        assert_eq!(both.send().await.unwrap().status(), 401);
    }

    async fn oversized_and_malformed_bodies_are_refused_with_a_reason_and_store_nothing(store) {
        let base = spawn_app(store.clone()).await;
        let client = client();
        let big = format!("[{}]", vec![r#"{"id":"x","member_id":"m9","name":"a.b"}"#; 30_000].join(","));
        assert!(big.len() > tidings::http::BODY_LIMIT);
        let answer = client.post(format!("{base}/v1/events")).bearer_auth(API_TOKEN).body(big.clone()).send().await.unwrap();
        assert_eq!(answer.status(), 413);
        assert!(!error_of(answer).await.is_empty(), "a JSON reason");
        let signature = tidings::http::signature::sign_body_hmac(SHOPIFY_SECRET, big.as_bytes());
        let answer = client.post(format!("{base}/webhooks/shopify")).header("x-shopify-hmac-sha256", signature)
            .header("x-shopify-topic", "orders/create").header("x-shopify-webhook-id", "w-big").body(big).send().await.unwrap();
        assert_eq!(answer.status(), 413);

        let broken = "{\"id\": 1, ";
        let signature = tidings::http::signature::sign_body_hmac(SHOPIFY_SECRET, broken.as_bytes());
        let answer = client.post(format!("{base}/webhooks/shopify")).header("x-shopify-hmac-sha256", signature)
            .header("x-shopify-topic", "orders/create").header("x-shopify-webhook-id", "w-broken").body(broken).send().await.unwrap();
        assert_eq!(answer.status(), 400);
        assert!(error_of(answer).await.contains("not JSON"));
        let answer = signed(&client, &format!("{base}/v1/events"), "msg_x", test_now().timestamp(), "[1, 2]").send().await.unwrap();
        assert_eq!(answer.status(), 400);
        assert!(error_of(answer).await.contains("item 0"));
        assert_eq!(store.event_count("m9").await.unwrap(), 0);
        assert_eq!(store.inbox_len().await.unwrap(), 0);
    }

    async fn a_full_ingest_queue_answers_503_with_retry_after_and_drops_nothing_it_accepted(store) {
        // One request in the writer (blocked by a held write lock) and one queued: the
        // others must be refused at once, with Retry-After, never dropped silently.
        let state = app_state(store.clone(), test_now())
            .with_ingest(IngestOptions { capacity: 1, max_requests: 1, max_events: 1 });
        let base = serve(state).await;
        let lock = hold_write_lock(&store).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..6 {
            let (client, base, tx) = (client(), base.clone(), tx.clone());
            tokio::spawn(async move {
                let event = json!({ "id": format!("load-{i}"), "member_id": "m5", "name": "x.y" });
                let answer = client.post(format!("{base}/v1/events")).bearer_auth(API_TOKEN).json(&event).send().await.unwrap();
                let retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                tx.send((answer.status().as_u16(), retry_after)).unwrap();
            });
        }
        drop(tx);
        let mut refused = 0;
        while refused < 4 {
            let (status, retry_after) = rx.recv().await.unwrap();
            assert_eq!(status, 503, "at most two requests fit in the writer and the queue");
            assert_eq!(retry_after.as_deref(), Some("1"));
            refused += 1;
        }
        lock.release().await;
        let mut stored = 0;
        while let Some((status, _)) = rx.recv().await {
            assert!(status == 202 || status == 503, "{status}");
            stored += usize::from(status == 202);
        }
        assert!(stored >= 1, "the request the writer held is stored once the lock is gone");
        assert_eq!(store.event_count("m5").await.unwrap(), stored as i64, "what was answered 2xx is stored, nothing else");
    }

    async fn metrics_need_the_token_and_show_ingest_and_queue_depths(store) {
        let base = spawn_app(store.clone()).await;
        let client = client();
        let event = json!({ "id": "metric-1", "member_id": "m6", "name": "x.y" });
        client.post(format!("{base}/v1/events")).bearer_auth(API_TOKEN).json(&event).send().await.unwrap();
        assert_eq!(client.get(format!("{base}/metrics")).send().await.unwrap().status(), 401);
        let answer = client.get(format!("{base}/metrics")).bearer_auth(API_TOKEN).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = answer.text().await.unwrap();
        for name in ["tidings_events_ingested_total{source=\"api\"}", "tidings_ingest_queue_depth", "tidings_due_deliveries",
                     "tidings_due_runs", "tidings_inbox_depth", "tidings_ingest_batch_requests_bucket"] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}

/// A write lock held on the store until released (SQLite: `BEGIN IMMEDIATE` on its own
/// connection; PostgreSQL: an exclusive lock on `events`).
pub(crate) enum WriteLock {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

pub(crate) async fn hold_write_lock(store: &Store) -> WriteLock {
    match store {
        Store::Sqlite(pool) => {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.unwrap();
            WriteLock::Sqlite(conn)
        }
        Store::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
            WriteLock::Postgres(tx)
        }
        Store::Memory(_) => unreachable!("tests run on a file or PostgreSQL"),
    }
}

impl WriteLock {
    pub(crate) async fn release(self) {
        match self {
            WriteLock::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
            }
            WriteLock::Postgres(tx) => tx.rollback().await.unwrap(),
        }
    }
}

#[test]
fn the_test_webhook_key_is_what_a_whsec_secret_decodes_to() {
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(WEBHOOK_KEY));
    let secrets = Secrets::from_env(|name| (name == "TIDINGS_WEBHOOK_SECRET").then(|| secret.clone())).unwrap();
    assert_eq!(secrets.standard_webhooks.as_deref(), Some(WEBHOOK_KEY));
    assert!(Secrets::from_env(|name| (name == "TIDINGS_WEBHOOK_SECRET").then(|| "plain".to_string())).is_err());
}
