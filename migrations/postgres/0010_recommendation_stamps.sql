-- What the engine keeps in memory for recommendations (issue 19) is current while these
-- stamps are, each bumped in the transaction that makes its change:
--   models:    every rebuild of product_pairs and product_bestsellers;
--   products:  every upsert of products (import, webhooks); the rows it writes carry the
--              new value in products.stamp, so a worker reloads only the rows newer than
--              its copy;
--   catalogue: every delete from products (a worker reloads the whole catalogue).
-- A worker reads the three with one query per batch, so a rebuild or a stock change on
-- any worker is seen by every worker's next batch.
CREATE TABLE recommendation_stamps (
    name  TEXT PRIMARY KEY NOT NULL,
    stamp BIGINT NOT NULL
);
INSERT INTO recommendation_stamps (name, stamp) VALUES ('models', 0), ('products', 0), ('catalogue', 0);

ALTER TABLE products ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0;
CREATE INDEX products_by_stamp ON products (stamp);
