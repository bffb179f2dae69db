//! Walks handlebars' parsed tree: the load-time lint (helpers and partials exist, T001,
//! T003, T004) and the variable check against what the render context provides (T003).

use std::collections::{BTreeMap, HashSet};

use handlebars::template::{BlockParam, HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

use super::context::{Missing, Node, Provided};
use super::helper;
use super::part::Part;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::Span;

/// Partials and layouts by name; `None` when the file failed to compile (already reported).
pub(crate) type Fragments = BTreeMap<String, Option<Part>>;

/// The partial a `{{> name}}` refers to: a partial, or `layouts/NAME`.
pub(crate) fn find_fragment<'a>(
    partials: &'a Fragments,
    layouts: &'a Fragments,
    name: &str,
) -> Option<&'a Option<Part>> {
    partials.get(name).or_else(|| name.strip_prefix("layouts/").and_then(|n| layouts.get(n)))
}

type Pos = Option<(usize, usize)>;

fn position(template: &Template, index: usize, inherited: Pos) -> Pos {
    template.mapping.get(index).map(|m| (m.0, m.1)).or(inherited)
}

fn span_at(part: &Part, pos: Pos) -> Span {
    match pos {
        Some((line, col)) => part.tag_span(line, col),
        None => part.whole(),
    }
}

fn block_templates(h: &HelperTemplate) -> impl Iterator<Item = &Template> {
    [&h.template, &h.inverse].into_iter().flatten()
}

// ---------------------------------------------------------------------------------------
// Load-time lint: helper names and arity, partial references.

pub(crate) struct Lint<'a> {
    pub partials: &'a Fragments,
    pub layouts: &'a Fragments,
    /// Whether `{{> @partial-block}}` is available (layouts and partials).
    pub partial_block: bool,
    pub out: Vec<Diagnostic>,
}

