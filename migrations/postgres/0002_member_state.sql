-- Member state (issue 3) and the tables the engine writes. Same tables, columns and
-- meaning as migrations/sqlite/0002_member_state.sql; native types here.

-- The row is the last import ("baseline") with every later state-changing event folded in
-- (src/state/fold.rs); see the SQLite migration for the meaning of these columns.
ALTER TABLE members
    ADD COLUMN baseline      JSONB,
    ADD COLUMN profile_as_of TIMESTAMPTZ,
    ADD COLUMN orders_as_of  TIMESTAMPTZ,
    ADD COLUMN points_as_of  TIMESTAMPTZ,
    ADD COLUMN tier_as_of    TIMESTAMPTZ,
    ADD COLUMN updated_at    TIMESTAMPTZ;

CREATE INDEX members_by_tier ON members (tier);
CREATE INDEX members_by_joined ON members (joined_at);
CREATE INDEX members_by_rfm_segment ON members (rfm_segment);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    member_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    properties  JSONB NOT NULL DEFAULT '{}',
    received_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_by_member ON events (member_id, occurred_at);
CREATE INDEX events_by_name ON events (name, occurred_at);

CREATE TABLE runs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id        TEXT NOT NULL,
    journey_id       TEXT NOT NULL,
    journey_version  TEXT NOT NULL,
    step             TEXT,
    status           TEXT NOT NULL,
    entered_at       TIMESTAMPTZ NOT NULL,
    due_at           TIMESTAMPTZ,
    waiting_for      TEXT,
    trigger_event_id TEXT,
    finished_at      TIMESTAMPTZ,
    exit_reason      TEXT,
    converted_at     TIMESTAMPTZ
);
CREATE INDEX runs_due ON runs (due_at) WHERE status IN ('active', 'waiting');
CREATE INDEX runs_by_member ON runs (member_id, journey_id, entered_at);
CREATE INDEX runs_waiting_for ON runs (waiting_for, member_id) WHERE waiting_for IS NOT NULL;

CREATE TABLE deliveries (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id              BIGINT NOT NULL REFERENCES runs (id),
    step                TEXT NOT NULL,
    occurrence          INTEGER NOT NULL DEFAULT 0,
    member_id           TEXT NOT NULL,
    journey_id          TEXT NOT NULL,
    channel             TEXT NOT NULL,
    template            TEXT,
    variant             TEXT,
    status              TEXT NOT NULL,
    reason              TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ,
    provider_message_id TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    sent_at             TIMESTAMPTZ,
    UNIQUE (run_id, step, occurrence)
);
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_member ON deliveries (member_id, channel, created_at);

CREATE TABLE suppressions (
    channel    TEXT NOT NULL,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, address)
);

CREATE TABLE assignments (
    member_id   TEXT NOT NULL,
    journey_id  TEXT NOT NULL,
    step        TEXT NOT NULL,
    variant     TEXT NOT NULL,
    assigned_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (member_id, journey_id, step)
);
