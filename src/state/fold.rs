//! How events change a member: a pure function of the member's last import (the
//! *baseline*) and the set of its events.
//!
//! `member = fold(baseline, as_of, events)`. Because the result depends only on the
//! baseline and on the *set* of events (never on the order they arrived in), the store
//! can recompute it whenever an event arrives, late or early, and get the same member;
//! because events are unique by id, a repeated event changes nothing.
//!
//! **Snapshots.** An import is the shop's own view of a group of fields at the time of
//! the import (`as_of`, per [`Group`]). An event that occurred before the group's `as_of`
//! is already in it, so it does not change that group again (it is still stored and
//! listed). A group never imported takes every event.
//!
//! **Orders** (order.placed, order.refunded), as a set: each order counts once, keyed by
//! `properties.order_id` (else the event id), so `orders/create` and `orders/paid` for one
//! order count once. `order_count` and `total_spend` add the orders after the snapshot;
//! `first_order_at`/`last_order_at` are the earliest and latest of them and of the
//! baseline. A refund (`order_id` and/or `amount`) lowers `total_spend` by its amount, or
//! by what is left of the order when it has no amount; once an order is refunded in full it
//! is cancelled: it no longer counts in `order_count` nor in the first/last order times (a
//! cancelled order from before the snapshot lowers `order_count` by one). `currency` is
//! the latest counted order's, when it names one.
//!
//! **Everything else** in time order (`occurred_at`, then id): `points.earned` and
//! `points.redeemed` add or subtract `points` (or set `balance` when given);
//! `points.expiring` sets `points_expiring` and `points_expire_at` (`expire_at`);
//! `tier.changed` sets `tier` to its `to` (`from` is informative); `member.created` and `member.updated` set the fields their
//! properties name (`member.created` also sets `joined_at` to when it occurred, if the
//! member has none); `member.unsubscribed` withdraws consent on its `channel` (all
//! channels without one). The latest event wins, whatever order they arrived in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::patch::{self, Field, FieldValue, Group, Patch};
use crate::member::{Event, Member};

/// Whether the fold reads events of this name: the ones that change stored member fields
/// (all others are history only).
pub fn is_state_event(name: &str) -> bool {
    event_group(name).is_some() || matches!(name, "member.created" | "member.updated")
}

/// The names of the built-in events that change stored member fields ([`is_state_event`]).
pub fn state_events() -> impl Iterator<Item = &'static str> {
    crate::schema::EVENT_NAMES.iter().copied().filter(|name| is_state_event(name))
}

/// When each group of fields was last imported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsOf {
    pub profile: Option<DateTime<Utc>>,
    pub orders: Option<DateTime<Utc>>,
    pub points: Option<DateTime<Utc>>,
    pub tier: Option<DateTime<Utc>>,
}

impl AsOf {
    pub fn get(&self, group: Group) -> Option<DateTime<Utc>> {
        match group {
            Group::Profile => self.profile,
            Group::Orders => self.orders,
            Group::Points => self.points,
            Group::Tier => self.tier,
        }
    }

    pub fn set(&mut self, group: Group, at: DateTime<Utc>) {
        let slot = match group {
            Group::Profile => &mut self.profile,
            Group::Orders => &mut self.orders,
            Group::Points => &mut self.points,
            Group::Tier => &mut self.tier,
        };
        *slot = Some(at);
    }

    /// Whether an event at `at` changes `group`: it is not older than the group's import.
    pub fn admits(&self, group: Group, at: DateTime<Utc>) -> bool {
        self.get(group).is_none_or(|as_of| at >= as_of)
    }
}

/// The result of a fold.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    /// The baseline with the events applied (derived fields untouched).
    pub member: Member,
    /// How many events changed (or could have changed) a field.
    pub applied: usize,
    /// Events older than the snapshot of every group they touch: stored, but no effect.
    pub stale: Vec<String>,
}

