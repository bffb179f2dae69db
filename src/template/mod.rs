//! Message templates (DESIGN §3): loading, front matter, partials and layouts, and the
//! variable check that `tidings validate` runs against the member schema and step vars.
//!
//! A [`TemplateCatalog`] is loaded once from `templates/` (the only I/O here) and is then
//! pure: [`TemplateCatalog::check_variables`] walks handlebars' parsed tree, and
//! [`TemplateCatalog::render`] renders in strict mode with the registries built at load.
//!
//! Layout of the directory:
//! - `NAME.email.hbs` — front matter (`subject` required; `preheader`, `from`, `reply_to`,
//!   `layout`, `tracking: false` to leave links untracked and add no open pixel) and the
//!   HTML body; `NAME.email.txt.hbs` — the optional plain-text part.
//! - `NAME.sms.hbs` — the SMS text; `NAME.push.hbs` — front matter (`title` required;
//!   `deep_link`, `image`) and the body; `NAME.webhook.hbs` — a JSON body.
//! - `partials/NAME.hbs` — `{{> NAME}}` in any template; `layouts/NAME.hbs` — wraps an
//!   email's HTML body when its front matter says `layout: NAME`; the layout places the
//!   body with `{{> @partial-block}}`.
//!
//! NAME may contain `/` (`winback/offer` is `winback/offer.email.hbs`).
//!
//! Diagnostic codes: `T001` syntax error (and a helper called with the wrong number of
//! arguments), `T002` front matter, `T003` unknown variable or helper, `T004` unknown
//! partial or layout, `T005` a file that is not a template (warning).

mod check;
mod context;
mod file_name;
mod format;
mod front_matter;
mod helper;
mod part;
mod plain_text;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::channel::Channel;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::{SourceFile, Span};

use check::{Fragments, Lint, VariableCheck};
use context::Provided;
use file_name::FileRole;
use part::Part;

pub use context::{JOURNEY_KEYS, LINK_KEYS, MESSAGE_KEYS, ROOT_KEYS, SHOP_KEYS, STEP_KEYS};
pub use format::{date as format_date, money as format_money};
pub use front_matter::{EMAIL_KEYS, PUSH_KEYS};
pub use helper::{LinkTracker, Untracked};
pub use render::{
    JourneyInfo, Links, MessageContext, RenderError, RenderOptions, Rendered, ShopInfo, StepInfo, event_value,
    member_value,
};

/// Every template under a directory, compiled, with the registries to render them.
pub struct TemplateCatalog {
    messages: BTreeMap<(Channel, String), Message>,
    partials: Fragments,
    layouts: Fragments,
    registries: render::Registries,
}

impl std::fmt::Debug for TemplateCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateCatalog")
            .field("messages", &self.messages.keys().collect::<Vec<_>>())
            .field("partials", &self.partials.keys().collect::<Vec<_>>())
            .field("layouts", &self.layouts.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One message template: `NAME.CHANNEL.hbs` and, for email, its text part.
#[derive(Debug)]
struct Message {
    name: String,
    channel: Channel,
    file: Arc<SourceFile>,
    /// Front matter values other than `layout`, each compiled; `None` if it failed.
    fields: Vec<(String, Option<Part>)>,
    /// The layout named in the front matter, when it exists.
    layout: Option<String>,
    /// Front matter `tracking` (email; default true): tracked links and the open pixel.
    tracking: bool,
    /// `None` when the body failed to compile (reported at load).
    body: Option<Part>,
    /// The `NAME.email.txt.hbs` part.
    text: Option<Option<Part>>,
}

impl TemplateCatalog {
    /// Whether any template, partial or layout calls `recommend` or `bought_recently`: the
    /// engine reads members' shelves only then (a shop without recommendations pays no
    /// queries for them).
    pub fn uses_shelf(&self) -> bool {
        let mentions = |file: &SourceFile| file.text().contains("recommend") || file.text().contains("bought_recently");
        self.messages.values().any(|m| mentions(&m.file))
            || self.partials.values().chain(self.layouts.values()).flatten().any(|p| mentions(&p.file))
            || self.messages.values().flat_map(|m| m.text.iter().flatten()).any(|p| mentions(&p.file))
    }
}

impl Message {
    fn registry_name(&self) -> String {
        format!("{}.{}", self.name, self.channel)
    }

    fn field(&self, key: &str) -> Option<&Option<Part>> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, p)| p)
    }
}

