//! Alerts in the database: each rule's numbers over its window (one set-based statement
//! per rule, on the tables that already hold the facts), the alerts' states, their
//! transitions with the numbers that caused them, and the notifications those leave.
//!
//! A minute is evaluated once across workers: [`Store::evaluate_alerts`] inserts the
//! minute's row in `alert_evaluations` first (its own short transaction: the worker whose
//! insert wins evaluates the minute, the others find the row), reads every rule's numbers
//! outside any write transaction, then decides and writes in one transaction.
//! A transition is unique per (rule, instant) and a notification per (transition,
//! target): both exactly once.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound as _, Utc};

use super::{Arg, Dialect, ReadRow, Sql, Store, StoreError, Tx};
use crate::alert::message::Notice;
use crate::alert::{AlertState, Kind, Measured, Rule, Scope, Status, evaluate};
use crate::channel::Channel;

/// Evaluation claims are kept this long (then pruned).
const KEEP_EVALUATIONS: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// An alert as the API, the CLI and the dashboard show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRow {
    pub rule: String,
    pub kind: Kind,
    pub status: Status,
    pub since: DateTime<Utc>,
    pub value: Option<f64>,
    pub threshold: f64,
    pub numbers: Measured,
    pub window_seconds: i64,
    pub baseline_seconds: i64,
    pub scope: Scope,
    pub evaluated_at: DateTime<Utc>,
}

/// A notification claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedNotification {
    pub id: i64,
    /// `webhook`, or `email:ADDRESS`.
    pub target: String,
    pub attempts: i64,
    pub notice: Notice,
}

/// What became of a notification's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationOutcome {
    Sent,
    Retry { at: DateTime<Utc>, error: String },
    Failed { error: String },
}

/// `e`'s `properties.delivery_id` as a delivery id (null when it is not a number).
fn event_delivery_id(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CAST(json_extract(e.properties, '$.delivery_id') AS INTEGER)",
        Dialect::Postgres => {
            "(CASE WHEN (e.properties->>'delivery_id') ~ '^[0-9]{1,18}$' \
             THEN (e.properties->>'delivery_id')::bigint END)"
        }
    }
}

/// ` AND d.journey_id = … AND d.step = …` for the rule's scope, over deliveries `d`.
fn delivery_scope(sql: &mut Sql, scope: &Scope) -> String {
    let mut out = String::new();
    let mut add = |column: &str, value: Option<String>, sql: &mut Sql| {
        if let Some(v) = value {
            // On SQLite the range on `attempted_at` picks the (covering) index; an equality
            // on the journey would otherwise win and read every delivery of the journey.
            let column = sql.not_by_index(&format!("d.{column}"));
            out.push_str(&format!(" AND {column} = {}", sql.arg(Arg::Text(Some(v)))));
        }
    };
    add("journey_id", scope.journey.clone(), sql);
    add("step", scope.step.clone(), sql);
    add("channel", scope.channel.map(|c| c.as_str().to_string()), sql);
    add("variant", scope.variant.clone(), sql);
    out
}

