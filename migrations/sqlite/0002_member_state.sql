-- Member state (issue 3) and the tables the engine writes. Timestamps are TEXT in the one
-- fixed-width UTC format of src/store/codec.rs, so text order is time order.

-- How a member row is kept (src/state/fold.rs): the row is the last import ("baseline")
-- with every later state-changing event folded in. `baseline` holds that import as JSON
-- once an event has changed the row (NULL: the row is still exactly the import), and
-- `*_as_of` say when each group of fields was last imported: events older than that are
-- already in the import and do not change the group again.
ALTER TABLE members ADD COLUMN baseline TEXT;
ALTER TABLE members ADD COLUMN profile_as_of TEXT;
ALTER TABLE members ADD COLUMN orders_as_of TEXT;
ALTER TABLE members ADD COLUMN points_as_of TEXT;
ALTER TABLE members ADD COLUMN tier_as_of TEXT;
ALTER TABLE members ADD COLUMN updated_at TEXT;

-- Audiences and date triggers (last order, birthday month-day, points expiry, lifecycle
-- and tags are indexed in 0001).
CREATE INDEX members_by_tier ON members (tier);
CREATE INDEX members_by_joined ON members (joined_at);
CREATE INDEX members_by_rfm_segment ON members (rfm_segment);

-- Everything that happened to a member. `id` is the shop's idempotency key: a repeated id
-- is ignored (INSERT ... ON CONFLICT DO NOTHING). No foreign key: an event may name a
-- member the shop has not sent yet; the store creates that member in the same transaction.
CREATE TABLE events (
    id          TEXT PRIMARY KEY NOT NULL,
    member_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    properties  TEXT NOT NULL DEFAULT '{}',   -- JSON object
    received_at TEXT NOT NULL
);
CREATE INDEX events_by_member ON events (member_id, occurred_at);
CREATE INDEX events_by_name ON events (name, occurred_at);

-- A member's way through one version of a journey: a waiting member costs this row only.
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    member_id        TEXT NOT NULL,
    journey_id       TEXT NOT NULL,
    journey_version  TEXT NOT NULL,
    step             TEXT,                 -- the current step id; NULL once finished
    status           TEXT NOT NULL,        -- active | waiting | done | exited
    entered_at       TEXT NOT NULL,
    due_at           TEXT,                 -- when an active or waiting run is next looked at
    waiting_for      TEXT,                 -- the event name of a `wait: { for_event }`
    trigger_event_id TEXT,
    finished_at      TEXT,
    exit_reason      TEXT,                 -- exit_when, reentry, audience, ...
    converted_at     TEXT                  -- the journey goal, once per run
);
CREATE INDEX runs_due ON runs (due_at) WHERE status IN ('active', 'waiting');
CREATE INDEX runs_by_member ON runs (member_id, journey_id, entered_at);
CREATE INDEX runs_waiting_for ON runs (waiting_for, member_id) WHERE waiting_for IS NOT NULL;

-- One record per (run, step, occurrence): sends, and every skip with its reason.
CREATE TABLE deliveries (
    id                  INTEGER PRIMARY KEY,
    run_id              INTEGER NOT NULL REFERENCES runs (id),
    step                TEXT NOT NULL,
    occurrence          INTEGER NOT NULL DEFAULT 0,
    member_id           TEXT NOT NULL,
    journey_id          TEXT NOT NULL,
    channel             TEXT NOT NULL,
    template            TEXT,
    variant             TEXT,
    status              TEXT NOT NULL,     -- pending | sent | delivered | failed | skipped
    reason              TEXT,              -- consent, frequency_cap, quiet_hours, holdout, ...
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT,
    provider_message_id TEXT,
    created_at          TEXT NOT NULL,
    sent_at             TEXT,
    UNIQUE (run_id, step, occurrence)
);
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_member ON deliveries (member_id, channel, created_at);

-- Addresses a permanent failure or an unsubscribe took off a channel.
CREATE TABLE suppressions (
    channel    TEXT NOT NULL,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (channel, address)
) WITHOUT ROWID;

-- Sticky A/B assignments: a member keeps its variant.
CREATE TABLE assignments (
    member_id   TEXT NOT NULL,
    journey_id  TEXT NOT NULL,
    step        TEXT NOT NULL,
    variant     TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (member_id, journey_id, step)
) WITHOUT ROWID;
