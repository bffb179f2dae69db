//! The event inbox (events the engine has not acted on yet) and leases (work that one
//! worker at a time does across replicas: the inbox, the scheduler).

use chrono::{DateTime, Utc};

use super::codec::read_event;
use super::runs::{Progress, record};
use super::{Arg, Store, StoreError};
use crate::member::Event;

impl Store {
    /// Takes or renews the lease `name` for `holder` until `now + lease`; false when another
    /// holder's lease is still running.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        let (n, h, u, at) = (
            sql.arg(Arg::Text(Some(name.to_string()))),
            sql.arg(Arg::Text(Some(holder.to_string()))),
            sql.arg(Arg::Timestamp(Some(now + lease))),
            sql.arg(Arg::Timestamp(Some(now))),
        );
        sql.push(&format!(
            "INSERT INTO leases (name, holder, until) VALUES ({n}, {h}, {u}) ON CONFLICT (name) DO UPDATE \
             SET holder = excluded.holder, until = excluded.until WHERE leases.holder = {h} OR leases.until <= {at} \
             RETURNING holder"
        ));
        let taken = !tx.fetch(sql, |r| r.text("holder")).await?.is_empty();
        tx.commit().await?;
        Ok(taken)
    }

    /// Gives a lease up (at shutdown), so another worker need not wait for it to run out.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        sql.push("DELETE FROM leases WHERE name = ")
            .bind(Arg::Text(Some(name.to_string())))
            .push(" AND holder = ")
            .bind(Arg::Text(Some(holder.to_string())));
        tx.execute(sql).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The oldest events in the inbox, in the order they arrived.
    pub async fn inbox(&self, limit: i64) -> Result<Vec<Event>, StoreError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT e.id, e.member_id, e.name, e.occurred_at, e.properties FROM inbox i JOIN events e ON e.id = i.event_id \
             ORDER BY i.received_at, e.occurred_at, e.id",
        )
        .limit(limit);
        self.fetch(sql, read_event).await
    }

    /// How many events wait in the inbox.
    pub async fn inbox_len(&self) -> Result<i64, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS n FROM inbox");
        Ok(self.fetch(sql, |r| Ok(r.int("n")?.unwrap_or(0))).await?.pop().unwrap_or(0))
    }

    /// Writes what a batch of events did and takes out of the inbox the events whose run
    /// changes were all written (a run another worker holds keeps its event for later), in
    /// one transaction. `events` pairs each event id with the runs it changes. Returns how
    /// many events were settled.
    pub async fn settle_inbox(
        &self,
        events: &[(String, Vec<i64>)],
        progress: Progress,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let written: std::collections::HashSet<i64> = record(&mut tx, progress, now).await?.into_iter().collect();
        let done: Vec<String> = events
            .iter()
            .filter(|(_, runs)| runs.iter().all(|r| written.contains(r)))
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in super::chunks(&done, 1) {
            let mut sql = tx.sql();
            sql.push("DELETE FROM inbox WHERE ").in_list("event_id", chunk.to_vec());
            tx.execute(sql).await?;
        }
        tx.commit().await?;
        Ok(done.len())
    }
}
