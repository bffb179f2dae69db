//! Rendering (DESIGN §3): strict mode, HTML escaping for email bodies only, separate
//! registries for HTML, text (SMS, push, subjects, text parts: never HTML-escaped) and JSON
//! (webhook bodies: values JSON-escaped). Pure: `now` and the timezone come from the caller.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use handlebars::template::Template;
use handlebars::{Context, Handlebars, RenderContext, RenderErrorReason, Renderable, StringOutput};
use serde::Serialize;
use serde_json::{Map, Value};

use super::helper::{self, Date, Link, LinkTracker, Untracked};
use super::{Message, TemplateCatalog, plain_text};
use crate::recommend::Shelf;

/// The shelf a render takes products from, and where it notes what `recommend` showed.
struct Shelved<'a> {
    shelf: &'a Shelf,
    shown: &'a std::sync::Mutex<Vec<String>>,
}
use crate::channel::Channel;
use crate::member::{Birthday, Event, Member};

/// What a message is rendered with: the render context of DESIGN §3.
#[derive(Debug, Clone, Serialize)]
pub struct MessageContext {
    /// The member as [`member_value`] builds it (absent fields are left out, so a template
    /// reading one fails instead of sending a blank).
    pub member: Value,
    /// The triggering event as [`event_value`] builds it; `{}` for scheduled journeys.
    pub event: Value,
    pub journey: JourneyInfo,
    pub step: StepInfo,
    /// The A/B variant's name, when the step has variants.
    pub variant: Option<String>,
    pub vars: Map<String, Value>,
    pub links: Links,
    pub shop: ShopInfo,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct JourneyInfo {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StepInfo {
    pub id: String,
}

/// Links for this member and delivery, signed with `TIDINGS_LINK_SECRET` (see
/// [`crate::links`]): `unsubscribe` is the one-click link, `preferences` the page where
/// the member chooses (today the same signed page, `GET /u/{token}`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Links {
    pub unsubscribe: String,
    pub preferences: String,
}

/// The shop, from the config.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShopInfo {
    pub name: String,
    pub url: String,
    pub support_email: String,
    pub address: String,
}

/// How to render: the timezone when the member has none, and how `{{link}}` tracks.
pub struct RenderOptions<'a> {
    pub default_timezone: Tz,
    pub links: &'a dyn LinkTracker,
}

/// A rendered message, ready for a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Email {
        subject: String,
        preheader: Option<String>,
        from: Option<String>,
        reply_to: Option<String>,
        html: String,
        /// From `NAME.email.txt.hbs`, or derived from the HTML.
        text: String,
    },
    Sms {
        body: String,
    },
    Push {
        title: String,
        body: String,
        deep_link: Option<String>,
        image: Option<String>,
    },
    Webhook {
        body: Value,
    },
}

impl Rendered {
    /// The subject (email) or title (push), for timelines and previews.
    pub fn headline(&self) -> Option<&str> {
        match self {
            Rendered::Email { subject, .. } => Some(subject),
            Rendered::Push { title, .. } => Some(title),
            _ => None,
        }
    }
}

/// Why a message could not be rendered: the send fails, never goes out with a hole.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no {channel} template `{name}`")]
    NotFound { name: String, channel: Channel },
    #[error("{channel} template `{name}` has errors; run `tidings validate`")]
    Invalid { name: String, channel: Channel },
    #[error("{location}: {reason}")]
    Failed {
        /// `file:line:col` of the expression that failed, or the template name.
        location: String,
        reason: String,
    },
    #[error("webhook body of `{name}` is not JSON after rendering: {reason}")]
    NotJson { name: String, reason: String },
}

/// The registries built once at load.
#[derive(Default)]
pub(crate) struct Registries {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    json: Handlebars<'static>,
}

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(escape);
    helper::register(&mut registry);
    registry
}

