//! Product recommendations on both engines: the catalogue and its import, order line items
//! stored with their events, the models computed in SQL, and what a member is shown —
//! the same list by the engine (`serve`), `preview` and `simulate`.

use serde_json::json;
use tidings::import::{self, ImportKind};
use tidings::recommend::{self, Product};
use tidings::store::Store;

use crate::engines::on_both_engines;
use crate::shop::{Shop, at, event, joined};

fn product(id: &str, category: &str) -> Product {
    Product {
        id: id.into(),
        title: format!("Tea {id}"),
        url: Some(format!("https://tea.example/p/{id}")),
        image_url: None,
        price: Some(3200),
        currency: Some("CNY".into()),
        category: Some(category.into()),
        tags: vec![],
        in_stock: true,
        published: true,
    }
}

fn order(id: &str, member: &str, day: u32, items: &[&str]) -> tidings::member::Event {
    let items: Vec<_> = items.iter().map(|p| json!({ "product_id": p, "quantity": 1, "price": 3200 })).collect();
    let e = event(
        id,
        member,
        "order.placed",
        at(&format!("2026-05-{day:02}T04:00:00Z")),
        json!({ "order_id": id, "total": 3200 * items.len(), "currency": "CNY", "items": items }),
    );
    tidings::state::check_event(&e).unwrap();
    e
}

/// A small shop: oolong (A) is bought with a cup (B) by most of its buyers, with a
/// kettle (D, out of stock) by one; `ann` bought only A; `zoe` bought nothing.
async fn small_shop(store: &Store) {
    let now = at("2026-06-01T00:00:00Z");
    let mut d = product("D", "ware");
    d.in_stock = false;
    let catalogue = [product("A", "tea"), product("B", "ware"), product("C", "tea"), d, product("E", "tea")];
    store.upsert_products(&catalogue, now).await.unwrap();
    let orders = [
        order("o1", "m1", 1, &["A", "B"]),
        order("o2", "m2", 2, &["A", "B", "D"]),
        order("o3", "m3", 3, &["A", "B"]),
        order("o4", "m4", 4, &["C"]),
        order("o5", "m5", 5, &["C", "E", "ghost"]),
        order("o6", "ann", 6, &["A"]),
    ];
    store.append_events(&orders, now, &Default::default()).await.unwrap();
    // A repeated event writes no second set of lines.
    store.append_events(&orders[..1], now, &Default::default()).await.unwrap();
    let built = store.recompute_recommendations(now, &recommend::Settings::default()).await.unwrap();
    assert!(built.pairs > 0 && built.bestsellers > 0, "{built:?}");
}

fn ids(picks: Vec<&recommend::Pick>) -> Vec<String> {
    picks.into_iter().map(|p| p.product.id.clone()).collect()
}

/// The engine's cached shelves on `reader` (think: one worker) against writes through
/// `writer` (another worker, its own pool on the same database): a rebuild, a product
/// going out of stock, a product deleted — each seen by the reader's next batch, and the
/// cached shelves always equal to the ones read without a cache.
async fn cached_shelves_follow_another_workers_writes(reader: Store, writer: Store) {
    use tidings::store::products::{CacheLoads, ShelfCache};
    small_shop(&writer).await;
    let now = at("2026-06-01T00:00:00Z");
    let members = ["ann".to_string(), "zoe".to_string()];
    let settings = recommend::Settings::default();
    let cache = ShelfCache::new();
    let cached = |cache: &ShelfCache| {
        let (reader, members, settings) = (reader.clone(), members.clone(), settings.clone());
        let cache = cache.clone();
        async move {
            let cached = reader.cached_shelves(&cache, &members, now, &settings).await.unwrap();
            let uncached = reader.shelves(&members, now, &settings).await.unwrap();
            assert_eq!(cached, uncached, "the cache changes nothing");
            cached
        }
    };

    let first = cached(&cache).await;
    assert!(!first["ann"].picks.iter().any(|p| p.product.id == "E"), "{:?}", first["ann"].picks);
    let _ = cached(&cache).await;
    assert_eq!(cache.loads(), CacheLoads { models: 1, catalogues: 1, product_updates: 0 }, "read once, then held");

    // A rebuild on the other worker: E is now bought with A.
    let orders =
        [order("o7", "m6", 7, &["A", "E"]), order("o8", "m7", 8, &["A", "E"]), order("o9", "m8", 9, &["A", "E"])];
    writer.append_events(&orders, now, &Default::default()).await.unwrap();
    writer.recompute_recommendations(now, &settings).await.unwrap();
    let rebuilt = cached(&cache).await;
    assert!(rebuilt["ann"].picks.iter().any(|p| p.product.id == "E"), "{:?}", rebuilt["ann"].picks);
    assert_eq!(cache.loads().models, 2, "the rebuild's stamp made the model stale");

    // B goes out of stock there: gone from the next batch here.
    let mut b = product("B", "ware");
    b.in_stock = false;
    writer.upsert_products(&[b], now).await.unwrap();
    let after = cached(&cache).await;
    for (member, shelf) in &after {
        let shown = ids(shelf.recommend(20, None));
        assert!(!shown.contains(&"B".to_string()), "{member}: {shown:?}");
    }
    assert_eq!(cache.loads().product_updates, 1, "only the rows written since were read");

    // E is deleted there: gone too (the whole catalogue is read again).
    writer.delete_products(&["E".to_string()]).await.unwrap();
    let after = cached(&cache).await;
    for (member, shelf) in &after {
        let shown = ids(shelf.recommend(20, None));
        assert!(!shown.contains(&"E".to_string()), "{member}: {shown:?}");
    }
    assert_eq!(cache.loads(), CacheLoads { models: 2, catalogues: 2, product_updates: 1 });
}

