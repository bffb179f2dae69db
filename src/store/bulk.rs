//! Bulk loads: a large import into a small base drops the secondary indexes of `members`
//! and `member_tags`, writes the rows, and builds each index once at the end — building an
//! index sorts once, where keeping it up to date costs a random B-tree insert per row and
//! index (measured on SQLite: about 2.5× faster for 100,000 members). The definitions of
//! the dropped indexes are kept in `deferred_indexes` in the same transaction that drops
//! them, and [`Store::open`] rebuilds whatever a crash left there.
//!
//! Both engines do it. What stays: every index that backs a primary key or a unique
//! constraint (the upserts' `ON CONFLICT` needs them, and so does the foreign key from
//! `member_tags`), and `members_by_rfm_segment` (see below). The definitions are the
//! engine's own: `sqlite_master.sql` on SQLite, `pg_indexes.indexdef` on PostgreSQL.
//!
//! Audiences still run while the indexes are away, only without them.

use super::{Arg, ReadRow, Store, StoreError, Tx};
use crate::condition::Dialect;

/// The indexes a bulk load drops, as (name, definition). `members_by_rfm_segment` holds
/// only members with a segment (migration 0003), and an import never writes one (the
/// base-wide recompute does): the rows of a bulk load add nothing to it, so it stays, and
/// its scan of the table at the end is saved.
const SQLITE_DEFERRABLE: &str = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
     AND tbl_name IN ('members', 'member_tags') AND name <> 'members_by_rfm_segment' ORDER BY name";

/// The same on PostgreSQL, in the schema the store works in (`current_schema()`: the
/// first of the search path, where the migrations created the tables). Unique indexes
/// (the primary keys) stay: `CREATE UNIQUE INDEX` is left out by its definition.
const POSTGRES_DEFERRABLE: &str = "SELECT indexname::text AS name, indexdef AS sql FROM pg_indexes \
     WHERE schemaname = current_schema() AND tablename IN ('members', 'member_tags') \
     AND indexname <> 'members_by_rfm_segment' AND indexdef NOT LIKE 'CREATE UNIQUE INDEX %' ORDER BY indexname";

impl Store {
    /// Drops the secondary indexes of `members` and `member_tags`, keeping their
    /// definitions in `deferred_indexes`. Returns whether it dropped any.
    pub async fn start_bulk_load(&self) -> Result<bool, StoreError> {
        if let Store::Memory(_) = self {
            return Ok(false);
        }
        let mut tx = self.begin_bulk_change().await?;
        let mut sql = tx.sql();
        sql.push(match tx.dialect() {
            Dialect::Sqlite => SQLITE_DEFERRABLE,
            Dialect::Postgres => POSTGRES_DEFERRABLE,
        });
        let indexes = tx.fetch(sql, read_index).await?;
        for (name, definition) in &indexes {
            let mut sql = tx.sql();
            sql.push("INSERT INTO deferred_indexes (name, sql) VALUES (")
                .bind(Arg::Text(Some(name.clone())))
                .push(", ")
                .bind(Arg::Text(Some(definition.clone())))
                .push(") ON CONFLICT (name) DO NOTHING");
            tx.execute(sql).await?;
            // The name comes from the catalogue: one of our migrations' index names.
            let mut sql = tx.sql();
            sql.push(&format!("DROP INDEX IF EXISTS \"{}\"", name.replace('"', "\"\"")));
            tx.execute(sql).await?;
        }
        tx.commit().await?;
        Ok(!indexes.is_empty())
    }

    /// Builds the indexes a bulk load dropped (also after a crash), then forgets them.
    pub async fn finish_bulk_load(&self) -> Result<(), StoreError> {
        if let Store::Memory(_) = self {
            return Ok(());
        }
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS n FROM deferred_indexes");
        if self.fetch(sql, |r| Ok(r.int("n")?.unwrap_or(0))).await?.pop().unwrap_or(0) == 0 {
            return Ok(());
        }
        // A second finisher waits here, then finds nothing left.
        let mut tx = self.begin_bulk_change().await?;
        let mut sql = tx.sql();
        sql.push("SELECT name, sql FROM deferred_indexes ORDER BY name");
        let indexes = tx.fetch(sql, read_index).await?;
        for (_, definition) in &indexes {
            // Our own `CREATE INDEX` statements, as the catalogue printed them.
            let definition = definition.replacen("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1);
            let mut sql = tx.sql();
            sql.push(&definition);
            tx.execute(sql).await?;
        }
        if !indexes.is_empty() {
            let mut sql = tx.sql();
            sql.push("DELETE FROM deferred_indexes");
            tx.execute(sql).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A write transaction in which a bulk load's start or finish runs alone: another
    /// process may be opening the store, which finishes what it finds. SQLite's writer
    /// lock does this by itself; PostgreSQL locks `deferred_indexes` for the transaction.
    async fn begin_bulk_change(&self) -> Result<Tx, StoreError> {
        let mut tx = self.begin_write().await?;
        if tx.dialect() == Dialect::Postgres {
            let mut sql = tx.sql();
            sql.push("LOCK TABLE deferred_indexes IN SHARE ROW EXCLUSIVE MODE");
            tx.execute(sql).await?;
        }
        Ok(tx)
    }
}

/// An index's (name, definition), from the catalogue or from `deferred_indexes`.
fn read_index(row: &dyn ReadRow) -> Result<(String, String), StoreError> {
    Ok((row.text("name")?.unwrap_or_default(), row.text("sql")?.unwrap_or_default()))
}
