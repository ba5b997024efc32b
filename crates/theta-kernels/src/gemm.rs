//! Matrix products on row-major buffers: faer, and a register-blocked SIMD
//! kernel for the small `x · W` and `xᵀ δ` products of few-shot learning.
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
//! The same kernel runs `xᵀ δ` (the weight gradient) by reading x
//! transposed in place: the R values of A that a step broadcasts are then
//! R consecutive values of one row of x, so nothing is copied.
//!
//! The R-pass's paired products, `Rx W + x V` and `xᵀ Rδ + Rxᵀ δ`, run as
//! one sum ([`gemm_sum`], [`gemm_tn_sum`]): both terms stream into the same
//! accumulators, which are stored once, instead of a second product reading
//! and rewriting the first one's output.
//!
//! Products with a single term or a single output column (the sinusoid's
//! 1-wide input and output layers) are not matrix products at all: outer
//! products, weighted sums of rows and dot products, each a short loop here.
//! faer's fixed cost per call (60–80 ns) was more than their arithmetic.
//!
//! Which products take which path was measured (`cargo bench -p
//! theta-benches -- gemm`, and in-process A/B runs of whole meta-steps,
//! 2026-11-22): `x · W` with at most [`SMALL_ROWS`] rows and at least 16
//! output columns is 15–25% faster than faer at the sinusoid's shape
//! (10 × 40 × 40); `xᵀ δ` over at most [`SMALL_ROWS`] rows 5% faster; the
//! one-term and one-column loops 1.1–3× faster than faer. With those and
//! the faster column sums and finiteness checks of the same change, MAML's
//! and first-order MAML's meta-steps got 10–13% faster. `δ Wᵀ`, which this
//! kernel could only run on a transposed copy of W (the transpose alone
//! costs about as much as the product), stays on faer, as do long
//! reductions and large layers.

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

/// Values of the stack buffer that pads B's last rows to whole packs: two
/// rows of at most [`NV`] packs of 16 lanes (see [`small`]).
const TAIL: usize = 2 * NV * 16;

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
    m <= SMALL_ROWS && (1..=SMALL_MAX).contains(&k) && (16..=SMALL_MAX).contains(&n)
}

/// True when `aᵀ · b`, for `a` of `m × k` and `b` of `m × n`, runs on the
/// small kernel, read with A transposed in place: the bounds of [`is_small`]
/// with m the rows summed over (at most [`SMALL_ROWS`]) and k the output rows
/// (wider was slower on the 784-wide layers).
pub fn is_small_tn(m: usize, k: usize, n: usize) -> bool {
    is_small(m, k, n)
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
    let (out, a, b) = (&mut out[..m * n], &a[..m * k], &b[..k * n]);
    if out.is_empty() || k == 0 {
        return no_terms(accumulate, out);
    }
    if k == 1 {
        outer(accumulate, out, a, b);
    } else if n == 1 {
        matvec(accumulate, out, a, b, k);
    } else if is_small(m, k, n) {
        small::<T, false, 1>(accumulate, out, [(a, b)], k, m, k, n);
    } else {
        faer_product(accumulate, view_mut(out, m, n), view(a, m, k), view(b, k, n));
    }
}

/// `out (k × n) ← [out +] aᵀ · b` for `a` of `m × k` and `b` of `m × n`.
pub fn gemm_tn<T: Real>(
    accumulate: bool,
    out: &mut [T],
    a: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
) {
    let (out, a, b) = (&mut out[..k * n], &a[..m * k], &b[..m * n]);
    if out.is_empty() || m == 0 {
        return no_terms(accumulate, out);
    }
    if k == 1 {
        weighted_row_sum(accumulate, out, a, b);
    } else if n == 1 {
        weighted_row_sum(accumulate, out, b, a);
    } else if is_small_tn(m, k, n) {
        small::<T, true, 1>(accumulate, out, [(a, b)], k, k, m, n);
    } else {
        faer_product(accumulate, view_mut(out, k, n), view(a, m, k).transpose(), view(b, m, n));
    }
}

