//! A product of the shop's catalogue, and the checks a row of `tidings import products`
//! (CSV or JSON lines) or a product webhook passes before it is stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A product as the catalogue keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The shop's product id (its decimal text, for the shops that number them).
    pub id: String,
    pub title: String,
    /// The product page (http or https only).
    pub url: Option<String>,
    pub image_url: Option<String>,
    /// In minor units of `currency`.
    pub price: Option<i64>,
    pub currency: Option<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub in_stock: bool,
    pub published: bool,
}

/// The columns (CSV) and fields (JSON lines) of a products file.
pub const COLUMNS: &[&str] =
    &["id", "title", "url", "image_url", "price", "currency", "category", "tags", "in_stock", "published"];

impl Product {
    /// Whether the product may be shown to anyone: published, in stock, with a page to
    /// link to and a price to print (a recommendation without them would render a hole).
    pub fn recommendable(&self) -> bool {
        self.published && self.in_stock && self.url.is_some() && self.price.is_some() && self.currency.is_some()
    }
}

/// A product from one JSON object (a JSON-lines row, or a webhook's mapping): every
/// problem of the row, joined with `; `.
pub fn from_json(object: &Map<String, Value>) -> Result<Product, String> {
    if let Some(key) = object.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
        return Err(format!("unknown field `{key}` (the fields are {})", COLUMNS.join(", ")));
    }
    let mut problems = Vec::new();
    let text = |key: &str, problems: &mut Vec<String>| -> Option<String> {
        match object.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                problems.push(format!("{key} must be a string"));
                None
            }
        }
    };
    let id = text("id", &mut problems);
    let title = text("title", &mut problems);
    let url = text("url", &mut problems);
    let image_url = text("image_url", &mut problems);
    let currency = text("currency", &mut problems);
    let category = text("category", &mut problems);
    let price = match object.get("price") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("price `{n}` is not a whole number")),
        Some(Value::String(s)) => parse_price(s),
        Some(_) => Err("price must be a number of minor units".to_string()),
    };
    let tags = match object.get("tags") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(|s| s.trim().to_string()).ok_or_else(|| "tags must be strings".to_string()))
            .collect::<Result<Vec<_>, _>>(),
        Some(Value::String(s)) => Ok(split_tags(s)),
        Some(_) => Err("tags must be a list of strings".to_string()),
    };
    let flag = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => parse_flag(key, s),
        Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => Ok(n.as_i64() == Some(1)),
        Some(other) => Err(format!("{key} must be true or false, not `{other}`")),
    };
    let (in_stock, published) = (flag("in_stock"), flag("published"));
    fn take<T>(r: Result<T, String>, problems: &mut Vec<String>) -> Option<T> {
        r.map_err(|e| problems.push(e)).ok()
    }
    let price = take(price, &mut problems).flatten();
    let tags = take(tags, &mut problems).unwrap_or_default();
    let in_stock = take(in_stock, &mut problems).unwrap_or(true);
    let published = take(published, &mut problems).unwrap_or(true);
    let product = check(Product {
        id: id.unwrap_or_default(),
        title: title.unwrap_or_default(),
        url,
        image_url,
        price,
        currency,
        category,
        tags: normalise_tags(tags),
        in_stock,
        published,
    });
    match product {
        Ok(product) if problems.is_empty() => Ok(product),
        Ok(_) => Err(problems.join("; ")),
        Err(more) => {
            problems.push(more);
            Err(problems.join("; "))
        }
    }
}

/// A product from the cells of a CSV row, by the header's column names.
pub fn from_cells(header: &[String], cells: &[&str]) -> Result<Product, String> {
    let mut object = Map::new();
    for (name, cell) in header.iter().zip(cells) {
        if !cell.trim().is_empty() {
            object.insert(name.clone(), Value::String(cell.to_string()));
        }
    }
    from_json(&object)
}

/// The rules every stored product follows: an id, a title, a price that is not negative,
/// an ISO currency code, http(s) links.
pub fn check(mut product: Product) -> Result<Product, String> {
    let mut problems = Vec::new();
    if product.id.trim().is_empty() {
        problems.push("there is no `id`".to_string());
    }
    if product.title.trim().is_empty() {
        problems.push("there is no `title`".to_string());
    }
    if let Some(price) = product.price
        && price < 0
    {
        problems.push(format!("price {price} is negative"));
    }
    if let Some(currency) = &product.currency {
        if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            product.currency = Some(currency.to_ascii_uppercase());
        } else {
            problems.push(format!("currency `{currency}` is not a three-letter code like CNY"));
        }
    }
    if product.price.is_some() != product.currency.is_some() {
        problems.push("a price needs its currency (and a currency its price)".to_string());
    }
    for (key, value) in [("url", &product.url), ("image_url", &product.image_url)] {
        if let Some(url) = value {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                problems.push(format!("{key} `{url}` is not an http(s) URL"));
            }
        }
    }
    if problems.is_empty() { Ok(product) } else { Err(problems.join("; ")) }
}

fn parse_price(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| format!("price `{text}` is not a whole number of minor units (write 1250 for 12.50)"))
}

fn parse_flag(key: &str, text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("{key} must be true or false, not `{other}`")),
    }
}

/// Tags in a CSV cell: a JSON array, or separated by `|` (as members' tags are).
fn split_tags(text: &str) -> Vec<String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
        return items.iter().filter_map(Value::as_str).map(str::to_string).collect();
    }
    text.split('|').map(str::to_string).collect()
}

fn normalise_tags(tags: Vec<String>) -> Vec<String> {
    let mut tags: Vec<String> = tags.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    tags.sort();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Result<Product, String> {
        from_json(value.as_object().unwrap())
    }

    #[test]
    fn a_full_row_reads_every_field() {
        let p = row(json!({
            "id": 42, "title": "Oolong", "url": "https://shop.example/oolong", "image_url": "https://cdn.example/o.jpg",
            "price": "3200", "currency": "cny", "category": "tea", "tags": "loose|green|loose",
            "in_stock": "yes", "published": true,
        }))
        .unwrap();
        assert_eq!((p.id.as_str(), p.price, p.currency.as_deref()), ("42", Some(3200), Some("CNY")));
        assert_eq!(p.tags, vec!["green", "loose"]);
        assert!(p.recommendable());
    }

    #[test]
    fn a_row_without_id_or_with_a_negative_price_is_refused_with_every_reason() {
        let e = row(json!({"title": "Cup", "price": -5, "currency": "CNY"})).unwrap_err();
        assert!(e.contains("there is no `id`") && e.contains("price -5 is negative"), "{e}");
        let e = row(json!({"id": "1", "title": "Cup", "url": "javascript:alert(1)"})).unwrap_err();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = row(json!({"id": "1", "title": "Cup", "colour": "red"})).unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn csv_cells_read_like_json_strings() {
        let header: Vec<String> = ["id", "title", "price", "currency", "in_stock"].map(String::from).to_vec();
        let p = from_cells(&header, &["7", "Teapot", "12900", "CNY", "false"]).unwrap();
        assert!(!p.in_stock && !p.recommendable());
        assert!(from_cells(&header, &["7", "Teapot", "12.90", "CNY", ""]).unwrap_err().contains("whole number"));
    }
}