mod cached_shelves_follow_another_workers_writes {
    use super::*;

    #[tokio::test]
    async fn sqlite_file() {
        let (pool, dir) = crate::support::sqlite_pool().await;
        let url = format!("sqlite://{}", dir.path().join("tidings.db").display());
        let writer = Store::open(&url).await.unwrap();
        cached_shelves_follow_another_workers_writes(Store::Sqlite(pool), writer).await;
    }

    #[tokio::test]
    async fn postgres() {
        if let Some((pool, url)) = crate::support::postgres_schema("cached_shelves_follow").await {
            let writer = Store::open(&url).await.unwrap();
            cached_shelves_follow_another_workers_writes(Store::Postgres(pool), writer).await;
        }
    }
}

on_both_engines! {
    async fn a_member_who_bought_a_gets_b_and_not_a_again_and_never_an_out_of_stock_product(store) {
        small_shop(&store).await;
        let now = at("2026-06-01T00:00:00Z");
        let shelves = store
            .shelves(&["ann".to_string(), "zoe".to_string()], now, &recommend::Settings::default())
            .await
            .unwrap();
        let ann = &shelves["ann"];
        let shown = ids(ann.recommend(5, None));
        assert_eq!(shown[0], "B", "A's buyers bought B: {shown:?}");
        assert_eq!(ann.picks[0].reason, "because you bought Tea A");
        assert!(!shown.contains(&"A".to_string()), "ann bought A already: {shown:?}");
        assert!(!shown.contains(&"D".to_string()), "D is out of stock: {shown:?}");
        assert_eq!(ids(ann.bought_recently(3)), ["A"]);
        assert_eq!(store.order_line_count("m1").await.unwrap(), 2);
        assert_eq!(store.order_line_count("m5").await.unwrap(), 3, "the unknown product's line is kept");

        // No orders: the bestsellers, overall and in a category, without D.
        let zoe = &shelves["zoe"];
        let overall = ids(zoe.recommend(5, None));
        assert_eq!(&overall[..2], ["A", "B"], "{overall:?}");
        assert!(!overall.contains(&"D".to_string()) && !overall.contains(&"ghost".to_string()), "{overall:?}");
        assert_eq!(ids(zoe.recommend(2, Some("tea"))), ["A", "C"]);
        assert_eq!(zoe.recommend(1, None)[0].reason, "a bestseller");

        // `tidings member ann` lists them and why.
        let view = tidings::member_view::load(&store, "ann", 10, now, chrono_tz::Asia::Shanghai).await.unwrap().unwrap();
        let view = view.with_recommendations(&store, now, &Default::default()).await.unwrap();
        let text = view.render();
        assert!(text.contains("recommendations (3)\n  B  Tea B  3200 CNY  because you bought Tea A\n"), "{text}");
        assert!(text.contains("bought recently (1)\n  A  Tea A  3200 CNY  you bought it on 2026-05-06\n"), "{text}");
    }

    async fn a_product_going_out_of_stock_or_deleted_leaves_the_shelf_at_once(store) {
        small_shop(&store).await;
        let now = at("2026-06-01T00:00:00Z");
        let mut b = product("B", "ware");
        b.in_stock = false;
        store.upsert_products(&[b], now).await.unwrap();
        store.delete_products(&["C".to_string()]).await.unwrap();
        let shelves = store.shelves(&["ann".to_string(), "zoe".to_string()], now, &Default::default()).await.unwrap();
        for (member, shelf) in &shelves {
            let shown = ids(shelf.recommend(20, None));
            assert!(!shown.contains(&"B".to_string()) && !shown.contains(&"C".to_string()), "{member}: {shown:?}");
        }
    }

    async fn a_products_file_loads_its_good_rows_and_names_the_bad_ones(store) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("products.csv");
        std::fs::write(
            &file,
            "id,title,url,price,currency,category,tags,in_stock\n\
             A,Oolong,https://tea.example/a,3200,CNY,tea,loose|green,true\n\
             ,No id,https://tea.example/x,100,CNY,tea,,true\n\
             B,Cup,https://tea.example/b,-5,CNY,ware,,true\n\
             C,Kettle,https://tea.example/c,12900,CNY,ware,,false\n",
        )
        .unwrap();
        let options = import::Options::new(at("2026-06-01T00:00:00Z"), Default::default());
        let summary = import::import_file(&store, ImportKind::Products, &file, &options).await.unwrap();
        assert_eq!((summary.inserted, summary.rejected.len()), (2, 2), "{}", summary.render());
        assert_eq!(summary.rejected[0].line, 3);
        assert!(summary.rejected[0].reason.contains("there is no `id`"), "{:?}", summary.rejected);
        assert_eq!(summary.rejected[1].line, 4);
        assert!(summary.rejected[1].reason.contains("price -5 is negative"), "{:?}", summary.rejected);
        let stored = store.products(&["A".to_string(), "C".to_string()]).await.unwrap();
        assert_eq!(stored["A"].tags, vec!["green", "loose"]);
        assert!(!stored["C"].in_stock);

        // The same file again updates, inserts nothing.
        let again = import::import_file(&store, ImportKind::Products, &file, &options).await.unwrap();
        assert_eq!((again.inserted, again.updated), (0, 2));
    }

    async fn the_engine_preview_and_simulate_show_the_same_products_for_the_same_member_and_day(store) {
        small_shop(&store).await;
        let t0 = at("2026-06-01T02:00:00Z");
        let shop = Shop::with_templates(
            store.clone(),
            &[PICKS],
            &[("t/picks.email", PICKS_EMAIL)],
            "",
            t0,
        )
        .await;
        let ann = json!({ "email": "ann@example.com", "email_consent": true, "first_name": "Ann" });
        shop.happen(&[joined("ann", t0, ann)], t0).await;
        let outbox = shop.outbox();
        assert_eq!(outbox.len(), 1);
        let mail = std::fs::read(&outbox[0]).unwrap();
        let mail = mailparse::parse_mail(&mail).unwrap();
        use mailparse::MailHeaderMap as _;
        let subject = mail.headers.get_first_value("Subject").unwrap();
        assert!(subject.starts_with("Picked for you: Tea B"), "{subject}");
        let html = mail.subparts.iter().find(|p| p.ctype.mimetype == "text/html").unwrap().get_body().unwrap();
        // Each product link is a signed click redirect to the product's page.
        let clicks = crate::shop::signed_links(&html, tidings::links::LinkKind::Click);
        assert!(clicks.iter().any(|c| c.url.as_deref() == Some("https://tea.example/p/B")), "{html}");
        assert!(!html.contains(">Tea A</a>") && !html.contains("Tea D"), "{html}");

        // A click on a recommended product is a click of this delivery: the report counts
        // it for the step's variant.
        let first = html.split("/c/").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
        let base = crate::http::serve(crate::http::app_state(store.clone(), t0 + chrono::Duration::hours(1))).await;
        let answer = crate::http::client().get(format!("{base}/c/{first}")).send().await.unwrap();
        assert_eq!(answer.status(), 302);
        assert_eq!(answer.headers()["location"], "https://tea.example/p/B");
        let report = tidings::report::load(&store, "picks", None).await.unwrap().unwrap();
        let arms = &report.experiments[0].arms;
        let clicked: Vec<(&str, u64)> = arms.iter().map(|a| (a.arm.as_str(), a.clicked)).collect();
        assert_eq!(clicked.iter().map(|(_, c)| c).sum::<u64>(), 1, "{clicked:?}");
        assert_eq!(arms.iter().map(|a| a.sent).sum::<u64>(), 1, "{clicked:?}");

        // Preview for the same member and day, from the store as `tidings preview` reads it.
        let config = tidings::config::Config::load(&shop.dir.path().join("tidings.toml"), false, |_| None).unwrap();
        let sources = tidings::project::Sources::standard(&config.workflows_dir, &config.templates_dir).unwrap();
        let project = tidings::project::Project::load(&sources, config.timezone());
        let member = store.member("ann").await.unwrap().unwrap();
        let fresh = tidings::recommend::Settings { shown_within: tidings::duration::Duration::from_secs(0), ..Default::default() };
        let shelf = store.shelves(&["ann".to_string()], t0, &fresh).await.unwrap().remove("ann");
        let inputs = tidings::preview::Inputs {
            templates: &project.templates,
            member: &member,
            event: None,
            variant: None,
            now: t0,
            default_timezone: config.timezone(),
            shop: tidings::engine::shop_info(&config),
            public_url: &config.public_url,
            shelf: shelf.as_ref(),
        };
        let preview = tidings::preview::render(&project.journeys[0], "picks", &inputs).unwrap();
        assert_eq!(preview.message.headline(), Some(subject.as_str()));
        assert!(!preview.products.is_empty());

        // What the message showed is remembered: the next message shows others.
        let again = store.shelves(&["ann".to_string()], t0, &Default::default()).await.unwrap();
        let next = ids(again["ann"].recommend(3, None));
        for shown in &preview.products {
            assert!(!next.contains(shown), "{shown} was just shown: {next:?}");
        }

        // simulate: the same catalogue and orders as fixtures, the same subject.
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path();
        let members = "{\"id\":\"ann\",\"email\":\"ann@example.com\",\"email_consent\":true,\"first_name\":\"Ann\"}\n";
        std::fs::write(fixtures.join("members.jsonl"), members).unwrap();
        let mut events = String::new();
        for (id, member, day, items) in [
            ("o1", "m1", 1, vec!["A", "B"]),
            ("o2", "m2", 2, vec!["A", "B", "D"]),
            ("o3", "m3", 3, vec!["A", "B"]),
            ("o4", "m4", 4, vec!["C"]),
            ("o5", "m5", 5, vec!["C", "E", "ghost"]),
            ("o6", "ann", 6, vec!["A"]),
        ] {
            let e = order(id, member, day, &items);
            events.push_str(&json!({"id": e.id, "member_id": e.member_id, "name": e.name,
                "occurred_at": e.occurred_at.to_rfc3339(), "properties": e.properties}).to_string());
            events.push('\n');
        }
        events.push_str(&json!({"id": "join-ann", "member_id": "ann", "name": "member.created",
            "occurred_at": t0.to_rfc3339(), "properties": {"email": "ann@example.com", "email_consent": true, "first_name": "Ann"}}).to_string());
        events.push('\n');
        std::fs::write(fixtures.join("events.jsonl"), events).unwrap();
        let mut products = String::new();
        for p in ["A", "B", "C", "D", "E"] {
            let category = if matches!(p, "B" | "D") { "ware" } else { "tea" };
            let mut row = serde_json::to_value(product(p, category)).unwrap();
            row["in_stock"] = json!(p != "D");
            products.push_str(&row.to_string());
            products.push('\n');
        }
        std::fs::write(fixtures.join("products.jsonl"), products).unwrap();
        let scenario = tidings::simulate::Scenario {
            members: fixtures.join("members.jsonl"),
            events: Some(fixtures.join("events.jsonl")),
            products: Some(fixtures.join("products.jsonl")),
            from: at("2026-06-01T00:00:00Z"),
            until: at("2026-06-01T06:00:00Z"),
        };
        let timeline = tidings::simulate::run(&config, project_again(&config), &scenario).await.unwrap();
        let sent: Vec<_> = timeline.lines.iter().filter(|l| l.action == "send").collect();
        assert_eq!(sent.len(), 1, "{}", timeline.render_table());
        assert_eq!(sent[0].subject.as_deref(), Some(subject.as_str()), "{}", timeline.render_table());
    }
}

fn project_again(config: &tidings::config::Config) -> tidings::project::Project {
    let sources = tidings::project::Sources::standard(&config.workflows_dir, &config.templates_dir).unwrap();
    tidings::project::Project::load(&sources, config.timezone())
}

const PICKS: &str = r#"id: picks
name: Picks
trigger: { event: member.created }
audience: email_consent
steps:
  - id: picks
    send:
      channel: email
      variants:
        - { name: three, weight: 50, template: t/picks }
        - { name: also_three, weight: 50, template: t/picks }
"#;

const PICKS_EMAIL: &str = "---\nsubject: \"Picked for you: {{#each (recommend 2)}}{{title}} {{/each}}\"\n---\n<ul>{{#each (recommend 3)}}<li><a href=\"{{url}}\">{{title}}</a> {{money price currency}} — {{reason}}</li>{{/each}}</ul>\n<p><a href=\"{{links.unsubscribe}}\">Unsubscribe</a></p>\n";
