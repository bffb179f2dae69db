//! Journey versions (a run stays on the version it entered) and trigger firings (a schedule
//! tick or a date scan, claimed once across replicas).

use chrono::{DateTime, Utc};

use super::{Arg, Store, StoreError};
use crate::member::{Birthday, Member};

/// A stored version of a journey file.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub journey_id: String,
    pub version: String,
    pub path: String,
    pub source: String,
    /// The journey's outline for reports ([`crate::report::Plan`] as JSON), when known.
    pub outline: Option<String>,
}

/// A firing this worker holds.
#[derive(Debug, Clone)]
pub struct Firing {
    pub journey_id: String,
    pub fire_key: String,
    pub fire_at: DateTime<Utc>,
    pub cursor: Option<String>,
}

impl Store {
    /// Remembers the versions being loaded (a version already stored is left as it was).
    pub async fn save_versions(&self, versions: &[StoredVersion], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for v in versions {
            let mut sql = tx.sql();
            sql.push("INSERT INTO journey_versions (journey_id, version, path, source, loaded_at, outline) VALUES (")
                .bind(Arg::text(&v.journey_id))
                .push(", ")
                .bind(Arg::text(&v.version))
                .push(", ")
                .bind(Arg::text(&v.path))
                .push(", ")
                .bind(Arg::text(&v.source))
                .push(", ")
                .bind(Arg::Timestamp(Some(now)))
                .push(", ")
                .bind(Arg::Text(v.outline.clone()))
                .push(") ON CONFLICT (journey_id, version) DO NOTHING");
            tx.execute(sql).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A stored version, to compile for runs still on it.
    pub async fn version(&self, journey_id: &str, version: &str) -> Result<Option<StoredVersion>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT journey_id, version, path, source, outline FROM journey_versions WHERE journey_id = ")
            .bind(Arg::text(journey_id))
            .push(" AND version = ")
            .bind(Arg::text(version));
        Ok(self
            .fetch(sql, |r| {
                Ok(StoredVersion {
                    journey_id: r.text("journey_id")?.unwrap_or_default(),
                    version: r.text("version")?.unwrap_or_default(),
                    path: r.text("path")?.unwrap_or_default(),
                    source: r.text("source")?.unwrap_or_default(),
                    outline: r.text("outline")?,
                })
            })
            .await?
            .pop())
    }

    /// The outline of the journey's most recently loaded version (for reports).
    pub async fn latest_outline(&self, journey_id: &str) -> Result<Option<String>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT outline FROM journey_versions WHERE journey_id = ")
            .bind(Arg::text(journey_id))
            .push(" AND outline IS NOT NULL ORDER BY loaded_at DESC, version LIMIT 1");
        Ok(self.fetch(sql, |r| r.text("outline")).await?.pop().flatten())
    }

    /// Steps of a journey that runs on versions other than `current` wait in, with how
    /// many runs (so `validate` can warn when a change removes them).
    pub async fn waiting_steps(&self, journey_id: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT journey_version, step, COUNT(*) AS n FROM runs WHERE journey_id = ")
            .bind(Arg::text(journey_id))
            .push(" AND status IN ('active', 'waiting') GROUP BY journey_version, step");
        self.fetch(sql, |r| {
            Ok((
                r.text("journey_version")?.unwrap_or_default(),
                r.text("step")?.unwrap_or_default(),
                r.int("n")?.unwrap_or(0),
            ))
        })
        .await
    }

    /// The latest firing of a journey (to know where its schedule left off).
    pub async fn last_firing(&self, journey_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT MAX(fire_at) AS last FROM firings WHERE journey_id = ").bind(Arg::text(journey_id));
        Ok(self.fetch(sql, |r| r.timestamp("last")).await?.pop().flatten())
    }

    /// Claims a firing: a new one, or one whose holder's lease ran out before it was done.
    /// None when another worker has it or it is done.
    pub async fn claim_firing(
        &self,
        journey_id: &str,
        fire_key: &str,
        fire_at: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<Firing>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        let (j, k, f, u, at) = (
            sql.arg(Arg::text(journey_id)),
            sql.arg(Arg::text(fire_key)),
            sql.arg(Arg::Timestamp(Some(fire_at))),
            sql.arg(Arg::Timestamp(Some(now + lease))),
            sql.arg(Arg::Timestamp(Some(now))),
        );
        sql.push(&format!(
            "INSERT INTO firings (journey_id, fire_key, fire_at, status, claimed_until) VALUES ({j}, {k}, {f}, 'running', {u}) \
             ON CONFLICT (journey_id, fire_key) DO UPDATE SET claimed_until = excluded.claimed_until \
             WHERE firings.status = 'running' AND firings.claimed_until <= {at} RETURNING journey_id, fire_key, fire_at, cursor"
        ));
        let firing = tx
            .fetch(sql, |r| {
                Ok(Firing {
                    journey_id: r.text("journey_id")?.unwrap_or_default(),
                    fire_key: r.text("fire_key")?.unwrap_or_default(),
                    fire_at: r.timestamp("fire_at")?.unwrap_or_default(),
                    cursor: r.text("cursor")?,
                })
            })
            .await?
            .pop();
        tx.commit().await?;
        Ok(firing)
    }

