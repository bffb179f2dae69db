use std::collections::BTreeSet;
use std::path::Path;

use super::*;

fn catalog(files: &[(&str, &str)]) -> (TemplateCatalog, Vec<Diagnostic>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let (catalog, diagnostics) = TemplateCatalog::load(dir.path());
    (catalog, diagnostics, dir)
}

fn vars(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// `code line:col message` of each diagnostic, for compact assertions.
fn summary(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| {
            let (line, col) = d.line_col();
            format!("{} {}:{} {}", d.code, line, col, d.message)
        })
        .collect()
}

fn marked(d: &Diagnostic) -> &str {
    &d.file.text()[d.span.start..d.span.end]
}

const USED_BY: &str = "journey `birthday` step `email`";

#[test]
fn loads_every_kind_of_file_by_name_and_channel() {
    let (catalog, diagnostics, _dir) = catalog(&[
        ("welcome.email.hbs", "---\nsubject: Welcome\n---\n<p>Hi</p>\n"),
        ("welcome.email.txt.hbs", "Hi\n"),
        ("winback/offer.email.hbs", "---\nsubject: Come back\nlayout: base\n---\n<p>Offer</p>\n"),
        ("winback/nudge.sms.hbs", "Come back\n"),
        ("birthday.push.hbs", "---\ntitle: Happy birthday\n---\nA gift\n"),
        ("coupon.webhook.hbs", "{\"member\": \"{{member.id}}\"}\n"),
        ("partials/button.hbs", "<a href=\"{{url}}\">{{label}}</a>"),
        ("layouts/base.hbs", "<html>{{> @partial-block}}</html>"),
        (".gitkeep", ""),
    ]);
    assert_eq!(summary(&diagnostics), Vec::<String>::new());
    assert!(catalog.has("welcome", Channel::Email));
    assert!(catalog.has("winback/offer", Channel::Email));
    assert!(catalog.has("winback/nudge", Channel::Sms));
    assert!(!catalog.has("winback/nudge", Channel::Email));
    assert!(catalog.has("birthday", Channel::Push));
    assert!(catalog.has("coupon", Channel::Webhook));
    assert_eq!(catalog.names(Channel::Email), vec!["welcome", "winback/offer"]);
    assert_eq!(catalog.names(Channel::Sms), vec!["winback/nudge"]);
}

#[test]
fn a_missing_directory_is_one_error() {
    let (catalog, diagnostics) = TemplateCatalog::load(Path::new("/nonexistent/templates"));
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].code, "T001");
    assert!(catalog.names(Channel::Email).is_empty());
}

#[test]
fn syntax_errors_point_at_the_line_in_the_file() {
    let (catalog, diagnostics, _dir) = catalog(&[(
        "welcome.email.hbs",
        "---\nsubject: Welcome\n---\n<p>Hi</p>\n{{#if member.first_name}}\n{{/each}}\n",
    )]);
    assert_eq!(
        summary(&diagnostics),
        vec!["T001 6:1 template syntax error: helper \"if\" was opened, but \"each\" is closing"]
    );
    assert!(catalog.has("welcome", Channel::Email), "a broken template still exists");
    assert!(catalog.check_variables("welcome", Channel::Email, &vars(&[]), USED_BY).is_empty());
}

#[test]
fn front_matter_problems_are_t002() {
    let (_, diagnostics, _dir) = catalog(&[
        ("a.email.hbs", "<p>no front matter</p>\n"),
        ("b.email.hbs", "---\nsubjet: Hi\n---\n<p>x</p>\n"),
        ("c.push.hbs", "---\ndeep_link: /x\n---\nbody\n"),
        ("d.email.hbs", "---\nsubject: Hi\n<p>never closed</p>\n"),
        ("e.sms.hbs", "---\nsubject: Hi\n---\nsms text\n"),
    ]);
    assert_eq!(
        summary(&diagnostics),
        vec![
            "T002 1:1 email template has no front matter with `subject`",
            "T002 2:1 unknown front matter key `subjet`",
            "T002 1:1 front matter has no `subject`",
            "T002 1:1 front matter has no `title`",
            "T002 1:1 front matter is not closed",
            "T002 1:1 an SMS has no front matter; these lines are sent as text",
        ]
    );
    assert_eq!(diagnostics[1].hint.as_deref(), Some("did you mean `subject`?"));
    assert_eq!(diagnostics[5].severity, crate::diagnostic::Severity::Warning);
}

