//! The edge that talks to the database: one interface, SQLite and PostgreSQL.
//!
//! [`Store`] is an enum over the two pools and a private in-memory SQLite database
//! ([`memory`], for `simulate` and `preview`). Every query is written once, as text with the
//! small dialect differences spelled out where they occur ([`Sql`] numbers placeholders
//! and casts JSON for PostgreSQL), and runs through two tiny adapters: binding
//! ([`Arg`]) and reading ([`ReadRow`]). There are no compile-time checked queries, so a
//! fresh clone builds with no database.
//!
//! - [`members`]: importing members and folding events into them (`state::fold`), reading one.
//! - [`events`]: appending events (unique by id) and reading a member's history.
//! - [`derived`]: lifecycle, CLV and RFM over the whole base, set-based.
//! - [`history`]: a member's runs and deliveries (written by the engine).
//! - [`products`]: the catalogue, order line items and the recommendation models.
//!
//! Writes are batched: one transaction per batch, multi-row statements, never a commit per
//! row (this disk does ~300 fsyncs/s). SQLite write transactions start with `BEGIN
//! IMMEDIATE`, so two writers queue on the lock instead of failing to upgrade; on
//! PostgreSQL the member rows a batch changes are locked (`FOR UPDATE`, in id order) before
//! their events are read.

pub mod alerts;
pub mod bulk;
pub mod codec;
pub mod deliveries;
pub mod derived;
pub mod events;
pub mod history;
pub mod inbox;
pub mod members;
pub mod memory;
pub mod products;
pub mod provider_limits;
pub mod report;
pub mod runs;
pub mod timeline;
pub mod versions;
pub mod wake;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Postgres, Row, Sqlite, Transaction};

pub use crate::condition::Dialect;
pub use derived::Recomputed;
pub use events::EventsWritten;
pub use history::{DeliveryRow, RunRow};
pub use members::{MemberImport, MembersWritten};

/// Our schema for SQLite, embedded at compile time (no database needed to build).
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Our schema for PostgreSQL.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connects to `database_url` (`sqlite://…` or `postgres://…`) and applies our migrations.
pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
    Store::open(database_url).await.map(|_| ())
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// From the in-memory database of `simulate` and `preview` ([`memory`]).
    #[error(transparent)]
    InMemory(#[from] rusqlite::Error),
    /// A stored value that cannot be read back (written by something other than tidings).
    #[error("unreadable {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// An audience that cannot run as SQL (validation reports these first).
    #[error("audience cannot run in the database: {0}")]
    Condition(String),
}

impl StoreError {
    fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { what: what.into(), detail: detail.to_string() }
    }
}

/// The database: SQLite (embedded, the default) or PostgreSQL (shared by many workers),
/// or a private SQLite database in memory (`sqlite::memory:`: `simulate`, `preview`).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    Memory(memory::MemoryDb),
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `sqlite::memory:` and the like: a database private to one connection.
fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// What a pool is opened for, which sets how much memory SQLite may keep per connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Workload {
    /// `serve`, `worker` and the short commands: a process that runs for weeks over a large
    /// base. A small page cache, no memory map and temporary storage in files (the daily
    /// refresh's whole-base `UPDATE` builds a temporary B-tree), so its resident memory
    /// stays near what the engine itself holds (measured in the README's engine section).
    #[default]
    Service,
    /// `tidings import`: batched upserts touch many index pages and building the indexes at
    /// the end scans the table once per index; a large cache and a memory map pay here.
    Bulk,
}

impl Workload {
    /// SQLite's `cache_size` (negative: KiB), `mmap_size` (bytes) and `temp_store` for
    /// this workload.
    fn sqlite_memory(self) -> (&'static str, &'static str, &'static str) {
        match self {
            // 8 MiB of cache per connection (the default is 2 MiB), up to 4 connections.
            Workload::Service => ("-8192", "0", "default"),
            // 64 MiB per connection: a small cache spills a batch's dirty index pages to the
            // WAL mid-transaction. Reading through a memory map (up to 1 GiB) instead of a
            // read() call and a copy per page saves ~0.1-0.2 s of sys time per full scan of
            // 1,000,000 members (each index build is one).
            Workload::Bulk => ("-65536", "1073741824", "memory"),
        }
    }
}

