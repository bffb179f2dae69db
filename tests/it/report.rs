//! Experiments and reports, end to end: assignment shares and stickiness, the same arms and
//! the same report on SQLite and PostgreSQL, the statistics against scipy's numbers, and
//! `tidings report` as a marketer runs it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tidings::assign;
use tidings::engine::Registry;
use tidings::member::Event;
use tidings::project::{Project, Sources};
use tidings::report::{self, Report};
use tidings::stats;
use tidings::store::Store;

use crate::shop::{Shop, at, event};

pub(crate) const HELLO_EMAIL: &str =
    "---\nsubject: \"Hello\"\n---\n<p>Hi {{default member.first_name \"friend\"}}.</p>\n";
pub(crate) const OFFER_EMAIL: &str = "---\nsubject: \"An offer\"\n---\n<p>{{vars.discount}}% off.</p>\n";

/// A three-arm split of whole paths, the first path an A/B test with a holdout.
pub(crate) const TRIAL: &str = r#"id: trial
name: Trial offer
trigger: { event: member.created }
entry: { reentry: always }
goal: { event: order.placed, within: 14d }
steps:
  - id: paths
    split:
      - { name: mail, weight: 50, goto: offer }
      - { name: later, weight: 30, goto: pause }
      - { name: none, weight: 20, goto: done }
  - id: offer
    send:
      channel: email
      variants:
        - { name: ten_off, weight: 45, template: t/offer, vars: { discount: 10 } }
        - { name: twenty_off, weight: 45, template: t/offer, vars: { discount: 20 } }
      holdout: 10
    next: done
  - id: pause
    wait: 1d
  - id: hello
    send: { channel: email, template: t/hello }
  - id: done
    exit: true
"#;

/// A shop with the trial journey and its templates, and an engine over `store` on it.
pub(crate) async fn trial_shop(store: Store, now: DateTime<Utc>) -> Shop {
    let templates = [("t/hello.email", HELLO_EMAIL), ("t/offer.email", OFFER_EMAIL)];
    Shop::with_templates(store, &[TRIAL], &templates, "", now).await
}

fn member_id(i: usize) -> String {
    format!("m{i:05}")
}

/// Members who join at `t0` (with email consent unless `i % 7 == 0`).
fn joins(count: usize, t0: DateTime<Utc>) -> Vec<Event> {
    (0..count)
        .map(|i| {
            let id = member_id(i);
            let member = json!({ "email": format!("{id}@example.com"), "email_consent": i % 7 != 0 });
            event(&format!("join-{id}"), &id, "member.created", t0, member)
        })
        .collect()
}

/// The arm each (member, step) holds in the store.
async fn stored_arms(store: &Store) -> BTreeMap<(String, String), String> {
    let rows: Vec<(String, String, String)> = match store {
        Store::Sqlite(pool) => sqlx::query_as("SELECT member_id, step, variant FROM assignments").fetch_all(pool).await,
        Store::Postgres(pool) => {
            sqlx::query_as("SELECT member_id, step, variant FROM assignments").fetch_all(pool).await
        }
        Store::Memory(_) => unreachable!("tests run on a file or PostgreSQL"),
    }
    .unwrap();
    rows.into_iter().map(|(m, s, v)| ((m, s), v)).collect()
}

/// The arm the pure assignment gives a member at a step with these arms.
fn pure_arm(member: &str, step: &str, arms: &[(&str, u32)]) -> String {
    let bucket = assign::bucket(member, "trial", step, "");
    match assign::pick(bucket, arms.iter().map(|(_, w)| *w)) {
        Some(i) => arms[i].0.to_string(),
        None => "holdout".to_string(),
    }
}

const PATHS: [(&str, u32); 3] = [("mail", 50), ("later", 30), ("none", 20)];
const OFFER: [(&str, u32); 2] = [("ten_off", 45), ("twenty_off", 45)];

#[test]
fn a_three_arm_split_over_100_000_members_gives_each_arm_its_weight_within_a_percentage_point() {
    let weights = [50u32, 30, 20];
    let shares = |run: u32| {
        let mut counts = [0u32; 3];
        for i in 0..100_000 {
            let arm = assign::pick(assign::bucket(&member_id(i), "trial", "paths", ""), weights).unwrap();
            counts[arm] += 1;
        }
        let _ = run;
        counts
    };
    let first = shares(1);
    assert_eq!(first, shares(2), "the same members land in the same arms every time");
    for (arm, weight) in weights.iter().enumerate() {
        let share = f64::from(first[arm]) / 100_000.0;
        assert!((share - f64::from(*weight) / 100.0).abs() < 0.01, "arm {arm}: {share} for weight {weight}");
    }
}

