//! HTTP (axum): `/healthz`, and the API the shop calls — `POST /v1/events` and
//! `POST /v1/members` (one object or an array) behind the bearer token.
//!
//! A 2xx means stored: events go into the store and the engine's inbox in one transaction
//! before the answer. Every error is JSON with a reason; nothing is half-applied.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub mod dashboard;

use crate::member::Event;
use crate::store::Store;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<crate::state::Settings>,
    /// `TIDINGS_API_TOKEN`; None refuses every authenticated route.
    pub api_token: Option<String>,
    /// The clock (tests pass a fixed one).
    pub now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/events", post(post_events))
        .route("/v1/members", post(post_members))
        .merge(dashboard::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// An error answer: a status and a reason, as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
}

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError { status, reason: reason.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.reason }))).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        tracing::error!(%error, "store error answering a request");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let inbox = state.store.inbox_len().await?;
    Ok(Json(json!({ "status": "ok", "inbox": inbox })))
}

/// Checks `Authorization: Bearer …` against the token in constant time.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    use subtle::ConstantTimeEq as _;
    let Some(expected) = &state.api_token else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "TIDINGS_API_TOKEN is not set on the server"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <token>`"))?;
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong token"))
    }
}

/// The body as one object or an array of them.
fn objects(body: &[u8]) -> Result<Vec<serde_json::Map<String, Value>>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Ok(map),
            _ => Err(ApiError::new(StatusCode::BAD_REQUEST, format!("item {i}: expected a JSON object"))),
        })
        .collect()
}

/// An event from its JSON, checked as `tidings import events` checks a line (`[i]` names
/// the item in errors); without `occurred_at` it happened `now`.
fn event_from(i: usize, mut object: serde_json::Map<String, Value>, now: DateTime<Utc>) -> Result<Event, ApiError> {
    if object.get("occurred_at").is_none_or(Value::is_null) {
        object.insert("occurred_at".into(), Value::String(now.to_rfc3339()));
    }
    crate::import::event_from_json(object)
        .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, format!("item {i}: {reason}")))
}

/// Stores checked events (and their inbox entries): `202` with what was new.
async fn ingest(state: &AppState, events: &[Event], now: DateTime<Utc>) -> Result<Response, ApiError> {
    let written = state.store.ingest_events(events, now, &state.settings).await?;
    let body = json!({ "accepted": written.inserted, "duplicates": written.duplicates });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let now = (state.now)();
    let events =
        objects(&body)?.into_iter().enumerate().map(|(i, o)| event_from(i, o, now)).collect::<Result<Vec<_>, _>>()?;
    ingest(&state, &events, now).await
}

/// A member upsert is a `member.created` / `member.updated` event (DESIGN §1), so it is
/// stored, folded and seen by journeys like any event. Its id is the `Idempotency-Key`
/// header (with the item's index), so a retried request changes nothing; without one, each
/// request is a new change (setting the same fields twice is harmless).
async fn post_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let now = (state.now)();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut events = Vec::new();
    for (i, mut object) in objects(&body)?.into_iter().enumerate() {
        let Some(Value::String(member_id)) = object.remove("id") else {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("item {i}: `id` is required (a string)")));
        };
        let properties = Value::Object(object);
        let exists = state.store.member(&member_id).await?.is_some();
        let id = match &key {
            Some(key) => format!("{key}:{i}"),
            None => format!("member:{member_id}:{}:{i}", now.timestamp_micros()),
        };
        let name = if exists { "member.updated" } else { "member.created" };
        let event = Event { id, member_id, name: name.to_string(), occurred_at: now, properties };
        crate::state::check_event(&event)
            .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, format!("item {i}: {reason}")))?;
        events.push(event);
    }
    ingest(&state, &events, now).await
}