impl TemplateCatalog {
    /// Loads every template under `dir` (DESIGN §3 naming): `NAME.email.hbs` (YAML front
    /// matter between `---` lines: `subject` required, optional `preheader`, `from`,
    /// `reply_to`, and `layout` naming a file in layouts/), optional `NAME.email.txt.hbs`,
    /// `NAME.sms.hbs`, `NAME.push.hbs` (front matter `title` required, optional `deep_link`,
    /// `image`), `NAME.webhook.hbs` (a JSON body). NAME may contain `/`. `partials/` and
    /// `layouts/` are registered by name. Returns the catalog and every problem found.
    pub fn load(dir: &Path) -> (TemplateCatalog, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let mut files = Vec::new();
        if let Err(error) = list_files(dir, &mut files) {
            let file = SourceFile::new(dir, "");
            diagnostics.push(
                Diagnostic::error(
                    "T001",
                    &file,
                    Span::new(0, 0),
                    format!("cannot read the templates directory: {error}"),
                )
                .with_hint("templates live in `templates/` beside `tidings.toml`, or pass `--templates DIR`"),
            );
        }

        let mut roles = Vec::new();
        for path in files {
            let relative = relative_name(dir, &path);
            match file_name::classify(&relative) {
                FileRole::Ignored => {}
                FileRole::Unrecognised { reason } => {
                    let file = SourceFile::new(&path, "");
                    diagnostics.push(
                        Diagnostic::warning(
                            "T005",
                            &file,
                            Span::new(0, 0),
                            format!("`{relative}` is not a template and is ignored"),
                        )
                        .with_hint(reason),
                    );
                }
                role => match SourceFile::read(&path) {
                    Ok(file) => roles.push((role, file)),
                    Err(error) => {
                        let file = SourceFile::new(&path, "");
                        diagnostics.push(Diagnostic::error(
                            "T001",
                            &file,
                            Span::new(0, 0),
                            format!("cannot read `{relative}`: {error}"),
                        ));
                    }
                },
            }
        }
        let mut catalog = Self::from_files(roles, &mut diagnostics);
        catalog.registries = render::Registries::build(&catalog);
        (catalog, diagnostics)
    }

    fn from_files(files: Vec<(FileRole, Arc<SourceFile>)>, diagnostics: &mut Vec<Diagnostic>) -> TemplateCatalog {
        let mut catalog = TemplateCatalog {
            messages: BTreeMap::new(),
            partials: BTreeMap::new(),
            layouts: BTreeMap::new(),
            registries: render::Registries::default(),
        };
        let mut texts = Vec::new();
        let mut pending_layouts = Vec::new();
        for (role, file) in files {
            match role {
                FileRole::Partial { name } => {
                    let part = compile_tail(&file, 0, &name, diagnostics);
                    catalog.partials.insert(name, part);
                }
                FileRole::Layout { name } => {
                    let part = compile_tail(&file, 0, &format!("layouts/{name}"), diagnostics);
                    catalog.layouts.insert(name, part);
                }
                FileRole::EmailText { name } => texts.push((name, file)),
                FileRole::Message { name, channel } => {
                    let (message, layout) = load_message(name, channel, file, diagnostics);
                    if let Some(layout) = layout {
                        pending_layouts.push((message.channel, message.name.clone(), layout));
                    }
                    catalog.messages.insert((channel, message.name.clone()), message);
                }
                FileRole::Ignored | FileRole::Unrecognised { .. } => {}
            }
        }

        for (name, file) in texts {
            match catalog.messages.get_mut(&(Channel::Email, name.clone())) {
                Some(message) => {
                    warn_front_matter(&file, "the text part of an email", diagnostics);
                    message.text = Some(compile_tail(&file, 0, &format!("{name}.email.txt"), diagnostics));
                }
                None => diagnostics.push(
                    Diagnostic::warning(
                        "T005",
                        &file,
                        Span::new(0, 0),
                        format!("`{name}.email.txt.hbs` has no `{name}.email.hbs` beside it and is ignored"),
                    )
                    .with_hint("the text part belongs to an email: add the HTML template with its front matter"),
                ),
            }
        }

        for (channel, name, (layout, span)) in pending_layouts {
            let message = catalog.messages.get_mut(&(channel, name)).expect("message was just inserted");
            if catalog.layouts.contains_key(&layout) {
                message.layout = Some(layout);
            } else {
                diagnostics.push(
                    Diagnostic::error("T004", &message.file, span, format!("unknown layout `{layout}`")).with_hint(
                        did_you_mean(&layout, catalog.layouts.keys().map(String::as_str))
                            .unwrap_or_else(|| format!("a layout is a file `templates/layouts/{layout}.hbs`")),
                    ),
                );
            }
        }

        let mut lint =
            Lint { partials: &catalog.partials, layouts: &catalog.layouts, partial_block: true, out: Vec::new() };
        for part in catalog.partials.values().chain(catalog.layouts.values()).flatten() {
            lint.run(part);
        }
        lint.partial_block = false;
        for message in catalog.messages.values() {
            for part in message.parts() {
                lint.run(part);
            }
        }
        diagnostics.extend(lint.out);
        catalog
    }

    /// Whether a template `name` exists for `channel` (even if it has errors).
    pub fn has(&self, name: &str, channel: Channel) -> bool {
        self.messages.contains_key(&(channel, name.to_string()))
    }

    /// How many message templates (name and channel) there are.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Names available for a channel, for "did you mean".
    pub fn names(&self, channel: Channel) -> Vec<&str> {
        self.messages.keys().filter(|(c, _)| *c == channel).map(|(_, n)| n.as_str()).collect()
    }

    /// The file a template was loaded from, for diagnostics that point at it.
    pub fn file(&self, name: &str, channel: Channel) -> Option<&Arc<SourceFile>> {
        self.messages.get(&(channel, name.to_string())).map(|m| &m.file)
    }

