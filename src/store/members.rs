//! Member rows: importing them, keeping them equal to `fold(baseline, events)`, reading one.
//!
//! Every write of a member goes through [`settle`]: take the member's baseline (its last
//! import; the row itself while no event has changed it), fold in every state-changing
//! event the store holds for it, refresh lifecycle and CLV, and write the row — with the
//! baseline beside it when events changed it. Importing and appending events are both "load
//! the rows of a batch, settle each, write them back" inside one transaction.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{Arg, ReadRow, Sql, Store, StoreError, Tx, chunks};
use crate::member::{Birthday, Event, Member};
use crate::state::{self, AsOf, Group, Patch, Settings};

/// One member of an import: its id and the fields the file gives.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberImport {
    pub id: String,
    pub patch: Patch,
}

/// What an import batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembersWritten {
    pub inserted: u64,
    pub updated: u64,
}

/// A member row as stored: the member, its baseline and when each group was imported.
#[derive(Debug, Clone)]
pub(crate) struct StoredMember {
    pub member: Member,
    pub baseline: Option<Member>,
    pub as_of: AsOf,
}

/// The columns written for a member, in binding order (RFM is written by the base-wide
/// recompute only). `true` marks JSON columns.
const WRITE_COLUMNS: &[(&str, bool)] = &[
    ("id", false),
    ("email", false),
    ("phone", false),
    ("push_tokens", true),
    ("first_name", false),
    ("last_name", false),
    ("locale", false),
    ("timezone", false),
    ("birthday", false),
    ("tier", false),
    ("points", false),
    ("points_expiring", false),
    ("points_expire_at", false),
    ("total_spend", false),
    ("currency", false),
    ("order_count", false),
    ("first_order_at", false),
    ("last_order_at", false),
    ("joined_at", false),
    ("email_consent", false),
    ("sms_consent", false),
    ("push_consent", false),
    ("attributes", true),
    ("lifecycle", false),
    ("clv", false),
    ("baseline", true),
    ("profile_as_of", false),
    ("orders_as_of", false),
    ("points_as_of", false),
    ("tier_as_of", false),
    ("updated_at", false),
];

const READ_COLUMNS: &str = "id, email, phone, push_tokens, first_name, last_name, locale, timezone, birthday, tier, \
     points, points_expiring, points_expire_at, total_spend, currency, order_count, first_order_at, last_order_at, \
     joined_at, email_consent, sms_consent, push_consent, attributes, lifecycle, rfm_r, rfm_f, rfm_m, rfm_segment, \
     clv, profile_as_of, orders_as_of, points_as_of, tier_as_of";

/// [`READ_COLUMNS`] and the import baseline, which only a fold needs: it is a whole member
/// as JSON, and parsing it costs as much as reading the member.
fn read_columns(baseline: bool) -> String {
    format!("{READ_COLUMNS}, {}", if baseline { "baseline" } else { "NULL AS baseline" })
}

pub(crate) fn read_member(row: &dyn ReadRow) -> Result<StoredMember, StoreError> {
    let id = row.text("id")?.unwrap_or_default();
    let strings = |column: &str| -> Result<Vec<String>, StoreError> {
        match row.json(column)? {
            None => Ok(Vec::new()),
            Some(json) => serde_json::from_value(json).map_err(|e| StoreError::corrupt(format!("{column} of {id}"), e)),
        }
    };
    let birthday = match row.text("birthday")? {
        None => None,
        Some(text) => {
            Some(Birthday::parse(&text).ok_or_else(|| StoreError::corrupt(format!("birthday of {id}"), &text))?)
        }
    };
    let attributes = match row.json("attributes")? {
        Some(serde_json::Value::Object(map)) => map,
        None => serde_json::Map::new(),
        Some(other) => return Err(StoreError::corrupt(format!("attributes of {id}"), other)),
    };
    let baseline = match row.json("baseline")? {
        None => None,
        Some(json) => Some(
            serde_json::from_value::<Member>(json).map_err(|e| StoreError::corrupt(format!("baseline of {id}"), e))?,
        ),
    };
    let member = Member {
        email: row.text("email")?,
        phone: row.text("phone")?,
        push_tokens: strings("push_tokens")?,
        first_name: row.text("first_name")?,
        last_name: row.text("last_name")?,
        locale: row.text("locale")?,
        timezone: row.text("timezone")?,
        birthday,
        tier: row.text("tier")?,
        points: row.int("points")?.unwrap_or(0),
        points_expiring: row.int("points_expiring")?.unwrap_or(0),
        points_expire_at: row.timestamp("points_expire_at")?,
        total_spend: row.int("total_spend")?.unwrap_or(0),
        currency: row.text("currency")?,
        order_count: row.int("order_count")?.unwrap_or(0),
        first_order_at: row.timestamp("first_order_at")?,
        last_order_at: row.timestamp("last_order_at")?,
        joined_at: row.timestamp("joined_at")?,
        email_consent: row.boolean("email_consent")?,
        sms_consent: row.boolean("sms_consent")?,
        push_consent: row.boolean("push_consent")?,
        tags: {
            // Byte order, as `Patch` sorts them (PostgreSQL's ORDER BY would use the collation).
            let mut tags = strings("tags")?;
            tags.sort();
            tags
        },
        attributes,
        lifecycle: row.text("lifecycle")?,
        rfm_r: row.int("rfm_r")?,
        rfm_f: row.int("rfm_f")?,
        rfm_m: row.int("rfm_m")?,
        rfm_segment: row.text("rfm_segment")?,
        clv: row.int("clv")?,
        id,
    };
    let as_of = AsOf {
        profile: row.timestamp("profile_as_of")?,
        orders: row.timestamp("orders_as_of")?,
        points: row.timestamp("points_as_of")?,
        tier: row.timestamp("tier_as_of")?,
    };
    Ok(StoredMember { member, baseline, as_of })
}

