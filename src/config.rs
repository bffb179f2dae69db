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
    pub channels: Channels,
    pub engine: EngineTuning,
    /// `[[alerts]]`: the rules as written; `alert::compile` checks them against the journeys
    /// (`validate`, `serve`).
    pub alerts: Vec<crate::alert::RawRule>,
    /// The file this config was read from, for the alert rules' diagnostics.
    #[serde(skip)]
    pub source: Option<std::sync::Arc<crate::source::SourceFile>>,
    pub recommendations: Recommendations,
}

/// `[engine]`: how workers batch and hold work; the defaults suit one process or many.
/// Each key is overridable by `TIDINGS_ENGINE_<KEY>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineTuning {
    /// Runs, events or deliveries claimed and written per transaction.
    pub batch: u32,
    /// How long a claim holds: a crashed worker's claimed work is taken over after this.
    pub lease: String,
    /// Sends in flight at once per process.
    pub send_concurrency: u32,
    /// Schedule firings missed by at most this much (the service was down) still fire.
    pub catch_up: String,
}

impl Default for EngineTuning {
    fn default() -> Self {
        EngineTuning { batch: 1_000, lease: "60s".into(), send_concurrency: 64, catch_up: "1h".into() }
    }
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
            channels: Channels::default(),
            engine: EngineTuning::default(),
            alerts: Vec::new(),
            source: None,
            recommendations: Recommendations::default(),
        }
    }
}

/// `[recommendations]`: the product models and what a member is shown (README,
/// "Recommendations").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recommendations {
    /// Orders within this window feed the co-purchase model and the bestsellers.
    pub window: String,
    /// A product bought this long ago may be recommended again (consumables); unset: never.
    pub rebuy_after: Option<String>,
    /// The categories `rebuy_after` applies to; empty: all.
    pub rebuy_categories: Vec<String>,
    /// A product a sent message showed is not shown again within this.
    pub shown_within: String,
    /// The currency of the prices in product webhooks (neither shop names it there).
    pub currency: String,
}

impl Default for Recommendations {
    fn default() -> Self {
        Recommendations {
            window: "365d".into(),
            rebuy_after: None,
            rebuy_categories: Vec::new(),
            shown_within: "14d".into(),
            currency: "CNY".into(),
        }
    }
}

impl Recommendations {
    fn check(&self) -> Result<(), ConfigError> {
        let keys = [
            ("recommendations.window", Some(&self.window)),
            ("recommendations.rebuy_after", self.rebuy_after.as_ref()),
            ("recommendations.shown_within", Some(&self.shown_within)),
        ];
        for (key, value) in keys {
            let Some(value) = value else { continue };
            Duration::parse(value)
                .map_err(|e| ConfigError::Invalid { key: key.to_string(), message: e.to_string() })?;
        }
        if !(self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_alphabetic())) {
            return Err(ConfigError::Invalid {
                key: "recommendations.currency".into(),
                message: format!("`{}` is not a three-letter currency code", self.currency),
            });
        }
        Ok(())
    }

    /// As the recommendation rules take them (checked at load).
    pub fn settings(&self) -> crate::recommend::Settings {
        let parse = |text: &str| Duration::parse(text).expect("checked in Config::load");
        crate::recommend::Settings {
            window: parse(&self.window),
            rebuy_after: self.rebuy_after.as_deref().map(parse),
            rebuy_categories: self.rebuy_categories.clone(),
            shown_within: parse(&self.shown_within),
        }
    }
}

