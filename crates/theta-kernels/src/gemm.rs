//! Matrix products on row-major buffers: faer, and a register-blocked SIMD
//! kernel for the small `x · W` products of few-shot learning.
//!
//! A few-shot task is small: the sinusoid network multiplies 10 × 40 by
//! 40 × 40, sixteen thousand multiply-adds, where a general GEMM spends a
//! good part of its time packing and dispatching. The small kernel packs
//! nothing. It keeps a block of output packs in registers (5 rows × 3 packs =
//! 15 accumulators for 40 columns, padded in registers to 48 lanes) and
//! streams the reduction: at each step p, one load per pack of B's row p, one
//! broadcast per row of A, and a fused multiply-add per accumulator. Fifteen
//! independent accumulators hide the FMA latency; per-row loops cannot.
//!
//! A partial last pack reads past its row into the next one (those lanes are
//! discarded), and is stored by rewriting the next row's first values with
//! what they hold. B's last rows, where a whole pack would leave the buffer,
//! are copied once into a zero-padded stack buffer.
//!
//! Every output of the small kernel is the sum over p in increasing order,
//! fused, from zero, then added to the old value when accumulating: one fixed
//! order, so results are deterministic.
//!
//! Which products take it was measured (`cargo bench -p theta-benches --
//! gemm`, and in-process A/B runs of whole meta-steps, 2026-11-22): `x · W`
//! with at most [`SMALL_ROWS`] rows, at least 16 output columns and 8 inputs
//! is 15–25% faster than faer at the sinusoid's shape (10 × 40 × 40, 70% of
//! the FMA peak) and makes MAML's and first-order MAML's meta-steps 5–10%
//! faster. Elsewhere faer is as fast or faster (both reach 80–87% of the
//! peak from 20 rows up), and the transposed products (`xᵀ δ`, and `δ Wᵀ`,
//! which this kernel could only run on a transposed copy of W) were no
//! faster here: they stay on faer, as do narrow outputs and large layers.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::real::{Pack, Real};

/// Widths (`k` and `n`) up to which `gemm` runs the register-blocked
/// kernel instead of faer.
pub const SMALL_MAX: usize = 128;

/// Rows up to which `gemm` runs the small kernel: with more, faer's packed
/// panels win (500 × 40 × 40: 5% faster on faer).
pub const SMALL_ROWS: usize = 32;

/// Output packs per register block (at most).
const NV: usize = 4;

/// Values of the stack buffer that pads B's last rows to whole packs.
const TAIL: usize = 256;

/// Output rows per register block (at most). 5 × 3 packs = 15 accumulators
/// measured best for 40 columns; 6 or 8 rows spilled registers.
const MR: usize = 5;

fn view<T: Real>(s: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(&s[..rows * cols], rows, cols)
}

fn view_mut<T: Real>(s: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::from_row_major_slice_mut(&mut s[..rows * cols], rows, cols)
}

/// `out ← [out +] a · b` on faer, one thread.
fn faer_product<T: Real>(accumulate: bool, out: MatMut<'_, T>, a: MatRef<'_, T>, b: MatRef<'_, T>) {
    let accum = if accumulate { Accum::Add } else { Accum::Replace };
    matmul(out, accum, a, b, T::ONE, Par::Seq);
}

/// True when `x (m × k) · W (k × n)` runs on the small kernel (see the
/// module doc for why these bounds).
pub fn is_small(m: usize, k: usize, n: usize) -> bool {
    m <= SMALL_ROWS && (8..=SMALL_MAX).contains(&k) && (16..=SMALL_MAX).contains(&n)
}

/// `out (m × n) ← [out +] a (m × k) · b (k × n)`, all row-major.
pub fn gemm<T: Real>(
    accumulate: bool,
    out: &mut [T],
    a: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
) {
    if is_small(m, k, n) {
        small(accumulate, &mut out[..m * n], &a[..m * k], &b[..k * n], m, k, n);
    } else {
        faer_product(accumulate, view_mut(out, m, n), view(a, m, k), view(b, k, n));
    }
}

