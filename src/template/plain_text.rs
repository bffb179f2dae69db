//! The plain-text part of an email, derived from its HTML when there is no
//! `NAME.email.txt.hbs`: text in reading order, links as `label (url)`, no markup.

/// Elements whose content is never text.
const SKIPPED: &[&str] = &["head", "style", "script", "title"];
/// Elements that end a line.
const BREAKS: &[&str] =
    &["p", "div", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "hr", "blockquote", "center"];

pub(crate) fn from_html(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    // (href, where the link text starts in `out`)
    let mut links: Vec<(String, usize)> = Vec::new();
    let mut last_item_end: Option<usize> = None;
    while let Some(lt) = rest.find('<') {
        push_text(&mut out, &rest[..lt]);
        rest = &rest[lt..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if !closing && (SKIPPED.contains(&name.as_str()) || is_hidden(tag)) {
            rest = skip_element(rest, &name);
            continue;
        }
        match name.as_str() {
            "br" => out.push('\n'),
            "li" if !closing => {
                // Items follow one another without the blank lines of the markup.
                if let Some(end) = last_item_end.filter(|&end| out[end..].trim().is_empty()) {
                    out.truncate(end);
                }
                out.push_str("\n- ");
            }
            "li" => last_item_end = Some(out.len()),
            "td" | "th" if closing => out.push(' '),
            "a" if !closing => links.push((attribute(tag, "href").unwrap_or_default(), out.len())),
            "a" => {
                if let Some((href, start)) = links.pop() {
                    let label = out[start..].trim().to_string();
                    let target = href.strip_prefix("mailto:").unwrap_or(&href);
                    let shown = !href.is_empty() && !href.starts_with('#') && !label.contains(target);
                    if shown {
                        out.push_str(&format!(" ({href})"));
                    }
                }
            }
            "img" => {
                if let Some(alt) = attribute(tag, "alt") {
                    out.push_str(&alt);
                }
            }
            n if BREAKS.contains(&n) => out.push('\n'),
            _ => {}
        }
    }
    push_text(&mut out, rest);
    tidy(&out)
}

fn push_text(out: &mut String, text: &str) {
    out.push_str(&decode_entities(text));
}

/// `display:none` elements (the hidden preheader) carry no readable text.
fn is_hidden(tag: &str) -> bool {
    attribute(tag, "style").is_some_and(|style| style.replace(' ', "").to_ascii_lowercase().contains("display:none"))
}

/// Skips to after the close tag of `name`, counting nested elements of the same name.
fn skip_element<'a>(mut rest: &'a str, name: &str) -> &'a str {
    if name.is_empty() {
        return rest;
    }
    let mut depth = 1;
    loop {
        let lower = rest.to_ascii_lowercase();
        let open = lower
            .find(&format!("<{name}"))
            .filter(|&i| lower[i + 1 + name.len()..].starts_with(|c: char| c == '>' || c.is_whitespace() || c == '/'));
        let Some(close) = lower.find(&format!("</{name}")) else {
            return "";
        };
        match open {
            Some(open) if open < close => {
                depth += 1;
                rest = &rest[open + 1..];
            }
            _ => {
                depth -= 1;
                let after = rest[close..].find('>').map_or(rest.len(), |gt| close + gt + 1);
                rest = &rest[after..];
                if depth == 0 {
                    return rest;
                }
            }
        }
    }
}

/// The value of an attribute in a start tag, entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at > 0 && lower[..at].ends_with(|c: char| c.is_whitespace());
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag[value_start..].trim_start();
        let (quote, body) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &value[1..]),
            _ => (None, value),
        };
        let end = match quote {
            Some(q) => body.find(q).unwrap_or(body.len()),
            None => body.find(|c: char| c.is_whitespace() || c == '>').unwrap_or(body.len()),
        };
        return Some(decode_entities(&body[..end]));
    }
    None
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            "zwnj" | "zwj" | "shy" => Some('\u{200c}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some('\u{200c}') => {}
            Some(c) => out.push(c),
            None => out.push_str(&rest[..=semi]),
        }
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    out
}

/// Collapses spaces within lines and runs of blank lines.
fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_words_and_links_and_drops_markup_and_hidden_parts() {
        let html = r#"<html><head><style>p { color: red }</style><title>x</title></head><body>
<div style="display: none">preheader &zwnj;&nbsp;</div>
<table><tr><td><h1>Hello &amp; welcome</h1></td></tr></table>
<p>Your code is <b>WELCOME10</b>.<br>Use it <a href="https://shop.example/c">in the shop</a>.</p>
<!--[if mso]><p>outlook</p><![endif]-->
<ul>
  <li>one</li>

  <li>two</li>
</ul>
<p>Write to <a href="mailto:help@shop.example">help@shop.example</a></p>
<a href="https://shop.example/u">https://shop.example/u</a>
</body></html>"#;
        assert_eq!(
            from_html(html),
            "Hello & welcome\n\nYour code is WELCOME10.\nUse it in the shop (https://shop.example/c).\n\n- one\n- two\n\nWrite to help@shop.example\n\nhttps://shop.example/u\n"
        );
    }
}
