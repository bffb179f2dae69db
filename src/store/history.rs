//! A member's runs and deliveries (every send and every skip with its reason), as
//! `tidings member` shows them. The engine writes these tables.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Arg, ReadRow, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub journey_id: String,
    pub journey_version: String,
    pub step: Option<String>,
    pub status: String,
    pub entered_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_reason: Option<String>,
    pub converted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub journey_id: String,
    pub step: String,
    pub channel: String,
    pub template: Option<String>,
    pub variant: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

fn text(row: &dyn ReadRow, column: &str) -> Result<String, StoreError> {
    Ok(row.text(column)?.unwrap_or_default())
}

impl Store {
    /// A member's runs, the latest first.
    pub async fn runs_of(&self, member_id: &str, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT id, journey_id, journey_version, step, status, entered_at, due_at, finished_at, exit_reason, \
             converted_at FROM runs WHERE member_id = ",
        )
        .bind(Arg::Text(Some(member_id.to_string())))
        .push(" ORDER BY entered_at DESC, id DESC")
        .limit(limit);
        self.fetch(sql, |r| {
            Ok(RunRow {
                id: r.int("id")?.unwrap_or(0),
                journey_id: text(r, "journey_id")?,
                journey_version: text(r, "journey_version")?,
                step: r.text("step")?,
                status: text(r, "status")?,
                entered_at: r.timestamp("entered_at")?,
                due_at: r.timestamp("due_at")?,
                finished_at: r.timestamp("finished_at")?,
                exit_reason: r.text("exit_reason")?,
                converted_at: r.timestamp("converted_at")?,
            })
        })
        .await
    }

    /// A member's deliveries and skips, the latest first.
    pub async fn deliveries_of(&self, member_id: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT journey_id, step, channel, template, variant, status, reason, attempts, created_at, sent_at \
             FROM deliveries WHERE member_id = ",
        )
        .bind(Arg::Text(Some(member_id.to_string())))
        .push(" ORDER BY created_at DESC, id DESC")
        .limit(limit);
        self.fetch(sql, |r| {
            Ok(DeliveryRow {
                journey_id: text(r, "journey_id")?,
                step: text(r, "step")?,
                channel: text(r, "channel")?,
                template: r.text("template")?,
                variant: r.text("variant")?,
                status: text(r, "status")?,
                reason: r.text("reason")?,
                attempts: r.int("attempts")?.unwrap_or(0),
                created_at: r.timestamp("created_at")?,
                sent_at: r.timestamp("sent_at")?,
            })
        })
        .await
    }
}
