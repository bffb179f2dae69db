//! Derived state over the whole base, set-based: lifecycle and CLV (the rules of
//! `state::derived`, restated in SQL), and RFM quintiles (cutoffs from one streamed read)
//! and segments. Run by the scheduled job and on demand (after every import); only rows
//! whose values change are written.

use chrono::{DateTime, Utc};

use super::{Arg, Store, StoreError};
use crate::condition::Dialect;
use crate::member::Member;
use crate::state::Settings;
use crate::state::derived::{RFM_GRID, stored_now};

/// What a recompute changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recomputed {
    /// Members whose lifecycle or CLV changed.
    pub lifecycle_changed: u64,
    /// Members with an order, who therefore have RFM scores.
    pub rfm_scored: u64,
    /// Members whose RFM scores or segment changed (or were cleared).
    pub rfm_changed: u64,
}

/// The lifecycle `CASE`, with `{new}`, `{churned}`, `{dormant}` for the cutoffs.
fn lifecycle_sql() -> &'static str {
    "(CASE \
        WHEN joined_at > {new} AND order_count < 2 THEN 'new' \
        WHEN COALESCE(last_order_at, joined_at) <= {churned} THEN 'churned' \
        WHEN COALESCE(last_order_at, joined_at) <= {dormant} THEN 'dormant' \
        ELSE 'active' END)"
}

/// CLV in integer minor units, with `{now}` (epoch seconds) and `{clv_months}` (the horizon).
fn clv_sql(dialect: Dialect) -> String {
    let (epoch, greatest) = match dialect {
        Dialect::Sqlite => ("unixepoch(COALESCE(first_order_at, joined_at))", "MAX"),
        Dialect::Postgres => ("floor(extract(epoch FROM COALESCE(first_order_at, joined_at)))::bigint", "GREATEST"),
    };
    format!(
        "(CASE WHEN order_count > 0 AND total_spend > 0 \
         THEN total_spend * {{clv_months}} / {greatest}(COALESCE(({{now}} - {epoch}) / 2592000, 0), 12) \
         ELSE 0 END)"
    )
}

/// The members RFM scores: everyone with an order.
const RFM_BASE: &str = "order_count > 0 AND last_order_at IS NOT NULL";

/// The quintile cutoffs of a dimension: the values at sorted positions ⌈s·n/5⌉ for
/// s = 1..=4 (1-based). A value's score is 1 + the number of cutoffs below it.
fn cutoffs<T: Ord + Copy>(mut values: Vec<T>) -> Vec<T> {
    values.sort_unstable();
    let n = values.len();
    (1..=4).map(|s| values[(s * n).div_ceil(5) - 1]).collect()
}

