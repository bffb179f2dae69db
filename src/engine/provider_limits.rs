//! The engine's side of provider limits (the policy; the SQL is `store::provider_limits`,
//! the arithmetic and the breaker are `crate::breaker`):
//!
//! - **one rate for all workers**: before a send to a rate-limited provider, a token comes
//!   from this process's few local tokens, else from the shared bucket (one statement per
//!   take of up to a twentieth of a second's worth); tokens not used within that time are
//!   dropped, so no worker spends an old second's tokens;
//! - **a provider's health** is read once per batch (and comes back with every take), so a
//!   pause set by any worker holds for all; what a batch's sends say about their provider
//!   is written back a group at a time ([`ProviderLimits::observe`]).

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::breaker::{Bucket, Event, Gate, Health, Policy};
use crate::channel::Channel;
use crate::store::{Store, StoreError};

/// Local tokens older than this are dropped (the bucket's burst is a twentieth of a second).
const LOCAL_TOKENS_KEEP: std::time::Duration = std::time::Duration::from_millis(50);

pub struct ProviderLimits {
    buckets: HashMap<Channel, Bucket>,
    local: HashMap<Channel, tokio::sync::Mutex<(u32, Instant)>>,
    health: std::sync::Mutex<HashMap<Channel, Health>>,
    pub policy: Policy,
}

impl ProviderLimits {
    /// `rates`: messages per second per channel (0 or absent: no limit).
    pub fn new(rates: &HashMap<Channel, u32>, policy: Policy) -> ProviderLimits {
        let buckets: HashMap<Channel, Bucket> =
            rates.iter().filter(|(_, rate)| **rate > 0).map(|(c, rate)| (*c, Bucket::for_rate(*rate))).collect();
        let local = buckets.keys().map(|c| (*c, tokio::sync::Mutex::new((0, Instant::now())))).collect();
        ProviderLimits { buckets, local, health: std::sync::Mutex::default(), policy }
    }

    fn health_map(&self) -> std::sync::MutexGuard<'_, HashMap<Channel, Health>> {
        // Written whole-entry only: a panic elsewhere cannot leave it torn.
        self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the store says of every provider (at the start of a batch).
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let rows = store.provider_health().await?;
        let mut map = self.health_map();
        map.clear();
        for (provider, health) in rows {
            if let Some(channel) = Channel::parse(&provider) {
                map.insert(channel, health);
            }
        }
        Ok(())
    }

    pub fn health(&self, channel: Channel) -> Health {
        self.health_map().get(&channel).cloned().unwrap_or_default()
    }

    fn set_health(&self, channel: Channel, health: Health) {
        self.health_map().insert(channel, health);
    }

    pub fn gate(&self, channel: Channel, now: DateTime<Utc>) -> Gate {
        self.health_map().get(&channel).map_or(Gate::Open, |h| h.gate(now))
    }

    /// Tries to take the probe of `channel`'s open breaker for this worker.
    pub async fn take_probe(&self, store: &Store, channel: Channel, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let hold = now + self.policy.probe_timeout;
        let taken = store.take_probe(channel.as_str(), now, hold).await?;
        let mut health = self.health(channel);
        // Taken or not, a probe is out: the rest of the batch waits for its answer.
        health.probe_until = Some(hold);
        self.set_health(channel, health);
        Ok(taken)
    }

    /// Waits for one token of `channel`'s shared bucket (no wait for a provider without a
    /// rate). Answers the provider's gate as the store last said it: a send goes only on
    /// [`Gate::Open`] (or as the probe).
    pub async fn acquire(
        &self,
        store: &Store,
        channel: Channel,
        now: impl Fn() -> DateTime<Utc>,
        stopping: impl Fn() -> bool,
    ) -> Result<Gate, StoreError> {
        let (Some(bucket), Some(local)) = (self.buckets.get(&channel), self.local.get(&channel)) else {
            return Ok(Gate::Open);
        };
        let mut local = local.lock().await;
        loop {
            if local.0 > 0 && local.1.elapsed() < LOCAL_TOKENS_KEEP {
                local.0 -= 1;
                return Ok(Gate::Open);
            }
            let taken =
                store.take_tokens(channel.as_str(), *bucket, bucket.burst, Utc::now().timestamp_millis()).await?;
            self.set_health(channel, taken.health.clone());
            let gate = taken.health.gate(now());
            if taken.granted > 0 {
                *local = (taken.granted - 1, Instant::now());
                return Ok(gate);
            }
            if gate != Gate::Open || stopping() {
                return Ok(gate);
            }
            tokio::time::sleep(bucket.wait()).await;
        }
    }

    /// What one send just said about its provider, noted in this process at once (the
    /// record half writes it to the store a group later): this worker's next sends see a
    /// `Retry-After` pause or an open breaker without waiting for that write.
    pub fn note(&self, channel: Channel, event: &Event, now: DateTime<Utc>) {
        if matches!(event, Event::Failed { .. }) {
            let health = self.health(channel).after(event, now, &self.policy);
            self.set_health(channel, health);
        }
    }

    /// Records what sends said about their providers, in the store when it changes
    /// anything (a failure, or an answer from a provider that had failures); returns the
    /// providers' health after.
    pub async fn observe(
        &self,
        store: &Store,
        events: HashMap<Channel, Vec<Event>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for (channel, events) in events {
            let failed = events.iter().any(|e| matches!(e, Event::Failed { .. }));
            if !failed && !self.health(channel).heeds_answers() {
                continue;
            }
            let policy = self.policy;
            let health =
                store.update_provider_health(channel.as_str(), |old| old.after_all(&events, now, &policy)).await?;
            if health.probing && !self.health(channel).probing {
                tracing::warn!(provider = %channel, reason = ?health.reason, until = ?health.paused_until,
                    "provider paused: its breaker opened; one message will probe it");
            } else if !health.probing && self.health(channel).probing {
                tracing::info!(provider = %channel, "provider answers again: its breaker closed");
            }
            self.set_health(channel, health);
        }
        Ok(())
    }
}
