//! Text to [`Expr`]: a hand-written lexer and recursive-descent parser.
//!
//! ```text
//! condition  := or
//! or         := and ("or" and)*
//! and        := not ("and" not)*
//! not        := "not" not | comparison
//! comparison := primary (CMP primary | "not"? "in" list)?
//! primary    := literal | field | NAME "(" (expr ("," expr)*)? ")" | "(" or ")"
//! list       := "[" literal ("," literal)* ","? "]"
//! ```
//!
//! Comparisons do not chain (`a < b < c` is an error): say `a < b and b < c`.

use super::ConditionError;
use super::ast::{Call, CompareOp, Expr, ExprKind, FieldPath, Ident, Literal};
use crate::duration::Duration;
use crate::source::Span;

const KEYWORDS: &[&str] = &["and", "or", "not", "in", "true", "false", "null"];

/// Parses a condition. Syntax errors are `C001`, with the span of the offending token.
pub fn parse(text: &str) -> Result<Expr, ConditionError> {
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, pos: 0, depth: 0 };
    let expr = parser.or()?;
    let token = parser.peek();
    if token.tok != Tok::Eof {
        let expected = match expr.kind {
            ExprKind::Compare { .. } if token.tok.compare_op().is_some() => {
                return Err(syntax(
                    token.span,
                    format!("comparisons do not chain: unexpected `{}`", token.tok),
                    Some("join two comparisons with `and`: `a < b and b < c`".into()),
                ));
            }
            _ => "`and`, `or` or the end of the condition",
        };
        return Err(parser.unexpected(expected));
    }
    Ok(expr)
}

