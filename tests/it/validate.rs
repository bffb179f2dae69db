//! `tidings validate`: the examples pass, and each class of mistake planted in a copy of an
//! example exits 1 with the right `file:line:col`. Diagnostics are snapshot-tested.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A copy of the example workflows and templates in a temp dir, to plant mistakes in.
struct Sandbox {
    dir: tempfile::TempDir,
}

struct Outcome {
    code: i32,
    stdout: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_dir(&root.join("workflows"), &dir.path().join("workflows"));
        copy_dir(&root.join("templates"), &dir.path().join("templates"));
        Sandbox { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Replaces the first `from` in `file` (relative to the sandbox) with `to`.
    fn plant(self, file: &str, from: &str, to: &str) -> Sandbox {
        let path = self.path(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no `{from}` to replace");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self
    }

    fn validate(&self, args: &[&str]) -> Outcome {
        let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .current_dir(self.dir.path())
            .arg("validate")
            .args(args)
            .env_remove("TIDINGS_CONFIG")
            .output()
            .unwrap();
        Outcome { code: output.status.code().unwrap_or(-1), stdout: String::from_utf8(output.stdout).unwrap() }
    }

    /// Validates the whole sandbox and expects exactly one problem, with this code at this place.
    fn expect_one(&self, code: &str, location: &str) -> String {
        let outcome = self.validate(&["workflows", "templates"]);
        assert_eq!(outcome.code, 1, "expected exit 1:\n{}", outcome.stdout);
        let short = self.validate(&["workflows", "templates", "--format", "short"]).stdout;
        let problems: Vec<&str> =
            short.lines().filter(|l| l.contains(": error[") || l.contains(": warning[")).collect();
        assert_eq!(problems.len(), 1, "expected one problem:\n{short}");
        assert!(
            problems[0].starts_with(&format!("{location}: error[{code}]")),
            "expected {code} at {location}, got:\n{short}"
        );
        outcome.stdout
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

macro_rules! assert_diagnostics {
    ($output:expr) => {
        insta::assert_snapshot!($output)
    };
}

#[test]
fn the_examples_are_valid() {
    let outcome = Sandbox::new().validate(&["workflows", "templates"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stdout);
    assert!(outcome.stdout.contains("checked 6 journeys"), "{}", outcome.stdout);
    assert!(outcome.stdout.ends_with("0 errors, 0 warnings\n"), "{}", outcome.stdout);
}

#[test]
fn validate_without_paths_uses_the_configured_folders() {
    let outcome = Sandbox::new().validate(&[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stdout);
}

#[test]
fn a_missing_path_is_bad_usage() {
    let outcome = Sandbox::new().validate(&["nowhere"]);
    assert_eq!(outcome.code, 2);
}

#[test]
fn yaml_syntax_errors_point_at_the_broken_line() {
    let sandbox =
        Sandbox::new().plant("workflows/welcome.yaml", "  - id: pause\n    wait: 3d", "  - id: pause\n   wait: 3d");
    assert_diagnostics!(sandbox.expect_one("J001", "workflows/welcome.yaml:22:4"));
}

#[test]
fn an_unknown_key_suggests_the_closest_one() {
    let sandbox = Sandbox::new().plant("workflows/welcome.yaml", "    wait: 3d", "    wiat: 3d");
    assert_diagnostics!(sandbox.expect_one("J002", "workflows/welcome.yaml:22:5"));
}

#[test]
fn duplicate_step_ids_are_reported_at_the_second_one() {
    let sandbox = Sandbox::new().plant("workflows/winback.yaml", "  - id: pause", "  - id: offer");
    assert_diagnostics!(sandbox.expect_one("J003", "workflows/winback.yaml:22:9"));
}

#[test]
fn goto_to_a_missing_step_suggests_the_closest_step() {
    let sandbox = Sandbox::new().plant("workflows/winback.yaml", "goto: done }", "goto: dnoe }");
    assert_diagnostics!(sandbox.expect_one("J004", "workflows/winback.yaml:26:38"));
}

#[test]
fn a_step_after_an_exit_is_unreachable() {
    let sandbox = Sandbox::new().plant(
        "workflows/welcome.yaml",
        "  - id: done\n    exit: true\n",
        "  - id: done\n    exit: true\n  - id: bonus\n    exit: true\n",
    );
    assert_diagnostics!(sandbox.expect_one("J005", "workflows/welcome.yaml:37:9"));
}

#[test]
fn a_loop_without_a_wait_is_rejected() {
    let sandbox = Sandbox::new().plant(
        "workflows/tier_upgrade.yaml",
        "      template: tier_upgrade/concierge_note\n",
        "      template: tier_upgrade/concierge_note\n    next: congrats\n",
    );
    assert_diagnostics!(sandbox.expect_one("J006", "workflows/tier_upgrade.yaml:14:9"));
}

#[test]
fn weights_and_holdout_must_add_up_to_100() {
    let sandbox = Sandbox::new().plant("workflows/reactivation.yaml", "holdout: 10", "holdout: 20");
    assert_diagnostics!(sandbox.expect_one("J007", "workflows/reactivation.yaml:25:9"));
}

#[test]
fn an_unknown_template_suggests_the_closest_name() {
    let sandbox = Sandbox::new().plant("workflows/winback.yaml", "template: winback/nudge", "template: winback/nugde");
    assert_diagnostics!(sandbox.expect_one("J008", "workflows/winback.yaml:29:37"));
}

#[test]
fn a_template_variable_the_member_does_not_have_is_reported_in_the_template() {
    let sandbox = Sandbox::new().plant("templates/winback/nudge.sms.hbs", "{{", "{{member.frist_name}} {{");
    assert_diagnostics!(sandbox.expect_one("T003", "templates/winback/nudge.sms.hbs:1:2"));
}

#[test]
fn a_template_variable_the_step_does_not_pass_is_reported() {
    let sandbox = Sandbox::new().plant("templates/winback/offer.email.hbs", "{{", "{{vars.bonus_points}} {{");
    assert_diagnostics!(sandbox.expect_one("T003", "templates/winback/offer.email.hbs:2:11"));
}

#[test]
fn an_invalid_cron_schedule_is_reported() {
    let sandbox = Sandbox::new().plant("workflows/reactivation.yaml", "\"0 10 * * *\"", "\"0 25 * * *\"");
    assert_diagnostics!(sandbox.expect_one("J009", "workflows/reactivation.yaml:9:14"));
}

#[test]
fn an_unknown_time_zone_suggests_a_real_one() {
    let sandbox =
        Sandbox::new().plant("workflows/reactivation.yaml", "timezone: Asia/Shanghai", "timezone: Asia/Shanghia");
    assert_diagnostics!(sandbox.expect_one("J010", "workflows/reactivation.yaml:10:13"));
}

#[test]
fn a_date_trigger_on_a_field_that_is_not_a_date() {
    let sandbox = Sandbox::new().plant("workflows/birthday.yaml", "date: birthday", "date: tier");
    assert_diagnostics!(sandbox.expect_one("J011", "workflows/birthday.yaml:8:9"));
}

#[test]
fn a_bad_duration_is_reported_with_the_units() {
    let sandbox = Sandbox::new().plant("workflows/welcome.yaml", "wait: 3d", "wait: 3 days");
    assert_diagnostics!(sandbox.expect_one("J012", "workflows/welcome.yaml:22:11"));
}

#[test]
fn an_unknown_field_in_a_condition_points_inside_the_expression() {
    let sandbox = Sandbox::new().plant("workflows/reactivation.yaml", "audience: lifecycle", "audience: lifecycel");
    assert_diagnostics!(sandbox.expect_one("C002", "workflows/reactivation.yaml:11:11"));
}

#[test]
fn comparing_a_timestamp_with_a_string_is_a_type_error() {
    let sandbox = Sandbox::new().plant(
        "workflows/welcome.yaml",
        "audience: email_consent",
        "audience: email_consent and last_order_at > \"2024-01-01\"",
    );
    assert_diagnostics!(sandbox.expect_one("C003", "workflows/welcome.yaml:9:29"));
}

#[test]
fn opened_names_a_step_that_does_not_exist() {
    let sandbox = Sandbox::new().plant("workflows/winback.yaml", "opened(offer)", "opened(ofer)");
    assert_diagnostics!(sandbox.expect_one("C004", "workflows/winback.yaml:26:23"));
}

#[test]
fn opened_names_a_step_that_sends_nothing() {
    let sandbox = Sandbox::new().plant("workflows/winback.yaml", "opened(offer)", "opened(pause)");
    assert_diagnostics!(sandbox.expect_one("C005", "workflows/winback.yaml:26:23"));
}

#[test]
fn every_mistake_in_a_file_is_reported_not_just_the_first() {
    let sandbox = Sandbox::new()
        .plant("workflows/winback.yaml", "opened(offer)", "opened(ofer)")
        .plant("workflows/winback.yaml", "template: winback/nudge", "template: winback/nugde")
        .plant("workflows/winback.yaml", "timezone: Asia/Shanghai", "timezone: Asia/Shanghia");
    let outcome = sandbox.validate(&["workflows/winback.yaml", "templates", "--format", "short"]);
    assert_eq!(outcome.code, 1);
    assert_diagnostics!(outcome.stdout);
}

#[test]
fn json_output_carries_code_position_and_hint() {
    let sandbox = Sandbox::new().plant("workflows/welcome.yaml", "    wait: 3d", "    wiat: 3d");
    let outcome = sandbox.validate(&["workflows", "templates", "--format", "json"]);
    assert_eq!(outcome.code, 1);
    let problem: serde_json::Value = serde_json::from_str(outcome.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(problem["code"], "J002");
    assert_eq!(problem["file"], "workflows/welcome.yaml");
    assert_eq!(problem["severity"], "error");
    assert_eq!(problem["hint"], "did you mean `wait`?");
}

#[test]
fn the_committed_json_schema_is_what_tidings_schema_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_tidings")).arg("schema").output().unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/journey.schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&committed_path).unwrap_or_default()).unwrap_or_default();
    assert!(
        printed == committed,
        "workflows/journey.schema.json is stale: run `cargo run -- schema > workflows/journey.schema.json`"
    );
}

#[test]
fn every_example_journey_carries_the_schema_modeline() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema=journey.schema.json\n"),
                "{} has no modeline",
                path.display()
            );
        }
    }
}
