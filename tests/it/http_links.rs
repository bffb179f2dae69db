//! The links in messages over a real socket: unsubscribe (page and one-click), the open
//! pixel, click redirects — tampered tokens change nothing, and an unsubscribe stops the
//! next send of a running journey.

use std::sync::Arc;

use serde_json::json;
use tidings::channel::Channel;
use tidings::http::AppState;
use tidings::links::{LinkClaims, LinkKind, sign};

use crate::engine::WELCOME;
use crate::engines::on_both_engines;
use crate::http::{app_state, client, serve, spawn_app};
use crate::shop::{Shop, at, joined};
use crate::support::{LINK_SECRET, link_signer};

/// Flips one character in the payload half of a token.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn claims(kind: LinkKind, delivery_id: i64, member: &str, url: Option<&str>) -> LinkClaims {
    LinkClaims { kind, delivery_id, member_id: member.into(), channel: Channel::Email, url: url.map(str::to_string) }
}

async fn names_of(store: &tidings::store::Store, member: &str) -> Vec<String> {
    let mut names: Vec<String> = store.events_of(member, 100).await.unwrap().into_iter().map(|e| e.name).collect();
    names.sort();
    names
}

/// The id of a member's delivery of a step (what the engine signs its links with).
async fn delivery_id(store: &tidings::store::Store, member: &str, step: &str) -> i64 {
    const SQL_SQLITE: &str = "SELECT id FROM deliveries WHERE member_id = ?1 AND step = ?2";
    const SQL_POSTGRES: &str = "SELECT id FROM deliveries WHERE member_id = $1 AND step = $2";
    match store {
        tidings::store::Store::Sqlite(pool) => {
            sqlx::query_scalar(SQL_SQLITE).bind(member).bind(step).fetch_one(pool).await.unwrap()
        }
        tidings::store::Store::Postgres(pool) => {
            sqlx::query_scalar(SQL_POSTGRES).bind(member).bind(step).fetch_one(pool).await.unwrap()
        }
        tidings::store::Store::Memory(_) => unreachable!("tests run on a file or PostgreSQL"),
    }
}

