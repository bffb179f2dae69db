//! The edge that talks to the database: one interface, SQLite and PostgreSQL.

pub mod codec;

use sqlx::migrate::Migrator;

/// Our schema for SQLite, embedded at compile time (no database needed to build).
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Our schema for PostgreSQL.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connects to `database_url` (`sqlite://…` or `postgres://…`) and applies our migrations.
pub async fn migrate(database_url: &str) -> Result<(), sqlx::Error> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(database_url).await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
    } else {
        let options: sqlx::sqlite::SqliteConnectOptions = database_url.parse()?;
        let options = options
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
    }
    Ok(())
}
