//! A partial member: the fields one import row, one `member.created` or one
//! `member.updated` event gives, parsed and checked, ready to apply to a [`Member`].
//!
//! Values come as CSV text or as JSON; both are read by the same rules (written in the
//! README's "Member state" section): timestamps are RFC 3339 and stored in UTC at
//! microsecond precision, birthdays `YYYY-MM-DD` or `--MM-DD`, time zones IANA names,
//! phones E.164, currencies ISO 4217 codes, money in integer minor units. Text is stored
//! verbatim, except that a NUL character is refused (PostgreSQL cannot store it).

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};

use crate::member::{Birthday, Member};

/// A member field a shop can set: every stored field of DESIGN §1 but `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Email,
    Phone,
    PushTokens,
    FirstName,
    LastName,
    Locale,
    Timezone,
    Birthday,
    Tier,
    Points,
    PointsExpiring,
    PointsExpireAt,
    TotalSpend,
    Currency,
    OrderCount,
    FirstOrderAt,
    LastOrderAt,
    JoinedAt,
    EmailConsent,
    SmsConsent,
    PushConsent,
    Tags,
    Attributes,
}

/// Fields that change together: an import of any field of a group is a snapshot of the
/// whole group as of the import (see [`super::fold`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Contact data, names, locale, time zone, birthday, joined_at, consents, tags, attributes.
    Profile,
    /// order_count, total_spend, currency, first_order_at, last_order_at.
    Orders,
    /// points, points_expiring, points_expire_at.
    Points,
    Tier,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Profile, Group::Orders, Group::Points, Group::Tier];

    pub fn name(self) -> &'static str {
        match self {
            Group::Profile => "profile",
            Group::Orders => "orders",
            Group::Points => "points",
            Group::Tier => "tier",
        }
    }
}

/// How a field's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Email,
    Phone,
    Locale,
    Timezone,
    Currency,
    Birthday,
    Int,
    NonNegative,
    Bool,
    Timestamp,
    List,
    Attributes,
}

impl Field {
    pub const ALL: [Field; 23] = [
        Field::Email,
        Field::Phone,
        Field::PushTokens,
        Field::FirstName,
        Field::LastName,
        Field::Locale,
        Field::Timezone,
        Field::Birthday,
        Field::Tier,
        Field::Points,
        Field::PointsExpiring,
        Field::PointsExpireAt,
        Field::TotalSpend,
        Field::Currency,
        Field::OrderCount,
        Field::FirstOrderAt,
        Field::LastOrderAt,
        Field::JoinedAt,
        Field::EmailConsent,
        Field::SmsConsent,
        Field::PushConsent,
        Field::Tags,
        Field::Attributes,
    ];

