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

    fn write(self, file: &str, text: &str) -> Sandbox {
        let path = self.path(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
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
