//! How values are written to and read from columns that differ between engines, and the
//! row readers that more than one store module shares.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{ReadRow, StoreError};
use crate::member::Event;

/// The one text format of timestamps in SQLite: fixed width, UTC, microseconds,
/// so that comparing the text compares the instants.
pub const SQLITE_TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

pub fn sqlite_timestamp(at: DateTime<Utc>) -> String {
    at.format(SQLITE_TIMESTAMP_FORMAT).to_string()
}

pub fn parse_sqlite_timestamp(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, SQLITE_TIMESTAMP_FORMAT).ok().map(|naive| naive.and_utc())
}

/// An `events` row as the core's [`Event`]: the one reader of that table, for the event
/// log, the inbox, the fold of a member and the delivery events.
pub(crate) fn read_event(row: &dyn ReadRow) -> Result<Event, StoreError> {
    let id = row.text("id")?.unwrap_or_default();
    Ok(Event {
        member_id: row.text("member_id")?.unwrap_or_default(),
        name: row.text("name")?.unwrap_or_default(),
        occurred_at: row.timestamp("occurred_at")?.ok_or_else(|| StoreError::corrupt("occurred_at", &id))?,
        properties: row.json("properties")?.unwrap_or(serde_json::Value::Object(Default::default())),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_text_sorts_like_time() {
        let a: DateTime<Utc> = "2026-01-02T03:04:05.000007Z".parse().unwrap();
        let b: DateTime<Utc> = "2026-01-02T03:04:05.1Z".parse().unwrap();
        assert_eq!(sqlite_timestamp(a), "2026-01-02T03:04:05.000007Z");
        assert!(sqlite_timestamp(a) < sqlite_timestamp(b));
        assert_eq!(parse_sqlite_timestamp(&sqlite_timestamp(a)), Some(a));
    }
}