/// `out (m × n) ← [out +] a₁ · b₁ + a₂ · b₂`, each `a` of `m × k` and each
/// `b` of `k × n`: the tangent forward pass's `Rx W + x V`. On the small
/// kernel both terms run into the same accumulators, one sum over 2k terms
/// (a₁ b₁'s in order, then a₂ b₂'s), stored once; elsewhere two products.
#[allow(clippy::too_many_arguments)]
pub fn gemm_sum<T: Real>(
    accumulate: bool,
    out: &mut [T],
    (a1, b1): (&[T], &[T]),
    (a2, b2): (&[T], &[T]),
    m: usize,
    k: usize,
    n: usize,
) {
    // k = 1 is an outer product in `gemm`, ahead of the small kernel.
    if k > 1 && is_small(m, k, n) {
        let (a1, b1, a2, b2) = (&a1[..m * k], &b1[..k * n], &a2[..m * k], &b2[..k * n]);
        small::<T, false, 2>(accumulate, &mut out[..m * n], [(a1, b1), (a2, b2)], k, m, k, n);
    } else {
        gemm(accumulate, out, a1, b1, m, k, n);
        gemm(true, out, a2, b2, m, k, n);
    }
}

/// `out (k × n) ← [out +] a₁ᵀ · b₁ + a₂ᵀ · b₂`, each `a` of `m × k` and each
/// `b` of `m × n`: the Hessian-vector product's `R∂W = xᵀ Rδ + Rxᵀ δ`, as
/// [`gemm_sum`] for [`gemm_tn`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn_sum<T: Real>(
    accumulate: bool,
    out: &mut [T],
    (a1, b1): (&[T], &[T]),
    (a2, b2): (&[T], &[T]),
    m: usize,
    k: usize,
    n: usize,
) {
    // k = 1 is a weighted row sum in `gemm_tn`, ahead of the small kernel.
    if k > 1 && is_small_tn(m, k, n) {
        let (a1, b1, a2, b2) = (&a1[..m * k], &b1[..m * n], &a2[..m * k], &b2[..m * n]);
        small::<T, true, 2>(accumulate, &mut out[..k * n], [(a1, b1), (a2, b2)], k, k, m, n);
    } else {
        gemm_tn(accumulate, out, a1, b1, m, k, n);
        gemm_tn(true, out, a2, b2, m, k, n);
    }
}

/// `out (m × k) ← [out +] a · bᵀ` for `a` of `m × n` and `b` of `k × n`.
pub fn gemm_nt<T: Real>(
    accumulate: bool,
    out: &mut [T],
    a: &[T],
    b: &[T],
    m: usize,
    n: usize,
    k: usize,
) {
    let (out, a, b) = (&mut out[..m * k], &a[..m * n], &b[..k * n]);
    if out.is_empty() || n == 0 {
        return no_terms(accumulate, out);
    }
    if n == 1 {
        outer(accumulate, out, a, b);
    } else {
        faer_product(accumulate, view_mut(out, m, k), view(a, m, n), view(b, k, n).transpose());
    }
}

/// A product whose sums have no terms (or no outputs): zero, or unchanged.
fn no_terms<T: Real>(accumulate: bool, out: &mut [T]) {
    if !accumulate {
        out.fill(T::ZERO);
    }
}

/// `out ← [out +] a ⊗ b`, the `m × n` outer product of `a` (m) and `b` (n):
/// the products with one term, `k = 1`.
fn outer<T: Real>(accumulate: bool, out: &mut [T], a: &[T], b: &[T]) {
    let (lanes, n) = (T::Pack::LANES, b.len());
    let whole = n - n % lanes;
    for (row, &x) in out.chunks_exact_mut(n).zip(a) {
        let xs = T::Pack::splat(x);
        for j in (0..whole).step_by(lanes) {
            let v = xs * T::Pack::load(&b[j..]);
            let v = if accumulate { T::Pack::load(&row[j..]) + v } else { v };
            v.store(&mut row[j..]);
        }
        for (o, &y) in row[whole..].iter_mut().zip(&b[whole..]) {
            *o = if accumulate { *o + x * y } else { x * y };
        }
    }
}

