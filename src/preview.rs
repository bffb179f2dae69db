//! `tidings preview JOURNEY STEP --member ID|FILE`: the message one send step would give
//! one member, rendered exactly as the engine renders it, and the context it came from.
//!
//! [`render`] is the pure part: journey, step, member, trigger event, variant and `now` in,
//! a [`Preview`] out (which variant the member is assigned, the rendered message, its SMS
//! segment count, the context). [`run`] is the edge: it finds the member in the database
//! or reads a one-member fixture (through the importer, so the member is exactly what an
//! import would store: checked, folded, with lifecycle and CLV), writes the email's HTML to
//! a file and prints.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::Config;
use crate::journey::{Journey, StepKind, Trigger};
use crate::member::{Event, Member};
use crate::sms_segments::{self, Segments};
use crate::template::{
    JourneyInfo, Links, MessageContext, RenderError, RenderOptions, Rendered, ShopInfo, StepInfo, TemplateCatalog,
    Untracked, event_value, member_value,
};

/// Which variant was rendered, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// A plain send: no variants.
    Plain,
    /// The variant this member is assigned (the hash of member, journey and step).
    Assigned(String),
    /// The one asked for with `--variant`.
    Asked(String),
    /// The member is in the holdout and would get nothing; this variant is shown anyway.
    Holdout(String),
}

impl Chosen {
    pub fn name(&self) -> Option<&str> {
        match self {
            Chosen::Plain => None,
            Chosen::Assigned(n) | Chosen::Asked(n) | Chosen::Holdout(n) => Some(n),
        }
    }

    fn describe(&self) -> String {
        match self {
            Chosen::Plain => "none (a plain send)".to_string(),
            Chosen::Assigned(n) => format!("{n} (this member's assignment)"),
            Chosen::Asked(n) => format!("{n} (asked for with --variant)"),
            Chosen::Holdout(n) => {
                format!("{n} — but this member is in the holdout and would get nothing (pass --variant to pick one)")
            }
        }
    }
}

/// A rendered preview.
#[derive(Debug, Clone)]
pub struct Preview {
    pub journey: String,
    pub step: String,
    pub member: String,
    pub channel: crate::channel::Channel,
    pub template: String,
    pub chosen: Chosen,
    pub message: Rendered,
    /// For SMS: what the text costs.
    pub segments: Option<Segments>,
    pub context: MessageContext,
    /// The products `recommend` showed, by id, in order.
    pub products: Vec<String>,
}

/// Why a preview cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("no step `{step}` in journey `{journey}`{hint}")]
    UnknownStep { journey: String, step: String, hint: String },
    #[error("step `{step}` of `{journey}` is a {kind} step, not a send: only send steps have a message{hint}")]
    NotASend { journey: String, step: String, kind: &'static str, hint: String },
    #[error("step `{step}` has no variant `{variant}`; its variants are: {known}")]
    UnknownVariant { step: String, variant: String, known: String },
    #[error("step `{step}` has no variants; leave out --variant")]
    NoVariants { step: String },
    /// The template does not render for this member (a send would fail the same way).
    #[error("the message does not render for this member: {0}")]
    Render(#[from] RenderError),
}

impl PreviewError {
    /// Bad usage (2) or a problem with the message (1).
    pub fn exit_code(&self) -> u8 {
        match self {
            PreviewError::Render(_) => 1,
            _ => 2,
        }
    }
}

fn kind_name(kind: &StepKind) -> &'static str {
    match kind {
        StepKind::Send(_) => "send",
        StepKind::Wait(_) => "wait",
        StepKind::Branch { .. } => "branch",
        StepKind::Split(_) => "split",
        StepKind::Update(_) => "update",
        StepKind::Exit => "exit",
    }
}

/// The send steps of a journey, as a hint.
fn send_steps(journey: &Journey) -> String {
    let sends: Vec<&str> =
        journey.steps.iter().filter(|s| matches!(s.kind, StepKind::Send(_))).map(|s| s.id.as_str()).collect();
    if sends.is_empty() { String::new() } else { format!("; its send steps are: {}", sends.join(", ")) }
}

/// What the preview renders with besides the journey.
pub struct Inputs<'a> {
    pub templates: &'a TemplateCatalog,
    pub member: &'a Member,
    /// The triggering event, for `event.*` in templates.
    pub event: Option<&'a Event>,
    /// `--variant`.
    pub variant: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub default_timezone: chrono_tz::Tz,
    pub shop: ShopInfo,
    pub public_url: &'a str,
    /// The member's product shelf, read by the edge as the engine reads it (`None`: no
    /// products, `recommend` shows nothing).
    pub shelf: Option<&'a crate::recommend::Shelf>,
}

