//! `POST /webhooks/shopify` and `POST /webhooks/woocommerce`: check the signature over the
//! raw body, map the topic's payload ([`super::shopify`], [`super::woocommerce`]), store
//! the events through the ingest queue, answer.
//!
//! Answers: 401 for a missing or wrong signature (or no secret configured), 400 for a
//! body that is not JSON or not the shape its topic promises, 413 over the body limit,
//! 503 with `Retry-After` when the ingest queue is full, 200 once stored. A topic we do
//! not act on is answered 200 with `{"ignored": reason}` and logged: the shops retry
//! every non-2xx (Shopify for 48 hours, then removes the subscription), and a topic we
//! ignore will not become useful by being retried.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::shop::Mapping;
use super::signature::{SignatureError, verify_body_hmac};
use super::{ApiError, AppState, RawBody, header_str};

fn unauthorized(error: SignatureError) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, error.to_string())
}

fn required<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, ApiError> {
    header_str(headers, name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("missing the `{name}` header")))
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")))
}

pub(super) async fn shopify(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let secret = state
        .secrets
        .shopify
        .as_deref()
        .ok_or(SignatureError::NoSecret("TIDINGS_SHOPIFY_SECRET"))
        .map_err(unauthorized)?;
    verify_body_hmac(secret, &body, header_str(&headers, "x-shopify-hmac-sha256"), "X-Shopify-Hmac-Sha256")
        .map_err(unauthorized)?;
    let topic = required(&headers, "x-shopify-topic")?;
    let webhook_id = required(&headers, "x-shopify-webhook-id")?;
    let payload = json_body(&body)?;
    let now = (state.now)();
    let mapping = match super::shopify::map_product(topic, &payload, &state.storefront) {
        Some(mapping) => mapping,
        None => super::shopify::map(topic, webhook_id, &payload, now),
    }
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{topic}: {e}")))?;
    store_mapping(&state, "shopify", topic, webhook_id, mapping, now).await
}

pub(super) async fn woocommerce(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    // WooCommerce checks a new webhook's URL with an unsigned form POST `webhook_id=N`
    // and no topic; it stores nothing, so it needs no signature.
    if header_str(&headers, "x-wc-webhook-topic").is_none()
        && header_str(&headers, "x-wc-webhook-signature").is_none()
        && body.starts_with(b"webhook_id=")
    {
        return Ok((StatusCode::OK, Json(json!({ "ignored": "ping" }))).into_response());
    }
    let secret = state
        .secrets
        .woocommerce
        .as_deref()
        .ok_or(SignatureError::NoSecret("TIDINGS_WOOCOMMERCE_SECRET"))
        .map_err(unauthorized)?;
    verify_body_hmac(secret, &body, header_str(&headers, "x-wc-webhook-signature"), "X-WC-Webhook-Signature")
        .map_err(unauthorized)?;
    let topic = required(&headers, "x-wc-webhook-topic")?;
    let delivery_id = required(&headers, "x-wc-webhook-delivery-id")?;
    let payload = json_body(&body)?;
    let now = (state.now)();
    let mapping = match super::woocommerce::map_product(topic, &payload, &state.storefront) {
        Some(mapping) => mapping,
        None => super::woocommerce::map(topic, delivery_id, &payload, now),
    }
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{topic}: {e}")))?;
    store_mapping(&state, "woocommerce", topic, delivery_id, mapping, now).await
}

/// Stores what a delivery maps to; answers 200 with the counts, or what was ignored.
async fn store_mapping(
    state: &AppState,
    source: &'static str,
    topic: &str,
    delivery: &str,
    mapping: Mapping,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Response, ApiError> {
    let ignored = |reason: String| {
        tracing::info!(source, topic, delivery, %reason, "webhook ignored");
        Ok((StatusCode::OK, Json(json!({ "ignored": reason }))).into_response())
    };
    let events = match mapping {
        Mapping::Ignored(reason) => return ignored(reason),
        Mapping::Products { upsert, delete } => {
            // The catalogue is state, not history: a repeated delivery rewrites the same row.
            let written = state.store.upsert_products(&upsert, now).await?;
            let deleted = if delete.is_empty() { 0 } else { state.store.delete_products(&delete).await? };
            tracing::info!(source, topic, delivery, deleted, "catalogue updated");
            return Ok((
                StatusCode::OK,
                Json(json!({ "products": { "inserted": written.inserted, "updated": written.updated, "deleted": deleted } })),
            )
                .into_response());
        }
        Mapping::Events(events) => events,
        Mapping::ForOrder { order_id, mut events } => match state.store.member_of_order(&order_id).await? {
            Some(member) => {
                for e in &mut events {
                    e.member_id = member.clone();
                }
                events
            }
            None => return ignored(format!("order {order_id} is not known here (its order webhook never arrived)")),
        },
    };
    for e in &events {
        crate::state::check_event(e)
            .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, format!("{topic}: {reason}")))?;
    }
    let written = state.ingest.submit(events, now).await?;
    crate::telemetry::record_ingested(source, written.inserted, written.duplicates);
    Ok((StatusCode::OK, Json(json!({ "accepted": written.inserted, "duplicates": written.duplicates })))
        .into_response())
}
