//! Matrix products over a group of tasks, one task per SIMD lane, and the
//! element-wise sweeps of a dense layer's passes around them (σ(z + b),
//! ⊙ σ', column sums, MSE).
//!
//! A task of few-shot learning is small: the sinusoid network's layer is a
//! 10 × 40 by 40 × 40 product, and a register-blocked kernel over one task
//! ([`gemm`](crate::gemm)) spends much of its time at the edges of so small a
//! problem: 40 columns are 48 lanes of work, ten rows two blocks of five,
//! `δ Wᵀ` needs W transposed first, and the element-wise sweeps between
//! the products run on partial packs. Here every value of a task's
//! computation is one lane of a pack, the same value of up to
//! [`Pack::LANES`] tasks side by side ("lane-major":
//! `x[i]` holds element i of every task's matrix). A product is then a
//! product of matrices of packs: no edge is partial, `δ Wᵀ` reads W's rows in
//! place (each of its values is a whole pack), and nothing is transposed.
//!
//! Per lane, each sum is the small kernel's: over the terms in increasing
//! order, fused multiply-adds from zero, then the store's bias or old value
//! added once. A lane therefore holds the bits the small kernel computes for
//! its task alone, with or without FMA in the build (tests hold every lane
//! to [`gemm`](crate::gemm::gemm) and its siblings on the shapes they run on
//! the small kernel).
//!
//! The right-hand factor is either the same for every task ([`Weights::Shared`],
//! θ's weights, one value broadcast to all lanes as it is loaded) or each
//! task's own ([`Weights::Lanes`], an adapted φ, a direction V).
//!
//! Why (2026-12-06, Xeon with AVX-512, one core): a forward and backward
//! pass of the sinusoid network over 16 tasks of 10 rows, each with its own
//! weights, written this way (a throw-away probe) took 11.1–11.9 µs, 0.7 µs
//! a task, 133–138 GFLOP/s counting its three products (76–78% of the
//! core's measured FMA peak); the per-task pass (`Dense` on the small
//! kernel and faer) takes 1.55 µs a task, 37% of peak. These kernels, per
//! task of 16 (`cargo bench -p theta-benches -- 10x40x40`, criterion
//! medians): `x W` 222–228 ns (the small kernel 265–294), `δ Wᵀ` 219–221 ns
//! (faer 515; W's transpose alone 216), `xᵀ δ` 310–330 ns (300: its 40 × 40
//! output, sixteen times over, goes to L2; the probe's took 204).
//!
//! The accumulators of a block pass through the loop over a pair's terms
//! by value: through a reference, every update was stored back to the
//! stack (2.5× slower). The store is a type chosen once per product
//! (`Epilogue`), not a `match` per output, and a product of one term is
//! an outer product without blocks: a 10 × 1 × 40 forward product went
//! from 750 to 540 ns, `δz Wᵀ ⊙ σ'` of a one-unit layer from 1,030 to 690,
//! `xᵀ δ` at 40 × 40 from 4.96 to 4.31 µs, and the sinusoid network's lane
//! pass from 17.1 to 15.2 µs (2026-12-06).
//!
//! That makes each product dozens of copies of the block loops (a block
//! shape × a store × a kind of load), so they are compiled once, for `f32`
//! and `f64` in this crate ([`LaneProducts`]), and a block's last columns
//! go one at a time (shapes R × 4 and R × 1 only): built in every test
//! binary that trained a model, they had taken CI's build from 20 to 50
//! minutes; this crate alone now builds in under two minutes at the test
//! profile, and the meta-steps per second are the same within noise.

use crate::activation::{Activation, ActivationKernel, dispatch};
use crate::real::{Pack, Real};

/// Two lane-major matrices: a weight gradient's factor pair.
/// (Gathered from tasks' own matrices by [`gather`]; a group's per-lane
/// results are summed by [`Pack::tree_sums`].)
pub type LanePair<'a, T> = (&'a [<T as Real>::Pack], &'a [<T as Real>::Pack]);

/// A lane product's right-hand factor.
#[derive(Clone, Copy)]
pub enum Weights<'a, T: Real> {
    /// The same values for every task (θ's): each broadcast to all lanes.
    Shared(&'a [T]),
    /// Each task its own values: lane t of each pack is task t's.
    Lanes(&'a [T::Pack]),
}

impl<T: Real> Weights<'_, T> {
    fn len(&self) -> usize {
        match self {
            Weights::Shared(w) => w.len(),
            Weights::Lanes(w) => w.len(),
        }
    }
}

/// What a lane product does with its sums.
#[derive(Clone, Copy)]
pub enum Store<'a, T: Real> {
    /// Stores them.
    Replace,
    /// Adds them to the values in `out`.
    Accumulate,
    /// Stores `σ(sum + b)`, the bias `b` indexed by column, σ the identity or
    /// (with `relu`) ReLU: a dense layer's forward pass.
    Bias {
        /// The bias, one value per output column.
        bias: Weights<'a, T>,
        /// Whether σ is ReLU (else the identity).
        relu: bool,
    },
}

/// The register blocks: at most `ROWS` output rows × `COLS` output columns,
/// each a pack. With AVX-512's 32 registers, 5 × 4 = 20 accumulators, four
/// packs of B's step and one of A's; with 16 registers of half a pack each,
/// 2 × 2 (eight registers of accumulators).
#[cfg(target_feature = "avx512f")]
const BLOCK: (usize, usize) = (5, 4);
#[cfg(not(target_feature = "avx512f"))]
const BLOCK: (usize, usize) = (2, 2);

