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
];

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
