-- Indexes a bulk load dropped and has not rebuilt yet (src/store/bulk.rs): a large import
-- into a small base writes the rows first and builds each index once at the end. If the
-- process dies in between, the next start rebuilds what is listed here.
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY NOT NULL,
    sql  TEXT NOT NULL
);

-- Two member indexes hold only the members that have a value: most members have no
-- points expiring, and nobody has an RFM segment until the first recompute. Audiences
-- compare these columns with a value (`rfm_segment == "at_risk"`, an expiry window), which
-- implies NOT NULL, so they still use the indexes; an import builds and a recompute
-- updates much less.
DROP INDEX members_by_points_expiry;
CREATE INDEX members_by_points_expiry ON members (points_expire_at) WHERE points_expire_at IS NOT NULL;
DROP INDEX members_by_rfm_segment;
CREATE INDEX members_by_rfm_segment ON members (rfm_segment) WHERE rfm_segment IS NOT NULL;
