//! `tidings simulate`: a golden timeline for every example journey, reviewed by hand, and
//! proof that `simulate` decides what `serve` decides.
//!
//! Each golden runs the fixtures in `tests/fixtures/simulate/NAME/` (members as of
//! `--from`, events as they happen) through the real journeys of `workflows/` and compares
//! the timeline with `tests/golden/NAME.txt` (the table a marketer reads) and
//! `tests/golden/NAME.jsonl` (`--format json`). After an intended change, rewrite them with
//! `UPDATE_GOLDEN=1 cargo test --test it simulate` and review the diff like code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tidings::config::Config;
use tidings::project::{Project, Sources};
use tidings::simulate::{self, Scenario, Timeline};

use crate::engines::on_both_engines;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/simulate")
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn config() -> Config {
    Config::load(&fixtures().join("tidings.toml"), true, |_| None).unwrap()
}

/// The example journeys named (all of them when empty), with the example templates.
fn project(journeys: &[&str], config: &Config) -> Project {
    let workflows = root().join("workflows");
    let mut sources = Sources::standard(&workflows, &root().join("templates")).unwrap();
    if !journeys.is_empty() {
        sources.journeys = journeys.iter().map(|j| workflows.join(format!("{j}.yaml"))).collect();
    }
    let project = Project::load(&sources, config.timezone());
    let problems: Vec<String> = project.diagnostics.iter().map(|d| d.render_short()).collect();
    assert!(problems.is_empty(), "the example journeys have problems: {problems:#?}");
    project
}

fn scenario(name: &str, from: &str, until: &str) -> Scenario {
    let dir = fixtures().join(name);
    let events = dir.join("events.jsonl");
    Scenario {
        members: dir.join("members.jsonl"),
        events: events.exists().then_some(events),
        products: Some(dir.join("products.jsonl")).filter(|p| p.exists()),
        from: at(from),
        until: at(until),
    }
}

async fn simulate(name: &str, journeys: &[&str], from: &str, until: &str) -> Timeline {
    let config = config();
    simulate::run(&config, project(journeys, &config), &scenario(name, from, until)).await.unwrap()
}

/// Compares `actual` with the golden file; `UPDATE_GOLDEN=1` rewrites it instead.
fn golden(file: &str, actual: &str) {
    let path = root().join("tests/golden").join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no golden file {}: run `UPDATE_GOLDEN=1 cargo test --test it simulate` and review it", path.display())
    });
    if expected != actual {
        panic!(
            "the timeline differs from {} (- golden, + now); if the change is intended, rewrite it with \
             UPDATE_GOLDEN=1 and review the diff:\n{}",
            path.display(),
            diff(&expected, actual)
        );
    }
}

/// A line diff (longest common subsequence): `-` lines only in `old`, `+` only in `new`.
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

async fn check(name: &str, journeys: &[&str], from: &str, until: &str) -> Timeline {
    let timeline = simulate(name, journeys, from, until).await;
    golden(&format!("{name}.txt"), &timeline.render_table());
    golden(&format!("{name}.jsonl"), &timeline.render_json_lines());
    assert_eq!(timeline.failed, 0, "every message renders");
    timeline
}

