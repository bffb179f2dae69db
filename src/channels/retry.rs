//! When a transient failure is tried again: exponential backoff with jitter, up to a limit
//! of attempts. Pure: the caller passes `now` and the random `jitter`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{self, Config};

/// `[channels.retry]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included: `1` never retries.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub base_delay: Duration,
    /// The longest wait backoff alone produces.
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn from_config(retry: &config::Retry) -> RetryPolicy {
        RetryPolicy {
            max_attempts: retry.max_attempts,
            base_delay: Config::seconds(&retry.base_delay),
            max_delay: Config::seconds(&retry.max_delay),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from_config(&config::Retry::default())
    }
}

/// When to make the next attempt after `attempt` attempts (1 after the first) have failed
/// transiently; `None` when `policy.max_attempts` have been made (give up).
///
/// The backoff is `min(max_delay, base_delay × 2^(attempt-1))`, of which a random half is
/// kept ("equal jitter": `jitter` in 0..1 from the caller picks a delay between half and
/// all of it), so a batch that failed together does not retry together. A provider's
/// `Retry-After` is a floor: the wait is never shorter than what the provider asked for.
pub fn next_attempt(
    attempt: u32,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
    policy: &RetryPolicy,
    jitter: f64,
) -> Option<DateTime<Utc>> {
    if attempt >= policy.max_attempts {
        return None;
    }
    let backoff = 2u32
        .checked_pow(attempt.saturating_sub(1))
        .and_then(|factor| policy.base_delay.checked_mul(factor))
        .map_or(policy.max_delay, |d| d.min(policy.max_delay));
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    let delay = backoff.mul_f64(0.5 + 0.5 * jitter);
    let delay = retry_after.map_or(delay, |floor| delay.max(floor));
    let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
    Some(now.checked_add_signed(delay).unwrap_or(DateTime::<Utc>::MAX_UTC))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 6, base_delay: Duration::from_secs(60), max_delay: Duration::from_secs(3600) }
    }

    fn now() -> DateTime<Utc> {
        "2025-05-01T00:00:00Z".parse().unwrap()
    }

    fn wait(attempt: u32, jitter: f64) -> Duration {
        (next_attempt(attempt, now(), None, &policy(), jitter).unwrap() - now()).to_std().unwrap()
    }

    #[test]
    fn backoff_doubles_within_half_and_all_of_the_step() {
        for (attempt, full) in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 960)] {
            assert_eq!(wait(attempt, 0.0), Duration::from_secs(full / 2), "attempt {attempt}");
            assert_eq!(wait(attempt, 1.0), Duration::from_secs(full), "attempt {attempt}");
            let middle = wait(attempt, 0.37);
            assert!(middle > Duration::from_secs(full / 2) && middle < Duration::from_secs(full));
        }
    }

    #[test]
    fn backoff_stops_at_the_maximum_delay() {
        let policy = RetryPolicy { max_attempts: 100, ..policy() };
        for attempt in [7, 8, 20, 40, 64, 99] {
            let at = next_attempt(attempt, now(), None, &policy, 1.0).unwrap();
            assert_eq!(at - now(), TimeDelta::seconds(3600), "attempt {attempt}");
        }
    }

    #[test]
    fn gives_up_after_the_last_attempt() {
        assert!(next_attempt(5, now(), None, &policy(), 0.5).is_some());
        assert_eq!(next_attempt(6, now(), None, &policy(), 0.5), None);
        assert_eq!(next_attempt(7, now(), None, &policy(), 0.5), None);
        let once = RetryPolicy { max_attempts: 1, ..policy() };
        assert_eq!(next_attempt(1, now(), Some(Duration::from_secs(1)), &once, 0.5), None);
    }

    #[test]
    fn retry_after_is_a_floor_not_a_ceiling() {
        let later = next_attempt(1, now(), Some(Duration::from_secs(7200)), &policy(), 0.0).unwrap();
        assert_eq!(later - now(), TimeDelta::seconds(7200));
        let sooner = next_attempt(3, now(), Some(Duration::from_secs(5)), &policy(), 1.0).unwrap();
        assert_eq!(sooner - now(), TimeDelta::seconds(240));
    }

    #[test]
    fn odd_jitter_values_stay_in_bounds() {
        assert_eq!(wait(1, -3.0), Duration::from_secs(30));
        assert_eq!(wait(1, 7.0), Duration::from_secs(60));
        assert_eq!(wait(1, f64::NAN), Duration::from_secs(30));
    }
}
