//! HTTP (axum): the routes the shop, the mail clients and the operator call.
//!
//! - `GET /healthz`
//! - `POST /webhooks/shopify`, `POST /webhooks/woocommerce` ([`webhooks`]): signed by
//!   the shop, mapped by [`shopify`] and [`woocommerce`]
//! - `POST /v1/events`, `POST /v1/members` (one object or an array): the bearer token or a
//!   Standard Webhooks signature ([`signature`])
//! - `GET|POST /u/{token}`, `GET /o/{token}`, `GET /c/{token}` ([`tracking`]): signed links
//! - `GET /metrics` (Prometheus text, bearer token)
//! - `GET /v1/alerts` (bearer token): the alerts, firing first, and recent transitions
//!
//! A 2xx means stored: every route that records events hands them, checked, to the
//! group-commit [`ingest`] writer and answers after the transaction holding them
//! committed; a full queue answers 503 with `Retry-After`. Every error is JSON with a
//! reason (`ApiError`), a 500 without internals; nothing is half-applied.

pub mod ingest;
pub mod money;
pub mod shop;
pub mod shopify;
pub mod signature;
mod tracking;
mod webhooks;
pub mod woocommerce;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub mod dashboard;

use crate::links::LinkSigner;
use crate::member::Event;
use crate::store::Store;
pub use ingest::{IngestError, IngestOptions, IngestQueue};
use signature::{SignatureError, StandardHeaders};

/// Largest request body accepted (a larger one is answered 413).
pub const BODY_LIMIT: usize = 1 << 20;

/// How long a client should wait after a 503 (seconds).
const RETRY_AFTER_SECONDS: u32 = 1;

/// The webhook secrets, from the environment only.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `TIDINGS_SHOPIFY_SECRET`: the app's client secret, as bytes.
    pub shopify: Option<Vec<u8>>,
    /// `TIDINGS_WOOCOMMERCE_SECRET`: the webhook's secret, as bytes.
    pub woocommerce: Option<Vec<u8>>,
    /// The key of `TIDINGS_WEBHOOK_SECRET` (`whsec_…`), for Standard Webhooks on `/v1/*`.
    pub standard_webhooks: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("shopify", &self.shopify.is_some())
            .field("woocommerce", &self.woocommerce.is_some())
            .field("standard_webhooks", &self.standard_webhooks.is_some())
            .finish()
    }
}

impl Secrets {
    /// Reads the secrets through `var` (the environment in `serve`); an empty value is
    /// unset; a `TIDINGS_WEBHOOK_SECRET` that is not `whsec_<base64>` is an error.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Secrets, SignatureError> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        Ok(Secrets {
            shopify: get("TIDINGS_SHOPIFY_SECRET").map(String::into_bytes),
            woocommerce: get("TIDINGS_WOOCOMMERCE_SECRET").map(String::into_bytes),
            standard_webhooks: get("TIDINGS_WEBHOOK_SECRET")
                .map(|s| signature::standard_webhooks_key(&s))
                .transpose()?,
        })
    }
}

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<crate::state::Settings>,
    /// `TIDINGS_API_TOKEN`; None refuses every route that needs it.
    pub api_token: Option<String>,
    /// The clock (tests pass a fixed one).
    pub now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    pub secrets: Arc<Secrets>,
    /// Checks link tokens (`TIDINGS_LINK_SECRET`); None turns the link routes off (503).
    pub links: Option<LinkSigner>,
    /// Where every route that records events sends them.
    pub ingest: IngestQueue,
    /// The shop's address and currency, for the product webhooks.
    pub storefront: Arc<shop::Storefront>,
}

impl AppState {
    /// State with no webhook secrets and no link secret, and an ingest writer with the
    /// default sizes (spawned on the current runtime).
    pub fn new(
        store: Store,
        settings: crate::state::Settings,
        api_token: Option<String>,
        now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) -> AppState {
        let settings = Arc::new(settings);
        let ingest = IngestQueue::spawn(store.clone(), Arc::clone(&settings), IngestOptions::default());
        let storefront = Arc::default();
        AppState { store, settings, api_token, now, secrets: Arc::default(), links: None, ingest, storefront }
    }

    pub fn with_secrets(mut self, secrets: Secrets) -> AppState {
        self.secrets = Arc::new(secrets);
        self
    }

    pub fn with_storefront(mut self, storefront: shop::Storefront) -> AppState {
        self.storefront = Arc::new(storefront);
        self
    }

    pub fn with_links(mut self, links: LinkSigner) -> AppState {
        self.links = Some(links);
        self
    }

    /// Replaces the ingest writer with one of these sizes.
    pub fn with_ingest(mut self, options: IngestOptions) -> AppState {
        self.ingest = IngestQueue::spawn(self.store.clone(), Arc::clone(&self.settings), options);
        self
    }
}