fn json_escape(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

fn layout_wrapper_name(message: &Message) -> String {
    format!("{}+layout", message.registry_name())
}

impl Registries {
    pub(crate) fn build(catalog: &TemplateCatalog) -> Registries {
        let mut html = registry(handlebars::html_escape);
        let mut text = registry(handlebars::no_escape);
        let mut json = registry(json_escape);
        for (name, part) in &catalog.partials {
            if let Some(part) = part {
                for r in [&mut html, &mut text, &mut json] {
                    r.register_template(name, part.template.clone());
                }
            }
        }
        for (name, part) in &catalog.layouts {
            if let Some(part) = part {
                html.register_template(&format!("layouts/{name}"), part.template.clone());
            }
        }
        for message in catalog.messages.values() {
            let name = message.registry_name();
            for (key, part) in &message.fields {
                if let Some(part) = part {
                    text.register_template(&format!("{name}#{key}"), part.template.clone());
                }
            }
            let Some(body) = &message.body else { continue };
            let target = match message.channel {
                Channel::Email => &mut html,
                Channel::Sms | Channel::Push => &mut text,
                Channel::Webhook => &mut json,
            };
            target.register_template(&name, body.template.clone());
            if let Some(Some(part)) = &message.text {
                text.register_template(&format!("{name}.txt"), part.template.clone());
            }
            if let Some(layout) = &message.layout {
                let source = format!("{{{{#> layouts/{layout}}}}}{{{{> {name}}}}}{{{{/layouts/{layout}}}}}");
                if let Ok(wrapper) = Template::compile_with_name(&source, layout_wrapper_name(message)) {
                    html.register_template(&layout_wrapper_name(message), wrapper);
                }
            }
        }
        Registries { html, text, json }
    }
}

impl TemplateCatalog {
    /// Renders template `name` for `channel` in strict mode: a variable without a value is
    /// an error, never a blank. Email front matter is rendered first and offered to the
    /// body and layout as `message.subject` and `message.preheader`.
    pub fn render(
        &self,
        name: &str,
        channel: Channel,
        context: &MessageContext,
        options: &RenderOptions<'_>,
    ) -> Result<Rendered, RenderError> {
        self.render_shelved(name, channel, context, options, &Shelf::default()).map(|(rendered, _)| rendered)
    }

    /// [`TemplateCatalog::render`] with the member's product shelf for `recommend` and
    /// `bought_recently` (read by the edge: dispatch, preview, simulate). Also answers the
    /// ids of the products `recommend` showed, each once, in the order shown.
    pub fn render_shelved(
        &self,
        name: &str,
        channel: Channel,
        context: &MessageContext,
        options: &RenderOptions<'_>,
        shelf: &Shelf,
    ) -> Result<(Rendered, Vec<String>), RenderError> {
        let shown = std::sync::Mutex::new(Vec::new());
        let rendered = self.render_parts(name, channel, context, options, shelf, &shown)?;
        let mut shown = shown.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seen = std::collections::HashSet::new();
        shown.retain(|id| seen.insert(id.clone()));
        Ok((rendered, shown))
    }

    fn render_parts(
        &self,
        name: &str,
        channel: Channel,
        context: &MessageContext,
        options: &RenderOptions<'_>,
        shelf: &Shelf,
        shown: &std::sync::Mutex<Vec<String>>,
    ) -> Result<Rendered, RenderError> {
        let shelved = Shelved { shelf, shown };
        let message = self
            .messages
            .get(&(channel, name.to_string()))
            .ok_or_else(|| RenderError::NotFound { name: name.to_string(), channel })?;
        let invalid = || RenderError::Invalid { name: name.to_string(), channel };
        if message.body.is_none()
            || message.fields.iter().any(|(_, p)| p.is_none())
            || matches!(message.text, Some(None))
        {
            return Err(invalid());
        }
        // `tracking: false` in the front matter: links as written, no pixel.
        let untracked = RenderOptions { default_timezone: options.default_timezone, links: &Untracked };
        let options = if message.tracking { options } else { &untracked };
        let data = serde_json::to_value(context)
            .map_err(|e| RenderError::Failed { location: name.to_string(), reason: e.to_string() })?;
        // One context for every part: cloning the member's JSON per part was most of the
        // cost of a render.
        let mut data = Context::from(data);
        let registry_name = message.registry_name();
        let field = |key: &str, data: &Context| -> Result<Option<String>, RenderError> {
            match message.field(key) {
                Some(_) => self
                    .run(&self.registries.text, &format!("{registry_name}#{key}"), data, options, &shelved)
                    .map(Some),
                None => Ok(None),
            }
        };
        match channel {
            Channel::Email => {
                let subject = field("subject", &data)?.ok_or_else(invalid)?;
                let subject = one_line(&subject);
                let preheader = field("preheader", &data)?.map(|p| one_line(&p));
                let from = field("from", &data)?.map(|p| one_line(&p));
                let reply_to = field("reply_to", &data)?.map(|p| one_line(&p));
                data.data_mut()["message"] = serde_json::json!({
                    "subject": subject,
                    "preheader": preheader.clone().unwrap_or_default(),
                });
                let html_name =
                    if message.layout.is_some() { layout_wrapper_name(message) } else { registry_name.clone() };
                let mut html = self.run(&self.registries.html, &html_name, &data, options, &shelved)?;
                let text = match &message.text {
                    Some(_) => {
                        self.run(&self.registries.text, &format!("{registry_name}.txt"), &data, options, &shelved)?
                    }
                    None => plain_text::from_html(&html),
                };
                if let Some(pixel) = options.links.open_pixel() {
                    html = with_pixel(html, &pixel);
                }
                Ok(Rendered::Email { subject, preheader, from, reply_to, html, text })
            }
            Channel::Sms => {
                let body = self.run(&self.registries.text, &registry_name, &data, options, &shelved)?;
                Ok(Rendered::Sms { body: body.trim().to_string() })
            }
            Channel::Push => {
                let title = field("title", &data)?.ok_or_else(invalid)?;
                let body = self.run(&self.registries.text, &registry_name, &data, options, &shelved)?;
                Ok(Rendered::Push {
                    title: one_line(&title),
                    body: body.trim().to_string(),
                    deep_link: field("deep_link", &data)?.map(|s| s.trim().to_string()),
                    image: field("image", &data)?.map(|s| s.trim().to_string()),
                })
            }
            Channel::Webhook => {
                let body = self.run(&self.registries.json, &registry_name, &data, options, &shelved)?;
                let body = serde_json::from_str(&body)
                    .map_err(|e| RenderError::NotJson { name: name.to_string(), reason: e.to_string() })?;
                Ok(Rendered::Webhook { body })
            }
        }
    }

    /// Renders one registered template with the per-render helpers (`link`, `date`).
    fn run(
        &self,
        registry: &Handlebars<'static>,
        name: &str,
        context: &Context,
        options: &RenderOptions<'_>,
        shelved: &Shelved<'_>,
    ) -> Result<String, RenderError> {
        let template = registry.get_template(name).ok_or_else(|| RenderError::Failed {
            location: name.to_string(),
            reason: "template is not registered".into(),
        })?;
        let mut rc = RenderContext::new(None);
        rc.register_local_helper("link", Box::new(Link { tracker: options.links }));
        rc.register_local_helper("date", Box::new(Date { default_timezone: options.default_timezone }));
        for (helper, recent) in [("recommend", false), ("bought_recently", true)] {
            let def = helper::Shelved { shelf: shelved.shelf, tracker: options.links, shown: shelved.shown, recent };
            rc.register_local_helper(helper, Box::new(def));
        }
        let mut out = StringOutput::new();
        template.render(registry, context, &mut rc, &mut out).map_err(|e| self.locate(name, &e))?;
        out.into_string().map_err(|e| RenderError::Failed { location: name.to_string(), reason: e.to_string() })
    }

    /// Turns a handlebars error into one that names the file, line and column.
    fn locate(&self, fallback: &str, error: &handlebars::RenderError) -> RenderError {
        let reason = match error.reason() {
            RenderErrorReason::MissingVariable(Some(path)) => format!("`{path}` has no value"),
            RenderErrorReason::MissingVariable(None) => "a variable has no value".to_string(),
            other => other.to_string(),
        };
        let name = error.template_name.as_deref().unwrap_or(fallback);
        let location = match (self.part_named(name), error.line_no, error.column_no) {
            (Some(part), Some(line), Some(col)) => {
                let (line, col) = part.file.line_col(part.tag_span(line, col).start);
                format!("{}:{line}:{col}", part.file.path().display())
            }
            (Some(part), _, _) => part.file.path().display().to_string(),
            _ => format!("template `{name}`"),
        };
        RenderError::Failed { location, reason }
    }
}

/// The open pixel goes last in the body: before the last `</body>`, or at the end.
fn with_pixel(mut html: String, pixel: &str) -> String {
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => html.insert_str(at, pixel),
        None => {
            if !html.ends_with('\n') {
                html.push('\n');
            }
            html.push_str(pixel);
            html.push('\n');
        }
    }
    html
}