    /// The field's name in DESIGN §1, in files, in events and as a column.
    pub fn name(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::Phone => "phone",
            Field::PushTokens => "push_tokens",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Locale => "locale",
            Field::Timezone => "timezone",
            Field::Birthday => "birthday",
            Field::Tier => "tier",
            Field::Points => "points",
            Field::PointsExpiring => "points_expiring",
            Field::PointsExpireAt => "points_expire_at",
            Field::TotalSpend => "total_spend",
            Field::Currency => "currency",
            Field::OrderCount => "order_count",
            Field::FirstOrderAt => "first_order_at",
            Field::LastOrderAt => "last_order_at",
            Field::JoinedAt => "joined_at",
            Field::EmailConsent => "email_consent",
            Field::SmsConsent => "sms_consent",
            Field::PushConsent => "push_consent",
            Field::Tags => "tags",
            Field::Attributes => "attributes",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn group(self) -> Group {
        match self {
            Field::Tier => Group::Tier,
            Field::Points | Field::PointsExpiring | Field::PointsExpireAt => Group::Points,
            Field::TotalSpend | Field::Currency | Field::OrderCount | Field::FirstOrderAt | Field::LastOrderAt => {
                Group::Orders
            }
            _ => Group::Profile,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Field::FirstName | Field::LastName | Field::Tier => Kind::Text,
            Field::Email => Kind::Email,
            Field::Phone => Kind::Phone,
            Field::Locale => Kind::Locale,
            Field::Timezone => Kind::Timezone,
            Field::Currency => Kind::Currency,
            Field::Birthday => Kind::Birthday,
            Field::Points | Field::TotalSpend => Kind::Int,
            Field::PointsExpiring | Field::OrderCount => Kind::NonNegative,
            Field::EmailConsent | Field::SmsConsent | Field::PushConsent => Kind::Bool,
            Field::PointsExpireAt | Field::FirstOrderAt | Field::LastOrderAt | Field::JoinedAt => Kind::Timestamp,
            Field::PushTokens | Field::Tags => Kind::List,
            Field::Attributes => Kind::Attributes,
        }
    }

    /// Whether the field may be null (numbers and consents are 0/false, lists are empty).
    fn nullable(self) -> bool {
        !matches!(self.kind(), Kind::Int | Kind::NonNegative | Kind::Bool | Kind::List | Kind::Attributes)
    }
}

/// A checked value of one field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Clears the field (only for fields that may be null).
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
    Birthday(Birthday),
    List(Vec<String>),
    /// Merged into the member's attributes key by key; a null value removes the key.
    Attributes(Map<String, Value>),
}

/// Some fields of one member, each at most once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    values: Vec<(Field, FieldValue)>,
}

impl Patch {
    pub fn new() -> Patch {
        Patch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = (Field, &FieldValue)> {
        self.values.iter().map(|(f, v)| (*f, v))
    }

    /// Sets a field; attribute maps merge with attributes already in the patch.
    pub fn set(&mut self, field: Field, value: FieldValue) {
        match self.values.iter_mut().find(|(f, _)| *f == field) {
            Some((_, FieldValue::Attributes(old))) if field == Field::Attributes => {
                if let FieldValue::Attributes(new) = value {
                    old.extend(new);
                }
            }
            Some((_, old)) => *old = value,
            None => self.values.push((field, value)),
        }
    }

    pub fn get(&self, field: Field) -> Option<&FieldValue> {
        self.values.iter().find(|(f, _)| *f == field).map(|(_, v)| v)
    }

    /// The groups this patch touches.
    pub fn groups(&self) -> Vec<Group> {
        Group::ALL.into_iter().filter(|g| self.values.iter().any(|(f, _)| f.group() == *g)).collect()
    }

    /// Writes every field of the patch into `member` (only the fields of groups `admit`
    /// lets through).
    pub fn apply_where(&self, member: &mut Member, admit: impl Fn(Group) -> bool) {
        for (field, value) in &self.values {
            if admit(field.group()) {
                apply(member, *field, value);
            }
        }
    }

    pub fn apply(&self, member: &mut Member) {
        self.apply_where(member, |_| true);
    }
}

fn apply(m: &mut Member, field: Field, value: &FieldValue) {
    let text = || match value {
        FieldValue::Text(s) => Some(s.clone()),
        _ => None,
    };
    let int = || match value {
        FieldValue::Int(n) => *n,
        _ => 0,
    };
    let boolean = || matches!(value, FieldValue::Bool(true));
    let at = || match value {
        FieldValue::Timestamp(t) => Some(*t),
        _ => None,
    };
    let list = || match value {
        FieldValue::List(l) => l.clone(),
        _ => Vec::new(),
    };
    match field {
        Field::Email => m.email = text(),
        Field::Phone => m.phone = text(),
        Field::PushTokens => m.push_tokens = list(),
        Field::FirstName => m.first_name = text(),
        Field::LastName => m.last_name = text(),
        Field::Locale => m.locale = text(),
        Field::Timezone => m.timezone = text(),
        Field::Birthday => {
            m.birthday = match value {
                FieldValue::Birthday(b) => Some(*b),
                _ => None,
            }
        }
        Field::Tier => m.tier = text(),
        Field::Points => m.points = int(),
        Field::PointsExpiring => m.points_expiring = int(),
        Field::PointsExpireAt => m.points_expire_at = at(),
        Field::TotalSpend => m.total_spend = int(),
        Field::Currency => m.currency = text(),
        Field::OrderCount => m.order_count = int(),
        Field::FirstOrderAt => m.first_order_at = at(),
        Field::LastOrderAt => m.last_order_at = at(),
        Field::JoinedAt => m.joined_at = at(),
        Field::EmailConsent => m.email_consent = boolean(),
        Field::SmsConsent => m.sms_consent = boolean(),
        Field::PushConsent => m.push_consent = boolean(),
        Field::Tags => m.tags = list(),
        Field::Attributes => {
            if let FieldValue::Attributes(map) = value {
                for (key, v) in map {
                    if v.is_null() {
                        m.attributes.remove(key);
                    } else {
                        m.attributes.insert(key.clone(), v.clone());
                    }
                }
            }
        }
    }
}

/// Reads a field from a CSV cell (the caller treats an empty cell as absent).
pub fn parse_text(field: Field, text: &str) -> Result<FieldValue, String> {
    let kind = field.kind();
    let value = match kind {
        Kind::Int | Kind::NonNegative => {
            let n = text.trim().parse::<i64>().map_err(|_| format!("`{text}` is not a whole number"))?;
            FieldValue::Int(n)
        }
        Kind::Bool => FieldValue::Bool(match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => true,
            "false" | "0" | "no" | "n" => false,
            _ => return Err(format!("`{text}` is not true or false")),
        }),
        Kind::List => {
            if text.trim_start().starts_with('[') {
                let json: Value =
                    serde_json::from_str(text).map_err(|e| format!("`{text}` is not a JSON list: {e}"))?;
                return parse_json(field, &json);
            }
            FieldValue::List(text.split('|').map(str::to_string).collect())
        }
        Kind::Attributes => {
            let json: Value = serde_json::from_str(text).map_err(|e| format!("`{text}` is not a JSON object: {e}"))?;
            return parse_json(field, &json);
        }
        _ => FieldValue::Text(text.to_string()),
    };
    check(field, value)
}

