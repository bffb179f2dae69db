//! What `tidings report` and the dashboard read: one journey's runs, sends and skips,
//! experiment arms and timeline counts, as plain rows. The counting is
//! [`crate::report::build`]'s (pure); these queries only read, in one read transaction so
//! the numbers agree with one another.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Arg, ReadRow, Store, StoreError, Tx};
use crate::condition::Dialect;

/// A run of the journey.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFact {
    pub id: i64,
    pub entered_at: DateTime<Utc>,
    pub converted_at: Option<DateTime<Utc>>,
    /// The properties of the event the run converted with (revenue: `total`).
    pub goal: Option<serde_json::Value>,
}

/// A delivery or a skipped send of the journey, with what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchFact {
    pub run_id: i64,
    pub step: String,
    pub variant: Option<String>,
    /// pending | sending | sent | delivered | failed | skipped
    pub status: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A `message.delivered` event names it (or its status says so).
    pub delivered: bool,
    /// A `message.opened` event names it.
    pub opened: bool,
    /// A `message.clicked` event names it.
    pub clicked: bool,
}

/// The arm a run took at an experiment step.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmFact {
    pub run_id: i64,
    pub step: String,
    pub arm: String,
    pub at: DateTime<Utc>,
}

/// Timeline lines of the journey per step, action and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalCount {
    pub step: Option<String>,
    pub action: String,
    pub reason: Option<String>,
    /// Distinct runs (lines without a run, such as a refused reentry, count one each).
    pub runs: u64,
}

/// Everything a journey's report counts.
#[derive(Debug, Clone, Default)]
pub struct JourneyFacts {
    pub runs: Vec<RunFact>,
    pub touches: Vec<TouchFact>,
    pub arms: Vec<ArmFact>,
    pub journal: Vec<JournalCount>,
}

/// A journey that has runs, for the dashboard's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyTotals {
    pub journey_id: String,
    pub runs: u64,
    pub active: u64,
    pub converted: u64,
}

/// `events.properties->>'delivery_id'` as text, the same on both engines.
fn delivery_of_event(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CAST(json_extract(e.properties, '$.delivery_id') AS TEXT)",
        Dialect::Postgres => "(e.properties->>'delivery_id')",
    }
}

fn delivery_id_text(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CAST(d.id AS TEXT)",
        Dialect::Postgres => "d.id::text",
    }
}

impl Store {
    /// The rows a report on `journey_id` counts.
    pub async fn journey_facts(&self, journey_id: &str) -> Result<JourneyFacts, StoreError> {
        let span = tracing::debug_span!("journey_facts", journey = journey_id);
        let _enter = span.enter();
        let mut tx = self.begin_read().await?;
        let facts = JourneyFacts {
            runs: runs(&mut tx, journey_id).await?,
            touches: touches(&mut tx, journey_id).await?,
            arms: arms(&mut tx, journey_id).await?,
            journal: journal(&mut tx, journey_id).await?,
        };
        tx.commit().await?;
        Ok(facts)
    }

    /// Every journey that has runs, by id.
    pub async fn journey_totals(&self) -> Result<Vec<JourneyTotals>, StoreError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT journey_id, COUNT(*) AS runs, \
             SUM(CASE WHEN status IN ('active', 'waiting') THEN 1 ELSE 0 END) AS active, \
             SUM(CASE WHEN converted_at IS NOT NULL THEN 1 ELSE 0 END) AS converted \
             FROM runs GROUP BY journey_id ORDER BY journey_id",
        );
        self.fetch(sql, |r| {
            Ok(JourneyTotals {
                journey_id: r.text("journey_id")?.unwrap_or_default(),
                runs: count(r, "runs")?,
                active: count(r, "active")?,
                converted: count(r, "converted")?,
            })
        })
        .await
    }
}

fn count(r: &dyn ReadRow, column: &str) -> Result<u64, StoreError> {
    Ok(r.int(column)?.unwrap_or(0).max(0) as u64)
}

async fn runs(tx: &mut Tx, journey_id: &str) -> Result<Vec<RunFact>, StoreError> {
    let mut sql = tx.sql();
    sql.push(
        "SELECT r.id, r.entered_at, r.converted_at, e.properties AS goal FROM runs r \
         LEFT JOIN events e ON e.id = r.goal_event_id WHERE r.journey_id = ",
    )
    .bind(Arg::text(journey_id))
    .push(" ORDER BY r.id");
    tx.fetch(sql, |r| {
        Ok(RunFact {
            id: r.int("id")?.unwrap_or(0),
            entered_at: r.timestamp("entered_at")?.unwrap_or_default(),
            converted_at: r.timestamp("converted_at")?,
            goal: r.json("goal")?,
        })
    })
    .await
}

async fn touches(tx: &mut Tx, journey_id: &str) -> Result<Vec<TouchFact>, StoreError> {
    let mut sql = tx.sql();
    let (event_delivery, delivery) = (delivery_of_event(sql.dialect()), delivery_id_text(sql.dialect()));
    let about = |name: &str| {
        format!(
            "(SELECT COUNT(*) FROM events e WHERE e.member_id = d.member_id AND e.name = '{name}' \
             AND {event_delivery} = {delivery})"
        )
    };
    sql.push(&format!(
        "SELECT d.run_id, d.step, d.variant, d.status, d.reason, d.created_at, {} AS delivered, {} AS opened, \
         {} AS clicked FROM deliveries d WHERE d.journey_id = ",
        about("message.delivered"),
        about("message.opened"),
        about("message.clicked"),
    ))
    .bind(Arg::text(journey_id))
    .push(" ORDER BY d.run_id, d.step, d.occurrence");
    tx.fetch(sql, |r| {
        let status = r.text("status")?.unwrap_or_default();
        Ok(TouchFact {
            run_id: r.int("run_id")?.unwrap_or(0),
            step: r.text("step")?.unwrap_or_default(),
            variant: r.text("variant")?,
            delivered: status == "delivered" || count(r, "delivered")? > 0,
            status,
            reason: r.text("reason")?,
            created_at: r.timestamp("created_at")?.unwrap_or_default(),
            opened: count(r, "opened")? > 0,
            clicked: count(r, "clicked")? > 0,
        })
    })
    .await
}

async fn arms(tx: &mut Tx, journey_id: &str) -> Result<Vec<ArmFact>, StoreError> {
    let mut sql = tx.sql();
    sql.push("SELECT run_id, step, arm, at FROM run_arms WHERE journey_id = ")
        .bind(Arg::text(journey_id))
        .push(" ORDER BY run_id, step");
    tx.fetch(sql, |r| {
        Ok(ArmFact {
            run_id: r.int("run_id")?.unwrap_or(0),
            step: r.text("step")?.unwrap_or_default(),
            arm: r.text("arm")?.unwrap_or_default(),
            at: r.timestamp("at")?.unwrap_or_default(),
        })
    })
    .await
}

async fn journal(tx: &mut Tx, journey_id: &str) -> Result<Vec<JournalCount>, StoreError> {
    let mut sql = tx.sql();
    sql.push(
        "SELECT step, action, reason, COUNT(DISTINCT run_id) + SUM(CASE WHEN run_id IS NULL THEN 1 ELSE 0 END) AS runs \
         FROM journal WHERE journey_id = ",
    )
    .bind(Arg::text(journey_id))
    .push(" GROUP BY step, action, reason ORDER BY step, action, reason");
    tx.fetch(sql, |r| {
        Ok(JournalCount {
            step: r.text("step")?,
            action: r.text("action")?.unwrap_or_default(),
            reason: r.text("reason")?,
            runs: count(r, "runs")?,
        })
    })
    .await
}
