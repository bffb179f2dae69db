//! The one integration test binary: each module tests one part of the product.

mod condition_sql;
mod engine;
mod engines;
mod http;
mod import;
mod store;
mod support;
mod validate;