/// How a block reads a factor's packs: one value broadcast to all lanes
/// ([`Weights::Shared`]) or a pack as it is ([`Weights::Lanes`]), chosen once
/// per term so that the loop over the terms has one kind of load.
trait Access<T: Real>: Copy {
    /// The pack for value `i`.
    fn at(self, i: usize) -> T::Pack;
    /// Values `from..from + len`, so that indexing below `len` needs no check.
    fn slice(self, from: usize, len: usize) -> Self;
}

#[derive(Clone, Copy)]
struct Broadcast<'a, T>(&'a [T]);

impl<T: Real> Access<T> for Broadcast<'_, T> {
    #[inline(always)]
    fn at(self, i: usize) -> T::Pack {
        T::Pack::splat(self.0[i])
    }
    #[inline(always)]
    fn slice(self, from: usize, len: usize) -> Self {
        Broadcast(&self.0[from..][..len])
    }
}

#[derive(Clone, Copy)]
struct Packs<'a, T: Real>(&'a [T::Pack]);

impl<T: Real> Access<T> for Packs<'_, T> {
    #[inline(always)]
    fn at(self, i: usize) -> T::Pack {
        self.0[i]
    }
    #[inline(always)]
    fn slice(self, from: usize, len: usize) -> Self {
        Packs(&self.0[from..][..len])
    }
}

/// One or two factor pairs of a sum, each right-hand factor read through its
/// own [`Access`], so that the block's loops have one kind of load each.
#[derive(Clone, Copy)]
struct Pairs<'a, T: Real, B1, B2> {
    first: (&'a [T::Pack], B1),
    second: Option<(&'a [T::Pack], B2)>,
}

/// A [`Store`] as a type, chosen once per product: the store of each
/// output is then straight-line code, where a `match` on the enum for each
/// output kept the block's sums on the stack and reloaded the store's
/// fields for every one (a 10 × 1 × 40 product took 750 ns, ten times its
/// arithmetic).
trait Epilogue<T: Real>: Copy {
    /// The value stored at `out[at]` (in column `j`) for the sum `sum`.
    fn apply(self, sum: T::Pack, out: &[T::Pack], at: usize, j: usize) -> T::Pack;
}

#[derive(Clone, Copy)]
struct Replace;

impl<T: Real> Epilogue<T> for Replace {
    #[inline(always)]
    fn apply(self, sum: T::Pack, _: &[T::Pack], _: usize, _: usize) -> T::Pack {
        sum
    }
}

#[derive(Clone, Copy)]
struct Accumulate;

impl<T: Real> Epilogue<T> for Accumulate {
    #[inline(always)]
    fn apply(self, sum: T::Pack, out: &[T::Pack], at: usize, _: usize) -> T::Pack {
        sum + out[at]
    }
}

/// `base + step · sum` (one fused multiply-add): a gradient step's store,
/// `φ = θ − α ∂L` with `step = −α`, the base read through its [`Access`]
/// at the output's index (θ's or φ's values in the output's layout).
#[derive(Clone, Copy)]
struct Step<P, B> {
    step: P,
    base: B,
}

impl<T: Real, B: Access<T>> Epilogue<T> for Step<T::Pack, B> {
    #[inline(always)]
    fn apply(self, sum: T::Pack, _: &[T::Pack], at: usize, _: usize) -> T::Pack {
        self.step.mul_add(sum, self.base.at(at))
    }
}

/// `σ(sum + b_j)`, σ ReLU when `RELU`, else the identity.
#[derive(Clone, Copy)]
struct Bias<B, const RELU: bool>(B);

impl<T: Real, B: Access<T>, const RELU: bool> Epilogue<T> for Bias<B, RELU> {
    #[inline(always)]
    fn apply(self, sum: T::Pack, _: &[T::Pack], _: usize, j: usize) -> T::Pack {
        let z = sum + self.0.at(j);
        if RELU { z.positive_select(z) } else { z }
    }
}

/// `sum ⊙ σ'`, σ' from the outputs `h` laid out as the product's.
struct Derivative<'a, T: Real, K>(&'a [T::Pack], std::marker::PhantomData<K>);

impl<T: Real, K> Clone for Derivative<'_, T, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Real, K> Copy for Derivative<'_, T, K> {}

impl<T: Real, K: ActivationKernel> Epilogue<T> for Derivative<'_, T, K> {
    #[inline(always)]
    fn apply(self, sum: T::Pack, _: &[T::Pack], at: usize, _: usize) -> T::Pack {
        K::times_d::<T>(self.0[at], sum)
    }
}

