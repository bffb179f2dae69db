//! Tracked links and the open pixel in rendered email, end to end: every rewritten link
//! verifies back to where it pointed, and `tracking: false` turns both off.

use std::collections::BTreeMap;

use serde_json::json;
use tidings::channel::Channel;
use tidings::links::{LinkKind, verify};
use tidings::template::{RenderOptions, Rendered, TemplateCatalog, Untracked};

use crate::support::{LINK_SECRET, example_templates, fixture_member, link_signer, message_context};

fn tokens<'a>(html: &'a str, prefix: &str) -> Vec<&'a str> {
    html.match_indices(prefix)
        .map(|(at, _)| {
            let rest = &html[at + prefix.len()..];
            &rest[..rest.find(|c: char| c == '"' || c.is_whitespace()).unwrap_or(rest.len())]
        })
        .collect()
}

fn vars() -> tidings::journey::model::Vars {
    BTreeMap::from([("gift_points".into(), json!(300)), ("treat".into(), json!("a sample"))])
}

#[test]
fn every_tracked_link_in_an_email_verifies_back_to_its_target() {
    let member = fixture_member();
    let links = link_signer().for_delivery(9, &member.id, Channel::Email);
    let context = message_context(&member, &vars(), &links);
    let catalog = example_templates();
    let tracked = RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &links };
    let Rendered::Email { html, text, .. } =
        catalog.render("birthday/gift", Channel::Email, &context, &tracked).unwrap()
    else {
        panic!()
    };
    let plain = RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &Untracked };
    let Rendered::Email { html: untracked_html, .. } =
        catalog.render("birthday/gift", Channel::Email, &context, &plain).unwrap()
    else {
        panic!()
    };

    let clicks = tokens(&html, "https://t.example/c/");
    assert!(clicks.len() >= 2, "the shop link and the button: {html}");
    for token in clicks {
        let claims = verify(LINK_SECRET, token).unwrap();
        assert_eq!((claims.kind, claims.delivery_id, claims.channel), (LinkKind::Click, 9, Channel::Email));
        assert_eq!(claims.member_id, member.id);
        let target = claims.url.unwrap();
        assert!(untracked_html.contains(&format!("\"{target}\"")), "{target} is a link of the untracked email");
    }

    let opens = tokens(&html, "https://t.example/o/");
    assert_eq!(opens.len(), 1, "one open pixel");
    assert_eq!(verify(LINK_SECRET, opens[0]).unwrap().kind, LinkKind::Open);
    assert!(html.trim_end().ends_with("</html>"), "the pixel goes inside the body");
    assert!(!text.contains("t.example/o/"), "the text part has no pixel");
    assert!(!untracked_html.contains("t.example/o/"), "no tracker, no pixel");

    let unsubscribe = tokens(&html, "https://t.example/u/");
    assert_eq!(verify(LINK_SECRET, unsubscribe[0]).unwrap().kind, LinkKind::Unsubscribe);
}

#[test]
fn tracking_false_in_the_front_matter_sends_links_as_written_and_no_pixel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("receipt.email.hbs"),
        "---\nsubject: Your receipt\ntracking: false\n---\n<html><body><a href=\"{{link \"https://teahouse.example/orders\"}}\">Orders</a></body></html>\n",
    )
    .unwrap();
    let (catalog, diagnostics) = TemplateCatalog::load(dir.path());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let member = fixture_member();
    let links = link_signer().for_delivery(10, &member.id, Channel::Email);
    let context = message_context(&member, &vars(), &links);
    let options = RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &links };
    let Rendered::Email { html, .. } = catalog.render("receipt", Channel::Email, &context, &options).unwrap() else {
        panic!()
    };
    assert_eq!(html.trim_end(), "<html><body><a href=\"https://teahouse.example/orders\">Orders</a></body></html>");

    std::fs::write(dir.path().join("receipt.email.hbs"), "---\nsubject: Hi\ntracking: nope\n---\nx\n").unwrap();
    let (_, diagnostics) = TemplateCatalog::load(dir.path());
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].code, "T002");
}
