//! What the products' tests share.

use theta_kernels::Real;

/// A seeded stream of values uniform in [−1, 1).
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// The next `n` values.
    pub(crate) fn vec<T: Real>(&mut self, n: usize) -> Vec<T> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                T::from_f64(2.0 * ((self.0 >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
            })
            .collect()
    }
}
