//! When the engine next has work in the store: the earliest due run and the earliest
//! delivery to (re)try after an instant, and the time zones members live in (date triggers
//! fire at member-local times). `simulate` jumps its virtual clock to these instants
//! instead of ticking through empty minutes; every query is one index range read.

use chrono::{DateTime, Utc};

use super::{Arg, Store, StoreError};

impl Store {
    /// The earliest instant strictly after `after` at which a run in progress is due, a
    /// pending delivery is to be tried, or a claim on a delivery being sent runs out (one
    /// statement: three index reads).
    pub async fn next_due_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut sql = self.sql();
        let after = sql.arg(Arg::Timestamp(Some(after)));
        sql.push(&format!(
            "SELECT MIN(at) AS at FROM (\
             SELECT MIN(due_at) AS at FROM runs WHERE status IN ('active', 'waiting') AND due_at > {after} \
             UNION ALL SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' AND next_attempt_at > {after} \
             UNION ALL SELECT MIN(claimed_until) FROM deliveries WHERE status = 'sending' AND claimed_until > {after}) due"
        ));
        Ok(self.fetch(sql, |r| r.timestamp("at")).await?.pop().flatten())
    }

    /// The distinct `timezone` values of members (None for members without one).
    pub async fn member_timezones(&self) -> Result<Vec<Option<String>>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT DISTINCT timezone FROM members");
        self.fetch(sql, |r| r.text("timezone")).await
    }
}

/// What a tick at an instant has to do besides looking for trigger firings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Due {
    /// An event is in the inbox.
    pub events: bool,
    /// A run is due and not claimed.
    pub runs: bool,
    /// A delivery is due, or a sender's claim on one ran out.
    pub deliveries: bool,
}

impl Due {
    pub fn any(&self) -> bool {
        self.events || self.runs || self.deliveries
    }
}

impl Store {
    /// What is due at `now` ([`Due`]), in one statement of index reads.
    pub async fn due_at(&self, now: DateTime<Utc>) -> Result<Due, StoreError> {
        let mut sql = self.sql();
        let at = sql.arg(Arg::Timestamp(Some(now)));
        sql.push(&format!(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM inbox) THEN 1 ELSE 0 END AS events, \
             CASE WHEN EXISTS (SELECT 1 FROM runs WHERE status IN ('active', 'waiting') AND due_at <= {at} \
                AND (claimed_until IS NULL OR claimed_until <= {at})) THEN 1 ELSE 0 END AS runs, \
             CASE WHEN EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND next_attempt_at <= {at}) \
                OR EXISTS (SELECT 1 FROM deliveries WHERE status = 'sending' AND claimed_until <= {at}) \
                THEN 1 ELSE 0 END AS deliveries"
        ));
        let due = self
            .fetch(sql, |r| {
                let flag = |column: &str| Ok::<_, StoreError>(r.int(column)?.unwrap_or(0) == 1);
                Ok(Due { events: flag("events")?, runs: flag("runs")?, deliveries: flag("deliveries")? })
            })
            .await?;
        Ok(due.into_iter().next().unwrap_or_default())
    }
}
