//! The outbox: deliveries claimed in batches for sending, their outcomes, suppressions, and
//! what decisions need to know about past sends (frequency caps, `opened(step)` & co).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{Arg, ReadRow, Store, StoreError, Tx, chunks};
use crate::member::Member;

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub run_id: i64,
    pub step: String,
    pub member_id: String,
    pub journey_id: String,
    pub version: String,
    pub channel: String,
    pub template: Option<String>,
    pub variant: Option<String>,
    pub vars: serde_json::Value,
    pub address: Option<String>,
    pub attempts: i64,
    pub trigger_event_id: Option<String>,
}

/// What became of a delivery.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Sent {
        provider_message_id: Option<String>,
        subject: Option<String>,
    },
    /// A transient failure: try again then.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Failed for good; `suppress` takes the address off the channel.
    Failed {
        error: String,
        suppress: bool,
    },
}

/// Runs' past sends, for `received(step)`, `opened(step)` and `clicked(step)`.
#[derive(Debug, Clone, Default)]
pub struct SendHistory {
    /// (run, step) pairs that were sent.
    pub received: HashSet<(i64, String)>,
    pub opened: HashSet<(i64, String)>,
    pub clicked: HashSet<(i64, String)>,
}

/// Takes an address off a channel (kept as it was if it is already off).
async fn insert_suppression(
    tx: &mut Tx,
    channel: &str,
    address: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = tx.sql();
    sql.push("INSERT INTO suppressions (channel, address, reason, created_at) VALUES (")
        .bind(Arg::text(channel))
        .push(", ")
        .bind(Arg::text(address))
        .push(", ")
        .bind(Arg::text(reason))
        .push(", ")
        .bind(Arg::Timestamp(Some(now)))
        .push(") ON CONFLICT (channel, address) DO NOTHING");
    tx.execute(sql).await?;
    Ok(())
}

fn read_claimed(r: &dyn ReadRow) -> Result<ClaimedDelivery, StoreError> {
    Ok(ClaimedDelivery {
        id: r.int("id")?.unwrap_or(0),
        run_id: r.int("run_id")?.unwrap_or(0),
        step: r.text("step")?.unwrap_or_default(),
        member_id: r.text("member_id")?.unwrap_or_default(),
        journey_id: r.text("journey_id")?.unwrap_or_default(),
        version: r.text("journey_version")?.unwrap_or_default(),
        channel: r.text("channel")?.unwrap_or_default(),
        template: r.text("template")?,
        variant: r.text("variant")?,
        vars: r.json("vars")?.unwrap_or_default(),
        address: r.text("address")?,
        attempts: r.int("attempts")?.unwrap_or(0),
        trigger_event_id: None,
    })
}