impl Lint<'_> {
    pub(crate) fn run(&mut self, part: &Part) {
        self.template(part, &part.template, None);
    }

    fn template(&mut self, part: &Part, template: &Template, inherited: Pos) {
        for (index, element) in template.elements.iter().enumerate() {
            let pos = position(template, index, inherited);
            match element {
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                    if let Some(name @ ("recommend" | "bought_recently")) = h.name.as_name()
                        && !h.params.is_empty()
                    {
                        let spec = helper::spec(name).expect("a tidings helper");
                        self.out.push(
                            Diagnostic::error(
                                "T001",
                                &part.file,
                                span_at(part, pos),
                                format!("`{name}` gives a list of products, not text"),
                            )
                            .with_hint(format!("write {}", spec.usage)),
                        );
                    }
                    self.call(part, h, pos)
                }
                TemplateElement::HelperBlock(h) => {
                    self.call(part, h, pos);
                    for t in block_templates(h) {
                        self.template(part, t, pos);
                    }
                }
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    if let Some(name) = d.name.as_name() {
                        self.partial(part, name, pos);
                    }
                    for p in d.params.iter().chain(d.hash.values()) {
                        self.param(part, p, pos);
                    }
                    if let Some(t) = &d.template {
                        self.template(part, t, pos);
                    }
                }
                TemplateElement::DecoratorBlock(d) => {
                    if let Some(t) = &d.template {
                        self.template(part, t, pos);
                    }
                }
                _ => {}
            }
        }
    }

    fn call(&mut self, part: &Part, h: &HelperTemplate, pos: Pos) {
        // `{{money}}` alone parses as a path, but renders as a call without arguments.
        if let Parameter::Path(Path::Relative((_, raw))) = &h.name
            && h.params.is_empty()
            && let Some(spec) = helper::spec(raw)
        {
            self.out.push(
                Diagnostic::error("T001", &part.file, span_at(part, pos), format!("`{raw}` needs an argument"))
                    .with_hint(format!("write {}", spec.usage)),
            );
        }
        if let Parameter::Name(name) = &h.name {
            if !helper::is_known(name) {
                self.out.push(
                    Diagnostic::error("T003", &part.file, span_at(part, pos), format!("unknown helper `{name}`"))
                        .with_optional_hint(did_you_mean(name, helper::all_names()))
                        .with_hint_if_none(format!(
                            "helpers are {}",
                            helper::all_names().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                        )),
                );
            } else if let Some(spec) = helper::spec(name) {
                if h.block {
                    self.out.push(
                        Diagnostic::error(
                            "T001",
                            &part.file,
                            span_at(part, pos),
                            format!("`{name}` is not a block helper"),
                        )
                        .with_hint(format!("write {}", spec.usage)),
                    );
                } else if let Some(problem) = helper::argument_problem(name, h) {
                    self.out.push(
                        Diagnostic::error("T001", &part.file, span_at(part, pos), problem)
                            .with_hint(format!("write {}", spec.usage)),
                    );
                } else if h.params.len() < spec.min || h.params.len() > spec.max {
                    let takes = if spec.min == spec.max {
                        format!("{}", spec.min)
                    } else {
                        format!("{} to {}", spec.min, spec.max)
                    };
                    self.out.push(
                        Diagnostic::error(
                            "T001",
                            &part.file,
                            span_at(part, pos),
                            format!("`{name}` takes {takes} argument(s), got {}", h.params.len()),
                        )
                        .with_hint(format!("write {}", spec.usage)),
                    );
                }
            }
        }
        for p in h.params.iter().chain(h.hash.values()) {
            self.param(part, p, pos);
        }
    }

    fn param(&mut self, part: &Part, p: &Parameter, pos: Pos) {
        if let Parameter::Subexpression(sub) = p
            && let TemplateElement::Expression(h) = sub.as_element()
        {
            self.call(part, h, pos);
        }
    }

    fn partial(&mut self, part: &Part, name: &str, pos: Pos) {
        if name == "@partial-block" {
            if !self.partial_block {
                self.out.push(
                    Diagnostic::error(
                        "T004",
                        &part.file,
                        span_at(part, pos),
                        "`@partial-block` outside a layout or partial",
                    )
                    .with_hint(
                        "only a layout (or a partial called as `{{#> name}}...{{/name}}`) can include its block",
                    ),
                );
            }
            return;
        }
        if part.inline_partials.contains(name) || find_fragment(self.partials, self.layouts, name).is_some() {
            return;
        }
        self.out.push(
            Diagnostic::error("T004", &part.file, span_at(part, pos), format!("unknown partial `{name}`"))
                .with_optional_hint(did_you_mean(name, self.partials.keys().map(String::as_str)))
                .with_hint_if_none(if self.partials.is_empty() {
                    "partials are files in `templates/partials/`, e.g. `partials/button.hbs` for `{{> button}}`"
                        .to_string()
                } else {
                    format!(
                        "partials are {}",
                        self.partials.keys().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    )
                }),
        );
    }
}

trait HintIfNone {
    fn with_hint_if_none(self, hint: String) -> Self;
}

impl HintIfNone for Diagnostic {
    fn with_hint_if_none(self, hint: String) -> Self {
        if self.hint.is_some() { self } else { self.with_hint(hint) }
    }
}

// ---------------------------------------------------------------------------------------
// The variable check.

/// One level of handlebars' block stack: what `this` is and which names are bound.
#[derive(Debug, Clone)]
struct Frame {
    node: Node,
    /// How the context of this frame is described in hints.
    label: String,
    /// Block params (`as |item i|`) and partial hash arguments.
    params: Vec<(String, Node)>,
    /// `@index`, `@key`, `@first`, `@last` are defined.
    each: bool,
    /// A partial boundary: block params of outer frames are not visible past it.
    partial: bool,
}

pub(crate) struct VariableCheck<'a> {
    pub partials: &'a Fragments,
    pub layouts: &'a Fragments,
    pub used_by: &'a str,
    pub out: Vec<Diagnostic>,
    seen: HashSet<(std::path::PathBuf, usize, usize, String)>,
    partial_stack: Vec<String>,
}

