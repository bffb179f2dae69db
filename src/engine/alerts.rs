//! Phase 5 of a tick: the alert rules, evaluated once a minute and claimed once across
//! workers (`Store::evaluate_alerts`). It only reads and writes the database: the
//! notifications it leaves are delivered by `notifier`, outside the tick, so a slow or
//! dead receiver never holds up sending.

use std::sync::Arc;

use chrono::{DateTime, DurationRound as _, Utc};

use super::{Engine, EngineError};
use crate::alert::Rule;

/// The rules the engine evaluates and where their notifications go.
#[derive(Debug, Clone, Default)]
pub struct Alerting {
    pub rules: Vec<Rule>,
    /// `TIDINGS_ALERT_WEBHOOK_URL` is set: each firing and resolved transition gets a
    /// `webhook` notification.
    pub webhook: bool,
    /// `TIDINGS_ALERT_EMAIL`: the address of rules without an `email` of their own.
    pub email: Option<String>,
}

impl Alerting {
    /// Where a rule's notifications go: `webhook`, `email:ADDRESS`.
    pub fn targets(&self, rule: &Rule) -> Vec<String> {
        let mut targets = Vec::new();
        if self.webhook {
            targets.push("webhook".to_string());
        }
        if let Some(address) = rule.email.as_ref().or(self.email.as_ref()) {
            targets.push(format!("email:{address}"));
        }
        targets
    }
}

impl Engine {
    /// Sets the alert rules (at start and at reload).
    pub fn set_alerting(&self, alerting: Alerting) {
        *self.alerting.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(alerting);
    }

    /// Evaluates the alert rules once per minute of `now`, if no other worker has; returns
    /// how many alerts changed status.
    pub async fn watch(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let alerting = Arc::clone(&self.alerting.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        if alerting.rules.is_empty() {
            return Ok(0);
        }
        let minute = now.duration_trunc(chrono::TimeDelta::minutes(1)).unwrap_or(now);
        {
            let mut seen = self.alert_minute.lock().await;
            if seen.is_some_and(|m| m >= minute) {
                return Ok(0);
            }
            *seen = Some(minute);
        }
        let targets = |rule: &Rule| alerting.targets(rule);
        let Some(transitions) =
            self.store.evaluate_alerts(&alerting.rules, &self.options.worker, now, &targets).await?
        else {
            return Ok(0);
        };
        for t in &transitions {
            tracing::warn!(rule = %t.rule, status = t.status.as_str(), value = ?t.value, "alert {}", t.status.as_str());
        }
        Ok(transitions.len())
    }
}
