-- The engine (issue 4): idempotent enrollment, leases for claimed work, the event inbox,
-- the timeline, journey versions and trigger firings. Timestamps are codec text (UTC).

-- A run is created once per trigger occurrence: the trigger event id, the schedule's fire
-- time or the date occurrence. Two replicas firing the same tick insert one run.
ALTER TABLE runs ADD COLUMN trigger_key TEXT NOT NULL DEFAULT '';
-- Steps run so far: keys the delivery of a step visited again in a loop.
ALTER TABLE runs ADD COLUMN visits INTEGER NOT NULL DEFAULT 0;
-- A worker that claimed the run holds it until then (a crashed worker's claim expires).
ALTER TABLE runs ADD COLUMN claimed_until TEXT;
ALTER TABLE runs ADD COLUMN claimed_by TEXT;      -- the claim's token: only its holder writes the decision
CREATE UNIQUE INDEX runs_once_per_trigger ON runs (journey_id, member_id, trigger_key);
CREATE INDEX runs_open_by_member ON runs (member_id) WHERE status IN ('active', 'waiting');

ALTER TABLE deliveries ADD COLUMN journey_version TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN vars TEXT NOT NULL DEFAULT '{}';       -- JSON object
ALTER TABLE deliveries ADD COLUMN address TEXT;
ALTER TABLE deliveries ADD COLUMN subject TEXT;                          -- subject / title / body, once rendered
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_until TEXT;
CREATE INDEX deliveries_sending ON deliveries (claimed_until) WHERE status = 'sending';
CREATE INDEX deliveries_by_journey ON deliveries (journey_id, step, variant);

-- Events the engine has not looked at yet (triggers, exits, waits, goals). Written in the
-- transaction that stores the event, deleted in the one that acts on it.
CREATE TABLE inbox (
    event_id    TEXT PRIMARY KEY NOT NULL,
    received_at TEXT NOT NULL
);

-- The timeline (DESIGN §5): every enter, send, skip (with its reason), wait, exit and goal.
CREATE TABLE journal (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    member_id  TEXT NOT NULL,
    journey_id TEXT NOT NULL,
    run_id     INTEGER,
    step       TEXT,
    action     TEXT NOT NULL,
    channel    TEXT,
    template   TEXT,
    variant    TEXT,
    reason     TEXT
);
CREATE INDEX journal_by_member ON journal (member_id, at);
CREATE INDEX journal_by_journey ON journal (journey_id, step, action);

-- Every version of every journey a run may still be on (a run stays on its version).
CREATE TABLE journey_versions (
    journey_id TEXT NOT NULL,
    version    TEXT NOT NULL,
    path       TEXT NOT NULL,
    source     TEXT NOT NULL,
    loaded_at  TEXT NOT NULL,
    PRIMARY KEY (journey_id, version)
) WITHOUT ROWID;

-- One row per schedule firing or date-trigger scan, claimed once across replicas.
-- `cursor` is the last member id enrolled, so a crashed enrollment resumes.
CREATE TABLE firings (
    journey_id    TEXT NOT NULL,
    fire_key      TEXT NOT NULL,
    fire_at       TEXT NOT NULL,
    status        TEXT NOT NULL,          -- running | done
    cursor        TEXT,
    enrolled      INTEGER NOT NULL DEFAULT 0,
    claimed_until TEXT,
    PRIMARY KEY (journey_id, fire_key)
) WITHOUT ROWID;

-- Work done by one worker at a time across replicas (the event inbox, the scheduler):
-- the holder renews its lease; a crashed holder's lease runs out and another takes over.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);
