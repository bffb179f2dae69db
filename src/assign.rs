//! Deterministic, sticky assignment for A/B variants, holdouts and split paths (DESIGN §7).
//!
//! A member's bucket is a hash of (member, journey, step, salt), so every worker, every
//! retry and every restart puts the member in the same place without asking anyone, and
//! `simulate` assigns exactly as `serve` does. Pure: no I/O, no randomness.

use sha2::{Digest, Sha256};

/// Buckets per 100 %: weights are whole percents, so a bucket is a hundredth of a percent.
pub const BUCKETS: u32 = 10_000;

/// The member's bucket in `0..BUCKETS` for one step of one journey. `salt` starts a fresh
/// experiment on the same step (empty by default).
pub fn bucket(member_id: &str, journey_id: &str, step_id: &str, salt: &str) -> u32 {
    let mut hasher = Sha256::new();
    for part in [member_id, journey_id, step_id, salt] {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) % u64::from(BUCKETS)) as u32
}

/// The arm a bucket falls in, given arm weights in percent laid end to end; `None` when it
/// falls past them (the holdout, when the weights sum to less than 100).
pub fn pick(bucket: u32, weights: impl IntoIterator<Item = u32>) -> Option<usize> {
    let mut upper = 0;
    for (i, weight) in weights.into_iter().enumerate() {
        upper += weight * (BUCKETS / 100);
        if bucket < upper {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_member_always_lands_in_the_same_bucket() {
        let a = bucket("m-1", "winback", "offer", "");
        assert_eq!(a, bucket("m-1", "winback", "offer", ""));
        assert!(a < BUCKETS);
        assert_ne!(
            bucket("m-1", "winback", "offer", "2026-11"),
            a,
            "a new salt reshuffles (for this member, by luck of the hash)"
        );
    }

    #[test]
    fn arms_get_their_weights_and_the_rest_is_holdout() {
        let mut counts = [0u32; 3];
        let mut holdout = 0;
        for i in 0..100_000 {
            match pick(bucket(&format!("member-{i}"), "j", "s", ""), [45, 45]) {
                Some(arm) => counts[arm] += 1,
                None => holdout += 1,
            }
        }
        for (arm, expected) in [(0, 45_000.0), (1, 45_000.0)] {
            assert!((f64::from(counts[arm]) - expected).abs() < 1_000.0, "arm {arm}: {}", counts[arm]);
        }
        assert!((f64::from(holdout) - 10_000.0).abs() < 1_000.0, "holdout: {holdout}");
    }

    #[test]
    fn boundaries_are_exact() {
        assert_eq!(pick(0, [50, 50]), Some(0));
        assert_eq!(pick(4_999, [50, 50]), Some(0));
        assert_eq!(pick(5_000, [50, 50]), Some(1));
        assert_eq!(pick(9_999, [50, 50]), Some(1));
        assert_eq!(pick(9_000, [90]), None);
        assert_eq!(pick(8_999, [90]), Some(0));
    }
}
