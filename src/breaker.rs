//! A provider's health, pure: the circuit breaker, `Retry-After` pauses, and the arithmetic
//! of the token bucket that keeps all workers together under a provider's rate.
//!
//! A provider that is down or throttling is one provider problem, not one problem per
//! delivery. So its failures ([`Event::Failed`]: connection refused, timeouts, SMTP 421,
//! HTTP 429/5xx) are counted for the provider, shared by every worker through the store:
//!
//! - `Retry-After` (429, 503) pauses the whole provider for that long;
//! - `threshold` failures in a row *open* the breaker: the provider is paused for
//!   `first_pause`, then probed with **one** message at a time; a failed probe doubles the
//!   pause (up to `max_pause`), the first answer closes the breaker.
//!
//! While a provider is paused its deliveries wait for the pause to end without being
//! charged an attempt (the engine's business; see `engine::provider_limits`). No I/O and no
//! clock here: `now` is a parameter.

use chrono::{DateTime, Duration, Utc};

/// How the breaker behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Provider failures in a row that open the breaker.
    pub threshold: u32,
    /// The first pause after the breaker opens; each failed probe doubles it.
    pub first_pause: Duration,
    /// The longest pause the breaker takes on its own (`Retry-After` may ask for longer).
    pub max_pause: Duration,
    /// How long a probe holds the provider for itself before another worker may probe.
    pub probe_timeout: Duration,
    /// How long the other messages wait while a probe is out (they are tried again then,
    /// so sending resumes within this of the probe's answer).
    pub probe_wait: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            threshold: 5,
            first_pause: Duration::seconds(2),
            max_pause: Duration::seconds(16),
            probe_timeout: Duration::seconds(30),
            probe_wait: Duration::seconds(2),
        }
    }
}

/// What the workers know together about one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Provider failures since its last answer.
    pub failures: u32,
    /// Nothing is sent to the provider before this.
    pub paused_until: Option<DateTime<Utc>>,
    /// The breaker's last pause (doubled at each failed probe); zero when closed.
    pub pause: Duration,
    /// The breaker is open: after the pause, one message probes the provider.
    pub probing: bool,
    /// A probe is out until then (taken by one worker, [`Gate::Probe`]).
    pub probe_until: Option<DateTime<Utc>>,
    /// Why the provider is paused (the last failure).
    pub reason: Option<String>,
}

/// What a send told about its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The provider answered (a success, or a refusal of that one message).
    Answered,
    /// The provider did not serve at all (down, timing out, throttling).
    Failed { reason: String, retry_after: Option<std::time::Duration> },
}

/// May a message go to the provider now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Wait until then (no attempt is charged).
    Paused(DateTime<Utc>),
    /// The breaker is open and its pause is over: one message may probe.
    Probe,
    /// A probe is out: wait for its answer.
    Probing,
}

impl Health {
    pub fn gate(&self, now: DateTime<Utc>) -> Gate {
        match self.paused_until {
            Some(until) if until > now => Gate::Paused(until),
            _ if self.probing && self.probe_until.is_some_and(|p| p > now) => Gate::Probing,
            _ if self.probing => Gate::Probe,
            _ => Gate::Open,
        }
    }

    /// Whether an answer would change nothing (the usual case: no write needed).
    pub fn is_clear(&self) -> bool {
        self.failures == 0 && !self.probing && self.paused_until.is_none()
    }

    /// Whether an answer would change anything (failures to forget, a breaker to close).
    pub fn heeds_answers(&self) -> bool {
        self.failures > 0 || self.probing
    }

    /// The health after `event` at `now`.
    pub fn after(&self, event: &Event, now: DateTime<Utc>, policy: &Policy) -> Health {
        match event {
            // An answer closes the breaker; a `Retry-After` pause holds until its end
            // (answers to sends already in flight when it came do not lift it).
            Event::Answered if self.probing => Health::default(),
            Event::Answered => match self.paused_until.filter(|until| *until > now) {
                Some(until) => Health { paused_until: Some(until), reason: self.reason.clone(), ..Health::default() },
                None => Health::default(),
            },
            Event::Failed { reason, retry_after: Some(wait) } => {
                let until = now + Duration::from_std(*wait).unwrap_or(Duration::MAX);
                Health {
                    failures: self.failures.saturating_add(1),
                    paused_until: Some(self.paused_until.map_or(until, |p| p.max(until))),
                    reason: Some(reason.clone()),
                    ..self.clone()
                }
            }
            Event::Failed { reason, retry_after: None } => {
                let failures = self.failures.saturating_add(1);
                // A probe failed, or the failures reached the threshold: (re)open.
                let opens = self.probing || failures >= policy.threshold;
                if !opens {
                    return Health { failures, reason: Some(reason.clone()), ..self.clone() };
                }
                // Failures of sends that were in flight when the breaker opened do not
                // lengthen its pause: only a failed probe (after the pause) doubles it.
                if let Some(until) = self.paused_until.filter(|u| *u > now) {
                    return Health {
                        failures,
                        paused_until: Some(until),
                        reason: Some(reason.clone()),
                        ..self.clone()
                    };
                }
                let pause = if self.pause <= Duration::zero() {
                    policy.first_pause
                } else {
                    (self.pause * 2).min(policy.max_pause)
                };
                Health {
                    failures,
                    paused_until: Some(now + pause),
                    pause,
                    probing: true,
                    probe_until: None,
                    reason: Some(reason.clone()),
                }
            }
        }
    }

    /// The health after each of `events` in turn.
    pub fn after_all<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Health {
        events.into_iter().fold(self.clone(), |health, event| health.after(event, now, policy))
    }
}

