//! Helpers the integration tests share: migrated databases for both engines, and fast
//! bulk loading of members.

use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tidings::member::Member;
use tidings::state::Field;
use tidings::store::codec::sqlite_timestamp;

/// The PostgreSQL server the tests use; unset, PostgreSQL tests are skipped.
pub const POSTGRES_URL_VAR: &str = "TIDINGS_TEST_POSTGRES_URL";

/// A migrated SQLite database in a fresh temporary directory, in WAL mode. Keep the
/// directory alive as long as the pool.
pub async fn sqlite_pool() -> (SqlitePool, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("tidings.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool =
        SqlitePoolOptions::new().max_connections(4).connect_with(options).await.expect("open the SQLite test database");
    tidings::store::SQLITE_MIGRATIONS.run(&pool).await.expect("migrate the SQLite test database");
    (pool, dir)
}

/// A pool on a fresh, migrated schema of the PostgreSQL named by
/// `TIDINGS_TEST_POSTGRES_URL`, so tests run in parallel without seeing each other.
/// None (with a note on stderr) when the variable is unset; panics when it is set but the
/// server cannot be used, so CI fails instead of skipping.
pub async fn postgres_pool(test_name: &str) -> Option<PgPool> {
    let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("skipping PostgreSQL: {POSTGRES_URL_VAR} is not set");
        return None;
    };
    let base =
        PgConnectOptions::from_str(&url).unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a PostgreSQL URL: {e}"));
    let schema = schema_name(test_name);

    let mut admin = PgConnection::connect_with(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL ({POSTGRES_URL_VAR}): {e}"));
    drop_stale_schemas(&mut admin).await;
    // The name is ours (`t_`, [a-z0-9_]), never input.
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    admin.close().await.ok();

    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(base.options([("search_path", schema.as_str())]))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL ({POSTGRES_URL_VAR}): {e}"));
    tidings::store::POSTGRES_MIGRATIONS
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("cannot migrate schema {schema}: {e}"));
    Some(pool)
}

/// `t_<test name>_<unix seconds>_<random>`: unique, and old ones can be recognised.
fn schema_name(test_name: &str) -> String {
    let name: String = test_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(30)
        .collect();
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("t_{name}_{seconds}_{:08x}", hasher.finish() as u32)
}

/// Test schemas live until a later run removes those older than an hour.
async fn drop_stale_schemas(admin: &mut PgConnection) {
    const STALE_AFTER_SECONDS: u64 = 3_600;
    let names: Vec<String> = sqlx::query_scalar(r"SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\_%'")
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for name in names {
        let mut parts = name.rsplit('_');
        let (Some(random), Some(seconds)) = (parts.next(), parts.next()) else { continue };
        let Ok(seconds) = seconds.parse::<u64>() else { continue };
        let ours = random.len() == 8 && random.bytes().all(|b| b.is_ascii_hexdigit());
        if ours && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && seconds + STALE_AFTER_SECONDS < now {
            // Another test process may be dropping it too.
            let _ =
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).execute(&mut *admin).await;
        }
    }
}

/// The columns the helpers below write, in binding order: `id`, every field a shop sets
/// but `tags` (a table of its own), then the derived fields.
fn member_columns() -> Vec<&'static str> {
    let fields = Field::ALL.iter().filter(|f| **f != Field::Tags).map(|f| f.name());
    let derived = ["lifecycle", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "clv"];
    std::iter::once("id").chain(fields).chain(derived).collect()
}

/// Rows per multi-row INSERT: 14,500 parameters, within SQLite's 32,766 and PostgreSQL's
/// 65,535. SQLite gets anonymous `?` placeholders: with numbered ones (`?N`), sqlx's binding
/// looks up each parameter's name in a list, and a 500-row INSERT took 300 ms instead of 5.
const ROWS_PER_INSERT: usize = 500;

fn insert_sql(table_and_columns: &str, columns: usize, rows: usize, placeholder: fn(usize) -> String) -> String {
    let mut sql = format!("INSERT INTO {table_and_columns} VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholder(row * columns + column + 1));
        }
        sql.push(')');
    }
    sql
}

fn members_table() -> String {
    format!("members ({})", member_columns().join(", "))
}

