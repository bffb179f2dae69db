//! The shops' webhooks over a real socket: signatures, replays, ignored topics, and
//! Shopify's sample payloads driving the engine.

use serde_json::{Value, json};
use tidings::http::signature::sign_body_hmac;

use crate::engine::WELCOME;
use crate::engines::on_both_engines;
use crate::http::{SHOPIFY_SECRET, WOOCOMMERCE_SECRET, app_state, client, serve, spawn_app};
use crate::shop::{Shop, at};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)).unwrap()
}

/// A Shopify delivery of `body` signed with `secret`.
async fn shopify(base: &str, secret: &[u8], topic: &str, webhook_id: &str, body: &[u8]) -> reqwest::Response {
    client()
        .post(format!("{base}/webhooks/shopify"))
        .header("content-type", "application/json")
        .header("x-shopify-hmac-sha256", sign_body_hmac(secret, body))
        .header("x-shopify-topic", topic)
        .header("x-shopify-webhook-id", webhook_id)
        .header("x-shopify-shop-domain", "teahouse.myshopify.com")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn woocommerce(base: &str, secret: &[u8], topic: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
    client()
        .post(format!("{base}/webhooks/woocommerce"))
        .header("content-type", "application/json")
        .header("x-wc-webhook-signature", sign_body_hmac(secret, body))
        .header("x-wc-webhook-topic", topic)
        .header("x-wc-webhook-delivery-id", delivery)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn json_of(answer: reqwest::Response) -> Value {
    answer.json().await.unwrap()
}

const CUSTOMER: &str = "706405506930370084";

/// Thanks every order: fires on `order.placed`.
const THANKS: &str = r#"id: thanks
name: Thanks for the order
trigger: { event: order.placed }
audience: email_consent
entry: { reentry: always }
steps:
  - id: thank
    send: { channel: email, template: t/reminder }
"#;

on_both_engines! {
    async fn shopify_webhooks_need_a_valid_signature_and_a_replay_is_stored_once(store) {
        let base = spawn_app(store.clone()).await;
        let body = fixture("shopify/customers_create.json");

        let forged = shopify(&base, b"not the shop's secret", "customers/create", "wh-1", &body).await;
        assert_eq!(forged.status(), 401);
        assert!(json_of(forged).await["error"].as_str().unwrap().contains("does not match"));
        let mut tampered = body.clone();
        tampered.extend_from_slice(b" ");
        let signature = sign_body_hmac(SHOPIFY_SECRET, &body);
        let answer = client().post(format!("{base}/webhooks/shopify")).header("x-shopify-hmac-sha256", signature)
            .header("x-shopify-topic", "customers/create").header("x-shopify-webhook-id", "wh-1").body(tampered).send().await.unwrap();
        assert_eq!(answer.status(), 401, "the signature covers the raw bytes");
        let unsigned = client().post(format!("{base}/webhooks/shopify")).header("x-shopify-topic", "customers/create")
            .header("x-shopify-webhook-id", "wh-1").body(body.clone()).send().await.unwrap();
        assert_eq!(unsigned.status(), 401);
        assert!(store.member(CUSTOMER).await.unwrap().is_none(), "nothing stored from refused deliveries");

        for (accepted, duplicates) in [(1, 0), (0, 1)] {
            let answer = shopify(&base, SHOPIFY_SECRET, "customers/create", "wh-1", &body).await;
            assert_eq!(answer.status(), 200);
            assert_eq!(json_of(answer).await, json!({ "accepted": accepted, "duplicates": duplicates }));
        }
        assert_eq!(store.event_count(CUSTOMER).await.unwrap(), 1, "a retried delivery is stored once");
        let member = store.member(CUSTOMER).await.unwrap().unwrap();
        assert_eq!(member.email.as_deref(), Some("bob@biller.com"));
        assert_eq!(member.phone.as_deref(), Some("+16136120707"));
        assert!(member.email_consent && !member.sms_consent);

        // A topic we do not act on is a 2xx (Shopify retries anything else) that stores nothing.
        let answer = shopify(&base, SHOPIFY_SECRET, "collections/update", "wh-2", br#"{"id": 1}"#).await;
        assert_eq!(answer.status(), 200);
        assert!(json_of(answer).await["ignored"].as_str().unwrap().contains("collections/update"));

        // Product webhooks keep the catalogue current: created, changed, deleted.
        let product = json!({
            "id": 632910392, "title": "IPod Nano - 8GB", "handle": "ipod-nano", "product_type": "Cult Products",
            "status": "active", "tags": "Emotive, Flash Memory",
            "variants": [{ "price": "199.00", "inventory_quantity": 10, "inventory_management": "shopify" }],
            "image": { "src": "https://cdn.shopify.com/ipod-nano.png" },
        });
        let body = serde_json::to_vec(&product).unwrap();
        let answer = shopify(&base, SHOPIFY_SECRET, "products/create", "wh-p1", &body).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(json_of(answer).await["products"]["inserted"], 1);
        let stored = store.products(&["632910392".to_string()]).await.unwrap().remove("632910392").unwrap();
        assert_eq!(stored.url.as_deref(), Some("https://shop.example.com/products/ipod-nano"));
        assert_eq!((stored.price, stored.currency.as_deref()), (Some(19900), Some("CNY")));
        assert_eq!(stored.tags, vec!["Emotive", "Flash Memory"]);
        assert!(stored.in_stock && stored.published);
        let mut sold_out = product.clone();
        sold_out["variants"][0]["inventory_quantity"] = json!(0);
        let answer = shopify(&base, SHOPIFY_SECRET, "products/update", "wh-p2", &serde_json::to_vec(&sold_out).unwrap()).await;
        assert_eq!(json_of(answer).await["products"]["updated"], 1);
        assert!(!store.products(&["632910392".to_string()]).await.unwrap()["632910392"].in_stock);
        let answer = shopify(&base, SHOPIFY_SECRET, "products/delete", "wh-p3", br#"{"id": 632910392}"#).await;
        assert_eq!(json_of(answer).await["products"]["deleted"], 1);
        assert!(store.products(&["632910392".to_string()]).await.unwrap().is_empty());
        // A product without a title is refused with the reason.
        let answer = shopify(&base, SHOPIFY_SECRET, "products/update", "wh-p4", br#"{"id": 1}"#).await;
        assert_eq!(answer.status(), 400);
        assert!(json_of(answer).await["error"].as_str().unwrap().contains("title"));
        // Signed but not the shape its topic promises: 400 with the reason.
        let answer = shopify(&base, SHOPIFY_SECRET, "orders/create", "wh-3", br#"{"id": 5, "customer": {"id": 6}}"#).await;
        assert_eq!(answer.status(), 400);
        assert!(json_of(answer).await["error"].as_str().unwrap().contains("currency"));
        let missing_topic = client().post(format!("{base}/webhooks/shopify"))
            .header("x-shopify-hmac-sha256", sign_body_hmac(SHOPIFY_SECRET, &body)).header("x-shopify-webhook-id", "wh-4")
            .body(body.clone()).send().await.unwrap();
        assert_eq!(missing_topic.status(), 400);
        assert_eq!(store.event_count(CUSTOMER).await.unwrap(), 1);
        assert_eq!(store.event_count("6").await.unwrap(), 0);
    }

    async fn woocommerce_webhooks_need_a_valid_signature_and_orders_count_once_across_updates(store) {
        let base = spawn_app(store.clone()).await;
        let customer = fixture("woocommerce/customer_created.json");
        let order = fixture("woocommerce/order_updated.json");

        assert_eq!(woocommerce(&base, b"wrong", "customer.created", "d-1", &customer).await.status(), 401);
        assert!(store.member("25").await.unwrap().is_none());
        // The ping WooCommerce sends when a webhook is saved.
        let ping = client().post(format!("{base}/webhooks/woocommerce")).header("content-type", "application/x-www-form-urlencoded")
            .body("webhook_id=12").send().await.unwrap();
        assert_eq!(ping.status(), 200);

        assert_eq!(woocommerce(&base, WOOCOMMERCE_SECRET, "customer.created", "d-1", &customer).await.status(), 200);
        let replay = woocommerce(&base, WOOCOMMERCE_SECRET, "customer.created", "d-1", &customer).await;
        assert_eq!(json_of(replay).await, json!({ "accepted": 0, "duplicates": 1 }));
        for delivery in ["d-2", "d-3"] {
            assert_eq!(woocommerce(&base, WOOCOMMERCE_SECRET, "order.updated", delivery, &order).await.status(), 200);
        }
        let member = store.member("25").await.unwrap().unwrap();
        assert_eq!(member.email.as_deref(), Some("john.doe@example.com"));
        assert_eq!(member.order_count, 1, "two deliveries of one order");
        assert_eq!(member.total_spend, 2_935 - 1_000, "the order less its partial refund");
        assert_eq!(store.event_count("25").await.unwrap(), 3, "created, placed, refunded");
    }

    async fn shopifys_sample_payloads_update_the_members_aggregates_and_fire_journeys(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::new(store.clone(), &[WELCOME, THANKS], "", t0).await;
        let base = serve(app_state(store.clone(), t0)).await;

        let answer = shopify(&base, SHOPIFY_SECRET, "customers/create", "wh-c1", &fixture("shopify/customers_create.json")).await;
        assert_eq!(answer.status(), 200);
        shop.at(t0).await;
        assert_eq!(shop.outbox().len(), 1, "member.created fired the welcome journey");

        let order = fixture("shopify/orders_create.json");
        assert_eq!(shopify(&base, SHOPIFY_SECRET, "orders/create", "wh-o1", &order).await.status(), 200);
        // The same order again as orders/paid: one order, one thank-you.
        assert_eq!(shopify(&base, SHOPIFY_SECRET, "orders/paid", "wh-o2", &order).await.status(), 200);
        shop.at(t0).await;
        let member = store.member(CUSTOMER).await.unwrap().unwrap();
        assert_eq!((member.order_count, member.total_spend), (1, 39_800));
        assert_eq!(member.currency.as_deref(), Some("USD"));
        assert_eq!(member.first_order_at, Some(at("2026-03-02T01:30:00Z")));
        let deliveries = shop.deliveries(CUSTOMER).await;
        assert!(deliveries.contains(&("thanks".into(), "thank".into(), "sent".into(), None)), "{deliveries:?}");
        assert_eq!(shop.outbox().len(), 2, "welcome + one thanks");

        let refund = fixture("shopify/refunds_create.json");
        assert_eq!(shopify(&base, SHOPIFY_SECRET, "refunds/create", "wh-r1", &refund).await.status(), 200);
        let member = store.member(CUSTOMER).await.unwrap().unwrap();
        assert_eq!((member.order_count, member.total_spend), (1, 39_800 - 4_194), "a partial refund");
        // A refund for an order we never saw is acknowledged, and changes nothing.
        let stray = String::from_utf8(refund).unwrap().replace("820982911946154508", "1");
        let answer = shopify(&base, SHOPIFY_SECRET, "refunds/create", "wh-r2", stray.as_bytes()).await;
        assert_eq!(answer.status(), 200);
        assert!(json_of(answer).await["ignored"].as_str().unwrap().contains("order 1"));
        assert_eq!(
            store.event_count(CUSTOMER).await.unwrap(),
            5,
            "created, placed once, the customer as each order delivery saw it, refunded"
        );
    }
}
