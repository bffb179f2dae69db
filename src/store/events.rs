//! Events: stored once per id, then folded into their members in the same transaction.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use super::codec::read_event;
use super::members::rebuild;
use super::{Arg, Store, StoreError, chunks};
use crate::member::Event;
use crate::state::{Settings, is_state_event};

/// What appending a batch of events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsWritten {
    /// New events stored.
    pub inserted: u64,
    /// Events whose id was already stored (or repeated in the batch): ignored.
    pub duplicates: u64,
    /// Members that did not exist and were created for these events.
    pub members_created: u64,
    /// New events older than their member's last import: stored, no change to the member.
    pub stale: u64,
}

impl Store {
    /// Stores a batch of events in one transaction: a repeated id is ignored, an unknown
    /// member is created, and every member a new state-changing event names is re-folded
    /// (so a late event lands in the right place). Events must have passed
    /// [`crate::state::check_event`].
    pub async fn append_events(
        &self,
        events: &[Event],
        now: DateTime<Utc>,
        settings: &Settings,
    ) -> Result<EventsWritten, StoreError> {
        Ok(self.store_events(events, now, settings, false).await?.0)
    }

    /// [`Store::append_events`] for events that happen now (the API, webhooks, the
    /// engine's own): each new one also goes into the engine's inbox in the same
    /// transaction, so journeys react to it exactly once. Imported history does not.
    pub async fn ingest_events(
        &self,
        events: &[Event],
        now: DateTime<Utc>,
        settings: &Settings,
    ) -> Result<EventsWritten, StoreError> {
        Ok(self.store_events(events, now, settings, true).await?.0)
    }

    /// [`Store::ingest_events`], also naming the events that were new: the HTTP ingest
    /// writer stores many requests in one transaction and answers each with its own counts.
    pub async fn ingest_events_reporting(
        &self,
        events: &[Event],
        now: DateTime<Utc>,
        settings: &Settings,
    ) -> Result<(EventsWritten, HashSet<String>), StoreError> {
        self.store_events(events, now, settings, true).await
    }

    /// The member who placed an order (`properties.order_id` of an `order.placed`), for
    /// webhooks that name only the order (Shopify's refunds).
    pub async fn member_of_order(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        let mut sql = self.sql();
        let key = match sql.dialect() {
            crate::condition::Dialect::Sqlite => "CAST(json_extract(properties, '$.order_id') AS TEXT)",
            crate::condition::Dialect::Postgres => "(properties->>'order_id')",
        };
        sql.push(&format!("SELECT member_id FROM events WHERE name = 'order.placed' AND {key} = "))
            .bind(Arg::text(order_id))
            .push(" LIMIT 1");
        Ok(self.fetch(sql, |r| Ok(r.text("member_id")?.unwrap_or_default())).await?.pop())
    }

    async fn store_events(
        &self,
        events: &[Event],
        now: DateTime<Utc>,
        settings: &Settings,
        live: bool,
    ) -> Result<(EventsWritten, HashSet<String>), StoreError> {
        let mut seen = HashSet::with_capacity(events.len());
        let unique: Vec<&Event> = events.iter().filter(|e| seen.insert(e.id.as_str())).collect();
        let mut written = EventsWritten { duplicates: (events.len() - unique.len()) as u64, ..Default::default() };
        let mut tx = self.begin_write().await?;

        let mut inserted: HashSet<String> = HashSet::with_capacity(unique.len());
        for chunk in chunks(&unique, 6) {
            let mut sql = tx.sql();
            sql.push("INSERT INTO events (id, member_id, name, occurred_at, properties, received_at) VALUES ");
            for (i, e) in chunk.iter().enumerate() {
                let properties = match &e.properties {
                    serde_json::Value::Null => "{}".to_string(),
                    other => other.to_string(),
                };
                sql.push(if i == 0 { "(" } else { ", (" })
                    .bind(Arg::Text(Some(e.id.clone())))
                    .push(", ")
                    .bind(Arg::Text(Some(e.member_id.clone())))
                    .push(", ")
                    .bind(Arg::Text(Some(e.name.clone())))
                    .push(", ")
                    .bind(Arg::Timestamp(Some(crate::state::derived::stored_now(e.occurred_at))))
                    .push(", ")
                    .bind(Arg::Json(Some(properties)))
                    .push(", ")
                    .bind(Arg::Timestamp(Some(crate::state::derived::stored_now(now))))
                    .push(")");
            }
            sql.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            inserted.extend(tx.fetch(sql, |r| Ok(r.text("id")?.unwrap_or_default())).await?);
        }
        written.inserted = inserted.len() as u64;
        written.duplicates += (unique.len() - inserted.len()) as u64;

        let fresh: Vec<&&Event> = unique.iter().filter(|e| inserted.contains(&e.id)).collect();
        let new_events: Vec<&Event> = fresh.iter().map(|e| **e).collect();
        super::products::write_order_lines(&mut tx, &new_events).await?;
        let members: Vec<String> =
            fresh.iter().map(|e| e.member_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut created: Vec<String> = Vec::new();
        for chunk in chunks(&members, 2) {
            let mut sql = tx.sql();
            sql.push("INSERT INTO members (id, updated_at) VALUES ");
            for (i, id) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" })
                    .bind(Arg::Text(Some(id.clone())))
                    .push(", ")
                    .bind(Arg::Timestamp(Some(crate::state::derived::stored_now(now))))
                    .push(")");
            }
            sql.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            created.extend(tx.fetch(sql, |r| Ok(r.text("id")?.unwrap_or_default())).await?);
        }
        written.members_created = created.len() as u64;

        let touched: BTreeSet<String> =
            fresh.iter().filter(|e| is_state_event(&e.name)).map(|e| e.member_id.clone()).chain(created).collect();
        let touched: Vec<String> = touched.into_iter().collect();
        let stale = rebuild(&mut tx, &touched, now, settings).await?;
        if live {
            let fresh: Vec<&String> = unique.iter().map(|e| &e.id).filter(|id| inserted.contains(*id)).collect();
            for chunk in chunks(&fresh, 2) {
                let mut sql = tx.sql();
                sql.push("INSERT INTO inbox (event_id, received_at) VALUES ");
                for (i, id) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" })
                        .bind(Arg::Text(Some(id.to_string())))
                        .push(", ")
                        .bind(Arg::Timestamp(Some(now)))
                        .push(")");
                }
                sql.push(" ON CONFLICT (event_id) DO NOTHING");
                tx.execute(sql).await?;
            }
        }
        written.stale = stale.iter().filter(|id| inserted.contains(*id)).count() as u64;
        tx.commit().await?;
        Ok((written, inserted))
    }

    /// A member's most recent events, newest first.
    pub async fn events_of(&self, member_id: &str, limit: i64) -> Result<Vec<Event>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT id, member_id, name, occurred_at, properties FROM events WHERE member_id = ")
            .bind(Arg::Text(Some(member_id.to_string())))
            .push(" ORDER BY occurred_at DESC, id DESC")
            .limit(limit);
        self.fetch(sql, read_event).await
    }

    /// How many events a member has.
    pub async fn event_count(&self, member_id: &str) -> Result<i64, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS n FROM events WHERE member_id = ").bind(Arg::Text(Some(member_id.to_string())));
        Ok(self.fetch(sql, |r| Ok(r.int("n")?.unwrap_or(0))).await?.pop().unwrap_or(0))
    }
}
