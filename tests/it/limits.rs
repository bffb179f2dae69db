//! Provider limits and caps across workers: the shared token bucket, the breaker and
//! `Retry-After` pauses as the engine applies them (deliveries wait uncharged, nothing
//! fails), and a member's frequency cap with two workers deciding at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tidings::breaker::Bucket;
use tidings::channels::{Channels, Outgoing, Receipt, SendError, Sender};
use tidings::member::Event;

use crate::engines::on_both_engines;
use crate::shop::{HELLO_EMAIL, Shop, at, load_engine_with};

/// An email provider that is down (connection refused) while `down` is set, or answers
/// `429` with `Retry-After` when `throttle` is set, and counts what it accepted.
#[derive(Default)]
struct Flaky {
    down: AtomicBool,
    throttle: AtomicBool,
    accepted: AtomicUsize,
    tried: AtomicUsize,
}

#[async_trait::async_trait]
impl Sender for Flaky {
    async fn send(&self, _msg: &Outgoing) -> Result<Receipt, SendError> {
        self.tried.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(SendError::unavailable("cannot connect to smtp.example:25: connection refused", None));
        }
        if self.throttle.swap(false, Ordering::SeqCst) {
            return Err(SendError::unavailable("429 Too Many Requests", Some(Duration::from_secs(30))));
        }
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Ok(Receipt::default())
    }
}

const SIGNUP: &str = "id: signup\nname: Signup\ntrigger: { event: member.created }\naudience: email_consent\nsteps:\n  - id: hello\n    send: { channel: email, template: t/hello }\n";

fn joined(i: usize, now: chrono::DateTime<chrono::Utc>) -> Event {
    Event {
        id: format!("join-{i}"),
        member_id: format!("m{i:03}"),
        name: "member.created".into(),
        occurred_at: now,
        properties: json!({ "email": format!("m{i}@example.com"), "email_consent": true }),
    }
}

async fn count(store: &tidings::store::Store, status: &str) -> usize {
    let mut n = 0;
    for i in 0..20 {
        n += store.deliveries_of(&format!("m{i:03}"), 10).await.unwrap().iter().filter(|d| d.status == status).count();
    }
    n
}

on_both_engines! {
    async fn a_provider_that_is_down_is_paused_and_probed_and_its_deliveries_wait_uncharged(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        // One send at a time, so the breaker's opening is seen before the next send.
        let shop = Shop::new(store.clone(), &[SIGNUP], "[engine]\nsend_concurrency = 1\n", t0).await;
        let provider = Arc::new(Flaky::default());
        let email: Arc<dyn Sender> = provider.clone();
        let channels = Channels::outbox(shop.dir.path().join("outbox")).with(tidings::channel::Channel::Email, email);
        let engine = load_engine_with(shop.dir.path(), store.clone(), t0, channels).await;
        provider.down.store(true, Ordering::SeqCst);
        let events: Vec<Event> = (0..20).map(|i| joined(i, t0)).collect();
        store.ingest_events(&events, t0, engine.settings()).await.unwrap();
        engine.settle(t0).await.unwrap();

        // The breaker opened after 5 failures: the rest were not even tried.
        let health = store.provider_health().await.unwrap();
        let email_health = health.get("email").expect("the provider has a row");
        assert!(email_health.probing, "{email_health:?}");
        assert!(provider.tried.load(Ordering::SeqCst) < 20, "tried {}", provider.tried.load(Ordering::SeqCst));
        assert_eq!(count(&store, "failed").await, 0, "nothing fails for a provider that is down");
        assert_eq!(count(&store, "pending").await, 20);

        // Still down at the probe: one message probes, the pause doubles.
        let tried = provider.tried.load(Ordering::SeqCst);
        engine.settle(t0 + chrono::Duration::seconds(3)).await.unwrap();
        assert_eq!(provider.tried.load(Ordering::SeqCst), tried + 1, "one probe");
        let health = store.provider_health().await.unwrap()["email"].clone();
        assert_eq!(health.pause, chrono::Duration::seconds(4));

        // Back: the next probe closes the breaker and everything goes within seconds.
        provider.down.store(false, Ordering::SeqCst);
        let mut all_sent = None;
        for second in 8..=30 {
            engine.settle(t0 + chrono::Duration::seconds(second)).await.unwrap();
            if count(&store, "sent").await == 20 {
                all_sent = Some(second);
                break;
            }
        }
        // The probe at 7 s (after the doubled pause) closes the breaker; the messages that
        // waited on the probe go 2 s later, and the four that failed before the breaker
        // opened retry within its longest pause (16 s), not on their own backoff (minutes).
        assert!(all_sent.is_some_and(|s| s <= 17), "all sent at {all_sent:?} s");
        assert!(store.provider_health().await.unwrap()["email"].is_clear());
        assert_eq!(provider.accepted.load(Ordering::SeqCst), 20);
        // Only the five failures before the breaker opened, and the failed probe, were
        // charged; the waits were not.
        let mut attempts = 0;
        for i in 0..20 {
            attempts += store.deliveries_of(&format!("m{i:03}"), 10).await.unwrap()[0].attempts;
        }
        assert!(attempts <= 20 + 6, "{attempts} attempts for 20 deliveries");
    }

    async fn retry_after_pauses_the_whole_provider_for_that_long(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::new(store.clone(), &[SIGNUP], "[engine]\nsend_concurrency = 1\n", t0).await;
        let provider = Arc::new(Flaky::default());
        let email: Arc<dyn Sender> = provider.clone();
        let channels = Channels::outbox(shop.dir.path().join("outbox")).with(tidings::channel::Channel::Email, email);
        let engine = load_engine_with(shop.dir.path(), store.clone(), t0, channels).await;
        provider.throttle.store(true, Ordering::SeqCst);
        let events: Vec<Event> = (0..20).map(|i| joined(i, t0)).collect();
        store.ingest_events(&events, t0, engine.settings()).await.unwrap();
        engine.settle(t0).await.unwrap();
        // One 429 with Retry-After: 30 s, and every other delivery waits for it.
        assert!(provider.accepted.load(Ordering::SeqCst) <= 2, "{}", provider.accepted.load(Ordering::SeqCst));
        engine.settle(t0 + chrono::Duration::seconds(29)).await.unwrap();
        assert!(provider.accepted.load(Ordering::SeqCst) <= 2);
        engine.settle(t0 + chrono::Duration::seconds(31)).await.unwrap();
        assert_eq!(count(&store, "sent").await, 20);
        assert_eq!(count(&store, "failed").await, 0);
    }

    async fn the_shared_bucket_grants_a_twentieth_of_a_second_and_refills_at_the_rate(store) {
        let bucket = Bucket::for_rate(100);
        let first = store.take_tokens("sms", bucket, 50, 1_000_000).await.unwrap();
        assert_eq!(first.granted, 5, "a fresh bucket is full: a twentieth of a second's worth");
        assert_eq!(store.take_tokens("sms", bucket, 50, 1_000_000).await.unwrap().granted, 0);
        // SQLite measures on the caller's clock; PostgreSQL on its own, so only the ceiling
        // is checked there.
        let later = store.take_tokens("sms", bucket, 50, 1_050_000).await.unwrap().granted;
        assert!(later <= 5, "{later}");
        if store.dialect() == tidings::store::Dialect::Sqlite {
            assert_eq!(later, 5, "50 s later the bucket is full again, not fuller");
            assert_eq!(store.take_tokens("sms", bucket, 50, 1_050_030).await.unwrap().granted, 3);
        }
        // Another provider's bucket is its own.
        assert_eq!(store.take_tokens("push", bucket, 3, 1_000_000).await.unwrap().granted, 3);
    }

    async fn one_worker_takes_a_probe(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let policy = tidings::breaker::Policy::default();
        let down = tidings::breaker::Event::Failed { reason: "refused".into(), retry_after: None };
        store.update_provider_health("email", |h| h.after_all(&[down.clone(), down.clone(), down.clone(), down.clone(), down.clone()], t0, &policy)).await.unwrap();
        let after = t0 + chrono::Duration::seconds(2);
        let hold = after + chrono::Duration::seconds(30);
        assert!(!store.take_probe("email", t0, hold).await.unwrap(), "not before the pause ends");
        assert!(store.take_probe("email", after, hold).await.unwrap());
        assert!(!store.take_probe("email", after, hold).await.unwrap(), "a probe is out");
        assert!(store.take_probe("email", hold, hold + chrono::Duration::seconds(30)).await.unwrap(), "one that never answered is taken again");
    }
}