/// `[channels.*]`: providers and their limits. Which provider a channel uses follows from
/// what is configured (unset = the outbox); secrets come only from the environment
/// (`TIDINGS_SMTP_URL`, `TIDINGS_SMS_AUTH_TOKEN`, `TIDINGS_FCM_TOKEN`,
/// `TIDINGS_WEBHOOK_SIGNING_SECRET`). Every key here is overridable by
/// `TIDINGS_CHANNELS_<SECTION>_<KEY>`, e.g. `TIDINGS_CHANNELS_SMS_ACCOUNT_SID`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Channels {
    pub email: EmailChannel,
    pub sms: SmsChannel,
    pub push: PushChannel,
    pub webhook: WebhookChannel,
    pub retry: Retry,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailChannel {
    /// `Name <address>` when the template's front matter has no `from`; default: the shop's
    /// name and support address.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// The address of the `mailto:` in `List-Unsubscribe` (RFC 8058 asks for https; mailto
    /// is the fallback some clients use).
    pub unsubscribe_mailto: Option<String>,
    /// SMTP connections kept open and used at once.
    pub connections: u32,
    /// 0 = no limit.
    pub messages_per_second: u32,
    /// Per SMTP command, and for connecting.
    pub timeout: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsChannel {
    /// A Twilio-compatible API: `{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`.
    pub base_url: String,
    /// Set (with `TIDINGS_SMS_AUTH_TOKEN`) to send SMS; unset = the outbox.
    pub account_sid: Option<String>,
    /// The sending number (E.164); or use `messaging_service_sid`.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub messages_per_second: u32,
    pub timeout: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushChannel {
    /// FCM HTTP v1: `{base_url}/v1/projects/{project_id}/messages:send`.
    pub base_url: String,
    /// Set (with `TIDINGS_FCM_TOKEN`) to send push; unset = the outbox.
    pub project_id: Option<String>,
    pub messages_per_second: u32,
    pub timeout: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookChannel {
    /// Where webhook steps POST their rendered JSON (with `TIDINGS_WEBHOOK_SIGNING_SECRET`);
    /// unset = the outbox.
    pub url: Option<String>,
    pub messages_per_second: u32,
    pub timeout: String,
}

/// How transient failures are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each attempt.
    pub base_delay: String,
    /// No wait is longer (unless the provider's Retry-After asks for more).
    pub max_delay: String,
}

impl Default for EmailChannel {
    fn default() -> Self {
        EmailChannel {
            from: None,
            reply_to: None,
            unsubscribe_mailto: None,
            connections: 8,
            messages_per_second: 0,
            timeout: "30s".into(),
        }
    }
}

impl Default for SmsChannel {
    fn default() -> Self {
        SmsChannel {
            base_url: "https://api.twilio.com".into(),
            account_sid: None,
            from: None,
            messaging_service_sid: None,
            messages_per_second: 10,
            timeout: "10s".into(),
        }
    }
}

impl Default for PushChannel {
    fn default() -> Self {
        PushChannel {
            base_url: "https://fcm.googleapis.com".into(),
            project_id: None,
            messages_per_second: 500,
            timeout: "10s".into(),
        }
    }
}

impl Default for WebhookChannel {
    fn default() -> Self {
        WebhookChannel { url: None, messages_per_second: 50, timeout: "10s".into() }
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry { max_attempts: 8, base_delay: "1m".into(), max_delay: "6h".into() }
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
            Ok(text) => {
                let mut config = toml::from_str::<Config>(&text)
                    .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(source) })?;
                config.source = Some(crate::source::SourceFile::new(path, text));
                config
            }
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
        config.channels.apply_env(&env)?;
        config.engine.apply_env(&env)?;
        config.check()?;
        Ok(config)
    }

    /// A configured duration such as `channels.sms.timeout`, checked at load.
    pub fn seconds(text: &str) -> std::time::Duration {
        let seconds = Duration::parse(text).map_or(0, |d| d.as_secs());
        std::time::Duration::from_secs(seconds.max(0) as u64)
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
        let c = &self.channels;
        for (key, value) in [
            ("channels.email.timeout", &c.email.timeout),
            ("channels.sms.timeout", &c.sms.timeout),
            ("channels.push.timeout", &c.push.timeout),
            ("channels.webhook.timeout", &c.webhook.timeout),
            ("channels.retry.base_delay", &c.retry.base_delay),
            ("channels.retry.max_delay", &c.retry.max_delay),
        ] {
            match Duration::parse(value) {
                Ok(d) if d.as_secs() > 0 => {}
                Ok(_) => return Err(invalid(key, format!("`{value}` must be longer than 0s"))),
                Err(e) => return Err(invalid(key, e.to_string())),
            }
        }
        if c.retry.max_attempts == 0 {
            return Err(invalid("channels.retry.max_attempts", "must be at least 1 (the first attempt)".into()));
        }
        if c.email.connections == 0 {
            return Err(invalid("channels.email.connections", "must be at least 1".into()));
        }
        for (key, value) in [
            ("channels.sms.base_url", Some(&c.sms.base_url)),
            ("channels.push.base_url", Some(&c.push.base_url)),
            ("channels.webhook.url", c.webhook.url.as_ref()),
        ] {
            let Some(value) = value else { continue };
            let ok = url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(invalid(key, format!("`{value}` is not an http(s) URL")));
            }
        }
        for (channel, window) in &self.policies.quiet_hours {
            crate::timing::QuietHours::parse(window)
                .map_err(|e| invalid(&format!("policies.quiet_hours.{channel}"), e.to_string()))?;
        }
        for (channel, cap) in &self.policies.frequency_caps {
            crate::timing::FrequencyCap::parse(cap)
                .map_err(|e| invalid(&format!("policies.frequency_caps.{channel}"), e.to_string()))?;
        }
        for (key, value) in [("engine.lease", &self.engine.lease), ("engine.catch_up", &self.engine.catch_up)] {
            match Duration::parse(value) {
                Ok(d) if d.as_secs() > 0 => {}
                Ok(_) => return Err(invalid(key, format!("`{value}` must be longer than 0s"))),
                Err(e) => return Err(invalid(key, e.to_string())),
            }
        }
        if self.engine.batch == 0 || self.engine.send_concurrency == 0 {
            return Err(invalid("engine", "`batch` and `send_concurrency` must be at least 1".into()));
        }
        self.recommendations.check()?;
        Ok(())
    }
}

