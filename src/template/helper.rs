//! The helpers a template may call: the table the check validates calls against, and their
//! implementations for rendering (formatting itself lives in [`super::format`]).

use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, PathAndJson, RenderContext, RenderError, RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use super::format;

/// A tidings helper: its name, how many positional arguments it takes, and its usage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
    pub usage: &'static str,
}

/// Helpers tidings adds (DESIGN §3).
pub(crate) const OURS: &[Spec] = &[
    Spec { name: "money", min: 1, max: 2, usage: "{{money AMOUNT_IN_MINOR_UNITS [CURRENCY]}}" },
    Spec { name: "date", min: 1, max: 2, usage: "{{date DATE_OR_TIMESTAMP [\"%Y-%m-%d\"]}}" },
    Spec { name: "pluralize", min: 2, max: 3, usage: "{{pluralize COUNT \"point\" [\"points\"]}}" },
    Spec { name: "default", min: 2, max: 2, usage: "{{default VALUE \"fallback\"}}" },
    Spec { name: "uppercase", min: 1, max: 1, usage: "{{uppercase TEXT}}" },
    Spec { name: "lowercase", min: 1, max: 1, usage: "{{lowercase TEXT}}" },
    Spec { name: "link", min: 1, max: 1, usage: "{{link \"https://...\"}}" },
    Spec {
        name: "recommend",
        min: 1,
        max: 1,
        usage: "{{#each (recommend 3 category=\"tea\")}}{{title}} {{money price currency}} {{url}}{{/each}}",
    },
    Spec { name: "bought_recently", min: 1, max: 1, usage: "{{#each (bought_recently 3)}}{{title}}{{/each}}" },
];

/// What is wrong with the arguments of a call to one of our helpers that the arity check
/// does not see: `recommend` and `bought_recently` take a whole number 1..=20 written in
/// the template, and `recommend` one hash argument, `category`.
pub(crate) fn argument_problem(name: &str, h: &handlebars::template::HelperTemplate) -> Option<String> {
    use handlebars::template::Parameter;
    if !matches!(name, "recommend" | "bought_recently") {
        return None;
    }
    let max = crate::recommend::MAX_ITEMS;
    if let Some(first) = h.params.first() {
        let count = match first {
            Parameter::Literal(Value::Number(n)) => n.as_u64().filter(|n| (1..=max as u64).contains(n)),
            _ => None,
        };
        if count.is_none() {
            return Some(format!("`{name}` takes how many products to show, a whole number from 1 to {max}"));
        }
    }
    let allowed: &[&str] = if name == "recommend" { &["category"] } else { &[] };
    let mut keys: Vec<&String> = h.hash.keys().collect();
    keys.sort();
    if let Some(key) = keys.into_iter().find(|k| !allowed.contains(&k.as_str())) {
        return Some(if allowed.is_empty() {
            format!("`{name}` takes no `{key}=`")
        } else {
            format!("`{name}` takes no `{key}=`; it takes `category=\"…\"`")
        });
    }
    if let Some(category) = h.hash.get("category")
        && let Parameter::Literal(value) = category
        && !value.is_string()
    {
        return Some(format!("`category` is a category name in quotes, not `{value}`"));
    }
    None
}

/// Helpers built into handlebars-rust that keep working under strict mode.
pub(crate) const BUILTIN: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not",
    "len",
];

pub(crate) fn spec(name: &str) -> Option<&'static Spec> {
    OURS.iter().find(|s| s.name == name)
}

pub(crate) fn is_known(name: &str) -> bool {
    BUILTIN.contains(&name) || spec(name).is_some()
}

pub(crate) fn all_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().copied().chain(OURS.iter().map(|s| s.name))
}

/// Rewrites a URL into a tracked one (the click redirect); identity in previews and tests.
/// `crate::links::DeliveryLinks` is the real one.
pub trait LinkTracker: Sync {
    fn track(&self, url: &str) -> String;

    /// The open pixel (an `<img>` tag) appended to an email's HTML; `None`: no pixel.
    fn open_pixel(&self) -> Option<String> {
        None
    }
}

/// Leaves links as they are.
pub struct Untracked;

impl LinkTracker for Untracked {
    fn track(&self, url: &str) -> String {
        url.to_string()
    }
}

/// Registers the helpers that need nothing from the caller.
pub(crate) fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper("money", Box::new(Money));
    registry.register_helper("pluralize", Box::new(Pluralize));
    registry.register_helper("default", Box::new(Default_));
    registry.register_helper("uppercase", Box::new(Case { upper: true }));
    registry.register_helper("lowercase", Box::new(Case { upper: false }));
}

fn error(helper: &str, message: impl std::fmt::Display) -> RenderError {
    RenderErrorReason::Other(format!("`{helper}`: {message}")).into()
}

/// A present value of a parameter: strict mode turns a missing one into an error.
fn param<'a>(h: &'a Helper<'_>, index: usize) -> Result<&'a Value, RenderError> {
    match h.param(index) {
        Some(p) if !p.is_value_missing() && !p.value().is_null() => Ok(p.value()),
        Some(p) => {
            Err(error(h.name(), format!("`{}` has no value", p.relative_path().map_or("argument", |s| s.as_str()))))
        }
        None => Err(error(h.name(), format!("argument {} is missing", index + 1))),
    }
}

fn root_text<'a>(ctx: &'a Context, path: &[&str]) -> Option<&'a str> {
    let mut value = ctx.data();
    for key in path {
        value = value.get(key)?;
    }
    value.as_str()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Money;

