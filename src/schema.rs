//! The member and event schema of DESIGN §1: which fields exist and what type each has.
//! Conditions are type-checked and templates are variable-checked against this table.

/// The type of a field as the condition language sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Int,
    Bool,
    /// A calendar date (`birthday`; the year may be absent).
    Date,
    /// An instant (`last_order_at`, ...).
    Timestamp,
    /// A list of strings (`tags`, `push_tokens`).
    StringList,
    /// Free JSON (`attributes.*`, `event.*`): typed by use.
    Json,
}

impl FieldType {
    pub fn describe(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "integer",
            FieldType::Bool => "boolean",
            FieldType::Date => "date",
            FieldType::Timestamp => "timestamp",
            FieldType::StringList => "list of strings",
            FieldType::Json => "JSON value",
        }
    }
}

/// Whether the engine stores a field as given by the shop, or derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Stored,
    /// Recomputed by the engine (lifecycle, RFM, CLV).
    Derived,
    /// Computed from another field and `now` at evaluation time.
    Computed,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub origin: Origin,
    /// For enumerated strings, the allowed values (checked with a "did you mean").
    pub values: &'static [&'static str],
}

const fn stored(name: &'static str, ty: FieldType) -> Field {
    Field { name, ty, origin: Origin::Stored, values: &[] }
}

pub const LIFECYCLES: &[&str] = &["new", "active", "dormant", "churned"];

pub const RFM_SEGMENTS: &[&str] = &[
    "champions",
    "loyal",
    "potential_loyalist",
    "new_customer",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
];

/// Every member field of DESIGN §1, stored and derived.
pub const MEMBER_FIELDS: &[Field] = &[
    stored("id", FieldType::String),
    stored("email", FieldType::String),
    stored("phone", FieldType::String),
    stored("push_tokens", FieldType::StringList),
    stored("first_name", FieldType::String),
    stored("last_name", FieldType::String),
    stored("locale", FieldType::String),
    stored("timezone", FieldType::String),
    stored("birthday", FieldType::Date),
    stored("tier", FieldType::String),
    stored("points", FieldType::Int),
    stored("points_expiring", FieldType::Int),
    stored("points_expire_at", FieldType::Timestamp),
    stored("total_spend", FieldType::Int),
    stored("currency", FieldType::String),
    stored("order_count", FieldType::Int),
    stored("first_order_at", FieldType::Timestamp),
    stored("last_order_at", FieldType::Timestamp),
    stored("joined_at", FieldType::Timestamp),
    stored("email_consent", FieldType::Bool),
    stored("sms_consent", FieldType::Bool),
    stored("push_consent", FieldType::Bool),
    stored("tags", FieldType::StringList),
    Field { name: "lifecycle", ty: FieldType::String, origin: Origin::Derived, values: LIFECYCLES },
    Field { name: "rfm_r", ty: FieldType::Int, origin: Origin::Derived, values: &[] },
    Field { name: "rfm_f", ty: FieldType::Int, origin: Origin::Derived, values: &[] },
    Field { name: "rfm_m", ty: FieldType::Int, origin: Origin::Derived, values: &[] },
    Field { name: "rfm_segment", ty: FieldType::String, origin: Origin::Derived, values: RFM_SEGMENTS },
    Field { name: "clv", ty: FieldType::Int, origin: Origin::Derived, values: &[] },
    Field { name: "days_since_last_order", ty: FieldType::Int, origin: Origin::Computed, values: &[] },
    Field { name: "days_until_birthday", ty: FieldType::Int, origin: Origin::Computed, values: &[] },
    Field { name: "age_days", ty: FieldType::Int, origin: Origin::Computed, values: &[] },
];

/// Fields that `date:` triggers accept besides date attributes.
pub const DATE_TRIGGER_FIELDS: &[&str] = &["birthday", "joined_at", "points_expire_at", "first_order_at"];

/// The built-in event names of DESIGN §1 (any other dotted name is a custom event).
pub const EVENT_NAMES: &[&str] = &[
    "member.created",
    "member.updated",
    "order.placed",
    "order.refunded",
    "points.earned",
    "points.redeemed",
    "points.expiring",
    "tier.changed",
    "cart.abandoned",
    "message.sent",
    "message.delivered",
    "message.failed",
    "message.opened",
    "message.clicked",
    "member.unsubscribed",
];

/// Top-level fields of an event (`event.id`, ...); anything else is `event.properties`-backed.
pub const EVENT_FIELDS: &[Field] = &[
    stored("id", FieldType::String),
    stored("member_id", FieldType::String),
    stored("name", FieldType::String),
    stored("occurred_at", FieldType::Timestamp),
];

pub fn member_field(name: &str) -> Option<&'static Field> {
    MEMBER_FIELDS.iter().find(|f| f.name == name)
}

pub fn member_field_names() -> impl Iterator<Item = &'static str> {
    MEMBER_FIELDS.iter().map(|f| f.name)
}

/// Whether `name` is a well-formed event name: lowercase dotted words (`order.placed`).
pub fn is_event_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    matches!((parts.next(), parts.next()), (Some(a), Some(b)) if ok(a) && ok(b)) && parts.all(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_dotted_lowercase_words() {
        assert!(is_event_name("order.placed"));
        assert!(is_event_name("referral.completed"));
        assert!(!is_event_name("order"));
        assert!(!is_event_name("Order.Placed"));
        assert!(!is_event_name("order..placed"));
        assert!(EVENT_NAMES.iter().all(|n| is_event_name(n)));
    }
}