impl Channels {
    /// `TIDINGS_CHANNELS_<SECTION>_<KEY>` overrides `[channels.<section>] <key>`.
    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let texts: [(&str, &mut String); 8] = [
            ("email.timeout", &mut self.email.timeout),
            ("sms.base_url", &mut self.sms.base_url),
            ("sms.timeout", &mut self.sms.timeout),
            ("push.base_url", &mut self.push.base_url),
            ("push.timeout", &mut self.push.timeout),
            ("webhook.timeout", &mut self.webhook.timeout),
            ("retry.base_delay", &mut self.retry.base_delay),
            ("retry.max_delay", &mut self.retry.max_delay),
        ];
        for (key, slot) in texts {
            if let Some(value) = env(&env_name(key)) {
                *slot = value;
            }
        }
        let options: [(&str, &mut Option<String>); 8] = [
            ("email.from", &mut self.email.from),
            ("email.reply_to", &mut self.email.reply_to),
            ("email.unsubscribe_mailto", &mut self.email.unsubscribe_mailto),
            ("sms.account_sid", &mut self.sms.account_sid),
            ("sms.from", &mut self.sms.from),
            ("sms.messaging_service_sid", &mut self.sms.messaging_service_sid),
            ("push.project_id", &mut self.push.project_id),
            ("webhook.url", &mut self.webhook.url),
        ];
        for (key, slot) in options {
            if let Some(value) = env(&env_name(key)) {
                *slot = (!value.trim().is_empty()).then_some(value);
            }
        }
        let numbers: [(&str, &mut u32); 6] = [
            ("email.connections", &mut self.email.connections),
            ("email.messages_per_second", &mut self.email.messages_per_second),
            ("sms.messages_per_second", &mut self.sms.messages_per_second),
            ("push.messages_per_second", &mut self.push.messages_per_second),
            ("webhook.messages_per_second", &mut self.webhook.messages_per_second),
            ("retry.max_attempts", &mut self.retry.max_attempts),
        ];
        for (key, slot) in numbers {
            let name = env_name(key);
            if let Some(value) = env(&name) {
                *slot = value.trim().parse().map_err(|_| ConfigError::Invalid {
                    key: name.clone(),
                    message: format!("`{value}` is not a whole number"),
                })?;
            }
        }
        Ok(())
    }
}

