//! tidings — member-lifecycle marketing journeys defined in git.
//!
//! The pure core (no I/O beyond reading the files it is given, no clock):
//! [`source`], [`diagnostic`], [`duration`], [`timing`], [`schedule`], [`schema`], [`member`],
//! [`channel`], [`condition`], [`journey`], [`template`], [`project`], [`state`],
//! [`sms_segments`], [`recommend`], [`breaker`].
//! The edges: [`config`], [`store`] (SQLite and PostgreSQL), [`import`], [`member_view`],
//! [`channels`] (email, SMS, push, webhook, outbox), [`links`] (signed tracking and
//! unsubscribe tokens), [`preview`] and [`simulate`] (the engine on a virtual clock), [`cli`].
//! See ARCHITECTURE.md for the map and its invariants.

/// mimalloc for every program built on the library (the binary, the tests, the benches, so
/// they measure what ships). glibc's allocator was a quarter of an import's CPU: strings
/// made on one thread (the CSV reader, sqlx's rows) are freed on another (the writer,
/// SQLite's connection thread), and its per-thread arenas pay for that in locks and
/// consolidation. The `override` feature makes mimalloc the C `malloc` too, so SQLite's own
/// allocations (its page cache, records, statements) leave glibc as well: importing
/// 1,000,000 members went from 47,400-48,200 to 55,400-57,800 members/s. See README,
/// "Member state / Performance".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod alert;
pub mod alert_view;
pub mod assign;
pub mod breaker;
pub mod channel;
pub mod channels;
pub mod cli;
pub mod condition;
pub mod config;
pub mod decision;
pub mod diagnostic;
pub mod duration;
pub mod engine;
pub mod http;
pub mod import;
pub mod journey;
pub mod links;
pub mod member;
pub mod member_view;
pub mod notifier;
pub mod preview;
pub mod project;
pub mod recommend;
pub mod report;
pub mod schedule;
pub mod schema;
pub mod service;
pub mod simulate;
pub mod sms_segments;
pub mod source;
pub mod state;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod timing;
