//! Diagnostics as data: a stable code, a severity, a message, a span and a hint,
//! rendered for people (rustc/ruff style) or one per line for CI.

use std::fmt::Write as _;
use std::sync::Arc;

use unicode_width::UnicodeWidthStr;

use crate::source::{SourceFile, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One finding in a journey, template or config file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable code, e.g. `J003`; documented in the README's diagnostics table.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: Arc<SourceFile>,
    pub span: Span,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, file: &Arc<SourceFile>, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            file: Arc::clone(file),
            span,
            hint: None,
        }
    }

    pub fn warning(code: &'static str, file: &Arc<SourceFile>, span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Self::error(code, file, span, message) }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// 1-based line and column of the primary span.
    pub fn line_col(&self) -> (usize, usize) {
        self.file.line_col(self.span.start)
    }

    /// `path:line:col: severity[CODE] message` — the one-line form for CI logs.
    pub fn render_short(&self) -> String {
        let (line, col) = self.line_col();
        format!(
            "{}:{}:{}: {}[{}] {}",
            self.file.path().display(),
            line,
            col,
            self.severity.as_str(),
            self.code,
            self.message
        )
    }

    /// The full form: header, location, the source line with a caret, and the hint.
    pub fn render(&self) -> String {
        let (line, col) = self.line_col();
        let source_line = self.file.line_text(line);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let before: String = source_line.chars().take(col - 1).collect();
        let caret_start = UnicodeWidthStr::width(before.as_str());
        let (_, end_col) = self.file.line_col(self.span.end);
        let end_line = self.file.line_col(self.span.end).0;
        let marked: String = if end_line == line && end_col > col {
            source_line.chars().skip(col - 1).take(end_col - col).collect()
        } else {
            source_line.chars().skip(col - 1).take(1).collect()
        };
        let carets = "^".repeat(UnicodeWidthStr::width(marked.as_str()).max(1));

        let mut out = String::new();
        let _ = writeln!(out, "{}[{}]: {}", self.severity.as_str(), self.code, self.message);
        let _ = writeln!(out, "{pad}--> {}:{}:{}", self.file.path().display(), line, col);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {source_line}");
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(caret_start), carets);
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{pad} = hint: {hint}");
        }
        out
    }
}

/// The worst severity among diagnostics, if any.
pub fn worst(diagnostics: &[Diagnostic]) -> Option<Severity> {
    diagnostics.iter().map(|d| d.severity).max()
}

/// `did you mean `x`?` for the closest candidate, if one is close enough.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_source_line_with_caret_under_the_span() {
        let file = SourceFile::new("workflows/x.yaml", "id: x\naudience: tierr == \"gold\"\n");
        let start = file.text().find("tierr").unwrap();
        let d = Diagnostic::error("C002", &file, Span::new(start, start + 5), "unknown field `tierr`")
            .with_hint("did you mean `tier`?");
        assert_eq!(
            d.render(),
            "error[C002]: unknown field `tierr`\n --> workflows/x.yaml:2:11\n  |\n2 | audience: tierr == \"gold\"\n  |           ^^^^^\n  = hint: did you mean `tier`?\n"
        );
        assert_eq!(d.render_short(), "workflows/x.yaml:2:11: error[C002] unknown field `tierr`");
    }

    #[test]
    fn suggests_only_close_words() {
        assert_eq!(did_you_mean("tierr", ["tier", "points"]).as_deref(), Some("did you mean `tier`?"));
        assert_eq!(did_you_mean("zzz", ["tier", "points"]), None);
    }
}
