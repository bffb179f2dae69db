-- Provider limits shared by every worker (issue 20): one row per provider (a channel's
-- configured sender). Times are milliseconds since the epoch, the same on both engines.
--
-- The token bucket (`tokens` in thousandths of a message, `refilled_ms`) is taken with one
-- statement per take (`store::provider_limits`), on the database's clock, so N workers
-- send at the provider's rate, not N times it. `granted` is where that statement leaves
-- what it took (an UPDATE's RETURNING sees the new row).
--
-- The breaker (`breaker::Health`): provider failures in a row, the pause (by the engine's
-- clock), the breaker's last pause length, whether the next send is a probe (and until
-- when the probe that is out holds the provider), and why.
CREATE TABLE provider_limits (
    provider        TEXT PRIMARY KEY NOT NULL,
    tokens          BIGINT NOT NULL DEFAULT 0,
    refilled_ms     BIGINT NOT NULL DEFAULT 0,
    granted         BIGINT NOT NULL DEFAULT 0,
    failures        BIGINT NOT NULL DEFAULT 0,
    paused_until_ms BIGINT,
    pause_ms        BIGINT NOT NULL DEFAULT 0,
    probing         BIGINT NOT NULL DEFAULT 0,
    probe_until_ms  BIGINT,
    reason          TEXT
);