/// SQLite connection settings for every connection of the pool: WAL, `synchronous=NORMAL`
/// (durable at each checkpoint, never corrupt), a generous busy timeout, foreign keys, and
/// the page cache, memory map and temporary storage of the [`Workload`].
pub fn sqlite_options(url: &str, workload: Workload) -> Result<SqliteConnectOptions, StoreError> {
    let (cache_size, mmap_size, temp_store) = workload.sqlite_memory();
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        // Batched writes have a statement text per batch size, and a tick runs ~100 distinct
        // statements: with sqlx's default cache of 100 the hottest ones (the claims) were
        // evicted and prepared again on every tick.
        .statement_cache_capacity(1_000)
        // sqlx hands a query's rows from the connection's thread to the task one by one
        // over a bounded channel (50 by default). A batch of 1,000 filled it, and from then
        // on every row taken woke the thread for the next one: with room for a batch the
        // thread steps through its rows and waits once (the engine bench's tick: 3.7 → 2.5
        // context switches a message).
        .row_buffer_size(1_000)
        .pragma("cache_size", cache_size)
        .pragma("mmap_size", mmap_size)
        .pragma("temp_store", temp_store)
        // Large sorts (building an index after a bulk load) may use a second core.
        .pragma("threads", "2")
        // A commit that finds the WAL over this many pages copies it into the database
        // itself, and ends in an fsync. Bulk loads do that every ~40 MB rather than every
        // 4 MB; a service's pool checkpoints from a connection of its own
        // ([`checkpoint_in_background`]), so its commits never do, and this is only the
        // backstop (~400 MB) for when that falls behind.
        .pragma(
            "wal_autocheckpoint",
            match workload {
                Workload::Service => "100000",
                Workload::Bulk => "10000",
            },
        ))
}

/// Copies the WAL into the database five times a second from one of the pool's
/// connections (a `PASSIVE` checkpoint: it waits for no reader or writer). The commit that
/// crossed `wal_autocheckpoint` used to do it, holding the write lock through the copy and
/// its fsync, so every request waiting on that writer waited tens of milliseconds more
/// (the tail of the ingest latency). Ends when the pool is closed.
async fn checkpoint_in_background(pool: sqlx::SqlitePool) {
    let mut every = tokio::time::interval(Duration::from_millis(200));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(%error, "a background WAL checkpoint failed; the next one tries again");
        }
    }
}

/// How a SQLite connection waits for the write lock another connection (or process)
/// holds. SQLite's own handler, which `busy_timeout` installs, sleeps 1, 2, 5, 10, 15, 20,
/// 25, 25, 25, 50, 50 and then 100 ms between tries: a writer that finds the lock taken
/// wakes long after it is free (8 ms for a 5 ms transaction, 33 ms for a 20 ms one), and
/// every request waiting on that writer waits as long. This one tries again after 50 µs,
/// doubling to 1 ms, so a wait ends within a millisecond of the lock's release; it gives
/// up after about the same 30 s. Each sqlx connection has a thread of its own, so the
/// sleep holds only that connection.
extern "C" fn busy_wait(_: *mut std::ffi::c_void, tries: std::ffi::c_int) -> std::ffi::c_int {
    const GIVE_UP_AFTER: std::ffi::c_int = 30_000;
    if tries >= GIVE_UP_AFTER {
        return 0;
    }
    let micros = 50u64 << tries.clamp(0, 5);
    std::thread::sleep(Duration::from_micros(micros.min(1_000)));
    1
}

impl Store {
    /// Connects, applies the migrations, and rebuilds any index a bulk load that did not
    /// finish left out ([`bulk`]).
    pub async fn open(database_url: &str) -> Result<Store, StoreError> {
        Store::open_for(database_url, Workload::Service).await
    }

