//! Faults of an HTTP provider (F5): a Twilio-like SMS API limited to 100 messages/s that
//! answers 429 with `Retry-After` once and 500 now and then; three workers share its rate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tidings::member::Event;
use tidings::store::Store;

use crate::harness::Fleet;
use crate::support::SmtpServer;
use crate::{enabled, secs};

const LIMIT: usize = 100;

const TEXT: &str = r#"id: text
name: Text
trigger: { event: member.created }
audience: sms_consent
steps:
  - id: hi
    send: { channel: sms, template: t/hi }
"#;

/// What the fake provider saw.
#[derive(Default)]
struct Seen {
    /// Arrival of every request.
    arrivals: Vec<Instant>,
    /// Accepted messages per recipient.
    accepted: HashMap<String, usize>,
    /// Requests in the last second (for the provider's own limit).
    window: VecDeque<Instant>,
    /// 429s the provider answered because it was sent more than its limit + 10 %.
    over_limit: usize,
    /// When the scripted 429 with `Retry-After` was answered.
    throttled_at: Option<Instant>,
    errors: usize,
}

async fn fake_sms(seen: Arc<Mutex<Seen>>) -> String {
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    async fn messages(State(seen): State<Arc<Mutex<Seen>>>, body: String) -> axum::response::Response {
        let now = Instant::now();
        let mut s = seen.lock().unwrap();
        s.arrivals.push(now);
        let n = s.arrivals.len();
        while s.window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            s.window.pop_front();
        }
        s.window.push_back(now);
        if s.window.len() > LIMIT + LIMIT / 10 {
            s.over_limit += 1;
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "over the limit").into_response();
        }
        if n == 1_000 {
            s.throttled_at = Some(now);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "3")],
                r#"{"code":20429,"message":"Too Many Requests"}"#,
            )
                .into_response();
        }
        if n % 97 == 0 {
            s.errors += 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response();
        }
        let to = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "To")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        *s.accepted.entry(to).or_default() += 1;
        (StatusCode::CREATED, axum::Json(json!({"sid": format!("SM{n}"), "status": "queued"}))).into_response()
    }
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", axum::routing::post(messages))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_three_workers_hold_a_providers_rate_and_its_retry_after_together() {
    if !enabled("F5") {
        return;
    }
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let url = fake_sms(seen.clone()).await;
    let config = format!(
        "[channels.sms]\nbase_url = \"{url}\"\naccount_sid = \"AC1\"\nfrom = \"+15550001111\"\nmessages_per_second = {LIMIT}\n\
         [channels.retry]\nbase_delay = \"1s\"\nmax_delay = \"2s\"\n"
    );
    let Some(mut fleet) = Fleet::with("f5", &config, &[("text", TEXT)], SmtpServer::start(None).await).await else {
        return;
    };
    std::fs::write(fleet.dir.path().join("templates/t/hi.sms.hbs"), "Hi {{member.first_name}}, reply STOP to opt out")
        .unwrap();
    fleet.env.push(("TIDINGS_SMS_AUTH_TOKEN".into(), "secret".into()));
    let members = 3_000;
    let store = Store::Postgres(fleet.pool.clone());
    let now = Utc::now();
    let events: Vec<Event> = (0..members)
        .map(|i| Event {
            id: format!("join-{i}"),
            member_id: format!("m{i:05}"),
            name: "member.created".into(),
            occurred_at: now,
            properties: json!({"phone": format!("+86138{i:08}"), "sms_consent": true, "first_name": format!("M{i}")}),
        })
        .collect();
    store.ingest_events(&events, now, &tidings::state::Settings::default()).await.unwrap();
    let start = Instant::now();
    let _workers: Vec<_> = (0..3).map(|_| fleet.worker()).collect();
    fleet
        .wait_for(
            "every SMS sent",
            "SELECT count(*) FROM deliveries WHERE status = 'sent'",
            members as i64,
            Duration::from_secs(180),
        )
        .await;
    let took = start.elapsed();
    let failed = fleet.count("SELECT count(*) FROM deliveries WHERE status = 'failed'").await;
    let s = seen.lock().unwrap();
    // The busiest second: the most requests in any window of one second.
    let mut busiest = 0;
    let mut from = 0;
    for (i, at) in s.arrivals.iter().enumerate() {
        while at.duration_since(s.arrivals[from]) >= Duration::from_secs(1) {
            from += 1;
        }
        busiest = busiest.max(i + 1 - from);
    }
    let throttled = s.throttled_at.expect("the provider answered 429 once");
    // After the 429 with Retry-After: 3, the provider heard nothing until the pause ended
    // (but from the sends already in flight).
    let after: Vec<Duration> =
        s.arrivals.iter().filter(|t| **t > throttled).map(|t| t.duration_since(throttled)).collect();
    let quiet = after.iter().find(|d| **d > Duration::from_millis(200)).copied().unwrap_or_default();
    let in_flight = after.iter().filter(|d| **d <= Duration::from_millis(200)).count();
    let lost = (0..members).filter(|i| !s.accepted.contains_key(&format!("+86138{i:08}"))).count();
    let duplicates: usize = s.accepted.values().map(|n| n - 1).sum();
    let rate = members as f64 / took.as_secs_f64();
    eprintln!(
        "FIGURE F5: 3 workers, {members} SMS to a provider limited to {LIMIT}/s: busiest second {busiest} requests, \
         {:.0}/s on average, {} answered 429 for going over; a 429 with Retry-After: 3 paused every worker — the next \
         request {} later ({in_flight} already in flight); {} 500s retried; {lost} lost, {duplicates} duplicates, \
         {failed} failed, in {}",
        rate,
        s.over_limit,
        secs(quiet),
        s.errors,
        secs(took)
    );
    assert!(busiest <= LIMIT + LIMIT / 10, "{busiest} in one second");
    assert_eq!(s.over_limit, 0);
    assert!(quiet >= Duration::from_millis(2_500), "the pause held {quiet:?}");
    assert_eq!((lost, failed), (0, 0));
}
