//! The journey file as written (DESIGN §2): YAML-shaped types with source positions.
//! Nothing here is validated beyond its shape; [`super::compile`] turns it into the model.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A text value with where it was written.
pub type Text = Spanned<String>;

/// A journey file (`workflows/ID.yaml`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tidings journey", description = "A member journey: a trigger, an audience and steps.")]
pub struct JourneyFile {
    /// Unique id; equals the file name without `.yaml`.
    #[schemars(with = "String")]
    pub id: Text,
    /// A human name shown in reports and the dashboard.
    #[schemars(with = "String")]
    pub name: Text,
    /// Free text for the people reading the file.
    #[serde(default)]
    pub description: Option<String>,
    #[schemars(with = "TriggerFile")]
    pub trigger: Spanned<TriggerFile>,
    /// A condition over member fields; only matching members enter.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub audience: Option<Text>,
    #[serde(default)]
    pub entry: Option<EntryFile>,
    /// `event NAME` (leave when that event arrives) or a condition checked before each step.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub exit_when: Option<Text>,
    #[serde(default)]
    pub goal: Option<GoalFile>,
    /// `transactional` bypasses frequency caps and quiet hours (never consent).
    #[serde(default)]
    #[schemars(with = "Option<Priority>")]
    pub priority: Option<Text>,
    #[schemars(with = "Vec<StepFile>")]
    pub steps: Spanned<Vec<StepFile>>,
}

/// Exactly one of `event`, `schedule` or `date`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerFile {
    /// An event name such as `member.created` or `order.placed`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub event: Option<Text>,
    /// For event triggers: a condition that may use `event.*`.
    #[serde(default, rename = "where")]
    #[schemars(with = "Option<String>")]
    pub where_: Option<Text>,
    /// A 5-field cron expression, evaluated in `timezone`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Text>,
    /// An IANA time zone for `schedule`; default: the config's default_timezone.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Text>,
    /// A date field: `birthday`, `joined_at`, `points_expire_at`, `first_order_at`, or `attributes.NAME`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub date: Option<Text>,
    /// Member-local time of day for date triggers, `HH:MM` (default `09:00`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub at: Option<Text>,
    /// Shift from the date, e.g. `-7d`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub offset: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    /// `never` (default), `always`, or `after DURATION` (e.g. `after 90d`).
    #[schemars(with = "String")]
    pub reentry: Text,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalFile {
    /// The conversion event, e.g. `order.placed`.
    #[schemars(with = "String")]
    pub event: Text,
    /// How long after a send a conversion counts, e.g. `14d`.
    #[schemars(with = "String")]
    pub within: Text,
}

/// Only for the JSON Schema: the values `priority` accepts.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Priority {
    Marketing,
    Transactional,
}

/// A step: an `id` and exactly one of `send`, `wait`, `branch`, `split`, `update`, `exit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    #[schemars(with = "String")]
    pub id: Text,
    #[serde(default)]
    #[schemars(with = "Option<SendFile>")]
    pub send: Option<Spanned<SendFile>>,
    #[serde(default)]
    #[schemars(with = "Option<WaitFile>")]
    pub wait: Option<Spanned<WaitFile>>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<BranchArmFile>>")]
    pub branch: Option<Spanned<Vec<BranchArmFile>>>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<SplitArmFile>>")]
    pub split: Option<Spanned<Vec<SplitArmFile>>>,
    #[serde(default)]
    #[schemars(with = "Option<UpdateFile>")]
    pub update: Option<Spanned<UpdateFile>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub exit: Option<Spanned<bool>>,
    /// The step to run next instead of the following one.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub next: Option<Text>,
}

impl StepFile {
    /// The step kinds present, with where each was written.
    pub fn kinds(&self) -> Vec<(&'static str, serde_saphyr::Location)> {
        let mut kinds = Vec::new();
        if let Some(s) = &self.send {
            kinds.push(("send", s.referenced));
        }
        if let Some(s) = &self.wait {
            kinds.push(("wait", s.referenced));
        }
        if let Some(s) = &self.branch {
            kinds.push(("branch", s.referenced));
        }
        if let Some(s) = &self.split {
            kinds.push(("split", s.referenced));
        }
        if let Some(s) = &self.update {
            kinds.push(("update", s.referenced));
        }
        if let Some(s) = &self.exit {
            kinds.push(("exit", s.referenced));
        }
        kinds
    }
}

/// Template variables a step passes (`vars.NAME` in templates).
pub type Vars = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendFile {
    /// `email`, `sms`, `push` or `webhook`.
    #[schemars(with = "crate::channel::Channel")]
    pub channel: Text,
    /// A template name under `templates/`, e.g. `welcome/hello`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub template: Option<Text>,
    #[serde(default)]
    pub vars: Option<Vars>,
    /// A/B(/n) variants; weights plus holdout sum to 100.
    #[serde(default)]
    #[schemars(with = "Option<Vec<VariantFile>>")]
    pub variants: Option<Spanned<Vec<VariantFile>>>,
    /// Percent of members who enter the step but get nothing (the control group).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub holdout: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantFile {
    #[schemars(with = "String")]
    pub name: Text,
    #[schemars(with = "u32")]
    pub weight: Spanned<u32>,
    #[schemars(with = "String")]
    pub template: Text,
    #[serde(default)]
    pub vars: Option<Vars>,
}

/// `wait: 3d`, `wait: { until: "09:00" }`, or
/// `wait: { for_event: order.placed, timeout: 7d, on_event: done, on_timeout: nudge }`.
/// The position is on the enclosing `Spanned<WaitFile>`.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum WaitFile {
    /// A duration such as `3d`.
    Duration(String),
    Spec(Box<WaitSpecFile>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitSpecFile {
    /// A member-local time of day, `HH:MM`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub until: Option<Text>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub for_event: Option<Text>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Text>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on_event: Option<Text>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on_timeout: Option<Text>,
}

// Hand-written instead of `#[serde(untagged)]` so that a typo inside the map keeps its exact
// position and message (serde's untagged error says only "did not match any variant").
impl<'de> Deserialize<'de> for WaitFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = WaitFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration like `3d`, or a map with `until` or `for_event`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<WaitFile, A::Error> {
                WaitSpecFile::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|spec| WaitFile::Spec(Box::new(spec)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WaitFile, E> {
                Ok(WaitFile::Duration(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<WaitFile, E> {
                Ok(WaitFile::Duration(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<WaitFile, E> {
                Ok(WaitFile::Duration(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchArmFile {
    /// A condition; the first arm that holds wins.
    #[serde(default, rename = "if")]
    #[schemars(with = "Option<String>")]
    pub if_: Option<Text>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub goto: Option<Text>,
    /// The step to go to when no `if` holds; the last arm.
    #[serde(default, rename = "else")]
    #[schemars(with = "Option<String>")]
    pub else_: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitArmFile {
    #[schemars(with = "String")]
    pub name: Text,
    #[schemars(with = "u32")]
    pub weight: Spanned<u32>,
    #[schemars(with = "String")]
    pub goto: Text,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFile {
    /// Attributes to set on the member (`attributes.NAME`).
    #[serde(default)]
    pub set: Option<Vars>,
    #[serde(default)]
    pub add_tags: Option<Vec<String>>,
    #[serde(default)]
    pub remove_tags: Option<Vec<String>>,
}