/// Runs 2,000 members through the trial journey; returns the stored arms and the report.
async fn trial(store: Store) -> (BTreeMap<(String, String), String>, Report, Shop) {
    let t0 = at("2026-03-02T02:00:00Z");
    let shop = trial_shop(store, t0).await;
    shop.happen(&joins(2_000, t0), t0).await;
    // A retried webhook and a second worker (a restart) change no one's arm.
    shop.happen(&joins(50, t0), t0).await;
    let day2 = t0 + Duration::days(2);
    shop.engine.settle(day2).await.unwrap();
    // Every third member orders on day 2.
    let orders: Vec<Event> = (0..2_000)
        .step_by(3)
        .map(|i| event(&format!("o-{i}"), &member_id(i), "order.placed", day2, json!({ "total": 1_000 + i as i64 })))
        .collect();
    shop.happen(&orders, day2).await;
    let arms = stored_arms(&shop.store).await;
    let report = report::load(&shop.store, "trial", None).await.unwrap().expect("the journey has runs");
    (arms, report, shop)
}

#[tokio::test]
async fn arms_through_the_real_engine_match_the_pure_assignment_and_agree_across_sqlite_and_postgresql() {
    let (pool, _dir) = crate::support::sqlite_pool().await;
    let (arms, report, shop) = trial(Store::Sqlite(pool)).await;

    let mut expected = BTreeMap::new();
    for i in 0..2_000 {
        let id = member_id(i);
        let path = pure_arm(&id, "paths", &PATHS);
        if path == "mail" {
            expected.insert((id.clone(), "offer".to_string()), pure_arm(&id, "offer", &OFFER));
        }
        expected.insert((id, "paths".to_string()), path);
    }
    assert_eq!(arms, expected, "every member holds the arm the pure assignment gives it");

    // The report counts them: entered per arm = the assignment's counts.
    let paths = report.experiments.iter().find(|e| e.step == "paths").unwrap();
    for arm in &paths.arms {
        let n = expected.iter().filter(|((_, s), a)| s == "paths" && **a == arm.arm).count() as u64;
        assert_eq!(arm.entered, n, "arm {}", arm.arm);
    }
    assert_eq!(report.totals.entered, 2_000, "the repeated joins enrolled no one twice");
    assert_eq!(report.totals.converted, 667);

    // A new version with other weights keeps everyone's arm (sticky), while the hash
    // would now put some members elsewhere.
    let changed = TRIAL
        .replace("weight: 50, goto: offer", "weight: 20, goto: offer")
        .replace("{ name: none, weight: 20, goto: done }", "{ name: none, weight: 50, goto: done }");
    std::fs::write(shop.dir.path().join("workflows/trial.yaml"), changed).unwrap();
    let sources = Sources::standard(&shop.dir.path().join("workflows"), &shop.dir.path().join("templates")).unwrap();
    let t3 = at("2026-03-05T02:00:00Z");
    let registry =
        Registry::load(Project::load(&sources, chrono_tz::Asia::Shanghai), &shop.store, chrono_tz::Asia::Shanghai, t3)
            .await
            .unwrap();
    shop.engine.reload(registry).await;
    // Everyone enters again (a new trigger event) under the new weights.
    let again: Vec<Event> =
        (0..2_000).map(|i| event(&format!("again-{i}"), &member_id(i), "member.created", t3, json!({}))).collect();
    shop.store.ingest_events(&again, t3, shop.engine.settings()).await.unwrap();
    shop.engine.settle(t3).await.unwrap();
    let moved_by_hash = (0..2_000)
        .filter(|i| {
            let id = member_id(*i);
            let new = [("mail", 20), ("later", 30), ("none", 50)];
            pure_arm(&id, "paths", &new) != expected[&(id.clone(), "paths".to_string())]
        })
        .count();
    assert!(moved_by_hash > 100, "the new weights would move {moved_by_hash} members");
    assert_eq!(stored_arms(&shop.store).await, arms, "but nobody's arm changed");
    let reentered = report::load(&shop.store, "trial", None).await.unwrap().unwrap();
    let paths = reentered.experiments.iter().find(|e| e.step == "paths").unwrap();
    let mail = paths.arms.iter().find(|a| a.arm == "mail").unwrap();
    assert_eq!(mail.entered, 2 * expected.iter().filter(|((_, s), a)| s == "paths" && *a == "mail").count() as u64);

    let Some(pool) = crate::support::postgres_pool("report_arms_agree").await else { return };
    let (pg_arms, pg_report, _) = trial(Store::Postgres(pool)).await;
    assert_eq!(pg_arms, arms, "PostgreSQL assigns exactly as SQLite");
    assert_eq!(
        serde_json::to_value(&pg_report).unwrap(),
        serde_json::to_value(&report).unwrap(),
        "and reports the same numbers"
    );
}

