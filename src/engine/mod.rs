//! The engine: the edge that moves members through journeys (DESIGN §2, §6, §7).
//!
//! One [`Engine::tick`] at `now` does, in order, each in batches:
//! 1. [`inbox`]: events that arrived start runs (event triggers), end them (`exit_when`),
//!    wake waits (`for_event`) and reach goals — one worker at a time (the `inbox` lease);
//! 2. [`triggers`]: schedule firings and date-trigger scans enroll members — one worker at a
//!    time (the `scheduler` lease), each firing claimed once in the database;
//! 3. [`advance`]: due runs are claimed (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and each is
//!    decided by [`crate::decision::advance`]; the new state, the deliveries and the timeline
//!    are written in one transaction per batch;
//! 4. [`dispatch`]: due deliveries are claimed, rendered and sent concurrently, and their
//!    outcomes written in one transaction per batch.
//!
//! `now` is a parameter: `serve` passes the wall clock, tests and `simulate` a virtual one.
//! No state lives in memory between ticks except caches; a waiting member is a row.

mod advance;
pub mod alerts;
mod dispatch;
mod inbox;
pub mod provider_limits;
pub mod registry;
mod triggers;
pub mod wake;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::channels::{Channels, RetryPolicy};
use crate::config::Config;
use crate::decision::Policies;
use crate::links::LinkSigner;
use crate::store::{Store, StoreError};
use crate::template::ShopInfo;
pub use registry::Registry;

/// How an engine works (the defaults suit `serve`).
#[derive(Debug, Clone)]
pub struct Options {
    /// This worker's name: unique per process (leases and claims carry it).
    pub worker: String,
    /// Runs, events or deliveries per batch (one transaction each).
    pub batch: i64,
    /// How long a claim holds before another worker may take the work over.
    pub lease: chrono::Duration,
    /// Schedule firings missed by at most this much (the service was down) still fire.
    pub catch_up: chrono::Duration,
    /// Sends in flight at once.
    pub send_concurrency: usize,
    pub retry: RetryPolicy,
    /// Signs the unsubscribe, open and click links of each message (`TIDINGS_PUBLIC_URL`,
    /// `TIDINGS_LINK_SECRET`).
    pub links: LinkSigner,
    pub shop: ShopInfo,
    /// What members are recommended (`[recommendations]`).
    pub recommend: crate::recommend::Settings,
    /// Messages per second per channel (`[channels.*] messages_per_second`), for all
    /// workers together ([`provider_limits`]); a channel absent or at 0 has no limit, and
    /// one that writes to the outbox none either.
    pub rates: HashMap<crate::channel::Channel, u32>,
    /// When a provider is paused and probed ([`crate::breaker`]).
    pub breaker: crate::breaker::Policy,
}

impl Options {
    pub fn from_config(config: &Config, links: LinkSigner) -> Options {
        Options {
            worker: format!("{}-{}-{}", hostname(), std::process::id(), random_token()),
            batch: i64::from(config.engine.batch),
            lease: chrono::Duration::from_std(Config::seconds(&config.engine.lease)).expect("checked at load"),
            catch_up: chrono::Duration::from_std(Config::seconds(&config.engine.catch_up)).expect("checked at load"),
            send_concurrency: config.engine.send_concurrency as usize,
            retry: RetryPolicy::from_config(&config.channels.retry),
            links,
            shop: shop_info(config),
            recommend: config.recommendations.settings(),
            rates: {
                use crate::channel::Channel;
                let c = &config.channels;
                HashMap::from([
                    (Channel::Email, c.email.messages_per_second),
                    (Channel::Sms, c.sms.messages_per_second),
                    (Channel::Push, c.push.messages_per_second),
                    (Channel::Webhook, c.webhook.messages_per_second),
                ])
            },
            breaker: crate::breaker::Policy::default(),
        }
    }
}

/// `shop.*` in templates, from `[shop]` in the config.
pub fn shop_info(config: &Config) -> ShopInfo {
    ShopInfo {
        name: config.shop.name.clone(),
        url: config.shop.url.clone(),
        support_email: config.shop.support_email.clone(),
        address: config.shop.address.clone(),
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "tidings".to_string())
}

/// A random token (claims, worker names).
pub(crate) fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..12).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
}

/// Where the engine reads the time: the wall clock in `serve`, a fixed instant in tests.
pub type Clock<'a> = dyn Fn() -> DateTime<Utc> + Sync + 'a;

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    pub events: usize,
    pub enrolled: u64,
    pub advanced: usize,
    pub sent: usize,
}

