//! SQLite in memory, run on the calling thread: the store of `simulate` and `preview`.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every statement (and every
//! `BEGIN`, `COMMIT` and the ping sqlx sends when a connection goes back to its pool) is a
//! round trip between two threads. A file database shared by workers needs that; a private
//! in-memory database does not, and a simulation is little else than short statements in
//! sequence: a year of 10,000 members is ~900,000 round trips, two context switches each.
//! Here the same SQL (our [`Sql`] text and [`Arg`]s, the same migrations, the same bundled
//! SQLite) runs through rusqlite, a statement is a function call, and rows are read in
//! place instead of being copied into a channel.
//!
//! The connection sits behind an async lock: a transaction holds it across the engine's
//! `await`s, as a pooled connection was held before (the pool had exactly one, since each
//! connection to `:memory:` is a database of its own).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Arg, ReadRow, SQLITE_MIGRATIONS, Sql, StoreError, parse_sqlite_timestamp, sqlite_timestamp};

/// Prepared statements kept per connection: a tick runs ~100 distinct statements and
/// batched writes have a text per batch size (as `sqlite_options` sets for sqlx).
const STATEMENT_CACHE: usize = 1_000;

/// A private in-memory SQLite database.
#[derive(Clone)]
pub struct MemoryDb {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl std::fmt::Debug for MemoryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryDb")
    }
}

impl MemoryDb {
    /// Opens an empty database with our schema.
    pub(super) fn open() -> Result<MemoryDb, StoreError> {
        let conn = rusqlite::Connection::open_in_memory()?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // 8 KiB pages, set before the first table: an in-memory database's page cache is
        // the database, and each commit that follows a B-tree rebalance walks that cache's
        // whole hash table (`balance_nonroot` parks a page at the lock-byte page number
        // while it sorts page numbers, so the commit's truncate finds a page far past the
        // end: `pcache1TruncateUnsafe`, 7 % of a year's CPU with 4 KiB pages). Half as many
        // pages halve that walk; larger pages cost more in copying than they save (16 KiB
        // no faster, 64 KiB slower: README, issue 21).
        conn.execute_batch("PRAGMA page_size = 8192; PRAGMA foreign_keys = ON;")?;
        for migration in SQLITE_MIGRATIONS.iter().filter(|m| m.migration_type.is_up_migration()) {
            let sql = migration.sql.as_str();
            if migration.no_tx {
                conn.execute_batch(sql)?;
            } else {
                conn.execute_batch(&format!("BEGIN;\n{sql}\nCOMMIT;"))?;
            }
        }
        Ok(MemoryDb { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Starts a transaction (`BEGIN IMMEDIATE` for a write, as on a file).
    pub(super) async fn begin(&self, write: bool) -> Result<MemoryTx, StoreError> {
        let conn = self.conn.clone().lock_owned().await;
        conn.execute_batch(if write { "BEGIN IMMEDIATE" } else { "BEGIN" })?;
        Ok(MemoryTx { conn, open: true })
    }

    /// Runs a query outside a transaction and maps every row.
    pub(super) async fn fetch<T>(
        &self,
        sql: Sql,
        map: impl Fn(&dyn ReadRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let conn = self.conn.lock().await;
        let mut out = Vec::new();
        run(&conn, sql, |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The query plan of `select` with `params` bound, one line per step.
    pub(super) async fn explain(
        &self,
        select: &str,
        params: Vec<crate::condition::SqlParam>,
    ) -> Result<Vec<String>, StoreError> {
        let mut sql = Sql::new(super::Dialect::Sqlite);
        sql.push(&format!("EXPLAIN QUERY PLAN {select}"));
        sql.args = params.into_iter().map(Arg::from).collect();
        self.fetch(sql, |r| Ok(r.text("detail")?.unwrap_or_default())).await
    }
}

/// A transaction on the in-memory database; rolled back if dropped before [`MemoryTx::commit`].
pub(crate) struct MemoryTx {
    conn: OwnedMutexGuard<rusqlite::Connection>,
    open: bool,
}

impl MemoryTx {
    pub(super) fn execute(&mut self, sql: Sql) -> Result<u64, StoreError> {
        run(&self.conn, sql, |_| Ok(()))
    }

    pub(super) fn for_each(
        &mut self,
        sql: Sql,
        each: impl FnMut(&dyn ReadRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        run(&self.conn, sql, each).map(|_| ())
    }

    pub(super) fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }
}

impl Drop for MemoryTx {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            // Synchronous here, so the next holder of the lock finds no transaction open.
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(%error, "rolling back an in-memory transaction");
            }
        }
    }
}

/// Runs one statement, handing each row it returns to `each`; returns the rows it changed.
fn run(
    conn: &rusqlite::Connection,
    sql: Sql,
    mut each: impl FnMut(&dyn ReadRow) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let Sql { text, args, .. } = sql;
    // Each statement at debug level with its time, as sqlx logs its own (`sqlx::query`).
    let started = tracing::enabled!(tracing::Level::DEBUG).then(std::time::Instant::now);
    let mut statement = conn.prepare_cached(&text)?;
    for (i, arg) in args.into_iter().enumerate() {
        statement.raw_bind_parameter(i + 1, Bind(arg))?;
    }
    let writes = !statement.readonly();
    // The column names once per statement: rusqlite finds a column by name by asking
    // SQLite for every column's name at every read (17% of a simulation's CPU).
    let names: Vec<String> = statement.column_names().into_iter().map(str::to_string).collect();
    let mut rows = statement.raw_query();
    let mut returned = 0u64;
    while let Some(row) = rows.next()? {
        returned += 1;
        each(&Named { row, names: &names })?;
    }
    let changed = if writes { conn.changes() } else { 0 };
    if let Some(started) = started {
        let summary: String = text.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        tracing::debug!(%summary, rows_returned = returned, rows_affected = changed, elapsed = ?started.elapsed(), "statement");
    }
    Ok(changed)
}

/// An [`Arg`] as SQLite stores it: what sqlx binds for the same argument.
struct Bind(Arg);

impl rusqlite::ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        const NULL: ToSqlOutput<'_> = ToSqlOutput::Owned(Value::Null);
        Ok(match &self.0 {
            Arg::Text(v) | Arg::Json(v) => v.as_deref().map_or(NULL, ToSqlOutput::from),
            Arg::Int(v) => v.map_or(NULL, ToSqlOutput::from),
            Arg::Float(v) => v.map_or(NULL, ToSqlOutput::from),
            Arg::Bool(v) => ToSqlOutput::from(*v),
            Arg::Timestamp(v) => v.map_or(NULL, |at| ToSqlOutput::from(sqlite_timestamp(at))),
            Arg::TextList(v) => ToSqlOutput::from(serde_json::to_string(v).expect("strings serialize")),
            Arg::IntList(v) => ToSqlOutput::from(serde_json::to_string(v).expect("integers serialize")),
        })
    }
}

/// A row with its statement's column names, read by name.
struct Named<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: &'r [String],
}