/// The RFM segment of the scores `{r}`, `{f}`, `{m}`, from [`RFM_GRID`] (our own constants).
fn segment_sql() -> String {
    let mut sql = String::from("(CASE {r} * 10 + ({f} + {m} + 1) / 2");
    for (r, row) in RFM_GRID.iter().enumerate() {
        for (fm, segment) in row.iter().enumerate() {
            debug_assert!(segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            sql.push_str(&format!(" WHEN {} THEN '{segment}'", (r + 1) * 10 + fm + 1));
        }
    }
    sql.push_str(" END)");
    sql
}

impl Store {
    /// Recomputes lifecycle, CLV and RFM for every member, in one transaction.
    pub async fn recompute_derived(&self, now: DateTime<Utc>, settings: &Settings) -> Result<Recomputed, StoreError> {
        if let Store::Memory(_) = self {
            return self.recompute_derived_in_one_scan(now, settings).await;
        }
        let now = stored_now(now);
        let mut out = Recomputed::default();
        let mut tx = self.begin_write().await?;

        // Lifecycle and CLV; each argument is bound once and its placeholder used twice.
        let mut sql = tx.sql();
        let new = sql.arg(Arg::Timestamp(Some(now - settings.new_within.to_chrono())));
        let churned = sql.arg(Arg::Timestamp(Some(now - settings.churned_after.to_chrono())));
        let dormant = sql.arg(Arg::Timestamp(Some(now - settings.dormant_after.to_chrono())));
        let epoch = sql.arg(Arg::Int(Some(now.timestamp())));
        let clv_months = sql.arg(Arg::Int(Some(settings.clv_months)));
        let lifecycle =
            lifecycle_sql().replace("{new}", &new).replace("{churned}", &churned).replace("{dormant}", &dormant);
        let clv = clv_sql(sql.dialect()).replace("{now}", &epoch).replace("{clv_months}", &clv_months);
        let distinct = sql.distinct();
        sql.push(&format!(
            "UPDATE members SET lifecycle = {lifecycle}, clv = {clv} \
             WHERE lifecycle {distinct} {lifecycle} OR clv {distinct} {clv}"
        ));
        out.lifecycle_changed = tx.execute(sql).await?;

        // RFM. A member's score on a dimension is 1 + 5·(rank − 1)/n with SQL's RANK()
        // (ties take the lowest rank), which is 1 + the number of quintile cutoffs below its
        // value, where cutoff s (2..=5) is the value at sorted position ⌈(s − 1)·n/5⌉. The
        // cutoffs come from one streamed pass and a sort here; the update is then a single
        // scan with no window, join or sort in the database.
        let mut recency = Vec::new();
        let mut frequency = Vec::new();
        let mut monetary = Vec::new();
        let mut sql = tx.sql();
        sql.push(&format!("SELECT last_order_at, order_count, total_spend FROM members WHERE {RFM_BASE}"));
        tx.for_each(sql, |r| {
            recency.push(r.timestamp("last_order_at")?.ok_or_else(|| StoreError::corrupt("last_order_at", "null"))?);
            frequency.push(r.int("order_count")?.unwrap_or(0));
            monetary.push(r.int("total_spend")?.unwrap_or(0));
            Ok(())
        })
        .await?;
        out.rfm_scored = recency.len() as u64;
        // One scan writes the scores of the members with an order and clears those of the
        // members without, touching only the rows that change.
        let mut sql = tx.sql();
        let (r, f, m, segment) = if recency.is_empty() {
            let (int, text) = ("CAST(NULL AS INTEGER)".to_string(), "CAST(NULL AS TEXT)".to_string());
            (int.clone(), int.clone(), int, text)
        } else {
            let mut score = |column: &str, cutoffs: Vec<Arg>| {
                let terms: Vec<String> = cutoffs
                    .into_iter()
                    .map(|cutoff| {
                        let p = sql.arg(cutoff);
                        match sql.dialect() {
                            Dialect::Sqlite => format!(" + ({column} > {p})"),
                            Dialect::Postgres => format!(" + ({column} > {p})::int"),
                        }
                    })
                    .collect();
                format!("(1{})", terms.concat())
            };
            let r = score("last_order_at", cutoffs(recency).into_iter().map(|t| Arg::Timestamp(Some(t))).collect());
            let f = score("order_count", cutoffs(frequency).into_iter().map(|n| Arg::Int(Some(n))).collect());
            let m = score("total_spend", cutoffs(monetary).into_iter().map(|n| Arg::Int(Some(n))).collect());
            let segment = segment_sql().replace("{r}", &r).replace("{f}", &f).replace("{m}", &m);
            (r, f, m, segment)
        };
        let distinct = sql.distinct();
        sql.push(&format!(
            "UPDATE members SET \
                rfm_r = (CASE WHEN {RFM_BASE} THEN {r} END), \
                rfm_f = (CASE WHEN {RFM_BASE} THEN {f} END), \
                rfm_m = (CASE WHEN {RFM_BASE} THEN {m} END), \
                rfm_segment = (CASE WHEN {RFM_BASE} THEN {segment} END) \
             WHERE (CASE WHEN {RFM_BASE} \
                THEN (rfm_r {distinct} {r} OR rfm_f {distinct} {f} OR rfm_m {distinct} {m} \
                      OR rfm_segment {distinct} {segment}) \
                ELSE (rfm_r IS NOT NULL OR rfm_f IS NOT NULL OR rfm_m IS NOT NULL OR rfm_segment IS NOT NULL) END)"
        ));
        out.rfm_changed = tx.execute(sql).await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// A value's quintile score: 1 + the number of cutoffs below it (the SQL's `1 + (v > c)…`).
fn score<T: Ord>(cutoffs: &[T], value: T) -> i64 {
    1 + cutoffs.iter().filter(|&c| value > *c).count() as i64
}

/// A member's inputs and stored values, as [`Store::recompute_derived_in_one_scan`] reads them.
struct Row {
    member: Member,
    rfm: (Option<i64>, Option<i64>, Option<i64>, Option<String>),
}

impl Store {
    /// [`Store::recompute_derived`] for the in-memory database of `simulate`: one scan reads
    /// every member's inputs and stored values, the rules run here (`state::derived`, which
    /// a test holds equal to the SQL), and only the members whose values change are
    /// written, one `UPDATE` each. In memory a statement is a function call, so three scans
    /// with their expressions cost more than reading once (a year of 10,000 members spent
    /// 9.6 s in the SQL refresh); a file or a server keeps the set-based statements, which
    /// neither bring the base into the process nor send a statement per changed member.
    async fn recompute_derived_in_one_scan(
        &self,
        now: DateTime<Utc>,
        settings: &Settings,
    ) -> Result<Recomputed, StoreError> {
        let now = stored_now(now);
        let mut out = Recomputed::default();
        let mut tx = self.begin_write().await?;
        let mut rows = Vec::new();
        let mut sql = tx.sql();
        sql.push(
            "SELECT id, joined_at, order_count, last_order_at, first_order_at, total_spend, lifecycle, clv, \
             rfm_r, rfm_f, rfm_m, rfm_segment FROM members",
        );
        tx.for_each(sql, |r| {
            let member = Member {
                id: r.text("id")?.unwrap_or_default(),
                joined_at: r.timestamp("joined_at")?,
                order_count: r.int("order_count")?.unwrap_or(0),
                last_order_at: r.timestamp("last_order_at")?,
                first_order_at: r.timestamp("first_order_at")?,
                total_spend: r.int("total_spend")?.unwrap_or(0),
                lifecycle: r.text("lifecycle")?,
                clv: r.int("clv")?,
                ..Member::default()
            };
            let rfm = (r.int("rfm_r")?, r.int("rfm_f")?, r.int("rfm_m")?, r.text("rfm_segment")?);
            rows.push(Row { member, rfm });
            Ok(())
        })
        .await?;

        // RFM_BASE: members with an order and a last order.
        let scored = |m: &Member| m.order_count > 0 && m.last_order_at.is_some();
        let scored_rows = rows.iter().filter(|row| scored(&row.member));
        out.rfm_scored = scored_rows.clone().count() as u64;
        let (recency, frequency, monetary) = if out.rfm_scored == 0 {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (
                cutoffs(scored_rows.clone().filter_map(|row| row.member.last_order_at).collect()),
                cutoffs(scored_rows.clone().map(|row| row.member.order_count).collect()),
                cutoffs(scored_rows.map(|row| row.member.total_spend).collect()),
            )
        };

        for row in rows {
            let m = &row.member;
            let lifecycle = Some(crate::state::derived::lifecycle(m, now, settings).as_str().to_string());
            let clv = Some(crate::state::derived::clv(m, now, settings));
            let rfm = match m.last_order_at.filter(|_| scored(m)) {
                Some(last) => {
                    let (r, f, mo) =
                        (score(&recency, last), score(&frequency, m.order_count), score(&monetary, m.total_spend));
                    (Some(r), Some(f), Some(mo), crate::state::derived::rfm_segment(r, f, mo).map(str::to_string))
                }
                None => (None, None, None, None),
            };
            let lifecycle_changed = lifecycle != m.lifecycle || clv != m.clv;
            let rfm_changed = rfm != row.rfm;
            if !lifecycle_changed && !rfm_changed {
                continue;
            }
            out.lifecycle_changed += u64::from(lifecycle_changed);
            out.rfm_changed += u64::from(rfm_changed);
            let mut sql = tx.sql();
            let values = [
                Arg::Text(lifecycle),
                Arg::Int(clv),
                Arg::Int(rfm.0),
                Arg::Int(rfm.1),
                Arg::Int(rfm.2),
                Arg::Text(rfm.3),
                Arg::Text(Some(m.id.clone())),
            ];
            let p: Vec<String> = values.into_iter().map(|v| sql.arg(v)).collect();
            sql.push(&format!(
                "UPDATE members SET lifecycle = {}, clv = {}, rfm_r = {}, rfm_f = {}, rfm_m = {}, rfm_segment = {} \
                 WHERE id = {}",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6]
            ));
            tx.execute(sql).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_give_the_scores_of_rank_quintiles() {
        // The RANK() formula, written out, against the cutoffs, on data with many ties.
        let values: Vec<i64> = (0..97).map(|i| (i * i) % 13).collect();
        let c = cutoffs(values.clone());
        let n = values.len() as i64;
        for &v in &values {
            let rank = 1 + values.iter().filter(|&&x| x < v).count() as i64;
            let by_rank = 1 + 5 * (rank - 1) / n;
            let by_cutoffs = 1 + c.iter().filter(|&&x| v > x).count() as i64;
            assert_eq!(by_rank, by_cutoffs, "value {v}");
        }
        assert_eq!(cutoffs(vec![7]), vec![7, 7, 7, 7]);
    }

    #[test]
    fn the_segment_case_covers_all_25_cells() {
        let sql = segment_sql();
        assert_eq!(sql.matches(" WHEN ").count(), 25);
        assert!(sql.contains("WHEN 11 THEN 'lost'") && sql.contains("WHEN 55 THEN 'champions'"));
    }
}