crate::engines::on_both_engines! {
    async fn the_report_counts_sends_skips_opens_and_conversions_per_step_and_arm(store) {
        let t0 = at("2026-03-02T02:00:00Z");
        let shop = trial_shop(store, t0).await;
        shop.happen(&joins(300, t0), t0).await;
        // Opens and clicks name the delivery, as the tracking routes record them.
        let sent: Vec<(i64, String)> = match &shop.store {
            Store::Sqlite(pool) => sqlx::query_as("SELECT id, member_id FROM deliveries WHERE step = 'offer' AND status = 'sent' ORDER BY id").fetch_all(pool).await,
            Store::Postgres(pool) => sqlx::query_as("SELECT id, member_id FROM deliveries WHERE step = 'offer' AND status = 'sent' ORDER BY id").fetch_all(pool).await,
            Store::Memory(_) => unreachable!("tests run on a file or PostgreSQL"),
        }.unwrap();
        let t1 = t0 + Duration::hours(1);
        let mut tracking = Vec::new();
        for (n, (delivery, member)) in sent.iter().enumerate() {
            if n % 2 == 0 {
                tracking.push(event(&format!("open-{delivery}"), member, "message.opened", t1, json!({ "delivery_id": delivery })));
            }
            if n % 4 == 0 {
                tracking.push(event(&format!("click-{delivery}"), member, "message.clicked", t1, json!({ "delivery_id": delivery.to_string() })));
            }
        }
        shop.happen(&tracking, t1).await;
        let day2 = t0 + Duration::days(2);
        shop.engine.settle(day2).await.unwrap();
        let orders: Vec<Event> = (0..300)
            .step_by(4)
            .map(|i| event(&format!("o-{i}"), &member_id(i), "order.placed", day2, json!({ "total": 2_500 })))
            .collect();
        shop.happen(&orders, day2).await;

        let report = report::load(&shop.store, "trial", None).await.unwrap().unwrap();
        let step = |id: &str| report.funnel.iter().find(|s| s.step == id).unwrap().clone();
        let members = |step: &str, arms: &[(&str, u32)], arm: &str| -> Vec<usize> {
            (0..300).filter(|i| {
                let id = member_id(*i);
                pure_arm(&id, "paths", &PATHS) == step && (arms.is_empty() || pure_arm(&id, "offer", arms) == arm)
            }).collect()
        };
        let mail = members("mail", &[], "");
        let later = members("later", &[], "");
        let consent = |list: &[usize]| list.iter().filter(|i| *i % 7 != 0).count() as u64;

        let offer = step("offer");
        let held_out = members("mail", &OFFER, "holdout");
        assert_eq!(offer.entered, Some(mail.len() as u64));
        assert_eq!(offer.skipped.get("holdout").copied().unwrap_or(0), held_out.len() as u64);
        let treated: Vec<usize> = mail.iter().copied().filter(|i| !held_out.contains(i)).collect();
        assert_eq!(offer.sent, consent(&treated), "members without consent are skipped, with the reason");
        assert_eq!(offer.skipped.get("consent").copied().unwrap_or(0), treated.len() as u64 - offer.sent);
        let hello = step("hello");
        assert_eq!((hello.entered, hello.sent), (Some(later.len() as u64), consent(&later)));
        assert_eq!(step("pause").entered, Some(later.len() as u64));

        let ordered = |list: &[usize]| list.iter().filter(|i| *i % 4 == 0).count() as u64;
        assert_eq!(report.totals.converted, 75);
        assert_eq!(report.totals.revenue, 75 * 2_500);
        // Last touch: the offer (or its holdout) for the mail path, hello for the later path,
        // nothing for the path without messages.
        let hello_touched: Vec<usize> = later.iter().copied().filter(|i| i % 7 != 0).collect();
        assert_eq!(offer.converted, ordered(&held_out) + ordered(&treated.iter().copied().filter(|i| i % 7 != 0).collect::<Vec<_>>()));
        assert_eq!(hello.converted, ordered(&hello_touched));
        assert_eq!(report.totals.unattributed, report.totals.converted - offer.converted - hello.converted);

        let experiment = report.experiments.iter().find(|e| e.step == "offer").unwrap();
        assert_eq!(experiment.control.as_deref(), Some("holdout"));
        for arm in &experiment.arms {
            let list = members("mail", &OFFER, &arm.arm);
            assert_eq!(arm.entered, list.len() as u64, "{}", arm.arm);
            assert_eq!(arm.converted, ordered(&list), "{}: conversions by assignment", arm.arm);
            assert_eq!(arm.revenue, arm.converted as i64 * 2_500);
            let rate = stats::Rate::of(arm.converted, arm.entered);
            assert_eq!(arm.conversion, rate);
            if arm.arm == "holdout" {
                assert!(arm.is_control && arm.prob_beats_control.is_none() && arm.sent == 0);
            } else {
                assert_eq!(arm.sent, consent(&list));
                let control = experiment.arms.iter().find(|a| a.is_control).unwrap();
                let p = stats::prob_beats(control.converted, control.entered, arm.converted, arm.entered);
                assert_eq!(arm.prob_beats_control, Some(p));
                assert_eq!(arm.uplift, Some(stats::uplift(rate.rate, control.conversion.rate)));
            }
        }
        let opened: u64 = experiment.arms.iter().map(|a| a.opened).sum();
        let clicked: u64 = experiment.arms.iter().map(|a| a.clicked).sum();
        assert_eq!((opened, clicked), (sent.len().div_ceil(2) as u64, sent.len().div_ceil(4) as u64));
    }
}