#[test]
fn unknown_variables_point_at_the_expression_and_name_the_user() {
    let (catalog, diagnostics, _dir) = catalog(&[(
        "birthday.email.hbs",
        "---\nsubject: \"生日快乐, {{member.frist_name}}!\"\n---\n<p>Hi {{member.first_name}},</p>\n<p>{{vars.gift_point}} points, {{shop.nam}}</p>\n",
    )]);
    assert!(diagnostics.is_empty(), "{:?}", summary(&diagnostics));
    let found = catalog.check_variables("birthday", Channel::Email, &vars(&["gift_points"]), USED_BY);
    assert_eq!(
        summary(&found),
        vec![
            "T003 2:17 unknown variable `member.frist_name` for journey `birthday` step `email`",
            "T003 5:4 unknown variable `vars.gift_point` for journey `birthday` step `email`",
            "T003 5:32 unknown variable `shop.nam` for journey `birthday` step `email`",
        ]
    );
    assert_eq!(marked(&found[0]), "{{member.frist_name}}");
    assert_eq!(marked(&found[1]), "{{vars.gift_point}}");
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `member.first_name`?"));
    assert_eq!(found[1].hint.as_deref(), Some("did you mean `vars.gift_points`?"));
    assert_eq!(found[2].hint.as_deref(), Some("did you mean `shop.name`?"));
    assert!(found[0].render().contains("birthday.email.hbs:2:17"));
}

#[test]
fn vars_hint_lists_what_the_step_passes() {
    let (catalog, _, _dir) = catalog(&[("a.sms.hbs", "{{vars.coupon_code}}")]);
    let none = catalog.check_variables("a", Channel::Sms, &vars(&[]), USED_BY);
    assert_eq!(none[0].hint.as_deref(), Some("this send passes no `vars`; add them to the step's `vars:`"));
    let other = catalog.check_variables("a", Channel::Sms, &vars(&["discount"]), USED_BY);
    assert_eq!(other[0].hint.as_deref(), Some("this send passes vars `discount`; add the key to the step's `vars:`"));
    assert!(catalog.check_variables("a", Channel::Sms, &vars(&["coupon_code"]), USED_BY).is_empty());
}

#[test]
fn every_context_root_is_accepted() {
    let body = "{{member.first_name}} {{member.points}} {{member.tags.[0]}} {{member.attributes.shoe_size}} \
                {{member.lifecycle}} {{member.days_until_birthday}} {{event.order.total}} {{event.name}} \
                {{journey.id}} {{journey.name}} {{step.id}} {{variant}} {{vars.code.text}} \
                {{links.unsubscribe}} {{links.preferences}} \
                {{shop.name}} {{shop.url}} {{shop.support_email}} {{shop.address}} {{@root.member.id}}";
    let (catalog, diagnostics, _dir) = catalog(&[("a.sms.hbs", body)]);
    assert!(diagnostics.is_empty());
    assert_eq!(summary(&catalog.check_variables("a", Channel::Sms, &vars(&["code"]), USED_BY)), Vec::<String>::new());
}

#[test]
fn scalars_have_no_fields_and_message_is_only_for_email_bodies() {
    let (catalog, _, _dir) = catalog(&[
        ("a.sms.hbs", "{{member.first_name.x}} {{message.subject}} {{journey}}"),
        ("b.email.hbs", "---\nsubject: \"{{message.subject}}\"\npreheader: p\n---\n{{message.preheader}}"),
    ]);
    let found = catalog.check_variables("a", Channel::Sms, &vars(&[]), USED_BY);
    assert_eq!(found.iter().map(marked).collect::<Vec<_>>(), vec!["{{member.first_name.x}}", "{{message.subject}}"]);
    assert_eq!(found[0].hint.as_deref(), Some("`member.first_name` is a string and has no field `x`"));
    let found = catalog.check_variables("b", Channel::Email, &vars(&[]), USED_BY);
    assert_eq!(
        summary(&found),
        vec!["T003 2:11 unknown variable `message.subject` for journey `birthday` step `email`"]
    );
}

