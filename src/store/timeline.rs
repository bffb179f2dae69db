//! Deliveries as a whole-base timeline needs them (`simulate`): every delivery with its
//! run, step and outcome, in the order they were created.

use super::{Store, StoreError};

/// One delivery and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcomeRow {
    pub id: i64,
    pub run_id: i64,
    pub step: String,
    pub member_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Store {
    /// Every delivery (sent, failed, pending or skipped), oldest first.
    pub async fn all_deliveries(&self) -> Result<Vec<DeliveryOutcomeRow>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT id, run_id, step, member_id, status, reason, last_error, sent_at FROM deliveries ORDER BY id");
        self.fetch(sql, |r| {
            Ok(DeliveryOutcomeRow {
                id: r.int("id")?.unwrap_or(0),
                run_id: r.int("run_id")?.unwrap_or(0),
                step: r.text("step")?.unwrap_or_default(),
                member_id: r.text("member_id")?.unwrap_or_default(),
                status: r.text("status")?.unwrap_or_default(),
                reason: r.text("reason")?,
                last_error: r.text("last_error")?,
                sent_at: r.timestamp("sent_at")?,
            })
        })
        .await
    }
}