/// The statement that measures `rule` at `now` (see [`Measured`] for what each kind counts).
/// Only the arguments a statement uses are bound.
fn measure_sql(dialect: Dialect, rule: &Rule, now: DateTime<Utc>) -> Sql {
    let mut sql = Sql::new(dialect);
    let to = sql.arg(Arg::Timestamp(Some(now)));
    if rule.kind == Kind::QueueLag {
        sql.push(&format!(
            "SELECT (SELECT MIN(due_at) FROM runs WHERE status IN ('active', 'waiting') AND due_at <= {to}) AS runs_due, \
             (SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= {to}) \
             AS deliveries_due, \
             (SELECT MIN(claimed_until) FROM deliveries WHERE status = 'sending' AND claimed_until <= {to}) AS sends_lost, \
             (SELECT MIN(received_at) FROM inbox) AS events_due"
        ));
        return sql;
    }
    let window = chrono::TimeDelta::seconds(rule.window);
    let from = sql.arg(Arg::Timestamp(Some(now - window)));
    let before = || now - window - chrono::TimeDelta::seconds(rule.baseline);
    if rule.kind == Kind::ConversionDrop {
        let before = sql.arg(Arg::Timestamp(Some(before())));
        let journey = sql.arg(Arg::Text(rule.scope.journey.clone()));
        let runs = |column: &str, lo: &str, hi: &str| {
            format!(
                "(SELECT COUNT(*) FROM runs r WHERE r.journey_id = {journey} AND r.{column} > {lo} \
                 AND r.{column} <= {hi})"
            )
        };
        sql.push(&format!(
            "SELECT {} AS sample, {} AS count, {} AS baseline_sample, {} AS baseline_count",
            runs("entered_at", &from, &to),
            runs("converted_at", &from, &to),
            runs("entered_at", &before, &from),
            runs("converted_at", &before, &from),
        ));
        return sql;
    }
    let scope = delivery_scope(&mut sql, &rule.scope);
    let attempted = format!("d.attempted_at > {from} AND d.attempted_at <= {to}{scope}");
    // With a scope, an event counts when it names a delivery in it; without, every one does.
    let join = if scope.is_empty() { "LEFT JOIN" } else { "JOIN" };
    let events = |names: &str| {
        format!(
            "(SELECT COUNT(*) FROM events e {join} deliveries d ON d.id = {} \
             WHERE e.name IN ({names}) AND e.occurred_at > {from} AND e.occurred_at <= {to}{scope})",
            event_delivery_id(dialect)
        )
    };
    let text = match rule.kind {
        Kind::DeliveryFailureRate => format!(
            "SELECT COUNT(*) AS sample, COALESCE(SUM(CASE WHEN d.status = 'failed' \
             OR (d.status IN ('pending', 'sending') AND d.last_error IS NOT NULL) THEN 1 ELSE 0 END), 0) AS count, \
             0 AS baseline_count, 0 AS baseline_sample FROM deliveries d WHERE {attempted}"
        ),
        Kind::BounceOrComplaintRate => format!(
            "SELECT (SELECT COUNT(*) FROM deliveries d WHERE {attempted}) AS sample, \
             (SELECT COUNT(*) FROM deliveries d WHERE {attempted} AND d.status = 'failed' \
              AND d.reason = 'permanent_failure') + {} AS count, 0 AS baseline_count, 0 AS baseline_sample",
            events("'message.bounced', 'message.complained'")
        ),
        Kind::UnsubscribeRate => format!(
            "SELECT (SELECT COUNT(*) FROM deliveries d WHERE {attempted} AND d.status IN ('sent', 'delivered')) \
             AS sample, {} AS count, 0 AS baseline_count, 0 AS baseline_sample",
            events("'member.unsubscribed'")
        ),
        Kind::NoSends => {
            let before = sql.arg(Arg::Timestamp(Some(before())));
            let sent = |lo: &str, hi: &str| {
                format!(
                    "(SELECT COUNT(*) FROM deliveries d WHERE d.status IN ('sent', 'delivered') \
                     AND d.attempted_at > {lo} AND d.attempted_at <= {hi}{scope})"
                )
            };
            format!(
                "SELECT {} AS count, 0 AS sample, {} AS baseline_count, 0 AS baseline_sample",
                sent(&from, &to),
                sent(&before, &from)
            )
        }
        Kind::QueueLag | Kind::ConversionDrop => unreachable!("measured above"),
    };
    sql.push(&text);
    sql
}