/// A member ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct Settled {
    pub member: Member,
    pub baseline: Option<Member>,
    pub as_of: AsOf,
    /// The tags stored now (`None`: a new row).
    pub old_tags: Option<Vec<String>>,
    /// Events older than the member's import: stored, no effect.
    pub stale: Vec<String>,
}

/// `fold(baseline, events)` plus the derived fields; the baseline is kept only when an
/// event changed the row.
pub(crate) fn settle(
    baseline: Member,
    as_of: AsOf,
    events: &[Event],
    old_tags: Option<Vec<String>>,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Settled {
    if events.is_empty() {
        // Nothing to fold (every import of a new member): the row is the baseline.
        let mut member = baseline;
        state::derived::refresh(&mut member, now, settings);
        return Settled { member, baseline: None, as_of, old_tags, stale: Vec::new() };
    }
    let folded = state::fold(&baseline, &as_of, events);
    let mut member = folded.member;
    state::derived::refresh(&mut member, now, settings);
    let baseline = (folded.applied > 0).then_some(Member {
        lifecycle: None,
        rfm_r: None,
        rfm_f: None,
        rfm_m: None,
        rfm_segment: None,
        clv: None,
        ..baseline
    });
    Settled { member, baseline, as_of, old_tags, stale: folded.stale }
}

/// A birthday's month and day (`MM-DD`, also for `--MM-DD`) in the form the expression
/// index `members_by_birthday_md` holds: birthday triggers must select with exactly this
/// (on the members table aliased `m`) to use the index.
pub fn birthday_month_day(dialect: crate::condition::Dialect) -> &'static str {
    match dialect {
        crate::condition::Dialect::Sqlite => "substr(m.birthday, -5)",
        crate::condition::Dialect::Postgres => "right(m.birthday, 5)",
    }
}

impl Store {
    /// Writes a batch of imported members in one transaction: each row's fields are set as
    /// of `as_of`, then the member's later events are folded in again. A member given twice
    /// in the batch gets both, in order.
    pub async fn import_members(
        &self,
        rows: &[MemberImport],
        as_of: DateTime<Utc>,
        now: DateTime<Utc>,
        settings: &Settings,
    ) -> Result<MembersWritten, StoreError> {
        let as_of = state::derived::stored_now(as_of);
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut existing = load(&mut tx, &ids, true).await?;
        let events = state_events(&mut tx, &ids).await?;
        let mut bases: HashMap<&str, (Member, AsOf, Option<Vec<String>>)> = HashMap::with_capacity(ids.len());
        let mut order: Vec<&str> = Vec::with_capacity(ids.len());
        let mut written = MembersWritten::default();
        for row in rows {
            let entry = bases.entry(row.id.as_str()).or_insert_with(|| {
                order.push(row.id.as_str());
                match existing.remove(&row.id) {
                    Some(stored) => {
                        written.updated += 1;
                        let tags = stored.member.tags.clone();
                        (stored.baseline.unwrap_or(stored.member), stored.as_of, Some(tags))
                    }
                    None => {
                        written.inserted += 1;
                        (Member { id: row.id.clone(), ..Member::default() }, AsOf::default(), None)
                    }
                }
            });
            row.patch.apply(&mut entry.0);
            for group in row.patch.groups() {
                entry.1.set(group, as_of);
            }
        }
        let mut events = events;
        let settled = order.into_iter().map(move |id| {
            let (base, as_of, tags) = bases.remove(id).expect("every id has a base");
            let evs = events.remove(id).unwrap_or_default();
            settle(base, as_of, &evs, tags, now, settings)
        });
        write(&mut tx, settled, now).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// One member as stored, with its tags (None when there is no such member).
    pub async fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
        let sql = select_members(self.sql(), &[id.to_string()], false);
        Ok(self.fetch(sql, read_member).await?.pop().map(|stored| stored.member))
    }

