//! Runs: enrolling members, claiming due runs in batches, and writing a batch of
//! decisions (run updates, deliveries, timeline lines) in one transaction.
//!
//! Claims are leases: a claimed run carries `claimed_until`, and a worker that dies loses
//! its claim when the lease runs out, so another picks the run up. On PostgreSQL the claim
//! is `FOR UPDATE SKIP LOCKED`, so workers never wait on one another's batches.

use chrono::{DateTime, Utc};

use super::{Arg, ReadRow, Sql, Store, StoreError, Tx, chunks};
use crate::condition::Dialect;

/// A member entering a journey.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub member_id: String,
    pub journey_id: String,
    pub version: String,
    pub first_step: String,
    /// Unique per journey and member: the trigger event id, the schedule's fire time or the
    /// date occurrence.
    pub trigger_key: String,
    pub trigger_event_id: Option<String>,
}

/// A run claimed for a decision.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub id: i64,
    pub member_id: String,
    pub journey_id: String,
    pub version: String,
    pub step: Option<String>,
    pub status: String,
    pub entered_at: DateTime<Utc>,
    pub trigger_event_id: Option<String>,
    pub visits: i64,
    pub converted: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub waiting_for: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_reason: Option<String>,
}

impl ClaimedRun {
    /// An update that leaves the run as it is (to change one thing).
    pub fn unchanged(&self, claim: Option<String>) -> RunUpdate {
        RunUpdate {
            id: self.id,
            step: self.step.clone(),
            status: match self.status.as_str() {
                "active" => "active",
                "waiting" => "waiting",
                "exited" => "exited",
                _ => "done",
            },
            due_at: self.due_at,
            waiting_for: self.waiting_for.clone(),
            finished_at: self.finished_at,
            exit_reason: self.exit_reason.clone(),
            converted_at: None,
            goal_event_id: None,
            add_visits: 0,
            claim,
        }
    }
}

/// The new state of a run after a decision.
#[derive(Debug, Clone)]
pub struct RunUpdate {
    pub id: i64,
    pub step: Option<String>,
    /// `active`, `waiting`, `done` or `exited`.
    pub status: &'static str,
    pub due_at: Option<DateTime<Utc>>,
    pub waiting_for: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_reason: Option<String>,
    pub converted_at: Option<DateTime<Utc>>,
    /// The event the run reached its goal with (kept only with the first conversion).
    pub goal_event_id: Option<String>,
    pub add_visits: i64,
    /// The claim token this decision was made under; None: the run must be unclaimed (or
    /// its claim expired) at `now`.
    pub claim: Option<String>,
}

/// A delivery (status `pending`) or a skipped send (status `skipped`, with a reason).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub run_id: i64,
    pub step: String,
    pub occurrence: i64,
    pub member_id: String,
    pub journey_id: String,
    pub version: String,
    pub channel: String,
    pub template: Option<String>,
    pub variant: Option<String>,
    pub vars: serde_json::Value,
    pub status: &'static str,
    pub reason: Option<String>,
    pub address: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JournalEntry {
    pub at: DateTime<Utc>,
    pub member_id: String,
    pub journey_id: String,
    pub run_id: Option<i64>,
    pub step: Option<String>,
    pub action: String,
    pub channel: Option<String>,
    pub template: Option<String>,
    pub variant: Option<String>,
    pub reason: Option<String>,
}

const RUN_COLUMNS: &str = "id, member_id, journey_id, journey_version, step, status, entered_at, trigger_event_id, \
     visits, converted_at, due_at, waiting_for, finished_at, exit_reason";

