//! Due deliveries: claim a batch, render each for its member with its signed links, send
//! concurrently, and write the outcomes a group at a time as sends finish (one transaction
//! per group of `send_concurrency`). A delivery is claimed (`sending`, with a lease) before
//! it is sent and settled after, so a crash re-sends at most the group in flight.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use super::{Engine, EngineError};
use crate::channel::Channel;
use crate::channels::{Outgoing, SendError, next_attempt};
use crate::store::deliveries::{ClaimedDelivery, DeliveryOutcome};
use crate::template::{
    JourneyInfo, LinkTracker, Links, MessageContext, RenderOptions, StepInfo, Untracked, event_value, member_value,
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
                let links = self.options.links.for_delivery(d.id, &d.member_id, channel);
                let unsubscribe = links.unsubscribe_url();
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
                    links: Links { unsubscribe: unsubscribe.clone(), preferences: unsubscribe.clone() },
                    shop: self.options.shop.clone(),
                };
                // Email links are tracked (signed click redirects and the open pixel) unless
                // the template says `tracking: false`; SMS and push keep links as written,
                // short enough for a segment and a notification.
                let tracker: &dyn LinkTracker = if channel == Channel::Email { &links } else { &Untracked };
                let options = RenderOptions { default_timezone: self.policies.default_timezone, links: tracker };
                match templates.render(&template, channel, &context, &options) {
                    Ok(message) => {
                        let outgoing = Outgoing {
                            delivery_id: d.id,
                            member_id: d.member_id.clone(),
                            channel,
                            to: d.address.clone().unwrap_or_default(),
                            message,
                            unsubscribe_url: Some(unsubscribe),
                        };
                        ready.push((d, outgoing));
                    }
                    // A template that does not render for this member never will: fail it
                    // (recorded with the reason), never send a message with a hole.
                    Err(e) => outcomes.push((d, DeliveryOutcome::Failed { error: e.to_string(), suppress: false })),
                }
            }
        }

        let count = ready.len() + outcomes.len();
        let mut in_flight: HashSet<i64> = ready.iter().map(|(d, _)| d.id).collect();
        // Outcomes are written as sends finish, a group at a time: a crash re-sends at most
        // the group in flight, not the whole claimed batch, and a commit still carries many.
        let channels = &self.channels;
        let group = self.options.send_concurrency.max(1);
        let mut finished = futures_util::stream::iter(ready)
            .map(|(d, out)| async move {
                let started = std::time::Instant::now();
                let result = channels.send(&out).await;
                crate::telemetry::record_send_result(out.channel, &result, started.elapsed());
                (d, out, result)
            })
            .buffer_unordered(group)
            .ready_chunks(group);
        let mut unregistered = Vec::new();
        // A batch that takes a while renews its claim on what it has not sent yet, so the
        // lease only runs out for a worker that stopped.
        let started = std::time::Instant::now();
        let mut held = started;
        let renew_every = (self.options.lease / 3).to_std().unwrap_or_default();
        loop {
            let sent = finished.next().await.unwrap_or_default();
            if sent.is_empty() && outcomes.is_empty() {
                break;
            }
            for (d, out, result) in sent {
                in_flight.remove(&d.id);
                let outcome = self.outcome(&d, &out, result, now, &mut unregistered);
                outcomes.push((d, outcome));
            }
            self.store.record_outcomes(&outcomes, now).await?;
            outcomes.clear();
            if held.elapsed() >= renew_every && !in_flight.is_empty() {
                let elapsed = chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
                let ids: Vec<i64> = in_flight.iter().copied().collect();
                self.store.hold_deliveries(&ids, now + elapsed + self.options.lease).await?;
                held = std::time::Instant::now();
            }
        }
        for (member, token) in unregistered {
            self.store.remove_push_token(&member, &token, now, &self.settings).await?;
        }
        Ok(count)
    }

    /// What a provider's answer means for the delivery: sent, retried later, or failed.
    fn outcome(
        &self,
        d: &ClaimedDelivery,
        out: &Outgoing,
        result: Result<crate::channels::Receipt, SendError>,
        now: DateTime<Utc>,
        unregistered: &mut Vec<(String, String)>,
    ) -> DeliveryOutcome {
        match result {
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
        }
    }
}
