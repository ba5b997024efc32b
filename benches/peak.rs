//! The machine's f32 fused-multiply-add peak on one core, measured rather
//! than quoted: many independent FMA chains on 16-lane packs, so that neither
//! latency nor memory limits them. GFLOP/s of a kernel divided by this is its
//! efficiency.

use wide::f32x16;

/// Independent accumulators: more than FMA latency × ports, so the loop is
/// throughput-bound.
const CHAINS: usize = 12;

/// Floating-point operations of one call with `iterations`.
pub fn flops(iterations: usize) -> u64 {
    (iterations * CHAINS * 16 * 2) as u64
}

/// Runs `iterations` rounds of `CHAINS` FMAs on 16 lanes; returns a sum so the
/// work cannot be optimised away.
#[inline(never)]
pub fn fma_chains(iterations: usize, a: f32, b: f32) -> f32 {
    let (a, b) = (f32x16::splat(a), f32x16::splat(b));
    let mut acc = [f32x16::splat(0.0); CHAINS];
    for (i, acc) in acc.iter_mut().enumerate() {
        *acc = f32x16::splat(i as f32 * 1e-3);
    }
    for _ in 0..iterations {
        for acc in acc.iter_mut() {
            *acc = acc.mul_add(a, b);
        }
    }
    acc.iter().map(|v| v.reduce_add()).sum()
}