fn read_measured(kind: Kind, now: DateTime<Utc>, r: &dyn ReadRow) -> Result<Measured, StoreError> {
    if kind == Kind::QueueLag {
        let mut oldest: Option<DateTime<Utc>> = None;
        for column in ["runs_due", "deliveries_due", "sends_lost", "events_due"] {
            if let Some(at) = r.timestamp(column)? {
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        let lag = oldest.map_or(0, |at| (now - at).num_seconds().max(0));
        return Ok(Measured { count: lag, ..Measured::default() });
    }
    let int = |c: &str| -> Result<i64, StoreError> { Ok(r.int(c)?.unwrap_or(0)) };
    Ok(Measured {
        count: int("count")?,
        sample: int("sample")?,
        baseline_count: int("baseline_count")?,
        baseline_sample: int("baseline_sample")?,
    })
}

/// A float column read as text (the row adapter reads integers, text and timestamps).
fn float(r: &dyn ReadRow, column: &str) -> Result<Option<f64>, StoreError> {
    match r.text(column)? {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| StoreError::corrupt(column, text)),
    }
}

fn scope_of(r: &dyn ReadRow) -> Result<Scope, StoreError> {
    Ok(Scope {
        journey: r.text("journey")?,
        step: r.text("step")?,
        channel: r.text("channel")?.and_then(|c| Channel::parse(&c)),
        variant: r.text("variant")?,
    })
}

fn kind_of(r: &dyn ReadRow) -> Result<Kind, StoreError> {
    let text = r.text("kind")?.unwrap_or_default();
    Kind::parse(&text).ok_or_else(|| StoreError::corrupt("alert kind", text))
}

fn status_of(r: &dyn ReadRow, column: &str) -> Result<Status, StoreError> {
    let text = r.text(column)?.unwrap_or_default();
    Status::parse(&text).ok_or_else(|| StoreError::corrupt("alert status", text))
}

fn measured_of(r: &dyn ReadRow) -> Result<Measured, StoreError> {
    let int = |c: &str| -> Result<i64, StoreError> { Ok(r.int(c)?.unwrap_or(0)) };
    Ok(Measured {
        count: int("count")?,
        sample: int("sample")?,
        baseline_count: int("baseline_count")?,
        baseline_sample: int("baseline_sample")?,
    })
}

const TRANSITION_COLUMNS: &str = "t.id, t.rule, t.kind, t.from_status, t.status, t.at, \
    CAST(t.value AS TEXT) AS value_text, CAST(t.threshold AS TEXT) AS threshold_text, t.count, t.sample, \
    t.baseline_count, t.baseline_sample, t.window_seconds, t.baseline_seconds, t.journey, t.step, t.channel, t.variant";

fn read_notice(r: &dyn ReadRow) -> Result<Notice, StoreError> {
    Ok(Notice {
        id: r.int("id")?.unwrap_or(0),
        rule: r.text("rule")?.unwrap_or_default(),
        kind: kind_of(r)?,
        from: status_of(r, "from_status")?,
        status: status_of(r, "status")?,
        at: r.timestamp("at")?.ok_or_else(|| StoreError::corrupt("transition time", "null"))?,
        value: float(r, "value_text")?,
        threshold: float(r, "threshold_text")?.unwrap_or(0.0),
        measured: measured_of(r)?,
        window: r.int("window_seconds")?.unwrap_or(0),
        baseline: r.int("baseline_seconds")?.unwrap_or(0),
        scope: scope_of(r)?,
    })
}

/// The columns a state or a transition stores about a rule and its numbers, in order.
fn rule_values(rule: &Rule, value: Option<f64>, m: &Measured) -> [Arg; 13] {
    [
        Arg::text(rule.kind.as_str()),
        Arg::Float(value),
        Arg::Float(Some(rule.threshold)),
        Arg::Int(Some(m.count)),
        Arg::Int(Some(m.sample)),
        Arg::Int(Some(m.baseline_count)),
        Arg::Int(Some(m.baseline_sample)),
        Arg::Int(Some(rule.window)),
        Arg::Int(Some(rule.baseline)),
        Arg::Text(rule.scope.journey.clone()),
        Arg::Text(rule.scope.step.clone()),
        Arg::Text(rule.scope.channel.map(|c| c.as_str().to_string())),
        Arg::Text(rule.scope.variant.clone()),
    ]
}

const RULE_COLUMNS: &str = "kind, value, threshold, count, sample, baseline_count, baseline_sample, \
    window_seconds, baseline_seconds, journey, step, channel, variant";

impl Store {
    /// Evaluates every rule at `now` if this worker is the first to claim `now`'s minute:
    /// measures each rule, steps its state machine, stores the new states, the transitions
    /// and (for firing and resolved) one pending notification per target. Returns the
    /// transitions, or `None` when another worker had the minute.
    pub async fn evaluate_alerts(
        &self,
        rules: &[Rule],
        worker: &str,
        now: DateTime<Utc>,
        targets: &(dyn Fn(&Rule) -> Vec<String> + Sync),
    ) -> Result<Option<Vec<Notice>>, StoreError> {
        let span = tracing::debug_span!("evaluate_alerts", rules = rules.len());
        let _enter = span.enter();
        let minute = now.duration_trunc(chrono::TimeDelta::minutes(1)).unwrap_or(now);
        // 1. The claim, committed at once: one worker per minute.
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        let (m, w, at) =
            (sql.arg(Arg::Timestamp(Some(minute))), sql.arg(Arg::text(worker)), sql.arg(Arg::Timestamp(Some(now))));
        sql.push(&format!(
            "INSERT INTO alert_evaluations (minute, worker, evaluated_at) VALUES ({m}, {w}, {at}) \
             ON CONFLICT (minute) DO NOTHING"
        ));
        if tx.execute(sql).await? == 0 {
            return Ok(None);
        }
        let mut sql = tx.sql();
        sql.push("DELETE FROM alert_evaluations WHERE minute < ").bind(Arg::Timestamp(Some(minute - KEEP_EVALUATIONS)));
        tx.execute(sql).await?;
        tx.commit().await?;

        // 2. The numbers, read outside any write transaction (SQLite's write lock is not
        // held while a week of deliveries is counted).
        let mut measured = Vec::with_capacity(rules.len());
        for rule in rules {
            let kind = rule.kind;
            let rows = self.fetch(measure_sql(self.dialect(), rule, now), |r| read_measured(kind, now, r)).await?;
            measured.push(rows.into_iter().next().unwrap_or_default());
        }

        // 3. The decisions and what they leave, in one transaction.
        let mut tx = self.begin_write().await?;
        // Alerts of rules no longer configured are dropped (their transitions stay).
        let mut sql = tx.sql();
        sql.push("DELETE FROM alert_states WHERE NOT (")
            .in_list("rule", rules.iter().map(|r| r.name.clone()).collect())
            .push(")");
        tx.execute(sql).await?;
        let states = read_states(&mut tx).await?;
        let mut transitions = Vec::new();
        for (rule, measured) in rules.iter().zip(&measured) {
            let previous = match states.get(&rule.name) {
                // A later minute was written first (this one was slow): it stands.
                Some((_, evaluated_at)) if *evaluated_at >= now => continue,
                Some((state, _)) => *state,
                None => AlertState::new(now),
            };
            let e = evaluate(rule, &previous, measured, now);
            write_state(&mut tx, rule, &e.state, e.value, measured, now).await?;
            let Some(from) = e.from else { continue };
            let Some(notice) = write_transition(&mut tx, rule, from, &e.state, e.value, measured, now).await? else {
                continue;
            };
            if notice.status.notifies() {
                for target in targets(rule) {
                    let mut sql = tx.sql();
                    sql.push(
                        "INSERT INTO alert_notifications (transition_id, target, status, next_attempt_at) VALUES (",
                    )
                    .bind(Arg::Int(Some(notice.id)))
                    .push(", ")
                    .bind(Arg::Text(Some(target)))
                    .push(", 'pending', ")
                    .bind(Arg::Timestamp(Some(now)))
                    .push(") ON CONFLICT (transition_id, target) DO NOTHING");
                    tx.execute(sql).await?;
                }
            }
            transitions.push(notice);
        }
        tx.commit().await?;
        Ok(Some(transitions))
    }

    /// Seconds the oldest due work has waited at `now` (0 when nothing is late): the
    /// `queue_lag` measure, for `/metrics`.
    pub async fn queue_lag_seconds(&self, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let probe = Rule {
            name: String::new(),
            kind: Kind::QueueLag,
            window: 0,
            threshold: 0.0,
            min_sample: 0,
            for_: 0,
            baseline: 0,
            scope: Scope::default(),
            email: None,
        };
        let sql = measure_sql(self.dialect(), &probe, now);
        let rows = self.fetch(sql, |r| read_measured(Kind::QueueLag, now, r)).await?;
        Ok(rows.first().map_or(0, |m| m.count))
    }

    /// Every alert as of its last evaluation, firing first.
    pub async fn alerts(&self) -> Result<Vec<AlertRow>, StoreError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT rule, kind, status, since, CAST(value AS TEXT) AS value_text, \
             CAST(threshold AS TEXT) AS threshold_text, count, sample, baseline_count, baseline_sample, \
             window_seconds, baseline_seconds, journey, step, channel, variant, evaluated_at FROM alert_states \
             ORDER BY CASE status WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, rule",
        );
        self.fetch(sql, |r| {
            Ok(AlertRow {
                rule: r.text("rule")?.unwrap_or_default(),
                kind: kind_of(r)?,
                status: status_of(r, "status")?,
                since: r.timestamp("since")?.ok_or_else(|| StoreError::corrupt("alert since", "null"))?,
                value: float(r, "value_text")?,
                threshold: float(r, "threshold_text")?.unwrap_or(0.0),
                numbers: measured_of(r)?,
                window_seconds: r.int("window_seconds")?.unwrap_or(0),
                baseline_seconds: r.int("baseline_seconds")?.unwrap_or(0),
                scope: scope_of(r)?,
                evaluated_at: r.timestamp("evaluated_at")?.unwrap_or_default(),
            })
        })
        .await
    }

    /// The latest transitions, newest first.
    pub async fn alert_transitions(&self, limit: i64) -> Result<Vec<Notice>, StoreError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {TRANSITION_COLUMNS} FROM alert_transitions t ORDER BY t.at DESC, t.id DESC"))
            .limit(limit);
        self.fetch(sql, read_notice).await
    }

    /// Claims up to `limit` notifications due at `now` for `lease` (a worker that dies
    /// mid-send leaves them to be tried again when the lease is over).
    pub async fn claim_alert_notifications(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: chrono::Duration,
    ) -> Result<Vec<ClaimedNotification>, StoreError> {
        let mut tx = self.begin_write().await?;
        let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let mut sql = tx.sql();
        let (until, at) = (sql.arg(Arg::Timestamp(Some(now + lease))), sql.arg(Arg::Timestamp(Some(now))));
        sql.push(&format!(
            "UPDATE alert_notifications SET next_attempt_at = {until}, attempts = attempts + 1 WHERE id IN (\
             SELECT id FROM (SELECT id FROM alert_notifications WHERE status = 'pending' AND next_attempt_at <= {at} \
             ORDER BY next_attempt_at LIMIT {limit}{lock}) due) RETURNING id, transition_id, target, attempts"
        ));
        let claimed = tx
            .fetch(sql, |r| {
                Ok((
                    r.int("id")?.unwrap_or(0),
                    r.int("transition_id")?.unwrap_or(0),
                    r.text("target")?.unwrap_or_default(),
                    r.int("attempts")?.unwrap_or(0),
                ))
            })
            .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claimed.iter().map(|c| c.1).collect();
        let mut sql = tx.sql();
        sql.push(&format!("SELECT {TRANSITION_COLUMNS} FROM alert_transitions t WHERE ")).in_ids("t.id", &ids);
        let notices: HashMap<i64, Notice> = tx.fetch(sql, read_notice).await?.into_iter().map(|n| (n.id, n)).collect();
        tx.commit().await?;
        Ok(claimed
            .into_iter()
            .filter_map(|(id, transition, target, attempts)| {
                let notice = notices.get(&transition)?.clone();
                Some(ClaimedNotification { id, target, attempts, notice })
            })
            .collect())
    }

    /// Records what became of a notification's attempt.
    pub async fn record_alert_notification(
        &self,
        id: i64,
        outcome: &NotificationOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut sql = tx.sql();
        match outcome {
            NotificationOutcome::Sent => {
                sql.push("UPDATE alert_notifications SET status = 'sent', last_error = NULL, sent_at = ")
                    .bind(Arg::Timestamp(Some(now)));
            }
            NotificationOutcome::Retry { at, error } => {
                sql.push("UPDATE alert_notifications SET next_attempt_at = ")
                    .bind(Arg::Timestamp(Some(*at)))
                    .push(", last_error = ")
                    .bind(Arg::text(error));
            }
            NotificationOutcome::Failed { error } => {
                sql.push("UPDATE alert_notifications SET status = 'failed', last_error = ").bind(Arg::text(error));
            }
        }
        sql.push(" WHERE id = ").bind(Arg::Int(Some(id)));
        tx.execute(sql).await?;
        tx.commit().await?;
        Ok(())
    }

    /// (target, status, attempts, last_error) of a transition's notifications.
    pub async fn alert_notifications_of(
        &self,
        transition_id: i64,
    ) -> Result<Vec<(String, String, i64, Option<String>)>, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT target, status, attempts, last_error FROM alert_notifications WHERE transition_id = ")
            .bind(Arg::Int(Some(transition_id)))
            .push(" ORDER BY target");
        self.fetch(sql, |r| {
            Ok((
                r.text("target")?.unwrap_or_default(),
                r.text("status")?.unwrap_or_default(),
                r.int("attempts")?.unwrap_or(0),
                r.text("last_error")?,
            ))
        })
        .await
    }
}

