//! Alerts (DESIGN §8): tidings watches its own sending and conversions. The pure core:
//!
//! - [`rule`]: `[[alerts]]` in `tidings.toml` as written ([`RawRule`], with spans) and
//!   checked ([`Rule`]), with diagnostics `A0xx` pointing into the file ([`compile`]);
//! - [`state`]: the state machine ok → pending → firing → resolved, with `for` and
//!   hysteresis, as one pure function ([`evaluate`]);
//! - [`message`]: what a notification says (the Slack-compatible `text`, the JSON body,
//!   the email).
//!
//! The numbers come from `store::alerts` (set-based SQL over the window); the engine
//! evaluates every rule once a minute (`engine::alerts`, claimed once across workers) and
//! `notifier` delivers the notifications the transitions left behind.

pub mod message;
pub mod rule;
pub mod state;

pub use rule::{Kind, RawRule, Rule, Scope, compile};
pub use state::{AlertState, Evaluation, Measured, Status, evaluate};