impl<'a> VariableCheck<'a> {
    pub(crate) fn new(partials: &'a Fragments, layouts: &'a Fragments, used_by: &'a str) -> Self {
        VariableCheck { partials, layouts, used_by, out: Vec::new(), seen: HashSet::new(), partial_stack: Vec::new() }
    }

    /// Checks a part rendered at the root of the context.
    pub(crate) fn run(&mut self, part: &Part, provided: &Provided<'_>) {
        let mut frames =
            vec![Frame { node: Node::Root, label: "the root".into(), params: Vec::new(), each: false, partial: false }];
        self.template(part, &part.template, None, &mut frames, provided);
    }

    fn template(
        &mut self,
        part: &Part,
        template: &Template,
        inherited: Pos,
        frames: &mut Vec<Frame>,
        provided: &Provided<'_>,
    ) {
        for (index, element) in template.elements.iter().enumerate() {
            let pos = position(template, index, inherited);
            match element {
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                    self.expression(part, h, pos, frames, provided);
                }
                TemplateElement::HelperBlock(h) => self.block(part, h, pos, frames, provided),
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    if let Some(t) = &d.template {
                        self.template(part, t, pos, frames, provided);
                    }
                    let Some(name) = d.name.as_name() else {
                        // A dynamic partial name: check the expression, not the partial.
                        self.param(part, &d.name, pos, frames, provided);
                        continue;
                    };
                    let node = match d.params.first() {
                        Some(p) => self.param(part, p, pos, frames, provided),
                        None => frames.last().map(|f| f.node).unwrap_or(Node::Root),
                    };
                    let mut params = Vec::new();
                    for (key, value) in &d.hash {
                        params.push((key.clone(), self.param(part, value, pos, frames, provided)));
                    }
                    if name == "@partial-block"
                        || part.inline_partials.contains(name)
                        || self.partial_stack.iter().any(|n| n == name)
                    {
                        continue;
                    }
                    let Some(Some(target)) = find_fragment(self.partials, self.layouts, name) else {
                        continue;
                    };
                    let each = frames.last().is_some_and(|f| f.each);
                    frames.push(Frame { node, label: format!("partial `{name}`"), params, each, partial: true });
                    self.partial_stack.push(name.to_string());
                    self.template(target, &target.template, None, frames, provided);
                    self.partial_stack.pop();
                    frames.pop();
                }
                TemplateElement::DecoratorBlock(d) => {
                    if let Some(t) = &d.template {
                        self.template(part, t, pos, frames, provided);
                    }
                }
                _ => {}
            }
        }
    }

    fn expression(
        &mut self,
        part: &Part,
        h: &HelperTemplate,
        pos: Pos,
        frames: &mut Vec<Frame>,
        provided: &Provided<'_>,
    ) -> Node {
        match &h.name {
            Parameter::Path(path) if h.params.is_empty() && h.hash.is_empty() => {
                if let Path::Relative((_, raw)) = path
                    && helper::is_known(raw)
                {
                    return Node::Any;
                }
                self.path(part, path, pos, frames, provided)
            }
            name => {
                if !matches!(name, Parameter::Name(_)) {
                    self.param(part, name, pos, frames, provided);
                }
                for p in h.params.iter().chain(h.hash.values()) {
                    self.param(part, p, pos, frames, provided);
                }
                match name.as_name() {
                    Some("lookup") => Node::Any,
                    Some("recommend" | "bought_recently") => Node::Products,
                    _ => Node::Scalar("value"),
                }
            }
        }
    }

    fn param(
        &mut self,
        part: &Part,
        p: &Parameter,
        pos: Pos,
        frames: &mut Vec<Frame>,
        provided: &Provided<'_>,
    ) -> Node {
        match p {
            Parameter::Path(path) => self.path(part, path, pos, frames, provided),
            Parameter::Subexpression(sub) => match sub.as_element() {
                TemplateElement::Expression(h) => self.expression(part, h, pos, frames, provided),
                _ => Node::Any,
            },
            Parameter::Literal(serde_json::Value::Object(_)) | Parameter::Literal(serde_json::Value::Array(_)) => {
                Node::Any
            }
            _ => Node::Scalar("literal"),
        }
    }

    fn block(&mut self, part: &Part, h: &HelperTemplate, pos: Pos, frames: &mut Vec<Frame>, provided: &Provided<'_>) {
        let name = h.name.as_name().unwrap_or_default();
        match name {
            "each" | "with" => {
                let (node, raw) = match h.params.first() {
                    Some(p) => (self.param(part, p, pos, frames, provided), param_text(p)),
                    None => (Node::Any, String::new()),
                };
                for p in h.hash.values() {
                    self.param(part, p, pos, frames, provided);
                }
                let each = name == "each";
                let inner = if each { node.item() } else { node };
                let mut params = Vec::new();
                match &h.block_param {
                    Some(BlockParam::Single(Parameter::Name(a))) => params.push((a.clone(), inner)),
                    Some(BlockParam::Pair((Parameter::Name(a), Parameter::Name(b)))) => {
                        params.push((a.clone(), inner));
                        params.push((b.clone(), Node::Scalar("index")));
                    }
                    _ => {}
                }
                let label = if each { format!("an item of `{raw}`") } else { format!("`{raw}`") };
                frames.push(Frame {
                    node: inner,
                    label,
                    params,
                    each: each || frames.last().is_some_and(|f| f.each),
                    partial: false,
                });
                if let Some(t) = &h.template {
                    self.template(part, t, pos, frames, provided);
                }
                frames.pop();
                if let Some(t) = &h.inverse {
                    self.template(part, t, pos, frames, provided);
                }
            }
            _ => {
                for p in h.params.iter().chain(h.hash.values()) {
                    self.param(part, p, pos, frames, provided);
                }
                for t in block_templates(h) {
                    self.template(part, t, pos, frames, provided);
                }
            }
        }
    }

    /// Resolves a path through the frames and the context tree; reports it when unknown.
    fn path(&mut self, part: &Part, path: &Path, pos: Pos, frames: &[Frame], provided: &Provided<'_>) -> Node {
        match path {
            Path::Local((level, name, raw)) => {
                let frame = frames.len().checked_sub(level + 1).and_then(|i| frames.get(i));
                match name.as_str() {
                    "index" | "key" | "first" | "last" if frame.is_some_and(|f| f.each) => {}
                    "index" | "key" | "first" | "last" => {
                        self.report(part, pos, raw, Some(format!("`@{name}` is only defined inside `{{{{#each}}}}`")))
                    }
                    "root" => return Node::Root,
                    _ => self.report(
                        part,
                        pos,
                        raw,
                        Some("the data variables are `@index`, `@key`, `@first`, `@last` and `@root`".into()),
                    ),
                }
                Node::Scalar("data variable")
            }
            Path::Relative((segs, raw)) => self.relative(part, segs, raw, pos, frames, provided),
        }
    }

    fn relative(
        &mut self,
        part: &Part,
        segs: &[PathSeg],
        raw: &str,
        pos: Pos,
        frames: &[Frame],
        provided: &Provided<'_>,
    ) -> Node {
        let explicit_this =
            raw == "this" || raw.starts_with("this.") || raw.starts_with("this/") || raw.starts_with("./");
        let bare = raw.trim_start_matches("this.").trim_start_matches("this/").trim_start_matches("./");
        let root = bare.starts_with("@root");
        let ruled = segs.iter().filter(|s| matches!(s, PathSeg::Ruled(_))).count();
        let ups = ruled - usize::from(root && ruled > 0);
        let names: Vec<&str> = segs
            .iter()
            .filter_map(|s| match s {
                PathSeg::Named(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();

        let mut prefix = String::new();
        let (mut node, mut label, rest) = if root {
            prefix.push_str("@root.");
            (Node::Root, "the root".to_string(), &names[..])
        } else if let Some(found) =
            (ups == 0 && !explicit_this).then(|| names.first().and_then(|first| lookup_param(frames, first))).flatten()
        {
            prefix.push_str(names[0]);
            prefix.push('.');
            (found, format!("`{}`", names[0]), &names[1..])
        } else {
            let Some(frame) = frames.len().checked_sub(ups + 1).and_then(|i| frames.get(i)) else {
                self.report(part, pos, raw, Some("`../` goes above the root of the context".into()));
                return Node::Any;
            };
            prefix.push_str(&"../".repeat(ups));
            (frame.node, frame.label.clone(), &names[..])
        };

        for (i, key) in rest.iter().enumerate() {
            match node.child(key, provided) {
                Ok(child) => {
                    node = child;
                    label = format!("`{prefix}{}`", rest[..=i].join("."));
                }
                Err(Missing::Unknown { candidates }) => {
                    let hint = did_you_mean(key, candidates.iter().map(String::as_str))
                        .map(|_| {
                            let best = best_match(key, &candidates);
                            let mut suggestion: Vec<&str> = rest[..i].to_vec();
                            suggestion.push(best);
                            format!("did you mean `{prefix}{}`?", suggestion.join("."))
                        })
                        .unwrap_or_else(|| available(node, &candidates, provided));
                    self.report(part, pos, raw, Some(hint));
                    return Node::Any;
                }
                Err(Missing::NotAnObject { kind }) => {
                    let hint = if i == 0 && frames.len() > 1 && prefix.is_empty() {
                        format!(
                            "here the context is {label}, a {kind}; reach the message context with `@root.{}`",
                            rest.join(".")
                        )
                    } else {
                        format!("{label} is a {kind} and has no field `{key}`")
                    };
                    self.report(part, pos, raw, Some(hint));
                    return Node::Any;
                }
            }
        }
        node
    }

    fn report(&mut self, part: &Part, pos: Pos, raw: &str, hint: Option<String>) {
        let span = span_at(part, pos);
        let message = format!("unknown variable `{raw}` for {}", self.used_by);
        if self.seen.insert((part.file.path().to_path_buf(), span.start, span.end, message.clone())) {
            self.out.push(Diagnostic::error("T003", &part.file, span, message).with_optional_hint(hint));
        }
    }
}

fn lookup_param(frames: &[Frame], name: &str) -> Option<Node> {
    for frame in frames.iter().rev() {
        if let Some((_, node)) = frame.params.iter().find(|(n, _)| n == name) {
            return Some(*node);
        }
        if frame.partial {
            break;
        }
    }
    None
}

fn best_match<'c>(key: &'c str, candidates: &'c [String]) -> &'c str {
    candidates
        .iter()
        .max_by(|a, b| strsim::jaro_winkler(key, a).total_cmp(&strsim::jaro_winkler(key, b)))
        .map(String::as_str)
        .unwrap_or(key)
}

fn available(node: Node, candidates: &[String], provided: &Provided<'_>) -> String {
    let list = |c: &[String]| c.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    match node {
        Node::Vars if provided.vars.is_empty() => "this send passes no `vars`; add them to the step's `vars:`".into(),
        Node::Vars => format!("this send passes vars {}; add the key to the step's `vars:`", list(candidates)),
        Node::Member => {
            "member fields are those of DESIGN §1; shop-specific data is under `member.attributes.NAME`".into()
        }
        Node::Root => format!("the context has {}", list(candidates)),
        _ => format!("available: {}", list(candidates)),
    }
}

fn param_text(p: &Parameter) -> String {
    match p {
        Parameter::Path(Path::Relative((_, raw))) | Parameter::Path(Path::Local((_, _, raw))) => raw.clone(),
        Parameter::Name(n) => n.clone(),
        Parameter::Literal(v) => v.to_string(),
        _ => "(...)".to_string(),
    }
}
