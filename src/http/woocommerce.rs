//! WooCommerce webhooks, pure: `X-WC-Webhook-Topic` + `X-WC-Webhook-Delivery-ID` +
//! payload → events.
//!
//! | topic | events |
//! |---|---|
//! | `customer.created` | `member.created` (`woocommerce:{delivery id}`) |
//! | `customer.updated` | `member.updated` (`woocommerce:{delivery id}`) |
//! | `order.created`, `order.updated` | a paid order (`status` processing or completed, or a `date_paid_gmt`): `order.placed` (`woocommerce:order:{id}`); each entry of `refunds`: `order.refunded` (`woocommerce:refund:{refund id}`, its amount); `status: refunded`: `order.refunded` of what is left (`woocommerce:order:{id}:refunded`) |
//! | `product.created`, `product.updated`, `product.restored`, `product.deleted` | the catalogue ([`map_product`]), no event |
//! | anything else | ignored, answered 200 with the reason |
//!
//! WooCommerce sends `order.updated` for every change of an order, so order events are
//! keyed by the order and refund ids, never by the delivery: the tenth update of a paid
//! order adds nothing. Guest orders (`customer_id: 0`) have no member and are ignored.
//! WooCommerce keeps no marketing consent, so these webhooks never set consent (set it
//! with `POST /v1/members`). Times are the `*_gmt` fields (UTC).

use serde_json::{Map, Value, json};

use super::money::minor_units;
use super::shop::{
    MapError, Mapping, Storefront, checked_product, event, id_of, line_items, member_properties, object, price, text,
    time,
};
use crate::recommend::Product;

/// The topics we act on.
pub const TOPICS: &[&str] = &[
    "customer.created",
    "customer.updated",
    "order.created",
    "order.updated",
    "product.created",
    "product.updated",
    "product.restored",
    "product.deleted",
];

