//! Product recommendations, pure (DESIGN §8): what a member is shown, given their
//! purchases, the co-purchase model, the bestsellers and the catalogue, at `now`.
//!
//! The models are computed set-based in the database (`store::products`); this module
//! takes the slice of them one member needs and decides:
//!
//! 1. **Neighbours.** Each product the member bought votes for its neighbours with their
//!    cosine similarity (buyers of both ÷ √(buyers of one × buyers of the other): a
//!    bestseller bought by everyone is no evidence that X's buyers like it, the popularity
//!    correction); a candidate's score is the sum of its votes, and its reason is the
//!    purchase that voted most ("because you bought Oolong").
//! 2. **Filters.** Never a product the member already bought (unless `rebuy_after` has
//!    passed since, for consumables), never one out of stock, unpublished, or without a
//!    page and a price, never one a message showed them within `shown_within`.
//! 3. **Fallback.** The shelf also holds the bestsellers, overall and per category, under
//!    the same filters: a member with no history (or too little) gets those.
//!
//! The result is a [`Shelf`]: the templates' `recommend` and `bought_recently` helpers
//! take from it while rendering (the render reads nothing else), and `tidings member`
//! prints it. Ties break by product id, so the same inputs give the same list.

pub mod order;
pub mod product;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::duration::Duration;
pub use order::OrderLine;
pub use product::Product;

/// How many items one `recommend` or `bought_recently` call may ask for.
pub const MAX_ITEMS: usize = 20;
/// Neighbours kept per product in the model, and picks and bestsellers kept per shelf.
pub const KEEP: usize = 24;

/// `[recommendations]` in `tidings.toml`, as the rules take it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Orders within this window feed the models (co-purchase and bestsellers).
    pub window: Duration,
    /// A product bought this long ago may be recommended again (consumables); `None`:
    /// never again.
    pub rebuy_after: Option<Duration>,
    /// The categories `rebuy_after` applies to; empty: every category.
    pub rebuy_categories: Vec<String>,
    /// A product a sent message showed within this is not shown again.
    pub shown_within: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window: Duration::from_days(365),
            rebuy_after: None,
            rebuy_categories: Vec::new(),
            shown_within: Duration::from_days(14),
        }
    }
}

/// One product a member bought: when last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bought {
    pub product_id: String,
    pub last_at: DateTime<Utc>,
}

/// The recommendation model as the last rebuild left it: co-purchase neighbours and
/// bestsellers. The edge keeps the whole of it in memory while it is current (it changes
/// once a day, shared behind an `Arc`), or reads the slice one batch needs; the catalogue
/// (stock, published) is passed beside it, since it changes at any time.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Product → its neighbours, best first, with the stored squared cosine.
    pub neighbours: Neighbours,
    /// Scope (`""` for the whole catalogue, else a category) → product ids, best first.
    pub bestsellers: BTreeMap<String, Vec<String>>,
}

/// The catalogue a shelf may draw from: product id → product (at least every product the
/// model names for the batch, and the batch's purchases, that the catalogue knows).
pub type Catalogue = HashMap<String, Product>;

/// Each product's co-purchase neighbours, best first. Product ids are interned (a list of
/// `(u32, f64)` per product), so the whole model of a large catalogue stays small in memory.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    ids: Vec<String>,
    index: HashMap<String, u32>,
    lists: Vec<Vec<(u32, f64)>>,
}

impl Neighbours {
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = u32::try_from(self.ids.len()).expect("fewer than 2^32 products");
        self.ids.push(id.to_string());
        self.index.insert(id.to_string(), i);
        self.lists.push(Vec::new());
        i
    }

    /// Appends `other` to `product`'s neighbours (call in rank order), with the squared cosine.
    pub fn push(&mut self, product: &str, other: &str, squared: f64) {
        let (p, o) = (self.intern(product), self.intern(other));
        self.lists[p as usize].push((o, squared));
    }

    /// `product`'s neighbours, best first, with their squared cosines (none if unknown).
    pub fn of(&self, product: &str) -> impl Iterator<Item = (&str, f64)> + '_ {
        let list = self.index.get(product).map_or(&[][..], |&i| self.lists[i as usize].as_slice());
        list.iter().map(|&(o, squared)| (self.ids[o as usize].as_str(), squared))
    }

    /// How many (product, neighbour) pairs are held.
    pub fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(Vec::is_empty)
    }
}