    /// Records a firing's progress (its cursor), renewing the claim, or marks it done.
    pub async fn firing_progress(
        &self,
        firing: &Firing,
        cursor: Option<&str>,
        enrolled: u64,
        claimed_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        sql.push("UPDATE firings SET cursor = ")
            .bind(Arg::Text(cursor.map(str::to_string)))
            .push(", status = ")
            .bind(Arg::text(if cursor.is_some() { "running" } else { "done" }))
            .push(", enrolled = enrolled + ")
            .bind(Arg::Int(Some(enrolled as i64)))
            .push(", claimed_until = ")
            .bind(Arg::Timestamp(Some(claimed_until)))
            .push(" WHERE journey_id = ")
            .bind(Arg::text(&firing.journey_id))
            .push(" AND fire_key = ")
            .bind(Arg::text(&firing.fire_key));
        tx.execute(sql).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Where the date scan of a journey left off.
    pub async fn date_scan_cursor(&self, journey_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT fire_at FROM firings WHERE fire_key = 'date-scan' AND journey_id = ")
            .bind(Arg::text(journey_id));
        Ok(self.fetch(sql, |r| r.timestamp("fire_at")).await?.pop().flatten())
    }

    pub async fn set_date_scan_cursor(&self, journey_id: &str, to: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        let (j, at) = (sql.arg(Arg::text(journey_id)), sql.arg(Arg::Timestamp(Some(to))));
        sql.push(&format!(
            "INSERT INTO firings (journey_id, fire_key, fire_at, status) VALUES ({j}, 'date-scan', {at}, 'done') \
             ON CONFLICT (journey_id, fire_key) DO UPDATE SET fire_at = excluded.fire_at"
        ));
        tx.execute(sql).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Members whose date field may fall in a scan window: yearly fields by month-day
    /// (`MM-DD`, the birthday index), one-off timestamps by range. Each is read only as far
    /// as a date trigger needs to tell whether it fires (id, time zone and the date
    /// fields; for an attribute, that attribute): most candidates of a scan do not, and a
    /// whole member costs several times as much to read.
    pub async fn date_candidates(&self, field: &DateQuery) -> Result<Vec<Member>, StoreError> {
        let mut sql = self.sql();
        // The attribute's value; its name is the statement's only argument (`Sql::arg`).
        let attribute = match field {
            DateQuery::Attribute(name) => {
                let value = match sql.dialect() {
                    crate::condition::Dialect::Sqlite => "json_extract(m.attributes, '$.' || ",
                    crate::condition::Dialect::Postgres => "(m.attributes->>",
                };
                let name = sql.arg(Arg::text(name));
                format!("CAST({value}{name}) AS TEXT)")
            }
            _ => "CAST(NULL AS TEXT)".to_string(),
        };
        sql.push(&format!(
            "SELECT m.id, m.timezone, m.birthday, m.joined_at, m.points_expire_at, {attribute} AS attribute \
             FROM members m WHERE "
        ));
        match field {
            DateQuery::Birthday(days) => {
                sql.in_list(super::members::birthday_month_day(sql.dialect()), days.clone());
            }
            DateQuery::JoinedAt(days) => {
                let md = match sql.dialect() {
                    crate::condition::Dialect::Sqlite => "substr(m.joined_at, 6, 5)",
                    crate::condition::Dialect::Postgres => "to_char(m.joined_at AT TIME ZONE 'UTC', 'MM-DD')",
                };
                sql.in_list(md, days.clone());
            }
            DateQuery::PointsExpireAt(from, to) => {
                sql.push("m.points_expire_at >= ")
                    .bind(Arg::Timestamp(Some(*from)))
                    .push(" AND m.points_expire_at <= ")
                    .bind(Arg::Timestamp(Some(*to)));
            }
            DateQuery::Attribute(_) => {
                sql.push(&format!("{attribute} IS NOT NULL"));
            }
        }
        self.fetch(sql, |r| {
            let id = r.text("id")?.unwrap_or_default();
            let birthday = match r.text("birthday")? {
                None => None,
                Some(text) => Some(
                    Birthday::parse(&text).ok_or_else(|| StoreError::corrupt(format!("birthday of {id}"), &text))?,
                ),
            };
            let mut attributes = serde_json::Map::new();
            if let (DateQuery::Attribute(name), Some(value)) = (field, r.text("attribute")?) {
                attributes.insert(name.clone(), value.into());
            }
            Ok(Member {
                timezone: r.text("timezone")?,
                birthday,
                joined_at: r.timestamp("joined_at")?,
                points_expire_at: r.timestamp("points_expire_at")?,
                attributes,
                id,
                ..Member::default()
            })
        })
        .await
    }
}

/// How to preselect members for a date scan.
#[derive(Debug, Clone)]
pub enum DateQuery {
    /// `MM-DD` days.
    Birthday(Vec<String>),
    JoinedAt(Vec<String>),
    PointsExpireAt(DateTime<Utc>, DateTime<Utc>),
    Attribute(String),
}
