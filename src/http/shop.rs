//! What the shops' webhook payloads become, shared by [`super::shopify`] and
//! [`super::woocommerce`] (both pure: a topic, an idempotency key and a JSON payload in,
//! events out).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::member::Event;
use crate::recommend::Product;

/// What a webhook delivery means for us.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapping {
    /// Events to store (checked by [`crate::state::check_event`] before they are queued).
    Events(Vec<Event>),
    /// Events of the member who placed `order_id`: the payload names only the order (a
    /// Shopify refund). Their `member_id` is filled in from the stored `order.placed`.
    ForOrder { order_id: String, events: Vec<Event> },
    /// Nothing to store, and why (answered 2xx, so the shop does not retry it).
    Ignored(String),
    /// A change to the catalogue (product webhooks): products to insert or replace, ids to
    /// remove.
    Products { upsert: Vec<Product>, delete: Vec<String> },
}

/// What the product webhooks need from the config: the shop's address (Shopify names a
/// product's page only by its handle) and the currency of its prices (neither shop puts it
/// in a product payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storefront {
    pub url: String,
    pub currency: String,
}

impl Default for Storefront {
    fn default() -> Self {
        Storefront { url: "https://shop.example.com".into(), currency: "CNY".into() }
    }
}

/// A product a webhook describes, checked as an imported row would be.
pub(super) fn checked_product(product: Product) -> Result<Mapping, MapError> {
    let product = crate::recommend::product::check(product).map_err(MapError)?;
    Ok(Mapping::Products { upsert: vec![product], delete: Vec::new() })
}

/// A price the shops send as a decimal string (or number), in minor units; `""` is none.
pub(super) fn price(value: Option<&Value>, currency: &str) -> Result<Option<i64>, MapError> {
    let text = match value {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Ok(None),
    };
    super::money::minor_units(&text, currency).map(Some).map_err(|e| MapError(format!("price: {e}")))
}

/// A payload that is JSON but not the shape its topic promises (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

pub(super) fn object(payload: &Value) -> Result<&Map<String, Value>, MapError> {
    payload.as_object().ok_or_else(|| MapError("the payload is not a JSON object".into()))
}

/// An id the shops send as a number (or, rarely, a string): its decimal text. `0`, `""`
/// and null are no id (WooCommerce's guest orders have `customer_id: 0`).
pub(super) fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) if n.as_u64() != Some(0) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() && s != "0" => Some(s.trim().to_string()),
        _ => None,
    }
}

pub(super) fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// An RFC 3339 time (Shopify), or WooCommerce's `*_gmt` form without an offset (UTC).
pub(super) fn time(object: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>, MapError> {
    let Some(raw) = text(object, key) else { return Ok(None) };
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")
        .map(|naive| Some(naive.and_utc()))
        .map_err(|_| MapError(format!("`{key}` is not a timestamp: `{raw}`")))
}

/// The member fields of a profile, each checked on its own as a `member.updated` would be:
/// a field the member schema refuses (a phone that is not E.164, say) is left out and
/// named in the log, so one odd field never loses the rest of the update.
pub(super) fn member_properties(fields: Vec<(&str, Value)>, context: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        let mut single = Map::new();
        single.insert(key.to_string(), value);
        match crate::state::fold::member_patch(&single) {
            Ok(_) => out.extend(single),
            Err(reason) => tracing::warn!(%context, field = key, %reason, "leaving out a member field"),
        }
    }
    out
}

/// An order's `line_items` as `properties.items` (`[{"product_id", "quantity", "price"}]`,
/// the unit price in minor units of `currency`); items without a product (a custom line,
/// a deleted product) are left out.
pub(super) fn line_items(order: &Map<String, Value>, currency: &str) -> Result<Vec<Value>, MapError> {
    let mut items = Vec::new();
    for item in order.get("line_items").and_then(Value::as_array).into_iter().flatten() {
        let Some(item) = item.as_object() else { continue };
        let Some(product_id) = id_of(item.get("product_id")) else { continue };
        let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(1).max(1);
        let price = match item.get("price") {
            Some(Value::String(s)) => Some(super::money::minor_units(s, currency)),
            Some(Value::Number(n)) => Some(super::money::minor_units(&n.to_string(), currency)),
            _ => None,
        }
        .transpose()
        .map_err(|e| MapError(format!("line_items price: {e}")))?;
        let mut line = serde_json::json!({ "product_id": product_id, "quantity": quantity });
        if let Some(price) = price.filter(|p| *p >= 0) {
            line["price"] = price.into();
        }
        items.push(line);
    }
    Ok(items)
}

pub(super) fn event(id: String, member_id: &str, name: &str, occurred_at: DateTime<Utc>, properties: Value) -> Event {
    Event { id, member_id: member_id.to_string(), name: name.to_string(), occurred_at, properties }
}