fn syntax(span: Span, message: impl Into<String>, hint: Option<String>) -> ConditionError {
    ConditionError::error("C001", span, message).with_optional_hint(hint)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Decimal(f64),
    Duration(Duration),
    Str(String),
    Op(CompareOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eof,
}

impl Tok {
    fn compare_op(&self) -> Option<CompareOp> {
        match self {
            Tok::Op(op) => Some(*op),
            _ => None,
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Tok::Ident(name) if name == keyword)
    }
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Ident(name) => f.write_str(name),
            Tok::Int(n) => write!(f, "{n}"),
            Tok::Decimal(x) => write!(f, "{}", Literal::Decimal(*x)),
            Tok::Duration(d) => write!(f, "{d}"),
            Tok::Str(s) => write!(f, "{}", Literal::String(s.clone())),
            Tok::Op(op) => write!(f, "{op}"),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::LBracket => f.write_str("["),
            Tok::RBracket => f.write_str("]"),
            Tok::Comma => f.write_str(","),
            Tok::Dot => f.write_str("."),
            Tok::Eof => f.write_str("the end of the condition"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Span,
}

impl Token {
    /// How to name the token in "found ..." messages.
    fn describe(&self) -> String {
        match &self.tok {
            Tok::Eof => "the end of the condition".into(),
            tok => format!("`{tok}`"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Token>, ConditionError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = |tok| Token { tok, span: Span::new(start, start + 1) };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                tokens.push(single(Tok::LParen));
                i += 1;
            }
            b')' => {
                tokens.push(single(Tok::RParen));
                i += 1;
            }
            b'[' => {
                tokens.push(single(Tok::LBracket));
                i += 1;
            }
            b']' => {
                tokens.push(single(Tok::RBracket));
                i += 1;
            }
            b',' => {
                tokens.push(single(Tok::Comma));
                i += 1;
            }
            b'.' => {
                tokens.push(single(Tok::Dot));
                i += 1;
            }
            b'=' | b'!' | b'<' | b'>' => {
                let next = bytes.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    (b'=', Some(b'=')) => (CompareOp::Eq, 2),
                    (b'!', Some(b'=')) => (CompareOp::Ne, 2),
                    (b'<', Some(b'=')) => (CompareOp::Le, 2),
                    (b'>', Some(b'=')) => (CompareOp::Ge, 2),
                    (b'<', Some(b'>')) => {
                        return Err(syntax(
                            Span::new(i, i + 2),
                            "unexpected `<>`",
                            Some("write `!=` for \"not equal\"".into()),
                        ));
                    }
                    (b'<', _) => (CompareOp::Lt, 1),
                    (b'>', _) => (CompareOp::Gt, 1),
                    (b'=', _) => {
                        return Err(syntax(
                            Span::new(i, i + 1),
                            "unexpected `=`",
                            Some("write `==` to compare".into()),
                        ));
                    }
                    _ => {
                        return Err(syntax(
                            Span::new(i, i + 1),
                            "unexpected `!`",
                            Some("write `not` to negate a condition".into()),
                        ));
                    }
                };
                tokens.push(Token { tok: Tok::Op(op), span: Span::new(i, i + len) });
                i += len;
            }
            b'&' | b'|' => {
                let doubled = bytes.get(i + 1) == Some(&c);
                let len = if doubled { 2 } else { 1 };
                let word = if c == b'&' { "and" } else { "or" };
                return Err(syntax(
                    Span::new(i, i + len),
                    format!("unexpected `{}`", &text[i..i + len]),
                    Some(format!("write `{word}`")),
                ));
            }
            b'"' | b'\'' => {
                let (value, end) = lex_string(text, i)?;
                tokens.push(Token { tok: Tok::Str(value), span: Span::new(i, end) });
                i = end;
            }
            b'0'..=b'9' | b'-' => {
                let (tok, end) = lex_number(text, i)?;
                tokens.push(Token { tok, span: Span::new(i, end) });
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = i + bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                tokens.push(Token { tok: Tok::Ident(text[i..end].to_string()), span: Span::new(i, end) });
                i = end;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                let end = i + ch.len_utf8();
                let hint = matches!(ch, '“' | '”' | '‘' | '’').then(|| "use straight quotes: \"gold\"".to_string());
                return Err(syntax(Span::new(i, end), format!("unexpected character `{ch}`"), hint));
            }
        }
    }
    tokens.push(Token { tok: Tok::Eof, span: Span::new(text.len(), text.len()) });
    Ok(tokens)
}

/// A string in double or single quotes, with `\"`, `\'`, `\\`, `\n`, `\r`, `\t`, `\0` and
/// `\u{...}` escapes. Returns the value and the end offset.
fn lex_string(text: &str, start: usize) -> Result<(String, usize), ConditionError> {
    let quote = text.as_bytes()[start] as char;
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices().map(|(i, c)| (i + start + 1, c));
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((value, i + 1)),
            '\\' => {
                let Some((j, escaped)) = chars.next() else { break };
                match escaped {
                    '"' | '\'' | '\\' => value.push(escaped),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    '0' => value.push('\0'),
                    'u' => {
                        let rest = &text[j + 1..];
                        let code = rest
                            .strip_prefix('{')
                            .and_then(|r| r.find('}').map(|end| &r[..end]))
                            .filter(|hex| !hex.is_empty() && hex.len() <= 6);
                        let decoded = code.and_then(|hex| u32::from_str_radix(hex, 16).ok()).and_then(char::from_u32);
                        let (Some(hex), Some(ch)) = (code, decoded) else {
                            let end = j + 1 + rest.find('}').map_or(0, |e| e + 1);
                            return Err(syntax(
                                Span::new(i, end.max(j + 1)),
                                "invalid unicode escape",
                                Some("write `\\u{...}` with 1 to 6 hex digits, e.g. `\\u{e9}`".into()),
                            ));
                        };
                        value.push(ch);
                        // Skip `{hex}`.
                        for _ in 0..hex.len() + 2 {
                            chars.next();
                        }
                    }
                    other => {
                        return Err(syntax(
                            Span::new(i, j + other.len_utf8()),
                            format!("unknown escape `\\{other}`"),
                            Some("escapes are `\\\"`, `\\'`, `\\\\`, `\\n`, `\\r`, `\\t`, `\\0` and `\\u{...}`".into()),
                        ));
                    }
                }
            }
            c => value.push(c),
        }
    }
    Err(syntax(Span::new(start, text.len()), "unterminated string", Some(format!("close it with `{quote}`"))))
}

