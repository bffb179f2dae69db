-- Members (DESIGN §1). Timestamps are TEXT in one fixed-width UTC format
-- (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, see src/store/codec.rs) so that text order is time order
-- and audience conditions compare them on an index. Birthdays are `YYYY-MM-DD` or `--MM-DD`.
CREATE TABLE members (
    id                TEXT PRIMARY KEY NOT NULL,
    email             TEXT,
    phone             TEXT,
    push_tokens       TEXT NOT NULL DEFAULT '[]',   -- JSON array
    first_name        TEXT,
    last_name         TEXT,
    locale            TEXT,
    timezone          TEXT,
    birthday          TEXT,
    tier              TEXT,
    points            INTEGER NOT NULL DEFAULT 0,
    points_expiring   INTEGER NOT NULL DEFAULT 0,
    points_expire_at  TEXT,
    total_spend       INTEGER NOT NULL DEFAULT 0,
    currency          TEXT,
    order_count       INTEGER NOT NULL DEFAULT 0,
    first_order_at    TEXT,
    last_order_at     TEXT,
    joined_at         TEXT,
    email_consent     INTEGER NOT NULL DEFAULT 0 CHECK (email_consent IN (0, 1)),
    sms_consent       INTEGER NOT NULL DEFAULT 0 CHECK (sms_consent IN (0, 1)),
    push_consent      INTEGER NOT NULL DEFAULT 0 CHECK (push_consent IN (0, 1)),
    attributes        TEXT NOT NULL DEFAULT '{}',   -- JSON object
    -- derived by the engine
    lifecycle         TEXT,
    rfm_r             INTEGER,
    rfm_f             INTEGER,
    rfm_m             INTEGER,
    rfm_segment       TEXT,
    clv               INTEGER
);

-- Tags live in their own table so `has_tag("x")` is an index lookup on both engines.
CREATE TABLE member_tags (
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    PRIMARY KEY (member_id, tag)
) WITHOUT ROWID;

CREATE INDEX member_tags_by_tag ON member_tags (tag, member_id);
CREATE INDEX members_by_last_order ON members (last_order_at);
CREATE INDEX members_by_lifecycle ON members (lifecycle);
CREATE INDEX members_by_points_expiry ON members (points_expire_at);
CREATE INDEX members_by_birthday_md ON members (substr(birthday, -5));
