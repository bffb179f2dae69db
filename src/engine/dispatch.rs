//! Due deliveries: claim a batch, render each for its member with its signed links just
//! before it is sent, send concurrently, and write the outcomes as sends finish (one
//! transaction for all that finished while the last one was written). A delivery is
//! claimed (`sending`, with a lease) before it is sent and settled after, so a crash
//! re-sends at most what was in flight or not yet written.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use super::{Engine, EngineError};
use crate::breaker::{self, Gate};
use crate::channel::Channel;
use crate::channels::{Outgoing, Prepared, Scope, SendError, next_attempt};
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
        // The journeys' names and the templates, looked up once a batch: the registry is
        // not held while sending.
        let (templates, names) = {
            let mut registry = self.registry.lock().await;
            let mut names: HashMap<(String, String), String> = HashMap::new();
            for d in &claimed {
                if let Entry::Vacant(name) = names.entry((d.journey_id.clone(), d.version.clone())) {
                    let journey = registry.version(&self.store, &d.journey_id, &d.version).await?;
                    name.insert(journey.map_or_else(|| d.journey_id.clone(), |j| j.name.clone()));
                }
            }
            (Arc::clone(&registry.templates), names)
        };
        // The members' product shelves, for the whole batch, and only when some template
        // shows products: the day's model and the catalogue from memory while current, the
        // batch's purchases and what it was shown from the database.
        let shelves = if templates.uses_shelf() {
            self.store.cached_shelves(&self.shelf_cache, &member_ids, now, &self.options.recommend).await?
        } else {
            HashMap::new()
        };
        let renderer = Renderer {
            members,
            events,
            names,
            templates,
            shelves,
            links: self.options.links.clone(),
            shop: self.options.shop.clone(),
            default_timezone: self.policies.default_timezone,
            channels: self.channels.clone(),
            stopping: Arc::clone(&self.stopping),
            now,
        };

        // The providers' health as all workers left it: a paused provider's deliveries wait.
        self.limits.refresh(&self.store).await?;
        let started = std::time::Instant::now();
        let live_now = move || now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();

        let count = claimed.len();
        let mut in_flight: HashSet<i64> = claimed.iter().map(|d| d.id).collect();
        // Two halves run side by side in this task. The first renders each message just
        // before it is sent and keeps `send_concurrency` sends in flight; the second writes
        // the outcomes as they come, all that finished while it wrote the last ones in one
        // transaction. Neither waits for the other: rendering overlaps the network, and the
        // network the database (writing a group used to pause every send in flight: 4,200
        // -> 8,800 emails/s into smtp-sink). A send starts only with one of
        // 2 × `send_concurrency` slots, freed when its outcome is committed, so a crash
        // re-sends at most that many: the ones in flight and the ones not yet written.
        let group = self.options.send_concurrency.max(1);
        let slots = tokio::sync::Semaphore::new(2 * group);
        // Rendering (templates, signed links) and composing (MIME) run on a thread of their
        // own, at most 2 × `send_concurrency` messages ahead of the sends: they are most of
        // a send's CPU, and on the task that drives the sockets they made sending
        // single-threaded.
        let (ready_tx, mut ready) = tokio::sync::mpsc::channel(2 * group);
        let rendering = tokio::task::spawn_blocking(move || {
            for d in claimed {
                let ready = renderer.prepare(&d);
                if ready_tx.blocking_send((d, ready)).is_err() {
                    return;
                }
            }
        });
        let (finished_tx, mut finished) = tokio::sync::mpsc::unbounded_channel();
        let (channels, slots) = (&self.channels, &slots);
        let send = async move {
            let mut sends = futures_util::stream::poll_fn(|cx| ready.poll_recv(cx))
                .map(|(d, ready): (ClaimedDelivery, Ready)| async move {
                    let slot = slots.acquire().await.expect("the semaphore is never closed");
                    // A stopping worker hands what it has not sent back at once, uncharged.
                    if self.is_stopping() {
                        return (Finished::Unsent(d, DeliveryOutcome::Deferred { at: now, error: None }), slot);
                    }
                    if let Some(waits) = self.may_send(&d, &live_now).await {
                        return (Finished::Unsent(d, waits), slot);
                    }
                    let done = match ready {
                        Ok((out, prepared, shown)) => {
                            let started = std::time::Instant::now();
                            // Each send is a task of its own, so the protocol work of the
                            // connections in flight spreads over the runtime's threads
                            // instead of all being polled by this one task.
                            let channels = channels.clone();
                            let mut sending = AbortOnDrop(tokio::spawn(async move {
                                let result = match prepared {
                                    Ok(prepared) => channels.send_prepared(&out, prepared).await,
                                    Err(error) => Err(error),
                                };
                                (out, result)
                            }));
                            let (out, result) = match (&mut sending.0).await {
                                Ok(sent) => sent,
                                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                                // Only a runtime shutting down cancels a task: the message may
                                // have gone, so it is tried again later, as after a crash.
                                Err(error) => {
                                    let error = Some(format!("the send was cancelled: {error}"));
                                    return (Finished::Unsent(d, DeliveryOutcome::Deferred { at: now, error }), slot);
                                }
                            };
                            crate::telemetry::record_send_result(out.channel, &result, started.elapsed());
                            // A provider's failure is told to every worker at once (a
                            // `Retry-After` holds for all from now, not from when this
                            // group's outcomes are written); answers wait for the group.
                            let event = provider_event(&result);
                            if matches!(event, breaker::Event::Failed { .. }) {
                                let at = live_now();
                                self.limits.note(out.channel, &event, at);
                                let failed = HashMap::from([(out.channel, vec![event])]);
                                if let Err(error) = self.limits.observe(&self.store, failed, at).await {
                                    tracing::warn!(%error, provider = %out.channel, "could not record a provider failure");
                                }
                            }
                            Finished::Sent(d, Box::new(out), result, shown)
                        }
                        Err(outcome) => Finished::Unsent(d, outcome),
                    };
                    (done, slot)
                })
                .buffer_unordered(group);
            while let Some(done) = sends.next().await {
                // The receiver is gone only when writing failed, and then this is dropped.
                let _ = finished_tx.send(done);
            }
            Ok::<(), EngineError>(())
        };
        let mut unregistered = Vec::new();
        let record = async {
            // A batch that takes a while renews its claim on what it has not sent yet, so
            // the lease only runs out for a worker that stopped.
            let mut held = started;
            let renew_every = (self.options.lease / 3).to_std().unwrap_or_default();
            let mut done = Vec::with_capacity(2 * group);
            while finished.recv_many(&mut done, 2 * group).await > 0 {
                let (finished_now, slots): (Vec<Finished>, Vec<_>) = done.drain(..).unzip();
                // The answers first (failures were recorded as they came): an answer
                // closes an open breaker. Then a failure that paused its provider makes its
                // delivery wait for the pause, uncharged.
                let mut events: HashMap<Channel, Vec<breaker::Event>> = HashMap::new();
                for f in &finished_now {
                    if let Finished::Sent(_, out, result, _) = f
                        && provider_event(result) == breaker::Event::Answered
                    {
                        events.entry(out.channel).or_default().push(breaker::Event::Answered);
                    }
                }
                let at = live_now();
                self.limits.observe(&self.store, events, at).await?;
                let mut shown_now: Vec<(String, String)> = Vec::new();
                let outcomes: Vec<(ClaimedDelivery, DeliveryOutcome)> = finished_now
                    .into_iter()
                    .map(|f| {
                        let (d, outcome) = match f {
                            Finished::Sent(d, out, result, shown) => {
                                let outcome = match (&result, self.limits.health(out.channel).gate(at)) {
                                    (
                                        Err(SendError::Transient { reason, scope: Scope::Provider, .. }),
                                        Gate::Paused(until),
                                    ) => DeliveryOutcome::Deferred { at: until, error: Some(reason.clone()) },
                                    // The provider's trouble, before its breaker opened: the
                                    // attempt counts, but the retry comes within the breaker's
                                    // longest pause, not on this delivery's own backoff.
                                    (Err(SendError::Transient { scope: Scope::Provider, .. }), _) => {
                                        match self.outcome(&d, &out, result, at, &mut unregistered) {
                                            DeliveryOutcome::Retry { at: later, error } => DeliveryOutcome::Retry {
                                                at: later.min(at + self.limits.policy.max_pause),
                                                error,
                                            },
                                            other => other,
                                        }
                                    }
                                    _ => self.outcome(&d, &out, result, at, &mut unregistered),
                                };
                                if matches!(outcome, DeliveryOutcome::Sent { .. }) {
                                    shown_now.extend(shown.into_iter().map(|p| (d.member_id.clone(), p)));
                                }
                                (d, outcome)
                            }
                            Finished::Unsent(d, outcome) => (d, outcome),
                        };
                        in_flight.remove(&d.id);
                        (d, outcome)
                    })
                    .collect();
                self.store.record_outcomes(&outcomes, &shown_now, now).await?;
                drop(slots);
                if held.elapsed() >= renew_every && !in_flight.is_empty() {
                    let elapsed = chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
                    let ids: Vec<i64> = in_flight.iter().copied().collect();
                    self.store.hold_deliveries(&ids, now + elapsed + self.options.lease).await?;
                    held = std::time::Instant::now();
                }
            }
            Ok::<(), EngineError>(())
        };
        tokio::try_join!(send, record)?;
        if let Err(error) = rendering.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
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
            Err(SendError::Transient { reason, retry_after, .. }) => {
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

impl Engine {
    /// Whether `d` may go to its provider now; if not, what to record instead (a deferral,
    /// uncharged: the provider is paused, or a probe of it is out). Takes the provider's
    /// probe when its breaker wants one, and a token of its shared rate.
    async fn may_send(&self, d: &ClaimedDelivery, now: &(dyn Fn() -> DateTime<Utc> + Sync)) -> Option<DeliveryOutcome> {
        let channel = Channel::parse(&d.channel)?;
        let wait = |gate: Gate, at: DateTime<Utc>| -> Option<DeliveryOutcome> {
            let health = self.limits.health(channel);
            let error = health.reason.map(|r| format!("{channel} provider paused: {r}"));
            match gate {
                Gate::Open | Gate::Probe => None,
                Gate::Paused(until) => Some(DeliveryOutcome::Deferred { at: until, error }),
                Gate::Probing => Some(DeliveryOutcome::Deferred { at: at + self.limits.policy.probe_wait, error }),
            }
        };
        let at = now();
        match self.limits.gate(channel, at) {
            Gate::Open => {}
            Gate::Probe => match self.limits.take_probe(&self.store, channel, at).await {
                // The probe goes without waiting for a token: it is one message.
                Ok(true) => return None,
                Ok(false) => return wait(Gate::Probing, at),
                Err(error) => return Some(DeliveryOutcome::Deferred { at, error: Some(error.to_string()) }),
            },
            gate => return wait(gate, at),
        }
        match self.limits.acquire(&self.store, channel, now, || self.is_stopping()).await {
            Ok(Gate::Open) if self.is_stopping() => Some(DeliveryOutcome::Deferred { at: now(), error: None }),
            Ok(Gate::Open) => None,
            Ok(Gate::Probe) => Some(DeliveryOutcome::Deferred { at: now(), error: None }),
            Ok(gate) => wait(gate, now()),
            Err(error) => Some(DeliveryOutcome::Deferred { at: now(), error: Some(error.to_string()) }),
        }
    }
}

/// What a send's result says about its provider.
fn provider_event(result: &Result<crate::channels::Receipt, SendError>) -> breaker::Event {
    match result {
        Err(SendError::Transient { reason, retry_after, scope: Scope::Provider }) => {
            breaker::Event::Failed { reason: reason.clone(), retry_after: *retry_after }
        }
        _ => breaker::Event::Answered,
    }
}

/// A delivery the send half is done with.
enum Finished {
    /// Rendered and handed to its channel, with the channel's answer and the products
    /// the message showed.
    Sent(ClaimedDelivery, Box<Outgoing>, Result<crate::channels::Receipt, SendError>, Vec<String>),
    /// Not sendable (its member or template is gone, or it does not render).
    Unsent(ClaimedDelivery, DeliveryOutcome),
}

/// A delivery made ready on the render thread: the message, what its channel prepared
/// (or why it could not), and the products it shows; or, when it cannot be rendered, the
/// outcome to record.
type Ready = Result<(Outgoing, Result<Prepared, SendError>, Vec<String>), DeliveryOutcome>;

/// What rendering a batch needs, owned, so the render thread can hold it.
struct Renderer {
    members: HashMap<String, crate::member::Member>,
    events: HashMap<String, crate::member::Event>,
    names: HashMap<(String, String), String>,
    templates: Arc<crate::template::TemplateCatalog>,
    shelves: HashMap<String, crate::recommend::Shelf>,
    links: crate::links::LinkSigner,
    shop: crate::template::ShopInfo,
    default_timezone: chrono_tz::Tz,
    channels: crate::channels::Channels,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    now: DateTime<Utc>,
}

impl Renderer {
    /// Renders `d` for its member with its signed links, then lets its channel prepare it.
    fn prepare(&self, d: &ClaimedDelivery) -> Ready {
        // A stopping worker gives the delivery back; the send half records that.
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(DeliveryOutcome::Deferred { at: self.now, error: None });
        }
        let (Some(member), Some(channel), Some(template)) =
            (self.members.get(&d.member_id), Channel::parse(&d.channel), d.template.as_deref())
        else {
            let error = "the member, channel or template of this delivery is gone".to_string();
            return Err(DeliveryOutcome::Failed { error, suppress: false });
        };
        let links = self.links.for_delivery(d.id, &d.member_id, channel);
        let unsubscribe = links.unsubscribe_url();
        let context = MessageContext {
            member: member_value(member, self.now, self.default_timezone),
            event: d
                .trigger_event_id
                .as_ref()
                .and_then(|id| self.events.get(id))
                .map(event_value)
                .unwrap_or_else(|| serde_json::json!({})),
            journey: JourneyInfo {
                id: d.journey_id.clone(),
                name: self.names.get(&(d.journey_id.clone(), d.version.clone())).cloned().unwrap_or_default(),
            },
            step: StepInfo { id: d.step.clone() },
            variant: d.variant.clone(),
            vars: d.vars.as_object().cloned().unwrap_or_default(),
            links: Links { unsubscribe: unsubscribe.clone(), preferences: unsubscribe.clone() },
            shop: self.shop.clone(),
        };
        // Email links are tracked (signed click redirects and the open pixel) unless the
        // template says `tracking: false`; SMS and push keep links as written, short
        // enough for a segment and a notification.
        let tracker: &dyn LinkTracker = if channel == Channel::Email { &links } else { &Untracked };
        let options = RenderOptions { default_timezone: self.default_timezone, links: tracker };
        let no_shelf = crate::recommend::Shelf::default();
        let shelf = self.shelves.get(&d.member_id).unwrap_or(&no_shelf);
        match self.templates.render_shelved(template, channel, &context, &options, shelf) {
            Ok((message, shown)) => {
                let out = Outgoing {
                    delivery_id: d.id,
                    member_id: d.member_id.clone(),
                    channel,
                    to: d.address.clone().unwrap_or_default(),
                    message,
                    unsubscribe_url: Some(unsubscribe),
                };
                let prepared = self.channels.prepare(&out);
                Ok((out, prepared, shown))
            }
            // A template that does not render for this member never will: fail it
            // (recorded with the reason), never send a message with a hole.
            Err(e) => Err(DeliveryOutcome::Failed { error: e.to_string(), suppress: false }),
        }
    }
}

/// A send's task, cancelled with the future that awaits it: when a batch stops halfway (its
/// outcomes could not be written), its sends in flight stop too, as they did when they were
/// polled by the batch itself, rather than finishing messages nobody will record (each one
/// a duplicate when the delivery is claimed again).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
