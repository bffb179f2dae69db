//! `tidings preview`: the message a send step gives one member, as the engine renders it.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Utc};
use tidings::member::Member;
use tidings::preview::{self, Chosen, Inputs, PreviewError};
use tidings::project::{Project, Sources};
use tidings::sms_segments::Encoding;
use tidings::template::{Rendered, ShopInfo};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn project() -> Project {
    let sources = Sources::standard(&root().join("workflows"), &root().join("templates")).unwrap();
    Project::load(&sources, chrono_tz::Asia::Shanghai)
}

fn member() -> Member {
    let text = std::fs::read_to_string(root().join("tests/fixtures/templates/member.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T02:00:00Z").unwrap().with_timezone(&Utc)
}

fn render(journey: &str, step: &str, variant: Option<&str>) -> Result<preview::Preview, PreviewError> {
    render_for(&member(), journey, step, variant)
}

fn render_for(
    member: &Member,
    journey: &str,
    step: &str,
    variant: Option<&str>,
) -> Result<preview::Preview, PreviewError> {
    let project = project();
    let journey = project.journeys.iter().find(|j| j.id == journey).unwrap();
    let inputs = Inputs {
        templates: &project.templates,
        member,
        event: None,
        variant,
        now: now(),
        default_timezone: chrono_tz::Asia::Shanghai,
        shop: ShopInfo { name: "Teahouse".into(), url: "https://teahouse.example".into(), ..ShopInfo::default() },
        public_url: "https://t.example",
        shelf: None,
    };
    preview::render(journey, step, &inputs)
}

#[test]
fn an_email_preview_has_the_subject_preheader_text_and_html_of_the_members_variant() {
    // `ada` is in the ten_off half of winback's offer (the engine's hash).
    let ada = Member { id: "ada".into(), ..member() };
    let p = render_for(&ada, "winback", "offer", None).unwrap();
    assert_eq!(p.chosen, Chosen::Assigned("ten_off".into()));
    let Rendered::Email { subject, text, html, .. } = &p.message else { panic!() };
    let discount = "10";
    assert!(subject.contains(discount) || text.contains(discount), "{subject}\n{text}");
    assert!(html.contains("<html"), "{html}");
    assert_eq!(p.context.vars["discount"].to_string(), discount);
    let table = p.render_table(Some(Path::new("/tmp/x.html")));
    assert!(table.contains("subject") && table.contains("/tmp/x.html") && table.contains("context:"), "{table}");
}

#[test]
fn a_variant_can_be_asked_for_by_name_and_an_unknown_one_lists_the_real_ones() {
    let p = render("winback", "offer", Some("twenty_off")).unwrap();
    assert_eq!(p.chosen, Chosen::Asked("twenty_off".into()));
    assert_eq!(p.context.vars["discount"], 20);
    let e = render("winback", "offer", Some("fifty_off")).unwrap_err();
    assert_eq!(e.to_string(), "step `offer` has no variant `fifty_off`; its variants are: ten_off, twenty_off");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn an_sms_preview_counts_its_segments() {
    let p = render("winback", "nudge", None).unwrap();
    let segments = p.segments.unwrap();
    assert_eq!(segments.encoding, Encoding::Ucs2, "Chinese text is UCS-2");
    assert!(segments.segments >= 1);
    assert!(p.render_table(None).contains("segments"));
}

#[test]
fn a_step_that_sends_nothing_cannot_be_previewed_and_the_send_steps_are_suggested() {
    let e = render("winback", "pause", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "step `pause` of `winback` is a wait step, not a send: only send steps have a message; its send steps are: offer, nudge"
    );
    assert_eq!(e.exit_code(), 2);
    let e = render("winback", "ofer", None).unwrap_err();
    assert!(e.to_string().contains("did you mean `offer`?"), "{e}");
}

#[test]
fn a_template_that_needs_the_trigger_event_fails_to_render_without_one() {
    let e = render("tier_upgrade", "congrats", None).unwrap_err();
    assert!(matches!(e, PreviewError::Render(_)), "{e}");
    assert_eq!(e.exit_code(), 1);
}

/// Runs the binary in the project folder with a temporary database and temporary folder
/// (kept alive as long as the returned handle).
fn tidings(args: &[&str]) -> (i32, String, String, tempfile::TempDir) {
    let db = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .current_dir(root())
        .env("TIDINGS_DATABASE_URL", format!("sqlite://{}", db.path().join("t.db").display()))
        .env("TMPDIR", db.path())
        .env_remove("TIDINGS_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        db,
    )
}

#[test]
fn the_command_previews_a_fixture_member_and_writes_the_html_to_a_file() {
    let (code, out, err, _dir) =
        tidings(&["preview", "birthday", "gift_gold", "--member", "tests/fixtures/templates/member.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("subject    生日快乐, Wei! 1000 birthday points are waiting"), "{out}");
    let html = out.lines().find_map(|l| l.strip_prefix("html       ")).unwrap();
    let path = html.split(" (").next().unwrap();
    assert!(std::fs::read_to_string(path).unwrap().contains("1000"));
}

#[test]
fn the_command_answers_2_for_a_step_that_is_not_a_send_and_1_for_an_unknown_member() {
    let (code, _, err, _dir) =
        tidings(&["preview", "birthday", "tier", "--member", "tests/fixtures/templates/member.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a branch step, not a send"), "{err}");
    let (code, _, err, _dir) = tidings(&["preview", "birthday", "gift_gold", "--member", "nobody"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no member `nobody`"), "{err}");
}

#[test]
fn the_command_prints_json_with_the_sms_segments() {
    let (code, out, err, _dir) = tidings(&[
        "preview",
        "winback",
        "nudge",
        "--member",
        "tests/fixtures/templates/member.json",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["channel"], "sms");
    assert_eq!(json["message"]["segments"]["encoding"], "UCS-2");
    assert_eq!(json["context"]["member"]["id"], "cust-1001");
}
