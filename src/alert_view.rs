//! `tidings alerts` and `GET /v1/alerts`: every alert with its status and the numbers it
//! last read, and the latest transitions (what was notified), as a table or JSON.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::SecondsFormat;
use serde::Serialize;

use crate::alert::Status;
use crate::alert::message::{Notice, numbers};
use crate::store::alerts::AlertRow;
use crate::store::{Store, StoreError};

/// What `tidings alerts` and `GET /v1/alerts` show.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsView {
    /// Every rule's alert, firing first.
    pub alerts: Vec<AlertRow>,
    /// The latest transitions, newest first.
    pub transitions: Vec<Notice>,
}

impl AlertsView {
    pub async fn load(store: &Store, limit: i64) -> Result<AlertsView, StoreError> {
        Ok(AlertsView { alerts: store.alerts().await?, transitions: store.alert_transitions(limit).await? })
    }

    pub fn firing(&self) -> impl Iterator<Item = &AlertRow> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    /// The view as people read it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.alerts.is_empty() {
            out.push_str("no alert has been evaluated yet ([[alerts]] in tidings.toml)\n");
        } else {
            let _ = writeln!(
                out,
                "{:<9} {:<28} {:<25} {:>9} {:>9}  numbers",
                "status", "rule", "kind", "value", "threshold"
            );
            for a in &self.alerts {
                let value = a.value.map_or_else(|| "-".to_string(), |v| a.kind.format_value(v));
                let _ = writeln!(
                    out,
                    "{:<9} {:<28} {:<25} {:>9} {:>9}  {} · {} · since {}",
                    a.status.as_str(),
                    a.rule,
                    a.kind.as_str(),
                    value,
                    a.kind.format_value(a.threshold),
                    numbers(a.kind, &a.numbers, a.window_seconds, a.baseline_seconds),
                    a.scope.describe(),
                    a.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                );
            }
        }
        if !self.transitions.is_empty() {
            out.push_str("\nrecent transitions\n");
            for t in &self.transitions {
                let value = t.value.map_or_else(|| "-".to_string(), |v| t.kind.format_value(v));
                let _ = writeln!(
                    out,
                    "{}  {:<28} {} → {}  {}",
                    t.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    t.rule,
                    t.from.as_str(),
                    t.status.as_str(),
                    value
                );
            }
        }
        out
    }
}

/// `tidings alerts`: exit 1 while an alert is firing (scripts can page on it).
pub async fn run(config: &crate::config::Config, limit: i64, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.database_url).await.with_context(|| format!("opening {}", config.database_url))?;
    let view = AlertsView::load(&store, limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", view.render());
    }
    Ok(if view.firing().next().is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
