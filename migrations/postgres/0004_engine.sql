-- The engine (issue 4): idempotent enrollment, leases for claimed work, the event inbox,
-- the timeline, journey versions and trigger firings. See migrations/sqlite/0004.

ALTER TABLE runs ADD COLUMN trigger_key TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN visits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN claimed_until TIMESTAMPTZ;
ALTER TABLE runs ADD COLUMN claimed_by TEXT;      -- the claim's token: only its holder writes the decision
CREATE UNIQUE INDEX runs_once_per_trigger ON runs (journey_id, member_id, trigger_key);
CREATE INDEX runs_open_by_member ON runs (member_id) WHERE status IN ('active', 'waiting');

ALTER TABLE deliveries ADD COLUMN journey_version TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN vars JSONB NOT NULL DEFAULT '{}';
ALTER TABLE deliveries ADD COLUMN address TEXT;
ALTER TABLE deliveries ADD COLUMN subject TEXT;
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_until TIMESTAMPTZ;
CREATE INDEX deliveries_sending ON deliveries (claimed_until) WHERE status = 'sending';
CREATE INDEX deliveries_by_journey ON deliveries (journey_id, step, variant);

CREATE TABLE inbox (
    event_id    TEXT PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE journal (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    member_id  TEXT NOT NULL,
    journey_id TEXT NOT NULL,
    run_id     BIGINT,
    step       TEXT,
    action     TEXT NOT NULL,
    channel    TEXT,
    template   TEXT,
    variant    TEXT,
    reason     TEXT
);
CREATE INDEX journal_by_member ON journal (member_id, at);
CREATE INDEX journal_by_journey ON journal (journey_id, step, action);

CREATE TABLE journey_versions (
    journey_id TEXT NOT NULL,
    version    TEXT NOT NULL,
    path       TEXT NOT NULL,
    source     TEXT NOT NULL,
    loaded_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (journey_id, version)
);

CREATE TABLE firings (
    journey_id    TEXT NOT NULL,
    fire_key      TEXT NOT NULL,
    fire_at       TIMESTAMPTZ NOT NULL,
    status        TEXT NOT NULL,
    cursor        TEXT,
    enrolled      BIGINT NOT NULL DEFAULT 0,
    claimed_until TIMESTAMPTZ,
    PRIMARY KEY (journey_id, fire_key)
);

-- Work done by one worker at a time across replicas (the event inbox, the scheduler):
-- the holder renews its lease; a crashed holder's lease runs out and another takes over.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);