pub fn router(state: AppState) -> Router {
    crate::telemetry::prometheus();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/events", post(post_events))
        .route("/v1/members", post(post_members))
        .route("/v1/alerts", get(alerts))
        .merge(dashboard::routes())
        .route("/webhooks/shopify", post(webhooks::shopify))
        .route("/webhooks/woocommerce", post(webhooks::woocommerce))
        .route("/u/{token}", get(tracking::unsubscribe_page).post(tracking::unsubscribe))
        .route("/o/{token}", get(tracking::open))
        .route("/c/{token}", get(tracking::click))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// An error answer: a status and a reason, as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    retry_after: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError { status, reason: reason.into(), retry_after: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.reason }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        tracing::error!(%error, "store error answering a request");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> ApiError {
        match error {
            IngestError::Overloaded => ApiError {
                retry_after: Some(RETRY_AFTER_SECONDS),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            },
            IngestError::Closed => {
                tracing::error!("the ingest writer has stopped");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
            }
            IngestError::Store(error) => error.into(),
        }
    }
}

/// The raw request body; a body over [`BODY_LIMIT`] is a JSON 413.
pub(crate) struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<RawBody, ApiError> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let inbox = state.store.inbox_len().await?;
    Ok(Json(json!({ "status": "ok", "inbox": inbox })))
}

/// Prometheus text: the process's metrics, with the queue depths read now.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    use crate::telemetry as t;
    let now = (state.now)();
    let (deliveries, runs) = state.store.due_work(now).await?;
    let inbox = state.store.inbox_len().await?;
    metrics::gauge!(t::INGEST_QUEUE_DEPTH).set(state.ingest.waiting() as f64);
    metrics::gauge!(t::DUE_DELIVERIES).set(deliveries as f64);
    metrics::gauge!(t::DUE_RUNS).set(runs as f64);
    metrics::gauge!(t::INBOX_DEPTH).set(inbox as f64);
    metrics::gauge!(t::OLDEST_DUE_SECONDS).set(state.store.queue_lag_seconds(now).await? as f64);
    t::record_alerts(&state.store.alerts().await?);
    let handle = t::prometheus();
    handle.run_upkeep();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response())
}

/// The alerts (bearer token): `firing` (rule names), every alert with its numbers, and the
/// latest transitions.
async fn alerts(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let view = crate::alert_view::AlertsView::load(&state.store, 50).await?;
    let firing: Vec<&str> = view.firing().map(|a| a.rule.as_str()).collect();
    Ok(Json(json!({ "firing": firing, "alerts": view.alerts, "transitions": view.transitions })))
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

/// How a `/v1/*` request proved who sent it.
enum Caller {
    Bearer,
    /// A Standard Webhooks signature; its `webhook-id`.
    Signed(String),
}

/// `/v1/*` take the bearer token (when an `Authorization` header is present) or a
/// Standard Webhooks signature over the raw body.
fn authorize_api(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Caller, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return authorize(state, headers).map(|()| Caller::Bearer);
    }
    if !headers.contains_key("webhook-signature") {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` or a Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`)",
        ));
    }
    let unauthorized = |e: SignatureError| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string());
    let key = state
        .secrets
        .standard_webhooks
        .as_deref()
        .ok_or(SignatureError::NoSecret("TIDINGS_WEBHOOK_SECRET"))
        .map_err(unauthorized)?;
    let signed = StandardHeaders {
        id: header_str(headers, "webhook-id"),
        timestamp: header_str(headers, "webhook-timestamp"),
        signature: header_str(headers, "webhook-signature"),
    };
    signature::verify_standard(key, signed, body, (state.now)()).map_err(unauthorized)?;
    Ok(Caller::Signed(signed.id.unwrap_or_default().to_string()))
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
async fn ingest(state: &AppState, events: Vec<Event>, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let written = state.ingest.submit(events, now).await?;
    crate::telemetry::record_ingested("api", written.inserted, written.duplicates);
    let body = json!({ "accepted": written.inserted, "duplicates": written.duplicates });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    authorize_api(&state, &headers, &body)?;
    let now = (state.now)();
    let events =
        objects(&body)?.into_iter().enumerate().map(|(i, o)| event_from(i, o, now)).collect::<Result<Vec<_>, _>>()?;
    ingest(&state, events, now).await
}

/// A member upsert is a `member.created` / `member.updated` event (DESIGN §1), so it is
/// stored, folded and seen by journeys like any event. Its id is the `Idempotency-Key`
/// header, else a signed request's `webhook-id` (with the item's index), so a retried
/// request changes nothing; without either, each request is a new change (setting the
/// same fields twice is harmless).
async fn post_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = authorize_api(&state, &headers, &body)?;
    let now = (state.now)();
    let key = header_str(&headers, "idempotency-key").map(str::to_string).or(match caller {
        Caller::Signed(id) => Some(id),
        Caller::Bearer => None,
    });
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
    ingest(&state, events, now).await
}
