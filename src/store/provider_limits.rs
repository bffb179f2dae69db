//! Provider limits shared by every worker (`provider_limits`, migration 0009): the token
//! bucket of each rate-limited provider, taken with one statement, and each provider's
//! health ([`crate::breaker::Health`]: failures, pause, probe), read and written whole.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Arg, Dialect, ReadRow, Store, StoreError};
use crate::breaker::{Bucket, Health};

/// What a take got: messages granted, and the provider's health as the row holds it.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    pub granted: u32,
    pub health: Health,
}

const HEALTH_COLUMNS: &str = "provider, failures, paused_until_ms, pause_ms, probing, probe_until_ms, reason";

fn read_health(r: &dyn ReadRow) -> Result<(String, Health), StoreError> {
    Ok((
        r.text("provider")?.unwrap_or_default(),
        Health {
            failures: r.int("failures")?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
            paused_until: r.int("paused_until_ms")?.and_then(DateTime::from_timestamp_millis),
            pause: chrono::Duration::milliseconds(r.int("pause_ms")?.unwrap_or(0)),
            probing: r.int("probing")?.unwrap_or(0) != 0,
            probe_until: r.int("probe_until_ms")?.and_then(DateTime::from_timestamp_millis),
            reason: r.text("reason")?,
        },
    ))
}

impl Store {
    /// Takes up to `want` messages from `provider`'s bucket, in one statement (an upsert:
    /// the first take creates the row with a full bucket). The refill is measured on the
    /// database's clock on PostgreSQL (`clock_timestamp()`), so workers whose clocks
    /// disagree share one bucket all the same; on SQLite, whose workers share a host, on
    /// `now_ms`. Exact on both: the row is the only place a token exists.
    pub async fn take_tokens(
        &self,
        provider: &str,
        bucket: Bucket,
        want: u32,
        now_ms: i64,
    ) -> Result<Taken, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        let (least, greatest) = match sql.dialect() {
            Dialect::Sqlite => ("MIN", "MAX"),
            Dialect::Postgres => ("LEAST", "GREATEST"),
        };
        let p = sql.arg(Arg::text(provider));
        let now = match sql.dialect() {
            Dialect::Sqlite => sql.arg(Arg::Int(Some(now_ms))),
            Dialect::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint".to_string(),
        };
        let (rate, cap, want) = (
            sql.arg(Arg::Int(Some(i64::from(bucket.rate)))),
            sql.arg(Arg::Int(Some(bucket.capacity()))),
            sql.arg(Arg::Int(Some(i64::from(want)))),
        );
        // `Bucket::take`, in SQL: every SET reads the row as it was.
        let available = format!(
            "{least}({cap}, provider_limits.tokens + {greatest}(0, {now} - provider_limits.refilled_ms) * {rate})"
        );
        let granted = format!("{least}({want}, ({available}) / 1000)");
        sql.push(&format!(
            "INSERT INTO provider_limits (provider, tokens, refilled_ms, granted) \
             VALUES ({p}, {cap} - 1000 * {least}({want}, {cap} / 1000), {now}, {least}({want}, {cap} / 1000)) \
             ON CONFLICT (provider) DO UPDATE SET granted = {granted}, \
             tokens = {available} - 1000 * {granted}, \
             refilled_ms = {greatest}(provider_limits.refilled_ms, {now}) \
             RETURNING granted, {HEALTH_COLUMNS}"
        ));
        let row = tx
            .fetch(sql, |r| {
                let granted = r.int("granted")?.unwrap_or(0);
                Ok((granted, read_health(r)?.1))
            })
            .await?
            .pop();
        tx.commit().await?;
        let (granted, health) = row.unwrap_or_default();
        Ok(Taken { granted: granted.clamp(0, i64::from(u32::MAX)) as u32, health })
    }

    /// Every provider's health (providers with no row are healthy).
    pub async fn provider_health(&self) -> Result<HashMap<String, Health>, StoreError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {HEALTH_COLUMNS} FROM provider_limits"));
        Ok(self.fetch(sql, read_health).await?.into_iter().collect())
    }

    /// Changes a provider's health with `change` (the breaker's pure step), reading and
    /// writing the row in one transaction (the row locked on PostgreSQL), so failures
    /// counted by two workers at once are both counted. Returns the new health.
    pub async fn update_provider_health(
        &self,
        provider: &str,
        change: impl FnOnce(&Health) -> Health,
    ) -> Result<Health, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        sql.push(&format!("SELECT {HEALTH_COLUMNS} FROM provider_limits WHERE provider = ")).bind(Arg::text(provider));
        if tx.dialect() == Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        let old = tx.fetch(sql, read_health).await?.pop().map(|(_, h)| h).unwrap_or_default();
        let new = change(&old);
        if new != old {
            let mut sql = tx.sql();
            sql.push(
                "INSERT INTO provider_limits (provider, failures, paused_until_ms, pause_ms, probing, probe_until_ms, \
                 reason) VALUES (",
            )
            .bind(Arg::text(provider))
            .push(", ")
            .bind(Arg::Int(Some(i64::from(new.failures))))
            .push(", ")
            .bind(Arg::Int(new.paused_until.map(|t| t.timestamp_millis())))
            .push(", ")
            .bind(Arg::Int(Some(new.pause.num_milliseconds())))
            .push(", ")
            .bind(Arg::Int(Some(i64::from(new.probing))))
            .push(", ")
            .bind(Arg::Int(new.probe_until.map(|t| t.timestamp_millis())))
            .push(", ")
            .bind(Arg::Text(new.reason.clone()))
            .push(
                ") ON CONFLICT (provider) DO UPDATE SET failures = excluded.failures, \
                     paused_until_ms = excluded.paused_until_ms, pause_ms = excluded.pause_ms, \
                     probing = excluded.probing, probe_until_ms = excluded.probe_until_ms, reason = excluded.reason",
            );
            tx.execute(sql).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Takes the probe of a provider whose breaker is open and whose pause is over: this
    /// worker alone sends (one message) until its answer is recorded or `hold_until`.
    /// False when another worker has taken it or the breaker closed.
    pub async fn take_probe(
        &self,
        provider: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        let (p, until, at) = (
            sql.arg(Arg::text(provider)),
            sql.arg(Arg::Int(Some(hold_until.timestamp_millis()))),
            sql.arg(Arg::Int(Some(now.timestamp_millis()))),
        );
        sql.push(&format!(
            "UPDATE provider_limits SET probe_until_ms = {until} WHERE provider = {p} AND probing = 1 \
             AND (paused_until_ms IS NULL OR paused_until_ms <= {at}) \
             AND (probe_until_ms IS NULL OR probe_until_ms <= {at})"
        ));
        let taken = tx.execute(sql).await? == 1;
        tx.commit().await?;
        Ok(taken)
    }
}

impl Store {
    /// The database's clock: PostgreSQL's `now()` (a worker measures its own clock's offset
    /// against it at start, so leases are taken and compared on one clock however far a
    /// host's clock is off). SQLite's workers share one host, whose clock it answers.
    pub async fn database_now(&self) -> Result<DateTime<Utc>, StoreError> {
        if self.dialect() != Dialect::Postgres {
            return Ok(Utc::now());
        }
        let mut sql = self.sql();
        sql.push("SELECT clock_timestamp() AS now");
        Ok(self.fetch(sql, |r| r.timestamp("now")).await?.pop().flatten().unwrap_or_else(Utc::now))
    }
}
