//! Seeded randomness. Every random draw in theta comes from an [`Rng`] that
//! the caller passes in by `&mut`; nothing reads a global or thread-local
//! generator, so the same seed gives the same numbers, bit for bit.
//!
//! The conversions from raw bits to numbers are theta's own (not a
//! distribution crate's), so they cannot change under a dependency update.

use rand_core::{Rng as _, SeedableRng};

/// theta's generator: xoshiro256++.
pub type Rng = rand_xoshiro::Xoshiro256PlusPlus;

/// A generator seeded from a `u64` (expanded with SplitMix64).
pub fn rng_from_seed(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// A uniform `f64` in `[0, 1)` with 53 random bits.
pub fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform `f64` in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// A standard normal draw (Box-Muller; two uniforms per draw, no cached
/// second value, so the generator's state alone determines the stream).
pub fn standard_normal(rng: &mut Rng) -> f64 {
    // 1 − u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A normal draw with standard deviation `std`, redrawn until it lies within
/// two standard deviations (TensorFlow's `truncated_normal`, as cbfinn/maml
/// initialises its weights).
pub fn truncated_normal(rng: &mut Rng, std: f64) -> f64 {
    loop {
        let z = standard_normal(rng);
        if z.abs() <= 2.0 {
            return z * std;
        }
    }
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias.
pub fn below(rng: &mut Rng, n: usize) -> usize {
    assert!(n > 0, "below(0) has no value to return");
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX - n + 1) % n;
    loop {
        let r = rng.next_u64();
        if r <= zone {
            return (r % n) as usize;
        }
    }
}

/// Shuffles in place (Fisher-Yates).
pub fn shuffle<X>(rng: &mut Rng, items: &mut [X]) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}
