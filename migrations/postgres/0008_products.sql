-- Product recommendations (issue 19): the shop's catalogue, the line items of orders, and
-- the two models computed from them (co-purchase neighbours, bestsellers).

-- The catalogue: `tidings import products`, and the shops' product webhooks.
CREATE TABLE products (
    id         TEXT PRIMARY KEY NOT NULL,
    title      TEXT NOT NULL,
    url        TEXT,
    image_url  TEXT,
    price      BIGINT,                  -- minor units of `currency`
    currency   TEXT,
    category   TEXT,
    tags       JSONB NOT NULL DEFAULT '[]',
    in_stock   BOOLEAN NOT NULL DEFAULT TRUE,
    published  BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at TIMESTAMPTZ NOT NULL
);

-- One row per line item of an `order.placed`, written with the event (so a repeated event
-- writes nothing). A product id the catalogue does not know is kept: the joins with
-- `products` leave it out of every model.
CREATE TABLE order_lines (
    event_id   TEXT NOT NULL,
    line       INTEGER NOT NULL,
    member_id  TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   BIGINT NOT NULL,
    price      BIGINT,
    ordered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (event_id, line)
);
CREATE INDEX order_lines_by_member ON order_lines (member_id, product_id, ordered_at);
CREATE INDEX order_lines_by_time ON order_lines (ordered_at);

-- "Members who bought X also bought Y": for each product its best neighbours, scored by
-- cosine similarity of their buyer sets (stored squared: buyers(X and Y)^2 / (buyers(X) *
-- buyers(Y))), rank 1 first. Rebuilt whole by the daily refresh.
CREATE TABLE product_pairs (
    product_id TEXT NOT NULL,
    rank       INTEGER NOT NULL,
    other_id   TEXT NOT NULL,
    together   BIGINT NOT NULL,
    score      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (product_id, rank)
);

-- Bestsellers by distinct buyers: `scope` '' is the whole catalogue, else a category.
CREATE TABLE product_bestsellers (
    scope      TEXT NOT NULL,
    rank       INTEGER NOT NULL,
    product_id TEXT NOT NULL,
    buyers     BIGINT NOT NULL,
    PRIMARY KEY (scope, rank)
);

-- Products a sent message showed a member (`recommend`), so the next ones show others.
CREATE TABLE shown_products (
    member_id  TEXT NOT NULL,
    product_id TEXT NOT NULL,
    shown_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (member_id, product_id)
);