/// Reads a field from a JSON value (`null` clears it where it may be null).
pub fn parse_json(field: Field, json: &Value) -> Result<FieldValue, String> {
    let kind = field.kind();
    let value = match (kind, json) {
        (_, Value::Null) if field.nullable() => return Ok(FieldValue::Null),
        (_, Value::Null) => return Err("cannot be null".to_string()),
        (Kind::Int | Kind::NonNegative, Value::Number(n)) => {
            FieldValue::Int(n.as_i64().ok_or_else(|| format!("`{n}` is not a whole number"))?)
        }
        (Kind::Int | Kind::NonNegative, _) => return Err(format!("expected a whole number, found {}", describe(json))),
        (Kind::Bool, Value::Bool(b)) => FieldValue::Bool(*b),
        (Kind::Bool, _) => return Err(format!("expected true or false, found {}", describe(json))),
        (Kind::List, Value::Array(items)) => FieldValue::List(
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("expected a list of strings, found {} in it", describe(other))),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::List, _) => return Err(format!("expected a list of strings, found {}", describe(json))),
        (Kind::Attributes, Value::Object(map)) => FieldValue::Attributes(map.clone()),
        (Kind::Attributes, _) => return Err(format!("expected a JSON object, found {}", describe(json))),
        (_, Value::String(s)) => FieldValue::Text(s.clone()),
        (_, _) => return Err(format!("expected a string, found {}", describe(json))),
    };
    check(field, value)
}

/// An attribute given in its own CSV column (`attributes.NAME`): `true`, `false` and JSON
/// numbers become JSON booleans and numbers, anything else is a string, kept verbatim.
pub fn attribute_from_text(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match serde_json::from_str::<Value>(text) {
            Ok(number @ Value::Number(_)) if text.trim() == text => number,
            _ => Value::String(text.to_string()),
        },
    }
}

