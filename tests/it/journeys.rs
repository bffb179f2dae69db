//! The example journeys in `workflows/`, end to end on a virtual clock: the real files, the
//! real engine, members and events as the API stores them, and what lands in the outbox —
//! with every skip reason of DESIGN §5 produced and checked along the way (consent,
//! frequency_cap, quiet_hours, holdout, exit_when, reentry, audience).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::engines::on_both_engines;
use crate::shop::{Shop, at, event, joined};

/// A member the shop already had (stored as `member.updated`, so the welcome journey,
/// which starts on `member.created`, stays out of the way).
fn known(member: &str, at: DateTime<Utc>, properties: Value) -> tidings::member::Event {
    event(&format!("known-{member}"), member, "member.updated", at, properties)
}

/// The subjects of the emails in the outbox, in delivery order.
fn email_subjects(shop: &Shop) -> Vec<String> {
    use mailparse::MailHeaderMap as _;
    shop.outbox_of("email")
        .iter()
        .map(|f| {
            let eml = std::fs::read(f).unwrap();
            mailparse::parse_mail(&eml).unwrap().headers.get_first_value("Subject").unwrap()
        })
        .collect()
}

/// The JSON messages of a channel's outbox (SMS, push, webhook), in delivery order.
fn messages(shop: &Shop, channel: &str) -> Vec<Value> {
    shop.outbox_of(channel).iter().map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()).collect()
}

/// The outbox is listed by file name: sort by delivery id, not as text.
fn by_delivery(mut subjects: Vec<(i64, String)>) -> Vec<String> {
    subjects.sort();
    subjects.into_iter().map(|(_, s)| s).collect()
}

fn email_subjects_in_order(shop: &Shop) -> Vec<String> {
    let ids = shop.outbox_of("email").into_iter().map(|f| f.file_stem().unwrap().to_str().unwrap().parse().unwrap());
    by_delivery(ids.zip(email_subjects(shop)).collect())
}

