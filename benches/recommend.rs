//! Recommendations at scale, on SQLite (a file, as `serve` opens it), or on a fresh
//! PostgreSQL database with `TIDINGS_BENCH_POSTGRES_URL=postgres://…/db` (as
//! `benches/engine.rs`):
//!
//! 1. load: a catalogue of 5,000 products in 50 categories and `MEMBERS` × 5 order lines
//!    (one order of five lines per member; 70 % of a member's lines from a "taste" of ten
//!    products, the rest anywhere), written straight into the tables by SQL;
//! 2. model: `Store::recompute_recommendations` (co-purchase pairs with cosine scores,
//!    bestsellers overall and per category), as the daily refresh runs it;
//! 3. reading while rendering: batches of 1,000 members as the engine claims them, each
//!    batch's shelves read in one `Store::cached_shelves` call with one `ShelfCache` for
//!    the run, as the engine reads them (the model and the catalogue held in memory; the
//!    first batch reads them), and in one `Store::shelves` call (the batch's slice of the
//!    model and catalogue read from the database, as before the cache; checked equal),
//!    then the birthday email (which
//!    shows three picked products) rendered for every member with tracked links; against
//!    the same renders with no shelf (the block renders nothing).
//!
//! `cargo bench --bench recommend` (env: `MEMBERS`, default 200000; the size is
//! `MEMBERS=1000000`, i.e. 5,000,000 order lines; `BATCHES`, default 20).

#[path = "support/database.rs"]
mod database;

use std::path::Path;
use std::time::Instant;

use tidings::channel::Channel;
use tidings::links::LinkSigner;
use tidings::member::Member;
use tidings::recommend::Shelf;
use tidings::store::Store;
use tidings::template::{
    JourneyInfo, Links, MessageContext, RenderOptions, ShopInfo, StepInfo, TemplateCatalog, member_value,
};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const PRODUCTS: usize = 5_000;

async fn load(store: &Store, members: usize) -> std::time::Duration {
    let started = Instant::now();
    let lines = members * 5;
    // The same rows on both engines: a recursive counter on SQLite, `generate_series` on
    // PostgreSQL (with its booleans, JSON and timestamps spelled out).
    let (counter, tags, yes, at) = match store {
        Store::Sqlite(_) => (
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) ",
            "'[]'",
            "1",
            "'2026-05-01T00:00:00.000000Z'",
        ),
        Store::Postgres(_) => ("", "'[]'::jsonb", "true", "'2026-05-01T00:00:00Z'::timestamptz"),
        Store::Memory(_) => panic!("the bench runs on a SQLite file or PostgreSQL"),
    };
    let from = |last: usize| match store {
        Store::Postgres(_) => format!("FROM generate_series(0::bigint, {last}) AS n(i)"),
        _ => "FROM n".to_string(),
    };
    let products = format!(
        "{counter}INSERT INTO products (id, title, url, image_url, price, currency, category, tags, in_stock, published, updated_at) \
         SELECT 'p' || i, 'Product ' || i, 'https://shop.example/p/' || i, 'https://shop.example/i/' || i || '.jpg', \
                1000 + (i * 37) % 50000, 'CNY', 'c' || (i % 50), {tags}, (i % 97) <> 0, {yes}, {at} \
         {from}",
        counter = counter.replace("{last}", &(PRODUCTS - 1).to_string()),
        from = from(PRODUCTS - 1),
    );
    let order_lines = format!(
        "{counter}INSERT INTO order_lines (event_id, line, member_id, product_id, quantity, price, ordered_at) \
         SELECT 'o' || (i / 5), i % 5, 'm' || ((i / 5) % {members}), \
                'p' || (CASE WHEN (i * 7919) % 10 < 7 \
                             THEN (((i / 5) % {members}) % 500) * 10 + (i * 31) % 10 \
                             ELSE (i * 2654435761) % {PRODUCTS} END), \
                1, 1000, {at} \
         {from}",
        counter = counter.replace("{last}", &(lines - 1).to_string()),
        from = from(lines - 1),
    );
    for statement in [products, order_lines] {
        match store {
            Store::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(statement)).execute(pool).await.map(|_| ()),
            Store::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(statement)).execute(pool).await.map(|_| ()),
            Store::Memory(_) => unreachable!(),
        }
        .unwrap();
    }
    if let Store::Postgres(pool) = store {
        // As autovacuum would have by the time the engine reads them.
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
    }
    started.elapsed()
}

fn context(member: &Member, now: chrono::DateTime<chrono::Utc>, unsubscribe: String) -> MessageContext {
    let vars = serde_json::json!({ "gift_points": 2000, "treat": "a free pot of Da Hong Pao" });
    MessageContext {
        member: member_value(member, now, chrono_tz::Asia::Shanghai),
        event: serde_json::json!({}),
        journey: JourneyInfo { id: "birthday".into(), name: "Birthday".into() },
        step: StepInfo { id: "email".into() },
        variant: Some("gold".into()),
        vars: vars.as_object().cloned().unwrap(),
        links: Links { unsubscribe: unsubscribe.clone(), preferences: unsubscribe },
        shop: ShopInfo {
            name: "Tea House".into(),
            url: "https://teahouse.example".into(),
            support_email: "help@teahouse.example".into(),
            address: "88 Longjing Road, Hangzhou".into(),
        },
    }
}