    /// Checks every variable the template (and the partials/layout it uses, and its front
    /// matter such as `subject`) reads against what the render context will provide:
    /// `member.<field of schema::MEMBER_FIELDS>`, `member.attributes.*`, `event.*`,
    /// `journey.id|name`, `step.id`, `variant`, `vars.<key>` with key in `vars`,
    /// `links.unsubscribe|preferences`, `shop.name|url|support_email|address`,
    /// and for an email's HTML body, text part and layout `message.subject|preheader`.
    /// Unknown paths are `T003` at the exact `{{...}}`, naming `used_by`.
    pub fn check_variables(
        &self,
        name: &str,
        channel: Channel,
        vars: &BTreeSet<String>,
        used_by: &str,
    ) -> Vec<Diagnostic> {
        let Some(message) = self.messages.get(&(channel, name.to_string())) else {
            return Vec::new();
        };
        let mut check = VariableCheck::new(&self.partials, &self.layouts, used_by);
        let front = Provided { vars, message: false };
        for (_, part) in &message.fields {
            if let Some(part) = part {
                check.run(part, &front);
            }
        }
        let body = Provided { vars, message: channel == Channel::Email };
        if let Some(part) = &message.body {
            check.run(part, &body);
        }
        if let Some(Some(part)) = &message.text {
            check.run(part, &body);
        }
        if let Some(Some(layout)) = message.layout.as_ref().and_then(|l| self.layouts.get(l)) {
            check.run(layout, &body);
        }
        check.out
    }

    /// Every compiled part, with the name it is registered under (for render errors).
    fn part_named(&self, registry_name: &str) -> Option<&Part> {
        let fragments = self.partials.values().chain(self.layouts.values()).flatten();
        let messages = self.messages.values().flat_map(Message::parts);
        fragments.chain(messages).find(|p| p.template.name.as_deref() == Some(registry_name))
    }
}

impl Message {
    fn parts(&self) -> impl Iterator<Item = &Part> {
        let fields = self.fields.iter().filter_map(|(_, p)| p.as_ref());
        fields.chain(self.body.iter()).chain(self.text.iter().flatten())
    }
}

/// Reads front matter (email, push), compiles the fields and the body. Returns the message
/// and the layout it asks for, with the span of its name.
fn load_message(
    name: String,
    channel: Channel,
    file: Arc<SourceFile>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Message, Option<(String, Span)>) {
    let registry_name = format!("{name}.{channel}");
    let keys = match channel {
        Channel::Email => Some(EMAIL_KEYS),
        Channel::Push => Some(PUSH_KEYS),
        Channel::Sms | Channel::Webhook => None,
    };
    let mut fields = Vec::new();
    let mut layout = None;
    let mut tracking = true;
    let body_start = match keys {
        Some(keys) => {
            let (entries, body_start, problems) = front_matter::parse(&file, keys, channel.as_str());
            diagnostics.extend(problems);
            for entry in entries {
                if entry.key == "layout" {
                    layout = Some((entry.value.trim().to_string(), entry.value_span));
                    continue;
                }
                if entry.key == "tracking" {
                    match entry.value.trim() {
                        "true" => tracking = true,
                        "false" => tracking = false,
                        other => diagnostics.push(
                            Diagnostic::error(
                                "T002",
                                &file,
                                entry.value_span,
                                format!("`tracking` is `true` or `false`, not `{other}`"),
                            )
                            .with_hint("`tracking: false` sends links as written and adds no open pixel"),
                        ),
                    }
                    continue;
                }
                let part_name = format!("{registry_name}#{}", entry.key);
                let part = match Part::value(&file, &entry.value, entry.value_span, body_start, &part_name) {
                    Ok(part) => Some(part),
                    Err(error) => {
                        diagnostics.push(error);
                        None
                    }
                };
                fields.push((entry.key, part));
            }
            body_start
        }
        None => {
            let what = if channel == Channel::Sms { "an SMS" } else { "a webhook body" };
            warn_front_matter(&file, what, diagnostics);
            0
        }
    };
    let body = compile_tail(&file, body_start, &registry_name, diagnostics);
    (Message { name, channel, file, fields, layout: None, tracking, body, text: None }, layout)
}

fn compile_tail(file: &Arc<SourceFile>, start: usize, name: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Part> {
    match Part::tail(file, start, name) {
        Ok(part) => Some(part),
        Err(error) => {
            diagnostics.push(error);
            None
        }
    }
}

/// Templates without front matter send a leading `---` block as text: say so.
fn warn_front_matter(file: &Arc<SourceFile>, what: &str, diagnostics: &mut Vec<Diagnostic>) {
    if let Ok(split) = front_matter::split(file.text())
        && split.yaml.is_some()
    {
        diagnostics.push(
            Diagnostic::warning(
                "T002",
                file,
                split.fence,
                format!("{what} has no front matter; these lines are sent as text"),
            )
            .with_hint("front matter is read only in `.email.hbs` and `.push.hbs` files"),
        );
    }
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type()?.is_dir() {
            if !hidden {
                list_files(&path, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests;
