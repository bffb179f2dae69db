//! A shop for engine tests: journeys and templates in a temporary folder, an engine over a
//! real store on a virtual clock, and what a marketer would look at — the outbox, the
//! deliveries with their reasons, the timeline.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tidings::channels::Channels;
use tidings::config::Config;
use tidings::engine::{self, Engine, Registry};
use tidings::links::{LinkClaims, LinkKind, LinkSigner};
use tidings::member::Event;
use tidings::project::{Project, Sources};
use tidings::store::Store;

use crate::support::LINK_SECRET;

pub const HELLO_EMAIL: &str = "---\nsubject: \"Hello {{default member.first_name \\\"friend\\\"}}\"\n---\n<p>Hi {{default member.first_name \"friend\"}}, welcome to {{shop.name}}. <a href=\"{{link \"https://tea.example/rewards\"}}\">Your rewards</a> · <a href=\"{{links.unsubscribe}}\">Unsubscribe</a></p>\n";
pub const REMINDER_EMAIL: &str = "---\nsubject: \"Still there?\"\n---\n<p>A reminder.</p>\n";
pub const PING_SMS: &str = "Hi {{default member.first_name \"there\"}}, your points wait at {{shop.name}}.\n";

/// A project folder with journeys and templates, and an engine over `store` on it.
pub struct Shop {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub engine: Engine,
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub async fn load_engine(dir: &Path, store: Store, now: DateTime<Utc>) -> Engine {
    load_engine_with(dir, store, now, Channels::outbox(dir.join("outbox"))).await
}

/// [`load_engine`] sending through `channels`.
pub async fn load_engine_with(dir: &Path, store: Store, now: DateTime<Utc>, channels: Channels) -> Engine {
    let config = Config::load(&dir.join("tidings.toml"), false, |_| None).unwrap();
    let sources = Sources::standard(&config.workflows_dir, &config.templates_dir).unwrap();
    let project = Project::load(&sources, config.timezone());
    let errors: Vec<String> = project.diagnostics.iter().map(|d| d.render_short()).collect();
    assert!(project.journeys.len() == sources.journeys.len(), "journeys do not compile: {errors:#?}");
    let registry = Registry::load(project, &store, config.timezone(), now).await.unwrap();
    let links = LinkSigner::new(&config.public_url, LINK_SECRET).unwrap();
    let options = engine::Options::from_config(&config, links);
    let policies = engine::policies(&config).unwrap();
    Engine::new(store, registry, policies, config.state_settings(), channels, options)
}

impl Shop {
    /// `journeys` with the test templates `t/hello`, `t/reminder` (email) and `t/ping` (SMS).
    pub async fn new(store: Store, journeys: &[&str], config: &str, now: DateTime<Utc>) -> Shop {
        let templates =
            [("t/hello.email", HELLO_EMAIL), ("t/reminder.email", REMINDER_EMAIL), ("t/ping.sms", PING_SMS)];
        Shop::with_templates(store, journeys, &templates, config, now).await
    }

    /// `journeys` and `templates` (`("t/offer.email", text)` is `templates/t/offer.email.hbs`).
    pub async fn with_templates(
        store: Store,
        journeys: &[&str],
        templates: &[(&str, &str)],
        config: &str,
        now: DateTime<Utc>,
    ) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("tidings.toml"), &format!("default_timezone = \"Asia/Shanghai\"\n{config}"));
        for journey in journeys {
            let id = journey.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
            write(&dir.path().join("workflows").join(format!("{id}.yaml")), journey);
        }
        for (name, text) in templates {
            write(&dir.path().join("templates").join(format!("{name}.hbs")), text);
        }
        let engine = load_engine(dir.path(), store.clone(), now).await;
        Shop { dir, store, engine }
    }

    /// The repository's example journeys and templates (`workflows/`, `templates/`) with
    /// `config` (policies) in a `tidings.toml`.
    pub async fn examples(store: Store, config: &str, now: DateTime<Utc>) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let toml = format!(
            "default_timezone = \"Asia/Shanghai\"\nworkflows_dir = {:?}\ntemplates_dir = {:?}\n{config}",
            repo.join("workflows"),
            repo.join("templates"),
        );
        write(&dir.path().join("tidings.toml"), &toml);
        let engine = load_engine(dir.path(), store.clone(), now).await;
        Shop { dir, store, engine }
    }

    /// The files written to `outbox/{channel}/`.
    pub fn outbox_of(&self, channel: &str) -> Vec<PathBuf> {
        self.outbox().into_iter().filter(|f| f.parent().unwrap().ends_with(channel)).collect()
    }

    /// Stores events as `POST /v1/events` does, then lets the engine act at `now`.
    pub async fn happen(&self, events: &[Event], now: DateTime<Utc>) {
        self.store.ingest_events(events, now, self.engine.settings()).await.unwrap();
        self.engine.settle(now).await.unwrap();
    }

    pub async fn at(&self, now: DateTime<Utc>) {
        self.engine.settle(now).await.unwrap();
    }

    /// The messages written to the outbox (one folder per channel).
    pub fn outbox(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for channel in std::fs::read_dir(self.dir.path().join("outbox")).into_iter().flatten() {
            let channel = channel.unwrap().path();
            for file in std::fs::read_dir(&channel).into_iter().flatten() {
                let file = file.unwrap().path();
                if !file.file_name().unwrap().to_string_lossy().starts_with('.') {
                    files.push(file);
                }
            }
        }
        files.sort();
        files
    }

    /// (journey, step, status, reason) of a member's deliveries, oldest first.
    pub async fn deliveries(&self, member: &str) -> Vec<(String, String, String, Option<String>)> {
        let mut rows: Vec<_> = self
            .store
            .deliveries_of(member, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.journey_id, d.step, d.status, d.reason))
            .collect();
        rows.reverse();
        rows
    }

    /// "action step reason" lines of a member's timeline.
    pub async fn timeline(&self, member: &str) -> Vec<String> {
        self.store
            .journal_of(Some(member), 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|j| {
                [Some(j.journey_id), Some(j.action), j.step, j.reason]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

pub fn event(id: &str, member: &str, name: &str, occurred_at: DateTime<Utc>, properties: serde_json::Value) -> Event {
    Event { id: id.into(), member_id: member.into(), name: name.into(), occurred_at, properties }
}

pub fn joined(member: &str, at: DateTime<Utc>, properties: serde_json::Value) -> Event {
    event(&format!("join-{member}"), member, "member.created", at, properties)
}

/// The `/{kind}/{token}` links in `text` whose tokens verify with the test secret.
pub fn signed_links(text: &str, kind: LinkKind) -> Vec<LinkClaims> {
    let prefix = format!("/{}/", kind.code());
    text.match_indices(&prefix)
        .filter_map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).unwrap_or(rest.len());
            tidings::links::verify(LINK_SECRET, &rest[..end]).ok()
        })
        .collect()
}
