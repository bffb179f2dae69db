//! Due deliveries: claim a batch, render each for its member, send concurrently, write the
//! outcomes in one transaction. A delivery is claimed (`sending`, with a lease) before it
//! is sent and settled after, so a crash re-sends at most what was in flight.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use super::{Engine, EngineError};
use crate::channel::Channel;
use crate::channels::{Outgoing, SendError, next_attempt};
use crate::store::deliveries::{ClaimedDelivery, DeliveryOutcome};
use crate::template::{
    JourneyInfo, Links, MessageContext, RenderOptions, StepInfo, Untracked, event_value, member_value,
};

impl Engine {
    pub(super) async fn dispatch(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let claimed = self.store.claim_deliveries(now, self.options.batch, self.options.lease).await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let member_ids: Vec<String> =
            claimed.iter().map(|d| d.member_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let members = self.store.members(&member_ids).await?;
        let event_ids: Vec<String> = claimed.iter().filter_map(|d| d.trigger_event_id.clone()).collect();
        let events = self.store.events_by_id(&event_ids).await?;

        let mut outcomes: Vec<(ClaimedDelivery, DeliveryOutcome)> = Vec::with_capacity(claimed.len());
        let mut ready: Vec<(ClaimedDelivery, Outgoing)> = Vec::with_capacity(claimed.len());
        {
            let mut registry = self.registry.lock().await;
            for d in claimed {
                let journey = registry.version(&self.store, &d.journey_id, &d.version).await?;
                let templates = std::sync::Arc::clone(&registry.templates);
                let member = members.get(&d.member_id);
                let (Some(member), Some(channel), Some(template)) =
                    (member, Channel::parse(&d.channel), d.template.clone())
                else {
                    let error = "the member, channel or template of this delivery is gone".to_string();
                    outcomes.push((d, DeliveryOutcome::Failed { error, suppress: false }));
                    continue;
                };
                let context = MessageContext {
                    member: member_value(member, now, self.policies.default_timezone),
                    event: d
                        .trigger_event_id
                        .as_ref()
                        .and_then(|id| events.get(id))
                        .map(event_value)
                        .unwrap_or_else(|| serde_json::json!({})),
                    journey: JourneyInfo {
                        id: d.journey_id.clone(),
                        name: journey.as_ref().map(|j| j.name.clone()).unwrap_or_else(|| d.journey_id.clone()),
                    },
                    step: StepInfo { id: d.step.clone() },
                    variant: d.variant.clone(),
                    vars: d.vars.as_object().cloned().unwrap_or_default(),
                    links: self.links(&d),
                    shop: self.options.shop.clone(),
                };
                let options = RenderOptions { default_timezone: self.policies.default_timezone, links: &Untracked };
                match templates.render(&template, channel, &context, &options) {
                    Ok(message) => {
                        let outgoing = Outgoing {
                            delivery_id: d.id,
                            member_id: d.member_id.clone(),
                            channel,
                            to: d.address.clone().unwrap_or_default(),
                            message,
                            unsubscribe_url: Some(context.links.unsubscribe.clone()),
                        };
                        ready.push((d, outgoing));
                    }
                    // A template that does not render for this member never will: fail it
                    // (recorded with the reason), never send a message with a hole.
                    Err(e) => outcomes.push((d, DeliveryOutcome::Failed { error: e.to_string(), suppress: false })),
                }
            }
        }

        let channels = &self.channels;
        let sent: Vec<(ClaimedDelivery, Outgoing, Result<crate::channels::Receipt, SendError>)> =
            futures_util::stream::iter(ready)
                .map(|(d, out)| async move {
                    let started = std::time::Instant::now();
                    let result = channels.send(&out).await;
                    crate::telemetry::record_send_result(out.channel, &result, started.elapsed());
                    (d, out, result)
                })
                .buffer_unordered(self.options.send_concurrency.max(1))
                .collect()
                .await;
        let count = sent.len() + outcomes.len();
        let mut unregistered = Vec::new();
        for (d, out, result) in sent {
            let outcome = match result {
                Ok(receipt) => DeliveryOutcome::Sent {
                    provider_message_id: receipt.provider_message_id,
                    subject: out.message.headline().map(str::to_string),
                },
                Err(SendError::Transient { reason, retry_after }) => {
                    let jitter = rand::random::<f64>();
                    match next_attempt(d.attempts as u32, now, retry_after, &self.options.retry, jitter) {
                        Some(at) => DeliveryOutcome::Retry { at, error: reason },
                        None => DeliveryOutcome::Failed {
                            error: format!("gave up after {} attempts: {reason}", d.attempts),
                            suppress: false,
                        },
                    }
                }
                Err(SendError::Permanent { reason }) => DeliveryOutcome::Failed { error: reason, suppress: true },
                Err(SendError::Unregistered { token }) => {
                    unregistered.push((d.member_id.clone(), token.clone()));
                    DeliveryOutcome::Failed { error: format!("push token unregistered: {token}"), suppress: false }
                }
            };
            outcomes.push((d, outcome));
        }
        self.store.record_outcomes(&outcomes, now).await?;
        for (member, token) in unregistered {
            self.store.remove_push_token(&member, &token, now, &self.settings).await?;
        }
        Ok(count)
    }

    /// The links of a delivery (signed by the HTTP edge's secret once links land).
    fn links(&self, d: &ClaimedDelivery) -> Links {
        let base = &self.options.public_url;
        Links {
            unsubscribe: format!("{base}/u/{}", d.id),
            preferences: format!("{base}/preferences/{}", d.id),
            view_online: format!("{base}/view/{}", d.id),
        }
    }
}
