//! The catalogue, the line items of orders, and the recommendation models (issue 19).
//!
//! - `products`: upserted by `tidings import products` and the shops' product webhooks.
//! - `order_lines`: one row per item of a stored `order.placed`, written in the
//!   transaction that stores the event ([`write_order_lines`]), so a repeated event writes
//!   nothing. Unknown product ids are kept; every model joins with `products`.
//! - `product_pairs` and `product_bestsellers`: rebuilt whole, set-based, by
//!   [`Store::recompute_recommendations`] (daily, claimed once across workers, and after
//!   an import).
//! - [`Store::shelves`]: what a batch of members may be shown — five queries per batch,
//!   whatever its size, then `recommend::shelf` per member.
//! - [`Store::cached_shelves`]: the same with the model and the catalogue kept in a
//!   [`ShelfCache`] while `recommendation_stamps` (migration 0010) says they are current:
//!   one read of the stamps, then the batch's purchases and what it was shown.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Arg, ReadRow, Store, StoreError, Tx, chunks};
use crate::condition::Dialect;
use crate::member::Event;
use crate::recommend::{self, Bought, Catalogue, KEEP, Model, Product, Shelf};
use crate::state::derived::stored_now;

/// Bestsellers kept per scope: more than a shelf shows, since stock changes during the day.
const BESTSELLERS_KEPT: i64 = 2 * KEEP as i64;

/// What storing products did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProductsWritten {
    pub inserted: u64,
    pub updated: u64,
}

/// What a recompute of the models wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModelBuilt {
    /// (product, neighbour) rows.
    pub pairs: u64,
    /// (scope, rank) rows.
    pub bestsellers: u64,
}

const PRODUCT_COLUMNS: &str = "id, title, url, image_url, price, currency, category, tags, in_stock, published";

fn read_product(r: &dyn ReadRow) -> Result<Product, StoreError> {
    let tags = match r.json("tags")? {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    Ok(Product {
        id: r.text("id")?.unwrap_or_default(),
        title: r.text("title")?.unwrap_or_default(),
        url: r.text("url")?,
        image_url: r.text("image_url")?,
        price: r.int("price")?,
        currency: r.text("currency")?,
        category: r.text("category")?,
        tags,
        in_stock: r.boolean("in_stock")?,
        published: r.boolean("published")?,
    })
}

/// The `REAL`/`DOUBLE PRECISION` type of each engine.
fn real(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "REAL",
        Dialect::Postgres => "DOUBLE PRECISION",
    }
}

/// Bumps one stamp of `recommendation_stamps` in `tx` and returns its new value. On
/// PostgreSQL the row stays locked until `tx` ends, so writers of the same stamp commit
/// in stamp order.
async fn bump_stamp(tx: &mut Tx, name: &str) -> Result<i64, StoreError> {
    let mut sql = tx.sql();
    sql.push("UPDATE recommendation_stamps SET stamp = stamp + 1 WHERE name = ")
        .bind(Arg::text(name))
        .push(" RETURNING stamp");
    let stamp = tx.fetch(sql, |r| Ok(r.int("stamp")?.unwrap_or(0))).await?.pop();
    stamp.ok_or_else(|| StoreError::corrupt("recommendation_stamps", format!("no `{name}` row")))
}

/// Stores the line items of the `order.placed` events among `events` (new ones: the
/// caller passes only events it just inserted). Lines were checked with the event.
pub(crate) async fn write_order_lines(tx: &mut Tx, events: &[&Event]) -> Result<(), StoreError> {
    let mut rows: Vec<(&Event, i64, recommend::OrderLine)> = Vec::new();
    for event in events.iter().filter(|e| e.name == "order.placed") {
        let Some(properties) = event.properties.as_object() else { continue };
        // Checked with the event (`state::check_event`); a line that no longer parses is
        // left out rather than failing the batch.
        let lines = recommend::order::lines(properties).unwrap_or_default();
        rows.extend(lines.into_iter().enumerate().map(|(i, line)| (*event, i as i64, line)));
    }
    for chunk in chunks(&rows, 7) {
        let mut sql = tx.sql();
        sql.push(
            "INSERT INTO order_lines (event_id, line, member_id, product_id, quantity, price, ordered_at) VALUES ",
        );
        for (i, (event, index, line)) in chunk.iter().enumerate() {
            sql.values_row(
                i == 0,
                [
                    Arg::text(&event.id),
                    Arg::Int(Some(*index)),
                    Arg::text(&event.member_id),
                    Arg::text(&line.product_id),
                    Arg::Int(Some(line.quantity)),
                    Arg::Int(line.price),
                    Arg::Timestamp(Some(stored_now(event.occurred_at))),
                ],
            );
        }
        sql.push(" ON CONFLICT (event_id, line) DO NOTHING");
        tx.execute(sql).await?;
    }
    Ok(())
}

