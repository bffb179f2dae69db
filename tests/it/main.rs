//! The one integration test binary: each module tests one part of the product.

mod channels;
mod condition_sql;
mod engines;
mod import;
mod links;
mod store;
mod support;
mod templates;
mod validate;