    /// [`Store::open`] with the SQLite memory settings of `workload`.
    pub async fn open_for(database_url: &str, workload: Workload) -> Result<Store, StoreError> {
        let store = Store::connect_for(database_url, workload).await?;
        store.migrate().await?;
        store.finish_bulk_load().await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(database_url: &str) -> Result<Store, StoreError> {
        Store::connect_for(database_url, Workload::Service).await
    }

    async fn connect_for(database_url: &str, workload: Workload) -> Result<Store, StoreError> {
        if is_memory(database_url) {
            // The schema comes with it: the same migrations, applied as it opens.
            return Ok(Store::Memory(memory::MemoryDb::open()?));
        }
        if is_postgres(database_url) {
            return Ok(Store::Postgres(PgPoolOptions::new().max_connections(8).connect(database_url).await?));
        }
        let options = sqlite_options(database_url, workload)?;
        // No ping before each acquire: an embedded database cannot have hung up, and the
        // ping is one more round trip to the connection's thread per query (it doubled the
        // cost of a short query).
        let pool = SqlitePoolOptions::new().test_before_acquire(false).after_connect(|conn, _| {
            Box::pin(async move {
                let mut handle = conn.lock_handle().await?;
                let db = handle.as_raw_handle().as_ptr();
                // SAFETY: `db` is this connection's open handle, locked for us while we use
                // it; the handler is a plain function that keeps no state.
                unsafe { rusqlite::ffi::sqlite3_busy_handler(db, Some(busy_wait), std::ptr::null_mut()) };
                Ok(())
            })
        });
        let pool = pool.max_connections(4).connect_with(options).await?;
        if workload == Workload::Service {
            tokio::spawn(checkpoint_in_background(pool.clone()));
        }
        Ok(Store::Sqlite(pool))
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Store::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
            Store::Memory(_) => {} // migrated as it opened
        }
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) | Store::Memory(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Store::Memory(db) => Tx::Memory(db.begin(true).await?),
        })
    }

    /// Starts a read-only transaction: one consistent view for several queries.
    pub(crate) async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Store::Memory(db) => Tx::Memory(db.begin(false).await?),
        })
    }

    /// Runs a query outside a transaction and maps every row.
    pub(crate) async fn fetch<T>(
        &self,
        sql: Sql,
        map: impl Fn(&dyn ReadRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Store::Sqlite(pool) => sql.sqlite().fetch_all(pool).await?.iter().map(|r| map(r)).collect(),
            Store::Postgres(pool) => sql.postgres().fetch_all(pool).await?.iter().map(|r| map(r)).collect(),
            Store::Memory(db) => db.fetch(sql, map).await,
        }
    }

    /// The query plan of `SELECT m.id FROM members m WHERE <filter>` (an audience), one
    /// line per step: SQLite's `EXPLAIN QUERY PLAN` details, PostgreSQL's `EXPLAIN` with
    /// sequential scans discouraged (`enable_seqscan = off`, for this transaction only), so
    /// the plan shows whether an index *can* serve the audience even on a small table.
    pub async fn explain_audience(&self, filter: &crate::condition::SqlFilter) -> Result<Vec<String>, StoreError> {
        use crate::condition::BindSql;
        let select = format!("SELECT m.id FROM members m WHERE {}", filter.sql);
        Ok(match self {
            Store::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                // EXPLAIN reads no table, so it would not notice a schema changed by another
                // connection (a bulk load's indexes): read the schema first.
                sqlx::query("SELECT COUNT(*) FROM sqlite_master").execute(&mut *conn).await?;
                let sql = format!("EXPLAIN QUERY PLAN {select}");
                let rows = sqlx::query(AssertSqlSafe(sql)).bind_filter(filter).fetch_all(&mut *conn).await?;
                rows.iter().map(|r| r.try_get::<String, _>("detail")).collect::<Result<_, _>>()?
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
                let sql = format!("EXPLAIN {select}");
                let rows = sqlx::query(AssertSqlSafe(sql)).bind_filter(filter).fetch_all(&mut *tx).await?;
                tx.rollback().await?;
                rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?
            }
            Store::Memory(db) => db.explain(&select, filter.params.clone()).await?,
        })
    }
}

/// A write transaction on either engine.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
    Memory(memory::MemoryTx),
}