/// Renders step `step` of `journey` for a member. Pure.
pub fn render(journey: &Journey, step: &str, inputs: &Inputs) -> Result<Preview, PreviewError> {
    let Some((_, this)) = journey.step_by_id(step) else {
        let closest = journey
            .steps
            .iter()
            .map(|s| (strsim::jaro_winkler(step, &s.id), s.id.as_str()))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score > 0.8)
            .map(|(_, id)| format!(" (did you mean `{id}`?)"))
            .unwrap_or_else(|| send_steps(journey));
        return Err(PreviewError::UnknownStep { journey: journey.id.clone(), step: step.to_string(), hint: closest });
    };
    let StepKind::Send(send) = &this.kind else {
        return Err(PreviewError::NotASend {
            journey: journey.id.clone(),
            step: step.to_string(),
            kind: kind_name(&this.kind),
            hint: send_steps(journey),
        });
    };
    let plain = send.variants.len() == 1 && send.variants[0].name.is_none();
    let (variant, chosen) = match inputs.variant {
        Some(_) if plain => return Err(PreviewError::NoVariants { step: step.to_string() }),
        Some(asked) => match send.variants.iter().find(|v| v.name.as_deref() == Some(asked)) {
            Some(v) => (v, Chosen::Asked(asked.to_string())),
            None => {
                let known: Vec<&str> = send.variants.iter().filter_map(|v| v.name.as_deref()).collect();
                return Err(PreviewError::UnknownVariant {
                    step: step.to_string(),
                    variant: asked.to_string(),
                    known: known.join(", "),
                });
            }
        },
        None => {
            let bucket = crate::assign::bucket(&inputs.member.id, &journey.id, step, "");
            match crate::assign::pick(bucket, send.variants.iter().map(|v| v.weight)) {
                Some(i) if plain => (&send.variants[i], Chosen::Plain),
                Some(i) => {
                    let v = &send.variants[i];
                    (v, Chosen::Assigned(v.name.clone().unwrap_or_default()))
                }
                None => {
                    let v = &send.variants[0];
                    (v, Chosen::Holdout(v.name.clone().unwrap_or_else(|| "the message".to_string())))
                }
            }
        }
    };
    let base = inputs.public_url.trim_end_matches('/');
    let context = MessageContext {
        member: member_value(inputs.member, inputs.now, inputs.default_timezone),
        event: inputs.event.map(event_value).unwrap_or_else(|| json!({})),
        journey: JourneyInfo { id: journey.id.clone(), name: journey.name.clone() },
        step: StepInfo { id: step.to_string() },
        variant: variant.name.clone(),
        vars: variant.vars.clone().into_iter().collect(),
        links: Links { unsubscribe: format!("{base}/u/preview"), preferences: format!("{base}/u/preview") },
        shop: inputs.shop.clone(),
    };
    let options = RenderOptions { default_timezone: inputs.default_timezone, links: &Untracked };
    let no_shelf = crate::recommend::Shelf::default();
    let shelf = inputs.shelf.unwrap_or(&no_shelf);
    let (message, products) =
        inputs.templates.render_shelved(&variant.template, send.channel, &context, &options, shelf)?;
    let segments = match &message {
        Rendered::Sms { body } => Some(sms_segments::count(body)),
        _ => None,
    };
    Ok(Preview {
        journey: journey.id.clone(),
        step: step.to_string(),
        member: inputs.member.id.clone(),
        channel: send.channel,
        template: variant.template.clone(),
        chosen,
        message,
        segments,
        context,
        products,
    })
}

