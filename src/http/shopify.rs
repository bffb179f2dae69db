//! Shopify webhooks, pure: `X-Shopify-Topic` + `X-Shopify-Webhook-Id` + payload → events.
//!
//! | topic | events |
//! |---|---|
//! | `customers/create` | `member.created` (`shopify:{webhook id}`) |
//! | `customers/update` | `member.updated` (`shopify:{webhook id}`) |
//! | `orders/create`, `orders/paid` | `order.placed` (`shopify:order:{order id}`), and `member.updated` (`shopify:{webhook id}:customer`) with the order's customer profile |
//! | `refunds/create` | `order.refunded` (`shopify:refund:{refund id}`) for the member who placed `order_id` |
//! | `products/create`, `products/update`, `products/delete` | the catalogue ([`map_product`]), no event |
//! | anything else | ignored, answered 200 with the reason |
//!
//! Ids: a member change is keyed by the webhook id (Shopify resends a failed delivery
//! with the same `X-Shopify-Webhook-Id`, so a retry is a no-op). An order is keyed by the
//! order id, because `orders/create` and `orders/paid` report the same order with two
//! webhook ids and journeys must see one `order.placed`; a refund by the refund id.
//!
//! Fields: the member is the customer `id`; `email`, `phone`, `first_name`, `last_name`;
//! `email_consent` from `email_marketing_consent.state == "subscribed"` (else the legacy
//! `accepts_marketing`); `sms_consent` from `sms_marketing_consent.state`. A null field
//! leaves the member's value as it was. An order's `total_price` (a decimal string) is
//! converted to minor units of its `currency`; a refund's amount is the sum of its
//! successful `refund` transactions. An order's `line_items` become `properties.items`
//! (product id, quantity, unit price in minor units) for recommendations.

use serde_json::{Map, Value, json};

use super::money::minor_units;
use super::shop::{
    MapError, Mapping, Storefront, checked_product, event, id_of, line_items, member_properties, object, price, text,
    time,
};
use crate::recommend::Product;

/// The topics we act on.
pub const TOPICS: &[&str] = &[
    "customers/create",
    "customers/update",
    "orders/create",
    "orders/paid",
    "refunds/create",
    "products/create",
    "products/update",
    "products/delete",
];