/// (member, step, action, reason) of a timeline, to state what matters in each golden.
fn lines(t: &Timeline) -> Vec<(String, String, String, String, String)> {
    t.lines
        .iter()
        .map(|l| {
            (
                l.local_time(),
                l.member.clone(),
                l.step.clone().unwrap_or_default(),
                l.action.clone(),
                l.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn has(t: &Timeline, local: &str, member: &str, step: &str, action: &str, reason: &str) -> bool {
    lines(t).contains(&(local.into(), member.into(), step.into(), action.into(), reason.into()))
}

#[tokio::test]
async fn birthdays_fire_at_nine_local_across_dst_and_29_february_falls_on_28_february_in_common_years() {
    let t = check("birthday", &["birthday"], "2026-12-31T16:00:00Z", "2028-03-31T15:59:59Z").await;
    // 29 February: 28 February in 2027, the day itself in 2028.
    assert!(has(&t, "2027-02-28 09:00 GMT", "leo", "gift_gold", "send", ""));
    assert!(has(&t, "2028-02-29 09:00 GMT", "leo", "gift_gold", "send", ""));
    // New York: the day clocks go forward (09:00 EDT) and the day they go back (09:00 EST).
    assert!(has(&t, "2027-03-14 09:00 EDT", "ana", "gift_diamond", "send", ""));
    assert!(has(&t, "2027-11-07 09:00 EST", "ben", "gift_member", "send", ""));
    assert!(has(&t, "2027-11-07 09:00 EST", "ben", "app", "skip", "consent"));
    assert!(has(&t, "2027-01-20 09:00 CST", "mei", "app", "skip", "no_address"));
}

#[tokio::test]
async fn welcome_sends_the_reminder_three_days_later_only_to_members_who_did_not_order() {
    let t = check("welcome", &["welcome"], "2026-03-01T16:00:00Z", "2026-03-10T15:59:59Z").await;
    assert!(has(&t, "2026-03-05 09:15 CST", "ada", "reminder", "send", ""));
    assert!(
        has(&t, "2026-03-03 12:30 CST", "bo", "", "goal", "")
            || has(&t, "2026-03-03 12:30 CST", "bo", "pause", "goal", "")
    );
    assert!(!t.lines.iter().any(|l| l.member == "bo" && l.step.as_deref() == Some("reminder")));
    let cy: Vec<_> =
        t.lines.iter().filter(|l| l.member == "cy").map(|l| (l.action.as_str(), l.reason.as_deref())).collect();
    assert_eq!(cy, [("skip", Some("audience"))], "no email consent: not in the audience, and the timeline says so");
}

#[tokio::test]
async fn reactivation_splits_dormant_members_between_subject_lines_and_holds_one_out() {
    let t = check("reactivation", &["reactivation"], "2026-05-31T16:00:00Z", "2026-06-20T15:59:59Z").await;
    assert!(has(&t, "2026-06-01 10:00 CST", "bo", "come_back", "skip", "holdout"));
    let variants: BTreeSet<_> =
        t.lines.iter().filter(|l| l.action == "send").filter_map(|l| l.variant.clone()).collect();
    assert_eq!(variants, BTreeSet::from(["offer_first".to_string(), "personal".to_string()]));
    assert!(has(&t, "2026-06-05 19:00 CST", "gil", "", "goal", ""));
    assert!(!t.lines.iter().any(|l| l.member == "dee" || l.member == "eve"), "no consent / not dormant");
    assert_eq!(t.lines.iter().filter(|l| l.action == "enter").count(), 4, "once each: reentry after 90d");
}

#[tokio::test]
async fn winback_nudges_by_sms_those_who_did_not_open_and_stops_for_those_who_ordered() {
    let t = check("winback", &["winback"], "2026-05-31T16:00:00Z", "2026-06-10T15:59:59Z").await;
    assert!(has(&t, "2026-06-01 10:00 CST", "finn", "offer", "skip", "holdout"));
    assert!(has(&t, "2026-06-02 20:30 CST", "bo", "pause", "exit", "exit_when"));
    assert!(has(&t, "2026-06-04 10:00 CST", "ada", "nudge", "send", ""));
    assert!(has(&t, "2026-06-04 10:00 CST", "cy", "nudge", "skip", "consent"));
}

#[tokio::test]
async fn an_sms_due_in_quiet_hours_is_deferred_to_nine_local_then_sent() {
    let t = check("quiet_hours", &["winback"], "2026-05-31T16:00:00Z", "2026-06-06T15:59:59Z").await;
    assert!(has(&t, "2026-06-04 10:00 CST", "ada", "nudge", "send", ""));
    assert!(has(&t, "2026-06-03 22:00 EDT", "nia", "nudge", "skip", "quiet_hours"));
    assert!(has(&t, "2026-06-04 09:00 EDT", "nia", "nudge", "send", ""));
    assert!(has(&t, "2026-06-04 03:00 BST", "lou", "nudge", "skip", "quiet_hours"));
    assert!(has(&t, "2026-06-04 09:00 BST", "lou", "nudge", "send", ""));
}

#[tokio::test]
async fn points_expiry_reminds_a_week_before_and_calls_last_only_if_points_are_unspent() {
    let t = check("points_expiry", &["points_expiry"], "2026-06-14T16:00:00Z", "2026-07-05T15:59:59Z").await;
    assert!(has(&t, "2026-06-23 10:00 CST", "pat", "reminder", "send", ""));
    assert!(has(&t, "2026-06-29 10:00 CST", "pat", "last_call", "send", ""));
    assert!(has(&t, "2026-06-25 12:00 CST", "quinn", "pause", "exit", "exit_when"));
    assert!(has(&t, "2026-06-26 10:00 BST", "sam", "reminder", "send", ""));
    assert!(has(&t, "2026-07-02 10:00 BST", "sam", "last_call", "skip", "consent"));
    assert!(!t.lines.iter().any(|l| l.member == "ray"), "no points expiring");
}

#[tokio::test]
async fn tier_upgrades_to_gold_and_diamond_are_congratulated_and_diamonds_reach_the_concierge() {
    let t = check("tier_upgrade", &["tier_upgrade"], "2026-04-30T16:00:00Z", "2026-05-10T15:59:59Z").await;
    assert!(has(&t, "2026-05-02 15:00 CST", "tom", "congrats", "send", ""));
    assert!(has(&t, "2026-05-03 11:00 CST", "uma", "concierge", "send", ""));
    assert!(!t.lines.iter().any(|l| l.member == "tom" && l.step.as_deref() == Some("concierge")));
    assert!(!t.lines.iter().any(|l| l.member == "vic"), "a downgrade is not an upgrade");
}

#[tokio::test]
async fn the_fourth_email_in_seven_days_is_skipped_by_the_frequency_cap_across_journeys() {
    let t = check("frequency_caps", &[], "2026-03-01T16:00:00Z", "2026-03-12T15:59:59Z").await;
    assert!(has(&t, "2026-03-06 09:00 CST", "fay", "gift_gold", "skip", "frequency_cap"));
    assert!(has(&t, "2026-03-06 09:00 CST", "fay", "app", "send", ""), "push has no cap");
    let emails = t.lines.iter().filter(|l| l.action == "send" && l.channel.as_deref() == Some("email")).count();
    assert_eq!(emails, 3);
}

#[test]
fn the_golden_diff_shows_what_changed() {
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
}

/// The engine as `serve` builds it (`service::engine`: config, registry, policies, the
/// outbox channel), members imported as `tidings import` does, events stored as the API
/// stores them, and a wall clock that ticks every 15 minutes (the fixtures' instants are
/// all on quarter hours) — against `simulate`'s jumping clock.
async fn serve_deliveries(
    store: tidings::store::Store,
    name: &str,
    from: &str,
    until: &str,
) -> BTreeSet<(String, String, String, String, String, DateTime<Utc>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.workflows_dir = root().join("workflows");
    config.templates_dir = root().join("templates");
    let engine = tidings::service::engine(
        &config,
        store.clone(),
        tidings::channels::Channels::outbox(dir.path().into()),
        crate::support::link_signer(),
    )
    .await
    .unwrap();
    let scenario = scenario(name, from, until);
    let options = tidings::import::Options::new(scenario.from, config.state_settings());
    tidings::import::import_file(&store, tidings::import::ImportKind::Members, &scenario.members, &options)
        .await
        .unwrap();
    let events = scenario.events.as_deref().map(|p| simulate::read_events(p).unwrap()).unwrap_or_default();
    let mut members: BTreeSet<String> = events.iter().map(|e| e.member_id.clone()).collect();
    let text = std::fs::read_to_string(&scenario.members).unwrap();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        members.insert(value["id"].as_str().unwrap().to_string());
    }
    let (mut now, mut next) = (scenario.from, 0);
    while now <= scenario.until {
        let due: Vec<_> = events[next..].iter().take_while(|e| e.occurred_at <= now).cloned().collect();
        next += due.len();
        if !due.is_empty() {
            store.ingest_events(&due, now, engine.settings()).await.unwrap();
        }
        engine.settle(now).await.unwrap();
        now += chrono::Duration::minutes(15);
    }
    let mut out = BTreeSet::new();
    for member in members {
        for d in store.deliveries_of(&member, 1_000).await.unwrap() {
            if d.status == "sent" {
                out.insert((
                    member.clone(),
                    d.journey_id,
                    d.step,
                    d.channel,
                    d.template.unwrap_or_default(),
                    d.sent_at.unwrap(),
                ));
            }
        }
    }
    out
}

fn simulated_deliveries(t: &Timeline) -> BTreeSet<(String, String, String, String, String, DateTime<Utc>)> {
    t.lines
        .iter()
        .filter(|l| l.action == "send" && l.reason.is_none())
        .map(|l| {
            (
                l.member.clone(),
                l.journey.clone(),
                l.step.clone().unwrap_or_default(),
                l.channel.clone().unwrap_or_default(),
                l.template.clone().unwrap_or_default(),
                l.at,
            )
        })
        .collect()
}

on_both_engines! {
    async fn simulate_and_serve_send_the_same_messages_at_the_same_times(store) {
        // Every example journey at once: welcome, a tier upgrade, a birthday, the cap.
        let (from, until) = ("2026-03-01T16:00:00Z", "2026-03-12T15:59:59Z");
        let simulated = simulate("frequency_caps", &[], from, until).await;
        let served = serve_deliveries(store, "frequency_caps", from, until).await;
        assert_eq!(served.len(), 4, "{served:#?}");
        assert_eq!(simulated_deliveries(&simulated), served);
    }

    async fn simulate_and_serve_agree_on_quiet_hours_holdouts_and_exits(store) {
        // Churned members in three time zones, one who orders: winback with every journey loaded.
        let (from, until) = ("2026-05-31T16:00:00Z", "2026-06-06T15:59:59Z");
        let simulated = simulate("agreement", &[], from, until).await;
        let served = serve_deliveries(store, "agreement", from, until).await;
        assert_eq!(served.len(), 9, "{served:#?}");
        assert_eq!(simulated_deliveries(&simulated), served);
    }
}

fn tidings(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .current_dir(root())
        .env_remove("TIDINGS_CONFIG")
        .env_remove("TIDINGS_LOG")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_command_prints_the_golden_timeline_with_every_journey_loaded() {
    let (code, out, err) = tidings(&[
        "simulate",
        "--config",
        "tests/fixtures/simulate/tidings.toml",
        "--workflows",
        "workflows",
        "--templates",
        "templates",
        "--members",
        "tests/fixtures/simulate/winback/members.jsonl",
        "--events",
        "tests/fixtures/simulate/winback/events.jsonl",
        "--products",
        "tests/fixtures/simulate/winback/products.jsonl",
        "--from",
        "2026-06-01",
        "--until",
        "2026-06-10T23:59:59+08:00",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, std::fs::read_to_string(root().join("tests/golden/winback.txt")).unwrap());
    assert!(err.is_empty(), "only warnings are logged: {err}");
}

#[test]
fn the_command_answers_1_for_a_rejected_fixture_row_and_2_for_a_time_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("members.jsonl");
    std::fs::write(&members, "{\"id\": \"ada\", \"joined_at\": \"yesterday\"}\n").unwrap();
    let members = members.to_str().unwrap();
    let (code, _, err) = tidings(&["simulate", "--members", members, "--from", "2026-06-01", "--until", "2026-06-02"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("members.jsonl:1: joined_at"), "{err}");
    let (code, _, err) = tidings(&["simulate", "--members", members, "--from", "june", "--until", "2026-06-02"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`june` is not a time"), "{err}");
}