impl Tx {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) | Tx::Memory(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    pub(crate) async fn execute(&mut self, sql: Sql) -> Result<u64, StoreError> {
        if let Tx::Memory(tx) = self {
            return tx.execute(sql);
        }
        self.execute_bound(sql.into_bound(true)).await
    }

    /// Whether [`Sql::into_bound`] encodes statements for this transaction (the in-memory
    /// database takes [`Sql`] as it is).
    pub(crate) fn binds_ahead(&self) -> bool {
        !matches!(self, Tx::Memory(_))
    }

    /// Runs a statement whose arguments are already encoded ([`Sql::into_bound`]).
    pub(crate) async fn execute_bound(&mut self, query: Bound) -> Result<u64, StoreError> {
        Ok(match (self, query) {
            (Tx::Sqlite(tx), Bound::Sqlite(query)) => query.execute(&mut **tx).await?.rows_affected(),
            (Tx::Postgres(tx), Bound::Postgres(query)) => query.execute(&mut **tx).await?.rows_affected(),
            (Tx::Memory(tx), Bound::Plain(sql)) => tx.execute(sql)?,
            _ => unreachable!("a statement is built for the transaction's own engine"),
        })
    }

    pub(crate) async fn fetch<T>(
        &mut self,
        sql: Sql,
        map: impl Fn(&dyn ReadRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Tx::Sqlite(tx) => sql.sqlite().fetch_all(&mut **tx).await?.iter().map(|r| map(r)).collect(),
            Tx::Postgres(tx) => sql.postgres().fetch_all(&mut **tx).await?.iter().map(|r| map(r)).collect(),
            Tx::Memory(tx) => {
                let mut out = Vec::new();
                tx.for_each(sql, |r| {
                    out.push(map(r)?);
                    Ok(())
                })?;
                Ok(out)
            }
        }
    }

    /// Runs a query and hands each row to `each` as it arrives (for results too large to
    /// hold as rows).
    pub(crate) async fn for_each(
        &mut self,
        sql: Sql,
        mut each: impl FnMut(&dyn ReadRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        use futures_util::TryStreamExt as _;
        match self {
            Tx::Sqlite(tx) => {
                let mut rows = sql.sqlite().fetch(&mut **tx);
                while let Some(row) = rows.try_next().await? {
                    each(&row)?;
                }
            }
            Tx::Postgres(tx) => {
                let mut rows = sql.postgres().fetch(&mut **tx);
                while let Some(row) = rows.try_next().await? {
                    each(&row)?;
                }
            }
            Tx::Memory(tx) => tx.for_each(sql, each)?,
        }
        Ok(())
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Memory(tx) => tx.commit()?,
        }
        Ok(())
    }
}

/// A bound value, encoded per engine when the query runs.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    /// Fixed-width UTC text on SQLite (`codec`), `TIMESTAMPTZ` on PostgreSQL.
    Timestamp(Option<DateTime<Utc>>),
    Float(Option<f64>),
    /// JSON text; the placeholder is cast to `jsonb` on PostgreSQL.
    Json(Option<String>),
    /// A list of strings: a JSON array read with `json_each` on SQLite, `text[]` on PostgreSQL.
    TextList(Vec<String>),
    /// A list of integers (row ids): a JSON array on SQLite, `bigint[]` on PostgreSQL.
    IntList(Vec<i64>),
}

/// A statement with its arguments encoded for its engine, ready to send: encoding a large
/// batch is real work, which a writer can do while the database runs the previous one.
pub(crate) enum Bound {
    Sqlite(sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments>),
    Postgres(sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments>),
    /// For the in-memory database, which binds as it runs.
    Plain(Sql),
}

impl Arg {
    /// A non-null text argument.
    pub(crate) fn text(value: &str) -> Arg {
        Arg::Text(Some(value.to_string()))
    }
}

/// A compiled condition's parameter, bound as an argument.
impl From<crate::condition::SqlParam> for Arg {
    fn from(param: crate::condition::SqlParam) -> Arg {
        use crate::condition::SqlParam;
        match param {
            SqlParam::Text(v) => Arg::Text(Some(v)),
            SqlParam::Int(v) => Arg::Int(Some(v)),
            SqlParam::Float(v) => Arg::Float(Some(v)),
            SqlParam::Bool(v) => Arg::Bool(v),
            SqlParam::Timestamp(v) => Arg::Timestamp(Some(v)),
        }
    }
}