/// Checks the properties of a state-changing event when it arrives, so that a malformed
/// event is refused with a reason instead of being half-applied later.
pub fn check_event(event: &Event) -> Result<(), String> {
    let props = match &event.properties {
        Value::Object(map) => map,
        Value::Null => &serde_json::Map::new(),
        _ => return Err("properties must be a JSON object".to_string()),
    };
    let int = |key: &str| -> Result<Option<i64>, String> {
        match props.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| format!("{}: properties.{key} must be a whole number", event.name))
            }
            Some(_) => Err(format!("{}: properties.{key} must be a whole number", event.name)),
        }
    };
    let non_negative = |key: &str| -> Result<Option<i64>, String> {
        match int(key)? {
            Some(n) if n < 0 => Err(format!("{}: properties.{key} must not be negative", event.name)),
            other => Ok(other),
        }
    };
    match event.name.as_str() {
        "order.placed" => {
            non_negative("total")?
                .ok_or("order.placed: properties.total (the order's amount in minor units) is required")?;
            if let Some(c) = props.get("currency").filter(|c| !c.is_null()) {
                patch::parse_json(Field::Currency, c).map_err(|e| format!("order.placed: properties.currency: {e}"))?;
            }
            crate::recommend::order::lines(props)?;
            order_key(props).transpose().map(|_| ())
        }
        "order.refunded" => {
            let amount = non_negative("amount")?;
            let key = order_key(props).transpose()?;
            if amount.is_none() && key.is_none() {
                return Err("order.refunded: needs properties.order_id, properties.amount, or both".to_string());
            }
            Ok(())
        }
        "points.earned" | "points.redeemed" => {
            let points = non_negative("points")?;
            if points.is_none() && int("balance")?.is_none() {
                return Err(format!("{}: properties.points (or properties.balance) is required", event.name));
            }
            Ok(())
        }
        "points.expiring" => {
            non_negative("points")?.ok_or("points.expiring: properties.points is required")?;
            match props.get("expire_at") {
                Some(Value::String(s)) => patch::parse_timestamp(s).map(|_| ()),
                _ => Err("points.expiring: properties.expire_at (an RFC 3339 timestamp) is required".to_string()),
            }
            .map_err(|e| format!("points.expiring: properties.expire_at: {e}"))?;
            int("balance").map(|_| ())
        }
        "tier.changed" => match props.get("to") {
            Some(Value::String(s)) if !s.is_empty() && !s.contains('\0') => Ok(()),
            _ => Err("tier.changed: properties.to (the new tier) is required".to_string()),
        },
        "member.created" | "member.updated" => member_patch(props).map(|_| ()),
        "member.unsubscribed" => match props.get("channel") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(c)) if ["email", "sms", "push"].contains(&c.as_str()) => Ok(()),
            Some(_) => Err("member.unsubscribed: properties.channel must be email, sms or push".to_string()),
        },
        _ => Ok(()),
    }
}

/// The fields a `member.created`/`member.updated` event sets. Order aggregates come from
/// order events and imports only.
pub fn member_patch(props: &serde_json::Map<String, Value>) -> Result<Patch, String> {
    let mut patch = Patch::new();
    for (key, value) in props {
        if let Some(name) = key.strip_prefix("attributes.") {
            let mut map = serde_json::Map::new();
            map.insert(name.to_string(), value.clone());
            patch.set(Field::Attributes, patch::parse_json(Field::Attributes, &Value::Object(map))?);
            continue;
        }
        let field = Field::from_name(key).ok_or_else(|| format!("unknown member field `{key}`"))?;
        if field.group() == Group::Orders {
            return Err(format!(
                "`{key}` is kept from order events (order.placed, order.refunded) and imports, not set by an event"
            ));
        }
        patch.set(field, patch::parse_json(field, value).map_err(|e| format!("{key}: {e}"))?);
    }
    Ok(patch)
}

fn order_key(props: &serde_json::Map<String, Value>) -> Option<Result<String, String>> {
    match props.get("order_id")? {
        Value::String(s) if !s.is_empty() => Some(Ok(s.clone())),
        Value::Number(n) => Some(Ok(n.to_string())),
        Value::Null => None,
        _ => Some(Err("properties.order_id must be a string or a number".to_string())),
    }
}

fn props(event: &Event) -> &serde_json::Map<String, Value> {
    static EMPTY: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
    match &event.properties {
        Value::Object(map) => map,
        _ => EMPTY.get_or_init(serde_json::Map::new),
    }
}

fn get_i64(event: &Event, key: &str) -> Option<i64> {
    props(event).get(key).and_then(Value::as_i64)
}

