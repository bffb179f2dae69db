//! The condition language of DESIGN §2, used in `audience`, `where`, `branch.if` and
//! `exit_when`: parsed into an AST with spans, type-checked against the member and event
//! schema, evaluated in memory, and compiled to parameterised SQL.
//!
//! Spans in this module are byte ranges relative to the expression text; the journey
//! compiler moves them into the file.
//!
//! - [`parse`]: text to [`Expr`] (`C001` on a syntax error).
//! - [`check`]: every problem of an expression where it is used ([`Scope`]).
//! - [`eval`]: three-valued evaluation against a member, an event and the run's history;
//!   the null rules are written at the top of `eval.rs`.
//! - [`to_sql`]: a parameterised `WHERE` fragment for audiences, with the same meaning as
//!   [`eval`] on both engines.
//!
//! Diagnostic codes: `C001` syntax, `C002` unknown field, `C003` type mismatch, `C004`
//! unknown step, `C005` not a `send` step, `C006` not available here, `C007` unknown
//! function, `C008` cannot run in the database, `C009` (warning) value outside an
//! enumerated field, `C010` not a condition.

mod ast;
mod check;
mod eval;
mod parse;
mod resolve;
mod sql;

pub use ast::{Call, CompareOp, Expr, ExprKind, FieldPath, Ident, Literal};
pub use check::{Scope, check};
pub use eval::{EvalContext, NoHistory, RunHistory, Truth, days_until_birthday, eval};
pub use parse::parse;
pub use sql::{BindSql, Dialect, SqlFilter, SqlParam, to_sql};

use crate::diagnostic::Severity;
use crate::source::Span;

/// The functions a condition may call.
pub const FUNCTIONS: &[&str] = &["days_since", "has_tag", "opened", "clicked", "received"];

/// One problem in a condition. `span` is a byte range relative to the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    /// `C001`..`C010`, see the module documentation.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    pub hint: Option<String>,
}

impl ConditionError {
    pub(crate) fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        ConditionError { code, severity: Severity::Error, message: message.into(), span, hint: None }
    }

    pub(crate) fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        ConditionError { severity: Severity::Warning, ..Self::error(code, span, message) }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl std::fmt::Display for ConditionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}] {}", self.severity.as_str(), self.code, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConditionError {}
