//! The links in messages (tokens made and checked by [`crate::links`]):
//!
//! - `GET /u/{token}`: a small page with a confirm button (a GET never unsubscribes: mail
//!   scanners follow links). `POST /u/{token}`: RFC 8058 one-click (`List-Unsubscribe=
//!   One-Click`) or the button; answers 200. It suppresses the delivery's address on its
//!   channel and records `member.unsubscribed` (id `unsubscribe:{delivery}`, which turns
//!   the member's consent on that channel off), so the next send on that channel is
//!   skipped. Answered only once both are stored.
//! - `GET /o/{token}`: the open pixel (a 1×1 GIF, never cached); records `message.opened`
//!   once per delivery (id `open:{delivery}`): `opened(step)` asks whether, not how often.
//! - `GET /c/{token}`: records `message.clicked` once per delivery and target (id
//!   `click:{delivery}:{hash of the URL}`), then redirects (302) to the http(s) URL inside
//!   the signed token. The target comes from the token only — no query parameter is
//!   read — so the route can never redirect elsewhere.
//!
//! A token that does not verify (tampered, another secret, another kind of link) is
//! refused with 400 and a reason, and nothing is recorded. Opens and clicks are recorded
//! through the ingest queue; if it is full the reader still gets the pixel or the redirect
//! (the miss is logged and counted) — the person clicking matters more than the count.
//! Without `TIDINGS_LINK_SECRET` these routes answer 503: tokens cannot be checked.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use sha2::Digest as _;

use super::{ApiError, AppState};
use crate::channel::Channel;
use crate::links::{LinkClaims, LinkKind};
use crate::member::Event;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x01, 0x44, 0x00, 0x3b,
];

/// The claims of a token of `kind`, or why not.
fn claims(state: &AppState, token: &str, kind: LinkKind) -> Result<LinkClaims, ApiError> {
    let Some(signer) = &state.links else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "link tracking is off: TIDINGS_LINK_SECRET is not set on the server",
        ));
    };
    let claims = signer.verify(token).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if claims.kind != kind {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "this token belongs to another kind of link"));
    }
    Ok(claims)
}

fn event(
    id: String,
    claims: &LinkClaims,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
    properties: serde_json::Value,
) -> Event {
    Event { id, member_id: claims.member_id.clone(), name: name.to_string(), occurred_at: now, properties }
}

const PAGE_STYLE: &str = "font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem;";

fn channel_words(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "emails",
        Channel::Sms => "text messages",
        Channel::Push => "push notifications",
        Channel::Webhook => "messages",
    }
}

pub(super) async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let claims = claims(&state, &token, LinkKind::Unsubscribe)?;
    let what = channel_words(claims.channel);
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\">\
         <title>Unsubscribe</title></head><body style=\"{PAGE_STYLE}\"><h1>Unsubscribe</h1>\
         <p>Stop receiving {what} from us?</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form></body></html>"
    );
    Ok(no_store(Html(page).into_response()))
}

pub(super) async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let claims = claims(&state, &token, LinkKind::Unsubscribe)?;
    if claims.channel == Channel::Webhook {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "webhook deliveries have nothing to unsubscribe from"));
    }
    let now = (state.now)();
    let channel = claims.channel.as_str();
    if let Some((member, stored_channel, Some(address))) = state.store.delivery_address(claims.delivery_id).await?
        && member == claims.member_id
        && stored_channel == channel
    {
        state.store.suppress(channel, &address, "unsubscribed", now).await?;
    }
    let properties = json!({ "channel": channel, "delivery_id": claims.delivery_id });
    let event = event(format!("unsubscribe:{}", claims.delivery_id), &claims, "member.unsubscribed", now, properties);
    let written = state.ingest.submit(vec![event], now).await?;
    crate::telemetry::record_ingested("links", written.inserted, written.duplicates);
    tracing::info!(member = %claims.member_id, channel, delivery = claims.delivery_id, "unsubscribed");
    let what = channel_words(claims.channel);
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title></head>\
         <body style=\"{PAGE_STYLE}\"><h1>You are unsubscribed</h1><p>You will not receive {what} from us any more.</p>\
         </body></html>"
    );
    Ok(no_store(Html(page).into_response()))
}

pub(super) async fn open(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let claims = claims(&state, &token, LinkKind::Open)?;
    let now = (state.now)();
    let properties = json!({ "delivery_id": claims.delivery_id, "channel": claims.channel.as_str() });
    let event = event(format!("open:{}", claims.delivery_id), &claims, "message.opened", now, properties);
    record(&state, event, now).await;
    let response = ([(header::CONTENT_TYPE, "image/gif")], PIXEL).into_response();
    Ok(no_store(response))
}

pub(super) async fn click(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let claims = claims(&state, &token, LinkKind::Click)?;
    let target = claims.url.as_deref().unwrap_or_default();
    let url = url::Url::parse(target)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the link's target is not an http(s) URL"))?;
    let location = HeaderValue::from_str(url.as_str())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the link's target cannot be a Location header"))?;
    let now = (state.now)();
    let hash = sha2::Sha256::digest(target.as_bytes());
    let id = format!("click:{}:{}", claims.delivery_id, hex16(&hash));
    let properties = json!({ "delivery_id": claims.delivery_id, "channel": claims.channel.as_str(), "url": target });
    record(&state, event(id, &claims, "message.clicked", now, properties), now).await;
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(no_store(response))
}

/// The first 8 bytes as 16 hex digits.
fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Records an open or a click; a failure is logged, never shown to the reader.
async fn record(state: &AppState, event: Event, now: chrono::DateTime<chrono::Utc>) {
    let (name, delivery) = (event.name.clone(), event.id.clone());
    match state.ingest.submit(vec![event], now).await {
        Ok(written) => crate::telemetry::record_ingested("links", written.inserted, written.duplicates),
        Err(error) => tracing::warn!(%error, event = %name, id = %delivery, "could not record a tracked link"),
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    response
}