#[test]
fn block_helpers_locals_and_block_params_are_understood() {
    let body = r#"{{#if member.first_name}}Hi {{member.first_name}}{{else if vars.nick}}{{vars.nick}}{{else}}Hi{{/if}}
{{#unless member.email_consent}}no{{/unless}}
{{#each member.tags}}{{@index}} {{this}} {{@first}} {{../member.id}} {{@root.shop.name}}{{/each}}
{{#each member.tags as |tag i|}}{{tag}} {{i}} {{@last}}{{/each}}
{{#each event.items}}{{name}} {{price}} {{@key}}{{else}}none{{/each}}
{{#with member}}{{first_name}} {{tier}}{{/with}}
{{#with member.attributes as |a|}}{{a.size}}{{/with}}
{{lookup vars "code"}} {{#if (eq member.tier "gold")}}gold{{/if}}"#;
    let (catalog, diagnostics, _dir) = catalog(&[("a.sms.hbs", body)]);
    assert!(diagnostics.is_empty(), "{:?}", summary(&diagnostics));
    let found = catalog.check_variables("a", Channel::Sms, &vars(&["nick", "code"]), USED_BY);
    assert_eq!(summary(&found), Vec::<String>::new());
}

#[test]
fn mistakes_inside_blocks_are_found_with_scope_hints() {
    let body = "{{#each member.tags}}{{member.id}}{{/each}}\n{{@index}}\n{{#with member}}{{frist_name}}{{/with}}\n{{#if vars.x}}{{/if}}{{../x}}";
    let (catalog, _, _dir) = catalog(&[("a.sms.hbs", body)]);
    let found = catalog.check_variables("a", Channel::Sms, &vars(&[]), USED_BY);
    assert_eq!(
        found.iter().map(marked).collect::<Vec<_>>(),
        vec!["{{member.id}}", "{{@index}}", "{{frist_name}}", "{{#if vars.x}}", "{{../x}}"]
    );
    assert_eq!(
        found[0].hint.as_deref(),
        Some(
            "here the context is an item of `member.tags`, a string; reach the message context with `@root.member.id`"
        )
    );
    assert_eq!(found[2].hint.as_deref(), Some("did you mean `first_name`?"));
}

#[test]
fn helpers_are_known_and_their_arguments_are_checked() {
    let body = r#"{{money member.total_spend member.currency}} {{money vars.amount}} {{date member.points_expire_at "%Y-%m-%d"}}
{{pluralize member.points "point"}} {{default member.first_name "there"}} {{uppercase member.tier}} {{lowercase shop.name}}
{{link "https://shop.example/rewards"}} {{{link links.preferences}}} {{money member.total_spnd "CNY"}} {{default (uppercase member.tierr) "x"}}"#;
    let (catalog, diagnostics, _dir) = catalog(&[("a.sms.hbs", body)]);
    assert!(diagnostics.is_empty(), "{:?}", summary(&diagnostics));
    let found = catalog.check_variables("a", Channel::Sms, &vars(&["amount"]), USED_BY);
    assert_eq!(
        summary(&found),
        vec![
            "T003 3:70 unknown variable `member.total_spnd` for journey `birthday` step `email`",
            "T003 3:104 unknown variable `member.tierr` for journey `birthday` step `email`",
        ]
    );
}

#[test]
fn unknown_helpers_and_wrong_arity_are_reported_at_load() {
    let (_, diagnostics, _dir) = catalog(&[(
        "a.sms.hbs",
        "{{mony member.total_spend}} {{money}} {{money 1 2 3}} {{#uppercase member.tier}}x{{/uppercase}}",
    )]);
    assert_eq!(
        summary(&diagnostics),
        vec![
            "T003 1:1 unknown helper `mony`",
            "T001 1:29 `money` needs an argument",
            "T001 1:39 `money` takes 1 to 2 argument(s), got 3",
            "T001 1:55 `uppercase` is not a block helper",
        ]
    );
    assert_eq!(diagnostics[0].hint.as_deref(), Some("did you mean `money`?"));
}

#[test]
fn partials_and_layouts_are_checked_where_they_are_used() {
    let (catalog, diagnostics, _dir) = catalog(&[
        (
            "welcome.email.hbs",
            "---\nsubject: Hi\nlayout: base\n---\n{{> button url=links.preferences label=\"Open\"}}\n{{> footr}}\n{{> card member}}\n",
        ),
        ("partials/button.hbs", "<a href=\"{{url}}\">{{label}}</a> {{vars.coupon}} {{member.first_name}}"),
        ("partials/card.hbs", "{{tier}} {{points}} {{tierr}}"),
        ("layouts/base.hbs", "<html><span>{{message.preheader}}</span>{{> @partial-block}}{{shop.adress}}</html>"),
    ]);
    assert_eq!(summary(&diagnostics), vec!["T004 6:1 unknown partial `footr`"]);
    let found = catalog.check_variables("welcome", Channel::Email, &vars(&[]), USED_BY);
    let at: Vec<_> = found.iter().map(|d| (d.file.path().file_name().unwrap().to_str().unwrap(), marked(d))).collect();
    assert_eq!(
        at,
        vec![("button.hbs", "{{vars.coupon}}"), ("card.hbs", "{{tierr}}"), ("base.hbs", "{{shop.adress}}"),]
    );
    assert_eq!(found[1].hint.as_deref(), Some("did you mean `tier`?"));
}

#[test]
fn unknown_layouts_and_partial_blocks_outside_layouts_are_t004() {
    let (_, diagnostics, _dir) = catalog(&[
        ("a.email.hbs", "---\nsubject: Hi\nlayout: bse\n---\n{{> @partial-block}}\n"),
        ("layouts/base.hbs", "{{> @partial-block}}"),
    ]);
    assert_eq!(
        summary(&diagnostics),
        vec!["T004 3:9 unknown layout `bse`", "T004 5:1 `@partial-block` outside a layout or partial"]
    );
    assert_eq!(diagnostics[0].hint.as_deref(), Some("did you mean `base`?"));
}

#[test]
fn files_that_are_not_templates_are_t005_warnings() {
    let (catalog, diagnostics, _dir) = catalog(&[
        ("welcome.html", "<p>x</p>"),
        ("welcome.mail.hbs", "x"),
        ("orphan.email.txt.hbs", "x"),
        ("README.md", "docs"),
    ]);
    assert_eq!(
        summary(&diagnostics),
        vec![
            "T005 1:1 `welcome.html` is not a template and is ignored",
            "T005 1:1 `welcome.mail.hbs` is not a template and is ignored",
            "T005 1:1 `orphan.email.txt.hbs` has no `orphan.email.hbs` beside it and is ignored",
        ]
    );
    assert!(diagnostics.iter().all(|d| d.severity == crate::diagnostic::Severity::Warning));
    assert!(catalog.names(Channel::Email).is_empty());
}

// ---------------------------------------------------------------------------------------
// Rendering.

fn context(vars: serde_json::Value) -> MessageContext {
    let member = crate::member::Member {
        id: "m1".into(),
        first_name: Some("Li".into()),
        tier: Some("gold".into()),
        points: 1200,
        total_spend: 123456,
        currency: Some("CNY".into()),
        locale: Some("zh-CN".into()),
        points_expire_at: Some("2025-03-14T18:00:00Z".parse().unwrap()),
        points_expiring: 300,
        order_count: 7,
        last_order_at: Some("2024-11-02T08:00:00Z".parse().unwrap()),
        ..Default::default()
    };
    MessageContext {
        member: member_value(&member, "2025-03-01T00:00:00Z".parse().unwrap(), chrono_tz::Asia::Shanghai),
        event: serde_json::json!({}),
        journey: JourneyInfo { id: "birthday".into(), name: "Birthday".into() },
        step: StepInfo { id: "email".into() },
        variant: None,
        vars: vars.as_object().cloned().unwrap_or_default(),
        links: Links { unsubscribe: "https://t.example/u/abc".into(), preferences: "https://t.example/p/abc".into() },
        shop: ShopInfo {
            name: "Tea & Co".into(),
            url: "https://tea.example".into(),
            support_email: "help@tea.example".into(),
            address: "1 Tea Road, Hangzhou".into(),
        },
    }
}

struct Tracker;

impl LinkTracker for Tracker {
    fn track(&self, url: &str) -> String {
        format!("https://t.example/c/{}", url.len())
    }
}

fn options() -> RenderOptions<'static> {
    RenderOptions { default_timezone: chrono_tz::Asia::Shanghai, links: &Tracker }
}

#[test]
fn renders_email_with_layout_partials_helpers_and_escaping() {
    let (catalog, diagnostics, _dir) = catalog(&[
        (
            "birthday.email.hbs",
            "---\nsubject: \"生日快乐, {{member.first_name}} & friends\"\npreheader: \"{{vars.gift_points}} points for you\"\nlayout: base\n---\n<p>{{member.first_name}}, {{vars.note}}</p>\n<p>{{money member.total_spend member.currency}} · {{date member.points_expire_at}}</p>\n{{> button url=(link \"https://tea.example/gift\") label=\"Open\"}}\n",
        ),
        ("partials/button.hbs", "<a href=\"{{url}}\">{{label}}</a>"),
        (
            "layouts/base.hbs",
            "<html><div style=\"display:none\">{{message.preheader}}</div>{{> @partial-block}}<p>{{shop.address}}</p></html>",
        ),
    ]);
    assert!(diagnostics.is_empty(), "{:?}", summary(&diagnostics));
    let rendered = catalog
        .render(
            "birthday",
            Channel::Email,
            &context(serde_json::json!({"gift_points": 500, "note": "<b>hi</b>"})),
            &options(),
        )
        .unwrap();
    let Rendered::Email { subject, preheader, html, text, .. } = rendered else { panic!() };
    assert_eq!(subject, "生日快乐, Li & friends");
    assert_eq!(preheader.as_deref(), Some("500 points for you"));
    assert!(
        html.starts_with("<html><div style=\"display:none\">500 points for you</div><p>Li, &lt;b&gt;hi&lt;/b&gt;</p>"),
        "{html}"
    );
    assert!(html.contains("¥1,234.56 · 2025年3月15日"), "{html}");
    assert!(html.contains("<a href=\"https://t.example/c/24\">Open</a>"), "{html}");
    assert!(html.ends_with("<p>1 Tea Road, Hangzhou</p></html>"), "{html}");
    assert!(text.contains("Li, <b>hi</b>"), "{text}");
    assert!(!text.contains("500 points for you"), "{text}");
}

#[test]
fn text_parts_sms_and_push_are_not_html_escaped() {
    let (catalog, diagnostics, _dir) = catalog(&[
        ("a.email.hbs", "---\nsubject: Hi\n---\n<p>{{shop.name}}</p>"),
        ("a.email.txt.hbs", "{{shop.name}} text"),
        ("a.sms.hbs", "{{shop.name}}: {{pluralize member.points \"point\"}} {{uppercase member.tier}}\n"),
        (
            "a.push.hbs",
            "---\ntitle: \"{{shop.name}}\"\ndeep_link: \"app://points\"\n---\n{{member.points}} {{pluralize 1 \"point\"}}",
        ),
    ]);
    assert!(diagnostics.is_empty(), "{:?}", summary(&diagnostics));
    let ctx = context(serde_json::json!({}));
    match catalog.render("a", Channel::Email, &ctx, &options()).unwrap() {
        Rendered::Email { html, text, .. } => {
            assert_eq!(html, "<p>Tea &amp; Co</p>");
            assert_eq!(text, "Tea & Co text");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        catalog.render("a", Channel::Sms, &ctx, &options()).unwrap(),
        Rendered::Sms { body: "Tea & Co: points GOLD".into() }
    );
    assert_eq!(
        catalog.render("a", Channel::Push, &ctx, &options()).unwrap(),
        Rendered::Push {
            title: "Tea & Co".into(),
            body: "1200 point".into(),
            deep_link: Some("app://points".into()),
            image: None
        }
    );
}

#[test]
fn a_missing_value_fails_the_render_with_its_place() {
    let (catalog, _, _dir) =
        catalog(&[("a.sms.hbs", "Hi\n{{member.last_name}}\n{{default member.last_name \"friend\"}}")]);
    let error = catalog.render("a", Channel::Sms, &context(serde_json::json!({})), &options()).unwrap_err();
    let message = error.to_string();
    assert!(message.ends_with("a.sms.hbs:2:1: `member.last_name` has no value"), "{message}");
}

#[test]
fn links_must_be_http_and_webhooks_are_json_escaped() {
    let (catalog, _, _dir) = catalog(&[
        ("a.sms.hbs", "{{link vars.url}}"),
        (
            "a.webhook.hbs",
            "{\"member\": \"{{member.id}}\", \"note\": \"{{vars.note}}\", \"points\": {{member.points}}}",
        ),
    ]);
    let ctx = context(serde_json::json!({"url": "javascript:alert(1)", "note": "say \"hi\"\n"}));
    let error = catalog.render("a", Channel::Sms, &ctx, &options()).unwrap_err();
    assert!(error.to_string().contains("is not an http(s) or mailto URL"), "{error}");
    assert_eq!(
        catalog.render("a", Channel::Webhook, &ctx, &options()).unwrap(),
        Rendered::Webhook { body: serde_json::json!({"member": "m1", "note": "say \"hi\"\n", "points": 1200}) }
    );
}

// ---------------------------------------------------------------------------------------
// The example content in this repository.

/// One `send` (or one variant of it) in a workflow: journey, step, channel, template, vars.
type Send = (String, String, Channel, String, serde_json::Map<String, serde_json::Value>);

/// Every `send` of every workflow.
fn sends_in(workflows: &Path) -> Vec<Send> {
    let mut sends = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(workflows).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let journey = doc["id"].as_str().unwrap().to_string();
        assert_eq!(Some(journey.as_str()), path.file_stem().and_then(|s| s.to_str()), "id equals the file name");
        for step in doc["steps"].as_array().unwrap() {
            let Some(send) = step.get("send") else { continue };
            let id = step["id"].as_str().unwrap().to_string();
            let channel = Channel::parse(send["channel"].as_str().unwrap()).unwrap();
            let vars_of = |v: &serde_json::Value| v.as_object().cloned().unwrap_or_default();
            let step_vars = vars_of(&send["vars"]);
            match send.get("variants") {
                Some(variants) => {
                    for variant in variants.as_array().unwrap() {
                        let mut all = step_vars.clone();
                        all.extend(vars_of(&variant["vars"]));
                        let template = variant["template"].as_str().unwrap().to_string();
                        sends.push((journey.clone(), id.clone(), channel, template, all));
                    }
                }
                None => {
                    let template = send["template"].as_str().unwrap().to_string();
                    sends.push((journey.clone(), id.clone(), channel, template, step_vars));
                }
            }
        }
    }
    sends
}

#[test]
fn example_templates_load_cleanly_and_pass_the_variable_check_for_every_send() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (catalog, diagnostics) = TemplateCatalog::load(&root.join("templates"));
    let rendered: Vec<String> = diagnostics.iter().map(Diagnostic::render).collect();
    assert!(rendered.is_empty(), "{}", rendered.join("\n"));

    let sends = sends_in(&root.join("workflows"));
    assert!(sends.len() >= 10, "{} sends", sends.len());
    let mut problems = Vec::new();
    for (journey, step, channel, template, vars) in &sends {
        assert!(
            catalog.has(template, *channel),
            "journey `{journey}` step `{step}`: no {channel} template `{template}`"
        );
        let used_by = format!("journey `{journey}` step `{step}`");
        let keys: BTreeSet<String> = vars.keys().cloned().collect();
        problems.extend(catalog.check_variables(template, *channel, &keys, &used_by).iter().map(Diagnostic::render));

        // And each renders for a plausible member with the step's own vars.
        let mut ctx = context(serde_json::Value::Object(vars.clone()));
        ctx.event = serde_json::json!({"name": "tier.changed", "from": "silver", "to": "diamond"});
        ctx.variant = Some("a".into());
        match catalog.render(template, *channel, &ctx, &options()) {
            Ok(rendered) => {
                let text = format!("{rendered:?}");
                assert!(!text.contains("{{"), "{journey}/{step} left a tag: {text}");
            }
            Err(e) => problems.push(format!("{journey}/{step}: {e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Recommendations.

#[test]
fn bad_arguments_to_recommend_are_errors_at_their_position() {
    let (_, diagnostics, _dir) = catalog(&[(
        "a.email.hbs",
        "---\nsubject: Hi\n---\n{{#each (recommend 0)}}{{title}}{{/each}}\n{{#each (recommend 3 colour=\"red\")}}{{title}}{{/each}}\n{{#each (recommend \"four\")}}{{title}}{{/each}}\n{{recommend 3}}\n{{#each (bought_recently 2 category=\"tea\")}}{{title}}{{/each}}\n{{#each (recommend 3 category=4)}}{{title}}{{/each}}\n",
    )]);
    assert_eq!(
        summary(&diagnostics),
        vec![
            "T001 4:1 `recommend` takes how many products to show, a whole number from 1 to 20",
            "T001 5:1 `recommend` takes no `colour=`; it takes `category=\"…\"`",
            "T001 6:1 `recommend` takes how many products to show, a whole number from 1 to 20",
            "T001 7:1 `recommend` gives a list of products, not text",
            "T001 8:1 `bought_recently` takes no `category=`",
            "T001 9:1 `category` is a category name in quotes, not `4`",
        ]
    );
}

#[test]
fn product_items_have_known_fields_only() {
    let (catalog, diagnostics, _dir) = catalog(&[(
        "a.email.hbs",
        "---\nsubject: Hi\n---\n{{#each (recommend 3 category=\"tea\")}}<a href=\"{{url}}\">{{title}}</a> {{money price currency}} {{reason}} {{titel}}{{/each}}\n",
    )]);
    assert!(diagnostics.is_empty(), "{:?}", summary(&diagnostics));
    let found = catalog.check_variables("a", Channel::Email, &vars(&[]), USED_BY);
    assert_eq!(summary(&found), vec!["T003 4:107 unknown variable `titel` for journey `birthday` step `email`"]);
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `title`?"));
}

#[test]
fn recommend_renders_the_shelf_with_tracked_links_and_reports_what_it_showed() {
    use crate::recommend::{Bestsellers, Pick, Product, Shelf};
    let product = |id: &str, category: &str| Product {
        id: id.into(),
        title: format!("Tea {id}"),
        url: Some(format!("https://tea.example/p/{id}")),
        image_url: None,
        price: Some(3200),
        currency: Some("CNY".into()),
        category: Some(category.into()),
        tags: vec![],
        in_stock: true,
        published: true,
    };
    let pick = |id: &str, category: &str, reason: &str| Pick {
        product: product(id, category),
        score: 1.0,
        reason: reason.into(),
        because: None,
    };
    let shelf = Shelf {
        picks: vec![pick("b", "tea", "because you bought Tea a"), pick("c", "ware", "because you bought Tea a")],
        bought_recently: vec![pick("a", "tea", "you bought it on 2025-02-01")],
        bestsellers: std::sync::Arc::new(Bestsellers::from_scopes([
            (String::new(), vec![pick("d", "tea", "a bestseller")]),
            ("tea".to_string(), vec![pick("a", "tea", "a bestseller in tea"), pick("d", "tea", "a bestseller in tea")]),
        ])),
        hidden: ["a".to_string()].into(),
    };
    let (catalog, diagnostics, _dir) = catalog(&[(
        "a.email.hbs",
        "---\nsubject: \"{{#each (recommend 1)}}{{title}}{{/each}} for you\"\n---\n{{#each (recommend 3 category=\"tea\")}}<a href=\"{{url}}\">{{title}}</a> {{money price currency}} ({{reason}})\n{{/each}}{{#each (bought_recently 1)}}Thanks for {{title}}{{/each}}\n",
    )]);
    assert!(diagnostics.is_empty(), "{:?}", summary(&diagnostics));
    let (rendered, shown) =
        catalog.render_shelved("a", Channel::Email, &context(serde_json::json!({})), &options(), &shelf).unwrap();
    let Rendered::Email { subject, html, .. } = rendered else { panic!("an email") };
    assert_eq!(subject, "Tea b for you");
    assert!(html.contains("<a href=\"https://t.example/c/23\">Tea b</a> ¥32.00 (because you bought Tea a)"), "{html}");
    assert!(html.contains("Tea d</a> ¥32.00 (a bestseller in tea)"), "{html}");
    assert!(!html.contains("Tea c"), "ware is not tea: {html}");
    assert!(html.contains("Thanks for Tea a"), "{html}");
    assert_eq!(shown, vec!["b", "d"]);
    // Without a shelf the block is empty, never a hole.
    let plain = catalog.render("a", Channel::Email, &context(serde_json::json!({})), &options()).unwrap();
    assert_eq!(plain.headline(), Some("for you"));
}
