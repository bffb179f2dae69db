//! YAML front matter between `---` lines at the top of email and push templates.

use std::collections::HashMap;
use std::sync::Arc;

use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::{SourceFile, Span};

/// Keys of an email's front matter; `subject` is required.
pub const EMAIL_KEYS: &[&str] = &["subject", "preheader", "from", "reply_to", "layout", "tracking"];
/// Keys of a push notification's front matter; `title` is required.
pub const PUSH_KEYS: &[&str] = &["title", "deep_link", "image"];

/// Where the front matter and the body are in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split {
    /// The YAML between the fences, if the file starts with `---`.
    pub yaml: Option<Span>,
    /// The span of the opening fence (for "missing key" diagnostics).
    pub fence: Span,
    /// Where the body starts: at the beginning of a line.
    pub body_start: usize,
}

/// One `key: value` of the front matter.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Span,
    /// The value as text; numbers and booleans keep their source spelling.
    pub value: String,
    pub value_span: Span,
}

/// Finds the front matter fences. `Err` when an opening fence is never closed.
pub(crate) fn split(text: &str) -> Result<Split, Span> {
    let start = if text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
    let mut lines = LineIter { text, pos: start };
    let Some((first, first_end)) = lines.next() else {
        return Ok(Split { yaml: None, fence: Span::new(0, 0), body_start: 0 });
    };
    if text[first.start..first.end].trim_end() != "---" {
        return Ok(Split { yaml: None, fence: Span::new(0, 0), body_start: 0 });
    }
    let fence = Span::new(first.start, first.start + 3);
    let yaml_start = first_end;
    for (line, next) in lines {
        let content = text[line.start..line.end].trim_end();
        if content == "---" || content == "..." {
            return Ok(Split { yaml: Some(Span::new(yaml_start, line.start)), fence, body_start: next });
        }
    }
    Err(fence)
}

/// Yields each line's span (without its break) and where the next line starts.
struct LineIter<'a> {
    text: &'a str,
    pos: usize,
}

impl Iterator for LineIter<'_> {
    type Item = (Span, usize);

    fn next(&mut self) -> Option<(Span, usize)> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let (end, next) = match rest.find('\n') {
            Some(i) => (self.pos + i, self.pos + i + 1),
            None => (self.text.len(), self.text.len()),
        };
        let span = Span::new(self.pos, end);
        self.pos = next;
        Some((span, next))
    }
}

/// Parses the front matter of `file` for a template whose allowed keys are `keys` and whose
/// first key is required. Returns the entries it could read and every problem (T002, T001
/// for a missing closing fence).
pub(crate) fn parse(file: &Arc<SourceFile>, keys: &[&'static str], kind: &str) -> (Vec<Entry>, usize, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let required = keys[0];
    let split = match split(file.text()) {
        Ok(split) => split,
        Err(fence) => {
            diagnostics.push(
                Diagnostic::error("T002", file, fence, "front matter is not closed")
                    .with_hint("end the front matter with a line `---` before the body"),
            );
            return (Vec::new(), file.text().len(), diagnostics);
        }
    };
    let Some(yaml) = split.yaml else {
        diagnostics.push(
            Diagnostic::error(
                "T002",
                file,
                Span::new(0, 0),
                format!("{kind} template has no front matter with `{required}`"),
            )
            .with_hint(format!("start the file with\n---\n{required}: ...\n---")),
        );
        return (Vec::new(), split.body_start, diagnostics);
    };

    let text = &file.text()[yaml.start..yaml.end];
    let parsed: Result<Option<HashMap<Spanned<String>, Spanned<serde_json::Value>>>, _> = serde_saphyr::from_str(text);
    let map = match parsed {
        Ok(map) => map.unwrap_or_default(),
        Err(error) => {
            let at = error
                .location()
                .map(|loc| locate(file, yaml, loc.span().byte_offset(), loc.line(), loc.column()))
                .unwrap_or(yaml.start);
            let message = yaml_message(&error.to_string());
            let hint = message.contains("double-quoted").then(|| {
                "a value with `\"` inside (a helper argument) can be single-quoted: \
                 subject: 'Hi {{default member.first_name \"there\"}}'"
                    .to_string()
            });
            diagnostics.push(
                Diagnostic::error(
                    "T002",
                    file,
                    Span::new(at, at),
                    format!("front matter is not valid YAML: {message}"),
                )
                .with_optional_hint(hint),
            );
            return (Vec::new(), split.body_start, diagnostics);
        }
    };

    let mut entries: Vec<Entry> = Vec::new();
    for (key, value) in map {
        let key_at =
            locate(file, yaml, key.referenced.span().byte_offset(), key.referenced.line(), key.referenced.column());
        let key_span = Span::new(key_at, key_at + key.value.len());
        let value_at = locate(
            file,
            yaml,
            value.referenced.span().byte_offset(),
            value.referenced.line(),
            value.referenced.column(),
        );
        let value_len = value.referenced.span().byte_len().unwrap_or(0) as usize;
        let value_span = Span::new(value_at, (value_at + value_len).min(yaml.end));
        if !keys.contains(&key.value.as_str()) {
            diagnostics.push(
                Diagnostic::error("T002", file, key_span, format!("unknown front matter key `{}`", key.value))
                    .with_hint(
                        did_you_mean(&key.value, keys.iter().copied())
                            .unwrap_or_else(|| format!("{kind} front matter takes {}", list(keys))),
                    ),
            );
            continue;
        }
        let text = match &value.value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
                file.text()[value_span.start..value_span.end].to_string()
            }
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                diagnostics.push(
                    Diagnostic::error("T002", file, value_span, format!("`{}` must be text", key.value))
                        .with_hint("quote the value: `key: \"...\"`"),
                );
                continue;
            }
        };
        if text.trim().is_empty() {
            diagnostics.push(Diagnostic::error("T002", file, key_span, format!("`{}` is empty", key.value)));
            continue;
        }
        entries.push(Entry { key: key.value, key_span, value: text, value_span });
    }
    entries.sort_by_key(|e| e.key_span.start);

    if !entries.iter().any(|e| e.key == required)
        && !diagnostics.iter().any(|d| d.message.starts_with(&format!("`{required}`")))
    {
        diagnostics.push(
            Diagnostic::error("T002", file, split.fence, format!("front matter has no `{required}`"))
                .with_hint(format!("add `{required}: ...` to the front matter")),
        );
    }
    (entries, split.body_start, diagnostics)
}