fn main() {
    let members = env_number("MEMBERS", 200_000);
    let batches = env_number("BATCHES", 20);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = database::database(dir.path(), "tidings_bench_recommend").await;
        let store = Store::open(&url).await.unwrap();
        println!("database: {}", if url.starts_with("postgres") { "PostgreSQL" } else { "SQLite (a file)" });
        let loaded = load(&store, members).await;
        println!(
            "load: {PRODUCTS} products, {members} members, {} order lines in {:.1} s",
            members * 5,
            loaded.as_secs_f64()
        );

        let now: chrono::DateTime<chrono::Utc> = "2026-06-01T02:00:00Z".parse().unwrap();
        let settings = tidings::recommend::Settings::default();
        let started = Instant::now();
        let built = store.recompute_recommendations(now, &settings).await.unwrap();
        println!(
            "model: {} co-purchase pairs, {} bestseller ranks in {:.1} s",
            built.pairs,
            built.bestsellers,
            started.elapsed().as_secs_f64()
        );

        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (templates, diagnostics) = TemplateCatalog::load(&root.join("templates"));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let signer = LinkSigner::new("https://t.example", b"bench-link-secret-0123456789abcdef").unwrap();
        let member_of = |id: &str| Member {
            id: id.into(),
            first_name: Some("Li".into()),
            tier: Some("gold".into()),
            points: 1200,
            currency: Some("CNY".into()),
            ..Member::default()
        };
        let (mut read, mut with_shelf, mut without, mut messages, mut shown) = (0.0, 0.0, 0.0, 0usize, 0usize);
        let (mut uncached, mut first_batch) = (0.0, 0.0);
        let cache = tidings::store::products::ShelfCache::new();
        let empty = Shelf::default();
        for b in 0..batches {
            // Members spread over the base, as due deliveries are.
            let ids: Vec<String> =
                (0..1_000).map(|k| format!("m{}", (b * 1_000 + k) * 7_919 % members.max(1))).collect();
            let started = Instant::now();
            let slice = store.shelves(&ids, now, &settings).await.unwrap();
            uncached += started.elapsed().as_secs_f64();
            let started = Instant::now();
            let shelves = store.cached_shelves(&cache, &ids, now, &settings).await.unwrap();
            if b == 0 {
                first_batch = started.elapsed().as_secs_f64();
            } else {
                read += started.elapsed().as_secs_f64();
            }
            assert!(shelves == slice, "the cache changes no shelf");
            for (i, id) in ids.iter().enumerate() {
                let member = member_of(id);
                let links = signer.for_delivery((b * 1_000 + i) as i64, id, Channel::Email);
                let options = RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &links };
                let context = context(&member, now, links.unsubscribe_url());
                let started = Instant::now();
                let (_, products) = templates
                    .render_shelved("birthday/gift", Channel::Email, &context, &options, &shelves[id])
                    .unwrap();
                with_shelf += started.elapsed().as_secs_f64();
                shown += products.len();
                let started = Instant::now();
                templates.render_shelved("birthday/gift", Channel::Email, &context, &options, &empty).unwrap();
                without += started.elapsed().as_secs_f64();
                messages += 1;
            }
        }
        let per = |seconds: f64| seconds / messages as f64 * 1e6;
        println!(
            "reading without the cache (the batch's slice of model and catalogue): shelves {:.1} µs/member",
            per(uncached)
        );
        println!(
            "reading with the cache: first batch {:.1} ms (reads the model and the catalogue), then {:.1} µs/member ({:.0} members/s), {:.2} products shown per email; {:?}",
            first_batch * 1e3,
            read / (messages.saturating_sub(1_000).max(1)) as f64 * 1e6,
            (messages.saturating_sub(1_000)) as f64 / read,
            shown as f64 / messages as f64,
            cache.loads()
        );
        // The steady state: every batch but the first.
        let read = read / (messages.saturating_sub(1_000).max(1)) as f64 * messages as f64;
        println!(
            "rendering the birthday email: {:.1} µs with three products, {:.1} µs without ({:.0} vs {:.0} emails/s on one thread)",
            per(with_shelf),
            per(without),
            messages as f64 / with_shelf,
            messages as f64 / without
        );
        let added = per(read) + per(with_shelf) - per(without);
        for rate in [5_000.0f64, 7_000.0, 10_000.0] {
            let budget = 1e6 / rate;
            println!(
                "at an engine send rate of {rate:.0}/s ({budget:.0} µs a message): +{added:.1} µs each → {:.0}/s ({:.0} % of it), if that time were not overlapped",
                1e6 / (budget + added),
                100.0 * budget / (budget + added)
            );
        }
    });
}