    /// How many members there are.
    pub async fn member_count(&self) -> Result<i64, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS n FROM members");
        Ok(self.fetch(sql, |r| Ok(r.int("n")?.unwrap_or(0))).await?.pop().unwrap_or(0))
    }
}

/// Reads members (with tags) by id. `to_fold`: the members are to be folded and written
/// back, so their baselines are read too, and on PostgreSQL they are locked in id order.
pub(crate) async fn load(
    tx: &mut Tx,
    ids: &[String],
    to_fold: bool,
) -> Result<HashMap<String, StoredMember>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = select_members(tx.sql(), ids, to_fold);
    Ok(tx.fetch(sql, read_member).await?.into_iter().map(|stored| (stored.member.id.clone(), stored)).collect())
}

/// `SELECT` of members by id with their tags, as one statement for [`read_member`]: the
/// tags are a JSON array from a correlated subquery, so a read is one round trip to the
/// database, not two (and needs no transaction to be consistent). `to_fold`: see [`load`].
pub(crate) fn select_members(mut sql: Sql, ids: &[String], to_fold: bool) -> Sql {
    let postgres = sql.dialect() == crate::condition::Dialect::Postgres;
    let tags = if postgres { "json_agg(t.tag)" } else { "json_group_array(t.tag)" };
    sql.push("SELECT ")
        .push(&read_columns(to_fold))
        .push(&format!(
            ", (SELECT {tags} FROM member_tags t WHERE t.member_id = members.id) AS tags FROM members WHERE "
        ))
        .in_list("id", ids.to_vec());
    if to_fold && postgres {
        sql.push(" ORDER BY id FOR UPDATE");
    }
    sql
}

/// The state-changing events of these members, by member.
pub(crate) async fn state_events(tx: &mut Tx, ids: &[String]) -> Result<HashMap<String, Vec<Event>>, StoreError> {
    let mut out: HashMap<String, Vec<Event>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = tx.sql();
    let name = sql.not_by_index("name");
    sql.push("SELECT id, member_id, name, occurred_at, properties FROM events WHERE ")
        .in_list("member_id", ids.to_vec())
        .push(" AND ")
        .in_list(&name, state::state_events().map(str::to_string).collect());
    for event in tx.fetch(sql, super::codec::read_event).await? {
        out.entry(event.member_id.clone()).or_default().push(event);
    }
    Ok(out)
}

/// Re-settles members after their events changed: reads their rows and events, folds,
/// writes. Returns the ids of events that were older than their member's import.
pub(crate) async fn rebuild(
    tx: &mut Tx,
    ids: &[String],
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<Vec<String>, StoreError> {
    let existing = load(tx, ids, true).await?;
    let events = state_events(tx, ids).await?;
    let mut settled = Vec::with_capacity(existing.len());
    for id in ids {
        let Some(stored) = existing.get(id) else { continue };
        let tags = stored.member.tags.clone();
        let base = stored.baseline.clone().unwrap_or_else(|| stored.member.clone());
        let evs = events.get(id).map_or(&[][..], Vec::as_slice);
        settled.push(settle(base, stored.as_of, evs, Some(tags), now, settings));
    }
    let stale = settled.iter().flat_map(|s| s.stale.iter().cloned()).collect();
    write(tx, settled.into_iter(), now).await?;
    Ok(stale)
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("member values serialize")
}

fn member_args(s: Settled, now: DateTime<Utc>) -> [Arg; 31] {
    let Settled { member: m, baseline, as_of, .. } = s;
    [
        Arg::Text(Some(m.id)),
        Arg::Text(m.email),
        Arg::Text(m.phone),
        Arg::Json(Some(json_text(&m.push_tokens))),
        Arg::Text(m.first_name),
        Arg::Text(m.last_name),
        Arg::Text(m.locale),
        Arg::Text(m.timezone),
        Arg::Text(m.birthday.map(|b| b.to_string())),
        Arg::Text(m.tier),
        Arg::Int(Some(m.points)),
        Arg::Int(Some(m.points_expiring)),
        Arg::Timestamp(m.points_expire_at),
        Arg::Int(Some(m.total_spend)),
        Arg::Text(m.currency),
        Arg::Int(Some(m.order_count)),
        Arg::Timestamp(m.first_order_at),
        Arg::Timestamp(m.last_order_at),
        Arg::Timestamp(m.joined_at),
        Arg::Bool(m.email_consent),
        Arg::Bool(m.sms_consent),
        Arg::Bool(m.push_consent),
        Arg::Json(Some(json_text(&m.attributes))),
        Arg::Text(m.lifecycle),
        Arg::Int(m.clv),
        Arg::Json(baseline.as_ref().map(json_text)),
        Arg::Timestamp(as_of.get(Group::Profile)),
        Arg::Timestamp(as_of.get(Group::Orders)),
        Arg::Timestamp(as_of.get(Group::Points)),
        Arg::Timestamp(as_of.get(Group::Tier)),
        Arg::Timestamp(Some(state::derived::stored_now(now))),
    ]
}

/// The text of a member upsert of `rows` rows.
fn upsert_text(dialect: crate::condition::Dialect, rows: usize) -> String {
    let columns: Vec<&str> = WRITE_COLUMNS.iter().map(|(c, _)| *c).collect();
    let mut probe = super::Sql::new(dialect);
    probe.push("INSERT INTO members (").push(&columns.join(", ")).push(") VALUES ");
    for i in 0..rows {
        probe.push(if i == 0 { "(" } else { ", (" });
        for (j, (_, json)) in WRITE_COLUMNS.iter().enumerate() {
            if j > 0 {
                probe.push(", ");
            }
            probe.bind(if *json { Arg::Json(None) } else { Arg::Int(None) });
        }
        probe.push(")");
    }
    probe.push(" ON CONFLICT (id) DO UPDATE SET ");
    probe.push(&columns[1..].iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", "));
    probe.text
}