/// `out (k × n) ← [out +] aᵀ · b` for `a` of `m × k` and `b` of `m × n` (faer).
pub fn gemm_tn<T: Real>(
    accumulate: bool,
    out: &mut [T],
    a: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
) {
    faer_product(accumulate, view_mut(out, k, n), view(a, m, k).transpose(), view(b, m, n));
}

/// `out (m × k) ← [out +] a · bᵀ` for `a` of `m × n` and `b` of `k × n` (faer).
pub fn gemm_nt<T: Real>(
    accumulate: bool,
    out: &mut [T],
    a: &[T],
    b: &[T],
    m: usize,
    n: usize,
    k: usize,
) {
    faer_product(accumulate, view_mut(out, m, k), view(a, m, n), view(b, k, n).transpose());
}

/// `out (m × n) ← [out +] a (m × k) · b (k × n)`, the register-blocked way.
fn small<T: Real>(accumulate: bool, out: &mut [T], a: &[T], b: &[T], m: usize, k: usize, n: usize) {
    let lanes = T::Pack::LANES;
    let mut j0 = 0;
    while j0 < n {
        let width = (n - j0).min(NV * lanes);
        let packs = width.div_ceil(lanes);
        // Rows p of b whose whole packs from column j0 lie inside b (the
        // last pack may run into row p + 1).
        let full = packs * lanes;
        let safe = if b.len() >= j0 + full { ((b.len() - j0 - full) / n + 1).min(k) } else { 0 };
        // The later rows, zero-padded to whole packs once here rather than in
        // every row block. With n ≥ 16 (`is_small`) a row's packs reach at
        // most 15 values past it, so at most two rows: 2 × 64 ≤ TAIL.
        assert!((k - safe) * full <= TAIL, "gemm: b's last rows exceed the padding buffer");
        let mut tail = [T::ZERO; TAIL];
        for p in safe..k {
            let row = &b[p * n + j0..p * n + j0 + width];
            tail[(p - safe) * full..][..width].copy_from_slice(row);
        }
        let tail = &tail[..(k - safe) * full];
        // Blocks of nearly equal height: 10 rows are two blocks of 5, not 8 + 2.
        let blocks = m.div_ceil(MR);
        let mut i0 = 0;
        for block_index in 0..blocks {
            let rows = (m - i0).div_ceil(blocks - block_index);
            let a = &a[i0 * k..];
            let (out, b) = (&mut out[i0 * n + j0..], &b[j0..]);
            macro_rules! run {
                ($($r:literal),*; $($v:literal),*) => {
                    run!(@rows [$($r),*] [$($v),*])
                };
                (@rows [$($r:literal),*] $vs:tt) => {
                    match rows {
                        $($r => run!(@packs $r $vs),)*
                        _ => unreachable!("row blocks hold 1..=MR rows"),
                    }
                };
                (@packs $r:literal [$($v:literal),*]) => {
                    match packs {
                        $($v => block::<T, $r, $v>(
                            accumulate, out, n, a, b, n, k, width, safe, tail,
                        ),)*
                        _ => unreachable!("column blocks hold 1..=NV packs"),
                    }
                };
            }
            run!(1, 2, 3, 4, 5; 1, 2, 3, 4);
            i0 += rows;
        }
        j0 += width;
    }
}

/// One register block: `R` output rows × `V` packs, `width` valid columns
/// (more than `(V − 1)` packs' worth); b's rows below `safe` hold `V` whole
/// packs, the later ones are in `tail`, padded. The slices start at the block.
#[inline(always)]
fn block<T: Real, const R: usize, const V: usize>(
    accumulate: bool,
    out: &mut [T],
    ldo: usize,
    a: &[T],
    b: &[T],
    ldb: usize,
    k: usize,
    width: usize,
    safe: usize,
    tail: &[T],
) {
    let lanes = T::Pack::LANES;
    let full = V * lanes;
    let zero = T::Pack::splat(T::ZERO);
    let mut acc = [[zero; V]; R];
    // A's rows as slices of exactly k values, so indexing by p < k needs no
    // check in the loop.
    let mut a_rows = [&a[..0]; R];
    for r in 0..R {
        a_rows[r] = &a[r * k..][..k];
    }
    let a_at = |p: usize| -> [T; R] {
        let mut x = [T::ZERO; R];
        for r in 0..R {
            x[r] = a_rows[r][p];
        }
        x
    };
    for p in 0..safe {
        let bp = &b[p * ldb..][..full];
        let mut bv = [zero; V];
        for v in 0..V {
            bv[v] = T::Pack::load(&bp[v * lanes..]);
        }
        fma_block(&mut acc, a_at(p), &bv);
    }
    for (p, bp) in (safe..k).zip(tail.chunks_exact(full)) {
        let mut bv = [zero; V];
        for v in 0..V {
            bv[v] = T::Pack::load(&bp[v * lanes..]);
        }
        fma_block(&mut acc, a_at(p), &bv);
    }
    store(accumulate, out, ldo, width, acc);
}