impl Named<'_, '_> {
    /// The column's index (names compared as SQLite does, ASCII case aside).
    fn idx(&self, column: &str) -> Result<usize, StoreError> {
        self.names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(column))
            .ok_or_else(|| StoreError::InMemory(rusqlite::Error::InvalidColumnName(column.to_string())))
    }

    fn get_ref(&self, column: &str) -> Result<ValueRef<'_>, StoreError> {
        Ok(self.row.get_ref(self.idx(column)?)?)
    }
}

impl ReadRow for Named<'_, '_> {
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.row.get(self.idx(column)?)?)
    }

    fn int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.row.get(self.idx(column)?)?)
    }

    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.row.get(self.idx(column)?)?)
    }

    fn timestamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.get_ref(column)? {
            ValueRef::Null => Ok(None),
            value => {
                let text = value.as_str().map_err(|e| StoreError::corrupt(column, e))?;
                parse_sqlite_timestamp(text)
                    .map(Some)
                    .ok_or_else(|| StoreError::corrupt(format!("timestamp in {column}"), text))
            }
        }
    }

    fn json(&self, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
        match self.get_ref(column)? {
            ValueRef::Null => Ok(None),
            value => {
                let text = value.as_str().map_err(|e| StoreError::corrupt(column, e))?;
                serde_json::from_str(text).map(Some).map_err(|e| StoreError::corrupt(column, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn count(db: &MemoryDb) -> i64 {
        let mut sql = Sql::new(super::super::Dialect::Sqlite);
        sql.push("SELECT COUNT(*) AS n FROM members");
        db.fetch(sql, |r| Ok(r.int("n")?.unwrap_or(0))).await.unwrap()[0]
    }

    fn insert(id: &str) -> Sql {
        let mut sql = Sql::new(super::super::Dialect::Sqlite);
        sql.push("INSERT INTO members (id, updated_at) VALUES (")
            .bind(Arg::text(id))
            .push(", ")
            .bind(Arg::Timestamp(Some(chrono::DateTime::UNIX_EPOCH)))
            .push(")");
        sql
    }

    #[tokio::test]
    async fn a_transaction_dropped_before_commit_leaves_nothing_and_frees_the_database() {
        let Store::Memory(db) = Store::open("sqlite::memory:").await.unwrap() else { panic!("not in memory") };
        let mut tx = db.begin(true).await.unwrap();
        assert_eq!(tx.execute(insert("ada")).unwrap(), 1);
        drop(tx);
        assert_eq!(count(&db).await, 0, "rolled back");
        let mut tx = db.begin(true).await.unwrap();
        tx.execute(insert("ada")).unwrap();
        tx.commit().unwrap();
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test]
    async fn values_read_back_as_they_were_bound() {
        let Store::Memory(db) = Store::open("sqlite::memory:").await.unwrap() else { panic!("not in memory") };
        let at: DateTime<Utc> = "2028-02-29T09:00:00.123456Z".parse().unwrap();
        let mut sql = Sql::new(super::super::Dialect::Sqlite);
        sql.push("SELECT ").bind(Arg::Timestamp(Some(at))).push(" AS at, ");
        sql.bind(Arg::Bool(true)).push(" AS yes, ").bind(Arg::Int(None)).push(" AS absent, ");
        sql.bind(Arg::Json(Some(r#"{"a":[1,2]}"#.into()))).push(" AS doc, ");
        sql.push("(SELECT COUNT(*) FROM json_each(").bind(Arg::TextList(vec!["x".into(), "y".into()])).push(")) AS n");
        let rows = db
            .fetch(sql, |r| Ok((r.timestamp("at")?, r.boolean("yes")?, r.int("absent")?, r.json("doc")?, r.int("n")?)))
            .await
            .unwrap();
        assert_eq!(rows, vec![(Some(at), true, None, Some(serde_json::json!({"a": [1, 2]})), Some(2))]);
    }
}
