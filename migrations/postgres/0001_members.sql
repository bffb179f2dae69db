-- Members (DESIGN §1). Same columns and meaning as migrations/sqlite; native types here.
-- Birthdays are TEXT (`YYYY-MM-DD` or `--MM-DD`) because the year is optional.
CREATE TABLE members (
    id                TEXT PRIMARY KEY,
    email             TEXT,
    phone             TEXT,
    push_tokens       JSONB NOT NULL DEFAULT '[]',
    first_name        TEXT,
    last_name         TEXT,
    locale            TEXT,
    timezone          TEXT,
    birthday          TEXT,
    tier              TEXT,
    points            BIGINT NOT NULL DEFAULT 0,
    points_expiring   BIGINT NOT NULL DEFAULT 0,
    points_expire_at  TIMESTAMPTZ,
    total_spend       BIGINT NOT NULL DEFAULT 0,
    currency          TEXT,
    order_count       BIGINT NOT NULL DEFAULT 0,
    first_order_at    TIMESTAMPTZ,
    last_order_at     TIMESTAMPTZ,
    joined_at         TIMESTAMPTZ,
    email_consent     BOOLEAN NOT NULL DEFAULT FALSE,
    sms_consent       BOOLEAN NOT NULL DEFAULT FALSE,
    push_consent      BOOLEAN NOT NULL DEFAULT FALSE,
    attributes        JSONB NOT NULL DEFAULT '{}',
    lifecycle         TEXT,
    rfm_r             BIGINT,
    rfm_f             BIGINT,
    rfm_m             BIGINT,
    rfm_segment       TEXT,
    clv               BIGINT
);

CREATE TABLE member_tags (
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    PRIMARY KEY (member_id, tag)
);

CREATE INDEX member_tags_by_tag ON member_tags (tag, member_id);
CREATE INDEX members_by_last_order ON members (last_order_at);
CREATE INDEX members_by_lifecycle ON members (lifecycle);
CREATE INDEX members_by_points_expiry ON members (points_expire_at);
CREATE INDEX members_by_birthday_md ON members (right(birthday, 5));