/// Headers are one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The member as templates see it: stored fields, derived fields, the computed ones at
/// `now`, and `timezone` filled from the default. Absent (null) fields are left out so that
/// strict rendering reports them.
pub fn member_value(member: &Member, now: DateTime<Utc>, default_timezone: Tz) -> Value {
    let mut value = serde_json::to_value(member).unwrap_or_else(|_| Value::Object(Map::new()));
    let Value::Object(map) = &mut value else { return value };
    map.retain(|_, v| !v.is_null());
    let timezone = member.timezone.as_deref().and_then(|tz| tz.parse::<Tz>().ok()).unwrap_or(default_timezone);
    map.insert("timezone".into(), Value::String(timezone.name().to_string()));
    let days = |at: Option<DateTime<Utc>>| at.map(|at| (now - at).num_days());
    if let Some(d) = days(member.last_order_at) {
        map.insert("days_since_last_order".into(), d.into());
    }
    if let Some(d) = days(member.joined_at) {
        map.insert("age_days".into(), d.into());
    }
    if let Some(birthday) = member.birthday {
        let today = now.with_timezone(&timezone).date_naive();
        if let Some(d) = days_until(birthday, today) {
            map.insert("days_until_birthday".into(), d.into());
        }
    }
    value
}

/// Days from `today` to the next birthday (0 on the day); 29 February is kept on
/// 28 February in common years.
fn days_until(birthday: Birthday, today: NaiveDate) -> Option<i64> {
    let on = |year: i32| {
        NaiveDate::from_ymd_opt(year, birthday.month, birthday.day)
            .or_else(|| NaiveDate::from_ymd_opt(year, birthday.month, birthday.day - 1))
    };
    [today.year(), today.year() + 1].into_iter().filter_map(on).find(|d| *d >= today).map(|d| (d - today).num_days())
}