/// Runs `by_access` with `Replace` or `Accumulate`: the only stores of
/// `δ Wᵀ`, so that it is not also compiled for the forward product's other
/// stores (each one a copy of every block shape).
fn by_plain_store<T: Real, const AT: bool, const BT: bool>(
    accumulate: bool,
    out: &mut [T::Pack],
    terms: &[(&[T::Pack], Weights<'_, T>)],
    ld: (usize, usize),
    shape: (usize, usize, usize),
) {
    if accumulate {
        by_access::<T, _, AT, BT>(Accumulate, out, terms, ld, shape)
    } else {
        by_access::<T, _, AT, BT>(Replace, out, terms, ld, shape)
    }
}

/// Runs `by_access` with `store` as its [`Epilogue`] type.
fn by_store<T: Real, const AT: bool, const BT: bool>(
    store: Store<'_, T>,
    out: &mut [T::Pack],
    terms: &[(&[T::Pack], Weights<'_, T>)],
    ld: (usize, usize),
    shape: (usize, usize, usize),
) {
    match store {
        Store::Replace => by_access::<T, _, AT, BT>(Replace, out, terms, ld, shape),
        Store::Accumulate => by_access::<T, _, AT, BT>(Accumulate, out, terms, ld, shape),
        Store::Bias { bias, relu } => {
            macro_rules! bias {
                ($b:expr) => {
                    if relu {
                        by_access::<T, _, AT, BT>(Bias::<_, true>($b), out, terms, ld, shape)
                    } else {
                        by_access::<T, _, AT, BT>(Bias::<_, false>($b), out, terms, ld, shape)
                    }
                };
            }
            match bias {
                Weights::Shared(b) => bias!(Broadcast(b)),
                Weights::Lanes(b) => bias!(Packs::<T>(b)),
            }
        }
    }
}

/// Runs `blocked` on `terms` with each right-hand factor's [`Access`].
fn by_access<T: Real, E: Epilogue<T>, const AT: bool, const BT: bool>(
    store: E,
    out: &mut [T::Pack],
    terms: &[(&[T::Pack], Weights<'_, T>)],
    ld: (usize, usize),
    (m, k, n): (usize, usize, usize),
) {
    macro_rules! go {
        ($first:expr, $second:expr) => {
            blocked::<T, E, _, _, AT, BT>(
                store,
                out,
                Pairs { first: $first, second: $second },
                ld,
                m,
                k,
                n,
            )
        };
    }
    let none = None::<(&[T::Pack], Packs<'_, T>)>;
    match terms {
        [(a, Weights::Shared(b))] => go!((*a, Broadcast(b)), none),
        [(a, Weights::Lanes(b))] => go!((*a, Packs::<T>(b)), none),
        [(a1, Weights::Shared(b1)), (a2, Weights::Shared(b2))] => {
            go!((*a1, Broadcast(b1)), Some((*a2, Broadcast(b2))))
        }
        [(a1, Weights::Shared(b1)), (a2, Weights::Lanes(b2))] => {
            go!((*a1, Broadcast(b1)), Some((*a2, Packs::<T>(b2))))
        }
        [(a1, Weights::Lanes(b1)), (a2, Weights::Shared(b2))] => {
            go!((*a1, Packs::<T>(b1)), Some((*a2, Broadcast(b2))))
        }
        [(a1, Weights::Lanes(b1)), (a2, Weights::Lanes(b2))] => {
            go!((*a1, Packs::<T>(b1)), Some((*a2, Packs::<T>(b2))))
        }
        _ => unreachable!("lane products sum one or two factor pairs"),
    }
}

/// Runs `blocked` on `terms` whose right-hand factors are all each task's
/// own (`xᵀ δ`): one kind of load, so that no other is compiled.
fn lane_pairs<T: Real, E: Epilogue<T>, const AT: bool, const BT: bool>(
    store: E,
    out: &mut [T::Pack],
    terms: &[LanePair<'_, T>],
    ld: (usize, usize),
    (m, k, n): (usize, usize, usize),
) {
    let pairs = match terms {
        [(a, b)] => Pairs { first: (*a, Packs::<T>(b)), second: None },
        [(a1, b1), (a2, b2)] => Pairs { first: (*a1, Packs(b1)), second: Some((*a2, Packs(b2))) },
        _ => unreachable!("lane products sum one or two factor pairs"),
    };
    blocked::<T, E, _, _, AT, BT>(store, out, pairs, ld, m, k, n)
}

/// `out (m × n)` from the sums over `k` terms of each factor pair of
/// `pairs`, in order, then `store`. `A(i, t)` is `a[i·lda + t]`, or
/// `a[t·lda + i]` when `AT`; `B(t, j)` is `b[t·ldb + j]`, or `b[j·ldb + t]`
/// when `BT`.
#[allow(clippy::too_many_arguments)]
fn blocked<
    T: Real,
    E: Epilogue<T>,
    B1: Access<T>,
    B2: Access<T>,
    const AT: bool,
    const BT: bool,
>(
    store: E,
    out: &mut [T::Pack],
    pairs: Pairs<'_, T, B1, B2>,
    ld: (usize, usize),
    m: usize,
    k: usize,
    n: usize,
) {
    if k == 1 && pairs.second.is_none() {
        return outer::<T, E, B1, AT, BT>(store, out, pairs.first, ld, m, n);
    }
    let (rows_max, cols_max) = BLOCK;
    // Blocks of nearly equal height: 10 rows are two blocks of 5, not 8 + 2.
    let blocks = m.div_ceil(rows_max);
    let mut i0 = 0;
    for block_index in 0..blocks {
        let rows = (m - i0).div_ceil(blocks - block_index);
        let mut j0 = 0;
        while j0 < n {
            // The last columns one at a time: fewer block shapes to compile
            // (each is a copy of the loops) for a few more loads of A.
            let cols = if n - j0 >= cols_max { cols_max } else { 1 };
            macro_rules! run {
                ($($r:literal),*; $($c:literal),*) => {
                    run!(@rows [$($r),*] [$($c),*])
                };
                (@rows [$($r:literal),*] $cs:tt) => {
                    match rows {
                        $($r => run!(@cols $r $cs),)*
                        _ => unreachable!("row blocks hold 1..=ROWS rows"),
                    }
                };
                (@cols $r:literal [$($c:literal),*]) => {
                    match cols {
                        $($c => block::<T, E, B1, B2, AT, BT, $r, $c>(
                            store, out, pairs, ld, (i0, j0), k, n,
                        ),)*
                        _ => unreachable!("column blocks hold 1 or COLS columns"),
                    }
                };
            }
            #[cfg(target_feature = "avx512f")]
            run!(1, 2, 3, 4, 5; 1, 4);
            #[cfg(not(target_feature = "avx512f"))]
            run!(1, 2; 1, 2);
            j0 += cols;
        }
        i0 += rows;
    }
}

/// `blocked` with one term and one pair: an outer product, each sum one
/// fused multiply-add from zero (the blocks' arithmetic), stored as it is
/// made (the blocks' bookkeeping cost several times the arithmetic here).
#[inline(always)]
fn outer<T: Real, E: Epilogue<T>, B: Access<T>, const AT: bool, const BT: bool>(
    store: E,
    out: &mut [T::Pack],
    (a, b): (&[T::Pack], B),
    (lda, ldb): (usize, usize),
    m: usize,
    n: usize,
) {
    let zero = T::Pack::splat(T::ZERO);
    for i in 0..m {
        let x = if AT { a[i] } else { a[i * lda] };
        let row = i * n;
        for j in 0..n {
            let w = if BT { b.at(j * ldb) } else { b.at(j) };
            out[row + j] = store.apply(x.mul_add(w, zero), out, row + j, j);
        }
    }
}

/// One register block: output rows `i0..i0 + R`, columns `j0..j0 + C`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<
    T: Real,
    E: Epilogue<T>,
    B1: Access<T>,
    B2: Access<T>,
    const AT: bool,
    const BT: bool,
    const R: usize,
    const C: usize,
>(
    store: E,
    out: &mut [T::Pack],
    pairs: Pairs<'_, T, B1, B2>,
    (lda, ldb): (usize, usize),
    (i0, j0): (usize, usize),
    k: usize,
    n: usize,
) {
    let zero = T::Pack::splat(T::ZERO);
    let at = (lda, ldb, i0, j0, k);
    let first = sums::<T, B1, AT, BT, R, C>([[zero; C]; R], pairs.first, at);
    // Each path stores its own sums: one value merged from two paths would
    // go through the stack.
    match pairs.second {
        Some(second) => {
            let acc = sums::<T, B2, AT, BT, R, C>(first, second, at);
            finish::<T, E, R, C>(store, out, acc, (i0, j0), n);
        }
        None => finish::<T, E, R, C>(store, out, first, (i0, j0), n),
    }
}

/// Stores a block's sums through `store`. Indexed by the constants R and C,
/// not iterated by reference, so that the sums stay in registers.
#[inline(always)]
fn finish<T: Real, E: Epilogue<T>, const R: usize, const C: usize>(
    store: E,
    out: &mut [T::Pack],
    acc: [[T::Pack; C]; R],
    (i0, j0): (usize, usize),
    n: usize,
) {
    for r in 0..R {
        let at = (i0 + r) * n + j0;
        for c in 0..C {
            out[at + c] = store.apply(acc[r][c], out, at + c, j0 + c);
        }
    }
}

/// `acc` plus one factor pair's terms, in increasing t. By value: the
/// accumulators stay in registers (through a reference, every update was
/// stored back to the stack).
#[inline(always)]
fn sums<T: Real, B: Access<T>, const AT: bool, const BT: bool, const R: usize, const C: usize>(
    mut acc: [[T::Pack; C]; R],
    (a, b): (&[T::Pack], B),
    (lda, ldb, i0, j0, k): (usize, usize, usize, usize, usize),
) -> [[T::Pack; C]; R] {
    // Rows and columns sliced to their k terms, indexed unchecked.
    let a_rows: [&[T::Pack]; R] =
        std::array::from_fn(|r| if AT { &a[..0] } else { &a[(i0 + r) * lda..][..k] });
    let b_rows: [B; C] =
        std::array::from_fn(|c| if BT { b.slice((j0 + c) * ldb, k) } else { b.slice(0, 0) });
    for t in 0..k {
        let b_step = if BT { b } else { b.slice(t * ldb + j0, C) };
        let bv: [T::Pack; C] =
            std::array::from_fn(|c| if BT { b_rows[c].at(t) } else { b_step.at(c) });
        let column = if AT { &a[t * lda + i0..][..R] } else { &a[..0] };
        for r in 0..R {
            let x = if AT { column[r] } else { a_rows[r][t] };
            for c in 0..C {
                acc[r][c] = x.mul_add(bv[c], acc[r][c]);
            }
        }
    }
    acc
}

#[inline(always)]
fn load<T: Real>(w: &Weights<'_, T>, i: usize) -> T::Pack {
    match w {
        Weights::Shared(w) => T::Pack::splat(w[i]),
        Weights::Lanes(w) => w[i],
    }
}

fn check<T: Real>(
    out: &[T::Pack],
    out_len: usize,
    a: &[T::Pack],
    a_len: usize,
    b: &Weights<'_, T>,
    b_len: usize,
) {
    assert!(
        out.len() >= out_len,
        "lane product: output holds {} packs, needs {out_len}",
        out.len()
    );
    assert!(a.len() >= a_len, "lane product: left factor holds {} packs, needs {a_len}", a.len());
    assert!(b.len() >= b_len, "lane product: right factor holds {} values, needs {b_len}", b.len());
}

/// `out (m × n) ← store(a (m × k) · b (k × n))` in every lane, all row-major:
/// `x · W`, and with [`Store::Bias`] a dense layer's `σ(x W + b)`.
///
/// # Panics
/// If a buffer is shorter than its shape.
pub fn gemm<T: Real>(
    store: Store<'_, T>,
    out: &mut [T::Pack],
    a: &[T::Pack],
    b: Weights<'_, T>,
    m: usize,
    k: usize,
    n: usize,
) {
    gemm_sum(store, out, [(a, b)], m, k, n);
}

/// `out (m × n) ← store(Σ a_s · b_s)` over the factor pairs in `terms`, all
/// of the same shapes as [`gemm`]'s, as one sum per output (the first pair's
/// terms, then the next's): the tangent forward pass's `Rx W + x V`.
///
/// # Panics
/// If a buffer is shorter than its shape.
pub fn gemm_sum<T: Real, const N: usize>(
    store: Store<'_, T>,
    out: &mut [T::Pack],
    terms: [(&[T::Pack], Weights<'_, T>); N],
    m: usize,
    k: usize,
    n: usize,
) {
    for (a, b) in &terms {
        check::<T>(out, m * n, a, m * k, b, k * n);
    }
    T::lane_gemm(store, out, &terms, (m, k, n));
}

/// `out (k × n) ← [out +] aᵀ · b` in every lane, for `a` of `m × k` and `b`
/// of `m × n`: a weight gradient `xᵀ δ`, summed over the m rows in order.
///
/// # Panics
/// If a buffer is shorter than its shape.
pub fn gemm_tn<T: Real>(
    accumulate: bool,
    out: &mut [T::Pack],
    a: &[T::Pack],
    b: &[T::Pack],
    m: usize,
    k: usize,
    n: usize,
) {
    gemm_tn_sum::<T, 1>(accumulate, out, [(a, b)], m, k, n);
}

/// `out (k × n) ← [out +] Σ a_sᵀ · b_s` over the pairs in `terms`, as one sum
/// per output: the tangent backward pass's `xᵀ Rδ + Rxᵀ δ`.
///
/// # Panics
/// If a buffer is shorter than its shape.
pub fn gemm_tn_sum<T: Real, const N: usize>(
    accumulate: bool,
    out: &mut [T::Pack],
    terms: [LanePair<'_, T>; N],
    m: usize,
    k: usize,
    n: usize,
) {
    for (a, b) in terms {
        check::<T>(out, k * n, a, m * k, &Weights::Lanes(b), m * n);
    }
    T::lane_gemm_tn(accumulate, out, &terms, (m, k, n));
}

/// `out (k × n) ← base + step · Σ a_sᵀ b_s` in every lane over the pairs in
/// `terms` (each `a_s` of `m × k`, `b_s` of `m × n`), `base` of `k × n`
/// (shared or each lane's own): a step along a weight matrix's gradient
/// without storing the gradient, `φ_W = θ_W − α xᵀ δ` with `step = −α`
/// (an inner step), or `g_W − α (H g)_W` (MAML's reverse step). Each lane
/// holds the bits of [`gemm_tn_sum`] followed by the step's multiply-add.
///
/// # Panics
/// If a buffer is shorter than its shape.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn_step<T: Real, const N: usize>(
    step: T,
    base: Weights<'_, T>,
    out: &mut [T::Pack],
    terms: [LanePair<'_, T>; N],
    m: usize,
    k: usize,
    n: usize,
) {
    for (a, b) in terms {
        check::<T>(out, k * n, a, m * k, &Weights::Lanes(b), m * n);
    }
    assert!(base.len() >= k * n, "lane product: the step's base holds {} values", base.len());
    T::lane_gemm_tn_step(step, base, out, &terms, (m, k, n));
}

/// `out (m × k) ← [out +] a · bᵀ` in every lane, for `a` of `m × n` and `b`
/// of `k × n`: a backward pass's `δ Wᵀ`, W's rows read in place.
///
/// # Panics
/// If a buffer is shorter than its shape.
pub fn gemm_nt<T: Real>(
    accumulate: bool,
    out: &mut [T::Pack],
    a: &[T::Pack],
    b: Weights<'_, T>,
    m: usize,
    n: usize,
    k: usize,
) {
    gemm_nt_sum(accumulate, out, [(a, b)], m, n, k);
}

/// `out (m × k) ← [out +] Σ a_s · b_sᵀ` over the pairs in `terms`, as one sum
/// per output: the tangent backward pass's `Rδ Wᵀ + δ Vᵀ`.
///
/// # Panics
/// If a buffer is shorter than its shape.
pub fn gemm_nt_sum<T: Real, const N: usize>(
    accumulate: bool,
    out: &mut [T::Pack],
    terms: [(&[T::Pack], Weights<'_, T>); N],
    m: usize,
    n: usize,
    k: usize,
) {
    check_nt(out, &terms, m, n, k);
    T::lane_gemm_nt(accumulate, out, &terms, (m, n, k));
}

/// `out (m × k) ← (a · bᵀ) ⊙ σ'` in every lane, σ' taken from `h` (the
/// activation's outputs, `m × k`): a backward pass's `δz Wᵀ` on into the
/// layer below's δz, [`gemm_nt`]'s sums times σ' in their store.
///
/// # Panics
/// If a buffer is shorter than its shape.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt_times_derivative<T: Real>(
    act: Activation,
    h: &[T::Pack],
    out: &mut [T::Pack],
    a: &[T::Pack],
    b: Weights<'_, T>,
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(h.len() >= m * k, "lane product: the outputs h hold {} packs, need {}", h.len(), m * k);
    let terms = [(a, b)];
    check_nt(out, &terms, m, n, k);
    T::lane_gemm_nt_times_derivative(act, h, out, &terms, (m, n, k));
}

/// The shapes of the `δ Wᵀ` products behind [`gemm_nt_sum`] and
/// [`gemm_nt_times_derivative`].
fn check_nt<T: Real>(
    out: &[T::Pack],
    terms: &[(&[T::Pack], Weights<'_, T>)],
    m: usize,
    n: usize,
    k: usize,
) {
    for (a, b) in terms {
        check::<T>(out, m * k, a, m * n, b, k * n);
    }
}

/// The bodies of the lane products for one scalar type, after their public
/// wrappers ([`gemm`], [`gemm_tn`], [`gemm_nt`] and their siblings) have
/// checked the shapes; `terms` holds one or two factor pairs. Implemented
/// for `f32` and `f64` here, so that the products are compiled once, in
/// this crate: generic code is compiled in every crate that uses it, and
/// each product is dozens of copies of the block loops (every test binary
/// compiling its own made CI's build two and a half times longer).
pub trait LaneProducts {
    /// [`gemm_sum`]'s sums and store, for its `(m, k, n)`.
    fn lane_gemm(
        store: Store<'_, Self>,
        out: &mut [<Self as Real>::Pack],
        terms: &[(&[<Self as Real>::Pack], Weights<'_, Self>)],
        shape: (usize, usize, usize),
    ) where
        Self: Real;
    /// [`gemm_tn_sum`]'s, for its `(m, k, n)`.
    fn lane_gemm_tn(
        accumulate: bool,
        out: &mut [<Self as Real>::Pack],
        terms: &[LanePair<'_, Self>],
        shape: (usize, usize, usize),
    ) where
        Self: Real;
    /// [`gemm_tn_step`]'s, for its `(m, k, n)`.
    fn lane_gemm_tn_step(
        step: Self,
        base: Weights<'_, Self>,
        out: &mut [<Self as Real>::Pack],
        terms: &[LanePair<'_, Self>],
        shape: (usize, usize, usize),
    ) where
        Self: Real;
    /// [`gemm_nt_sum`]'s, for its `(m, n, k)`.
    fn lane_gemm_nt(
        accumulate: bool,
        out: &mut [<Self as Real>::Pack],
        terms: &[(&[<Self as Real>::Pack], Weights<'_, Self>)],
        shape: (usize, usize, usize),
    ) where
        Self: Real;
    /// [`gemm_nt_times_derivative`]'s, for its `(m, n, k)`.
    fn lane_gemm_nt_times_derivative(
        act: Activation,
        h: &[<Self as Real>::Pack],
        out: &mut [<Self as Real>::Pack],
        terms: &[(&[<Self as Real>::Pack], Weights<'_, Self>)],
        shape: (usize, usize, usize),
    ) where
        Self: Real;
}

macro_rules! impl_lane_products {
    ($($t:ty),*) => {$(
        impl LaneProducts for $t {
            fn lane_gemm(
                store: Store<'_, $t>,
                out: &mut [<$t as Real>::Pack],
                terms: &[(&[<$t as Real>::Pack], Weights<'_, $t>)],
                (m, k, n): (usize, usize, usize),
            ) {
                by_store::<$t, false, false>(store, out, terms, (k, n), (m, k, n));
            }
            fn lane_gemm_tn(
                accumulate: bool,
                out: &mut [<$t as Real>::Pack],
                terms: &[LanePair<'_, $t>],
                (m, k, n): (usize, usize, usize),
            ) {
                let (ld, shape) = ((k, n), (k, m, n));
                if accumulate {
                    lane_pairs::<$t, _, true, false>(Accumulate, out, terms, ld, shape)
                } else {
                    lane_pairs::<$t, _, true, false>(Replace, out, terms, ld, shape)
                }
            }
            fn lane_gemm_tn_step(
                step: $t,
                base: Weights<'_, $t>,
                out: &mut [<$t as Real>::Pack],
                terms: &[LanePair<'_, $t>],
                (m, k, n): (usize, usize, usize),
            ) {
                let (ld, shape) = ((k, n), (k, m, n));
                let step = <$t as Real>::Pack::splat(step);
                match base {
                    Weights::Shared(b) => {
                        let store = Step { step, base: Broadcast(b) };
                        lane_pairs::<$t, _, true, false>(store, out, terms, ld, shape)
                    }
                    Weights::Lanes(b) => {
                        let store = Step { step, base: Packs::<$t>(b) };
                        lane_pairs::<$t, _, true, false>(store, out, terms, ld, shape)
                    }
                }
            }
            fn lane_gemm_nt(
                accumulate: bool,
                out: &mut [<$t as Real>::Pack],
                terms: &[(&[<$t as Real>::Pack], Weights<'_, $t>)],
                (m, n, k): (usize, usize, usize),
            ) {
                by_plain_store::<$t, false, true>(accumulate, out, terms, (n, n), (m, n, k));
            }
            fn lane_gemm_nt_times_derivative(
                act: Activation,
                h: &[<$t as Real>::Pack],
                out: &mut [<$t as Real>::Pack],
                terms: &[(&[<$t as Real>::Pack], Weights<'_, $t>)],
                (m, n, k): (usize, usize, usize),
            ) {
                dispatch!(act, K => by_access::<$t, _, false, true>(
                    Derivative::<$t, K>(h, std::marker::PhantomData),
                    out,
                    terms,
                    (n, n),
                    (m, n, k),
                ))
            }
        }
    )*};
}

impl_lane_products!(f32, f64);

/// `z ← σ(z + b)` in every lane, `z` lane-major with `cols` columns per row
/// and the bias indexed by column: the forward sweep of a layer whose σ the
/// product's store does not apply (tanh, sigmoid).
///
/// # Panics
/// If `z` is not whole rows of `cols`, or the bias holds fewer than `cols` values.
pub fn bias_activation<T: Real>(
    act: Activation,
    z: &mut [T::Pack],
    bias: Weights<'_, T>,
    cols: usize,
) {
    assert!(
        cols > 0 && z.len().is_multiple_of(cols),
        "lane sweep: {} packs are not rows of {cols}",
        z.len()
    );
    assert!(bias.len() >= cols, "lane sweep: the bias holds {} values, needs {cols}", bias.len());
    dispatch!(act, K => {
        for row in z.chunks_exact_mut(cols) {
            for (j, z) in row.iter_mut().enumerate() {
                *z = K::f_pack::<T>(*z + load(&bias, j));
            }
        }
    })
}

/// `x ← x ⊙ σ'` in every lane, σ' taken from the activation's outputs `h`:
/// a backward pass's δh into δz.
///
/// # Panics
/// If the two differ in length.
pub fn mul_activation_derivative<T: Real>(act: Activation, h: &[T::Pack], x: &mut [T::Pack]) {
    assert_eq!(h.len(), x.len(), "lane sweep: outputs and values differ in length");
    dispatch!(act, K => {
        for (x, &h) in x.iter_mut().zip(h) {
            *x = K::times_d::<T>(h, *x);
        }
    })
}

/// `rh ← σ' ⊙ rz` in every lane, σ' taken from the activation's outputs
/// `h`: the R-pass's tangent forward sweep, `Rh = σ'(z) ⊙ Rz` (the bias
/// direction is added to `Rz` in the product's store), and
/// [`mul_activation_derivative`] out of place (`δz = σ' ⊙ δh` with δh
/// kept), with its bits.
///
/// # Panics
/// If the three differ in length.
pub fn tangent_activation<T: Real>(
    act: Activation,
    h: &[T::Pack],
    rz: &[T::Pack],
    rh: &mut [T::Pack],
) {
    assert!(
        h.len() == rz.len() && h.len() == rh.len(),
        "lane sweep: tangent buffers differ in length"
    );
    dispatch!(act, K => {
        for ((rh, &rz), &h) in rh.iter_mut().zip(rz).zip(h) {
            *rh = K::times_d::<T>(h, rz);
        }
    })
}

/// The R-pass's backward sweep through σ, fused with the plain one, in
/// every lane (the per-task [`crate::activation::backward_tangent`]'s
/// arithmetic, lane by lane):
///
/// ```text
/// Rδz = Rδh ⊙ σ'(z) + δh ⊙ σ''(z) ⊙ Rz      (in place of Rδh)
///  δz =  δh ⊙ σ'(z)                          (in place of δh)
/// ```
///
/// # Panics
/// If the four differ in length.
pub fn backward_tangent<T: Real>(
    act: Activation,
    h: &[T::Pack],
    rz: &[T::Pack],
    delta: &mut [T::Pack],
    r_delta: &mut [T::Pack],
) {
    let n = h.len();
    assert!(
        rz.len() == n && delta.len() == n && r_delta.len() == n,
        "lane sweep: R-pass buffers differ in length"
    );
    let curved = act.is_curved();
    dispatch!(act, K => {
        for (((d, rd), &h), &rz) in delta.iter_mut().zip(r_delta.iter_mut()).zip(h).zip(rz) {
            (*d, *rd) = tangent_through::<K, T>(curved, h, rz, *d, *rd);
        }
    })
}

/// [`backward_tangent`] with δh read from `dh` and δz written to `delta`
/// (the same bits): a δh kept for later (a prepared R-pass's) is not
/// copied first to be overwritten in place.
///
/// # Panics
/// If the five differ in length.
pub fn backward_tangent_from<T: Real>(
    act: Activation,
    h: &[T::Pack],
    rz: &[T::Pack],
    dh: &[T::Pack],
    delta: &mut [T::Pack],
    r_delta: &mut [T::Pack],
) {
    let n = h.len();
    assert!(
        rz.len() == n && dh.len() == n && delta.len() == n && r_delta.len() == n,
        "lane sweep: R-pass buffers differ in length"
    );
    let curved = act.is_curved();
    dispatch!(act, K => {
        let sources = h.iter().zip(rz).zip(dh);
        for ((d, rd), ((&h, &rz), &dh)) in delta.iter_mut().zip(r_delta.iter_mut()).zip(sources) {
            (*d, *rd) = tangent_through::<K, T>(curved, h, rz, dh, *rd);
        }
    })
}

/// One pack of [`backward_tangent`]: `(δz, Rδz)` from h, Rz, δh and Rδh.
#[inline(always)]
fn tangent_through<K: ActivationKernel, T: Real>(
    curved: bool,
    h: T::Pack,
    rz: T::Pack,
    dh: T::Pack,
    r_dh: T::Pack,
) -> (T::Pack, T::Pack) {
    if curved {
        let (d1, d2) = (K::d_pack::<T>(h), K::dd_pack::<T>(h));
        (dh * d1, (dh * d2).mul_add(rz, r_dh * d1))
    } else {
        (K::times_d::<T>(h, dh), K::times_d::<T>(h, r_dh))
    }
}

/// `out ← Σ_i m[i]` over the rows of `m` (lane-major, `out.len()` columns),
/// each column summed from zero down the rows in order: a bias gradient.
///
/// # Panics
/// If `m` is not whole rows.
pub fn column_sums<T: Real>(m: &[T::Pack], out: &mut [T::Pack]) {
    let cols = out.len();
    assert!(
        cols > 0 && m.len().is_multiple_of(cols),
        "lane sums: {} packs are not rows of {cols}",
        m.len()
    );
    out.fill(T::Pack::splat(T::ZERO));
    for row in m.chunks_exact(cols) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o = *o + x;
        }
    }
}

/// `out_i ← base_i + step · out_i` in every lane, one multiply-add each,
/// the base shared or each lane's own: a step along a vector already in
/// `out` (a gradient, `H v`), with the bits of the fused stores
/// ([`gemm_tn_step`], [`column_sums_step`]) that take it without storing it.
///
/// # Panics
/// If `base` is shorter than `out`.
pub fn step_from<T: Real>(step: T, base: Weights<'_, T>, out: &mut [T::Pack]) {
    assert!(base.len() >= out.len(), "lane step: the base holds {} values", base.len());
    let step = T::Pack::splat(step);
    for (i, o) in out.iter_mut().enumerate() {
        *o = step.mul_add(*o, load(&base, i));
    }
}

/// `out[j] ← base_j + step · Σ_i m[i][j]` in every lane: [`column_sums`]'s
/// sums (the same order, the same bits) taken as a gradient step on a bias,
/// `φ_b = θ_b − α Σ_n δz` with `step = −α`.
///
/// # Panics
/// If `m` is not whole rows of `out.len()` columns or `base` is shorter.
pub fn column_sums_step<T: Real>(
    m: &[T::Pack],
    step: T,
    base: Weights<'_, T>,
    out: &mut [T::Pack],
) {
    let cols = out.len();
    assert!(
        cols > 0 && m.len().is_multiple_of(cols),
        "lane sums: {} packs are not rows of {cols}",
        m.len()
    );
    assert!(base.len() >= cols, "lane sums: the step's base holds {} values", base.len());
    let step = T::Pack::splat(step);
    for (j, o) in out.iter_mut().enumerate() {
        let sum = m[j..].iter().step_by(cols).fold(T::Pack::splat(T::ZERO), |s, &x| s + x);
        *o = step.mul_add(sum, load(&base, j));
    }
}

/// Mean squared error in every lane: `Σ (out − y)² / rows` over the `rows`
/// rows of `out` and `y` (lane-major, the same length), summed in order,
/// and its gradient `(2 / rows)(out − y)` into `grad`.
///
/// # Panics
/// If the buffers differ in length or `rows` is zero.
pub fn mse<T: Real>(out: &[T::Pack], y: &[T::Pack], rows: usize, grad: &mut [T::Pack]) -> T::Pack {
    assert!(rows > 0, "lane loss: no rows");
    assert!(out.len() == y.len() && grad.len() == out.len(), "lane loss: buffers differ in length");
    let inv_n = T::ONE / T::from_usize(rows);
    let two_over_n = two_over_rows::<T>(rows);
    let mut sum = T::Pack::splat(T::ZERO);
    for ((&o, &t), g) in out.iter().zip(y).zip(grad.iter_mut()) {
        let d = o - t;
        sum = d.mul_add(d, sum);
        *g = d * two_over_n;
    }
    sum * T::Pack::splat(inv_n)
}

/// `2 / rows`, the MSE's scale of δh and of its Hessian, as [`mse`] makes it.
fn two_over_rows<T: Real>(rows: usize) -> T::Pack {
    T::Pack::splat(T::from_f64(2.0) * (T::ONE / T::from_usize(rows)))
}

/// The MSE's Hessian times the output's tangent, in every lane: `Rδh =
/// (2 / rows) Rh` (the Hessian of [`mse`] is `2 / rows` times the
/// identity), the R-pass's seed.
///
/// # Panics
/// If the two differ in length or `rows` is zero.
pub fn mse_hessian_product<T: Real>(rh: &[T::Pack], rows: usize, r_delta: &mut [T::Pack]) {
    assert!(rows > 0, "lane loss: no rows");
    assert_eq!(rh.len(), r_delta.len(), "lane loss: buffers differ in length");
    let two_over_n = two_over_rows::<T>(rows);
    for (rd, &rh) in r_delta.iter_mut().zip(rh) {
        *rd = rh * two_over_n;
    }
}

/// Lays `tasks` tasks' matrices side by side: `out[i]` holds value i of
/// `matrix(t)` in lane t, and 0 in the lanes without a task (a task whose
/// inputs and targets are zeros: finite, and dropped from sums by
/// [`Pack::tree_sums`]'s lane count).
///
/// # Panics
/// If `tasks` exceeds [`Pack::LANES`] or a matrix's length is not `out`'s.
pub fn gather<'a, T: Real>(out: &mut [T::Pack], tasks: usize, matrix: impl Fn(usize) -> &'a [T]) {
    // At most 16 lanes (f32 with AVX-512).
    assert!(tasks <= T::Pack::LANES, "lane gather: {tasks} tasks for {} lanes", T::Pack::LANES);
    let mut sources: [&[T]; 16] = [&[]; 16];
    for (t, s) in sources.iter_mut().enumerate().take(tasks) {
        *s = matrix(t);
        assert_eq!(s.len(), out.len(), "lane gather: task {t}'s matrix against the packs");
    }
    let mut lane = [T::ZERO; 16];
    for (i, o) in out.iter_mut().enumerate() {
        for (l, s) in lane.iter_mut().zip(&sources[..tasks]) {
            *l = s[i];
        }
        *o = T::Pack::load(&lane[..T::Pack::LANES]);
    }
}