/// Writes a block's accumulators to `out`.
#[inline(always)]
fn store<T: Real, const R: usize, const V: usize>(
    accumulate: bool,
    out: &mut [T],
    ldo: usize,
    width: usize,
    acc: [[T::Pack; V]; R],
) {
    let lanes = T::Pack::LANES;
    // Unrolled, so the accumulators stay in registers; the last pack of the
    // buffer's last row (no room for a whole pack) goes through `store_rest`.
    let mut rest = false;
    for r in 0..R {
        for v in 0..V {
            let s = r * ldo + v * lanes;
            let valid = width - v * lanes;
            if valid >= lanes {
                let dst = &mut out[s..s + lanes];
                let value = if accumulate { acc[r][v] + T::Pack::load(dst) } else { acc[r][v] };
                value.store(dst);
            } else if s + lanes <= out.len() {
                // Rewrite the lanes past the row with what they hold (rows
                // are stored in order, so a later row overwrites them again).
                let dst = &mut out[s..s + lanes];
                let old = T::Pack::load(dst);
                let value = if accumulate { acc[r][v] + old } else { acc[r][v] };
                value.blend_first(valid, old).store(dst);
            } else {
                rest = true;
            }
        }
    }
    if rest {
        store_rest(accumulate, out, ldo, width, &acc);
    }
}

/// The partial packs of [`block`] with no whole pack of room in `out`,
/// lane by lane.
#[cold]
#[inline(never)]
fn store_rest<T: Real, const R: usize, const V: usize>(
    accumulate: bool,
    out: &mut [T],
    ldo: usize,
    width: usize,
    acc: &[[T::Pack; V]; R],
) {
    let lanes = T::Pack::LANES;
    let v = V - 1;
    let valid = width - v * lanes;
    for r in 0..R {
        let s = r * ldo + v * lanes;
        if valid < lanes && s + lanes > out.len() {
            let dst = &mut out[s..s + valid];
            let value = if accumulate { acc[r][v] + T::Pack::load_partial(dst) } else { acc[r][v] };
            value.store_partial(dst);
        }
    }
}

/// `acc[r][v] += x[r] · b[v]`: one step of the reduction.
#[inline(always)]
fn fma_block<T: Real, const R: usize, const V: usize>(
    acc: &mut [[T::Pack; V]; R],
    x: [T; R],
    b: &[T::Pack; V],
) {
    for r in 0..R {
        let x = T::Pack::splat(x[r]);
        for v in 0..V {
            acc[r][v] = x.mul_add(b[v], acc[r][v]);
        }
    }
}

/// Scalar reference of all three products: `out (m × n) ← [out +] A · B` with
/// `A(i, p) = a[i·ars + p·acs]` and `B(p, j) = b[p·brs + j·bcs]`, summed in
/// increasing p.
pub fn gemm_ref<T: Real>(
    accumulate: bool,
    out: &mut [T],
    (a, ars, acs): (&[T], usize, usize),
    (b, brs, bcs): (&[T], usize, usize),
    m: usize,
    k: usize,
    n: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = T::ZERO;
            for p in 0..k {
                s += a[i * ars + p * acs] * b[p * brs + j * bcs];
            }
            out[i * n + j] = if accumulate { out[i * n + j] + s } else { s };
        }
    }
}
