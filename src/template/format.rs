//! Formatting money, dates and plurals for people: pure functions behind the helpers.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;

/// The symbol and number of minor-unit decimals of a currency (ISO 4217).
fn currency(code: &str) -> Option<(&'static str, u32)> {
    Some(match code {
        "CNY" | "RMB" => ("¥", 2),
        "JPY" => ("¥", 0),
        "USD" => ("$", 2),
        "EUR" => ("€", 2),
        "GBP" => ("£", 2),
        "HKD" => ("HK$", 2),
        "TWD" => ("NT$", 2),
        "SGD" => ("S$", 2),
        "AUD" => ("A$", 2),
        "CAD" => ("CA$", 2),
        "KRW" => ("₩", 0),
        "INR" => ("₹", 2),
        _ => return None,
    })
}

/// The language of a locale such as `zh-CN` or `de_DE`, lowercased.
fn language(locale: &str) -> String {
    locale.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase()
}

/// Languages that write `1.234,56 €` rather than `€1,234.56`.
const DECIMAL_COMMA: &[&str] = &["de", "fr", "es", "it", "nl", "pt", "ru", "pl", "tr", "sv", "da", "nb", "fi"];

/// An amount in minor units as people read it: `money(123456, "CNY", "zh-CN")` is
/// `¥1,234.56`, JPY has no decimals, and decimal-comma languages put the symbol after.
pub fn money(minor: i64, code: &str, locale: &str) -> String {
    let code = code.trim().to_ascii_uppercase();
    let (symbol, decimals) = currency(&code).unwrap_or(("", 2));
    let scale = 10_i128.pow(decimals);
    let abs = (minor as i128).abs();
    let (whole, fraction) = (abs / scale, abs % scale);
    let comma = DECIMAL_COMMA.contains(&language(locale).as_str());
    let (group, point) = if comma { ('.', ',') } else { (',', '.') };

    let digits = whole.to_string();
    let mut number = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            number.push(group);
        }
        number.push(c);
    }
    if decimals > 0 {
        let _ = write!(number, "{point}{fraction:0width$}", width = decimals as usize);
    }
    let sign = if minor < 0 { "-" } else { "" };
    match (symbol, comma) {
        ("", _) => format!("{sign}{number} {code}"),
        (symbol, true) => format!("{sign}{number} {symbol}"),
        (symbol, false) => format!("{sign}{symbol}{number}"),
    }
}

/// The default date patterns of a language: (with year, without year).
fn date_patterns(locale: &str) -> (&'static str, &'static str) {
    match language(locale).as_str() {
        "zh" | "ja" => ("%Y年%-m月%-d日", "%-m月%-d日"),
        "ko" => ("%Y년 %-m월 %-d일", "%-m월 %-d일"),
        "en" => ("%B %-d, %Y", "%B %-d"),
        "de" => ("%d.%m.%Y", "%d.%m."),
        "fr" | "es" | "it" | "pt" | "nl" => ("%d/%m/%Y", "%d/%m"),
        _ => ("%Y-%m-%d", "%m-%d"),
    }
}

/// Formats an RFC 3339 timestamp (in `timezone`), a `YYYY-MM-DD` date or a yearless
/// `--MM-DD` birthday with a strftime `pattern`, or the locale's default.
pub fn date(value: &str, pattern: Option<&str>, timezone: Tz, locale: &str) -> Result<String, String> {
    let (with_year, without_year) = date_patterns(locale);
    let value = value.trim();
    let check = |pattern: &str| -> Result<(), String> {
        if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
            Err(format!("`{pattern}` is not a valid date format"))
        } else {
            Ok(())
        }
    };
    let mut out = String::new();
    let failed = |_| format!("`{}` cannot format `{value}`", pattern.unwrap_or(with_year));
    if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        let pattern = pattern.unwrap_or(with_year);
        check(pattern)?;
        write!(out, "{}", instant.with_timezone(&timezone).format(pattern)).map_err(failed)?;
    } else if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let pattern = pattern.unwrap_or(with_year);
        check(pattern)?;
        write!(out, "{}", day.format(pattern)).map_err(failed)?;
    } else if let Some(day) =
        value.strip_prefix("--").and_then(|md| NaiveDate::parse_from_str(&format!("2000-{md}"), "%Y-%m-%d").ok())
    {
        let pattern = pattern.unwrap_or(without_year);
        check(pattern)?;
        write!(out, "{}", day.format(pattern)).map_err(failed)?;
    } else {
        return Err(format!("`{value}` is not a date or an RFC 3339 timestamp"));
    }
    Ok(out)
}

/// The English plural of a word; words in scripts without plurals stay as they are.
pub fn plural_of(word: &str) -> String {
    if !word.is_ascii() || word.is_empty() {
        return word.to_string();
    }
    let lower = word.to_ascii_lowercase();
    if ["s", "x", "z", "ch", "sh"].iter().any(|end| lower.ends_with(end)) {
        format!("{word}es")
    } else if lower.ends_with('y')
        && !lower.ends_with("ay")
        && !lower.ends_with("ey")
        && !lower.ends_with("oy")
        && !lower.ends_with("uy")
    {
        format!("{}ies", &word[..word.len() - 1])
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_uses_the_minor_units_of_each_currency() {
        assert_eq!(money(123456, "CNY", "zh-CN"), "¥1,234.56");
        assert_eq!(money(123456, "cny", ""), "¥1,234.56");
        assert_eq!(money(123456, "JPY", "ja"), "¥123,456");
        assert_eq!(money(500, "USD", "en-US"), "$5.00");
        assert_eq!(money(-1999, "USD", "en"), "-$19.99");
        assert_eq!(money(123456789, "EUR", "de-DE"), "1.234.567,89 €");
        assert_eq!(money(5, "EUR", "en"), "€0.05");
        assert_eq!(money(100000, "XYZ", "en"), "1,000.00 XYZ");
        assert_eq!(money(i64::MIN, "USD", "en"), "-$92,233,720,368,547,758.08");
    }

    #[test]
    fn dates_are_shown_in_the_members_timezone_and_language() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        assert_eq!(date("2025-03-14T18:00:00Z", None, shanghai, "zh-CN").unwrap(), "2025年3月15日");
        assert_eq!(date("2025-03-14T18:00:00Z", None, chrono_tz::UTC, "en").unwrap(), "March 14, 2025");
        assert_eq!(date("2025-03-14", Some("%d/%m"), shanghai, "").unwrap(), "14/03");
        assert_eq!(date("--02-29", None, shanghai, "zh").unwrap(), "2月29日");
        assert_eq!(date("2025-03-14T18:00:00Z", Some("%H:%M"), shanghai, "").unwrap(), "02:00");
        assert!(date("2025-03-14", Some("%Q"), shanghai, "").is_err());
        assert!(date("2025-03-14", Some("%z"), shanghai, "").is_err());
        assert!(date("next tuesday", None, shanghai, "").is_err());
    }

    #[test]
    fn plurals_follow_english_spelling_and_leave_chinese_alone() {
        assert_eq!(plural_of("point"), "points");
        assert_eq!(plural_of("box"), "boxes");
        assert_eq!(plural_of("day"), "days");
        assert_eq!(plural_of("reply"), "replies");
        assert_eq!(plural_of("积分"), "积分");
    }
}