/// Each rule's state and when it was written.
async fn read_states(tx: &mut Tx) -> Result<HashMap<String, (AlertState, DateTime<Utc>)>, StoreError> {
    let mut sql = tx.sql();
    sql.push("SELECT rule, status, since, clear_since, evaluated_at FROM alert_states");
    let rows = tx
        .fetch(sql, |r| {
            let state = AlertState {
                status: status_of(r, "status")?,
                since: r.timestamp("since")?.ok_or_else(|| StoreError::corrupt("alert since", "null"))?,
                clear_since: r.timestamp("clear_since")?,
            };
            let evaluated_at = r.timestamp("evaluated_at")?.unwrap_or_default();
            Ok((r.text("rule")?.unwrap_or_default(), (state, evaluated_at)))
        })
        .await?;
    Ok(rows.into_iter().collect())
}

async fn write_state(
    tx: &mut Tx,
    rule: &Rule,
    state: &AlertState,
    value: Option<f64>,
    m: &Measured,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = tx.sql();
    sql.push(&format!("INSERT INTO alert_states (rule, status, since, clear_since, evaluated_at, {RULE_COLUMNS}) "));
    let head = [
        Arg::text(&rule.name),
        Arg::text(state.status.as_str()),
        Arg::Timestamp(Some(state.since)),
        Arg::Timestamp(state.clear_since),
        Arg::Timestamp(Some(now)),
    ];
    sql.push("VALUES ").values_row(true, head.into_iter().chain(rule_values(rule, value, m)));
    let updated: Vec<String> = ["status", "since", "clear_since", "evaluated_at"]
        .into_iter()
        .chain(RULE_COLUMNS.split(", "))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    sql.push(&format!(" ON CONFLICT (rule) DO UPDATE SET {}", updated.join(", ")));
    tx.execute(sql).await?;
    Ok(())
}

async fn write_transition(
    tx: &mut Tx,
    rule: &Rule,
    from: Status,
    state: &AlertState,
    value: Option<f64>,
    m: &Measured,
    now: DateTime<Utc>,
) -> Result<Option<Notice>, StoreError> {
    let mut sql = tx.sql();
    sql.push(&format!("INSERT INTO alert_transitions (rule, from_status, status, at, {RULE_COLUMNS}) VALUES "));
    let head =
        [Arg::text(&rule.name), Arg::text(from.as_str()), Arg::text(state.status.as_str()), Arg::Timestamp(Some(now))];
    sql.values_row(true, head.into_iter().chain(rule_values(rule, value, m)));
    sql.push(" ON CONFLICT (rule, at) DO NOTHING RETURNING id");
    let id = tx.fetch(sql, |r| Ok(r.int("id")?.unwrap_or(0))).await?.into_iter().next();
    Ok(id.map(|id| Notice {
        id,
        rule: rule.name.clone(),
        kind: rule.kind,
        from,
        status: state.status,
        at: now,
        value,
        threshold: rule.threshold,
        measured: *m,
        window: rule.window,
        baseline: rule.baseline,
        scope: rule.scope.clone(),
    }))
}