#[test]
fn wilson_intervals_and_beat_probabilities_match_scipy() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stats_reference.json"))
        .expect("tests/fixtures/stats_reference.json (python3 tests/fixtures/stats_reference.py)");
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["wilson_95"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let (k, n) = (case["successes"].as_u64().unwrap(), case["trials"].as_u64().unwrap());
        let (low, high) = stats::wilson(k, n, stats::Z_95);
        let (want_low, want_high) = (case["low"].as_f64().unwrap(), case["high"].as_f64().unwrap());
        assert!(
            (low - want_low).abs() < 1e-9 && (high - want_high).abs() < 1e-9,
            "{k}/{n}: ({low}, {high}) vs ({want_low}, {want_high})"
        );
    }
    let cases = fixture["prob_beats"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let get = |k: &str| case[k].as_u64().unwrap();
        let p = stats::prob_beats(get("a_conv"), get("a_n"), get("b_conv"), get("b_n"));
        let want = case["p_b_beats_a"].as_f64().unwrap();
        assert!((p - want).abs() < 1e-6, "{case}: {p} vs {want}");
    }
}

#[tokio::test]
async fn tidings_report_prints_the_funnel_and_the_experiments_as_a_table_and_as_json() {
    let (pool, dir) = crate::support::sqlite_pool().await;
    let t0 = at("2026-03-02T02:00:00Z");
    let shop = trial_shop(Store::Sqlite(pool), t0).await;
    shop.happen(&joins(60, t0), t0).await;
    let day2 = t0 + Duration::days(2);
    shop.engine.settle(day2).await.unwrap();
    let orders: Vec<Event> = (0..60)
        .step_by(3)
        .map(|i| event(&format!("o-{i}"), &member_id(i), "order.placed", day2, json!({ "total": 12_000 })))
        .collect();
    shop.happen(&orders, day2).await;
    let url = format!("sqlite://{}", dir.path().join("tidings.db").display());
    let run = |format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["report", "trial", "--database-url", &url, "--format", format])
            .current_dir(dir.path())
            .env_remove("TIDINGS_DATABASE_URL")
            .output()
            .unwrap()
    };
    let table = run("table");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    println!("{text}"); // the README's example (cargo test report::tidings_report -- --nocapture)
    for expected in [
        "journey trial — Trial offer",
        "funnel (conversions by last touch)",
        "experiment at step offer",
        "P(beats control)",
        "holdout",
    ] {
        assert!(text.contains(expected), "`{expected}` in:\n{text}");
    }
    let json = run("json");
    assert!(json.status.success());
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["totals"]["entered"], 60);
    assert_eq!(value["totals"]["converted"], 20);
    assert_eq!(value["totals"]["revenue"], 20 * 12_000);
    assert_eq!(value["funnel"].as_array().unwrap().len(), 5);

    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["report", "nope", "--database-url", &url])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
}