/// A token bucket in thousandths of a message (integers, the same on both databases):
/// `rate` messages per second refill it continuously up to `burst` messages. What the
/// store's one statement per take computes, written once here for the tests and the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub rate: u32,
    pub burst: u32,
}

impl Bucket {
    /// A bucket for `rate` messages per second whose burst is a twentieth of a second's
    /// worth (at least one): over any second no more than `rate` + 5 % are taken, which
    /// leaves the other 5 % of "the rate + 10 %" to the network's jitter between a take and
    /// the request's arrival (measured at the provider: F5 of the fault suite).
    pub fn for_rate(rate: u32) -> Bucket {
        Bucket { rate, burst: (rate / 20).max(1) }
    }

    /// The capacity in thousandths.
    pub fn capacity(&self) -> i64 {
        i64::from(self.burst) * 1000
    }

    /// Takes up to `want` messages from a bucket holding `tokens` (thousandths) last
    /// refilled at `refilled_ms`, at `now_ms`: (granted, tokens left, refilled at).
    pub fn take(&self, tokens: i64, refilled_ms: i64, now_ms: i64, want: u32) -> (u32, i64, i64) {
        let refill = (now_ms - refilled_ms).max(0) * i64::from(self.rate);
        let available = (tokens + refill).min(self.capacity());
        let granted = (available / 1000).min(i64::from(want));
        (granted as u32, available - granted * 1000, refilled_ms.max(now_ms))
    }

    /// How long to wait before asking again after an empty take.
    pub fn wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis((1000 * u64::from(self.burst) / u64::from(self.rate.max(1))).clamp(5, 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + seconds, 0).unwrap()
    }

    fn down() -> Event {
        Event::Failed { reason: "connection refused".into(), retry_after: None }
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_probes_once_the_pause_is_over() {
        let policy = Policy::default();
        let four = Health::default().after_all(&[down(), down(), down(), down()], t(0), &policy);
        assert_eq!(four.gate(t(0)), Gate::Open, "{four:?}");
        let open = four.after(&down(), t(0), &policy);
        assert_eq!(open.gate(t(1)), Gate::Paused(t(2)));
        assert_eq!(open.gate(t(2)), Gate::Probe);
        let probe = Health { probe_until: Some(t(32)), ..open.clone() };
        assert_eq!(probe.gate(t(3)), Gate::Probing);
        assert_eq!(probe.gate(t(32)), Gate::Probe, "a probe that never answered is taken again");
        // In-flight failures while paused do not lengthen the pause.
        assert_eq!(open.after(&down(), t(1), &policy).paused_until, Some(t(2)));
    }

    #[test]
    fn a_failed_probe_doubles_the_pause_up_to_the_cap_and_an_answer_closes() {
        let policy = Policy::default();
        let mut health = Health::default().after_all(&[down(), down(), down(), down(), down()], t(0), &policy);
        let mut now = t(0);
        let mut pauses = Vec::new();
        for _ in 0..6 {
            now = health.paused_until.unwrap();
            assert_eq!(health.gate(now), Gate::Probe);
            health = health.after(&down(), now, &policy);
            pauses.push((health.paused_until.unwrap() - now).num_seconds());
        }
        assert_eq!(pauses, [4, 8, 16, 16, 16, 16]);
        let closed = health.after(&Event::Answered, now, &policy);
        assert_eq!(closed, Health::default());
        assert_eq!(closed.gate(now), Gate::Open);
    }

    #[test]
    fn retry_after_pauses_the_provider_for_that_long_without_a_probe() {
        let policy = Policy::default();
        let throttled = Event::Failed { reason: "429".into(), retry_after: Some(std::time::Duration::from_secs(7)) };
        let health = Health::default().after(&throttled, t(0), &policy);
        assert_eq!(health.gate(t(6)), Gate::Paused(t(7)));
        assert_eq!(health.gate(t(7)), Gate::Open);
        // Answers to sends already in flight do not lift it.
        assert_eq!(health.after(&Event::Answered, t(1), &policy).gate(t(2)), Gate::Paused(t(7)));
        // A shorter Retry-After later never shortens the pause.
        let shorter = Event::Failed { reason: "429".into(), retry_after: Some(std::time::Duration::from_secs(1)) };
        assert_eq!(health.after(&shorter, t(1), &policy).paused_until, Some(t(7)));
    }

    #[test]
    fn the_bucket_refills_at_its_rate_and_never_holds_more_than_its_burst() {
        let bucket = Bucket::for_rate(100);
        assert_eq!(bucket.burst, 5);
        // Full: five at once, then nothing until it refills.
        let (granted, tokens, at) = bucket.take(bucket.capacity(), 0, 0, 50);
        assert_eq!((granted, tokens, at), (5, 0, 0));
        assert_eq!(bucket.take(tokens, at, 5, 50).0, 0);
        // 30 ms later, three.
        assert_eq!(bucket.take(tokens, at, 30, 50), (3, 0, 30));
        // An hour idle still holds only the burst.
        assert_eq!(bucket.take(0, 0, 3_600_000, 50).0, 5);
        // Over ten seconds of steady asking, at most rate × 10 + burst.
        let (mut tokens, mut at, mut total) = (bucket.capacity(), 0, 0);
        for now in (0..10_000).step_by(7) {
            let (g, left, refilled) = bucket.take(tokens, at, now, 3);
            total += g;
            tokens = left;
            at = refilled;
        }
        assert!((990..=1_005).contains(&total), "{total}");
        // A clock that reads earlier than the last refill adds nothing.
        assert_eq!(bucket.take(0, 1_000, 500, 5), (0, 0, 1_000));
    }
}