impl Store {
    /// Members by id, with tags (missing ids are left out): a statement per chunk of ids
    /// and no transaction (each member is read whole by its own statement).
    pub async fn members(&self, ids: &[String]) -> Result<HashMap<String, Member>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in super::chunks(ids, 1) {
            let sql = super::members::select_members(self.sql(), chunk, false);
            for stored in self.fetch(sql, super::members::read_member).await? {
                out.insert(stored.member.id.clone(), stored.member);
            }
        }
        Ok(out)
    }

    /// Events by id.
    pub async fn events_by_id(&self, ids: &[String]) -> Result<HashMap<String, crate::member::Event>, StoreError> {
        let mut out = HashMap::new();
        for chunk in super::chunks(ids, 1) {
            let mut sql = self.sql();
            sql.push("SELECT id, member_id, name, occurred_at, properties FROM events WHERE ")
                .in_list("id", chunk.to_vec());
            for event in self.fetch(sql, super::codec::read_event).await? {
                out.insert(event.id.clone(), event);
            }
        }
        Ok(out)
    }

    /// Claims up to `limit` deliveries due for sending (and sends whose worker's claim ran
    /// out: it died mid-send), marking them `sending` until `now + lease`.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: chrono::Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut tx = self.begin_write().await?;
        let lock = if tx.dialect() == crate::condition::Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let mut sql = tx.sql();
        let (until, at) = (sql.arg(Arg::Timestamp(Some(now + lease))), sql.arg(Arg::Timestamp(Some(now))));
        // The limit is written, not bound: see `Sql::limit`.
        sql.push(&format!(
            "UPDATE deliveries SET status = 'sending', claimed_until = {until}, attempts = attempts + 1 WHERE id IN (\
             SELECT id FROM (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= {at} \
             ORDER BY next_attempt_at LIMIT {limit}{lock}) due \
             UNION SELECT id FROM (SELECT id FROM deliveries WHERE status = 'sending' AND claimed_until <= {at} LIMIT {limit}{lock}) lost) \
             RETURNING id, run_id, step, member_id, journey_id, journey_version, channel, template, variant, vars, \
             address, attempts"
        ));
        let mut claimed = tx.fetch(sql, read_claimed).await?;
        // The trigger event of each run, for `event.*` in templates.
        let runs: Vec<i64> = claimed.iter().map(|d| d.run_id).collect::<HashSet<_>>().into_iter().collect();
        if !runs.is_empty() {
            let mut sql = tx.sql();
            sql.push("SELECT id, trigger_event_id FROM runs WHERE trigger_event_id IS NOT NULL AND ")
                .in_ids("id", &runs);
            let events: HashMap<i64, String> = tx
                .fetch(sql, |r| Ok((r.int("id")?.unwrap_or(0), r.text("trigger_event_id")?.unwrap_or_default())))
                .await?
                .into_iter()
                .collect();
            for d in &mut claimed {
                d.trigger_event_id = events.get(&d.run_id).cloned();
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records what became of sent deliveries, in one transaction: status, provider id,
    /// retry time, and suppressions for permanent failures.
    /// Writes a group of send outcomes in one transaction, with the products the sent
    /// messages showed (`shown`: member, product; `store::products`), so a recommending
    /// journey commits once a group, as any other.
    pub async fn record_outcomes(
        &self,
        outcomes: &[(ClaimedDelivery, DeliveryOutcome)],
        shown: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        // One `UPDATE … FROM (VALUES …)` per chunk, not one per delivery: a statement is a
        // round trip to SQLite's connection thread, and this runs while sends wait for it.
        for chunk in chunks(outcomes, 8) {
            let mut sql = tx.sql();
            sql.push(
                "WITH v (id, status, sent_at, provider_message_id, subject, next_attempt_at, reason, last_error) \
                 AS (VALUES ",
            );
            for (i, (d, outcome)) in chunk.iter().enumerate() {
                let (status, sent_at, provider_message_id, subject, next_attempt_at, reason, last_error) = match outcome
                {
                    DeliveryOutcome::Sent { provider_message_id, subject } => {
                        ("sent", Some(now), provider_message_id.clone(), subject.clone(), None, None, None)
                    }
                    DeliveryOutcome::Retry { at, error } => {
                        ("pending", None, None, None, Some(*at), None, Some(error.clone()))
                    }
                    DeliveryOutcome::Failed { error, suppress } => {
                        let reason = if *suppress { "permanent_failure" } else { "failed" };
                        ("failed", None, None, None, None, Some(reason.to_string()), Some(error.clone()))
                    }
                };
                sql.values_row(
                    i == 0,
                    [
                        Arg::Int(Some(d.id)),
                        Arg::text(status),
                        Arg::Timestamp(sent_at),
                        Arg::Text(provider_message_id),
                        Arg::Text(subject),
                        Arg::Timestamp(next_attempt_at),
                        Arg::Text(reason),
                        Arg::Text(last_error),
                    ],
                );
            }
            // Each outcome sets what it owns and leaves the rest as it was: a send its time,
            // provider id and subject; a retry its next attempt and error; a failure its
            // reason and error.
            // `attempted_at` dates the attempt for the alert rates (`store::alerts`).
            sql.push(") UPDATE deliveries SET attempted_at = ").bind(Arg::Timestamp(Some(now)));
            sql.push(
                ", status = v.status, claimed_until = NULL, \
                 sent_at = CASE WHEN v.status = 'sent' THEN v.sent_at ELSE deliveries.sent_at END, \
                 provider_message_id = CASE WHEN v.status = 'sent' THEN v.provider_message_id \
                     ELSE deliveries.provider_message_id END, \
                 subject = CASE WHEN v.status = 'sent' THEN v.subject ELSE deliveries.subject END, \
                 next_attempt_at = CASE WHEN v.status = 'pending' THEN v.next_attempt_at \
                     ELSE deliveries.next_attempt_at END, \
                 reason = CASE WHEN v.status = 'failed' THEN v.reason ELSE deliveries.reason END, \
                 last_error = CASE WHEN v.status = 'sent' THEN deliveries.last_error ELSE v.last_error END \
                 FROM v WHERE deliveries.id = v.id AND deliveries.status = 'sending'",
            );
            tx.execute(sql).await?;
        }
        for (d, outcome) in outcomes {
            if let (DeliveryOutcome::Failed { error, suppress: true }, Some(address)) = (outcome, &d.address) {
                insert_suppression(&mut tx, &d.channel, address, error, now).await?;
            }
        }
        super::products::write_shown(&mut tx, shown, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Extends the claim on deliveries still being sent (a long batch keeps what it holds,
    /// so no other worker takes over a send in progress).
    pub async fn hold_deliveries(&self, ids: &[i64], until: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        sql.push("UPDATE deliveries SET claimed_until = ")
            .bind(Arg::Timestamp(Some(until)))
            .push(" WHERE status = 'sending' AND ")
            .in_ids("id", ids);
        tx.execute(sql).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes an address off a channel (an unsubscribe, a hard bounce).
    pub async fn suppress(
        &self,
        channel: &str,
        address: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_suppression(&mut tx, channel, address, reason, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The member, channel and address of a delivery (for the unsubscribe link).
    pub async fn delivery_address(&self, id: i64) -> Result<Option<(String, String, Option<String>)>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT member_id, channel, address FROM deliveries WHERE id = ").bind(Arg::Int(Some(id)));
        Ok(self
            .fetch(sql, |r| {
                Ok((
                    r.text("member_id")?.unwrap_or_default(),
                    r.text("channel")?.unwrap_or_default(),
                    r.text("address")?,
                ))
            })
            .await?
            .pop())
    }

    /// Work waiting at `now`: (deliveries due to be sent, runs due to advance), for metrics.
    pub async fn due_work(&self, now: DateTime<Utc>) -> Result<(i64, i64), StoreError> {
        let mut sql = self.sql();
        let at = sql.arg(Arg::Timestamp(Some(now)));
        sql.push(&format!(
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= {at}) AS deliveries, \
             (SELECT COUNT(*) FROM runs WHERE status IN ('active', 'waiting') AND due_at <= {at}) AS runs"
        ));
        let counts =
            self.fetch(sql, |r| Ok((r.int("deliveries")?.unwrap_or(0), r.int("runs")?.unwrap_or(0)))).await?.pop();
        Ok(counts.unwrap_or((0, 0)))
    }

    /// Which of these (channel, address) pairs are suppressed.
    pub async fn suppressed(&self, addresses: &[(String, String)]) -> Result<HashSet<(String, String)>, StoreError> {
        let mut out = HashSet::new();
        let keys: Vec<String> = addresses.iter().map(|(c, a)| format!("{c}\u{1f}{a}")).collect();
        for chunk in super::chunks(&keys, 1) {
            let mut sql = self.sql();
            sql.push("SELECT channel, address FROM suppressions WHERE ");
            match sql.dialect() {
                crate::condition::Dialect::Sqlite => sql.in_list("channel || char(31) || address", chunk.to_vec()),
                crate::condition::Dialect::Postgres => sql.in_list("channel || chr(31) || address", chunk.to_vec()),
            };
            out.extend(
                self.fetch(sql, |r| {
                    Ok((r.text("channel")?.unwrap_or_default(), r.text("address")?.unwrap_or_default()))
                })
                .await?,
            );
        }
        Ok(out)
    }

    /// Per member and channel, the sends (pending, sending or sent) created at or after
    /// `since`, across all journeys (for frequency caps).
    pub async fn recent_sends(
        &self,
        members: &[String],
        since: DateTime<Utc>,
    ) -> Result<HashMap<(String, String), u32>, StoreError> {
        let mut out = HashMap::new();
        for chunk in super::chunks(members, 1) {
            let mut sql = self.sql();
            sql.push("SELECT member_id, channel, COUNT(*) AS n FROM deliveries WHERE ")
                .in_list("member_id", chunk.to_vec())
                .push(" AND status IN ('pending', 'sending', 'sent', 'delivered') AND created_at >= ")
                .bind(Arg::Timestamp(Some(since)))
                .push(" GROUP BY member_id, channel");
            for (key, n) in self
                .fetch(sql, |r| {
                    let key = (r.text("member_id")?.unwrap_or_default(), r.text("channel")?.unwrap_or_default());
                    Ok((key, r.int("n")?.unwrap_or(0) as u32))
                })
                .await?
            {
                out.insert(key, n);
            }
        }
        Ok(out)
    }

    /// What these runs sent, and which of those sends were opened or clicked.
    pub async fn send_history(&self, runs: &[i64]) -> Result<SendHistory, StoreError> {
        let mut history = SendHistory::default();
        for chunk in super::chunks(runs, 1) {
            let mut sql = self.sql();
            let name = sql.not_by_index("e.name");
            let delivery = match sql.dialect() {
                crate::condition::Dialect::Sqlite => "json_extract(e.properties, '$.delivery_id')",
                crate::condition::Dialect::Postgres => "(e.properties->>'delivery_id')::bigint",
            };
            sql.push(&format!(
                "SELECT d.run_id, d.step, d.status, \
                 (SELECT COUNT(*) FROM events e WHERE e.member_id = d.member_id AND {name} = 'message.opened' AND {delivery} = d.id) AS opened, \
                 (SELECT COUNT(*) FROM events e WHERE e.member_id = d.member_id AND {name} = 'message.clicked' AND {delivery} = d.id) AS clicked \
                 FROM deliveries d WHERE "
            ))
            .in_ids("d.run_id", chunk)
            .push(" AND d.status IN ('sending', 'sent', 'delivered')");
            for (run, step, opened, clicked) in self
                .fetch(sql, |r| {
                    Ok((
                        r.int("run_id")?.unwrap_or(0),
                        r.text("step")?.unwrap_or_default(),
                        r.int("opened")?.unwrap_or(0) > 0,
                        r.int("clicked")?.unwrap_or(0) > 0,
                    ))
                })
                .await?
            {
                history.received.insert((run, step.clone()));
                if opened || clicked {
                    history.opened.insert((run, step.clone()));
                }
                if clicked {
                    history.clicked.insert((run, step));
                }
            }
        }
        Ok(history)
    }

    /// Removes a push token from a member (FCM said it is no longer registered).
    pub async fn remove_push_token(
        &self,
        member_id: &str,
        token: &str,
        now: DateTime<Utc>,
        settings: &crate::state::Settings,
    ) -> Result<(), StoreError> {
        let Some(member) = self.member(member_id).await? else { return Ok(()) };
        let tokens: Vec<String> = member.push_tokens.into_iter().filter(|t| t != token).collect();
        let event = crate::member::Event {
            id: format!("push-unregistered:{member_id}:{token}"),
            member_id: member_id.to_string(),
            name: "member.updated".to_string(),
            occurred_at: now,
            properties: serde_json::json!({ "push_tokens": tokens }),
        };
        self.append_events(&[event], now, settings).await?;
        Ok(())
    }
}