/// A product chosen for a member, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    pub product: Product,
    /// The summed similarity (co-purchase picks); 0 for bestsellers and purchases.
    pub score: f64,
    /// Why, in words for the member: "because you bought Oolong", "a bestseller in tea".
    pub reason: String,
    /// The purchase that led to this pick (co-purchase picks).
    pub because: Option<String>,
}

/// The bestsellers of the model, overall and per category, as picks with their reasons,
/// for a catalogue: built once per batch at most ([`Bestsellers::of`]) and shared by every member's
/// shelf, which filters them when a template asks ([`Shelf::recommend`]). Only products
/// that may be recommended at all (in stock, published, with a page and a price) are
/// kept; what one member may not see is the shelf's business.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bestsellers {
    /// Scope (`""` for the whole catalogue, else a category) → picks, best first.
    by_scope: BTreeMap<String, Vec<Pick>>,
}

impl Bestsellers {
    pub fn of(model: &Model, products: &Catalogue) -> Bestsellers {
        let by_scope = model
            .bestsellers
            .iter()
            .map(|(scope, ids)| {
                let reason =
                    if scope.is_empty() { "a bestseller".to_string() } else { format!("a bestseller in {scope}") };
                let picks = ids
                    .iter()
                    .filter_map(|id| products.get(id))
                    .filter(|p| p.recommendable())
                    .map(|p| Pick { product: p.clone(), score: 0.0, reason: reason.clone(), because: None })
                    .collect();
                (scope.clone(), picks)
            })
            .collect();
        Bestsellers { by_scope }
    }

    /// Builds them from picks directly (tests and fixtures): `""` is the whole catalogue.
    pub fn from_scopes(by_scope: impl IntoIterator<Item = (String, Vec<Pick>)>) -> Bestsellers {
        Bestsellers { by_scope: by_scope.into_iter().collect() }
    }

    fn scope(&self, scope: &str) -> &[Pick] {
        self.by_scope.get(scope).map_or(&[], Vec::as_slice)
    }
}

/// What a member may be shown, ranked: the input of the template helpers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shelf {
    /// From the member's purchases' neighbours, best first (already filtered).
    pub picks: Vec<Pick>,
    /// The member's own purchases the catalogue knows, most recent first.
    pub bought_recently: Vec<Pick>,
    /// The batch's bestsellers, shared; filtered for this member by `hidden`.
    pub bestsellers: Arc<Bestsellers>,
    /// Products this member must not be shown: bought (and not yet rebuyable) or shown by
    /// a message within `shown_within`.
    pub hidden: HashSet<String>,
}

impl Shelf {
    /// `(recommend n [category=…])`: the co-purchase picks (of that category), then its
    /// bestsellers the member may see, each product once.
    pub fn recommend(&self, n: usize, category: Option<&str>) -> Vec<&Pick> {
        let in_category = |p: &&Pick| category.is_none_or(|c| p.product.category.as_deref() == Some(c));
        let fallback =
            self.bestsellers.scope(category.unwrap_or("")).iter().filter(|p| !self.hidden.contains(&p.product.id));
        let mut seen = HashSet::new();
        self.picks
            .iter()
            .filter(in_category)
            .chain(fallback)
            .filter(|p| seen.insert(p.product.id.as_str()))
            .take(n)
            .collect()
    }

    /// `(bought_recently n)`: the member's latest purchases.
    pub fn bought_recently(&self, n: usize) -> Vec<&Pick> {
        self.bought_recently.iter().take(n).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.picks.is_empty() && self.recommend(1, None).is_empty() && self.bought_recently.is_empty()
    }
}