/// The triggering event as templates see it: its properties, with `id`, `member_id`,
/// `name` and `occurred_at` on top.
pub fn event_value(event: &Event) -> Value {
    let mut map = match &event.properties {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    map.insert("id".into(), event.id.clone().into());
    map.insert("member_id".into(), event.member_id.clone().into());
    map.insert("name".into(), event.name.clone().into());
    map.insert("occurred_at".into(), event.occurred_at.to_rfc3339().into());
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_pixel_goes_before_the_end_of_the_body() {
        assert_eq!(with_pixel("<html><BODY>x</BODY></html>".into(), "<img>"), "<html><BODY>x<img></BODY></html>");
        assert_eq!(with_pixel("<p>x</p>".into(), "<img>"), "<p>x</p>\n<img>\n");
    }

    #[test]
    fn birthdays_count_down_and_feb_29_falls_on_feb_28_in_common_years() {
        let feb29 = Birthday { year: None, month: 2, day: 29 };
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(days_until(feb29, day(2025, 2, 28)), Some(0));
        assert_eq!(days_until(feb29, day(2024, 2, 28)), Some(1));
        assert_eq!(days_until(Birthday { year: Some(1990), month: 1, day: 1 }, day(2025, 12, 31)), Some(1));
    }

    #[test]
    fn absent_member_fields_are_left_out_and_timezone_is_filled() {
        let member = Member { id: "m1".into(), points: 10, ..Member::default() };
        let now = "2025-01-01T00:00:00Z".parse().unwrap();
        let value = member_value(&member, now, chrono_tz::Asia::Shanghai);
        assert_eq!(value["points"], 10);
        assert_eq!(value["timezone"], "Asia/Shanghai");
        assert!(value.get("first_name").is_none());
    }
}