impl Preview {
    /// A file name for the email's HTML: journey, step, member (safe characters only).
    pub fn html_file_name(&self) -> String {
        let safe = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
        };
        format!("{}-{}-{}.html", safe(&self.journey), safe(&self.step), safe(&self.member))
    }

    /// For people. `html` is where the email's HTML was written.
    pub fn render_table(&self, html: Option<&Path>) -> String {
        let mut out = format!(
            "preview of {}/{} for member {} — {} template `{}`\n",
            self.journey, self.step, self.member, self.channel, self.template
        );
        let field = |out: &mut String, key: &str, value: &str| out.push_str(&format!("{key:<11}{value}\n"));
        field(&mut out, "variant", &self.chosen.describe());
        let block = |out: &mut String, key: &str, text: &str| {
            out.push_str(&format!("{key}:\n"));
            for line in text.lines() {
                out.push_str(&format!("  {line}\n").replace("  \n", "\n"));
            }
        };
        match &self.message {
            Rendered::Email { subject, preheader, from, reply_to, html: body, text } => {
                field(&mut out, "subject", subject);
                field(&mut out, "preheader", preheader.as_deref().unwrap_or("-"));
                if let Some(from) = from {
                    field(&mut out, "from", from);
                }
                if let Some(reply_to) = reply_to {
                    field(&mut out, "reply-to", reply_to);
                }
                let where_ = html.map_or_else(|| "(not written)".to_string(), |p| p.display().to_string());
                field(&mut out, "html", &format!("{where_} ({} bytes)", body.len()));
                block(&mut out, "text", text);
            }
            Rendered::Sms { body } => {
                block(&mut out, "text", body);
                if let Some(s) = &self.segments {
                    field(
                        &mut out,
                        "segments",
                        &format!(
                            "{} ({}, {} characters, {} {})",
                            s.segments,
                            s.encoding.as_str(),
                            s.characters,
                            s.units,
                            if s.encoding == sms_segments::Encoding::Gsm7 { "septets" } else { "UTF-16 units" }
                        ),
                    );
                }
            }
            Rendered::Push { title, body, deep_link, image } => {
                field(&mut out, "title", title);
                field(&mut out, "body", body);
                field(&mut out, "deep link", deep_link.as_deref().unwrap_or("-"));
                if let Some(image) = image {
                    field(&mut out, "image", image);
                }
            }
            Rendered::Webhook { body } => {
                block(&mut out, "body", &serde_json::to_string_pretty(body).unwrap_or_default());
            }
        }
        if !self.products.is_empty() {
            field(&mut out, "products", &self.products.join(", "));
        }
        let context = serde_json::to_value(&self.context).unwrap_or(Value::Null);
        block(&mut out, "context", &serde_json::to_string_pretty(&context).unwrap_or_default());
        out
    }

    /// For programs: one JSON object.
    pub fn to_json(&self, html: Option<&Path>) -> Value {
        let message = match &self.message {
            Rendered::Email { subject, preheader, from, reply_to, html: body, text } => json!({
                "subject": subject, "preheader": preheader, "from": from, "reply_to": reply_to,
                "text": text, "html": body, "html_file": html.map(|p| p.display().to_string()),
            }),
            Rendered::Sms { body } => json!({ "text": body, "segments": self.segments }),
            Rendered::Push { title, body, deep_link, image } => {
                json!({ "title": title, "body": body, "deep_link": deep_link, "image": image })
            }
            Rendered::Webhook { body } => json!({ "body": body }),
        };
        json!({
            "journey": self.journey,
            "step": self.step,
            "member": self.member,
            "channel": self.channel.as_str(),
            "template": self.template,
            "variant": self.chosen.name(),
            "holdout": matches!(self.chosen, Chosen::Holdout(_)),
            "message": message,
            "products": self.products,
            "context": self.context,
        })
    }
}

/// A one-member fixture: a JSON object (one line or pretty-printed), JSON lines or CSV with
/// one member. Returns the member as an import would store it.
async fn member_from_file(path: &Path, config: &Config, now: DateTime<Utc>) -> anyhow::Result<Member> {
    use crate::import::{ImportKind, InputFormat, Options};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (format, bytes, id) = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => {
            let id = object.get("id").and_then(Value::as_str).map(str::to_string);
            let line = serde_json::to_vec(&Value::Object(object))?;
            (InputFormat::JsonLines, line, id)
        }
        _ => {
            let format = InputFormat::detect(path, &bytes);
            let id = match format {
                InputFormat::JsonLines => {
                    let text = String::from_utf8_lossy(&bytes);
                    let mut objects = text.lines().filter(|l| !l.trim().is_empty());
                    let first = objects.next().and_then(|l| serde_json::from_str::<Value>(l).ok());
                    anyhow::ensure!(objects.next().is_none(), "{} holds more than one member", path.display());
                    first.and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
                }
                InputFormat::Csv => {
                    let mut csv = csv::Reader::from_reader(bytes.as_slice());
                    let column = csv.headers()?.iter().position(|h| h.trim() == "id");
                    let mut records = csv.records();
                    let first = records.next().transpose()?;
                    anyhow::ensure!(records.next().is_none(), "{} holds more than one member", path.display());
                    column.and_then(|c| first.and_then(|r| r.get(c).map(str::to_string)))
                }
            };
            (format, bytes, id)
        }
    };
    let id = id.with_context(|| format!("{}: no member with an `id`", path.display()))?;
    let store = crate::store::Store::open("sqlite::memory:").await?;
    let mut options = Options::new(now, config.state_settings());
    options.bulk = Some(false);
    let len = bytes.len() as u64;
    let summary = crate::import::import_reader(
        &store,
        ImportKind::Members,
        format,
        std::io::Cursor::new(bytes),
        Some(len),
        &options,
    )
    .await?;
    if let Some(r) = summary.rejected.first() {
        anyhow::bail!("{}:{}: {}", path.display(), r.line, r.reason);
    }
    store.member(&id).await?.with_context(|| format!("{}: no member `{id}` after reading it", path.display()))
}

