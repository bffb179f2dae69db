//! A compiled piece of handlebars — a body, a text part, a front matter value, a partial
//! or a layout — and the way back from its tags to spans in the file it came from.

use std::collections::BTreeSet;
use std::sync::Arc;

use handlebars::template::{Parameter, Template, TemplateElement};

use crate::diagnostic::Diagnostic;
use crate::source::{SourceFile, Span};

/// Where the compiled text sits in its file.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A suffix of the file from `start` (a line start): offsets map one to one.
    Tail { start: usize },
    /// A YAML value: its text may differ from the source (quotes, escapes, folding), so a
    /// tag is found by searching for it from the value's start up to `limit`.
    Value { span: Span, limit: usize },
}

#[derive(Debug)]
pub(crate) struct Part {
    pub file: Arc<SourceFile>,
    pub template: Template,
    /// The compiled text with its own line index (handlebars reports line/column in it).
    text: Arc<SourceFile>,
    origin: Origin,
    /// Names defined by `{{#*inline "name"}}` anywhere in this part.
    pub inline_partials: BTreeSet<String>,
}

impl Part {
    /// Compiles the file's text from `start` (a line start) to its end.
    pub(crate) fn tail(file: &Arc<SourceFile>, start: usize, name: &str) -> Result<Part, Diagnostic> {
        let text = file.text()[start..].to_string();
        Self::compile(file, text, Origin::Tail { start }, name)
    }

    /// Compiles a front matter value; `span` is where the value is written, `limit` the end
    /// of the front matter.
    pub(crate) fn value(
        file: &Arc<SourceFile>,
        value: &str,
        span: Span,
        limit: usize,
        name: &str,
    ) -> Result<Part, Diagnostic> {
        Self::compile(file, value.to_string(), Origin::Value { span, limit }, name)
    }

    fn compile(file: &Arc<SourceFile>, text: String, origin: Origin, name: &str) -> Result<Part, Diagnostic> {
        let text = SourceFile::new(name, text);
        let mut part =
            Part { file: Arc::clone(file), template: Template::new(), text, origin, inline_partials: BTreeSet::new() };
        match Template::compile_with_name(part.text.text(), name.to_string()) {
            Ok(template) => {
                collect_inline(&template, &mut part.inline_partials);
                part.template = template;
                Ok(part)
            }
            Err(error) => {
                let span = match error.pos() {
                    Some((line, col)) => part.point(line, col),
                    None => part.whole(),
                };
                Err(Diagnostic::error("T001", file, span, format!("template syntax error: {}", error.reason())))
            }
        }
    }

    /// The span in the file of the tag (`{{...}}`, `{{{...}}}`, `{{#...}}`) that starts at
    /// a 1-based line and column of the compiled text.
    pub(crate) fn tag_span(&self, line: usize, col: usize) -> Span {
        let text = self.text.text();
        let start = self.text.offset_of(line, col);
        let end = tag_end(text, start);
        match self.origin {
            Origin::Tail { start: base } => Span::new(base + start, base + end),
            Origin::Value { span, limit } => {
                let tag = &text[start..end];
                let source = self.file.text();
                let limit = limit.max(span.end).min(source.len());
                match source[span.start..limit].find(tag) {
                    Some(at) => Span::new(span.start + at, span.start + at + tag.len()),
                    None => span,
                }
            }
        }
    }

    /// A zero-width span at a line and column of the compiled text (for syntax errors).
    fn point(&self, line: usize, col: usize) -> Span {
        match self.origin {
            Origin::Tail { start } => {
                let at = start + self.text.offset_of(line, col);
                Span::new(at, at)
            }
            Origin::Value { span, .. } => span,
        }
    }

    /// The whole part in the file.
    pub(crate) fn whole(&self) -> Span {
        match self.origin {
            Origin::Tail { start } => Span::new(start, self.file.text().len()),
            Origin::Value { span, .. } => span,
        }
    }
}

/// The end of the tag starting at `start`: after the matching `}}`, `}}}` or `}}}}`.
fn tag_end(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    let close = if rest.starts_with("{{{{") {
        "}}}}"
    } else if rest.starts_with("{{{") {
        "}}}"
    } else if rest.starts_with("{{") {
        "}}"
    } else {
        return (start + rest.chars().next().map_or(0, char::len_utf8)).min(text.len());
    };
    match rest.find(close) {
        Some(i) => start + i + close.len(),
        None => text.len(),
    }
}

fn collect_inline(template: &Template, names: &mut BTreeSet<String>) {
    for element in &template.elements {
        match element {
            TemplateElement::DecoratorBlock(d) | TemplateElement::DecoratorExpression(d) => {
                if d.name.as_name() == Some("inline")
                    && let Some(Parameter::Literal(serde_json::Value::String(name))) = d.params.first()
                {
                    names.insert(name.clone());
                }
                if let Some(t) = &d.template {
                    collect_inline(t, names);
                }
            }
            TemplateElement::HelperBlock(h) => {
                for t in [&h.template, &h.inverse].into_iter().flatten() {
                    collect_inline(t, names);
                }
            }
            TemplateElement::PartialBlock(d) => {
                if let Some(t) = &d.template {
                    collect_inline(t, names);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_spans_point_into_the_file_after_the_front_matter() {
        let file = SourceFile::new("t.email.hbs", "---\nsubject: x\n---\n<p>Hi {{member.first_name}}</p>\n");
        let body = file.text().find("<p>").unwrap();
        let part = Part::tail(&file, body, "t").unwrap();
        let span = part.tag_span(1, 7);
        assert_eq!(&file.text()[span.start..span.end], "{{member.first_name}}");
        assert_eq!(file.line_col(span.start), (4, 7));
    }

    #[test]
    fn tag_spans_in_front_matter_values_are_found_in_the_source() {
        let file = SourceFile::new("t.email.hbs", "---\nsubject: \"生日快乐, {{member.first_name}}!\"\n---\n");
        let at = file.text().find('"').unwrap();
        let part = Part::value(&file, "生日快乐, {{member.first_name}}!", Span::new(at, at + 10), 50, "t").unwrap();
        let span = part.tag_span(1, 7);
        assert_eq!(&file.text()[span.start..span.end], "{{member.first_name}}");
    }

    #[test]
    fn syntax_errors_carry_the_position_in_the_file() {
        let file = SourceFile::new("t.sms.hbs", "Hi\n{{#if x}}\n{{/each}}\n");
        let error = Part::tail(&file, 0, "t").unwrap_err();
        assert_eq!(error.code, "T001");
        assert_eq!(error.line_col(), (3, 1));
    }
}