/// An integer, a decimal or a duration (`30d`, `1d12h`), optionally negative.
fn lex_number(text: &str, start: usize) -> Result<(Tok, usize), ConditionError> {
    let bytes = text.as_bytes();
    let mut i = start;
    if bytes[i] == b'-' {
        i += 1;
        if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
            return Err(syntax(
                Span::new(start, start + 1),
                "unexpected `-`",
                Some("conditions have no arithmetic; `-` may only start a negative number".into()),
            ));
        }
    }
    let digits = |from: usize| from + bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    i = digits(i);
    let mut decimal = false;
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        decimal = true;
        i = digits(i + 1);
    }
    let alnum_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
    if alnum_end > i {
        // A unit follows: a duration such as `30d` or `1d12h`.
        let span = Span::new(start, alnum_end);
        let word = &text[start..alnum_end];
        if decimal {
            return Err(syntax(
                span,
                format!("`{word}`: durations are whole numbers"),
                Some("combine units instead, e.g. `1d12h`".into()),
            ));
        }
        return match Duration::parse(word) {
            Ok(duration) => Ok((Tok::Duration(duration), alnum_end)),
            Err(error) => Err(syntax(span, format!("invalid duration: {error}"), Some(error.hint().into()))),
        };
    }
    let word = &text[start..i];
    let span = Span::new(start, i);
    if decimal {
        match word.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok((Tok::Decimal(x), i)),
            _ => Err(syntax(span, format!("number `{word}` is out of range"), None)),
        }
    } else {
        match word.parse::<i64>() {
            Ok(n) => Ok((Tok::Int(n), i)),
            Err(_) => Err(syntax(
                span,
                format!("number `{word}` is out of range"),
                Some("integers are 64-bit: at most 9223372036854775807".into()),
            )),
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Nesting depth, bounded so that deep input cannot overflow the stack.
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn eat_keyword(&mut self, keyword: &str) -> Option<Span> {
        if self.peek().tok.is_keyword(keyword) { Some(self.bump().span) } else { None }
    }

    fn unexpected(&self, expected: &str) -> ConditionError {
        let token = self.peek();
        syntax(token.span, format!("expected {expected}, found {}", token.describe()), None)
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Span, ConditionError> {
        if self.peek().tok == tok { Ok(self.bump().span) } else { Err(self.unexpected(what)) }
    }

    fn enter(&mut self) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(self.peek().span, "the condition is nested too deeply", None));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.eat_keyword("or").is_some() {
            let right = self.and()?;
            let span = left.span.to(right.span);
            left = Expr { kind: ExprKind::Or(Box::new(left), Box::new(right)), span };
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut left = self.not()?;
        while self.eat_keyword("and").is_some() {
            let right = self.not()?;
            let span = left.span.to(right.span);
            left = Expr { kind: ExprKind::And(Box::new(left), Box::new(right)), span };
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ConditionError> {
        if let Some(start) = self.eat_keyword("not") {
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            let span = start.to(inner.span);
            return Ok(Expr { kind: ExprKind::Not(Box::new(inner)), span });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ConditionError> {
        let left = self.primary()?;
        if let Some(op) = self.peek().tok.compare_op() {
            let op_span = self.bump().span;
            let right = self.primary()?;
            let span = left.span.to(right.span);
            return Ok(Expr {
                kind: ExprKind::Compare { op, op_span, left: Box::new(left), right: Box::new(right) },
                span,
            });
        }
        let negated = self.peek().tok.is_keyword("not") && self.peek_at(1).tok.is_keyword("in");
        if negated {
            self.bump();
        }
        if self.eat_keyword("in").is_some() {
            let (list, end) = self.list()?;
            let span = left.span.to(end);
            return Ok(Expr { kind: ExprKind::In { value: Box::new(left), list, negated }, span });
        }
        Ok(left)
    }

    /// `[literal, ...]`; returns the items and the span of the closing bracket.
    fn list(&mut self) -> Result<(Vec<Expr>, Span), ConditionError> {
        if self.peek().tok != Tok::LBracket {
            let mut error = self.unexpected("`[` to start a list");
            error.hint = Some("write a list of values: `tier in [\"gold\", \"diamond\"]`".into());
            return Err(error);
        }
        self.bump();
        let mut items = Vec::new();
        loop {
            if self.peek().tok == Tok::RBracket {
                let end = self.bump().span;
                if items.is_empty() {
                    return Err(syntax(
                        end,
                        "expected a value in the list, found `]`",
                        Some("an empty list matches nothing; list at least one value".into()),
                    ));
                }
                return Ok((items, end));
            }
            let token = self.peek().clone();
            let Some(literal) = self.literal() else {
                let mut error = self.unexpected("a value (a number, a \"string\", true, false or null)");
                if matches!(token.tok, Tok::Ident(_)) {
                    error.hint = Some("lists hold values, not fields; quote strings: [\"gold\", \"diamond\"]".into());
                }
                return Err(error);
            };
            items.push(literal);
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBracket => {}
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    fn literal(&mut self) -> Option<Expr> {
        let token = self.peek().clone();
        let literal = match token.tok {
            Tok::Int(n) => Literal::Int(n),
            Tok::Decimal(x) => Literal::Decimal(x),
            Tok::Duration(d) => Literal::Duration(d),
            Tok::Str(s) => Literal::String(s),
            Tok::Ident(ref name) if name == "true" => Literal::Bool(true),
            Tok::Ident(ref name) if name == "false" => Literal::Bool(false),
            Tok::Ident(ref name) if name == "null" => Literal::Null,
            _ => return None,
        };
        self.bump();
        Some(Expr { kind: ExprKind::Literal(literal), span: token.span })
    }

    fn primary(&mut self) -> Result<Expr, ConditionError> {
        if let Some(literal) = self.literal() {
            return Ok(literal);
        }
        let token = self.peek().clone();
        match token.tok {
            Tok::LParen => {
                self.bump();
                let inner = self.or()?;
                let end = self.expect(Tok::RParen, "`)`")?;
                Ok(Expr { kind: inner.kind, span: token.span.to(end) })
            }
            Tok::Ident(name) if KEYWORDS.contains(&name.as_str()) => Err(self.unexpected("a value")),
            Tok::Ident(name) => {
                self.bump();
                let first = Ident { name, span: token.span };
                if self.peek().tok == Tok::LParen {
                    return self.call(first);
                }
                let mut segments = vec![first];
                while self.peek().tok == Tok::Dot {
                    self.bump();
                    let next = self.peek().clone();
                    match next.tok {
                        Tok::Ident(name) => {
                            self.bump();
                            segments.push(Ident { name, span: next.span });
                        }
                        _ => return Err(self.unexpected("a name after `.`")),
                    }
                }
                if self.peek().tok == Tok::LParen {
                    return Err(syntax(self.peek().span, "only plain names can be called, not dotted paths", None));
                }
                let path = FieldPath { segments };
                let span = path.span();
                Ok(Expr { kind: ExprKind::Field(path), span })
            }
            _ => Err(self.unexpected("a value")),
        }
    }

    fn call(&mut self, name: Ident) -> Result<Expr, ConditionError> {
        self.bump(); // `(`
        self.enter()?;
        let mut args = Vec::new();
        if self.peek().tok != Tok::RParen {
            loop {
                args.push(self.or()?);
                if self.peek().tok == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        let end = self.expect(Tok::RParen, "`,` or `)`")?;
        self.depth -= 1;
        let span = name.span.to(end);
        Ok(Expr { kind: ExprKind::Call(Call { name, args }), span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> String {
        parse(text).unwrap().to_string()
    }

    fn error(text: &str) -> ConditionError {
        let error = parse(text).unwrap_err();
        assert_eq!(error.code, "C001");
        error
    }

    #[test]
    fn or_binds_looser_than_and_which_binds_looser_than_not() {
        assert_eq!(show("a or b and c"), "a or (b and c)");
        assert_eq!(show("a and b or c"), "(a and b) or c");
        assert_eq!(show("not a and b"), "(not a) and b");
        assert_eq!(show("not a == 1 or b"), "(not (a == 1)) or b");
        assert_eq!(show("not not a"), "not (not a)");
        assert_eq!(show("a and b and c"), "(a and b) and c");
        assert_eq!(show("(a or b) and c"), "(a or b) and c");
    }

    #[test]
    fn parses_the_design_example() {
        assert_eq!(
            show(r#"lifecycle == "churned" and email_consent and points > 0"#),
            r#"((lifecycle == "churned") and email_consent) and (points > 0)"#
        );
    }

    #[test]
    fn parses_literals_lists_and_calls() {
        assert_eq!(show("days_since(last_order_at) >= 30d"), "days_since(last_order_at) >= 30d");
        assert_eq!(show("x == -2.50"), "x == -2.5");
        assert_eq!(show("x != 3.0"), "x != 3.0");
        assert_eq!(show("tier in ['gold', \"diamond\",]"), "tier in [\"gold\", \"diamond\"]");
        assert_eq!(show("tier not in [null, 1]"), "tier not in [null, 1]");
        assert_eq!(show("has_tag(\"v\\\"ip\\u{e9}\")"), "has_tag(\"v\\\"ipé\")");
        assert_eq!(show("opened(offer) or clicked( offer )"), "opened(offer) or clicked(offer)");
        assert_eq!(show("event.order.total > 100"), "event.order.total > 100");
        assert_eq!(show("f()"), "f()");
        assert_eq!(show("x == 1d12h"), "x == 1d12h");
        assert_eq!(show("x == -3d"), "x == -3d");
    }

    #[test]
    fn every_node_carries_its_span() {
        let text = r#"not (tier == "gold") or points > 10"#;
        let expr = parse(text).unwrap();
        assert_eq!(expr.span, Span::new(0, text.len()));
        let ExprKind::Or(left, right) = &expr.kind else { panic!() };
        assert_eq!(&text[left.span.start..left.span.end], r#"not (tier == "gold")"#);
        let ExprKind::Not(inner) = &left.kind else { panic!() };
        assert_eq!(&text[inner.span.start..inner.span.end], r#"(tier == "gold")"#);
        let ExprKind::Compare { op_span, left: field, right: lit, .. } = &inner.kind else { panic!() };
        assert_eq!(&text[op_span.start..op_span.end], "==");
        assert_eq!(&text[field.span.start..field.span.end], "tier");
        assert_eq!(&text[lit.span.start..lit.span.end], "\"gold\"");
        assert_eq!(&text[right.span.start..right.span.end], "points > 10");
    }

    #[test]
    fn syntax_errors_say_what_was_expected_and_where() {
        let e = error("points >");
        assert_eq!(e.message, "expected a value, found the end of the condition");
        assert_eq!(e.span, Span::new(8, 8));

        let e = error("tier = \"gold\"");
        assert_eq!(e.span, Span::new(5, 6));
        assert_eq!(e.hint.as_deref(), Some("write `==` to compare"));

        let e = error("a && b");
        assert_eq!(e.hint.as_deref(), Some("write `and`"));

        let e = error("(a or b");
        assert_eq!(e.message, "expected `)`, found the end of the condition");

        let e = error("a b");
        assert_eq!(e.message, "expected `and`, `or` or the end of the condition, found `b`");
        assert_eq!(e.span, Span::new(2, 3));

        let e = error("1 < x < 3");
        assert!(e.message.contains("do not chain"), "{}", e.message);

        let e = error("tier in []");
        assert_eq!(e.span, Span::new(9, 10));

        let e = error("tier in [gold]");
        assert!(e.hint.unwrap().contains("quote strings"));

        assert!(error("x == 3days").message.starts_with("invalid duration"));
        assert!(error("x == 1.5d").message.contains("whole numbers"));
        assert_eq!(error("x == \"abc").message, "unterminated string");
        assert!(error("x == 99999999999999999999").message.contains("out of range"));
        assert_eq!(error("points + 1").message, "unexpected character `+`");
        assert_eq!(error("x == \"\\q\"").message, "unknown escape `\\q`");
        assert_eq!(error("and").message, "expected a value, found `and`");
        assert_eq!(error("a.b(1)").code, "C001");
        assert_eq!(error("").message, "expected a value, found the end of the condition");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(error(&deep).message.contains("nested too deeply"));
        let nots = format!("{}a", "not ".repeat(10_000));
        assert!(error(&nots).message.contains("nested too deeply"));
    }

    mod properties {
        use super::super::parse;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("tier == \"gold\"".to_string()),
                Just("email_consent".to_string()),
                (-1000i64..1000).prop_map(|n| format!("points > {n}")),
                (0i64..400).prop_map(|n| format!("days_since(last_order_at) <= {n}d")),
                "[a-z_]{1,8}".prop_map(|tag| format!("has_tag(\"{tag}\")")),
                any::<String>().prop_map(|s| format!("first_name == {}", super::super::Literal::String(s))),
                (-1e9f64..1e9).prop_map(|x| format!("attributes.score >= {}", super::super::Literal::Decimal(x))),
                Just("lifecycle in [\"new\", \"active\", null]".to_string()),
                Just("birthday != null".to_string()),
            ]
        }

        fn condition() -> impl Strategy<Value = String> {
            leaf().prop_recursive(5, 32, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
                    inner.prop_map(|a| format!("not ({a})")),
                ]
            })
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(text in any::<String>()) {
                let _ = parse(&text);
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                let text = String::from_utf8_lossy(&bytes);
                let _ = parse(&text);
            }

            #[test]
            fn condition_like_text_never_panics(text in "[a-z_. ()\\[\\]\",=!<>0-9d-]{0,40}") {
                let _ = parse(&text);
            }

            #[test]
            fn generated_conditions_parse_and_print_back(text in condition()) {
                let expr = parse(&text).unwrap();
                let printed = expr.to_string();
                let again = parse(&printed).unwrap();
                prop_assert_eq!(again.to_string(), printed);
            }
        }
    }
}
