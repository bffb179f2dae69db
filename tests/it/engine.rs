//! The engine, end to end on a virtual clock: journeys and templates written to a folder,
//! events stored as the API stores them, `Engine::settle(now)` instead of sleeping, and
//! what a marketer would check — the outbox, the deliveries with their skip reasons, the
//! timeline — on SQLite and PostgreSQL.

use std::path::Path;

use serde_json::json;
use tidings::engine::Registry;
use tidings::links::LinkKind;
use tidings::project::{Project, Sources};

use crate::engines::on_both_engines;
use crate::shop::{Shop, at, event, joined, load_engine, signed_links, write};

pub(crate) const WELCOME: &str = r#"id: welcome
name: Welcome
trigger: { event: member.created }
audience: email_consent
goal: { event: order.placed, within: 14d }
steps:
  - id: hello
    send: { channel: email, template: t/hello }
  - id: pause
    wait: 3d
  - id: ordered
    branch:
      - { if: "order_count > 0", goto: done }
      - { else: reminder }
  - id: reminder
    send: { channel: email, template: t/reminder }
  - id: done
    exit: true
"#;

on_both_engines! {
    async fn the_email_a_member_gets_carries_signed_unsubscribe_click_and_open_links(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::new(store, &[WELCOME], "", t0).await;
        let ada = json!({ "email": "ada@example.com", "email_consent": true, "first_name": "Ada" });
        shop.happen(&[joined("ada", t0, ada)], t0).await;
        let eml = std::fs::read(&shop.outbox()[0]).unwrap();
        let mail = mailparse::parse_mail(&eml).unwrap();
        let html = mail.subparts.iter().find(|p| p.ctype.mimetype == "text/html").unwrap().get_body().unwrap();
        use mailparse::MailHeaderMap as _;
        let list_unsubscribe = mail.headers.get_first_value("List-Unsubscribe").unwrap();

        let unsubscribe = signed_links(&list_unsubscribe, LinkKind::Unsubscribe);
        assert_eq!(unsubscribe.len(), 1, "List-Unsubscribe: {list_unsubscribe}");
        assert_eq!(unsubscribe[0].member_id, "ada");
        let delivery = unsubscribe[0].delivery_id;
        assert_eq!(signed_links(&html, LinkKind::Unsubscribe), unsubscribe, "the footer link is the header's");
        let clicks = signed_links(&html, LinkKind::Click);
        assert_eq!(clicks.len(), 1, "{html}");
        assert_eq!(clicks[0].url.as_deref(), Some("https://tea.example/rewards"));
        assert_eq!(clicks[0].delivery_id, delivery);
        let opens = signed_links(&html, LinkKind::Open);
        assert_eq!(opens.len(), 1, "one open pixel: {html}");
        assert_eq!((opens[0].delivery_id, opens[0].member_id.as_str()), (delivery, "ada"));
    }

    async fn a_new_member_gets_the_welcome_email_once_and_the_reminder_three_days_later(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::new(store, &[WELCOME], "", t0).await;
        let ada = json!({ "email": "ada@example.com", "email_consent": true, "first_name": "Ada" });
        shop.happen(&[joined("ada", t0, ada.clone())], t0).await;
        assert_eq!(shop.outbox().len(), 1, "the welcome email went out");
        let mail = std::fs::read_to_string(&shop.outbox()[0]).unwrap();
        assert!(mail.contains("Hello Ada"), "{mail}");

        // The same event again (a retried webhook) changes nothing.
        shop.happen(&[joined("ada", t0, ada)], t0).await;
        assert_eq!(shop.outbox().len(), 1);

        shop.at(t0 + chrono::Duration::days(3) - chrono::Duration::seconds(1)).await;
        assert_eq!(shop.outbox().len(), 1, "nothing before the wait is over");
        shop.at(t0 + chrono::Duration::days(3)).await;
        assert_eq!(shop.outbox().len(), 2, "the reminder went out");
        assert_eq!(
            shop.deliveries("ada").await,
            vec![
                ("welcome".into(), "hello".into(), "sent".into(), None),
                ("welcome".into(), "reminder".into(), "sent".into(), None),
            ]
        );
        assert_eq!(
            shop.timeline("ada").await,
            ["welcome enter", "welcome send hello", "welcome wait pause", "welcome send reminder", "welcome exit done"]
        );
    }

    async fn a_member_who_ordered_during_the_wait_skips_the_reminder_and_converts(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::new(store, &[WELCOME], "", t0).await;
        let bo = json!({ "email": "bo@example.com", "email_consent": true });
        shop.happen(&[joined("bo", t0, bo)], t0).await;
        let day1 = t0 + chrono::Duration::days(1);
        shop.happen(&[event("o1", "bo", "order.placed", day1, json!({ "total": 12_000, "currency": "CNY" }))], day1).await;
        shop.at(t0 + chrono::Duration::days(3)).await;
        assert_eq!(shop.outbox().len(), 1, "only the welcome email");
        let runs = shop.store.runs_of("bo", 10).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "done");
        assert_eq!(runs[0].converted_at, Some(day1), "the order is the journey's goal");
        assert!(shop.timeline("bo").await.contains(&"welcome goal pause".to_string()));
    }

    async fn a_member_without_consent_never_enters_and_one_who_withdrew_it_is_skipped_with_the_reason(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let journey = r#"id: nudge
name: Nudge
trigger: { event: cart.abandoned }
steps:
  - id: mail
    send: { channel: email, template: t/hello }
"#;
        let shop = Shop::new(store, &[WELCOME, journey], "", t0).await;
        shop.happen(&[joined("cy", t0, json!({ "email": "cy@example.com", "email_consent": false }))], t0).await;
        assert!(shop.store.runs_of("cy", 10).await.unwrap().iter().all(|r| r.journey_id != "welcome"), "audience: email_consent");
        shop.happen(&[event("cart1", "cy", "cart.abandoned", t0, json!({}))], t0).await;
        assert_eq!(shop.deliveries("cy").await, vec![("nudge".into(), "mail".into(), "skipped".into(), Some("consent".into()))]);
        assert!(shop.outbox().is_empty());
    }

    async fn an_sms_due_in_quiet_hours_waits_until_they_end_in_the_members_time_zone(store) {
        // 22:30 in New York (03:30 UTC): quiet until 09:00 New York time (14:00 UTC).
        let t0 = at("2026-03-03T03:30:00Z");
        let journey = r#"id: points
name: Points
trigger: { event: points.earned }
steps:
  - id: ping
    send: { channel: sms, template: t/ping }
"#;
        let config = "[policies.quiet_hours]\nsms = \"21:00-09:00\"\n";
        let shop = Shop::new(store, &[journey], config, t0).await;
        let member = json!({ "phone": "+12125550100", "sms_consent": true, "timezone": "America/New_York" });
        shop.happen(&[joined("dee", t0, member), event("p1", "dee", "points.earned", t0, json!({ "points": 50 }))], t0).await;
        assert!(shop.outbox().is_empty(), "not during quiet hours");
        shop.at(at("2026-03-03T13:59:59Z")).await;
        assert!(shop.outbox().is_empty());
        shop.at(at("2026-03-03T14:00:00Z")).await;
        assert_eq!(shop.outbox().len(), 1, "sent when quiet hours end, 09:00 in New York");
        assert_eq!(shop.timeline("dee").await, ["points enter", "points skip ping quiet_hours", "points send ping", "points exit"]);
    }

    async fn the_frequency_cap_counts_sends_across_journeys_and_transactional_journeys_bypass_it(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let a = "id: a\nname: A\ntrigger: { event: cart.abandoned }\nsteps:\n  - id: m\n    send: { channel: email, template: t/hello }\n";
        let b = "id: b\nname: B\ntrigger: { event: referral.completed }\nsteps:\n  - id: m\n    send: { channel: email, template: t/hello }\n";
        let c = "id: c\nname: C\npriority: transactional\ntrigger: { event: order.shipped }\nsteps:\n  - id: m\n    send: { channel: email, template: t/hello }\n";
        let shop = Shop::new(store, &[a, b, c], "[policies.frequency_caps]\nemail = \"1 per 7d\"\n", t0).await;
        shop.happen(&[joined("eve", t0, json!({ "email": "eve@example.com", "email_consent": true }))], t0).await;
        shop.happen(&[event("e1", "eve", "cart.abandoned", t0, json!({}))], t0).await;
        let t1 = t0 + chrono::Duration::hours(1);
        shop.happen(&[event("e2", "eve", "referral.completed", t1, json!({}))], t1).await;
        shop.happen(&[event("e3", "eve", "order.shipped", t1, json!({}))], t1).await;
        let mut got = shop.deliveries("eve").await;
        got.sort();
        assert_eq!(
            got,
            vec![
                ("a".into(), "m".into(), "sent".into(), None),
                ("b".into(), "m".into(), "skipped".into(), Some("frequency_cap".into())),
                ("c".into(), "m".into(), "sent".into(), None),
            ]
        );
    }

    async fn exit_when_an_event_arrives_ends_the_run_before_its_next_send(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let journey = r#"id: cart
name: Cart
trigger: { event: cart.abandoned }
exit_when: event order.placed
steps:
  - id: pause
    wait: 1h
  - id: mail
    send: { channel: email, template: t/hello }
"#;
        let shop = Shop::new(store, &[journey], "", t0).await;
        let member = json!({ "email": "fay@example.com", "email_consent": true });
        shop.happen(&[joined("fay", t0, member), event("c1", "fay", "cart.abandoned", t0, json!({}))], t0).await;
        let t1 = t0 + chrono::Duration::minutes(30);
        shop.happen(&[event("o1", "fay", "order.placed", t1, json!({ "total": 100 }))], t1).await;
        shop.at(t0 + chrono::Duration::hours(2)).await;
        assert!(shop.outbox().is_empty());
        let runs = shop.store.runs_of("fay", 10).await.unwrap();
        assert_eq!((runs[0].status.as_str(), runs[0].exit_reason.as_deref()), ("exited", Some("exit_when")));
    }

    async fn a_wait_for_an_event_takes_the_event_path_or_the_timeout_path(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let journey = r#"id: review
name: Review
trigger: { event: order.placed }
entry: { reentry: always }
steps:
  - id: wait_review
    wait: { for_event: review.posted, timeout: 2d, on_event: thanks, on_timeout: ask }
  - id: ask
    send: { channel: sms, template: t/ping }
    next: done
  - id: thanks
    send: { channel: email, template: t/hello }
  - id: done
    exit: true
"#;
        let shop = Shop::new(store, &[journey], "", t0).await;
        for m in ["gil", "hal"] {
            let member = json!({ "email": format!("{m}@example.com"), "email_consent": true, "phone": "+8613800000000", "sms_consent": true });
            shop.happen(&[joined(m, t0, member), event(&format!("o-{m}"), m, "order.placed", t0, json!({ "total": 100 }))], t0).await;
        }
        let t1 = t0 + chrono::Duration::days(1);
        shop.happen(&[event("r1", "gil", "review.posted", t1, json!({}))], t1).await;
        shop.at(t0 + chrono::Duration::days(2)).await;
        assert_eq!(shop.deliveries("gil").await, vec![("review".into(), "thanks".into(), "sent".into(), None)]);
        assert_eq!(shop.deliveries("hal").await, vec![("review".into(), "ask".into(), "sent".into(), None)]);
    }

    async fn a_schedule_enrolls_its_audience_once_even_when_two_workers_fire_it(store) {
        let t0 = at("2026-03-02T01:00:00Z"); // 09:00 in Shanghai
        let journey = r#"id: digest
name: Digest
trigger: { schedule: "0 10 * * *", timezone: Asia/Shanghai }
audience: email_consent and tier == "gold"
steps:
  - id: mail
    send: { channel: email, template: t/hello }
"#;
        let shop = Shop::new(store.clone(), &[journey], "", t0).await;
        let second = load_engine(shop.dir.path(), store, t0).await;
        for (id, tier) in [("ivy", "gold"), ("jon", "silver"), ("kim", "gold")] {
            let member = json!({ "email": format!("{id}@example.com"), "email_consent": true, "tier": tier });
            shop.happen(&[joined(id, t0, member)], t0).await;
        }
        let ten = at("2026-03-02T02:00:00Z");
        // Both workers look at 10:00; whichever holds the scheduler lease fires.
        let (a, b) = tokio::join!(shop.engine.settle(ten), second.settle(ten));
        assert_eq!(a.unwrap().enrolled + b.unwrap().enrolled, 2);
        shop.at(ten).await;
        second.settle(ten + chrono::Duration::minutes(1)).await.unwrap();
        assert_eq!(shop.outbox().len(), 2, "ivy and kim, once each");
        // The next day's firing enrolls nobody again (reentry: never).
        shop.at(ten + chrono::Duration::days(1)).await;
        assert_eq!(shop.outbox().len(), 2);
    }

    async fn a_birthday_on_29_february_is_celebrated_on_28_february_in_a_common_year(store) {
        let journey = r#"id: birthday
name: Birthday
trigger: { date: birthday, at: "09:00" }
steps:
  - id: gift
    send: { channel: email, template: t/hello }
"#;
        let t0 = at("2027-02-27T00:00:00Z");
        let shop = Shop::new(store, &[journey], "", t0).await;
        let leap = json!({ "email": "leo@example.com", "email_consent": true, "birthday": "--02-29", "timezone": "Europe/London" });
        shop.happen(&[joined("leo", t0, leap)], t0).await;
        shop.at(at("2027-02-28T08:59:00Z")).await;
        assert!(shop.outbox().is_empty());
        shop.at(at("2027-02-28T09:00:00Z")).await;
        assert_eq!(shop.outbox().len(), 1, "09:00 London time on 28 February 2027");
        shop.at(at("2027-03-01T12:00:00Z")).await;
        assert_eq!(shop.outbox().len(), 1, "once");
    }

    async fn a_run_stays_on_the_version_it_entered_when_the_journey_changes(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::new(store.clone(), &[WELCOME], "", t0).await;
        shop.happen(&[joined("max", t0, json!({ "email": "max@example.com", "email_consent": true }))], t0).await;
        // The marketer drops the reminder; max is waiting in `pause` on the old version.
        let changed = WELCOME.replace("      - { else: reminder }\n  - id: reminder\n    send: { channel: email, template: t/reminder }\n", "      - { else: done }\n");
        write(&shop.dir.path().join("workflows/welcome.yaml"), &changed);
        shop.engine.reload(Registry::load(reload(shop.dir.path()), &shop.store, chrono_tz::Asia::Shanghai, t0).await.unwrap()).await;
        shop.happen(&[joined("nia", t0, json!({ "email": "nia@example.com", "email_consent": true }))], t0).await;
        shop.at(t0 + chrono::Duration::days(3)).await;
        assert_eq!(shop.deliveries("max").await.len(), 2, "the old version still sends the reminder");
        assert_eq!(shop.deliveries("nia").await.len(), 1, "the new version has no reminder");
    }
}

fn reload(dir: &Path) -> Project {
    let sources = Sources::standard(&dir.join("workflows"), &dir.join("templates")).unwrap();
    Project::load(&sources, chrono_tz::Asia::Shanghai)
}