/// SQL text with its arguments, placeholders in the order they are pushed (`?` on SQLite,
/// `$N` on PostgreSQL), so one builder serves both engines.
#[derive(Debug, Clone)]
pub struct Sql {
    dialect: Dialect,
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Sql {
        Sql { dialect, text: String::new(), args: Vec::new() }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Pushes the placeholder of a new argument. On SQLite that is an anonymous `?`: with
    /// numbered `?N` placeholders, binding looks each name up in a list (sqlx calls
    /// `sqlite3_bind_parameter_name` for every parameter), which made a 30,000-parameter
    /// insert take 1.3 s instead of 15 ms. A statement uses either `bind` or [`Sql::arg`],
    /// never both.
    pub(crate) fn bind(&mut self, arg: Arg) -> &mut Sql {
        if self.dialect == Dialect::Sqlite {
            self.args.push(arg);
            self.text.push('?');
            return self;
        }
        let placeholder = self.arg(arg);
        self.text.push_str(&placeholder);
        self
    }

    /// ` LIMIT n`, with `n` written into the statement rather than bound. SQLite plans a
    /// bound `LIMIT ?` with the value it holds and marks the prepared statement stale
    /// whenever that parameter is bound again, so a cached statement with a bound limit
    /// was compiled anew at every run (6% of a simulation's time). A number we format
    /// ourselves cannot inject anything; each limit in use is one cached statement.
    pub(crate) fn limit(&mut self, n: i64) -> &mut Sql {
        self.push(&format!(" LIMIT {n}"))
    }

    /// One row of a multi-row `VALUES` list, `(a, b, …)` with every value bound, after a
    /// `, ` unless it is the `first`.
    pub(crate) fn values_row(&mut self, first: bool, values: impl IntoIterator<Item = Arg>) -> &mut Sql {
        self.push(if first { "(" } else { ", (" });
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self.push(")")
    }

    /// Adds an argument without writing it; returns its numbered placeholder, to use any
    /// number of times (for statements with few arguments: see [`Sql::bind`]).
    pub(crate) fn arg(&mut self, arg: Arg) -> String {
        let json = matches!(arg, Arg::Json(_));
        self.args.push(arg);
        let placeholder = self.dialect.placeholder(self.args.len());
        if json && self.dialect == Dialect::Postgres { placeholder + "::jsonb" } else { placeholder }
    }

    /// An audience condition compiled to SQL, its placeholders numbered after the arguments
    /// so far (the rest of the statement must use [`Sql::arg`]).
    pub(crate) fn condition(
        &mut self,
        expr: &crate::condition::Expr,
        now: DateTime<Utc>,
    ) -> Result<&mut Sql, StoreError> {
        let filter = crate::condition::to_sql(expr, self.dialect, now, self.args.len() + 1)
            .map_err(|e| StoreError::Condition(format!("{} ({})", e.message, e.code)))?;
        self.text.push('(');
        self.text.push_str(&filter.sql);
        self.text.push(')');
        self.args.extend(filter.params.into_iter().map(Arg::from));
        Ok(self)
    }

    /// `column IN (the values)`, with the whole list bound as one argument.
    pub(crate) fn in_list(&mut self, column: &str, values: Vec<String>) -> &mut Sql {
        self.push(column);
        match self.dialect {
            Dialect::Sqlite => self.push(" IN (SELECT value FROM json_each(").bind(Arg::TextList(values)).push("))"),
            Dialect::Postgres => self.push(" = ANY(").bind(Arg::TextList(values)).push(")"),
        }
    }

    /// `column IN (the ids)` for an integer column (row ids), with the list bound as one
    /// argument. The values stay integers, so the column's index (the primary key) serves
    /// the lookup; comparing the column as text would scan the table.
    pub(crate) fn in_ids(&mut self, column: &str, ids: &[i64]) -> &mut Sql {
        self.push(column);
        match self.dialect {
            Dialect::Sqlite => {
                self.push(" IN (SELECT value FROM json_each(").bind(Arg::IntList(ids.to_vec())).push("))")
            }
            Dialect::Postgres => self.push(" = ANY(").bind(Arg::IntList(ids.to_vec())).push(")"),
        }
    }

    /// `column` as a filter that must not pick the index: SQLite's `+column`. Without
    /// statistics SQLite's planner ranks an equality on `events.name` as selective as one on
    /// `events.member_id`, and reading every `order.placed` to find one member's grows with
    /// the shop; `+` leaves it the member index. PostgreSQL plans from statistics.
    pub(crate) fn not_by_index(&self, column: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("+{column}"),
            Dialect::Postgres => column.to_string(),
        }
    }

    /// `a IS NOT b` (SQLite) / `a IS DISTINCT FROM b` (PostgreSQL).
    pub(crate) fn distinct(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "IS NOT",
            Dialect::Postgres => "IS DISTINCT FROM",
        }
    }

    #[cfg(test)]
    pub(crate) fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// The statement encoded for its engine: sqlx's arguments, or (`ahead` false: the
    /// in-memory database, [`Tx::binds_ahead`]) the statement as it is.
    pub(crate) fn into_bound(self, ahead: bool) -> Bound {
        if !ahead {
            return Bound::Plain(self);
        }
        match self.dialect {
            Dialect::Sqlite => Bound::Sqlite(self.sqlite()),
            Dialect::Postgres => Bound::Postgres(self.postgres()),
        }
    }

    fn sqlite(self) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
        let mut arguments = sqlx::sqlite::SqliteArguments::default();
        sqlx::Arguments::reserve(&mut arguments, self.args.len(), 0);
        let mut query = sqlx::query_with(AssertSqlSafe(self.text), arguments);
        for arg in self.args {
            query = match arg {
                Arg::Text(v) | Arg::Json(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Float(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Timestamp(v) => query.bind(v.map(sqlite_timestamp)),
                Arg::TextList(v) => query.bind(serde_json::to_string(&v).expect("strings serialize")),
                Arg::IntList(v) => query.bind(serde_json::to_string(&v).expect("integers serialize")),
            };
        }
        query
    }

    fn postgres(self) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.text));
        for arg in self.args {
            query = match arg {
                Arg::Text(v) | Arg::Json(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Float(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Timestamp(v) => query.bind(v),
                Arg::TextList(v) => query.bind(v),
                Arg::IntList(v) => query.bind(v),
            };
        }
        query
    }
}