fn describe(json: &Value) -> &'static str {
    match json {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Checks and normalises a parsed value of `field`.
fn check(field: Field, value: FieldValue) -> Result<FieldValue, String> {
    let kind = field.kind();
    match value {
        FieldValue::Text(text) => {
            no_nul(&text)?;
            match kind {
                Kind::Text => Ok(FieldValue::Text(text)),
                Kind::Email => {
                    let ok = text.len() <= 254
                        && !text.chars().any(char::is_whitespace)
                        && text.split_once('@').is_some_and(|(local, domain)| {
                            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                        });
                    if ok { Ok(FieldValue::Text(text)) } else { Err(format!("`{text}` is not an email address")) }
                }
                Kind::Phone => {
                    let digits = text.strip_prefix('+').unwrap_or("");
                    let ok = (7..=15).contains(&digits.len())
                        && digits.bytes().all(|b| b.is_ascii_digit())
                        && !digits.starts_with('0');
                    if ok {
                        Ok(FieldValue::Text(text))
                    } else {
                        Err(format!("`{text}` is not an E.164 phone number (like +8613800138000)"))
                    }
                }
                Kind::Locale => {
                    let ok = !text.is_empty()
                        && text.len() <= 35
                        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if ok { Ok(FieldValue::Text(text)) } else { Err(format!("`{text}` is not a locale (like zh-CN)")) }
                }
                Kind::Timezone => match text.parse::<chrono_tz::Tz>() {
                    Ok(_) => Ok(FieldValue::Text(text)),
                    Err(_) => Err(format!("unknown time zone `{text}` (use an IANA name like Asia/Shanghai)")),
                },
                Kind::Currency => {
                    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
                        Ok(FieldValue::Text(text))
                    } else {
                        Err(format!("`{text}` is not a currency code (like CNY)"))
                    }
                }
                Kind::Birthday => Birthday::parse(&text)
                    .map(FieldValue::Birthday)
                    .ok_or_else(|| format!("`{text}` is not a date (write YYYY-MM-DD, or --MM-DD without a year)")),
                Kind::Timestamp => parse_timestamp(&text).map(FieldValue::Timestamp),
                _ => unreachable!("non-text kinds are parsed before check"),
            }
        }
        FieldValue::Int(n) if kind == Kind::NonNegative && n < 0 => Err(format!("{n} is negative")),
        FieldValue::List(items) => {
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                no_nul(&item)?;
                if item.is_empty() {
                    return Err("a list item is empty".to_string());
                }
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            // Tags are a set (stored one row each); push tokens keep their order.
            if field == Field::Tags {
                out.sort();
            }
            Ok(FieldValue::List(out))
        }
        FieldValue::Attributes(map) => {
            for (key, value) in &map {
                no_nul(key)?;
                if key.is_empty() {
                    return Err("an attribute name is empty".to_string());
                }
                json_no_nul(value)?;
            }
            Ok(FieldValue::Attributes(map))
        }
        other => Ok(other),
    }
}

/// An RFC 3339 timestamp, in UTC, at the microsecond precision both engines store.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(text.trim())
        .map_err(|_| format!("`{text}` is not an RFC 3339 timestamp (like 2026-03-01T09:30:00+08:00)"))?
        .with_timezone(&Utc);
    if !(1..=9999).contains(&chrono::Datelike::year(&at)) {
        return Err(format!("`{text}` is outside the years 1 to 9999"));
    }
    Ok(at.trunc_subsecs(6))
}

fn no_nul(text: &str) -> Result<(), String> {
    if text.contains('\0') { Err("contains a NUL character".to_string()) } else { Ok(()) }
}

