-- Same table as migrations/sqlite/0003_deferred_indexes.sql (bulk loads defer indexes on
-- SQLite only; the table keeps the two schemas alike).
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY,
    sql  TEXT NOT NULL
);
