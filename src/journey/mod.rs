//! Journeys (DESIGN §2): the file as written ([`yaml`]), the validated model ([`model`]),
//! and the compiler between them ([`compile`]) that produces every diagnostic.

pub mod compile;
pub mod model;
pub mod yaml;

pub use compile::{Context, compile, version_of};
pub use model::*;

/// The JSON Schema of a journey file, for editors (`tidings schema`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(yaml::JourneyFile)).expect("a schema is JSON")
}