/// The member's shelf at `now`: `bought` is their purchase history (one entry per
/// product), `shown` the products sent messages showed them within `shown_within`,
/// `bestsellers` the batch's (`Bestsellers::of(model, products)`, shared).
pub fn shelf(
    model: &Model,
    products: &Catalogue,
    bestsellers: &Arc<Bestsellers>,
    bought: &[Bought],
    shown: &HashSet<String>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Shelf {
    // What this member may not see: recently shown, and bought unless rebuyable.
    let mut hidden: HashSet<String> = shown.clone();
    for b in bought {
        let rebuy = products.get(&b.product_id).is_some_and(|p| rebuyable(p, b.last_at, settings, now));
        if !rebuy {
            hidden.insert(b.product_id.clone());
        }
    }
    let allowed = |product: &Product| product.recommendable() && !hidden.contains(&product.id);

    // Votes: for each candidate, the summed cosine and the purchase that voted most.
    let mut votes: HashMap<&str, (f64, &str, f64)> = HashMap::new();
    for b in bought {
        if !products.contains_key(&b.product_id) {
            continue; // an unknown product id: kept in the orders, ignored here
        }
        for (other, squared) in model.neighbours.of(&b.product_id) {
            let cosine = squared.max(0.0).sqrt();
            let vote = votes.entry(other).or_insert((0.0, b.product_id.as_str(), 0.0));
            vote.0 += cosine;
            if cosine > vote.2 || (cosine == vote.2 && b.product_id.as_str() < vote.1) {
                vote.1 = b.product_id.as_str();
                vote.2 = cosine;
            }
        }
    }
    // Rank and filter first, then build only the picks kept.
    let mut ranked: Vec<(&Product, f64, &str)> = votes
        .into_iter()
        .filter_map(|(id, (score, because, _))| Some((products.get(id).filter(|p| allowed(p))?, score, because)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.id.cmp(&b.0.id)));
    let picks = ranked
        .into_iter()
        .take(KEEP)
        .map(|(product, score, because)| {
            let reason = match products.get(because) {
                Some(b) => format!("because you bought {}", b.title),
                None => "bought together with your purchases".to_string(),
            };
            Pick { product: product.clone(), score, reason, because: Some(because.to_string()) }
        })
        .collect();

    let mut recent: Vec<&Bought> = bought.iter().filter(|b| products.contains_key(&b.product_id)).collect();
    recent.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.product_id.cmp(&b.product_id)));
    let bought_recently = recent
        .into_iter()
        .take(KEEP)
        .map(|b| Pick {
            product: products[&b.product_id].clone(),
            score: 0.0,
            reason: format!("you bought it on {}", b.last_at.format("%Y-%m-%d")),
            because: None,
        })
        .collect();

    Shelf { picks, bought_recently, bestsellers: Arc::clone(bestsellers), hidden }
}

