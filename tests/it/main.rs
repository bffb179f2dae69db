//! The one integration test binary: each module tests one part of the product.

mod alerts;
mod channels;
mod condition_sql;
mod dashboard;
mod engine;
mod engines;
mod fleet;
mod http;
mod http_links;
mod http_webhooks;
mod import;
mod journeys;
mod limits;
mod links;
mod preview;
mod recommend;
mod report;
mod shop;
mod shutdown;
mod simulate;
mod store;
mod support;
mod templates;
mod validate;
mod workers;
