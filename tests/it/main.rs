//! The one integration test binary: each module tests one part of the product.

mod channels;
mod condition_sql;
mod engine;
mod engines;
mod http;
mod import;
mod links;
mod preview;
mod simulate;
mod store;
mod support;
mod templates;
mod validate;