fn read_run(r: &dyn ReadRow) -> Result<ClaimedRun, StoreError> {
    Ok(ClaimedRun {
        id: r.int("id")?.unwrap_or(0),
        member_id: r.text("member_id")?.unwrap_or_default(),
        journey_id: r.text("journey_id")?.unwrap_or_default(),
        version: r.text("journey_version")?.unwrap_or_default(),
        step: r.text("step")?,
        status: r.text("status")?.unwrap_or_default(),
        entered_at: r.timestamp("entered_at")?.unwrap_or_default(),
        trigger_event_id: r.text("trigger_event_id")?,
        visits: r.int("visits")?.unwrap_or(0),
        converted: r.timestamp("converted_at")?.is_some(),
        due_at: r.timestamp("due_at")?,
        waiting_for: r.text("waiting_for")?,
        finished_at: r.timestamp("finished_at")?,
        exit_reason: r.text("exit_reason")?,
    })
}

impl Store {
    /// Inserts runs (active at their first step, due `now`) and their `enter` lines; a run
    /// whose (journey, member, trigger key) exists is skipped. Returns the new runs' ids.
    pub async fn enroll(&self, runs: &[NewRun], now: DateTime<Utc>) -> Result<Vec<(i64, String)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let created = insert_runs(&mut tx, runs, now).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Enrolls, in one transaction, the members of the next chunk of the base (up to `limit`
    /// members after `cursor`, in the members table's own order, whether they match or not)
    /// who match `audience` and may enter under the journey's reentry rule. Returns how many
    /// entered and where the next chunk starts (an opaque cursor: a rowid on SQLite, a
    /// member id on PostgreSQL; None when this chunk reached the end of the base).
    #[allow(clippy::too_many_arguments)]
    pub async fn enroll_audience(
        &self,
        journey_id: &str,
        version: &str,
        first_step: &str,
        trigger_key: &str,
        audience: Option<&crate::condition::Expr>,
        reentry: Reentry,
        cursor: Option<&str>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<(u64, Option<String>), StoreError> {
        let mut tx = self.begin_write().await?;
        // A chunk is a range of the base, not a number of enrolled members: its end is known
        // before anything is written, so the insert returns nothing and the timeline's lines
        // are copied from the new rows in one range scan (returning 5,000 ids a chunk and
        // looking each up again cost more than the insert). On SQLite the range is of
        // rowids: an index on the audience's column lists its members in rowid order, so a
        // chunk is a range seek in it and needs no sort (paging by id re-read all the
        // audience and sorted it for every chunk). PostgreSQL pages by id.
        let (position, from, to, next) = match tx.dialect() {
            Dialect::Sqlite => {
                // A cursor that is not a rowid (a firing started by an older version) starts
                // over: the unique key leaves out whom the firing already enrolled.
                let from = cursor.and_then(|c| c.parse::<i64>().ok()).unwrap_or(i64::MIN);
                let mut sql = tx.sql();
                sql.push("SELECT MAX(rowid) AS last FROM members");
                let last = tx.fetch(sql, |r| r.int("last")).await?.into_iter().next().flatten();
                let Some(last) = last.filter(|&last| last > from) else {
                    tx.commit().await?;
                    return Ok((0, None));
                };
                let to = from.max(0).saturating_add(limit).max(from.saturating_add(1));
                let next = (to < last).then(|| to.to_string());
                ("m.rowid", Some(Arg::Int(Some(from))), Some(Arg::Int(Some(to))), next)
            }
            Dialect::Postgres => {
                let mut sql = tx.sql();
                sql.push("SELECT id FROM members");
                if let Some(cursor) = cursor {
                    sql.push(" WHERE id > ").bind(Arg::text(cursor));
                }
                sql.push(&format!(" ORDER BY id OFFSET {} LIMIT 1", (limit - 1).max(0)));
                let to = tx.fetch(sql, |r| r.text("id")).await?.into_iter().next().flatten();
                ("m.id", cursor.map(Arg::text), to.clone().map(|to| Arg::Text(Some(to))), to)
            }
        };
        // One `INSERT … SELECT`: the members never leave the database (binding 10 values a
        // run made enrollment ~5× slower). The audience fragment comes with numbered
        // placeholders, so every argument here is numbered too.
        let dialect = tx.dialect();
        let mut sql = tx.sql();
        let journey = sql.arg(Arg::text(journey_id));
        let version = sql.arg(Arg::text(version));
        let step = sql.arg(Arg::text(first_step));
        let at = sql.arg(Arg::Timestamp(Some(now)));
        let key = sql.arg(Arg::text(trigger_key));
        if dialect == Dialect::Postgres {
            // The `enter` lines come from the rows the insert returns, in the same statement.
            sql.push("WITH entered AS (");
        }
        sql.push(&format!(
            "INSERT INTO runs (member_id, journey_id, journey_version, step, status, entered_at, due_at, \
             trigger_key, trigger_event_id, visits) \
             SELECT m.id, {journey}, {version}, {step}, 'active', {at}, {at}, {key}, NULL, 0 FROM members m WHERE "
        ));
        match audience {
            Some(expr) => sql.condition(expr, now)?,
            None => sql.push("1 = 1"),
        };
        // The chunk's range, for the members and (on PostgreSQL) for the runs the reentry
        // rule looks at: PostgreSQL may answer `NOT EXISTS` with a hash anti-join, which
        // then reads the runs of this range only, not the whole table once per chunk.
        push_range(&mut sql, position, &from, &to);
        // On PostgreSQL the reentry rule's runs are limited to the range as well.
        let runs_range = |sql: &mut Sql| {
            if dialect == Dialect::Postgres {
                push_range(sql, "r.member_id", &from, &to);
            }
        };
        match reentry {
            Reentry::Always => {}
            Reentry::Never => {
                sql.push(&format!(
                    " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.member_id = m.id AND r.journey_id = {journey}"
                ));
                runs_range(&mut sql);
                sql.push(")");
            }
            Reentry::Since(since) => {
                let since = sql.arg(Arg::Timestamp(Some(since)));
                sql.push(&format!(
                    " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.member_id = m.id AND r.journey_id = {journey} \
                     AND (r.entered_at >= {since} OR r.status IN ('active', 'waiting'))"
                ));
                runs_range(&mut sql);
                sql.push(")");
            }
        }
        // Members this firing already enrolled (a firing resumed after a crash, a chunk
        // written again because its progress was not) are left out by the unique key, once
        // per (journey, member, trigger key).
        sql.push(&format!(" ORDER BY {position} ON CONFLICT (journey_id, member_id, trigger_key) DO NOTHING"));
        let entered = match dialect {
            Dialect::Postgres => {
                sql.push(
                    " RETURNING id, member_id, journey_id, entered_at) \
                     INSERT INTO journal (at, member_id, journey_id, run_id, step, action) \
                     SELECT entered_at, member_id, journey_id, id, NULL, 'enter' FROM entered ORDER BY id",
                );
                tx.execute(sql).await?
            }
            Dialect::Sqlite => {
                // The rows written from here on are this chunk's: the write lock is held, and
                // a new rowid is greater than every one before it.
                let mut before = tx.sql();
                before.push("SELECT COALESCE(MAX(id), 0) AS before FROM runs");
                let before = tx.fetch(before, |r| r.int("before")).await?.into_iter().next().flatten().unwrap_or(0);
                let entered = tx.execute(sql).await?;
                if entered > 0 {
                    // The journal's `enter` lines, from the rows just written: a range of
                    // rowids (`+` keeps SQLite from reading the journey's every run through
                    // an index on `journey_id` instead, once per chunk).
                    let mut sql = tx.sql();
                    let journey = sql.arg(Arg::text(journey_id));
                    let key = sql.arg(Arg::text(trigger_key));
                    let before = sql.arg(Arg::Int(Some(before)));
                    sql.push(&format!(
                        "INSERT INTO journal (at, member_id, journey_id, run_id, step, action) \
                         SELECT entered_at, member_id, journey_id, id, NULL, 'enter' FROM runs \
                         WHERE id > {before} AND +journey_id = {journey} AND +trigger_key = {key} ORDER BY id"
                    ));
                    tx.execute(sql).await?;
                }
                entered
            }
        };
        tx.commit().await?;
        Ok((entered, next))
    }

    /// After a firing enrolled `entered` runs: on PostgreSQL a large firing is followed by
    /// `ANALYZE runs`, so the claim's plan knows the runs are due. Until autovacuum gets
    /// to it the planner believes a few hundred are, reads every due run (a bitmap scan
    /// and a sort instead of the due index in order) for each batch of 1,000, and
    /// advancing 100,000 runs slowed from thousands a second to ~1,000.
    pub async fn after_enrollment(&self, entered: u64) -> Result<(), StoreError> {
        const LARGE: u64 = 10_000;
        if entered < LARGE || self.dialect() != Dialect::Postgres {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        sql.push("ANALYZE runs");
        tx.execute(sql).await?;
        tx.commit().await
    }

    /// Claims up to `limit` runs that are due, for `lease`.
    pub async fn claim_due_runs(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: chrono::Duration,
        token: &str,
    ) -> Result<Vec<ClaimedRun>, StoreError> {
        let mut tx = self.begin_write().await?;
        // On PostgreSQL workers claim side by side, so two could each take a run of the
        // same member and decide both at once (a frequency cap would hold for each, not
        // for the member). So the claim first locks the members of the due runs (skipping
        // members another claim holds), then, in a second statement that sees every claim
        // committed before those locks were granted, takes only runs whose member has no
        // run claimed elsewhere. On SQLite claims are serialised by the write lock, and
        // the same check suffices.
        let postgres = tx.dialect() == Dialect::Postgres;
        let mut members: Option<Vec<String>> = None;
        if postgres {
            // The candidates are the members of the first `limit` due runs, read in the
            // order of the `runs_due` index (a scan that stops at `limit`, however many runs
            // are due); those whose row is gone pass unlocked (their decision ends them).
            let mut sql = tx.sql();
            sql.push(
                "WITH candidates AS (SELECT DISTINCT member_id FROM (SELECT r.member_id FROM runs r \
                      WHERE r.status IN ('active', 'waiting') AND r.due_at <= ",
            )
            .bind(Arg::Timestamp(Some(now)))
            .push(" AND (r.claimed_until IS NULL OR r.claimed_until <= ")
            .bind(Arg::Timestamp(Some(now)))
            .push(") ORDER BY r.due_at")
            .limit(limit)
            .push(
                ") due), locked AS (SELECT m.id FROM members m WHERE m.id IN (SELECT member_id FROM candidates) \
                     ORDER BY m.id FOR UPDATE SKIP LOCKED) \
                     SELECT id FROM locked UNION ALL SELECT c.member_id FROM candidates c \
                     WHERE NOT EXISTS (SELECT 1 FROM members gone WHERE gone.id = c.member_id)",
            );
            members = Some(tx.fetch(sql, |r| Ok(r.text("id")?.unwrap_or_default())).await?);
        }
        let mut sql = tx.sql();
        sql.push("UPDATE runs SET claimed_until = ")
            .bind(Arg::Timestamp(Some(now + lease)))
            .push(", claimed_by = ")
            .bind(Arg::text(token))
            .push(" WHERE id IN (SELECT id FROM runs r WHERE ");
        if let Some(members) = members {
            // Only the runs of the members this claim holds, found by member: the due
            // index is not read a second time.
            sql.in_list("r.member_id", members).push(" AND ");
        }
        sql.push("status IN ('active', 'waiting') AND due_at <= ")
            .bind(Arg::Timestamp(Some(now)))
            .push(" AND (claimed_until IS NULL OR claimed_until <= ")
            .bind(Arg::Timestamp(Some(now)))
            .push(") AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.member_id = r.member_id AND o.id <> r.id AND o.claimed_until > ")
            .bind(Arg::Timestamp(Some(now)))
            .push(")");
        sql.push(" ORDER BY due_at").limit(limit);
        if postgres {
            sql.push(" FOR UPDATE SKIP LOCKED");
        }
        sql.push(") RETURNING ").push(RUN_COLUMNS);
        let runs = tx.fetch(sql, read_run).await?;
        tx.commit().await?;
        Ok(runs)
    }

    /// The runs of these members that an event may concern: in progress, or finished but
    /// not converted and entered at or after `since` (a goal window).
    pub async fn open_runs_of(&self, members: &[String], since: DateTime<Utc>) -> Result<Vec<ClaimedRun>, StoreError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = self.sql();
        sql.push("SELECT ").push(RUN_COLUMNS).push(" FROM runs WHERE ").in_list("member_id", members.to_vec());
        sql.push(" AND (status IN ('active', 'waiting') OR (converted_at IS NULL AND entered_at >= ")
            .bind(Arg::Timestamp(Some(since)))
            .push(")) ORDER BY entered_at, id");
        self.fetch(sql, read_run).await
    }

    /// When each of these members last entered each journey (for reentry rules).
    pub async fn last_entries(
        &self,
        members: &[String],
    ) -> Result<std::collections::HashMap<(String, String), (DateTime<Utc>, bool)>, StoreError> {
        let mut out = std::collections::HashMap::new();
        if members.is_empty() {
            return Ok(out);
        }
        let mut sql = self.sql();
        sql.push(
            "SELECT member_id, journey_id, MAX(entered_at) AS last, \
             SUM(CASE WHEN status IN ('active', 'waiting') THEN 1 ELSE 0 END) AS open FROM runs WHERE ",
        )
        .in_list("member_id", members.to_vec())
        .push(" GROUP BY member_id, journey_id");
        for (key, last, open) in self
            .fetch(sql, |r| {
                let key = (r.text("member_id")?.unwrap_or_default(), r.text("journey_id")?.unwrap_or_default());
                Ok((key, r.timestamp("last")?.unwrap_or_default(), r.int("open")?.unwrap_or(0) > 0))
            })
            .await?
        {
            out.insert(key, (last, open));
        }
        Ok(out)
    }

    /// Writes a batch of decisions: the runs' new state, their deliveries (one per run,
    /// step and occurrence) and timeline lines, for the runs whose claim still holds (a
    /// decision whose claim was lost is dropped whole: the new holder decides again).
    /// Returns the ids of the runs written.
    pub async fn record_progress(&self, progress: Progress, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let written = self::record(&mut tx, progress, now).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// The arms these members hold at experiment steps: (member, journey) → step → arm.
    pub async fn assignments_of(
        &self,
        members: &[String],
    ) -> Result<std::collections::HashMap<(String, String), std::collections::HashMap<String, String>>, StoreError>
    {
        let mut out: std::collections::HashMap<_, std::collections::HashMap<String, String>> =
            std::collections::HashMap::new();
        for chunk in chunks(members, 1) {
            let mut sql = self.sql();
            sql.push("SELECT member_id, journey_id, step, variant FROM assignments WHERE ")
                .in_list("member_id", chunk.to_vec());
            for (key, step, arm) in self
                .fetch(sql, |r| {
                    let key = (r.text("member_id")?.unwrap_or_default(), r.text("journey_id")?.unwrap_or_default());
                    Ok((key, r.text("step")?.unwrap_or_default(), r.text("variant")?.unwrap_or_default()))
                })
                .await?
            {
                out.entry(key).or_default().insert(step, arm);
            }
        }
        Ok(out)
    }

    /// A member's timeline, oldest first.
    pub async fn journal_of(&self, member_id: Option<&str>, limit: i64) -> Result<Vec<JournalEntry>, StoreError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT at, member_id, journey_id, run_id, step, action, channel, template, variant, reason FROM journal",
        );
        if let Some(member_id) = member_id {
            sql.push(" WHERE member_id = ").bind(Arg::text(member_id));
        }
        sql.push(" ORDER BY at, id").limit(limit);
        self.fetch(sql, read_journal).await
    }
}

/// A batch of decisions to write.
#[derive(Debug, Default)]
pub struct Progress {
    pub updates: Vec<RunUpdate>,
    pub deliveries: Vec<NewDelivery>,
    pub journal: Vec<JournalEntry>,
    /// New runs (from events), written with the batch.
    pub enroll: Vec<NewRun>,
    /// Experiment arms taken (kept sticky per member, and counted per run by reports).
    pub arms: Vec<NewArm>,
}

/// A run took an arm of an experiment step.
#[derive(Debug, Clone)]
pub struct NewArm {
    pub run_id: i64,
    pub member_id: String,
    pub journey_id: String,
    pub step: String,
    pub arm: String,
    pub at: DateTime<Utc>,
}

pub(crate) async fn record(tx: &mut Tx, progress: Progress, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    let written = update_runs(tx, &progress.updates, now).await?;
    let kept: std::collections::HashSet<i64> = written.iter().copied().collect();
    let updated: std::collections::HashSet<i64> = progress.updates.iter().map(|u| u.id).collect();
    // Lines of runs this batch did not update (new runs) are kept; those of runs whose
    // update was refused (the claim was lost) are dropped with it.
    let owned = |run: Option<i64>| run.is_none_or(|id| kept.contains(&id) || !updated.contains(&id));
    let deliveries: Vec<NewDelivery> = progress.deliveries.into_iter().filter(|d| owned(Some(d.run_id))).collect();
    let journal: Vec<JournalEntry> = progress.journal.into_iter().filter(|j| owned(j.run_id)).collect();
    let arms: Vec<NewArm> = progress.arms.into_iter().filter(|a| owned(Some(a.run_id))).collect();
    insert_deliveries(tx, &deliveries).await?;
    insert_arms(tx, &arms).await?;
    insert_journal(tx, &journal).await?;
    insert_runs(tx, &progress.enroll, now).await?;
    Ok(written)
}

/// ` AND {column} > from AND {column} <= to`, each bound where given: a chunk of the base.
fn push_range(sql: &mut Sql, column: &str, from: &Option<Arg>, to: &Option<Arg>) {
    if let Some(from) = from {
        let p = sql.arg(from.clone());
        sql.push(&format!(" AND {column} > {p}"));
    }
    if let Some(to) = to {
        let p = sql.arg(to.clone());
        sql.push(&format!(" AND {column} <= {p}"));
    }
}

/// Who may enter a journey again (see [`Store::enroll_audience`]).
#[derive(Debug, Clone, Copy)]
pub enum Reentry {
    Never,
    Always,
    /// Not while a run is in progress, nor if one entered at or after this instant.
    Since(DateTime<Utc>),
}

fn read_journal(r: &dyn ReadRow) -> Result<JournalEntry, StoreError> {
    Ok(JournalEntry {
        at: r.timestamp("at")?.unwrap_or_default(),
        member_id: r.text("member_id")?.unwrap_or_default(),
        journey_id: r.text("journey_id")?.unwrap_or_default(),
        run_id: r.int("run_id")?,
        step: r.text("step")?,
        action: r.text("action")?.unwrap_or_default(),
        channel: r.text("channel")?,
        template: r.text("template")?,
        variant: r.text("variant")?,
        reason: r.text("reason")?,
    })
}

/// Inserts runs and their `enter` lines; returns (run id, member id) of the new ones.
pub(crate) async fn insert_runs(
    tx: &mut Tx,
    runs: &[NewRun],
    now: DateTime<Utc>,
) -> Result<Vec<(i64, String)>, StoreError> {
    let mut created = Vec::new();
    for chunk in chunks(runs, 10) {
        let mut sql = tx.sql();
        sql.push(
            "INSERT INTO runs (member_id, journey_id, journey_version, step, status, entered_at, due_at, \
             trigger_key, trigger_event_id, visits) VALUES ",
        );
        for (i, run) in chunk.iter().enumerate() {
            sql.values_row(
                i == 0,
                [
                    Arg::text(&run.member_id),
                    Arg::text(&run.journey_id),
                    Arg::text(&run.version),
                    Arg::text(&run.first_step),
                    Arg::text("active"),
                    Arg::Timestamp(Some(now)),
                    Arg::Timestamp(Some(now)),
                    Arg::text(&run.trigger_key),
                    Arg::Text(run.trigger_event_id.clone()),
                    Arg::Int(Some(0)),
                ],
            );
        }
        sql.push(" ON CONFLICT (journey_id, member_id, trigger_key) DO NOTHING RETURNING id, member_id, journey_id");
        created.extend(
            tx.fetch(sql, |r| {
                Ok((
                    r.int("id")?.unwrap_or(0),
                    r.text("member_id")?.unwrap_or_default(),
                    r.text("journey_id")?.unwrap_or_default(),
                ))
            })
            .await?,
        );
    }
    let journal: Vec<JournalEntry> = created
        .iter()
        .map(|(id, member_id, journey_id)| JournalEntry {
            at: now,
            member_id: member_id.clone(),
            journey_id: journey_id.clone(),
            run_id: Some(*id),
            step: None,
            action: "enter".to_string(),
            channel: None,
            template: None,
            variant: None,
            reason: None,
        })
        .collect();
    insert_journal(tx, &journal).await?;
    Ok(created.into_iter().map(|(id, member, _)| (id, member)).collect())
}

/// Applies run updates where the claim still holds; returns the ids updated.
async fn update_runs(tx: &mut Tx, updates: &[RunUpdate], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    let mut updated = Vec::with_capacity(updates.len());
    for chunk in chunks(updates, 10) {
        let mut sql = tx.sql();
        sql.push(
            "WITH v (id, step, status, due_at, waiting_for, finished_at, exit_reason, converted_at, goal_event_id, \
             visits, claim) AS (VALUES ",
        );
        for (i, u) in chunk.iter().enumerate() {
            sql.values_row(
                i == 0,
                [
                    Arg::Int(Some(u.id)),
                    Arg::Text(u.step.clone()),
                    Arg::text(u.status),
                    Arg::Timestamp(u.due_at),
                    Arg::Text(u.waiting_for.clone()),
                    Arg::Timestamp(u.finished_at),
                    Arg::Text(u.exit_reason.clone()),
                    Arg::Timestamp(u.converted_at),
                    Arg::Text(u.goal_event_id.clone()),
                    Arg::Int(Some(u.add_visits)),
                    Arg::Text(u.claim.clone()),
                ],
            );
        }
        sql.push(
            ") UPDATE runs SET step = v.step, status = v.status, due_at = v.due_at, waiting_for = v.waiting_for, \
             finished_at = v.finished_at, exit_reason = v.exit_reason, \
             converted_at = COALESCE(runs.converted_at, v.converted_at), \
             goal_event_id = CASE WHEN runs.converted_at IS NULL THEN v.goal_event_id ELSE runs.goal_event_id END, \
             visits = runs.visits + v.visits, \
             claimed_until = NULL, claimed_by = NULL FROM v WHERE runs.id = v.id AND \
             (runs.claimed_by = v.claim OR (v.claim IS NULL AND (runs.claimed_until IS NULL OR runs.claimed_until <= ",
        )
        .bind(Arg::Timestamp(Some(now)))
        .push("))) RETURNING runs.id");
        updated.extend(tx.fetch(sql, |r| Ok(r.int("id")?.unwrap_or(0))).await?);
    }
    Ok(updated)
}

/// Records experiment arms: per run (for reports) and per member (sticky: the first arm a
/// member got at a step is the one it keeps).
async fn insert_arms(tx: &mut Tx, arms: &[NewArm]) -> Result<(), StoreError> {
    for chunk in chunks(arms, 5) {
        let mut sql = tx.sql();
        sql.push("INSERT INTO run_arms (run_id, journey_id, step, arm, at) VALUES ");
        for (i, a) in chunk.iter().enumerate() {
            sql.values_row(
                i == 0,
                [
                    Arg::Int(Some(a.run_id)),
                    Arg::text(&a.journey_id),
                    Arg::text(&a.step),
                    Arg::text(&a.arm),
                    Arg::Timestamp(Some(a.at)),
                ],
            );
        }
        sql.push(" ON CONFLICT (run_id, step) DO NOTHING");
        tx.execute(sql).await?;
        let mut sql = tx.sql();
        sql.push("INSERT INTO assignments (member_id, journey_id, step, variant, assigned_at) VALUES ");
        for (i, a) in chunk.iter().enumerate() {
            sql.values_row(
                i == 0,
                [
                    Arg::text(&a.member_id),
                    Arg::text(&a.journey_id),
                    Arg::text(&a.step),
                    Arg::text(&a.arm),
                    Arg::Timestamp(Some(a.at)),
                ],
            );
        }
        sql.push(" ON CONFLICT (member_id, journey_id, step) DO NOTHING");
        tx.execute(sql).await?;
    }
    Ok(())
}

async fn insert_deliveries(tx: &mut Tx, deliveries: &[NewDelivery]) -> Result<(), StoreError> {
    for chunk in chunks(deliveries, 16) {
        let mut sql = tx.sql();
        sql.push(
            "INSERT INTO deliveries (run_id, step, occurrence, member_id, journey_id, journey_version, channel, \
             template, variant, vars, status, reason, address, created_at, next_attempt_at, attempts) VALUES ",
        );
        for (i, d) in chunk.iter().enumerate() {
            let next_attempt = (d.status == "pending").then_some(d.created_at);
            sql.values_row(
                i == 0,
                [
                    Arg::Int(Some(d.run_id)),
                    Arg::text(&d.step),
                    Arg::Int(Some(d.occurrence)),
                    Arg::text(&d.member_id),
                    Arg::text(&d.journey_id),
                    Arg::text(&d.version),
                    Arg::text(&d.channel),
                    Arg::Text(d.template.clone()),
                    Arg::Text(d.variant.clone()),
                    Arg::Json(Some(d.vars.to_string())),
                    Arg::text(d.status),
                    Arg::Text(d.reason.clone()),
                    Arg::Text(d.address.clone()),
                    Arg::Timestamp(Some(d.created_at)),
                    Arg::Timestamp(next_attempt),
                    Arg::Int(Some(0)),
                ],
            );
        }
        sql.push(" ON CONFLICT (run_id, step, occurrence) DO NOTHING");
        tx.execute(sql).await?;
    }
    Ok(())
}

pub(crate) async fn insert_journal(tx: &mut Tx, journal: &[JournalEntry]) -> Result<(), StoreError> {
    for chunk in chunks(journal, 10) {
        let mut sql = tx.sql();
        sql.push(
            "INSERT INTO journal (at, member_id, journey_id, run_id, step, action, channel, template, variant, reason) \
             VALUES ",
        );
        for (i, j) in chunk.iter().enumerate() {
            sql.values_row(
                i == 0,
                [
                    Arg::Timestamp(Some(j.at)),
                    Arg::text(&j.member_id),
                    Arg::text(&j.journey_id),
                    Arg::Int(j.run_id),
                    Arg::Text(j.step.clone()),
                    Arg::text(&j.action),
                    Arg::Text(j.channel.clone()),
                    Arg::Text(j.template.clone()),
                    Arg::Text(j.variant.clone()),
                    Arg::Text(j.reason.clone()),
                ],
            );
        }
        tx.execute(sql).await?;
    }
    Ok(())
}