/// A product the member bought may come back once `rebuy_after` has passed, in the
/// categories it applies to.
fn rebuyable(product: &Product, last_at: DateTime<Utc>, settings: &Settings, now: DateTime<Utc>) -> bool {
    let Some(after) = settings.rebuy_after else { return false };
    let applies = settings.rebuy_categories.is_empty()
        || product.category.as_ref().is_some_and(|c| settings.rebuy_categories.contains(c));
    applies && now - last_at >= after.to_chrono()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
    }

    fn product(id: &str, category: &str) -> Product {
        Product {
            id: id.into(),
            title: format!("Product {id}"),
            url: Some(format!("https://shop.example/p/{id}")),
            image_url: None,
            price: Some(1000),
            currency: Some("CNY".into()),
            category: Some(category.into()),
            tags: vec![],
            in_stock: true,
            published: true,
        }
    }

    /// A model and the catalogue beside it.
    struct Fixture {
        model: Model,
        products: Catalogue,
    }

    fn model() -> Fixture {
        let mut m = Fixture { model: Model::default(), products: Catalogue::new() };
        for (id, cat) in [("A", "tea"), ("B", "tea"), ("C", "ware"), ("D", "tea"), ("E", "ware")] {
            m.products.insert(id.into(), product(id, cat));
        }
        for (product, other, squared) in [("A", "B", 0.64), ("A", "C", 0.25), ("D", "C", 0.81), ("D", "A", 0.1)] {
            m.model.neighbours.push(product, other, squared);
        }
        m.model.bestsellers.insert("".into(), vec!["A".into(), "E".into(), "C".into(), "B".into()]);
        m.model.bestsellers.insert("tea".into(), vec!["A".into(), "D".into(), "B".into()]);
        m
    }

    fn bought(ids: &[(&str, i64)]) -> Vec<Bought> {
        ids.iter()
            .map(|(id, days)| Bought { product_id: id.to_string(), last_at: now() - chrono::Duration::days(*days) })
            .collect()
    }

    fn shelf_of(
        m: &Fixture,
        bought: &[Bought],
        shown: &HashSet<String>,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Shelf {
        let bestsellers = Arc::new(Bestsellers::of(&m.model, &m.products));
        shelf(&m.model, &m.products, &bestsellers, bought, shown, settings, now)
    }

    fn ids(picks: &[&Pick]) -> Vec<String> {
        picks.iter().map(|p| p.product.id.clone()).collect()
    }

    #[test]
    fn neighbours_keep_their_order_and_scores_by_product() {
        let m = model();
        assert_eq!(m.model.neighbours.of("A").collect::<Vec<_>>(), [("B", 0.64), ("C", 0.25)]);
        assert_eq!(m.model.neighbours.of("B").count(), 0);
        assert_eq!(m.model.neighbours.of("nobody").count(), 0);
        assert_eq!(m.model.neighbours.len(), 4);
    }

    #[test]
    fn a_buyer_of_a_gets_what_a_buyers_bought_and_not_a_again() {
        let shelf = shelf_of(&model(), &bought(&[("A", 3)]), &HashSet::new(), &Settings::default(), now());
        assert_eq!(ids(&shelf.recommend(2, None)), ["B", "C"]);
        assert_eq!(shelf.picks[0].reason, "because you bought Product A");
        assert!(ids(&shelf.recommend(10, None)).iter().all(|id| id != "A"));
    }

    #[test]
    fn votes_add_up_and_the_strongest_purchase_is_the_reason() {
        let shelf = shelf_of(&model(), &bought(&[("A", 3), ("D", 1)]), &HashSet::new(), &Settings::default(), now());
        // C: 0.5 (from A) + 0.9 (from D) = 1.4 > B: 0.8.
        assert_eq!(ids(&shelf.recommend(2, None)), ["C", "B"]);
        assert_eq!(shelf.picks[0].because.as_deref(), Some("D"));
    }

    #[test]
    fn a_member_with_no_orders_gets_bestsellers_overall_and_per_category() {
        let shelf = shelf_of(&model(), &[], &HashSet::new(), &Settings::default(), now());
        assert_eq!(ids(&shelf.recommend(3, None)), ["A", "E", "C"]);
        assert_eq!(ids(&shelf.recommend(3, Some("tea"))), ["A", "D", "B"]);
        assert_eq!(shelf.recommend(1, Some("tea"))[0].reason, "a bestseller in tea");
        assert!(shelf.recommend(3, Some("cups")).is_empty());
    }

    #[test]
    fn out_of_stock_unpublished_and_recently_shown_products_never_appear() {
        let mut m = model();
        m.products.get_mut("B").unwrap().in_stock = false;
        m.products.get_mut("E").unwrap().published = false;
        let shown: HashSet<String> = ["C".to_string()].into();
        let shelf = shelf_of(&m, &bought(&[("A", 3)]), &shown, &Settings::default(), now());
        let all = ids(&shelf.recommend(20, None));
        assert!(!all.iter().any(|id| ["B", "E", "C", "A"].contains(&id.as_str())), "{all:?}");
    }

    #[test]
    fn consumables_come_back_after_rebuy_after_in_their_categories() {
        let settings = Settings {
            rebuy_after: Some(Duration::from_days(30)),
            rebuy_categories: vec!["tea".into()],
            ..Settings::default()
        };
        let shelf = shelf_of(&model(), &bought(&[("A", 45), ("C", 45), ("D", 10)]), &HashSet::new(), &settings, now());
        let all = ids(&shelf.recommend(20, None));
        assert!(all.contains(&"A".to_string()), "tea bought 45 days ago comes back: {all:?}");
        assert!(!all.contains(&"C".to_string()), "ware is not a consumable: {all:?}");
        assert!(!all.contains(&"D".to_string()), "tea bought 10 days ago does not: {all:?}");
    }

    #[test]
    fn a_category_takes_its_picks_first_then_its_bestsellers() {
        let shelf = shelf_of(&model(), &bought(&[("A", 3)]), &HashSet::new(), &Settings::default(), now());
        assert_eq!(ids(&shelf.recommend(3, Some("tea"))), ["B", "D"]);
    }

    #[test]
    fn unknown_products_in_orders_are_ignored_and_purchases_list_newest_first() {
        let mut m = model();
        m.model.neighbours.push("ghost", "E", 0.9);
        let shelf =
            shelf_of(&m, &bought(&[("ghost", 1), ("A", 9), ("D", 2)]), &HashSet::new(), &Settings::default(), now());
        assert!(shelf.picks.iter().all(|p| p.product.id != "E"));
        assert_eq!(ids(&shelf.bought_recently(5)), ["D", "A"]);
    }
}
