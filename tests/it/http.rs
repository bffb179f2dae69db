//! The HTTP API over a real socket: the bearer token, JSON errors, replays.

use std::sync::Arc;

use serde_json::json;
use tidings::http::{AppState, router};
use tidings::store::Store;

use crate::engines::on_both_engines;

/// Serves the API on a free port; returns its base URL.
async fn spawn_app(store: Store) -> String {
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-02T02:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let state = AppState {
        store,
        settings: Arc::new(tidings::state::Settings::default()),
        api_token: Some("s3cret".into()),
        now: Arc::new(move || now),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    format!("http://{address}")
}

on_both_engines! {
    async fn events_need_the_token_are_stored_once_and_bad_ones_change_nothing(store) {
        let base = spawn_app(store.clone()).await;
        let client = reqwest::Client::new();
        let order = json!({ "id": "evt-1", "member_id": "m1", "name": "order.placed",
                            "occurred_at": "2026-03-01T10:00:00Z", "properties": { "total": 12_000, "currency": "CNY" } });

        let no_token = client.post(format!("{base}/v1/events")).json(&order).send().await.unwrap();
        assert_eq!(no_token.status(), 401);
        let wrong = client.post(format!("{base}/v1/events")).bearer_auth("nope").json(&order).send().await.unwrap();
        assert_eq!(wrong.status(), 401);
        assert_eq!(store.event_count("m1").await.unwrap(), 0);

        for expected in [json!({ "accepted": 1, "duplicates": 0 }), json!({ "accepted": 0, "duplicates": 1 })] {
            let answer = client.post(format!("{base}/v1/events")).bearer_auth("s3cret").json(&order).send().await.unwrap();
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
        let answer = client.post(format!("{base}/v1/events")).bearer_auth("s3cret").json(&batch).send().await.unwrap();
        assert_eq!(answer.status(), 400);
        let reason = answer.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().to_string();
        assert!(reason.contains("item 1") && reason.contains("Order Placed"), "{reason}");
        let broken = client.post(format!("{base}/v1/events")).bearer_auth("s3cret").body("{not json").send().await.unwrap();
        assert_eq!(broken.status(), 400);
        assert_eq!(store.event_count("m1").await.unwrap(), 1, "nothing half-applied");

        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
}