/// `out (n) ← [out +] Σ_p w[p] · rows[p, ·]` for `rows` of `w.len() × n`:
/// `xᵀ δ` when either side has one column. Each output is a fused sum over
/// p in order; a last partial pack is computed over the last whole pack's
/// span, so the columns it shares with the previous pack get the same bits.
fn weighted_row_sum<T: Real>(accumulate: bool, out: &mut [T], w: &[T], rows: &[T]) {
    let (lanes, n) = (T::Pack::LANES, out.len());
    let column_pack = |j: usize| {
        let mut s = T::Pack::splat(T::ZERO);
        for (&x, row) in w.iter().zip(rows.chunks_exact(n)) {
            s = T::Pack::splat(x).mul_add(T::Pack::load(&row[j..]), s);
        }
        s
    };
    if n < lanes {
        for (j, o) in out.iter_mut().enumerate() {
            let mut s = T::ZERO;
            for (&x, row) in w.iter().zip(rows.chunks_exact(n)) {
                s += x * row[j];
            }
            *o = if accumulate { *o + s } else { s };
        }
        return;
    }
    let whole = n - n % lanes;
    for j in (0..whole).step_by(lanes) {
        let s = column_pack(j);
        let s = if accumulate { T::Pack::load(&out[j..]) + s } else { s };
        s.store(&mut out[j..]);
    }
    if whole < n {
        let (j, done) = (n - lanes, lanes - n % lanes);
        let s = column_pack(j);
        let old = T::Pack::load(&out[j..]);
        let s = if accumulate { old.blend_first(done, old + s) } else { s };
        s.store(&mut out[j..]);
    }
}

/// `out (m) ← [out +] a (m × k) · b (k)`: a dot product per row, in packs
/// along k (a last partial pack over the last whole pack's span, its shared
/// lanes zeroed), the lanes then summed as a tree.
fn matvec<T: Real>(accumulate: bool, out: &mut [T], a: &[T], b: &[T], k: usize) {
    let lanes = T::Pack::LANES;
    let whole = k - k % lanes;
    let zero = T::Pack::splat(T::ZERO);
    for (o, row) in out.iter_mut().zip(a.chunks_exact(k)) {
        let mut s = zero;
        for p in (0..whole).step_by(lanes) {
            s = T::Pack::load(&row[p..]).mul_add(T::Pack::load(&b[p..]), s);
        }
        let s = if whole == k {
            tree_sum(s)
        } else if k >= lanes {
            let (p, done) = (k - lanes, lanes - k % lanes);
            let tail = zero.blend_first(done, T::Pack::load(&row[p..]));
            tree_sum(tail.mul_add(T::Pack::load(&b[p..]), s))
        } else {
            row.iter().zip(b).fold(T::ZERO, |s, (&x, &y)| s + x * y)
        };
        *o = if accumulate { *o + s } else { s };
    }
}

/// The sum of a pack's lanes, pairwise (a short dependency chain).
#[inline(always)]
fn tree_sum<T: Real>(s: T::Pack) -> T {
    let mut v = [T::ZERO; 16];
    let lanes = T::Pack::LANES;
    s.store(&mut v[..lanes]);
    let mut width = lanes;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            v[i] += v[i + width];
        }
    }
    v[0]
}