impl HelperDef for Money {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let amount = param(h, 0)?;
        let minor = match amount {
            Value::Number(n) => {
                n.as_i64().ok_or_else(|| error("money", format!("`{n}` is not a whole number of minor units")))?
            }
            Value::String(s) => {
                s.trim().parse().map_err(|_| error("money", format!("`{s}` is not a whole number of minor units")))?
            }
            other => return Err(error("money", format!("`{other}` is not an amount"))),
        };
        let currency = match h.param(1) {
            Some(_) => text(param(h, 1)?),
            None => root_text(ctx, &["member", "currency"])
                .ok_or_else(|| error("money", "no currency given and `member.currency` is not set"))?
                .to_string(),
        };
        let locale = root_text(ctx, &["member", "locale"]).unwrap_or("");
        Ok(ScopedJson::Derived(Value::String(format::money(minor, &currency, locale))))
    }
}

struct Pluralize;

impl HelperDef for Pluralize {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let count = param(h, 0)?;
        let count = match count {
            Value::Number(n) => n.as_f64().unwrap_or(0.0),
            Value::String(s) => s.trim().parse().map_err(|_| error("pluralize", format!("`{s}` is not a number")))?,
            other => return Err(error("pluralize", format!("`{other}` is not a number"))),
        };
        let singular = text(param(h, 1)?);
        let plural = match h.param(2) {
            Some(_) => text(param(h, 2)?),
            None => format::plural_of(&singular),
        };
        Ok(ScopedJson::Derived(Value::String(if count == 1.0 { singular } else { plural })))
    }
}

/// `{{default VALUE FALLBACK}}`: the value, or the fallback when it is missing, null or "".
struct Default_;

impl HelperDef for Default_ {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let usable = |p: &PathAndJson<'rc>| {
            !p.is_value_missing() && !matches!(p.value(), Value::Null) && p.value().as_str() != Some("")
        };
        match h.param(0) {
            Some(p) if usable(p) => Ok(ScopedJson::Derived(p.value().clone())),
            _ => Ok(ScopedJson::Derived(param(h, 1)?.clone())),
        }
    }
}

struct Case {
    upper: bool,
}

impl HelperDef for Case {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = text(param(h, 0)?);
        Ok(ScopedJson::Derived(Value::String(if self.upper { value.to_uppercase() } else { value.to_lowercase() })))
    }
}

/// `{{date VALUE [FORMAT]}}` in the member's timezone (`member.timezone`, else the default).
pub(crate) struct Date {
    pub default_timezone: Tz,
}

impl HelperDef for Date {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = text(param(h, 0)?);
        let pattern = match h.param(1) {
            Some(_) => Some(text(param(h, 1)?)),
            None => None,
        };
        let timezone = root_text(ctx, &["member", "timezone"])
            .and_then(|tz| tz.parse::<Tz>().ok())
            .unwrap_or(self.default_timezone);
        let locale = root_text(ctx, &["member", "locale"]).unwrap_or("");
        format::date(&value, pattern.as_deref(), timezone, locale)
            .map(|s| ScopedJson::Derived(Value::String(s)))
            .map_err(|e| error("date", e))
    }
}

/// `(recommend N [category="…"])` and `(bought_recently N)`: products from the member's
/// shelf (read by the edge before the render, `recommend::Shelf`), as a list of
/// [`super::context::PRODUCT_KEYS`] objects. Each `url` is already a tracked link (the
/// caller's tracker), so a click on a recommended product counts like any click. The ids
/// `recommend` gave are kept in `shown`, for the caller to remember.
pub(crate) struct Shelved<'a> {
    pub shelf: &'a crate::recommend::Shelf,
    pub tracker: &'a dyn LinkTracker,
    pub shown: &'a std::sync::Mutex<Vec<String>>,
    pub recent: bool,
}

impl HelperDef for Shelved<'_> {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let name = h.name();
        let max = crate::recommend::MAX_ITEMS;
        let n = param(h, 0)?
            .as_u64()
            .filter(|n| (1..=max as u64).contains(n))
            .ok_or_else(|| error(name, format!("the count must be a whole number from 1 to {max}")))?;
        let picks = if self.recent {
            self.shelf.bought_recently(n as usize)
        } else {
            let category = match h.hash_get("category") {
                Some(p) if !p.is_value_missing() && !p.value().is_null() => Some(text(p.value())),
                Some(_) => return Err(error(name, "`category` has no value")),
                None => None,
            };
            let picks = self.shelf.recommend(n as usize, category.as_deref());
            let mut shown = self.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            shown.extend(picks.iter().map(|p| p.product.id.clone()));
            picks
        };
        let items = picks
            .into_iter()
            .map(|pick| {
                let p = &pick.product;
                serde_json::json!({
                    "id": p.id,
                    "title": p.title,
                    "url": p.url.as_deref().map(|u| self.tracker.track(u)),
                    "image_url": p.image_url,
                    "price": p.price,
                    "currency": p.currency,
                    "category": p.category,
                    "reason": pick.reason,
                })
            })
            .collect();
        Ok(ScopedJson::Derived(Value::Array(items)))
    }
}

/// `{{link URL}}`: only http(s) and mailto URLs, rewritten by the caller's tracker.
pub(crate) struct Link<'a> {
    pub tracker: &'a dyn LinkTracker,
}

impl HelperDef for Link<'_> {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let url = text(param(h, 0)?);
        let lower = url.trim_start().to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")) {
            return Err(error("link", format!("`{url}` is not an http(s) or mailto URL")));
        }
        Ok(ScopedJson::Derived(Value::String(self.tracker.track(url.trim()))))
    }
}