/// `codec::sqlite_timestamp`, written out by hand: chrono's formatter parses its format
/// string on every call, which was a tenth of an import's time. The test below holds the
/// two equal.
fn sqlite_timestamp(at: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return codec::sqlite_timestamp(at); // outside what we store, or a leap second
    }
    let mut out = [0u8; 27];
    let mut put = |at: usize, width: usize, mut value: u32| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, at.month());
    put(8, 2, at.day());
    put(11, 2, at.hour());
    put(14, 2, at.minute());
    put(17, 2, at.second());
    put(20, 6, nanos / 1_000);
    for (i, byte) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (26, b'Z')] {
        out[i] = byte;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

/// `codec::parse_sqlite_timestamp` for the one fixed-width format, by hand (a recompute
/// reads a million of them); anything else goes to the codec.
fn parse_sqlite_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let shape = b.len() == 27
        && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (26, b'Z')]
            .iter()
            .all(|&(i, c)| b[i] == c);
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let fast = || -> Option<DateTime<Utc>> {
        let date = chrono::NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
        let time = date.and_hms_micro_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, number(20, 26)?)?;
        Some(time.and_utc())
    };
    if shape { fast().or_else(|| codec::parse_sqlite_timestamp(text)) } else { codec::parse_sqlite_timestamp(text) }
}

/// Reading a column the same way from either engine.
pub(crate) trait ReadRow {
    fn text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn boolean(&self, column: &str) -> Result<bool, StoreError>;
    fn timestamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn json(&self, column: &str) -> Result<Option<serde_json::Value>, StoreError>;
}

impl ReadRow for SqliteRow {
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn timestamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.try_get::<Option<&str>, _>(column)? {
            None => Ok(None),
            Some(text) => parse_sqlite_timestamp(text)
                .map(Some)
                .ok_or_else(|| StoreError::corrupt(format!("timestamp in {column}"), text)),
        }
    }

    fn json(&self, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
        match self.try_get::<Option<String>, _>(column)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| StoreError::corrupt(column, e)),
        }
    }
}

impl ReadRow for PgRow {
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.try_get::<Option<i64>, _>(column) {
            Ok(v) => Ok(v),
            Err(sqlx::Error::ColumnDecode { .. }) => Ok(self.try_get::<Option<i32>, _>(column)?.map(i64::from)),
            Err(e) => Err(e.into()),
        }
    }

    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn timestamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn json(&self, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self.try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(column)?.map(|j| j.0))
    }
}

/// Splits `items` into chunks that keep a statement under both engines' limits on bound
/// parameters (SQLite 32,766; PostgreSQL 65,535).
pub(crate) fn chunks<T>(items: &[T], args_per_item: usize) -> std::slice::Chunks<'_, T> {
    items.chunks((30_000 / args_per_item.max(1)).clamp(1, 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_timestamp_text_is_the_codec_text() {
        let mut seconds: i64 = -62_135_596_800; // 0001-01-01
        let mut nanos: u32 = 0;
        while seconds < 253_402_300_799 {
            let at = DateTime::from_timestamp(seconds, nanos).unwrap();
            assert_eq!(sqlite_timestamp(at), codec::sqlite_timestamp(at), "{at:?}");
            let text = codec::sqlite_timestamp(at);
            assert_eq!(parse_sqlite_timestamp(&text), codec::parse_sqlite_timestamp(&text), "{text}");
            seconds += 86_400 * 37 + 3_607;
            nanos = (nanos + 123_457_001) % 1_000_000_000;
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000);
        let leap = leap.unwrap().and_utc();
        assert_eq!(sqlite_timestamp(leap), codec::sqlite_timestamp(leap));
        for odd in ["2026-02-30T00:00:00.000000Z", "2026-01-01 00:00:00", "", "2026-01-01T00:00:60.000000Z"] {
            assert_eq!(parse_sqlite_timestamp(odd), codec::parse_sqlite_timestamp(odd), "{odd}");
        }
    }
}
