//! Member state as pure functions (part of the core: no I/O, `now` is a parameter).
//!
//! - [`patch`]: a partial member from an import row or a `member.*` event, parsed and checked.
//! - [`fold`]: how events change a member — a function of its last import and the *set*
//!   of its events, so late, early and repeated events give the same member.
//! - [`derived`]: lifecycle, CLV, the RFM segment table and the day counts of DESIGN §1.
//!
//! The store (`store::members`) runs these on the rows it reads and writes back the result
//! in one transaction; the formulas are restated in the README's "Member state" section.

pub mod derived;
pub mod fold;
pub mod patch;

pub use derived::{Computed, Lifecycle, Settings};
pub use fold::{AsOf, Folded, check_event, fold, is_state_event, state_events};
pub use patch::{Field, FieldValue, Group, Patch};
