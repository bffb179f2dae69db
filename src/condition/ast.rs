//! The syntax tree of a condition. Every node carries the byte span of its text, relative
//! to the expression, so that every diagnostic can point at what it is about.
//!
//! The tree is what was written, not what it means: field paths and function names are
//! resolved by [`check`](super::check), [`eval`](super::eval) and [`to_sql`](super::to_sql).

use std::fmt;

use crate::duration::Duration;
use crate::source::Span;

/// A condition or one of its operands.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `30`, `2.5`, `"gold"`, `true`, `null`, `30d`.
    Literal(Literal),
    /// `tier`, `attributes.vip`, `event.order.total`.
    Field(FieldPath),
    /// `days_since(last_order_at)`, `has_tag("vip")`, `opened(offer)`.
    Call(Call),
    /// `left OP right`.
    Compare {
        op: CompareOp,
        op_span: Span,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `value in [a, b]`, or `value not in [a, b]` when `negated`. The list holds literals.
    In {
        value: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Decimal(f64),
    String(String),
    Bool(bool),
    Null,
    Duration(Duration),
}

/// A name with its span: one segment of a field path, or a function name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A dotted field path: `tier`, `attributes.vip`, `event.a.b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub segments: Vec<Ident>,
}

impl FieldPath {
    /// The first segment (`attributes` in `attributes.vip`).
    pub fn head(&self) -> &str {
        &self.segments[0].name
    }

    /// The segments after the first.
    pub fn rest(&self) -> &[Ident] {
        &self.segments[1..]
    }

    pub fn span(&self) -> Span {
        let first = self.segments[0].span;
        first.to(self.segments[self.segments.len() - 1].span)
    }
}

/// `name(args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub const ALL: [CompareOp; 6] =
        [CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge];

    /// How it is written in a condition.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    /// The operator with its operands swapped: `a < b` ⟺ `b > a`.
    pub fn flip(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Ge => CompareOp::Le,
            op => op,
        }
    }

    /// Whether the operator orders values (as opposed to testing equality).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CompareOp::Eq | CompareOp::Ne)
    }

    /// Applies the operator to an ordering.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CompareOp::Eq => ordering == Equal,
            CompareOp::Ne => ordering != Equal,
            CompareOp::Lt => ordering == Less,
            CompareOp::Le => ordering != Greater,
            CompareOp::Gt => ordering == Greater,
            CompareOp::Ge => ordering != Less,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Decimal(x) => {
                let text = x.to_string();
                if text.contains('.') { f.write_str(&text) } else { write!(f, "{text}.0") }
            }
            Literal::String(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
            Literal::Duration(d) => write!(f, "{d}"),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&segment.name)?;
        }
        Ok(())
    }
}

/// The canonical text of a condition: compound operands are parenthesised, so the text
/// parses back to the same tree (with other spans).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(literal) => write!(f, "{literal}"),
            ExprKind::Field(path) => write!(f, "{path}"),
            ExprKind::Call(call) => {
                write!(f, "{}(", call.name.name)?;
                for (i, arg) in call.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
            ExprKind::Compare { op, left, right, .. } => {
                write_operand(f, left)?;
                write!(f, " {op} ")?;
                write_operand(f, right)
            }
            ExprKind::In { value, list, negated } => {
                write_operand(f, value)?;
                f.write_str(if *negated { " not in [" } else { " in [" })?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            ExprKind::Not(inner) => {
                f.write_str("not ")?;
                write_operand(f, inner)
            }
            ExprKind::And(a, b) => {
                write_operand(f, a)?;
                f.write_str(" and ")?;
                write_operand(f, b)
            }
            ExprKind::Or(a, b) => {
                write_operand(f, a)?;
                f.write_str(" or ")?;
                write_operand(f, b)
            }
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, expr: &Expr) -> fmt::Result {
    match expr.kind {
        ExprKind::Literal(_) | ExprKind::Field(_) | ExprKind::Call(_) => write!(f, "{expr}"),
        _ => write!(f, "({expr})"),
    }
}
