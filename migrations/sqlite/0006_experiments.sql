-- Reports and experiments (issue 7). Timestamps are codec text (UTC).

-- The event a run reached its goal with: its `total` is the conversion's revenue.
ALTER TABLE runs ADD COLUMN goal_event_id TEXT;

-- The arm each run took at each experiment step (a send with variants or a holdout, or a
-- split), when. `assignments` (0002) keeps a member's arm sticky across runs and journey
-- versions; this table is what reports count.
CREATE TABLE run_arms (
    run_id     INTEGER NOT NULL,
    journey_id TEXT NOT NULL,
    step       TEXT NOT NULL,
    arm        TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX run_arms_by_journey ON run_arms (journey_id, step, arm);

-- Each version's outline for reports (steps, kinds, experiment arms and weights, goal) as
-- JSON, so `tidings report` and the dashboard read the journey from the database.
ALTER TABLE journey_versions ADD COLUMN outline TEXT;
