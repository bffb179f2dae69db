-- Alerts (issue 18): rules are evaluated once a minute (one worker claims the minute);
-- each rule's state, every transition with the numbers that caused it, and one
-- notification row per transition and target. Timestamps are TIMESTAMPTZ.

-- When a delivery's last attempt was written (sent, failed, or to be retried): the failure
-- and bounce rates count attempts in their window by it.
ALTER TABLE deliveries ADD COLUMN attempted_at TIMESTAMPTZ;
-- Covering for the counts by window, journey, status and channel (a week of a large shop's
-- deliveries is counted from the index alone).
CREATE INDEX deliveries_by_attempt ON deliveries (attempted_at, journey_id, status, channel)
    WHERE attempted_at IS NOT NULL;
-- conversion_drop counts a journey's entries and goals in a window.
CREATE INDEX runs_by_journey_entered ON runs (journey_id, entered_at);
CREATE INDEX runs_by_journey_converted ON runs (journey_id, converted_at) WHERE converted_at IS NOT NULL;

-- One row per evaluated minute: the worker whose insert wins evaluates it.
CREATE TABLE alert_evaluations (
    minute       TIMESTAMPTZ PRIMARY KEY NOT NULL,
    worker       TEXT NOT NULL,
    evaluated_at TIMESTAMPTZ NOT NULL
);

-- Each rule's alert as of its last evaluation, with the numbers it read.
CREATE TABLE alert_states (
    rule             TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,     -- ok | pending | firing | resolved
    since            TIMESTAMPTZ NOT NULL,
    clear_since      TIMESTAMPTZ,
    value            DOUBLE PRECISION,
    threshold        DOUBLE PRECISION NOT NULL,
    count            BIGINT NOT NULL,
    sample           BIGINT NOT NULL,
    baseline_count   BIGINT NOT NULL,
    baseline_sample  BIGINT NOT NULL,
    window_seconds   BIGINT NOT NULL,
    baseline_seconds BIGINT NOT NULL,
    journey          TEXT,
    step             TEXT,
    channel          TEXT,
    variant          TEXT,
    evaluated_at     TIMESTAMPTZ NOT NULL
);

-- Every change of status, with the numbers that caused it.
CREATE TABLE alert_transitions (
    id               BIGSERIAL PRIMARY KEY,
    rule             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    from_status      TEXT NOT NULL,
    status           TEXT NOT NULL,
    at               TIMESTAMPTZ NOT NULL,
    value            DOUBLE PRECISION,
    threshold        DOUBLE PRECISION NOT NULL,
    count            BIGINT NOT NULL,
    sample           BIGINT NOT NULL,
    baseline_count   BIGINT NOT NULL,
    baseline_sample  BIGINT NOT NULL,
    window_seconds   BIGINT NOT NULL,
    baseline_seconds BIGINT NOT NULL,
    journey          TEXT,
    step             TEXT,
    channel          TEXT,
    variant          TEXT,
    UNIQUE (rule, at)
);
CREATE INDEX alert_transitions_by_time ON alert_transitions (at);

-- One notification per transition and target (`webhook`, `email:ADDRESS`), written with
-- the transition and delivered (retried with backoff) apart from the engine's tick.
CREATE TABLE alert_notifications (
    id              BIGSERIAL PRIMARY KEY,
    transition_id   BIGINT NOT NULL REFERENCES alert_transitions (id),
    target          TEXT NOT NULL,
    status          TEXT NOT NULL,      -- pending | sent | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    UNIQUE (transition_id, target)
);
CREATE INDEX alert_notifications_due ON alert_notifications (next_attempt_at) WHERE status = 'pending';