impl Tick {
    pub fn is_idle(&self) -> bool {
        *self == Tick::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Engine {
    store: Store,
    registry: Mutex<Registry>,
    policies: Policies,
    settings: crate::state::Settings,
    channels: Channels,
    options: Options,
    /// Where each schedule's firings were looked at up to (filled from the store).
    schedule_cursor: Mutex<HashMap<String, DateTime<Utc>>>,
    /// The last UTC day this process saw derived state refreshed (skips the claim after).
    derived_day: Mutex<Option<chrono::NaiveDate>>,
    /// The same for the recommendation models ([`Engine::refresh_models`]).
    models_day: Mutex<Option<chrono::NaiveDate>>,
    /// The recommendation model and catalogue between batches, current while the
    /// database's stamps say so (a rebuild or product write on any worker changes them).
    shelf_cache: crate::store::products::ShelfCache,
    /// The leases this worker holds, and until when the store says so ([`Engine::hold_lease`]).
    leases: std::sync::Mutex<HashMap<&'static str, DateTime<Utc>>>,
    /// The alert rules ([`alerts`]) and the last minute this process evaluated them in.
    alerting: std::sync::RwLock<Arc<alerts::Alerting>>,
    alert_minute: Mutex<Option<DateTime<Utc>>>,
    /// Shared rates and provider health ([`provider_limits`]).
    limits: provider_limits::ProviderLimits,
    /// Set by [`Engine::stop`]: finish the batch in flight, claim nothing more.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Engine {
    pub fn new(
        store: Store,
        registry: Registry,
        policies: Policies,
        settings: crate::state::Settings,
        channels: Channels,
        options: Options,
    ) -> Engine {
        // A channel that writes files has no provider to protect.
        let rates: HashMap<crate::channel::Channel, u32> = options
            .rates
            .iter()
            .filter(|(channel, _)| channels.sender(**channel).provider() != "outbox")
            .map(|(c, r)| (*c, *r))
            .collect();
        let limits = provider_limits::ProviderLimits::new(&rates, options.breaker);
        Engine {
            limits,
            store,
            registry: Mutex::new(registry),
            policies,
            settings,
            channels,
            options,
            schedule_cursor: Mutex::new(HashMap::new()),
            derived_day: Mutex::new(None),
            models_day: Mutex::new(None),
            shelf_cache: crate::store::products::ShelfCache::new(),
            leases: std::sync::Mutex::new(HashMap::new()),
            alerting: std::sync::RwLock::default(),
            alert_minute: Mutex::new(None),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn settings(&self) -> &crate::state::Settings {
        &self.settings
    }

    /// Asks the engine to stop (SIGTERM): the batch in flight finishes — sends already
    /// handed to a channel are waited for and recorded, deliveries of the batch not yet
    /// sent are given back uncharged — and no phase claims anything more. Ticks after this
    /// do nothing.
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Engine::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Swaps in newly loaded journeys (SIGHUP); runs on older versions keep them.
    pub async fn reload(&self, registry: Registry) {
        *self.registry.lock().await = registry;
        self.schedule_cursor.lock().await.clear();
    }

    /// One pass over everything due at `now`: the four phases below, in order.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Tick, EngineError> {
        self.tick_with(&|| now).await
    }

    /// [`Engine::tick`] reading `clock` before each batch: `serve` passes the wall clock, so
    /// a claim made late in a long tick still holds for its full lease.
    pub async fn tick_with(&self, clock: &Clock<'_>) -> Result<Tick, EngineError> {
        let mut tick = Tick::default();
        if self.is_stopping() {
            return Ok(tick);
        }
        tick.events = self.take_events(clock()).await?;
        if self.is_stopping() {
            return Ok(tick);
        }
        tick.enrolled = self.enroll(clock()).await?;
        if self.is_stopping() {
            return Ok(tick);
        }
        (tick.advanced, tick.sent) = self.advance_and_send(clock).await?;
        // Alerts watch the engine; a failure to evaluate them must not stop it.
        if let Err(error) = self.watch(clock()).await {
            tracing::error!(%error, "evaluating the alert rules failed");
        }
        Ok(tick)
    }

    /// Phase 1: events in the inbox (one batch) start, end, wake and convert runs.
    pub async fn take_events(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        self.process_inbox(now).await
    }

    /// Phase 2: schedule firings and date scans due by `now` enroll their members.
    pub async fn enroll(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        self.fire_triggers(now).await
    }

    /// Phase 3: every run due by `now` is decided, a batch per transaction.
    pub async fn advance(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        self.advance_with(&|| now).await
    }

    /// Phase 4: every delivery due by `now` is rendered and sent.
    pub async fn send(&self, now: DateTime<Utc>) -> Result<usize, EngineError> {
        self.send_with(&|| now).await
    }

    async fn advance_with(&self, clock: &Clock<'_>) -> Result<usize, EngineError> {
        let mut total = 0;
        loop {
            let advanced = self.advance_due(clock()).await?;
            total += advanced;
            if (advanced as i64) < self.options.batch || self.is_stopping() {
                return Ok(total);
            }
        }
    }

    /// Phases 3 and 4 of a tick. On a database, side by side: each batch's deliveries are
    /// sent while the next batch of runs is decided, so the decisions' database work
    /// overlaps the rendering and the network (a batch is claimed either way, so the two
    /// never take the same work). The in-memory store of `simulate` and `preview` keeps
    /// them one after the other, so a simulated timeline's order does not depend on timing.
    async fn advance_and_send(&self, clock: &Clock<'_>) -> Result<(usize, usize), EngineError> {
        if matches!(self.store, Store::Memory(_)) {
            let advanced = self.advance_with(clock).await?;
            if self.is_stopping() {
                return Ok((advanced, 0));
            }
            return Ok((advanced, self.send_with(clock).await?));
        }
        let advancing = std::sync::atomic::AtomicBool::new(true);
        let decided = tokio::sync::Notify::new();
        let advance = async {
            let mut total = 0;
            let result = loop {
                match self.advance_due(clock()).await {
                    Ok(advanced) => {
                        total += advanced;
                        decided.notify_one();
                        if (advanced as i64) < self.options.batch || self.is_stopping() {
                            break Ok(total);
                        }
                    }
                    Err(error) => break Err(error),
                }
            };
            advancing.store(false, std::sync::atomic::Ordering::SeqCst);
            decided.notify_one();
            result
        };
        // Both halves always run to their end (no `try_join`): a send batch is never dropped
        // halfway because the other half failed.
        let send = async {
            let mut total = 0;
            loop {
                let more_coming = advancing.load(std::sync::atomic::Ordering::SeqCst);
                let next_batch = decided.notified();
                let sent = self.dispatch(clock()).await?;
                total += sent;
                if self.is_stopping() {
                    return Ok::<usize, EngineError>(total);
                }
                if (sent as i64) < self.options.batch {
                    if !more_coming {
                        return Ok(total);
                    }
                    if sent == 0 {
                        next_batch.await;
                    }
                }
            }
        };
        let (advanced, sent) = tokio::join!(advance, send);
        Ok((advanced?, sent?))
    }

    async fn send_with(&self, clock: &Clock<'_>) -> Result<usize, EngineError> {
        let mut total = 0;
        loop {
            let sent = self.dispatch(clock()).await?;
            total += sent;
            if (sent as i64) < self.options.batch || self.is_stopping() {
                return Ok(total);
            }
        }
    }

    /// Ticks at `now` until nothing more happens (tests and `simulate`: a decision can make
    /// more work due at the same instant — an event that wakes a run, a send to dispatch).
    pub async fn settle(&self, now: DateTime<Utc>) -> Result<Tick, EngineError> {
        let mut total = Tick::default();
        for _ in 0..100 {
            let tick = self.tick(now).await?;
            if tick.is_idle() {
                break;
            }
            total.events += tick.events;
            total.enrolled += tick.enrolled;
            total.advanced += tick.advanced;
            total.sent += tick.sent;
        }
        Ok(total)
    }

    /// Whether this worker holds lease `name` at `now`, taking or renewing it in the store
    /// only when less than half of it is left: a lease held until `until` cannot be taken
    /// by anyone before then, so renewing it at every tick (five times a second when idle,
    /// at every clock stop of a simulation) was a write transaction that changed nothing.
    async fn hold_lease(&self, name: &'static str, now: DateTime<Utc>) -> Result<bool, EngineError> {
        let held = self.held_leases().get(name).copied();
        if held.is_some_and(|until| until - now > self.options.lease / 2) {
            return Ok(true);
        }
        let taken = self.store.take_lease(name, &self.options.worker, now, self.options.lease).await?;
        if taken {
            self.held_leases().insert(name, now + self.options.lease);
        } else {
            self.held_leases().remove(name);
        }
        Ok(taken)
    }

    fn held_leases(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, DateTime<Utc>>> {
        // The map is only ever written whole-entry, so a panic elsewhere cannot leave it torn.
        self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives up this worker's leases (at shutdown).
    pub async fn release(&self) -> Result<(), EngineError> {
        self.held_leases().clear();
        for lease in [inbox::LEASE, triggers::LEASE] {
            self.store.release_lease(lease, &self.options.worker).await?;
        }
        Ok(())
    }
}

/// Policies from `tidings.toml` (`config::Config::validate` has checked the syntax).
pub fn policies(config: &Config) -> Result<Policies, String> {
    let mut policies = Policies::none(config.timezone());
    for (channel, window) in &config.policies.quiet_hours {
        let c = crate::channel::Channel::parse(channel)
            .ok_or_else(|| format!("policies.quiet_hours: no channel `{channel}`"))?;
        let q = crate::timing::QuietHours::parse(window).map_err(|e| format!("policies.quiet_hours.{channel}: {e}"))?;
        policies.quiet_hours.insert(c, q);
    }
    for (channel, cap) in &config.policies.frequency_caps {
        let c = crate::channel::Channel::parse(channel)
            .ok_or_else(|| format!("policies.frequency_caps: no channel `{channel}`"))?;
        let f =
            crate::timing::FrequencyCap::parse(cap).map_err(|e| format!("policies.frequency_caps.{channel}: {e}"))?;
        policies.frequency_caps.insert(c, f);
    }
    Ok(policies)
}

/// Shared handle.
pub type SharedEngine = Arc<Engine>;