/// An order the member placed at `at`, for `total` minor units.
fn ordered(member: &str, at: DateTime<Utc>, total: i64) -> tidings::member::Event {
    let id = format!("order-{member}-{}", at.timestamp());
    event(&id, member, "order.placed", at, json!({ "order_id": id, "total": total, "currency": "CNY" }))
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn ago(now: DateTime<Utc>, d: i64) -> String {
    (now - days(d)).to_rfc3339()
}

on_both_engines! {
    async fn welcome_greets_each_new_member_once_and_reminds_only_those_who_have_not_ordered(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = Shop::examples(store, "", t0).await;
        let consenting = |name: &str| json!({ "email": format!("{name}@example.com"), "email_consent": true, "first_name": name });
        shop.happen(
            &[
                joined("ada", t0, consenting("Ada")),
                joined("cai", t0, consenting("Cai")),
                joined("dev", t0, consenting("Dev")),
                joined("bob", t0, json!({ "email": "bob@example.com", "email_consent": false })),
            ],
            t0,
        )
        .await;
        assert_eq!(email_subjects(&shop).len(), 3, "bob never agreed to email");
        assert!(email_subjects(&shop).iter().all(|s| s.starts_with("Welcome to Example Shop") && s.ends_with("15% off your first order")));
        assert_eq!(shop.timeline("bob").await, ["welcome skip audience"]);

        // Ada is created again (a re-import with a new event id): `reentry: never`.
        let t1 = t0 + Duration::hours(1);
        shop.happen(&[event("again-ada", "ada", "member.created", t1, consenting("Ada"))], t1).await;
        // Ada orders during the wait; Dev withdraws email consent.
        let t2 = t0 + days(1);
        shop.happen(
            &[
                event("o-ada", "ada", "order.placed", t2, json!({ "order_id": "A1", "total": 12900 })),
                event("u-dev", "dev", "member.updated", t2, json!({ "email_consent": false })),
            ],
            t2,
        )
        .await;
        shop.at(t0 + days(3)).await;

        assert_eq!(
            shop.timeline("ada").await,
            [
                "welcome enter",
                "welcome send hello",
                "welcome wait pause",
                "welcome skip reentry",
                "welcome goal pause",
                "welcome exit done",
            ]
        );
        assert_eq!(shop.timeline("cai").await[3..], ["welcome send reminder", "welcome exit done"]);
        assert_eq!(shop.timeline("dev").await[3..], ["welcome exit pause audience"], "no longer in the audience");
        assert_eq!(
            email_subjects_in_order(&shop)[3..],
            ["Your 15% welcome code is still waiting"],
            "only Cai is reminded"
        );
    }

    async fn birthdays_arrive_at_nine_local_on_the_28th_in_common_years_and_the_push_waits_out_quiet_hours(store) {
        let t0 = at("2027-02-01T00:00:00Z");
        let shop = Shop::examples(store, "[policies.quiet_hours]\npush = \"21:00-09:30\"\n", t0).await;
        let mia = json!({
            "email": "mia@example.com", "email_consent": true, "push_consent": true, "push_tokens": ["tok-mia"],
            "first_name": "Mia", "timezone": "America/New_York", "birthday": "1992-02-29", "tier": "gold",
        });
        let leo = json!({
            "email": "leo@example.com", "email_consent": true, "push_consent": false, "push_tokens": ["tok-leo"],
            "first_name": "Leo", "birthday": "--03-08",
        });
        shop.happen(&[known("mia", t0, mia), known("leo", t0, leo)], t0).await;

        // 2027 is a common year: Mia's birthday is 28 February, 09:00 in New York (EST) = 14:00Z.
        for day in 1..27 {
            shop.at(t0 + days(day)).await;
        }
        shop.at(at("2027-02-28T13:59:00Z")).await;
        assert!(email_subjects(&shop).is_empty(), "not before 09:00 in New York");
        shop.at(at("2027-02-28T14:00:00Z")).await;
        assert_eq!(email_subjects(&shop), ["生日快乐, Mia! 1000 birthday points are waiting"], "the gold gift");
        assert!(messages(&shop, "push").is_empty(), "09:00 is inside the push quiet hours");
        shop.at(at("2027-02-28T14:30:00Z")).await;
        let push = messages(&shop, "push");
        assert_eq!(push.len(), 1, "the push goes out when quiet hours end at 09:30 New York time");
        assert_eq!((push[0]["to"].as_str(), push[0]["title"].as_str()), (Some("tok-mia"), Some("生日快乐, Mia! 🎂")));
        assert_eq!(
            shop.timeline("mia").await,
            [
                "birthday enter",
                "birthday send gift_gold",
                "birthday skip app quiet_hours",
                "birthday send app",
                "birthday exit done",
            ]
        );

        // Leo, in the shop's zone (Shanghai): 8 March 09:00 local = 01:00Z; no push consent.
        for day in 28..36 {
            shop.at(t0 + days(day)).await;
        }
        shop.at(at("2027-03-08T01:00:00Z")).await;
        assert_eq!(email_subjects(&shop).len(), 2);
        assert!(email_subjects(&shop).contains(&"生日快乐, Leo! 300 birthday points are waiting".to_string()));
        assert_eq!(
            shop.timeline("leo").await,
            ["birthday enter", "birthday send gift_member", "birthday skip app consent", "birthday exit done"]
        );
    }

    async fn reactivation_offers_dormant_members_a_coupon_keeps_a_holdout_and_respects_the_frequency_cap(store) {
        // 10:00 Shanghai = 02:00Z; the engine starts an hour before the schedule fires.
        let t0 = at("2026-06-01T01:00:00Z");
        let shop = Shop::examples(store, "[policies.frequency_caps]\nemail = \"1 per 1d\"\n", t0).await;
        let dormant = |i: usize| {
            json!({
                "email": format!("m{i}@example.com"), "email_consent": true, "first_name": format!("M{i}"),
                "joined_at": ago(t0, 400),
            })
        };
        let mut members = Vec::new();
        for i in 0..40 {
            let id = format!("m{i:02}");
            members.push(known(&id, t0, dormant(i)));
            members.push(ordered(&id, t0 - days(90), 15000));
        }
        members.push(known("active", t0, json!({ "email": "a@example.com", "email_consent": true })));
        members.push(ordered("active", t0 - days(5), 9900));
        shop.happen(&members, t0).await;
        // m00 moves up to gold at 09:30 local: the congratulation is today's one email.
        let t1 = t0 + Duration::minutes(30);
        shop.happen(&[event("tier-m00", "m00", "tier.changed", t1, json!({ "from": "silver", "to": "gold" }))], t1).await;
        assert_eq!(email_subjects(&shop), ["Congratulations, you are now a Gold member"]);

        shop.at(at("2026-06-01T02:00:00Z")).await;
        assert_eq!(shop.timeline("m00").await.iter().filter(|l| l.starts_with("reactivation")).collect::<Vec<_>>(),
            ["reactivation enter", "reactivation skip come_back frequency_cap", "reactivation exit done"]);
        assert!(shop.timeline("active").await.iter().all(|l| !l.starts_with("reactivation")), "not dormant");

        let mut holdout = 0;
        let mut variants = std::collections::BTreeMap::<String, usize>::new();
        for i in 1..40 {
            let member = format!("m{i:02}");
            let timeline = shop.timeline(&member).await;
            if timeline.contains(&"reactivation skip come_back holdout".to_string()) {
                holdout += 1;
            } else {
                assert_eq!(timeline[1], "reactivation send come_back", "{member}: {timeline:?}");
            }
        }
        for entry in shop.store.journal_of(None, 10_000).await.unwrap() {
            if entry.journey_id == "reactivation" && entry.action == "send" {
                *variants.entry(entry.variant.unwrap_or_default()).or_default() += 1;
            }
        }
        assert!((1..=10).contains(&holdout), "about 10% of 39 are held out, not {holdout}");
        assert_eq!(variants.values().sum::<usize>() + holdout, 39);
        assert_eq!(variants.keys().collect::<Vec<_>>(), ["offer_first", "personal"], "both subject lines are tested");
        // Each arm's subject line, personalised: as many of each as the arm sent.
        let subjects = email_subjects(&shop);
        let personal = subjects.iter().filter(|s| s.ends_with(", it has been a while — we saved you a seat")).count();
        let offer_first = subjects.iter().filter(|s| s.ends_with(", ¥30 off your next order is waiting")).count();
        assert_eq!((personal, offer_first), (variants["personal"], variants["offer_first"]));
        assert!(subjects.iter().any(|s| s.starts_with("M1, ") || s.starts_with("M2, ")), "first names: {subjects:?}");

        // The same firing seen again (a restart) enrolls no one twice.
        let sent = email_subjects(&shop).len();
        shop.at(at("2026-06-01T02:30:00Z")).await;
        assert_eq!(email_subjects(&shop).len(), sent);
    }

    async fn winback_nudges_by_sms_those_who_did_not_open_and_lets_buyers_go(store) {
        // Monday 1 June 2026, 10:00 Shanghai = 02:00Z.
        let t0 = at("2026-06-01T01:00:00Z");
        let shop = Shop::examples(store, "", t0).await;
        let churned = |phone: Option<&str>, sms: bool| {
            json!({
                "email": "x@example.com", "email_consent": true, "sms_consent": sms, "phone": phone,
                "joined_at": ago(t0, 900),
            })
        };
        let people = [("w1", Some("+8613800000001"), true), ("w2", Some("+8613800000002"), false), ("w3", Some("+8613800000003"), true)];
        let mut created = Vec::new();
        for (id, phone, sms) in people {
            created.push(known(id, t0, churned(phone, sms)));
            created.push(ordered(id, t0 - days(200), 12000));
        }
        shop.happen(&created, t0).await;
        shop.at(at("2026-06-01T02:00:00Z")).await;
        let mut offered = Vec::new();
        for (id, ..) in people {
            if shop.timeline(id).await.contains(&"winback send offer".to_string()) {
                offered.push(id);
            }
        }
        // w3 buys the next day: the journey lets go of a member who came back.
        let t1 = at("2026-06-02T03:00:00Z");
        shop.happen(&[event("o-w3", "w3", "order.placed", t1, json!({ "order_id": "W3", "total": 8800 }))], t1).await;
        shop.at(at("2026-06-04T02:00:00Z")).await;

        // The member ids decide the arms; these three all drew an offer (none is held out).
        assert_eq!(offered, ["w1", "w2", "w3"]);
        assert_eq!(shop.timeline("w1").await[2..], ["winback wait pause", "winback send nudge", "winback exit done"]);
        assert_eq!(shop.timeline("w2").await[2..], ["winback wait pause", "winback skip nudge consent", "winback exit done"]);
        assert_eq!(shop.timeline("w3").await[2..], ["winback wait pause", "winback goal pause", "winback exit pause exit_when"]);
        let sms = messages(&shop, "sms");
        assert_eq!(sms.len(), 1, "only w1 gets the nudge: w2 has no SMS consent, w3 bought");
        assert_eq!(sms[0]["to"], "+8613800000001");
    }

    async fn points_expiry_reminds_a_week_before_and_stops_when_the_points_are_spent(store) {
        let t0 = at("2026-07-01T00:00:00Z");
        let shop = Shop::examples(store, "", t0).await;
        // Points expire at midnight Shanghai time on 11 July (16:00Z on the 10th).
        let holder = |id: &str| {
            json!({
                "email": format!("{id}@example.com"), "email_consent": true, "push_consent": true,
                "push_tokens": [format!("tok-{id}")], "points": 800, "points_expiring": 500,
                "points_expire_at": "2026-07-10T16:00:00Z",
            })
        };
        shop.happen(&[known("pia", t0, holder("pia")), known("raj", t0, holder("raj"))], t0).await;
        for day in 1..4 {
            shop.at(t0 + days(day)).await;
        }
        shop.at(at("2026-07-04T01:59:00Z")).await;
        assert!(email_subjects(&shop).is_empty());
        // Seven days before the local expiry date, at 10:00 Shanghai.
        shop.at(at("2026-07-04T02:00:00Z")).await;
        assert_eq!(email_subjects(&shop), ["500 points expire on 2026-07-11"; 2]);
        let t1 = at("2026-07-06T05:00:00Z");
        shop.happen(&[event("r-raj", "raj", "points.redeemed", t1, json!({ "points": 500 }))], t1).await;
        for day in 6..11 {
            shop.at(t0 + days(day)).await;
        }
        shop.at(at("2026-07-10T02:00:00Z")).await;
        let push = messages(&shop, "push");
        assert_eq!(push.len(), 1, "only Pia still has points to lose");
        assert_eq!((push[0]["to"].as_str(), push[0]["title"].as_str()), (Some("tok-pia"), Some("Your points expire tomorrow")));
        assert_eq!(shop.timeline("raj").await[2..], ["points_expiry wait pause", "points_expiry goal pause", "points_expiry exit pause exit_when"]);
    }

    async fn tier_upgrades_are_congratulated_and_diamonds_reach_the_concierge(store) {
        let t0 = at("2026-05-01T02:00:00Z");
        let shop = Shop::examples(store, "", t0).await;
        let member = |id: &str| json!({ "email": format!("{id}@example.com"), "email_consent": true, "first_name": id });
        shop.happen(&[known("gus", t0, member("Gus")), known("dia", t0, member("Dia")), known("sil", t0, member("Sil"))], t0).await;
        let welcomes = email_subjects(&shop).len();
        let t1 = t0 + Duration::hours(2);
        shop.happen(
            &[
                event("t-gus", "gus", "tier.changed", t1, json!({ "from": "silver", "to": "gold" })),
                event("t-dia", "dia", "tier.changed", t1, json!({ "from": "gold", "to": "diamond" })),
                event("t-sil", "sil", "tier.changed", t1, json!({ "from": null, "to": "silver" })),
            ],
            t1,
        )
        .await;
        let subjects = email_subjects(&shop);
        assert_eq!(subjects.len(), welcomes + 2, "silver is not an upgrade this journey congratulates");
        assert!(subjects.contains(&"Congratulations, you are now a Gold member".to_string()));
        assert!(subjects.contains(&"Congratulations, you are now a Diamond member".to_string()));
        let concierge = messages(&shop, "webhook");
        assert_eq!(concierge.len(), 1, "only the diamond reaches the concierge");
        assert_eq!(concierge[0]["member_id"], "dia");
        for id in ["gus", "dia"] {
            let tags = shop.store.member(id).await.unwrap().unwrap().tags;
            assert!(tags.contains(&"tier_upgraded".to_string()), "{id}: {tags:?}");
        }
        assert!(shop.timeline("sil").await.iter().all(|l| !l.starts_with("tier_upgrade")));
    }
}