fn json_no_nul(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => no_nul(s),
        Value::Array(items) => items.iter().try_for_each(json_no_nul),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| no_nul(k).and_then(|()| json_no_nul(v))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_stored_member_field_of_the_schema_is_a_patch_field() {
        let stored: Vec<&str> = crate::schema::MEMBER_FIELDS
            .iter()
            .filter(|f| f.origin == crate::schema::Origin::Stored && f.name != "id")
            .map(|f| f.name)
            .collect();
        let ours: Vec<&str> = Field::ALL.iter().map(|f| f.name()).filter(|n| *n != "attributes").collect();
        assert_eq!(stored, ours);
    }

    #[test]
    fn text_values_are_checked_by_kind() {
        assert_eq!(parse_text(Field::Points, "42"), Ok(FieldValue::Int(42)));
        assert!(parse_text(Field::Points, "4.5").unwrap_err().contains("whole number"));
        assert!(parse_text(Field::OrderCount, "-1").unwrap_err().contains("negative"));
        assert_eq!(parse_text(Field::EmailConsent, "yes"), Ok(FieldValue::Bool(true)));
        assert!(parse_text(Field::Timezone, "Mars/Olympus").unwrap_err().contains("unknown time zone"));
        assert!(parse_text(Field::Birthday, "1990-02-30").unwrap_err().contains("not a date"));
        assert!(parse_text(Field::Phone, "13800138000").unwrap_err().contains("E.164"));
        assert!(parse_text(Field::Email, "ann at example.com").is_err());
        assert!(parse_text(Field::Currency, "rmb").is_err());
        assert_eq!(
            parse_text(Field::JoinedAt, "2026-01-02T08:00:00.1234567+08:00"),
            Ok(FieldValue::Timestamp("2026-01-02T00:00:00.123456Z".parse().unwrap()))
        );
        assert!(parse_text(Field::JoinedAt, "2026-01-02").unwrap_err().contains("RFC 3339"));
        assert_eq!(parse_text(Field::Tags, "vip|early|vip"), Ok(FieldValue::List(vec!["early".into(), "vip".into()])));
        assert_eq!(parse_text(Field::Tags, r#"["b","a"]"#), Ok(FieldValue::List(vec!["a".into(), "b".into()])));
        assert!(parse_text(Field::FirstName, "a\0b").unwrap_err().contains("NUL"));
    }

    #[test]
    fn json_null_clears_only_nullable_fields() {
        assert_eq!(parse_json(Field::Email, &json!(null)), Ok(FieldValue::Null));
        assert!(parse_json(Field::Points, &json!(null)).is_err());
        assert!(parse_json(Field::Points, &json!("12")).unwrap_err().contains("a string"));
        assert!(parse_json(Field::Attributes, &json!({"a": "x\u{0}"})).is_err());
    }

    #[test]
    fn attribute_cells_infer_numbers_and_booleans_only() {
        assert_eq!(attribute_from_text("12"), json!(12));
        assert_eq!(attribute_from_text("1.5"), json!(1.5));
        assert_eq!(attribute_from_text("true"), json!(true));
        assert_eq!(attribute_from_text("01234"), json!("01234"));
        assert_eq!(attribute_from_text(" 12"), json!(" 12"));
        assert_eq!(attribute_from_text("'; DROP TABLE members; --"), json!("'; DROP TABLE members; --"));
    }

    #[test]
    fn attributes_merge_key_by_key_and_null_removes() {
        let mut m = Member { id: "m".into(), ..Member::default() };
        m.attributes.insert("a".into(), json!(1));
        m.attributes.insert("b".into(), json!(2));
        let mut p = Patch::new();
        p.set(Field::Attributes, parse_json(Field::Attributes, &json!({"b": null, "c": 3})).unwrap());
        p.set(Field::Points, FieldValue::Int(7));
        p.apply(&mut m);
        assert_eq!(serde_json::Value::Object(m.attributes), json!({"a": 1, "c": 3}));
        assert_eq!(m.points, 7);
        assert_eq!(p.groups(), vec![Group::Profile, Group::Points]);
    }
}
