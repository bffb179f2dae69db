//! When the engine next has work in the store: the earliest due run and the earliest
//! delivery to (re)try after an instant, and the time zones members live in (date triggers
//! fire at member-local times). `simulate` jumps its virtual clock to these instants
//! instead of ticking through empty minutes; every query is one index range read.

use chrono::{DateTime, Utc};

use super::{Arg, Store, StoreError};

impl Store {
    /// The earliest instant strictly after `after` at which a run in progress is due, a
    /// pending delivery is to be tried, or a claim on a delivery being sent runs out.
    pub async fn next_due_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut earliest: Option<DateTime<Utc>> = None;
        let queries = [
            "SELECT MIN(due_at) AS at FROM runs WHERE status IN ('active', 'waiting') AND due_at > ",
            "SELECT MIN(next_attempt_at) AS at FROM deliveries WHERE status = 'pending' AND next_attempt_at > ",
            "SELECT MIN(claimed_until) AS at FROM deliveries WHERE status = 'sending' AND claimed_until > ",
        ];
        for query in queries {
            let mut sql = self.sql();
            sql.push(query).bind(Arg::Timestamp(Some(after)));
            if let Some(at) = self.fetch(sql, |r| r.timestamp("at")).await?.pop().flatten() {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        Ok(earliest)
    }

    /// The distinct `timezone` values of members (None for members without one).
    pub async fn member_timezones(&self) -> Result<Vec<Option<String>>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT DISTINCT timezone FROM members");
        self.fetch(sql, |r| r.text("timezone")).await
    }
}

impl Store {
    /// Whether a tick at `now` has anything to do besides looking for trigger firings: an
    /// event in the inbox, a run due and not claimed, a delivery due (or one whose sender's
    /// claim ran out).
    pub async fn work_due_at(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut sql = self.sql();
        let at = sql.arg(Arg::Timestamp(Some(now)));
        sql.push(&format!(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM inbox) \
             OR EXISTS (SELECT 1 FROM runs WHERE status IN ('active', 'waiting') AND due_at <= {at} \
                AND (claimed_until IS NULL OR claimed_until <= {at})) \
             OR EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND next_attempt_at <= {at}) \
             OR EXISTS (SELECT 1 FROM deliveries WHERE status = 'sending' AND claimed_until <= {at}) THEN 1 ELSE 0 END AS due"
        ));
        Ok(self.fetch(sql, |r| r.int("due")).await?.pop().flatten().unwrap_or(0) == 1)
    }
}