on_both_engines! {
    async fn a_click_redirects_only_to_the_url_in_its_signed_token_and_records_it_once(store) {
        let base = spawn_app(store.clone()).await;
        let client = client();
        let target = "https://teahouse.example/offer?x=1&y=2";
        let token = sign(LINK_SECRET, &claims(LinkKind::Click, 7, "m1", Some(target)));

        // No query parameter or path trick changes where it goes.
        for suffix in ["", "?url=https://evil.example/", "?next=//evil.example&to=https://evil.example"] {
            let answer = client.get(format!("{base}/c/{token}{suffix}")).send().await.unwrap();
            assert_eq!(answer.status(), 302);
            assert_eq!(answer.headers()["location"], target);
            assert!(answer.headers()["cache-control"].to_str().unwrap().contains("no-store"));
        }
        assert_eq!(names_of(&store, "m1").await, ["message.clicked"], "one click event per delivery and URL");
        let event = &store.events_of("m1", 1).await.unwrap()[0];
        assert_eq!(event.properties["delivery_id"], 7);
        assert_eq!(event.properties["url"], target);

        // A token re-pointed at another URL, or tampered, or signed by someone else.
        let (_, signature) = token.split_once('.').unwrap();
        let evil = sign(LINK_SECRET, &claims(LinkKind::Click, 7, "m2", Some("https://evil.example/")));
        let (evil_payload, _) = evil.split_once('.').unwrap();
        let forged = sign(b"someone else's secret, 32 bytes!", &claims(LinkKind::Click, 8, "m2", Some("https://evil.example/")));
        for bad in [format!("{evil_payload}.{signature}"), tampered(&token), forged, "garbage".into()] {
            let answer = client.get(format!("{base}/c/{bad}")).send().await.unwrap();
            assert_eq!(answer.status(), 400, "{bad}");
            assert!(answer.headers().get("location").is_none());
            let reason = answer.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().to_string();
            assert!(reason.contains("token"), "{reason}");
        }
        // Another kind of link is not a click.
        let open = sign(LINK_SECRET, &claims(LinkKind::Open, 7, "m2", None));
        assert_eq!(client.get(format!("{base}/c/{open}")).send().await.unwrap().status(), 400);
        assert!(store.events_of("m2", 10).await.unwrap().is_empty(), "nothing recorded from refused tokens");
    }

    async fn the_open_pixel_is_an_uncached_gif_and_an_open_counts_once_per_delivery(store) {
        let base = spawn_app(store.clone()).await;
        let token = sign(LINK_SECRET, &claims(LinkKind::Open, 11, "m3", None));
        for _ in 0..2 {
            let answer = client().get(format!("{base}/o/{token}")).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            assert_eq!(answer.headers()["content-type"], "image/gif");
            assert!(answer.headers()["cache-control"].to_str().unwrap().contains("no-cache"));
            assert!(answer.bytes().await.unwrap().starts_with(b"GIF89a"));
        }
        assert_eq!(names_of(&store, "m3").await, ["message.opened"]);
        assert_eq!(client().get(format!("{base}/o/{}", tampered(&token))).send().await.unwrap().status(), 400);
        assert_eq!(store.event_count("m3").await.unwrap(), 1);
    }

    async fn without_a_link_secret_the_link_routes_refuse_with_a_reason(store) {
        let state = AppState::new(store.clone(), tidings::state::Settings::default(), None, Arc::new(crate::http::test_now));
        let base = serve(state).await;
        let token = sign(LINK_SECRET, &claims(LinkKind::Open, 1, "m4", None));
        let answer = client().get(format!("{base}/o/{token}")).send().await.unwrap();
        assert_eq!(answer.status(), 503);
        assert!(answer.text().await.unwrap().contains("TIDINGS_LINK_SECRET"));
        assert_eq!(store.event_count("m4").await.unwrap(), 0);
    }

    async fn an_unsubscribe_stops_the_next_scheduled_send_on_that_channel(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::new(store.clone(), &[WELCOME], "", t0).await;
        let ada = json!({ "email": "ada@example.com", "email_consent": true, "first_name": "Ada" });
        shop.happen(&[joined("ada", t0, ada)], t0).await;
        assert_eq!(shop.outbox().len(), 1, "the welcome email went out");
        let hello = delivery_id(&store, "ada", "hello").await;
        let links = link_signer().for_delivery(hello, "ada", Channel::Email);
        let url = links.unsubscribe_url();
        let token = url.rsplit('/').next().unwrap();

        let day1 = t0 + chrono::Duration::days(1);
        let base = serve(app_state(store.clone(), day1)).await;
        let client = client();
        // A tampered token, or another kind of link, records nothing.
        let answer = client.post(format!("{base}/u/{}", tampered(token))).form(&[("List-Unsubscribe", "One-Click")]).send().await.unwrap();
        assert_eq!(answer.status(), 400);
        let open = sign(LINK_SECRET, &claims(LinkKind::Open, hello, "ada", None));
        assert_eq!(client.post(format!("{base}/u/{open}")).send().await.unwrap().status(), 400);
        // The page asks; a GET (a mail scanner following the link) changes nothing.
        let page = client.get(format!("{base}/u/{token}")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("<form method=\"post\"") && html.contains("List-Unsubscribe"), "{html}");
        assert!(store.member("ada").await.unwrap().unwrap().email_consent);
        assert_eq!(store.event_count("ada").await.unwrap(), 1);

        // RFC 8058 one-click, twice (a client may retry).
        for _ in 0..2 {
            let answer = client.post(format!("{base}/u/{token}")).form(&[("List-Unsubscribe", "One-Click")]).send().await.unwrap();
            assert_eq!(answer.status(), 200);
        }
        let member = store.member("ada").await.unwrap().unwrap();
        assert!(!member.email_consent, "consent withdrawn on the link's channel");
        let pair = ("email".to_string(), "ada@example.com".to_string());
        assert!(store.suppressed(std::slice::from_ref(&pair)).await.unwrap().contains(&pair));
        assert_eq!(names_of(&store, "ada").await, ["member.created", "member.unsubscribed"]);

        shop.at(t0 + chrono::Duration::days(3)).await;
        assert_eq!(shop.outbox().len(), 1, "the reminder was not sent");
        // The welcome journey is for members with email consent: Ada left it at the end of
        // the wait, before the reminder.
        let timeline = shop.timeline("ada").await;
        assert_eq!(timeline.last().map(String::as_str), Some("welcome exit pause audience"), "{timeline:?}");
        assert!(shop.deliveries("ada").await.iter().all(|d| d.1 != "reminder"));
    }
}
