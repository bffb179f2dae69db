//! `tidings.toml`: defaults for a fresh checkout, every key overridable by `TIDINGS_*`
//! environment variables, secrets only from the environment.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use crate::duration::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Members without a time zone, and schedules without one, use this zone.
    pub default_timezone: String,
    pub database_url: String,
    pub listen: String,
    pub workflows_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub outbox_dir: PathBuf,
    pub public_url: String,
    pub policies: Policies,
    pub lifecycle: LifecycleThresholds,
    pub shop: Shop,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    /// Channel → `"21:00-09:00"` in member-local time; may cross midnight.
    pub quiet_hours: std::collections::BTreeMap<String, String>,
    /// Channel → `"3 per 7d"`, across all journeys.
    pub frequency_caps: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleThresholds {
    /// A member is `new` for this long after joining (and before a second order).
    pub new_within: String,
    /// Last order at least this long ago: `dormant`.
    pub dormant_after: String,
    /// Last order at least this long ago: `churned`.
    pub churned_after: String,
    /// The expected years of a customer relationship, for `clv` (DESIGN §1).
    pub clv_years: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shop {
    pub name: String,
    pub url: String,
    pub support_email: String,
    pub address: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_timezone: "Asia/Shanghai".to_string(),
            database_url: "sqlite://tidings.db".to_string(),
            listen: "127.0.0.1:8080".to_string(),
            workflows_dir: PathBuf::from("workflows"),
            templates_dir: PathBuf::from("templates"),
            outbox_dir: PathBuf::from("outbox"),
            public_url: "http://127.0.0.1:8080".to_string(),
            policies: Policies::default(),
            lifecycle: LifecycleThresholds::default(),
            shop: Shop::default(),
        }
    }
}

impl Default for LifecycleThresholds {
    fn default() -> Self {
        LifecycleThresholds {
            new_within: "30d".into(),
            dormant_after: "60d".into(),
            churned_after: "180d".into(),
            clv_years: 3.0,
        }
    }
}

impl Default for Shop {
    fn default() -> Self {
        Shop {
            name: "Example Shop".into(),
            url: "https://shop.example.com".into(),
            support_email: "help@shop.example.com".into(),
            address: "1 Example Road, Shanghai".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Reads `path` (if it exists; a missing default file means defaults), resolves the
    /// directories against the file's folder, applies `TIDINGS_*` overrides from `env`,
    /// and checks the values.
    pub fn load(path: &Path, required: bool, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str::<Config>(&text)
                .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(source) })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Config::default(),
            Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
        };
        let base = path.parent().unwrap_or(Path::new(""));
        for dir in [&mut config.workflows_dir, &mut config.templates_dir, &mut config.outbox_dir] {
            if dir.is_relative() && !base.as_os_str().is_empty() {
                *dir = base.join(&*dir);
            }
        }
        let overrides: [(&str, &mut String); 4] = [
            ("TIDINGS_DEFAULT_TIMEZONE", &mut config.default_timezone),
            ("TIDINGS_DATABASE_URL", &mut config.database_url),
            ("TIDINGS_LISTEN", &mut config.listen),
            ("TIDINGS_PUBLIC_URL", &mut config.public_url),
        ];
        for (key, slot) in overrides {
            if let Some(value) = env(key) {
                *slot = value;
            }
        }
        let dirs: [(&str, &mut PathBuf); 3] = [
            ("TIDINGS_WORKFLOWS_DIR", &mut config.workflows_dir),
            ("TIDINGS_TEMPLATES_DIR", &mut config.templates_dir),
            ("TIDINGS_OUTBOX_DIR", &mut config.outbox_dir),
        ];
        for (key, slot) in dirs {
            if let Some(value) = env(key) {
                *slot = PathBuf::from(value);
            }
        }
        config.check()?;
        Ok(config)
    }

    pub fn timezone(&self) -> Tz {
        self.default_timezone.parse().expect("checked in Config::load")
    }

    /// The lifecycle thresholds and CLV horizon, as the member-state rules take them.
    pub fn state_settings(&self) -> crate::state::Settings {
        let days = |text: &str| Duration::parse(text).expect("checked in Config::load");
        crate::state::Settings {
            new_within: days(&self.lifecycle.new_within),
            dormant_after: days(&self.lifecycle.dormant_after),
            churned_after: days(&self.lifecycle.churned_after),
            clv_months: (self.lifecycle.clv_years * 12.0).round() as i64,
            default_timezone: self.timezone(),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid { key: key.to_string(), message };
        self.default_timezone
            .parse::<Tz>()
            .map_err(|_| invalid("default_timezone", format!("unknown time zone `{}`", self.default_timezone)))?;
        for (key, value) in [
            ("lifecycle.new_within", &self.lifecycle.new_within),
            ("lifecycle.dormant_after", &self.lifecycle.dormant_after),
            ("lifecycle.churned_after", &self.lifecycle.churned_after),
        ] {
            Duration::parse(value).map_err(|e| invalid(key, e.to_string()))?;
        }
        if !(self.lifecycle.clv_years > 0.0 && self.lifecycle.clv_years <= 100.0) {
            return Err(invalid(
                "lifecycle.clv_years",
                format!("{} is not a number of years", self.lifecycle.clv_years),
            ));
        }
        for (channel, window) in &self.policies.quiet_hours {
            let ok = window.split_once('-').is_some_and(|(a, b)| {
                [a, b].iter().all(|t| chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M").is_ok())
            });
            if !ok {
                return Err(invalid(
                    &format!("policies.quiet_hours.{channel}"),
                    format!("`{window}` is not a window like \"21:00-09:00\""),
                ));
            }
        }
        for (channel, cap) in &self.policies.frequency_caps {
            let ok = cap
                .split_once(" per ")
                .is_some_and(|(n, d)| n.trim().parse::<u32>().is_ok() && Duration::parse(d).is_ok());
            if !ok {
                return Err(invalid(
                    &format!("policies.frequency_caps.{channel}"),
                    format!("`{cap}` is not a cap like \"3 per 7d\""),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tidings.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_missing_default_file_means_defaults() {
        let config = Config::load(Path::new("/nonexistent/tidings.toml"), false, |_| None).unwrap();
        assert_eq!(config.default_timezone, "Asia/Shanghai");
        assert!(Config::load(Path::new("/nonexistent/tidings.toml"), true, |_| None).is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let (_dir, path) =
            write("default_timezone = \"Europe/Berlin\"\n[policies.quiet_hours]\nsms = \"21:00-09:00\"\n");
        let config =
            Config::load(&path, true, |k| (k == "TIDINGS_DATABASE_URL").then(|| "postgres://x".to_string())).unwrap();
        assert_eq!(config.default_timezone, "Europe/Berlin");
        assert_eq!(config.database_url, "postgres://x");
        assert_eq!(config.workflows_dir, path.parent().unwrap().join("workflows"));
    }

    #[test]
    fn rejects_bad_values_with_the_key() {
        let (_dir, path) = write("[policies.frequency_caps]\nemail = \"three a week\"\n");
        let err = Config::load(&path, true, |_| None).unwrap_err().to_string();
        assert!(err.contains("policies.frequency_caps.email"), "{err}");
        let (_dir, path) = write("default_timezone = \"Mars/Olympus\"\n");
        assert!(Config::load(&path, true, |_| None).unwrap_err().to_string().contains("Mars/Olympus"));
    }
}