fn tag_rows(members: &[Member]) -> Vec<(&str, &str)> {
    members.iter().flat_map(|m| m.tags.iter().map(move |t| (m.id.as_str(), t.as_str()))).collect()
}

/// Inserts members and their tags into SQLite in one transaction, with multi-row INSERTs.
pub async fn insert_members_sqlite(pool: &SqlitePool, members: &[Member]) {
    let mut tx = pool.begin().await.expect("begin");
    for chunk in members.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(&members_table(), member_columns().len(), chunk.len(), |_| "?".to_string());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for m in chunk {
            let timestamp = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(sqlite_timestamp);
            query = query
                .bind(m.id.clone())
                .bind(m.email.clone())
                .bind(m.phone.clone())
                .bind(serde_json::to_string(&m.push_tokens).unwrap())
                .bind(m.first_name.clone())
                .bind(m.last_name.clone())
                .bind(m.locale.clone())
                .bind(m.timezone.clone())
                .bind(m.birthday.map(|b| b.to_string()))
                .bind(m.tier.clone())
                .bind(m.points)
                .bind(m.points_expiring)
                .bind(timestamp(m.points_expire_at))
                .bind(m.total_spend)
                .bind(m.currency.clone())
                .bind(m.order_count)
                .bind(timestamp(m.first_order_at))
                .bind(timestamp(m.last_order_at))
                .bind(timestamp(m.joined_at))
                .bind(m.email_consent)
                .bind(m.sms_consent)
                .bind(m.push_consent)
                .bind(serde_json::to_string(&m.attributes).unwrap())
                .bind(m.lifecycle.clone())
                .bind(m.rfm_r)
                .bind(m.rfm_f)
                .bind(m.rfm_m)
                .bind(m.rfm_segment.clone())
                .bind(m.clv);
        }
        query.execute(&mut *tx).await.expect("insert members into SQLite");
    }
    for chunk in tag_rows(members).chunks(ROWS_PER_INSERT) {
        let sql = insert_sql("member_tags (member_id, tag)", 2, chunk.len(), |_| "?".to_string());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, tag) in chunk {
            query = query.bind(id.to_string()).bind(tag.to_string());
        }
        query.execute(&mut *tx).await.expect("insert member tags into SQLite");
    }
    tx.commit().await.expect("commit");
}

/// Inserts members and their tags into PostgreSQL in one transaction, with multi-row INSERTs.
pub async fn insert_members_postgres(pool: &PgPool, members: &[Member]) {
    let mut tx = pool.begin().await.expect("begin");
    for chunk in members.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(&members_table(), member_columns().len(), chunk.len(), |n| format!("${n}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for m in chunk {
            query = query
                .bind(m.id.clone())
                .bind(m.email.clone())
                .bind(m.phone.clone())
                .bind(serde_json::json!(m.push_tokens))
                .bind(m.first_name.clone())
                .bind(m.last_name.clone())
                .bind(m.locale.clone())
                .bind(m.timezone.clone())
                .bind(m.birthday.map(|b| b.to_string()))
                .bind(m.tier.clone())
                .bind(m.points)
                .bind(m.points_expiring)
                .bind(m.points_expire_at)
                .bind(m.total_spend)
                .bind(m.currency.clone())
                .bind(m.order_count)
                .bind(m.first_order_at)
                .bind(m.last_order_at)
                .bind(m.joined_at)
                .bind(m.email_consent)
                .bind(m.sms_consent)
                .bind(m.push_consent)
                .bind(serde_json::Value::Object(m.attributes.clone()))
                .bind(m.lifecycle.clone())
                .bind(m.rfm_r)
                .bind(m.rfm_f)
                .bind(m.rfm_m)
                .bind(m.rfm_segment.clone())
                .bind(m.clv);
        }
        query.execute(&mut *tx).await.expect("insert members into PostgreSQL");
    }
    for chunk in tag_rows(members).chunks(ROWS_PER_INSERT) {
        let sql = insert_sql("member_tags (member_id, tag)", 2, chunk.len(), |n| format!("${n}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, tag) in chunk {
            query = query.bind(id.to_string()).bind(tag.to_string());
        }
        query.execute(&mut *tx).await.expect("insert member tags into PostgreSQL");
    }
    tx.commit().await.expect("commit");
}
