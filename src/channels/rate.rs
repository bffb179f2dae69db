//! Messages per second per provider, so a 100,000-member send paces itself instead of
//! tripping the provider's own limit (and its 429s).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A token bucket of `per_second` tokens refilled continuously, with a burst of one
/// second's worth; `0` means no limit.
pub struct RateLimit(Option<DefaultDirectRateLimiter>);

impl RateLimit {
    pub fn per_second(per_second: u32) -> RateLimit {
        RateLimit(NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Quota::per_second(n))))
    }

    /// Waits until one more message may go out.
    pub async fn wait(&self) {
        if let Some(limiter) = &self.0 {
            limiter.until_ready().await;
        }
    }
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "RateLimit(limited)" } else { "RateLimit(unlimited)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limit_paces_messages_after_the_first_seconds_burst() {
        let limit = RateLimit::per_second(20);
        let start = std::time::Instant::now();
        for _ in 0..30 {
            limit.wait().await;
        }
        // 20 at once, then 10 more at 20/s: about half a second.
        let elapsed = start.elapsed();
        assert!(elapsed >= std::time::Duration::from_millis(400), "{elapsed:?}");
        assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");

        let unlimited = RateLimit::per_second(0);
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            unlimited.wait().await;
        }
        assert!(start.elapsed() < std::time::Duration::from_millis(200));
    }
}
