-- Indexes a bulk load dropped and has not rebuilt yet (src/store/bulk.rs): a large import
-- into a small base writes the rows first and builds each index once at the end. If the
-- process dies in between, the next start rebuilds what is listed here.
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY NOT NULL,
    sql  TEXT NOT NULL
);