/// Two journeys send to the same member at once; the cap allows one email a week.
const CART: &str = "id: a\nname: A\ntrigger: { event: cart.abandoned }\nsteps:\n  - id: w\n    wait: 1m\n  - id: m\n    send: { channel: email, template: t/hello }\n";
const REFERRAL: &str = "id: b\nname: B\ntrigger: { event: referral.completed }\nsteps:\n  - id: w\n    wait: 1m\n  - id: m\n    send: { channel: email, template: t/hello }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_deciding_one_member_at_once_hold_its_frequency_cap() {
    let Some(pool) = crate::support::postgres_pool("frequency_cap_race").await else { return };
    let store = tidings::store::Store::Postgres(pool);
    let t0 = at("2026-03-02T02:00:00Z");
    let config = "[policies.frequency_caps]\nemail = \"1 per 7d\"\n[engine]\nbatch = 1\n";
    let shop = Shop::new(store.clone(), &[CART, REFERRAL], config, t0).await;
    let _ = HELLO_EMAIL;
    let workers = [
        Arc::new(crate::shop::load_engine(shop.dir.path(), store.clone(), t0).await),
        Arc::new(crate::shop::load_engine(shop.dir.path(), store.clone(), t0).await),
    ];
    // One member at a time, with a run in each journey due at once: the two workers each
    // claim one of them, side by side.
    let members = 30;
    for i in 0..members {
        let m = format!("r{i:03}");
        let t = t0 + chrono::Duration::hours(i as i64);
        let events = [
            Event {
                id: format!("j{i}"),
                member_id: m.clone(),
                name: "member.created".into(),
                occurred_at: t,
                properties: json!({ "email": format!("{m}@example.com"), "email_consent": true }),
            },
            Event {
                id: format!("c{i}"),
                member_id: m.clone(),
                name: "cart.abandoned".into(),
                occurred_at: t,
                properties: json!({}),
            },
            Event {
                id: format!("r{i}"),
                member_id: m,
                name: "referral.completed".into(),
                occurred_at: t,
                properties: json!({}),
            },
        ];
        store.ingest_events(&events, t, shop.engine.settings()).await.unwrap();
        shop.engine.settle(t).await.unwrap();
        let due = t + chrono::Duration::minutes(1);
        let tasks: Vec<_> = workers
            .iter()
            .map(|w| {
                let w = Arc::clone(w);
                tokio::spawn(async move { w.advance(due).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        shop.engine.settle(due).await.unwrap();
    }
    let mut over = Vec::new();
    for i in 0..members {
        let m = format!("r{i:03}");
        let deliveries = store.deliveries_of(&m, 10).await.unwrap();
        let sends = deliveries.iter().filter(|d| d.status != "skipped").count();
        assert_eq!(deliveries.len(), 2, "{m}: both runs decided");
        if sends > 1 {
            over.push(m);
        }
    }
    assert!(over.is_empty(), "members sent two emails under a cap of one: {over:?}");
}