/// What one webhook delivery means; `now` dates what the payload does not.
pub fn map(
    topic: &str,
    webhook_id: &str,
    payload: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Mapping, MapError> {
    let body = object(payload)?;
    match topic {
        "customers/create" | "customers/update" => {
            let member = id_of(body.get("id")).ok_or_else(|| MapError("the customer has no `id`".into()))?;
            let (name, at) = if topic == "customers/create" {
                ("member.created", time(body, "created_at")?)
            } else {
                ("member.updated", time(body, "updated_at")?)
            };
            let properties = customer_profile(body, &format!("shopify {topic} {webhook_id}"));
            Ok(Mapping::Events(vec![event(
                format!("shopify:{webhook_id}"),
                &member,
                name,
                at.unwrap_or(now),
                Value::Object(properties),
            )]))
        }
        "orders/create" | "orders/paid" => {
            let order = id_of(body.get("id")).ok_or_else(|| MapError("the order has no `id`".into()))?;
            let Some(customer) = body.get("customer").and_then(Value::as_object) else {
                return Ok(Mapping::Ignored(format!("order {order} has no customer (a guest checkout)")));
            };
            let member =
                id_of(customer.get("id")).ok_or_else(|| MapError("the order's customer has no `id`".into()))?;
            let currency = text(body, "currency").ok_or_else(|| MapError("the order has no `currency`".into()))?;
            let total = text(body, "total_price").ok_or_else(|| MapError("the order has no `total_price`".into()))?;
            let total = minor_units(total, currency).map_err(|e| MapError(format!("total_price: {e}")))?;
            let at = time(body, "processed_at")?.or(time(body, "created_at")?).unwrap_or(now);
            let mut properties = json!({
                "order_id": order, "total": total, "currency": currency.to_ascii_uppercase(), "source": "shopify",
            });
            if let Some(name) = text(body, "name") {
                properties["order_name"] = json!(name);
            }
            let items = line_items(body, currency)?;
            if !items.is_empty() {
                properties["items"] = Value::Array(items);
            }
            let mut events = vec![event(format!("shopify:order:{order}"), &member, "order.placed", at, properties)];
            let profile = customer_profile(customer, &format!("shopify {topic} {webhook_id}"));
            if !profile.is_empty() {
                let seen = time(customer, "updated_at")?.unwrap_or(at);
                events.push(event(
                    format!("shopify:{webhook_id}:customer"),
                    &member,
                    "member.updated",
                    seen,
                    Value::Object(profile),
                ));
            }
            Ok(Mapping::Events(events))
        }
        "refunds/create" => {
            let refund = id_of(body.get("id")).ok_or_else(|| MapError("the refund has no `id`".into()))?;
            let order = id_of(body.get("order_id")).ok_or_else(|| MapError("the refund has no `order_id`".into()))?;
            let (amount, currency) = refunded(body)?;
            let at = time(body, "processed_at")?.or(time(body, "created_at")?).unwrap_or(now);
            let mut properties = json!({ "order_id": order, "amount": amount, "source": "shopify" });
            if let Some(currency) = currency {
                properties["currency"] = json!(currency);
            }
            let events = vec![event(format!("shopify:refund:{refund}"), "", "order.refunded", at, properties)];
            Ok(Mapping::ForOrder { order_id: order, events })
        }
        other => Ok(Mapping::Ignored(format!(
            "topic `{other}` is not one tidings acts on (it acts on {})",
            TOPICS.join(", ")
        ))),
    }
}

/// The member fields of a Shopify customer object.
fn customer_profile(customer: &Map<String, Value>, context: &str) -> Map<String, Value> {
    let subscribed = |key: &str| {
        customer
            .get(key)
            .and_then(Value::as_object)
            .and_then(|c| c.get("state"))
            .and_then(Value::as_str)
            .map(|s| s == "subscribed")
    };
    let email_consent =
        subscribed("email_marketing_consent").or(customer.get("accepts_marketing").and_then(Value::as_bool));
    let string = |key: &str| text(customer, key).map(|s| Value::String(s.to_string())).unwrap_or(Value::Null);
    member_properties(
        vec![
            ("email", string("email")),
            ("phone", string("phone")),
            ("first_name", string("first_name")),
            ("last_name", string("last_name")),
            ("email_consent", email_consent.map(Value::Bool).unwrap_or(Value::Null)),
            ("sms_consent", subscribed("sms_marketing_consent").map(Value::Bool).unwrap_or(Value::Null)),
        ],
        context,
    )
}

/// The product topics: `products/create` and `products/update` upsert the product,
/// `products/delete` removes it. `None` for every other topic ([`map`] takes those).
///
/// The page is `{shop url}/products/{handle}`; the price is the first variant's, in the
/// storefront's currency; `product_type` is the category; in stock when any variant has
/// stock, does not track it, or sells on when out; published when `status` is `active`
/// (or, without a status, when it has a `published_at`).
pub fn map_product(topic: &str, payload: &Value, storefront: &Storefront) -> Option<Result<Mapping, MapError>> {
    let body = match object(payload) {
        Ok(body) => body,
        Err(e) => return Some(Err(e)),
    };
    let id = || id_of(body.get("id")).ok_or_else(|| MapError("the product has no `id`".into()));
    Some(match topic {
        "products/delete" => id().map(|id| Mapping::Products { upsert: Vec::new(), delete: vec![id] }),
        "products/create" | "products/update" => (|| {
            let id = id()?;
            let variants: Vec<&Map<String, Value>> = body
                .get("variants")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .collect();
            let in_stock = variants.is_empty()
                || variants.iter().any(|v| {
                    v.get("inventory_quantity").and_then(Value::as_i64).is_some_and(|q| q > 0)
                        || v.get("inventory_management").is_none_or(Value::is_null)
                        || text(v, "inventory_policy") == Some("continue")
                });
            let published = match text(body, "status") {
                Some(status) => status == "active",
                None => body.get("published_at").is_some_and(|p| !p.is_null()),
            };
            let price = price(variants.first().and_then(|v| v.get("price")), &storefront.currency)?;
            let image = body
                .get("image")
                .and_then(Value::as_object)
                .or_else(|| {
                    body.get("images").and_then(Value::as_array).and_then(|i| i.first()).and_then(Value::as_object)
                })
                .and_then(|i| text(i, "src"))
                .map(str::to_string);
            checked_product(Product {
                id,
                title: text(body, "title").unwrap_or_default().to_string(),
                url: text(body, "handle").map(|h| format!("{}/products/{h}", storefront.url.trim_end_matches('/'))),
                image_url: image,
                currency: price.map(|_| storefront.currency.to_ascii_uppercase()),
                price,
                category: text(body, "product_type").map(str::to_string),
                tags: text(body, "tags")
                    .map(|t| t.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect())
                    .unwrap_or_default(),
                in_stock,
                published,
            })
        })(),
        _ => return None,
    })
}

/// A refund's amount in minor units: its successful `refund` transactions (all in one
/// currency), and that currency.
fn refunded(body: &Map<String, Value>) -> Result<(i64, Option<String>), MapError> {
    let mut total = 0i64;
    let mut currency: Option<String> = None;
    for t in body.get("transactions").and_then(Value::as_array).into_iter().flatten() {
        let Some(t) = t.as_object() else { continue };
        let kind = text(t, "kind").unwrap_or("refund");
        let status = text(t, "status").unwrap_or("success");
        if kind != "refund" || status != "success" {
            continue;
        }
        let code = text(t, "currency").map(str::to_ascii_uppercase).or_else(|| currency.clone()).unwrap_or_default();
        if currency.as_ref().is_some_and(|c| *c != code) {
            return Err(MapError("the refund's transactions are in more than one currency".into()));
        }
        let amount = match t.get("amount") {
            Some(Value::String(s)) => minor_units(s, &code),
            Some(Value::Number(n)) => minor_units(&n.to_string(), &code),
            _ => Err("a refund transaction has no `amount`".to_string()),
        }
        .map_err(|e| MapError(format!("transactions: {e}")))?;
        total = total.saturating_add(amount.abs());
        currency = Some(code).filter(|c| !c.is_empty());
    }
    Ok((total, currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2026-03-02T02:00:00Z".parse().unwrap()
    }

    fn events(mapping: Mapping) -> Vec<crate::member::Event> {
        match mapping {
            Mapping::Events(events) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    #[test]
    fn a_new_customer_is_a_member_created_with_consent_from_email_marketing_consent() {
        let payload = json!({
            "id": 706405506930370084u64, "email": "bob@biller.com", "created_at": "2026-03-01T10:00:00-05:00",
            "first_name": "Bob", "last_name": "Biller", "phone": null, "accepts_marketing": false,
            "email_marketing_consent": { "state": "subscribed", "opt_in_level": "single_opt_in" },
            "sms_marketing_consent": null,
        });
        let [e] = events(map("customers/create", "wh-1", &payload, now()).unwrap()).try_into().unwrap();
        assert_eq!(
            (e.id.as_str(), e.member_id.as_str(), e.name.as_str()),
            ("shopify:wh-1", "706405506930370084", "member.created")
        );
        assert_eq!(e.occurred_at, "2026-03-01T15:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(
            e.properties,
            json!({ "email": "bob@biller.com", "first_name": "Bob", "last_name": "Biller", "email_consent": true })
        );
        crate::state::check_event(&e).unwrap();
    }

    #[test]
    fn an_invalid_field_is_left_out_and_the_rest_kept() {
        let payload =
            json!({ "id": 7, "email": "a@example.com", "phone": "not a phone", "updated_at": "2026-03-01T10:00:00Z" });
        let [e] = events(map("customers/update", "wh-2", &payload, now()).unwrap()).try_into().unwrap();
        assert_eq!(e.name, "member.updated");
        assert_eq!(e.properties, json!({ "email": "a@example.com" }));
    }

    #[test]
    fn an_order_is_one_order_placed_keyed_by_the_order_in_minor_units() {
        let payload = json!({
            "id": 820982911946154508u64, "name": "#9999", "currency": "JPY", "total_price": "4500",
            "created_at": "2026-03-01T10:00:00Z", "processed_at": null,
            "customer": { "id": 115310627314723954u64, "email": "john@example.com", "first_name": "John",
                          "updated_at": "2026-03-01T09:00:00Z", "email_marketing_consent": { "state": "not_subscribed" } },
        });
        let created = events(map("orders/create", "wh-3", &payload, now()).unwrap());
        let paid = events(map("orders/paid", "wh-4", &payload, now()).unwrap());
        assert_eq!(created[0].id, paid[0].id, "one order, whichever topic reports it");
        assert_eq!(created[0].id, "shopify:order:820982911946154508");
        assert_eq!(
            created[0].properties,
            json!({ "order_id": "820982911946154508", "total": 4500, "currency": "JPY", "source": "shopify", "order_name": "#9999" })
        );
        assert_eq!((created[1].name.as_str(), created[1].id.as_str()), ("member.updated", "shopify:wh-3:customer"));
        assert_eq!(
            created[1].properties,
            json!({ "email": "john@example.com", "first_name": "John", "email_consent": false })
        );
        for e in &created {
            crate::state::check_event(e).unwrap();
        }
    }

    #[test]
    fn a_guest_order_and_an_unknown_topic_are_ignored_with_a_reason() {
        let guest = json!({ "id": 1, "currency": "USD", "total_price": "1.00", "customer": null });
        assert!(matches!(map("orders/create", "wh", &guest, now()), Ok(Mapping::Ignored(r)) if r.contains("guest")));
        assert!(
            matches!(map("products/update", "wh", &json!({}), now()), Ok(Mapping::Ignored(r)) if r.contains("products/update"))
        );
    }

    #[test]
    fn a_refund_sums_its_successful_refund_transactions_for_the_orders_member() {
        let payload = json!({
            "id": 509562969, "order_id": 450789469, "created_at": "2026-03-03T10:00:00Z",
            "transactions": [
                { "kind": "refund", "status": "success", "amount": "41.94", "currency": "USD" },
                { "kind": "refund", "status": "failure", "amount": "10.00", "currency": "USD" },
                { "kind": "refund", "status": "success", "amount": "1.00", "currency": "USD" },
            ],
        });
        let Mapping::ForOrder { order_id, events } = map("refunds/create", "wh-5", &payload, now()).unwrap() else {
            panic!()
        };
        assert_eq!(order_id, "450789469");
        assert_eq!(events[0].id, "shopify:refund:509562969");
        assert_eq!(
            events[0].properties,
            json!({ "order_id": "450789469", "amount": 4294, "currency": "USD", "source": "shopify" })
        );
    }

    #[test]
    fn payloads_missing_what_the_topic_needs_are_errors() {
        assert!(map("orders/create", "wh", &json!([1]), now()).is_err());
        assert!(map("customers/create", "wh", &json!({ "email": "x@example.com" }), now()).is_err());
        let bad_total = json!({ "id": 1, "currency": "USD", "total_price": "lots", "customer": { "id": 2 } });
        assert!(map("orders/create", "wh", &bad_total, now()).unwrap_err().0.contains("total_price"));
    }

    #[test]
    fn an_orders_line_items_become_its_items_and_custom_lines_are_left_out() {
        let order = json!({
            "id": 450789469, "currency": "JPY", "total_price": "2000", "customer": { "id": 207119551 },
            "line_items": [
                { "product_id": 632910392, "quantity": 1, "price": "1000.00" },
                { "product_id": null, "quantity": 1, "price": "1000" },
            ],
        });
        let placed = events(map("orders/create", "wh", &order, now()).unwrap());
        assert_eq!(placed[0].properties["items"], json!([{ "product_id": "632910392", "quantity": 1, "price": 1000 }]));
    }
}