impl EngineTuning {
    /// `TIDINGS_ENGINE_<KEY>` overrides `[engine] <key>`.
    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (name, slot) in [("TIDINGS_ENGINE_LEASE", &mut self.lease), ("TIDINGS_ENGINE_CATCH_UP", &mut self.catch_up)]
        {
            if let Some(value) = env(name) {
                *slot = value;
            }
        }
        for (name, slot) in
            [("TIDINGS_ENGINE_BATCH", &mut self.batch), ("TIDINGS_ENGINE_SEND_CONCURRENCY", &mut self.send_concurrency)]
        {
            if let Some(value) = env(name) {
                *slot = value.trim().parse().map_err(|_| ConfigError::Invalid {
                    key: name.to_string(),
                    message: format!("`{value}` is not a whole number"),
                })?;
            }
        }
        Ok(())
    }
}

/// `sms.account_sid` → `TIDINGS_CHANNELS_SMS_ACCOUNT_SID`.
pub fn env_name(channel_key: &str) -> String {
    format!("TIDINGS_CHANNELS_{}", channel_key.replace('.', "_").to_ascii_uppercase())
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
    fn channel_keys_come_from_the_file_and_the_environment() {
        let (_dir, path) = write(
            "[channels.sms]\naccount_sid = \"AC1\"\nfrom = \"+15550001111\"\nmessages_per_second = 3\n\
             [channels.retry]\nmax_attempts = 4\n",
        );
        let env = |k: &str| match k {
            "TIDINGS_CHANNELS_SMS_ACCOUNT_SID" => Some("AC2".to_string()),
            "TIDINGS_CHANNELS_PUSH_MESSAGES_PER_SECOND" => Some("7".to_string()),
            "TIDINGS_CHANNELS_WEBHOOK_URL" => Some("https://hooks.example/coupon".to_string()),
            _ => None,
        };
        let config = Config::load(&path, true, env).unwrap();
        assert_eq!(config.channels.sms.account_sid.as_deref(), Some("AC2"));
        assert_eq!(config.channels.sms.from.as_deref(), Some("+15550001111"));
        assert_eq!(config.channels.sms.messages_per_second, 3);
        assert_eq!(config.channels.push.messages_per_second, 7);
        assert_eq!(config.channels.retry.max_attempts, 4);
        assert_eq!(config.channels.webhook.url.as_deref(), Some("https://hooks.example/coupon"));
        assert_eq!(Config::seconds(&config.channels.sms.timeout), std::time::Duration::from_secs(10));

        let (_dir, path) = write("[channels.webhook]\nurl = \"ftp://x\"\n");
        let err = Config::load(&path, true, |_| None).unwrap_err().to_string();
        assert!(err.contains("channels.webhook.url"), "{err}");
        let err = Config::load(&path, false, |k| {
            (k == "TIDINGS_CHANNELS_SMS_MESSAGES_PER_SECOND").then(|| "ten".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("TIDINGS_CHANNELS_SMS_MESSAGES_PER_SECOND"), "{err}");
    }

    #[test]
    fn rejects_bad_values_with_the_key() {
        let (_dir, path) = write("[policies.frequency_caps]\nemail = \"three a week\"\n");
        let err = Config::load(&path, true, |_| None).unwrap_err().to_string();
        assert!(err.contains("policies.frequency_caps.email"), "{err}");
        let (_dir, path) = write("[policies.quiet_hours]\nemail = \"00:00-00:00\"\n");
        let err = Config::load(&path, true, |_| None).unwrap_err().to_string();
        assert!(err.contains("policies.quiet_hours.email"), "an empty window is a mistake: {err}");
        let (_dir, path) = write("[policies.frequency_caps]\nemail = \"0 per 7d\"\n");
        assert!(Config::load(&path, true, |_| None).is_err(), "a cap of 0 would silence the channel");
        let (_dir, path) = write("[engine]\nlease = \"0s\"\n");
        assert!(Config::load(&path, true, |_| None).unwrap_err().to_string().contains("engine.lease"));
        let (_dir, path) = write("default_timezone = \"Mars/Olympus\"\n");
        assert!(Config::load(&path, true, |_| None).unwrap_err().to_string().contains("Mars/Olympus"));
    }
}
