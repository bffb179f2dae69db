//! Webhook ingest under load: the real axum server on loopback, a Rust load generator of
//! `CONCURRENCY` clients (keep-alive connections) each posting signed Shopify
//! `orders/create` deliveries (the sample payload of `tests/fixtures/shopify`, ~6 KB,
//! a new order and webhook id each, customers cycling over 20,000) back to back for
//! `SECONDS`. Every 200 is a stored delivery: two events (the `order.placed` and the
//! customer's `member.updated`) committed through the group-commit ingest writer.
//!
//! Reports requests/s, events/s and latency percentiles, on SQLite (a temporary file,
//! the store's production settings) and on PostgreSQL (a fresh schema of
//! `TIDINGS_BENCH_POSTGRES_URL`, else `TIDINGS_TEST_POSTGRES_URL`; skipped when neither
//! is set), and the machine's load average before and after.
//!
//! `cargo bench --bench webhooks` (env: `CONCURRENCY`, default 64, or a list `16,64`;
//! `SECONDS`, default 10).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tidings::http::signature::sign_body_hmac;
use tidings::http::{AppState, Secrets, router};
use tidings::store::Store;

const SECRET: &[u8] = b"bench-shopify-secret";
const SAMPLE_ORDER: &str = "820982911946154508";
const SAMPLE_CUSTOMER: &str = "706405506930370084";
const CUSTOMERS: u64 = 20_000;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').filter_map(|v| v.trim().parse().ok()).collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

struct Outcome {
    ok: u64,
    refused: u64,
    failed: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Serves `store` on loopback and drives it for `seconds` with `concurrency` clients.
async fn run(store: Store, concurrency: usize, seconds: u64) -> Outcome {
    let state = AppState::new(store, tidings::state::Settings::default(), None, Arc::new(chrono::Utc::now))
        .with_secrets(Secrets { shopify: Some(SECRET.to_vec()), ..Secrets::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/shopify", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });

    let template = Arc::new(
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shopify/orders_create.json"))
            .unwrap(),
    );
    let next = Arc::new(AtomicU64::new(1));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (url, template, next, measuring, stop) =
            (url.clone(), template.clone(), next.clone(), measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let (mut ok, mut refused, mut failed, mut latencies) = (0u64, 0u64, 0u64, Vec::with_capacity(1 << 16));
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let body = template
                    .replace(SAMPLE_ORDER, &(900_000_000_000 + n).to_string())
                    .replace(SAMPLE_CUSTOMER, &(1 + n % CUSTOMERS).to_string());
                let started = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-shopify-hmac-sha256", sign_body_hmac(SECRET, body.as_bytes()))
                    .header("x-shopify-topic", "orders/create")
                    .header("x-shopify-webhook-id", format!("bench-{n}"))
                    .body(body)
                    .send()
                    .await;
                let status = match answer {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        let _ = answer.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                let took = started.elapsed();
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                match status {
                    200 => {
                        ok += 1;
                        latencies.push(took.as_micros().min(u32::MAX as u128) as u32);
                    }
                    503 => refused += 1,
                    _ => failed += 1,
                }
            }
            (ok, refused, failed, latencies)
        }));
    }
    // One second to warm up (connections, caches), then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut outcome = Outcome { ok: 0, refused: 0, failed: 0, seconds: elapsed, latencies_us: Vec::new() };
    for task in tasks {
        let (ok, refused, failed, latencies) = task.await.unwrap();
        outcome.ok += ok;
        outcome.refused += refused;
        outcome.failed += failed;
        outcome.latencies_us.extend(latencies);
    }
    server.abort();
    outcome.latencies_us.sort_unstable();
    outcome
}

fn report(engine: &str, concurrency: usize, outcome: &Outcome) {
    let l = &outcome.latencies_us;
    println!(
        "{engine:<10} concurrency {concurrency:>3}: {:>7.0} deliveries/s = {:>7.0} events/s   p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms   ({} ok, {} 503, {} failed in {:.1} s)",
        outcome.ok as f64 / outcome.seconds,
        2.0 * outcome.ok as f64 / outcome.seconds,
        percentile(l, 0.50),
        percentile(l, 0.99),
        l.last().copied().unwrap_or(0) as f64 / 1000.0,
        outcome.ok,
        outcome.refused,
        outcome.failed,
        outcome.seconds,
    );
}

async fn postgres_store() -> Option<(Store, PgConnectOptions, String)> {
    let url =
        std::env::var("TIDINGS_BENCH_POSTGRES_URL").or_else(|_| std::env::var("TIDINGS_TEST_POSTGRES_URL")).ok()?;
    let base = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
    let schema = format!("bench_webhooks_{}", std::process::id());
    let mut admin = PgConnection::connect_with(&base).await.expect("connect to PostgreSQL");
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
    admin.close().await.ok();
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(base.clone().options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let store = Store::Postgres(pool);
    store.migrate().await.unwrap();
    Some((store, base, schema))
}

#[tokio::main]
async fn main() {
    let seconds = env_list("SECONDS", "10").first().copied().unwrap_or(10) as u64;
    let concurrencies = env_list("CONCURRENCY", "64");
    println!("webhook ingest: {seconds} s per run, load average before: {}", load_average());
    for &concurrency in &concurrencies {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tidings.db").display());
        let store = Store::open(&url).await.unwrap();
        let outcome = run(store, concurrency, seconds).await;
        report("SQLite", concurrency, &outcome);
    }
    for &concurrency in &concurrencies {
        let Some((store, base, schema)) = postgres_store().await else {
            println!("PostgreSQL skipped: set TIDINGS_BENCH_POSTGRES_URL or TIDINGS_TEST_POSTGRES_URL");
            break;
        };
        let outcome = run(store, concurrency, seconds).await;
        report("PostgreSQL", concurrency, &outcome);
        if let Ok(mut admin) = PgConnection::connect_with(&base).await {
            let _ = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut admin).await;
        }
    }
    println!("load average after: {}", load_average());
}
