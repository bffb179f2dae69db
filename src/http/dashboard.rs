//! The operator dashboard (DESIGN §5): server-rendered HTML with inline SVG charts, nothing
//! loaded from elsewhere.
//!
//! - `GET /`: the journeys with runs; `GET /dashboard/journeys/{id}`: the funnel and the
//!   experiments of one journey ([`crate::report`]); `GET /dashboard/members?id=…`: a
//!   member's timeline — every send, skip and exit with its reason ("why not sent").
//! - Access: `Authorization: Bearer $TIDINGS_API_TOKEN`, or the login form (`POST /login`),
//!   which sets an `HttpOnly`, `SameSite=Strict` session cookie holding an HMAC of the token
//!   (never the token itself). Both compare in constant time. `POST /logout` clears it.
//! - Everything that comes from members, events or journeys is HTML-escaped ([`esc`]).

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::AppState;
use crate::report::{Report, render};

const COOKIE: &str = "tidings_session";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/dashboard/journeys/{id}", get(journey))
        .route("/dashboard/members", get(member))
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The session cookie's value for a token: HMAC-SHA256(token, "tidings dashboard session").
fn session_of(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"tidings dashboard session");
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether the request carries the bearer token or a valid session cookie.
fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = state.api_token.as_deref() else { return false };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same(given, expected));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')))
        .any(|given| same(given, &session_of(expected)));
    bearer || cookie
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · tidings</title><style>{STYLE}</style></head><body>\
         <header><a href=\"/\" class=\"brand\">tidings</a>\
         <form method=\"get\" action=\"/dashboard/members\" class=\"lookup\">\
         <input name=\"id\" placeholder=\"member id\" aria-label=\"member id\"><button>Look up</button></form>\
         <form method=\"post\" action=\"/logout\"><button class=\"quiet\">Sign out</button></form></header>\
         <main>{body}</main></body></html>",
        esc(title)
    )
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1.2rem;background:#1d2330;color:#fff}\
header .brand{color:#fff;font-weight:700;text-decoration:none;margin-right:auto}\
main{max-width:1100px;margin:1.2rem auto;padding:0 1.2rem}\
table{border-collapse:collapse;background:#fff;margin:.5rem 0 1.5rem;width:100%}\
th,td{padding:.35rem .6rem;border-bottom:1px solid #e3e6eb;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#eef0f4;font-weight:600}\
.card{background:#fff;border:1px solid #e3e6eb;border-radius:6px;padding:1rem;margin-bottom:1.2rem}\
.muted{color:#667}button{cursor:pointer}.quiet{background:none;border:1px solid #889;color:#fff;border-radius:4px}\
.login{max-width:360px;margin:4rem auto}.login input{width:100%;padding:.4rem;margin:.5rem 0}\
.error{color:#b00020}\
tr.alert-firing td{color:#b00020;background:#fdecee;font-weight:600}tr.alert-pending td{color:#8a5a00}";

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e))).unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · tidings</title>\
         <style>{STYLE}</style></head><body><main><div class=\"card login\"><h1>tidings</h1>\
         <p class=\"muted\">Sign in with the API token (<code>TIDINGS_API_TOKEN</code>).</p>{error}\
         <form method=\"post\" action=\"/login\"><label>Token<input type=\"password\" name=\"token\" id=\"token\" \
         autocomplete=\"current-password\" autofocus></label><button type=\"submit\" id=\"sign-in\">Sign in</button>\
         </form></div></main></body></html>"
    );
    (status, Html(html)).into_response()
}

fn internal(error: crate::store::StoreError) -> Response {
    tracing::error!(%error, "store error rendering the dashboard");
    (StatusCode::INTERNAL_SERVER_ERROR, Html(page("Error", "<p>Internal error.</p>"))).into_response()
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(State(state): State<AppState>, Form(form): Form<Login>) -> Response {
    let Some(expected) = state.api_token.as_deref() else {
        return login_page(StatusCode::UNAUTHORIZED, Some("TIDINGS_API_TOKEN is not set on the server."));
    };
    if !same(&form.token, expected) {
        return login_page(StatusCode::UNAUTHORIZED, Some("Wrong token."));
    }
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", session_of(expected));
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout() -> Response {
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tidings_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !signed_in(&state, &headers) {
        return login_page(StatusCode::UNAUTHORIZED, None);
    }
    let journeys = match state.store.journey_totals().await {
        Ok(j) => j,
        Err(e) => return internal(e),
    };
    let alerts = match state.store.alerts().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let mut body = alerts_panel(&alerts);
    body.push_str("<h1>Journeys</h1>");
    if journeys.is_empty() {
        body.push_str("<p class=\"muted\">No member has entered a journey yet.</p>");
    } else {
        body.push_str(
            "<table id=\"journeys\"><tr><th>journey</th><th>runs</th><th>in progress</th><th>converted</th></tr>",
        );
        for j in &journeys {
            let _ = write!(
                body,
                "<tr><td><a href=\"/dashboard/journeys/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&percent_encode(&j.journey_id)),
                esc(&j.journey_id),
                j.runs,
                j.active,
                j.converted
            );
        }
        body.push_str("</table>");
    }
    Html(page("Journeys", &body)).into_response()
}

/// The alerts panel of the home page: firing alerts in red with their rule, numbers and a
/// link to the journey; pending ones below; a line when all is well.
pub fn alerts_panel(alerts: &[crate::store::alerts::AlertRow]) -> String {
    use crate::alert::Status;
    use crate::alert::message::numbers;
    let shown: Vec<_> = alerts.iter().filter(|a| matches!(a.status, Status::Firing | Status::Pending)).collect();
    let mut out = String::from("<section class=\"card\" id=\"alerts\"><h2>Alerts</h2>");
    if shown.is_empty() {
        let _ = write!(
            out,
            "<p class=\"muted\" id=\"alerts-ok\">No alert is firing ({} rule{} watched).</p>",
            alerts.len(),
            if alerts.len() == 1 { "" } else { "s" }
        );
    } else {
        out.push_str("<table><tr><th>rule</th><th>status</th><th>value</th><th>threshold</th><th>numbers</th><th>scope</th><th>since</th></tr>");
        for a in shown {
            let class = if a.status == Status::Firing { "alert-firing" } else { "alert-pending" };
            let value = a.value.map_or_else(|| "-".to_string(), |v| a.kind.format_value(v));
            let scope = match &a.scope.journey {
                Some(j) => format!(
                    "<a href=\"/dashboard/journeys/{}\">{}</a>",
                    esc(&percent_encode(j)),
                    esc(&a.scope.describe())
                ),
                None => esc(&a.scope.describe()),
            };
            let _ = write!(
                out,
                "<tr class=\"{class}\"><td>{} <span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{scope}</td><td>{}</td></tr>",
                esc(&a.rule),
                esc(a.kind.as_str()),
                a.status.as_str(),
                esc(&value),
                esc(&a.kind.format_value(a.threshold)),
                esc(&numbers(a.kind, &a.numbers, a.window_seconds, a.baseline_seconds)),
                a.since.format("%Y-%m-%d %H:%M UTC"),
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
    out
}

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn journey(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !signed_in(&state, &headers) {
        return login_page(StatusCode::UNAUTHORIZED, None);
    }
    match crate::report::load(&state.store, &id, None).await {
        Ok(Some(report)) => Html(page(&format!("Journey {id}"), &journey_body(&report))).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, Html(page("Not found", &format!("<p>No journey <code>{}</code>.</p>", esc(&id)))))
                .into_response()
        }
        Err(e) => internal(e),
    }
}

/// The journey page: totals, the funnel (chart and table), each experiment (chart and table).
pub fn journey_body(report: &Report) -> String {
    let t = &report.totals;
    let mut out = format!(
        "<h1>{}{}</h1><div class=\"card\"><p>Goal: {} · <span id=\"total-entered\">{}</span> entered · \
         <span id=\"total-converted\">{}</span> converted ({}) · revenue {} (minor units)</p></div>",
        esc(&report.journey),
        report.name.as_ref().map(|n| format!(" <span class=\"muted\">{}</span>", esc(n))).unwrap_or_default(),
        esc(report.goal.as_deref().unwrap_or("none")),
        t.entered,
        t.converted,
        esc(&render::rate(&t.conversion)),
        t.revenue
    );
    out.push_str("<h2>Funnel</h2><div class=\"card\">");
    out.push_str(&funnel_chart(report));
    out.push_str(
        "<table id=\"funnel\"><tr><th>step</th><th>kind</th><th>entered</th><th>sent</th><th>pending</th>\
         <th>failed</th><th>skipped (reason)</th><th>converted</th><th>revenue</th></tr>",
    );
    for s in &report.funnel {
        let step = esc(&s.step);
        let _ = write!(
            out,
            "<tr data-step=\"{step}\"><td>{step}</td><td>{}</td><td data-col=\"entered\">{}</td>\
             <td data-col=\"sent\">{}</td><td data-col=\"pending\">{}</td><td data-col=\"failed\">{}</td>\
             <td data-col=\"skipped\">{}</td><td data-col=\"converted\">{}</td><td data-col=\"revenue\">{}</td></tr>",
            esc(&s.kind),
            s.entered.map_or_else(|| "-".into(), |n| n.to_string()),
            s.sent,
            s.pending,
            s.failed,
            esc(&render::reasons(&s.skipped)),
            s.converted,
            s.revenue
        );
    }
    out.push_str("</table></div>");
    for e in &report.experiments {
        let _ = write!(
            out,
            "<h2>Experiment at <code>{}</code></h2><div class=\"card\" id=\"experiment-{}\"><p class=\"muted\">{} · \
             control: {} · conversion by assignment, 95% Wilson intervals</p>",
            esc(&e.step),
            esc(&e.step),
            esc(&e.kind),
            esc(e.control.as_deref().unwrap_or("-"))
        );
        out.push_str(&experiment_chart(e));
        out.push_str(
            "<table><tr><th>arm</th><th>weight</th><th>entered</th><th>sent</th><th>delivered</th><th>opened</th>\
             <th>clicked</th><th>converted</th><th>rate (95% CI)</th><th>P(beats control)</th><th>uplift</th>\
             <th>revenue</th></tr>",
        );
        for a in &e.arms {
            let arm = esc(&a.arm);
            let _ = write!(
                out,
                "<tr data-arm=\"{arm}\"><td>{arm}</td><td>{}</td><td data-col=\"entered\">{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td data-col=\"converted\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                a.weight.map_or_else(|| "-".into(), |w| format!("{w}%")),
                a.entered,
                a.sent,
                a.delivered,
                a.opened,
                a.clicked,
                a.converted,
                esc(&render::rate(&a.conversion)),
                a.prob_beats_control.map_or_else(|| "-".into(), render::percent),
                esc(&render::uplift(a)),
                a.revenue
            );
        }
        out.push_str("</table></div>");
    }
    out
}

/// Horizontal bars per step: entered (light), sent (dark), converted (green), to one scale.
fn funnel_chart(report: &Report) -> String {
    let rows = &report.funnel;
    let max = rows.iter().map(|s| s.entered.unwrap_or(0).max(s.sent)).max().unwrap_or(0).max(1) as f64;
    let (label, width, bar) = (140.0, 720.0, 22.0);
    let height = 30.0 + rows.len() as f64 * (bar + 10.0);
    let mut svg = format!(
        "<svg id=\"funnel-chart\" role=\"img\" aria-label=\"funnel\" width=\"{}\" height=\"{height}\" \
         viewBox=\"0 0 {} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\">",
        label + width + 80.0,
        label + width + 80.0
    );
    for (i, (name, colour)) in
        [("entered", "#c9d3e6"), ("sent", "#4a6fa5"), ("converted", "#2e9d5b")].iter().enumerate()
    {
        let x = label + i as f64 * 110.0;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"4\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"14\">{name}</text>",
            x + 16.0
        );
    }
    for (i, s) in rows.iter().enumerate() {
        let y = 26.0 + i as f64 * (bar + 10.0);
        let w = |n: u64| (n as f64 / max * width).max(if n > 0 { 1.0 } else { 0.0 });
        let entered = s.entered.unwrap_or(0);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text>\
             <rect x=\"{label}\" y=\"{y}\" width=\"{:.1}\" height=\"{bar}\" fill=\"#c9d3e6\"><title>entered {entered}</title></rect>\
             <rect x=\"{label}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#4a6fa5\"><title>sent {}</title></rect>\
             <rect x=\"{label}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#2e9d5b\"><title>converted {}</title></rect>\
             <text x=\"{:.1}\" y=\"{}\">{} / {} / {}</text>",
            y + 15.0,
            esc(&s.step),
            w(entered),
            y + 4.0,
            w(s.sent),
            bar - 8.0,
            s.sent,
            y + 8.0,
            w(s.converted),
            bar - 16.0,
            s.converted,
            label + w(entered.max(s.sent)) + 6.0,
            y + 15.0,
            s.entered.map_or_else(|| "-".into(), |n| n.to_string()),
            s.sent,
            s.converted
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Conversion rate per arm with its 95% interval as a whisker; the control's rate as a line.
fn experiment_chart(e: &crate::report::Experiment) -> String {
    let top = e.arms.iter().map(|a| a.conversion.high).fold(0.0f64, f64::max).max(0.01);
    let (label, width, bar) = (140.0, 600.0, 20.0);
    let height = 10.0 + e.arms.len() as f64 * (bar + 12.0) + 10.0;
    let x = |rate: f64| label + rate / top * width;
    let mut svg = format!(
        "<svg class=\"experiment-chart\" role=\"img\" aria-label=\"conversion by arm\" width=\"{}\" height=\"{height}\" \
         viewBox=\"0 0 {} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\">",
        label + width + 180.0,
        label + width + 180.0
    );
    for (i, a) in e.arms.iter().enumerate() {
        let y = 10.0 + i as f64 * (bar + 12.0);
        let colour = if a.is_control { "#8a8f99" } else { "#4a6fa5" };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{label}\" y=\"{y}\" width=\"{:.1}\" height=\"{bar}\" fill=\"{colour}\">\
             <title>{}</title></rect><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#1d2330\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            y + 14.0,
            esc(&a.arm),
            x(a.conversion.rate) - label,
            esc(&render::rate(&a.conversion)),
            x(a.conversion.low),
            x(a.conversion.high),
            y + bar / 2.0,
            y + bar / 2.0,
            x(a.conversion.high) + 6.0,
            y + 14.0,
            esc(&render::rate(&a.conversion))
        );
    }
    if let Some(control) = e.arms.iter().find(|a| a.is_control) {
        let cx = x(control.conversion.rate);
        let _ = write!(
            svg,
            "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"4\" y2=\"{}\" stroke=\"#b00020\" stroke-dasharray=\"4 3\"/>",
            height - 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[derive(Deserialize)]
struct MemberQuery {
    id: Option<String>,
}

async fn member(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<MemberQuery>) -> Response {
    if !signed_in(&state, &headers) {
        return login_page(StatusCode::UNAUTHORIZED, None);
    }
    let id = q.id.unwrap_or_default();
    let id = id.trim();
    if id.is_empty() {
        return Html(page("Member", "<p>Enter a member id above.</p>")).into_response();
    }
    let found = match state.store.member(id).await {
        Ok(m) => m,
        Err(e) => return internal(e),
    };
    let Some(member) = found else {
        let body = format!("<h1>Member <code>{}</code></h1><p>No such member.</p>", esc(id));
        return (StatusCode::NOT_FOUND, Html(page("Member", &body))).into_response();
    };
    let journal = match state.store.journal_of(Some(id), 500).await {
        Ok(j) => j,
        Err(e) => return internal(e),
    };
    let name = [member.first_name.as_deref(), member.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>();
    let mut body = format!(
        "<h1>Member <code>{}</code> {}</h1><div class=\"card\"><p>email {} (consent {}) · phone {} (consent {}) · \
         push tokens {} (consent {}) · tier {} · lifecycle {}</p></div>\
         <h2>Why (not) sent: the timeline</h2><table id=\"trail\"><tr><th>at (UTC)</th><th>journey</th><th>step</th>\
         <th>action</th><th>channel</th><th>variant</th><th>reason</th></tr>",
        esc(&member.id),
        esc(&name.join(" ")),
        esc(member.email.as_deref().unwrap_or("-")),
        yes(member.email_consent),
        esc(member.phone.as_deref().unwrap_or("-")),
        yes(member.sms_consent),
        member.push_tokens.len(),
        yes(member.push_consent),
        esc(member.tier.as_deref().unwrap_or("-")),
        esc(member.lifecycle.as_deref().unwrap_or("-")),
    );
    for line in &journal {
        let cell = |v: &Option<String>| esc(v.as_deref().unwrap_or("-"));
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            line.at.format("%Y-%m-%d %H:%M:%S"),
            esc(&line.journey_id),
            cell(&line.step),
            esc(&line.action),
            cell(&line.channel),
            cell(&line.variant),
            cell(&line.reason)
        );
    }
    body.push_str("</table>");
    Html(page(&format!("Member {id}"), &body)).into_response()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn the_session_cookie_is_not_the_token() {
        let s = session_of("secret");
        assert_eq!(s.len(), 64);
        assert!(!s.contains("secret"));
        assert_eq!(s, session_of("secret"));
        assert_ne!(s, session_of("secreT"));
    }
}
