//! The database of a bench run: a SQLite file in the run's folder, or a fresh PostgreSQL
//! database beside `TIDINGS_BENCH_POSTGRES_URL`'s.

use std::path::Path;

/// `sqlite://DIR/bench.db`, or with `TIDINGS_BENCH_POSTGRES_URL` set the URL of a fresh
/// PostgreSQL database `name` on that server (dropped first if a killed run left it).
pub async fn database(dir: &Path, name: &str) -> String {
    let Ok(base) = std::env::var("TIDINGS_BENCH_POSTGRES_URL") else {
        return format!("sqlite://{}", dir.join("bench.db").display());
    };
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect to TIDINGS_BENCH_POSTGRES_URL");
    for statement in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await.unwrap();
    }
    let (server, _) = base.rsplit_once('/').expect("a URL naming a database");
    format!("{server}/{name}")
}