/// `out (m × n) ← [out +] Σ_t A_t (m × k) · b_t (k × n)` over `N` terms, the
/// register-blocked way, with `A(i, p) = a[i·lda + p]`, or `a[p·lda + i]`
/// when `AT` (A read transposed in place, for `xᵀ δ`). The terms share the
/// accumulators: one sum, term by term, each in increasing p.
#[allow(clippy::too_many_arguments)]
fn small<T: Real, const AT: bool, const N: usize>(
    accumulate: bool,
    out: &mut [T],
    terms: [(&[T], &[T]); N],
    lda: usize,
    m: usize,
    k: usize,
    n: usize,
) {
    let lanes = T::Pack::LANES;
    let mut tails = [[T::ZERO; TAIL]; N];
    let mut j0 = 0;
    while j0 < n {
        let width = (n - j0).min(NV * lanes);
        let packs = width.div_ceil(lanes);
        // Rows p of each b whose whole packs from column j0 lie inside it
        // (the last pack may run into row p + 1), and the later rows,
        // zero-padded to whole packs once here rather than in every row
        // block. A row's packs reach at most `full − 1` values past it and
        // n ≥ 16, so at most two rows of at most NV packs: within TAIL.
        let full = packs * lanes;
        let mut safe = [0; N];
        for (t, &(_, b)) in terms.iter().enumerate() {
            safe[t] = if b.len() >= j0 + full { ((b.len() - j0 - full) / n + 1).min(k) } else { 0 };
            assert!((k - safe[t]) * full <= TAIL, "gemm: b's last rows exceed the padding buffer");
            for p in safe[t]..k {
                let row = &b[p * n + j0..p * n + j0 + width];
                tails[t][(p - safe[t]) * full..][..width].copy_from_slice(row);
            }
        }
        // Blocks of nearly equal height: 10 rows are two blocks of 5, not 8 + 2.
        let blocks = m.div_ceil(MR);
        let mut i0 = 0;
        for block_index in 0..blocks {
            let rows = (m - i0).div_ceil(blocks - block_index);
            let block_terms: [BlockTerm<'_, T>; N] = std::array::from_fn(|t| {
                let (a, b) = terms[t];
                BlockTerm {
                    a: if AT { &a[i0..] } else { &a[i0 * lda..] },
                    b: &b[j0..],
                    safe: safe[t],
                    tail: &tails[t][..(k - safe[t]) * full],
                }
            });
            let out = &mut out[i0 * n + j0..];
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
                        $($v => block::<T, AT, $r, $v, N>(
                            accumulate, out, n, &block_terms, lda, n, k, width,
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

/// One term of a register block: A and b from the block's first row and
/// column; b's rows below `safe` hold whole packs, the later ones are in
/// `tail`, padded.
struct BlockTerm<'a, T> {
    a: &'a [T],
    b: &'a [T],
    safe: usize,
    tail: &'a [T],
}

/// One register block: `R` output rows × `V` packs, `width` valid columns
/// (more than `(V − 1)` packs' worth), summed over the terms in order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<T: Real, const AT: bool, const R: usize, const V: usize, const N: usize>(
    accumulate: bool,
    out: &mut [T],
    ldo: usize,
    terms: &[BlockTerm<'_, T>; N],
    lda: usize,
    ldb: usize,
    k: usize,
    width: usize,
) {
    let lanes = T::Pack::LANES;
    let full = V * lanes;
    let zero = T::Pack::splat(T::ZERO);
    let mut acc = [[zero; V]; R];
    for term in terms {
        let (a, b) = (term.a, term.b);
        // A's rows as slices of exactly k values, so indexing by p < k needs
        // no check in the loop (read transposed, column p of the block is R
        // consecutive values).
        let mut a_rows = [&a[..0]; R];
        if !AT {
            for r in 0..R {
                a_rows[r] = &a[r * lda..][..k];
            }
        }
        let a_at = |p: usize| -> [T; R] {
            let mut x = [T::ZERO; R];
            if AT {
                let column = &a[p * lda..][..R];
                x.copy_from_slice(column);
            } else {
                for r in 0..R {
                    x[r] = a_rows[r][p];
                }
            }
            x
        };
        for p in 0..term.safe {
            let bp = &b[p * ldb..][..full];
            let mut bv = [zero; V];
            for v in 0..V {
                bv[v] = T::Pack::load(&bp[v * lanes..]);
            }
            fma_block(&mut acc, a_at(p), &bv);
        }
        for (p, bp) in (term.safe..k).zip(term.tail.chunks_exact(full)) {
            let mut bv = [zero; V];
            for v in 0..V {
                bv[v] = T::Pack::load(&bp[v * lanes..]);
            }
            fma_block(&mut acc, a_at(p), &bv);
        }
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