/// Upserts settled members (multi-row statements) and replaces the tags that changed.
/// Members are settled as they are written: while the database runs one statement, the
/// next one's members are settled and their arguments encoded (the first statement is
/// small, so little of that work waits on nothing).
pub(crate) async fn write(
    tx: &mut Tx,
    settled: impl Iterator<Item = Settled>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let dialect = tx.dialect();
    let full = chunks(&[(); 100_000], WRITE_COLUMNS.len()).next().map_or(1, <[()]>::len);
    let first = full.min(64);
    // The text of a full statement is long (~30,000 placeholders): written once, and only
    // when a write has that many members (most writes settle a handful).
    let mut full_text: Option<String> = None;
    let mut stale_tags: Vec<String> = Vec::new();
    let mut tags: Vec<(String, String)> = Vec::new();
    let mut settled = settled.peekable();
    let ahead = tx.binds_ahead();
    let mut build = |rows: usize| -> Option<super::Bound> {
        settled.peek()?;
        let chunk: Vec<Settled> = settled.by_ref().take(rows).collect();
        for s in &chunk {
            if s.old_tags.as_deref().unwrap_or(&[]) != s.member.tags.as_slice() {
                if s.old_tags.is_some() {
                    stale_tags.push(s.member.id.clone());
                }
                tags.extend(s.member.tags.iter().map(|t| (s.member.id.clone(), t.clone())));
            }
        }
        let text = if chunk.len() == full {
            full_text.get_or_insert_with(|| upsert_text(dialect, full)).clone()
        } else {
            upsert_text(dialect, chunk.len())
        };
        let mut args = Vec::with_capacity(chunk.len() * WRITE_COLUMNS.len());
        for s in chunk {
            args.extend(member_args(s, now));
        }
        Some(super::Sql { dialect, text, args }.into_bound(ahead))
    };
    let mut next = build(first);
    while let Some(query) = next.take() {
        let (done, built) = tokio::join!(tx.execute_bound(query), async { build(full) });
        done?;
        next = built;
    }

    if !stale_tags.is_empty() {
        let mut sql = tx.sql();
        sql.push("DELETE FROM member_tags WHERE ").in_list("member_id", stale_tags);
        tx.execute(sql).await?;
    }
    for chunk in chunks(&tags, 2) {
        let mut sql = tx.sql();
        sql.push("INSERT INTO member_tags (member_id, tag) VALUES ");
        for (i, (member, tag)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Text(Some(member.clone())))
                .push(", ")
                .bind(Arg::Text(Some(tag.clone())))
                .push(")");
        }
        sql.push(" ON CONFLICT DO NOTHING");
        tx.execute(sql).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sql;

    #[test]
    fn a_member_write_binds_one_argument_per_column() {
        let s = Settled {
            member: Member { id: "m".into(), ..Member::default() },
            baseline: None,
            as_of: AsOf::default(),
            old_tags: None,
            stale: Vec::new(),
        };
        assert_eq!(member_args(s.clone(), Utc::now()).len(), WRITE_COLUMNS.len());
        let mut sql = Sql::new(crate::condition::Dialect::Sqlite);
        for arg in member_args(s, Utc::now()) {
            sql.bind(arg);
        }
        assert_eq!(sql.arg_count(), 31);
    }
}
