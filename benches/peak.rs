//! The machine's f32 fused-multiply-add peak on one core, measured rather
//! than quoted: many independent FMA chains on full-width packs, so that
//! neither latency nor memory limits them. GFLOP/s of a kernel divided by
//! this is its efficiency.

/// The widest pack the build's registers hold: 16 lanes with AVX-512, 8
/// otherwise (a 16-lane pack would be two registers, and twelve chains of
/// them would spill AVX2's sixteen).
#[cfg(target_feature = "avx512f")]
type Lanes = wide::f32x16;
#[cfg(not(target_feature = "avx512f"))]
type Lanes = wide::f32x8;

/// f32 lanes of [`Lanes`].
const LANES: usize = std::mem::size_of::<Lanes>() / 4;

/// Independent accumulators: more than FMA latency × ports, so the loop is
/// throughput-bound, and fewer than the registers.
const CHAINS: usize = 12;

/// Floating-point operations of one call with `iterations`.
pub fn flops(iterations: usize) -> u64 {
    (iterations * CHAINS * LANES * 2) as u64
}

/// Runs `iterations` rounds of `CHAINS` FMAs on full packs; returns a sum so
/// the work cannot be optimised away.
#[inline(never)]
pub fn fma_chains(iterations: usize, a: f32, b: f32) -> f32 {
    let (a, b) = (Lanes::splat(a), Lanes::splat(b));
    let mut acc = [Lanes::splat(0.0); CHAINS];
    for (i, acc) in acc.iter_mut().enumerate() {
        *acc = Lanes::splat(i as f32 * 1e-3);
    }
    for _ in 0..iterations {
        for acc in acc.iter_mut() {
            *acc = acc.mul_add(a, b);
        }
    }
    acc.iter().map(|v| v.reduce_add()).sum()
}