fn event_from_file(path: &Path) -> anyhow::Result<Event> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_json::from_str(text.trim()).with_context(|| format!("{}: not JSON", path.display()))?;
    let Value::Object(object) = value else { anyhow::bail!("{}: expected one JSON event object", path.display()) };
    crate::import::event_from_json(object).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// What `tidings preview` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub journey: String,
    pub step: String,
    /// A member id, or the path of a fixture file.
    pub member: String,
    pub variant: Option<String>,
    /// A JSON file with the triggering event (default: the member's latest event of the
    /// trigger's name, for members in the database).
    pub event: Option<PathBuf>,
    pub json: bool,
}

/// `tidings preview`: exit 0 with the message, 1 when the member is unknown or the message
/// does not render, 2 for a journey, step or variant that does not exist or a step that
/// sends nothing.
pub async fn run(config: &Config, request: &Request) -> anyhow::Result<ExitCode> {
    let sources = crate::project::Sources::standard(&config.workflows_dir, &config.templates_dir)
        .with_context(|| format!("reading {}", config.workflows_dir.display()))?;
    let project = crate::project::Project::load(&sources, config.timezone());
    let Some(journey) = project.journeys.iter().find(|j| j.id == request.journey) else {
        let file = format!("{}.yaml", request.journey);
        let broken: Vec<_> = project
            .diagnostics
            .iter()
            .filter(|d| d.file.path().file_name().is_some_and(|n| n.to_string_lossy() == file))
            .collect();
        if !broken.is_empty() {
            for d in broken {
                eprintln!("{}", d.render());
            }
            eprintln!("error: journey `{}` has errors; fix them to preview it", request.journey);
            return Ok(ExitCode::from(1));
        }
        let known: Vec<&str> = project.journeys.iter().map(|j| j.id.as_str()).collect();
        eprintln!(
            "error: no journey `{}` in {}; the journeys are: {}",
            request.journey,
            config.workflows_dir.display(),
            known.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let now = Utc::now();
    let path = Path::new(&request.member);
    let mut shelf = None;
    let (member, mut event) = if path.is_file() {
        (member_from_file(path, config, now).await?, None)
    } else {
        let store = crate::store::Store::open(&config.database_url)
            .await
            .with_context(|| format!("opening {}", config.database_url))?;
        let Some(member) = store.member(&request.member).await? else {
            eprintln!(
                "error: no member `{}` in {} (and no such file): pass a member id or a fixture file",
                request.member, config.database_url
            );
            return Ok(ExitCode::from(1));
        };
        let event = match &journey.trigger {
            Trigger::Event { name, .. } => {
                store.events_of(&member.id, 1_000).await?.into_iter().find(|e| e.name == *name)
            }
            _ => None,
        };
        // The shelf as the engine would read it for this member now.
        let settings = config.recommendations.settings();
        shelf = store.shelves(std::slice::from_ref(&member.id), now, &settings).await?.remove(&member.id);
        (member, event)
    };
    if let Some(file) = &request.event {
        event = Some(event_from_file(file)?);
    }
    let inputs = Inputs {
        templates: &project.templates,
        member: &member,
        event: event.as_ref(),
        variant: request.variant.as_deref(),
        now,
        default_timezone: config.timezone(),
        shop: crate::engine::shop_info(config),
        public_url: &config.public_url,
        shelf: shelf.as_ref(),
    };
    let preview = match render(journey, &request.step, &inputs) {
        Ok(preview) => preview,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, PreviewError::Render(_))
                && event.is_none()
                && matches!(journey.trigger, Trigger::Event { .. })
            {
                eprintln!("hint: this journey starts on an event; pass one with --event FILE for `event.*` values");
            }
            return Ok(ExitCode::from(e.exit_code()));
        }
    };
    let html = match &preview.message {
        Rendered::Email { html, .. } => {
            let dir = std::env::temp_dir().join("tidings-preview");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let file = dir.join(preview.html_file_name());
            std::fs::write(&file, html).with_context(|| format!("writing {}", file.display()))?;
            Some(file)
        }
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    if request.json {
        writeln!(out, "{}", preview.to_json(html.as_deref()))?;
    } else {
        write!(out, "{}", preview.render_table(html.as_deref()))?;
    }
    Ok(ExitCode::SUCCESS)
}
