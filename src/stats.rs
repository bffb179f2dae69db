//! The statistics of experiment reports (DESIGN §7), pure: no I/O, no clock, no randomness.
//!
//! - [`wilson`]: the 95 % Wilson score interval of a conversion rate.
//! - [`prob_beats`]: the probability that one arm's true rate beats another's, each arm's
//!   rate having the posterior Beta(1 + conversions, 1 + non-conversions) (a uniform prior),
//!   by Evan Miller's closed form summed in log space.
//! - [`uplift`]: the difference to the control, absolute and relative.
//!
//! `tests/fixtures/stats_reference.py` computes reference values for these with scipy (by
//! other methods: `binomtest(...).proportion_ci` and numerical integration), and the tests
//! hold these functions to them within 1e-9 and 1e-6.

use serde::Serialize;

/// The 97.5th percentile of the standard normal distribution (a 95 % two-sided interval).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A conversion rate with its 95 % interval (all in 0..=1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    /// `successes` of `trials`; with no trials the rate is 0 and the interval all of 0..=1.
    pub fn of(successes: u64, trials: u64) -> Rate {
        let (low, high) = wilson(successes, trials, Z_95);
        let rate = if trials == 0 { 0.0 } else { successes as f64 / trials as f64 };
        Rate { rate, low, high }
    }
}

/// The Wilson score interval for `successes` of `trials` at normal quantile `z`:
/// `(p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)` with `p = successes / trials`.
/// With no trials nothing is known: `(0, 1)`.
pub fn wilson(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// P(rate of B > rate of A) when A converted `a_conv` of `a_n` and B `b_conv` of `b_n`, each
/// rate distributed Beta(1 + conversions, 1 + non-conversions).
///
/// Evan Miller's closed form, with αA, βA, αB, βB the posterior parameters:
/// `P(B > A) = Σ_{i=0}^{αB−1} B(αA+i, βA+βB) / ((βB+i) · B(1+i, βB) · B(αA, βA))`,
/// each term computed from log-gamma and exponentiated (the terms are positive, so the sum
/// loses nothing to cancellation). It has αB terms; when A has fewer conversions the same
/// form gives `1 − P(A > B)` in fewer terms (ties have probability 0).
pub fn prob_beats(a_conv: u64, a_n: u64, b_conv: u64, b_n: u64) -> f64 {
    let (a_conv, b_conv) = (a_conv.min(a_n), b_conv.min(b_n));
    let (alpha_a, beta_a) = (1.0 + a_conv as f64, 1.0 + (a_n - a_conv) as f64);
    let (alpha_b, beta_b) = (1.0 + b_conv as f64, 1.0 + (b_n - b_conv) as f64);
    let p = if b_conv <= a_conv {
        miller(alpha_a, beta_a, alpha_b, beta_b)
    } else {
        1.0 - miller(alpha_b, beta_b, alpha_a, beta_a)
    };
    p.clamp(0.0, 1.0)
}

/// `P(X_B > X_A)` for `X_A ~ Beta(alpha_a, beta_a)`, `X_B ~ Beta(alpha_b, beta_b)`, with
/// `alpha_b` a whole number (Evan Miller, "Formulas for Bayesian A/B Testing").
fn miller(alpha_a: f64, beta_a: f64, alpha_b: f64, beta_b: f64) -> f64 {
    let base = -ln_beta(alpha_a, beta_a);
    let terms = alpha_b as u64;
    let mut total = 0.0;
    for i in 0..terms {
        let i = i as f64;
        let log_term = base + ln_beta(alpha_a + i, beta_a + beta_b) - (beta_b + i).ln() - ln_beta(1.0 + i, beta_b);
        total += log_term.exp();
    }
    total
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b).
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln Γ(x) for x > 0: the Lanczos approximation (g = 7, 9 coefficients; relative error
/// about 1e-15), with the reflection formula below ½.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Γ(x) Γ(1 − x) = π / sin(πx)
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// A rate's difference to the control's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Uplift {
    /// `rate − control rate` (percentage points / 100).
    pub absolute: f64,
    /// `(rate − control rate) / control rate`; None when the control's rate is 0.
    pub relative: Option<f64>,
}

pub fn uplift(rate: f64, control: f64) -> Uplift {
    let absolute = rate - control;
    Uplift { absolute, relative: (control > 0.0).then(|| absolute / control) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half() {
        let mut factorial = 1.0f64;
        for n in 1..30u32 {
            // Γ(n + 1) = n!
            factorial *= f64::from(n);
            assert!(close(ln_gamma(f64::from(n) + 1.0), factorial.ln(), 1e-10), "Γ({})", n + 1);
        }
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-12));
        assert!(close(ln_gamma(1.0), 0.0, 1e-14));
    }

    #[test]
    fn wilson_is_inside_zero_one_and_around_the_rate() {
        assert_eq!(wilson(0, 0, Z_95), (0.0, 1.0));
        let (low, high) = wilson(0, 10, Z_95);
        assert_eq!(low, 0.0);
        assert!(high > 0.2 && high < 0.35, "{high}");
        let (low, high) = wilson(50, 100, Z_95);
        assert!(close(low + high, 1.0, 1e-12), "symmetric around one half");
        let (low, high) = wilson(10, 10, Z_95);
        assert!(close(high, 1.0, 1e-12) && low > 0.65);
    }

    #[test]
    fn equal_arms_beat_each_other_half_the_time_and_more_data_sharpens_the_answer() {
        assert!(close(prob_beats(10, 100, 10, 100), 0.5, 1e-9));
        assert!(close(prob_beats(0, 0, 0, 0), 0.5, 1e-9));
        let small = prob_beats(10, 100, 15, 100);
        let large = prob_beats(100, 1000, 150, 1000);
        assert!(small > 0.5 && large > small && large > 0.99, "{small} {large}");
        assert!(close(prob_beats(10, 100, 15, 100) + prob_beats(15, 100, 10, 100), 1.0, 1e-9));
    }

    #[test]
    fn uplift_is_against_the_control() {
        let u = uplift(0.12, 0.10);
        assert!(close(u.absolute, 0.02, 1e-12));
        assert!(close(u.relative.unwrap(), 0.2, 1e-12));
        assert_eq!(uplift(0.1, 0.0).relative, None);
    }
}