/// What one webhook delivery means; `now` dates what the payload does not.
pub fn map(
    topic: &str,
    delivery_id: &str,
    payload: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Mapping, MapError> {
    let body = object(payload)?;
    match topic {
        "customer.created" | "customer.updated" => {
            let member = id_of(body.get("id")).ok_or_else(|| MapError("the customer has no `id`".into()))?;
            let (name, at) = if topic == "customer.created" {
                ("member.created", time(body, "date_created_gmt")?)
            } else {
                ("member.updated", time(body, "date_modified_gmt")?)
            };
            let billing = body.get("billing").and_then(Value::as_object);
            let string = |object: Option<&Map<String, Value>>, key: &str| {
                object.and_then(|o| text(o, key)).map(|s| Value::String(s.to_string())).unwrap_or(Value::Null)
            };
            let properties = member_properties(
                vec![
                    ("email", string(Some(body), "email")),
                    ("first_name", string(Some(body), "first_name")),
                    ("last_name", string(Some(body), "last_name")),
                    ("phone", string(billing, "phone")),
                ],
                &format!("woocommerce {topic} {delivery_id}"),
            );
            Ok(Mapping::Events(vec![event(
                format!("woocommerce:{delivery_id}"),
                &member,
                name,
                at.unwrap_or(now),
                Value::Object(properties),
            )]))
        }
        "order.created" | "order.updated" => {
            let order = id_of(body.get("id")).ok_or_else(|| MapError("the order has no `id`".into()))?;
            let Some(member) = id_of(body.get("customer_id")) else {
                return Ok(Mapping::Ignored(format!("order {order} has no customer (a guest checkout)")));
            };
            let status = text(body, "status").unwrap_or("");
            let currency = text(body, "currency").ok_or_else(|| MapError("the order has no `currency`".into()))?;
            let amount = |key: &str, value: Option<&Value>| -> Result<i64, MapError> {
                match value {
                    Some(Value::String(s)) => minor_units(s, currency),
                    Some(Value::Number(n)) => minor_units(&n.to_string(), currency),
                    _ => Err(format!("`{key}` is missing")),
                }
                .map_err(|e| MapError(format!("{key}: {e}")))
            };
            let paid_at = time(body, "date_paid_gmt")?;
            let placed_at = paid_at.or(time(body, "date_created_gmt")?).unwrap_or(now);
            let paid = matches!(status, "processing" | "completed" | "refunded") || paid_at.is_some();
            let mut events = Vec::new();
            if paid {
                let total = amount("total", body.get("total"))?;
                let mut properties = json!({
                    "order_id": order, "total": total, "currency": currency.to_ascii_uppercase(),
                    "source": "woocommerce", "status": status,
                });
                let items = line_items(body, currency)?;
                if !items.is_empty() {
                    properties["items"] = Value::Array(items);
                }
                events.push(event(
                    format!("woocommerce:order:{order}"),
                    &member,
                    "order.placed",
                    placed_at,
                    properties,
                ));
            }
            let modified = time(body, "date_modified_gmt")?.unwrap_or(now);
            for refund in body.get("refunds").and_then(Value::as_array).into_iter().flatten() {
                let Some(refund) = refund.as_object() else { continue };
                let id = id_of(refund.get("id")).ok_or_else(|| MapError("a refund has no `id`".into()))?;
                let refunded = amount("refunds.total", refund.get("total"))?.abs();
                let properties = json!({ "order_id": order, "amount": refunded, "source": "woocommerce" });
                events.push(event(format!("woocommerce:refund:{id}"), &member, "order.refunded", modified, properties));
            }
            if status == "refunded" {
                let properties = json!({ "order_id": order, "source": "woocommerce" });
                events.push(event(
                    format!("woocommerce:order:{order}:refunded"),
                    &member,
                    "order.refunded",
                    modified,
                    properties,
                ));
            }
            if events.is_empty() {
                return Ok(Mapping::Ignored(format!("order {order} is `{status}`: not paid yet")));
            }
            Ok(Mapping::Events(events))
        }
        other => Ok(Mapping::Ignored(format!(
            "topic `{other}` is not one tidings acts on (it acts on {})",
            TOPICS.join(", ")
        ))),
    }
}

/// The product topics: `product.created`, `product.updated` and `product.restored`
/// upsert the product, `product.deleted` removes it. `None` for every other topic.
///
/// `permalink` is the page; `price` (the current price, in the storefront's currency);
/// the first of `categories` is the category, `tags` their names; in stock unless
/// `stock_status` is `outofstock`; published when `status` is `publish`.
pub fn map_product(topic: &str, payload: &Value, storefront: &Storefront) -> Option<Result<Mapping, MapError>> {
    let body = match object(payload) {
        Ok(body) => body,
        Err(e) => return Some(Err(e)),
    };
    let id = || id_of(body.get("id")).ok_or_else(|| MapError("the product has no `id`".into()));
    let names = |key: &str| -> Vec<String> {
        body.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_object().and_then(|c| text(c, "name")).map(str::to_string))
            .collect()
    };
    Some(match topic {
        "product.deleted" => id().map(|id| Mapping::Products { upsert: Vec::new(), delete: vec![id] }),
        "product.created" | "product.updated" | "product.restored" => (|| {
            let price = price(body.get("price"), &storefront.currency)?;
            let image = body
                .get("images")
                .and_then(Value::as_array)
                .and_then(|i| i.first())
                .and_then(Value::as_object)
                .and_then(|i| text(i, "src"))
                .map(str::to_string);
            checked_product(Product {
                id: id()?,
                title: text(body, "name").unwrap_or_default().to_string(),
                url: text(body, "permalink").map(str::to_string),
                image_url: image,
                currency: price.map(|_| storefront.currency.to_ascii_uppercase()),
                price,
                category: names("categories").into_iter().next(),
                tags: names("tags"),
                in_stock: text(body, "stock_status") != Some("outofstock"),
                published: text(body, "status").is_none_or(|s| s == "publish"),
            })
        })(),
        _ => return None,
    })
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
    fn a_customer_becomes_a_member_with_the_billing_phone() {
        let payload = json!({
            "id": 25, "date_created_gmt": "2026-03-01T19:09:28", "email": "john.doe@example.com",
            "first_name": "John", "last_name": "Doe", "billing": { "phone": "+8613800138000" },
        });
        let [e] = events(map("customer.created", "d-1", &payload, now()).unwrap()).try_into().unwrap();
        assert_eq!((e.id.as_str(), e.member_id.as_str(), e.name.as_str()), ("woocommerce:d-1", "25", "member.created"));
        assert_eq!(e.occurred_at, "2026-03-01T19:09:28Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(
            e.properties,
            json!({ "email": "john.doe@example.com", "first_name": "John", "last_name": "Doe", "phone": "+8613800138000" })
        );
        crate::state::check_event(&e).unwrap();
    }

    #[test]
    fn a_paid_order_is_placed_once_and_its_refunds_are_keyed_by_refund() {
        let mut payload = json!({
            "id": 727, "status": "processing", "currency": "USD", "total": "29.35", "customer_id": 25,
            "date_created_gmt": "2026-03-01T10:00:00", "date_paid_gmt": "2026-03-01T10:05:00",
            "date_modified_gmt": "2026-03-02T08:00:00", "refunds": [],
        });
        let placed = events(map("order.created", "d-2", &payload, now()).unwrap());
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].id, "woocommerce:order:727");
        assert_eq!(placed[0].properties["total"], json!(2935));
        payload["refunds"] = json!([{ "id": 730, "reason": "", "total": "-10.00" }]);
        let updated = events(map("order.updated", "d-3", &payload, now()).unwrap());
        assert_eq!(
            updated.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["woocommerce:order:727", "woocommerce:refund:730"]
        );
        assert_eq!(updated[1].properties, json!({ "order_id": "727", "amount": 1000, "source": "woocommerce" }));
        payload["status"] = json!("refunded");
        let refunded = events(map("order.updated", "d-4", &payload, now()).unwrap());
        assert_eq!(refunded.last().unwrap().id, "woocommerce:order:727:refunded");
        for e in placed.iter().chain(&updated).chain(&refunded) {
            crate::state::check_event(e).unwrap();
        }
    }

    #[test]
    fn unpaid_and_guest_orders_and_unknown_topics_are_ignored() {
        let pending = json!({ "id": 1, "status": "pending", "currency": "USD", "total": "1.00", "customer_id": 2, "date_paid_gmt": null });
        assert!(matches!(map("order.created", "d", &pending, now()), Ok(Mapping::Ignored(r)) if r.contains("pending")));
        let guest = json!({ "id": 1, "status": "completed", "currency": "USD", "total": "1.00", "customer_id": 0 });
        assert!(matches!(map("order.created", "d", &guest, now()), Ok(Mapping::Ignored(r)) if r.contains("guest")));
        assert!(matches!(map("product.created", "d", &json!({}), now()), Ok(Mapping::Ignored(_))));
    }

    #[test]
    fn an_orders_line_items_become_its_items_in_minor_units() {
        let order = json!({
            "id": 727, "status": "processing", "currency": "USD", "total": "29.35", "customer_id": 26,
            "line_items": [
                { "product_id": 93, "quantity": 2, "price": 9.5 },
                { "product_id": 0, "quantity": 1, "price": "10.35" },
            ],
        });
        let placed = events(map("order.created", "d", &order, now()).unwrap());
        assert_eq!(placed[0].properties["items"], json!([{ "product_id": "93", "quantity": 2, "price": 950 }]));
        crate::state::check_event(&placed[0]).unwrap();
    }

    #[test]
    fn product_webhooks_upsert_and_delete_the_catalogue() {
        let storefront = Storefront { url: "https://shop.example".into(), currency: "USD".into() };
        let product = json!({
            "id": 799, "name": "Ship Your Idea", "permalink": "https://shop.example/product/ship-your-idea",
            "price": "21.99", "status": "publish", "stock_status": "outofstock",
            "categories": [{ "id": 9, "name": "Clothing" }], "tags": [{ "name": "cotton" }],
            "images": [{ "src": "https://shop.example/ship.jpg" }],
        });
        let Some(Ok(Mapping::Products { upsert, delete })) = map_product("product.updated", &product, &storefront)
        else {
            panic!("a product")
        };
        assert!(delete.is_empty());
        let p = &upsert[0];
        assert_eq!((p.id.as_str(), p.price, p.currency.as_deref()), ("799", Some(2199), Some("USD")));
        assert_eq!((p.category.as_deref(), p.tags.clone()), (Some("Clothing"), vec!["cotton".to_string()]));
        assert!(!p.in_stock && p.published);
        assert!(matches!(
            map_product("product.deleted", &json!({ "id": 799 }), &storefront),
            Some(Ok(Mapping::Products { delete, .. })) if delete == vec!["799".to_string()]
        ));
        assert!(map_product("order.created", &product, &storefront).is_none());
        assert!(map_product("product.created", &json!({ "id": 1, "price": "-1" }), &storefront).unwrap().is_err());
    }
}
