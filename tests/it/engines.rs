//! Running one test body on both engines.

/// `on_both_engines! { async fn name(store) { ... } }` makes a module `name` with two
/// tests, `sqlite` (a temporary file) and `postgres` (a fresh schema of
/// `TIDINGS_TEST_POSTGRES_URL`; skipped with a note when unset).
macro_rules! on_both_engines {
    ($(
        $(#[doc = $doc:literal])*
        async fn $name:ident($store:ident) $body:block
    )*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($store: tidings::store::Store) $body

            #[tokio::test]
            async fn sqlite() {
                let (pool, _dir) = crate::support::sqlite_pool().await;
                body(tidings::store::Store::Sqlite(pool)).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(pool) = crate::support::postgres_pool(stringify!($name)).await {
                    body(tidings::store::Store::Postgres(pool)).await;
                }
            }
        }
    )*};
}

pub(crate) use on_both_engines;
