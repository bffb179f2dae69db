-- Same table as migrations/sqlite/0003_deferred_indexes.sql (bulk loads defer indexes on
-- SQLite only; the table keeps the two schemas alike).
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY,
    sql  TEXT NOT NULL
);

-- Partial member indexes, as on SQLite (see migrations/sqlite/0003_deferred_indexes.sql).
DROP INDEX members_by_points_expiry;
CREATE INDEX members_by_points_expiry ON members (points_expire_at) WHERE points_expire_at IS NOT NULL;
DROP INDEX members_by_rfm_segment;
CREATE INDEX members_by_rfm_segment ON members (rfm_segment) WHERE rfm_segment IS NOT NULL;