/// The group an event's effect belongs to (`member.*` events touch fields of several).
fn event_group(name: &str) -> Option<Group> {
    match name {
        "order.placed" | "order.refunded" => Some(Group::Orders),
        "points.earned" | "points.redeemed" | "points.expiring" => Some(Group::Points),
        "tier.changed" => Some(Group::Tier),
        "member.unsubscribed" => Some(Group::Profile),
        _ => None,
    }
}

struct Order<'e> {
    placed: &'e Event,
    total: i64,
    /// The placement is after the orders snapshot, so the order is added by the fold.
    counted: bool,
    refunded: i64,
    cancelled: bool,
}

/// Applies the member's events to its baseline. `events` may hold any events of the
/// member, in any order, including ones that change nothing.
pub fn fold(baseline: &Member, as_of: &AsOf, events: &[Event]) -> Folded {
    let mut sorted: Vec<&Event> =
        events.iter().filter(|e| e.member_id == baseline.id && is_state_event(&e.name)).collect();
    sorted.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    sorted.dedup_by(|a, b| a.id == b.id);

    let mut member = baseline.clone();
    let mut applied = 0;
    let mut stale = Vec::new();
    let mut note = |admitted: bool, event: &Event| {
        if admitted {
            applied += 1;
        } else {
            stale.push(event.id.clone());
        }
    };

    // Orders, as a set.
    let mut orders: Vec<Order> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for &event in sorted.iter().filter(|e| e.name == "order.placed") {
        let key = order_key(props(event)).and_then(Result::ok).unwrap_or_else(|| event.id.clone());
        let counted = as_of.admits(Group::Orders, event.occurred_at);
        if by_key.contains_key(&key) {
            // The same order again (created, then paid): it counts once.
            note(counted, event);
            continue;
        }
        by_key.insert(key, orders.len());
        let total = get_i64(event, "total").unwrap_or(0);
        orders.push(Order { placed: event, total, counted, refunded: 0, cancelled: false });
        note(counted, event);
    }
    let mut spend_delta: i64 = 0;
    let mut count_delta: i64 = 0;
    for &event in sorted.iter().filter(|e| e.name == "order.refunded") {
        let admitted = as_of.admits(Group::Orders, event.occurred_at);
        note(admitted, event);
        let amount = get_i64(event, "amount");
        let order = order_key(props(event)).and_then(Result::ok).and_then(|k| by_key.get(&k)).map(|&i| &mut orders[i]);
        match order {
            Some(order) if !order.cancelled => {
                let amount = amount.unwrap_or((order.total - order.refunded).max(0));
                order.refunded = order.refunded.saturating_add(amount);
                if admitted {
                    spend_delta = spend_delta.saturating_sub(amount);
                }
                if order.refunded >= order.total {
                    order.cancelled = true;
                    if admitted && !order.counted {
                        count_delta -= 1;
                    }
                }
            }
            _ => {
                if admitted {
                    spend_delta = spend_delta.saturating_sub(amount.unwrap_or(0));
                }
            }
        }
    }
    let live: Vec<&Order> = orders.iter().filter(|o| o.counted && !o.cancelled).collect();
    let cancelled_counted: i64 = orders.iter().filter(|o| o.counted && o.cancelled).map(|o| o.total).sum();
    // A counted, cancelled order adds its total and its refunds take it away again.
    let added: i64 = live.iter().map(|o| o.total).sum::<i64>() + cancelled_counted;
    member.order_count = (member.order_count + live.len() as i64 + count_delta).max(0);
    member.total_spend = member.total_spend.saturating_add(added).saturating_add(spend_delta);
    for order in &live {
        let at = order.placed.occurred_at;
        member.first_order_at = Some(member.first_order_at.map_or(at, |t| t.min(at)));
        member.last_order_at = Some(member.last_order_at.map_or(at, |t| t.max(at)));
    }
    if let Some(currency) = live
        .iter()
        .rev()
        .find_map(|o| props(o.placed).get("currency").and_then(Value::as_str))
        .filter(|c| patch::parse_json(Field::Currency, &Value::String(c.to_string())).is_ok())
    {
        member.currency = Some(currency.to_string());
    }

    // Everything else, in time order.
    for &event in sorted.iter().filter(|e| !e.name.starts_with("order.")) {
        let at = event.occurred_at;
        if let Some(group) = event_group(&event.name) {
            let admitted = as_of.admits(group, at);
            note(admitted, event);
            if !admitted {
                continue;
            }
        }
        match event.name.as_str() {
            "points.earned" | "points.redeemed" => {
                if let Some(balance) = get_i64(event, "balance") {
                    member.points = balance;
                } else {
                    let n = get_i64(event, "points").unwrap_or(0);
                    member.points = if event.name == "points.earned" {
                        member.points.saturating_add(n)
                    } else {
                        member.points.saturating_sub(n)
                    };
                }
            }
            "points.expiring" => {
                member.points_expiring = get_i64(event, "points").unwrap_or(0);
                member.points_expire_at =
                    props(event).get("expire_at").and_then(Value::as_str).and_then(|s| patch::parse_timestamp(s).ok());
                if let Some(balance) = get_i64(event, "balance") {
                    member.points = balance;
                }
            }
            "tier.changed" => {
                if let Some(tier) = props(event).get("to").and_then(Value::as_str) {
                    member.tier = Some(tier.to_string());
                }
            }
            "member.unsubscribed" => match props(event).get("channel").and_then(Value::as_str) {
                Some("email") => member.email_consent = false,
                Some("sms") => member.sms_consent = false,
                Some("push") => member.push_consent = false,
                _ => (member.email_consent, member.sms_consent, member.push_consent) = (false, false, false),
            },
            "member.created" | "member.updated" => {
                let Ok(mut patch) = member_patch(props(event)) else { continue };
                if event.name == "member.created" && member.joined_at.is_none() && patch.get(Field::JoinedAt).is_none()
                {
                    patch.set(Field::JoinedAt, FieldValue::Timestamp(at));
                }
                let groups = patch.groups();
                note(groups.iter().any(|g| as_of.admits(*g, at)), event);
                patch.apply_where(&mut member, |g| as_of.admits(g, at));
            }
            _ => {}
        }
    }
    Folded { member, applied, stale }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(day: u32) -> DateTime<Utc> {
        format!("2026-03-{day:02}T10:00:00Z").parse().unwrap()
    }

    fn ev(id: &str, name: &str, day: u32, properties: Value) -> Event {
        Event { id: id.into(), member_id: "m1".into(), name: name.into(), occurred_at: at(day), properties }
    }

    #[test]
    fn the_state_events_are_the_built_in_ones_the_fold_reads() {
        let names: Vec<&str> = state_events().collect();
        assert_eq!(names.len(), 9, "{names:?}");
        assert!(names.iter().all(|n| n.split('.').next() != Some("message") && *n != "cart.abandoned"));
        assert!(!is_state_event("referral.completed"));
    }

    fn base() -> Member {
        Member { id: "m1".into(), ..Member::default() }
    }

    fn permutations(events: &[Event]) -> Vec<Vec<Event>> {
        if events.len() <= 1 {
            return vec![events.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..events.len() {
            let mut rest = events.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first.clone());
                out.push(tail);
            }
        }
        out
    }

    #[test]
    fn orders_add_up_and_a_full_refund_cancels_the_order() {
        let events = [
            ev("e1", "order.placed", 1, json!({"order_id": "A", "total": 1000, "currency": "CNY"})),
            ev("e2", "order.placed", 5, json!({"order_id": "B", "total": 3000})),
            ev("e3", "order.placed", 6, json!({"order_id": "B", "total": 3000})),
            ev("e4", "order.refunded", 7, json!({"order_id": "B"})),
            ev("e5", "order.refunded", 8, json!({"order_id": "A", "amount": 200})),
        ];
        let m = fold(&base(), &AsOf::default(), &events).member;
        assert_eq!(m.order_count, 1);
        assert_eq!(m.total_spend, 800);
        assert_eq!(m.first_order_at, Some(at(1)));
        assert_eq!(m.last_order_at, Some(at(1)), "the refunded order B no longer counts as the last");
        assert_eq!(m.currency.as_deref(), Some("CNY"));
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_events_arrive_in() {
        let events = [
            ev("e1", "order.placed", 1, json!({"order_id": "A", "total": 1000})),
            ev("e2", "order.refunded", 2, json!({"order_id": "A", "amount": 1000})),
            ev("e3", "points.earned", 3, json!({"points": 50})),
            ev("e4", "points.redeemed", 4, json!({"points": 20})),
            ev("e5", "tier.changed", 5, json!({"from": "silver", "to": "gold"})),
            ev("e6", "member.updated", 6, json!({"first_name": "李", "tier": "silver"})),
        ];
        let expected = fold(&base(), &AsOf::default(), &events).member;
        assert_eq!((expected.points, expected.tier.as_deref(), expected.order_count), (30, Some("silver"), 0));
        for order in permutations(&events) {
            assert_eq!(fold(&base(), &AsOf::default(), &order).member, expected);
        }
        // A repeated event changes nothing.
        let mut twice = events.to_vec();
        twice.push(events[2].clone());
        assert_eq!(fold(&base(), &AsOf::default(), &twice).member, expected);
    }

    #[test]
    fn a_points_balance_resets_and_later_changes_add_to_it() {
        let events = [
            ev("e1", "points.earned", 1, json!({"points": 100})),
            ev("e2", "points.earned", 2, json!({"points": 10, "balance": 500})),
            ev("e3", "points.redeemed", 3, json!({"points": 50})),
            ev("e4", "points.expiring", 4, json!({"points": 120, "expire_at": "2026-06-30T16:00:00Z"})),
        ];
        let m = fold(&base(), &AsOf::default(), &events).member;
        assert_eq!((m.points, m.points_expiring), (450, 120));
        assert_eq!(m.points_expire_at, Some("2026-06-30T16:00:00Z".parse().unwrap()));
    }

    #[test]
    fn events_older_than_an_import_do_not_change_that_part_again() {
        let mut baseline = base();
        baseline.order_count = 5;
        baseline.total_spend = 9000;
        baseline.last_order_at = Some(at(10));
        baseline.points = 100;
        let as_of = AsOf { orders: Some(at(10)), ..AsOf::default() };
        let events = [
            ev("old", "order.placed", 9, json!({"total": 700})),
            ev("new", "order.placed", 11, json!({"total": 300})),
            ev("pts", "points.earned", 9, json!({"points": 5})),
        ];
        let folded = fold(&baseline, &as_of, &events);
        assert_eq!((folded.member.order_count, folded.member.total_spend), (6, 9300));
        assert_eq!(folded.member.last_order_at, Some(at(11)));
        assert_eq!(folded.member.points, 105, "points were never imported, so every points event counts");
        assert_eq!(folded.stale, vec!["old".to_string()]);
    }

    #[test]
    fn member_events_merge_fields_and_created_sets_joined_at() {
        let events = [
            ev(
                "e1",
                "member.created",
                1,
                json!({"email": "a@example.com", "email_consent": true, "sms_consent": true}),
            ),
            ev("e2", "member.updated", 3, json!({"attributes.size": "M", "phone": "+8613800138000"})),
            ev("e3", "member.updated", 2, json!({"phone": "+8613900139000", "first_name": "Ann"})),
            ev("e4", "member.unsubscribed", 4, json!({"channel": "sms"})),
        ];
        let m = fold(&base(), &AsOf::default(), &events).member;
        assert_eq!(m.joined_at, Some(at(1)));
        assert_eq!(m.phone.as_deref(), Some("+8613800138000"), "the later update wins");
        assert_eq!(m.first_name.as_deref(), Some("Ann"));
        assert_eq!(m.attributes.get("size"), Some(&json!("M")));
        assert!(m.email_consent && !m.sms_consent);
    }

    #[test]
    fn malformed_state_events_are_refused_with_a_reason() {
        let bad = [
            ev("a", "order.placed", 1, json!({"total": "12.50"})),
            ev("b", "order.placed", 1, json!({})),
            ev("c", "order.refunded", 1, json!({})),
            ev("d", "points.expiring", 1, json!({"points": 5, "expire_at": "soon"})),
            ev("e", "member.updated", 1, json!({"order_count": 3})),
            ev("f", "member.updated", 1, json!({"timezone": "Mars/Olympus"})),
            ev("g", "tier.changed", 1, json!({"to": 3})),
        ];
        for event in &bad {
            assert!(check_event(event).is_err(), "{event:?}");
        }
        assert!(check_event(&ev("h", "referral.completed", 1, json!({"anything": 1}))).is_ok());
        assert!(check_event(&ev("i", "order.placed", 1, json!({"total": 1250, "order_id": 7}))).is_ok());
    }
}
