//! The line items of an `order.placed`: `properties.items`, a list of
//! `{"product_id", "quantity", "price"}` (the shops' webhooks map their `line_items` to
//! it). Checked with the event, so a malformed list is refused where the event is.

use serde_json::{Map, Value};

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: String,
    /// At least 1 (1 when the item does not say).
    pub quantity: i64,
    /// The unit price in minor units, when the item gives it.
    pub price: Option<i64>,
}

/// The lines of an order's properties; none when it has no `items`.
pub fn lines(properties: &Map<String, Value>) -> Result<Vec<OrderLine>, String> {
    let items = match properties.get("items") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("order.placed: properties.items must be a list of {product_id, quantity, price}".into()),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |what: &str| format!("order.placed: properties.items[{i}]: {what}");
            let item = item.as_object().ok_or_else(|| at("must be an object"))?;
            let product_id = match item.get("product_id") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(at("product_id is required (a string or a number)")),
            };
            let whole = |key: &str| -> Result<Option<i64>, String> {
                match item.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Number(n)) => {
                        n.as_i64().map(Some).ok_or_else(|| at(&format!("{key} must be a whole number")))
                    }
                    Some(_) => Err(at(&format!("{key} must be a whole number"))),
                }
            };
            let quantity = whole("quantity")?.unwrap_or(1);
            if quantity < 1 {
                return Err(at("quantity must be at least 1"));
            }
            let price = whole("price")?;
            if price.is_some_and(|p| p < 0) {
                return Err(at("price must not be negative"));
            }
            Ok(OrderLine { product_id, quantity, price })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(value: Value) -> Result<Vec<OrderLine>, String> {
        lines(value.as_object().unwrap())
    }

    #[test]
    fn items_become_lines_with_a_default_quantity_of_one() {
        let got = of(json!({"items": [{"product_id": 7, "price": 1200}, {"product_id": "tea-1", "quantity": 3}]}));
        assert_eq!(
            got.unwrap(),
            vec![
                OrderLine { product_id: "7".into(), quantity: 1, price: Some(1200) },
                OrderLine { product_id: "tea-1".into(), quantity: 3, price: None },
            ]
        );
        assert_eq!(of(json!({"total": 5})).unwrap(), vec![]);
    }

    #[test]
    fn malformed_items_say_which_and_why() {
        assert!(of(json!({"items": [{"quantity": 1}]})).unwrap_err().contains("items[0]: product_id is required"));
        assert!(of(json!({"items": [{"product_id": "a", "quantity": 0}]})).unwrap_err().contains("at least 1"));
        assert!(of(json!({"items": [{"product_id": "a", "price": -1}]})).unwrap_err().contains("negative"));
        assert!(of(json!({"items": "a"})).unwrap_err().contains("must be a list"));
    }
}