/// A file offset from a location reported inside the YAML text.
fn locate(file: &SourceFile, yaml: Span, byte_offset: Option<u64>, line: u64, column: u64) -> usize {
    match byte_offset {
        Some(offset) => (yaml.start + offset as usize).min(yaml.end),
        None => {
            let (yaml_line, _) = file.line_col(yaml.start);
            file.offset_of(yaml_line + line as usize - 1, column as usize)
        }
    }
}

/// The first line of a serde-saphyr error, without its own `line N column M:` prefix.
fn yaml_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    if first.starts_with("line ")
        && let Some((_, rest)) = first.split_once(": ")
    {
        return rest.to_string();
    }
    first.to_string()
}

fn list(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_finds_fences_and_body_at_a_line_start() {
        let text = "---\nsubject: Hi\n---\n<p>x</p>\n";
        let s = split(text).unwrap();
        assert_eq!(&text[s.yaml.unwrap().start..s.yaml.unwrap().end], "subject: Hi\n");
        assert_eq!(&text[s.body_start..], "<p>x</p>\n");
        assert_eq!(split("<p>no front matter</p>").unwrap().yaml, None);
        assert!(split("---\nsubject: Hi\n<p>x</p>\n").is_err());
    }

    #[test]
    fn entries_keep_their_spans_and_unknown_keys_get_a_suggestion() {
        let file = SourceFile::new("t.email.hbs", "---\nsubjet: Hi\nlayout: base\n---\nbody\n");
        let (entries, body_start, diagnostics) = parse(&file, EMAIL_KEYS, "email");
        assert_eq!(&file.text()[body_start..], "body\n");
        assert_eq!(entries.len(), 1);
        assert_eq!(&file.text()[entries[0].value_span.start..entries[0].value_span.end], "base");
        let messages: Vec<_> = diagnostics.iter().map(|d| (d.code, d.message.as_str(), d.hint.as_deref())).collect();
        assert_eq!(
            messages,
            vec![
                ("T002", "unknown front matter key `subjet`", Some("did you mean `subject`?")),
                ("T002", "front matter has no `subject`", Some("add `subject: ...` to the front matter")),
            ]
        );
        assert_eq!(diagnostics[0].line_col(), (2, 1));
    }

    #[test]
    fn yes_and_numbers_stay_text_and_bad_yaml_points_into_the_file() {
        let file = SourceFile::new("t.push.hbs", "---\ntitle: yes\n---\nbody");
        let (entries, _, diagnostics) = parse(&file, PUSH_KEYS, "push");
        assert!(diagnostics.is_empty());
        assert_eq!(entries[0].value, "yes");

        let file = SourceFile::new("t.push.hbs", "---\ntitle: [oops\n---\nbody");
        let (_, _, diagnostics) = parse(&file, PUSH_KEYS, "push");
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].message.starts_with("front matter is not valid YAML"), "{}", diagnostics[0].message);
        assert_eq!(diagnostics[0].line_col().0, 2);

        let file =
            SourceFile::new("t.email.hbs", "---\nsubject: \"Hi {{default member.first_name \"there\"}}\"\n---\n");
        let (_, _, diagnostics) = parse(&file, EMAIL_KEYS, "email");
        assert!(diagnostics[0].hint.as_deref().unwrap_or_default().contains("single-quoted"), "{:?}", diagnostics[0]);
    }
}