impl Store {
    /// Inserts or replaces products (checked by `recommend::product::check`); a repeated
    /// id in one call keeps its last row.
    pub async fn upsert_products(
        &self,
        products: &[Product],
        now: DateTime<Utc>,
    ) -> Result<ProductsWritten, StoreError> {
        let mut last: HashMap<&str, &Product> = HashMap::with_capacity(products.len());
        for p in products {
            last.insert(p.id.as_str(), p);
        }
        let mut unique: Vec<&Product> = last.into_values().collect();
        unique.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = ProductsWritten::default();
        let mut tx = self.begin_write().await?;
        // The rows carry the new stamp: caches read what was written after their copy.
        let stamp = bump_stamp(&mut tx, "products").await?;
        for chunk in chunks(&unique, 12) {
            let mut sql = tx.sql();
            sql.push("SELECT id FROM products WHERE ");
            sql.in_list("id", chunk.iter().map(|p| p.id.clone()).collect());
            let existing = tx.fetch(sql, |r| Ok(r.text("id")?.unwrap_or_default())).await?.len() as u64;
            out.updated += existing;
            out.inserted += chunk.len() as u64 - existing;

            let mut sql = tx.sql();
            sql.push(&format!("INSERT INTO products ({PRODUCT_COLUMNS}, updated_at, stamp) VALUES "));
            for (i, p) in chunk.iter().enumerate() {
                let tags = serde_json::to_string(&p.tags).expect("strings serialize");
                sql.values_row(
                    i == 0,
                    [
                        Arg::text(&p.id),
                        Arg::text(&p.title),
                        Arg::Text(p.url.clone()),
                        Arg::Text(p.image_url.clone()),
                        Arg::Int(p.price),
                        Arg::Text(p.currency.clone()),
                        Arg::Text(p.category.clone()),
                        Arg::Json(Some(tags)),
                        Arg::Bool(p.in_stock),
                        Arg::Bool(p.published),
                        Arg::Timestamp(Some(stored_now(now))),
                        Arg::Int(Some(stamp)),
                    ],
                );
            }
            sql.push(
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, url = excluded.url, \
                 image_url = excluded.image_url, price = excluded.price, currency = excluded.currency, \
                 category = excluded.category, tags = excluded.tags, in_stock = excluded.in_stock, \
                 published = excluded.published, updated_at = excluded.updated_at, stamp = excluded.stamp",
            );
            tx.execute(sql).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Removes products from the catalogue (a shop deleted them); their order lines stay.
    pub async fn delete_products(&self, ids: &[String]) -> Result<u64, StoreError> {
        let mut sql = self.sql();
        sql.push("DELETE FROM products WHERE ").in_list("id", ids.to_vec());
        let mut tx = self.begin_write().await?;
        // A cache cannot read a deleted row: it reads the whole catalogue again.
        bump_stamp(&mut tx, "catalogue").await?;
        let n = tx.execute(sql).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Products by id (those the catalogue knows).
    pub async fn products(&self, ids: &[String]) -> Result<HashMap<String, Product>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in chunks(ids, 1) {
            let mut sql = self.sql();
            sql.push(&format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE ")).in_list("id", chunk.to_vec());
            for p in self.fetch(sql, read_product).await? {
                out.insert(p.id.clone(), p);
            }
        }
        Ok(out)
    }

    /// How many order lines a member has (for `tidings member`).
    pub async fn order_line_count(&self, member_id: &str) -> Result<i64, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS n FROM order_lines WHERE member_id = ").bind(Arg::text(member_id));
        Ok(self.fetch(sql, |r| Ok(r.int("n")?.unwrap_or(0))).await?.pop().unwrap_or(0))
    }

    /// Rebuilds the co-purchase neighbours and the bestsellers from the orders of the last
    /// `settings.window`, in one transaction, set-based: readers see the old model or the
    /// new one, never half of each.
    pub async fn recompute_recommendations(
        &self,
        now: DateTime<Utc>,
        settings: &recommend::Settings,
    ) -> Result<ModelBuilt, StoreError> {
        let since = stored_now(now) - settings.window.to_chrono();
        let mut tx = self.begin_write().await?;
        // Every worker's cached model is stale from this commit on.
        bump_stamp(&mut tx, "models").await?;
        let mut out = ModelBuilt::default();
        let mut sql = tx.sql();
        sql.push("DELETE FROM product_pairs");
        tx.execute(sql).await?;
        let mut sql = tx.sql();
        let real = real(sql.dialect());
        // The member × product set of the window, known products only; each pair of
        // products one member bought counts once for that member. The score is the
        // squared cosine of the two buyer sets (no square root in SQLite's core).
        sql.push(
            "INSERT INTO product_pairs (product_id, rank, other_id, together, score) \
             WITH bought AS ( \
                 SELECT DISTINCT l.member_id, l.product_id \
                 FROM order_lines l JOIN products p ON p.id = l.product_id \
                 WHERE l.ordered_at >= ",
        )
        .bind(Arg::Timestamp(Some(since)))
        .push(&format!(
            "), buyers AS ( \
                 SELECT product_id, COUNT(*) AS n FROM bought GROUP BY product_id \
             ), together AS ( \
                 SELECT a.product_id AS a, b.product_id AS b, COUNT(*) AS n \
                 FROM bought a JOIN bought b ON b.member_id = a.member_id AND b.product_id <> a.product_id \
                 GROUP BY a.product_id, b.product_id \
             ), ranked AS ( \
                 SELECT t.a, t.b, t.n, \
                        (CAST(t.n AS {real}) * t.n) / (CAST(x.n AS {real}) * y.n) AS score, \
                        ROW_NUMBER() OVER (PARTITION BY t.a \
                            ORDER BY (CAST(t.n AS {real}) * t.n) / (CAST(x.n AS {real}) * y.n) DESC, t.n DESC, t.b) AS r \
                 FROM together t \
                 JOIN buyers x ON x.product_id = t.a \
                 JOIN buyers y ON y.product_id = t.b \
             ) \
             SELECT a, r, b, n, score FROM ranked WHERE r <= {KEEP}"
        ));
        out.pairs = tx.execute(sql).await?;

        let mut sql = tx.sql();
        sql.push("DELETE FROM product_bestsellers");
        tx.execute(sql).await?;
        let mut sql = tx.sql();
        sql.push(
            "INSERT INTO product_bestsellers (scope, rank, product_id, buyers) \
             WITH buyers AS ( \
                 SELECT l.product_id, COUNT(DISTINCT l.member_id) AS n \
                 FROM order_lines l JOIN products p ON p.id = l.product_id \
                 WHERE p.published AND p.in_stock AND l.ordered_at >= ",
        )
        .bind(Arg::Timestamp(Some(since)))
        .push(&format!(
            " GROUP BY l.product_id \
             ), scoped AS ( \
                 SELECT '' AS scope, product_id, n FROM buyers \
                 UNION ALL \
                 SELECT p.category AS scope, b.product_id, b.n \
                 FROM buyers b JOIN products p ON p.id = b.product_id \
                 WHERE p.category IS NOT NULL AND p.category <> '' \
             ), ranked AS ( \
                 SELECT scope, product_id, n, \
                        ROW_NUMBER() OVER (PARTITION BY scope ORDER BY n DESC, product_id) AS r \
                 FROM scoped \
             ) \
             SELECT scope, r, product_id, n FROM ranked WHERE r <= {BESTSELLERS_KEPT}"
        ));
        out.bestsellers = tx.execute(sql).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The three stamps of `recommendation_stamps` (migration 0010), read in one query.
    async fn recommendation_stamps(&self) -> Result<Stamps, StoreError> {
        let mut sql = self.sql();
        sql.push("SELECT name, stamp FROM recommendation_stamps");
        let rows = self.fetch(sql, |r| Ok((r.text("name")?.unwrap_or_default(), r.int("stamp")?.unwrap_or(0)))).await?;
        let mut stamps = Stamps::default();
        for (name, stamp) in rows {
            match name.as_str() {
                "models" => stamps.models = stamp,
                "products" => stamps.products = stamp,
                "catalogue" => stamps.catalogue = stamp,
                _ => {}
            }
        }
        Ok(stamps)
    }

    /// The shelf of each member of a batch at `now` (`recommend::shelf`), read with five
    /// queries for the whole batch: purchases, the neighbours of those purchases, the
    /// bestsellers, the products all these name, and what was shown. For one-off reads
    /// (`preview`, `tidings member`); the engine keeps the model in memory
    /// ([`Store::cached_shelves`]), with the same result.
    pub async fn shelves(
        &self,
        member_ids: &[String],
        now: DateTime<Utc>,
        settings: &recommend::Settings,
    ) -> Result<HashMap<String, Shelf>, StoreError> {
        if member_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let bought = self.purchases(member_ids).await?;
        let purchased: Vec<String> =
            bought.values().flatten().map(|b| b.product_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let model = self.read_model(Some(&purchased)).await?;
        let mut wanted: HashSet<&str> = purchased.iter().map(String::as_str).collect();
        for id in &purchased {
            wanted.extend(model.neighbours.of(id).map(|(other, _)| other));
        }
        wanted.extend(model.bestsellers.values().flatten().map(String::as_str));
        let wanted: Vec<String> = wanted.into_iter().map(str::to_string).collect();
        let products = self.products(&wanted).await?;
        let shown = self.shown(member_ids, now, settings).await?;
        let bestsellers = Arc::new(recommend::Bestsellers::of(&model, &products));
        Ok(assemble(member_ids, &model, &products, &bestsellers, &bought, &shown, settings, now))
    }

    /// [`Store::shelves`] with the model and the catalogue kept in `cache` while they are
    /// current: one read of the stamps per batch (a rebuild or a product write on any worker
    /// changes them), then the batch's purchases and what was shown. A changed model is
    /// read whole; changed products are read by their stamp (only those written since),
    /// the whole catalogue after a delete.
    pub async fn cached_shelves(
        &self,
        cache: &ShelfCache,
        member_ids: &[String],
        now: DateTime<Utc>,
        settings: &recommend::Settings,
    ) -> Result<HashMap<String, Shelf>, StoreError> {
        if member_ids.is_empty() {
            return Ok(HashMap::new());
        }
        // The stamps first: what is read after them is at least as new as they say.
        let stamps = self.recommendation_stamps().await?;
        let (model, products, bestsellers) = cache.current(self, stamps).await?;
        let bought = self.purchases(member_ids).await?;
        let shown = self.shown(member_ids, now, settings).await?;
        Ok(assemble(member_ids, &model, &products, &bestsellers, &bought, &shown, settings, now))
    }

    /// Purchases of a batch of members: one entry per member and product, with the last time.
    async fn purchases(&self, member_ids: &[String]) -> Result<HashMap<String, Vec<Bought>>, StoreError> {
        let mut bought: HashMap<String, Vec<Bought>> = HashMap::new();
        for chunk in chunks(member_ids, 1) {
            let mut sql = self.sql();
            sql.push("SELECT member_id, product_id, MAX(ordered_at) AS last_at FROM order_lines WHERE ")
                .in_list("member_id", chunk.to_vec())
                .push(" GROUP BY member_id, product_id");
            let rows = self
                .fetch(sql, |r| {
                    let last_at = r.timestamp("last_at")?.ok_or_else(|| StoreError::corrupt("last_at", "null"))?;
                    Ok((r.text("member_id")?.unwrap_or_default(), r.text("product_id")?.unwrap_or_default(), last_at))
                })
                .await?;
            for (member, product_id, last_at) in rows {
                bought.entry(member).or_default().push(Bought { product_id, last_at });
            }
        }
        Ok(bought)
    }

    /// The model as rebuilt: the neighbours of `of` (all of them with `None`) and every
    /// bestseller.
    async fn read_model(&self, of: Option<&[String]>) -> Result<Model, StoreError> {
        // The squared cosine read as an integer (parts per 10^12) through the one row
        // adapter both engines share.
        const PAIRS: &str = "SELECT product_id, other_id, CAST(score * 1000000000000 AS BIGINT) AS score_ppt \
                             FROM product_pairs";
        let pair = |r: &dyn ReadRow| {
            Ok((
                r.text("product_id")?.unwrap_or_default(),
                r.text("other_id")?.unwrap_or_default(),
                r.int("score_ppt")?.unwrap_or(0) as f64 / 1e12,
            ))
        };
        let mut model = Model::default();
        let mut rows = Vec::new();
        match of {
            Some(ids) => {
                for chunk in chunks(ids, 1) {
                    let mut sql = self.sql();
                    sql.push(PAIRS)
                        .push(" WHERE ")
                        .in_list("product_id", chunk.to_vec())
                        .push(" ORDER BY product_id, rank");
                    rows.extend(self.fetch(sql, pair).await?);
                }
            }
            None => {
                let mut sql = self.sql();
                sql.push(PAIRS).push(" ORDER BY product_id, rank");
                rows = self.fetch(sql, pair).await?;
            }
        }
        for (product, other, score) in rows {
            model.neighbours.push(&product, &other, score);
        }
        let mut sql = self.sql();
        sql.push(&format!(
            "SELECT scope, product_id FROM product_bestsellers WHERE rank <= {BESTSELLERS_KEPT} ORDER BY scope, rank"
        ));
        let rows = self
            .fetch(sql, |r| Ok((r.text("scope")?.unwrap_or_default(), r.text("product_id")?.unwrap_or_default())))
            .await?;
        for (scope, product) in rows {
            model.bestsellers.entry(scope).or_default().push(product);
        }
        Ok(model)
    }

    /// Products written after stamp `after` (all of them with `None`).
    async fn products_since(&self, after: Option<i64>) -> Result<Vec<Product>, StoreError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {PRODUCT_COLUMNS} FROM products"));
        if let Some(after) = after {
            sql.push(" WHERE stamp > ").bind(Arg::Int(Some(after)));
        }
        self.fetch(sql, read_product).await
    }

    /// What sent messages showed each member of a batch within `shown_within`.
    async fn shown(
        &self,
        member_ids: &[String],
        now: DateTime<Utc>,
        settings: &recommend::Settings,
    ) -> Result<HashMap<String, HashSet<String>>, StoreError> {
        let mut shown: HashMap<String, HashSet<String>> = HashMap::new();
        let since = now - settings.shown_within.to_chrono();
        for chunk in chunks(member_ids, 2) {
            let mut sql = self.sql();
            sql.push("SELECT member_id, product_id FROM shown_products WHERE ")
                .in_list("member_id", chunk.to_vec())
                .push(" AND shown_at > ")
                .bind(Arg::Timestamp(Some(stored_now(since))));
            let rows = self
                .fetch(sql, |r| {
                    Ok((r.text("member_id")?.unwrap_or_default(), r.text("product_id")?.unwrap_or_default()))
                })
                .await?;
            for (member, product) in rows {
                shown.entry(member).or_default().insert(product);
            }
        }
        Ok(shown)
    }
}

/// Each member's shelf from what was read for the batch (pure, `recommend::shelf`).
#[allow(clippy::too_many_arguments)]
fn assemble(
    member_ids: &[String],
    model: &Model,
    products: &Catalogue,
    bestsellers: &Arc<recommend::Bestsellers>,
    bought: &HashMap<String, Vec<Bought>>,
    shown: &HashMap<String, HashSet<String>>,
    settings: &recommend::Settings,
    now: DateTime<Utc>,
) -> HashMap<String, Shelf> {
    let none = HashSet::new();
    member_ids
        .iter()
        .map(|id| {
            let history = bought.get(id).map_or(&[][..], Vec::as_slice);
            let shown = shown.get(id).unwrap_or(&none);
            (id.clone(), recommend::shelf(model, products, bestsellers, history, shown, settings, now))
        })
        .collect()
}

/// The values of `recommendation_stamps` (migration 0010).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stamps {
    models: i64,
    products: i64,
    catalogue: i64,
}

/// How often a [`ShelfCache`] read from the database, for tests and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheLoads {
    /// Whole reads of the model (co-purchase pairs and bestsellers).
    pub models: u64,
    /// Whole reads of the catalogue (the first, and after a delete).
    pub catalogues: u64,
    /// Reads of the products written since the copy (after an upsert).
    pub product_updates: u64,
}

/// The recommendation model and the catalogue, kept in memory by a process between
/// batches (the engine holds one; [`Store::cached_shelves`]), each with the stamp it was
/// read at. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct ShelfCache {
    held: Arc<std::sync::Mutex<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    model: Option<(i64, Arc<Model>)>,
    /// The catalogue, at (catalogue, products) stamps.
    products: Option<((i64, i64), Arc<Catalogue>)>,
    /// The bestsellers of that model and catalogue, built once for both.
    bestsellers: Option<((i64, i64, i64), Arc<recommend::Bestsellers>)>,
    loads: CacheLoads,
}

