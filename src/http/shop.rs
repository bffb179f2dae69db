//! What the shops' webhook payloads become, shared by [`super::shopify`] and
//! [`super::woocommerce`] (both pure: a topic, an idempotency key and a JSON payload in,
//! events out).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::member::Event;

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

pub(super) fn event(id: String, member_id: &str, name: &str, occurred_at: DateTime<Utc>, properties: Value) -> Event {
    Event { id, member_id: member_id.to_string(), name: name.to_string(), occurred_at, properties }
}
