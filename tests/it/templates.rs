//! Every example template rendered for the fixture member, as the steps of the example
//! journeys use them (their vars), at a fixed time, with real signed links: snapshots of
//! what a member would receive.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use tidings::channel::Channel;
use tidings::journey::model::StepKind;
use tidings::project::{Project, Sources};
use tidings::template::{RenderOptions, Rendered};

use crate::support::{fixture_member, link_signer, message_context};

fn show(rendered: &Rendered) -> String {
    let mut out = String::new();
    match rendered {
        Rendered::Email { subject, preheader, from, reply_to, html, text } => {
            let _ = writeln!(out, "subject: {subject}");
            let _ = writeln!(out, "preheader: {}", preheader.as_deref().unwrap_or("-"));
            let _ = writeln!(out, "from: {}", from.as_deref().unwrap_or("-"));
            let _ = writeln!(out, "reply_to: {}", reply_to.as_deref().unwrap_or("-"));
            let _ = writeln!(out, "--- text\n{}", text.trim_end());
            let _ = writeln!(out, "--- html\n{}", html.trim_end());
        }
        Rendered::Sms { body } => {
            let _ = writeln!(out, "body ({} characters): {body}", body.chars().count());
        }
        Rendered::Push { title, body, deep_link, image } => {
            let _ = writeln!(out, "title: {title}\nbody: {body}");
            let _ = writeln!(out, "deep_link: {}", deep_link.as_deref().unwrap_or("-"));
            let _ = writeln!(out, "image: {}", image.as_deref().unwrap_or("-"));
        }
        Rendered::Webhook { body } => {
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(body).unwrap());
        }
    }
    out
}

/// The fixture member's shelf: one pick from their purchases, then two bestsellers.
fn fixture_shelf() -> tidings::recommend::Shelf {
    use tidings::recommend::{Bestsellers, Pick, Product, Shelf};
    let pick = |id: &str, title: &str, price: i64, category: &str, reason: &str| Pick {
        product: Product {
            id: id.into(),
            title: title.into(),
            url: Some(format!("https://teahouse.example/products/{id}")),
            image_url: Some(format!("https://teahouse.example/images/{id}.jpg")),
            price: Some(price),
            currency: Some("CNY".into()),
            category: Some(category.into()),
            tags: vec![],
            in_stock: true,
            published: true,
        },
        score: 0.0,
        reason: reason.into(),
        because: None,
    };
    Shelf {
        picks: vec![pick("gaiwan", "Celadon gaiwan", 26800, "teaware", "because you bought Longjing green tea 100g")],
        bestsellers: std::sync::Arc::new(Bestsellers::from_scopes([(
            String::new(),
            vec![
                pick("tieguanyin", "Tieguanyin oolong 100g", 12800, "tea", "a bestseller"),
                pick("cups", "Set of four tasting cups", 15800, "teaware", "a bestseller"),
            ],
        )])),
        ..Shelf::default()
    }
}

#[test]
fn every_example_template_renders_for_the_fixture_member() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = Sources::standard(&root.join("workflows"), &root.join("templates")).unwrap();
    let project = Project::load(&sources, chrono_tz::Asia::Shanghai);
    assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
    let member = fixture_member();
    let signer = link_signer();
    let shelf = fixture_shelf();

    let mut seen = BTreeSet::new();
    for journey in &project.journeys {
        for step in &journey.steps {
            let StepKind::Send(send) = &step.kind else { continue };
            for variant in &send.variants {
                // Each template once, with the vars of the first step that sends it.
                if !seen.insert((send.channel, variant.template.clone())) {
                    continue;
                }
                let links = signer.for_delivery(1, &member.id, send.channel);
                let context = message_context(&member, &variant.vars, &links);
                let options = RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &links };
                let (rendered, _) = project
                    .templates
                    .render_shelved(&variant.template, send.channel, &context, &options, &shelf)
                    .unwrap_or_else(|e| panic!("{} ({}): {e}", variant.template, send.channel));
                let name = format!("{}.{}", variant.template.replace('/', "__"), send.channel);
                let description = format!("journey `{}` step `{}`", journey.id, step.id);
                insta::with_settings!({ description => description, omit_expression => true }, {
                    insta::assert_snapshot!(name, show(&rendered));
                });
            }
        }
    }
    let channels: BTreeSet<Channel> = seen.iter().map(|(c, _)| *c).collect();
    assert_eq!(channels.len(), 4, "the examples cover every channel: {seen:?}");
    assert_eq!(seen.len(), project.templates.len(), "every example template is used by a journey");
}