type Current = (Arc<Model>, Arc<Catalogue>, Arc<recommend::Bestsellers>);

impl ShelfCache {
    pub fn new() -> ShelfCache {
        ShelfCache::default()
    }

    pub fn loads(&self) -> CacheLoads {
        self.lock().loads
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // A panic elsewhere cannot leave a half-written copy: every field is replaced whole.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The model, catalogue and bestsellers at `stamps`, reading from `store` what is
    /// older in memory. Two batches reading at once may both read; the later write wins,
    /// and both are current.
    async fn current(&self, store: &Store, stamps: Stamps) -> Result<Current, StoreError> {
        let (model, products) = {
            let mut held = self.lock();
            let products = match &held.products {
                Some((at, _)) if *at == (stamps.catalogue, stamps.products) => held.products.clone(),
                // Taken out to be updated in place (no other copy of it is then held).
                _ => held.products.take(),
            };
            (held.model.clone(), products)
        };
        let model = match model {
            Some((stamp, model)) if stamp == stamps.models => model,
            _ => {
                let model = Arc::new(store.read_model(None).await?);
                let mut held = self.lock();
                held.loads.models += 1;
                held.model = Some((stamps.models, Arc::clone(&model)));
                model
            }
        };
        let at = (stamps.catalogue, stamps.products);
        let products = match products {
            Some((held_at, products)) if held_at == at => products,
            Some(((catalogue, since), mut products)) if catalogue == stamps.catalogue => {
                // Upserts only: the rows written since.
                let changed = store.products_since(Some(since)).await?;
                let copy = Arc::make_mut(&mut products);
                for p in changed {
                    copy.insert(p.id.clone(), p);
                }
                let mut held = self.lock();
                held.loads.product_updates += 1;
                held.products = Some((at, Arc::clone(&products)));
                products
            }
            _ => {
                let products: Catalogue =
                    store.products_since(None).await?.into_iter().map(|p| (p.id.clone(), p)).collect();
                let products = Arc::new(products);
                let mut held = self.lock();
                held.loads.catalogues += 1;
                held.products = Some((at, Arc::clone(&products)));
                products
            }
        };
        let key = (stamps.models, stamps.catalogue, stamps.products);
        let mut held = self.lock();
        let bestsellers = match &held.bestsellers {
            Some((built, bestsellers)) if *built == key => Arc::clone(bestsellers),
            _ => {
                let bestsellers = Arc::new(recommend::Bestsellers::of(&model, &products));
                held.bestsellers = Some((key, Arc::clone(&bestsellers)));
                bestsellers
            }
        };
        Ok((model, products, bestsellers))
    }
}

/// Remembers which products sent messages showed which members, so the next messages show
/// others (`shown_within`); written with the sends' outcomes (`Store::record_outcomes`).
pub(crate) async fn write_shown(tx: &mut Tx, shown: &[(String, String)], now: DateTime<Utc>) -> Result<(), StoreError> {
    if shown.is_empty() {
        return Ok(());
    }
    let mut unique: Vec<&(String, String)> = shown.iter().collect::<HashSet<_>>().into_iter().collect();
    unique.sort();
    for chunk in chunks(&unique, 3) {
        let mut sql = tx.sql();
        sql.push("INSERT INTO shown_products (member_id, product_id, shown_at) VALUES ");
        for (i, (member, product)) in chunk.iter().enumerate() {
            sql.values_row(i == 0, [Arg::text(member), Arg::text(product), Arg::Timestamp(Some(stored_now(now)))]);
        }
        sql.push(" ON CONFLICT (member_id, product_id) DO UPDATE SET shown_at = excluded.shown_at");
        tx.execute(sql).await?;
    }
    Ok(())
}
