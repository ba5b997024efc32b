//! Matrix products on row-major buffers: faer, and a register-blocked SIMD
//! kernel for the small `x · W` and `xᵀ δ` products of few-shot learning.
//!
//! A few-shot task is small: the sinusoid network multiplies 10 × 40 by
//! 40 × 40, sixteen thousand multiply-adds, where a general GEMM spends a
//! good part of its time packing and dispatching. The small kernel packs
//! nothing. It keeps a block of output packs in registers (with AVX-512, 5
//! rows × 3 packs = 15 accumulators for 40 columns, the last pack
//! overlapping, see below, or 5 rows × 5 packs of 8 lanes on a CPU whose
//! FMA units are 256 bits wide; with AVX2, 2 rows × 5 packs of 8 lanes) and
//! streams the reduction: at each step p, one load per pack of B's row p, one
//! broadcast per row of A, straight from memory (a load: a register
//! broadcast is a shuffle, on the port Intel's second FMA unit shares; 24%
//! faster at 10 × 40 × 40 on a Xeon with AVX-512, 2026-12-03), and a fused
//! multiply-add per accumulator. Ten or fifteen independent accumulators
//! hide the FMA latency; per-row loops cannot.
//!
//! A partial last pack is taken over the row's last pack of columns (24..40
//! for 40 columns and 16 lanes), overlapping the pack before it: every load
//! and store is a whole pack inside its row, with no padding and no masked
//! stores (a masked store costs 15–20 cycles per 256 bits on AMD's Zen 3).
//! The shared columns are computed twice, with the same bits.
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
//! A dense layer's forward pass, `σ(x W + b)` with σ the identity or ReLU,
//! runs as one product ([`gemm_bias_relu`]): the small kernel and the outer
//! product add the bias and apply σ to the sums in registers, before their
//! one store, instead of a second sweep over the output (the same bits).
//!
//! Products with a single term or a single output column (the sinusoid's
//! 1-wide input and output layers) are not matrix products at all: outer
//! products, weighted sums of rows and dot products, each a short loop here.
//! faer's fixed cost per call (60–80 ns) was more than their arithmetic.
//!
//! Which products take which path was measured (`cargo bench -p theta-benches
//! -- gemm`, and in-process A/B runs of whole meta-steps, 2026-11-22): `x ·
//! W` with at most [`SMALL_ROWS`] rows and at least 16 output columns is
//! 15–25% faster than faer at the sinusoid's shape (10 × 40 × 40); `xᵀ δ`
//! over at most [`SMALL_ROWS`] rows 5% faster (since 2026-12-06 over up to
//! [`SMALL_TN_ROWS`], the pretrained baseline's 500); the one-term and
//! one-column loops 1.1–3× faster than faer. With those and the faster column
//! sums and finiteness checks of the same change, MAML's and first-order
//! MAML's meta-steps got 10–13% faster. `δ Wᵀ`, which this kernel could only
//! run on a transposed copy of W (the transpose alone costs about as much as
//! the product), stays on faer, as do longer reductions and large layers,
//! unless the caller made Wᵀ for several products ([`transpose`]; see
//! `Dense::transposes`), or the product has so many rows that the transpose
//! is cheap beside it ([`TALL_NT_ROWS`]: the pretrained baseline's 500-row
//! `δz Wᵀ`, 4% faster as a whole step). Caching the transposes per thread
//! (θ's weights serve every task of a meta-batch) did not pay: on a hit the
//! product was 30% faster than faer's, but recognising W (comparing its 1,600
//! values with the cached copies) and copying the matrices met once (an
//! adapted φ, a direction V) made MAML's meta-step 4% (one inner step) to 13%
//! (five) slower (2026-12-03, Xeon with AVX-512).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::activation::{Activation, ActivationKernel, bias_activation, mul_activation_derivative};
use crate::real::{Pack, Real};

/// Widths (`k` and `n`) up to which `gemm` runs the register-blocked
/// kernel instead of faer.
pub const SMALL_MAX: usize = 128;

/// Rows up to which `gemm` runs the small kernel: with more, faer's packed
/// panels win (500 × 40 × 40: 5% faster on faer).
pub const SMALL_ROWS: usize = 32;

/// The register blocks of the small kernel, for the build's SIMD level and
/// the CPU's FMA units: a block is at most `mr` output rows × `nv` packs.
///
/// With AVX-512 (32 registers of 16 f32 lanes), 5 rows × 3 packs = 15
/// accumulators measured best for 40 columns (6 or 8 rows spilled
/// registers). 40 columns are then 48 lanes of work, and that is free only
/// where the FMA units are 512 bits wide. AMD's Zen 4 runs AVX-512 on
/// 256-bit units (a 512-bit FMA takes both for a cycle), where five 256-bit
/// packs cover 40 columns exactly: 1,000 cycles of FMAs for 10 × 40 × 40
/// instead of 1,200. There, blocks of 5 rows × 5 narrow packs (25
/// accumulators, five packs of B's row p and a broadcast: 31 of the 32
/// registers) made whole meta-steps 2.5–5.7% faster (MAML, first-order
/// MAML, Reptile, Gauss-Newton iMAML; in-process runs, best of five
/// alternated, 2026-12-04), so the kernel asks the CPU once
/// ([`half_width_fma`]) and takes those blocks there.
///
/// Without AVX-512 there are 16 registers of 8 lanes, and the blocks are of
/// narrow packs: 2 rows × 5 packs (10 accumulators and B's row p in the
/// other registers; 40 columns exactly) measured best on AMD Zen 3: MAML's
/// meta-step 14% faster than with 3 × 5, 8% than 4 × 3, 25% than 1 × 5,
/// and 1.5× as fast as with 5 × 3 wide packs (whose 30 register halves
/// spilled).
///
/// Every blocking computes each output as the same sum in the same order,
/// so the choice changes the time, never the bits.
#[cfg(target_feature = "avx512f")]
mod blocking {
    pub(super) const WIDE: (usize, usize) = (5, 4);
    pub(super) const NARROW: (usize, usize) = (5, 5);
}
#[cfg(not(target_feature = "avx512f"))]
mod blocking {
    pub(super) const NARROW: (usize, usize) = (2, 5);
}

/// True when this CPU runs AVX-512 on 256-bit FMA units (AMD's Zen 4,
/// family 19h; Zen 3, the same family, has no AVX-512), where the small
/// kernel's blocks are of 256-bit packs (see `blocking`). Asked once, of
/// `cpuid`; false without AVX-512 in the build, where the blocks are narrow
/// anyway.
pub fn half_width_fma() -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        static HALF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HALF.get_or_init(|| {
            use std::arch::x86_64::__cpuid;
            let vendor = __cpuid(0);
            let amd =
                (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
            let eax = __cpuid(1).eax;
            let family = ((eax >> 8) & 0xf) + ((eax >> 20) & 0xff);
            amd && family == 0x19
        })
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    false
}

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
    m <= SMALL_ROWS && small_widths(k, n)
}

/// True when a product with `k` terms and `n` output columns fits the small
/// kernel, whatever its rows.
fn small_widths(k: usize, n: usize) -> bool {
    (1..=SMALL_MAX).contains(&k) && (16..=SMALL_MAX).contains(&n)
}

/// Rows summed over up to which `xᵀ δ` runs the small kernel: its
/// accumulators stay in registers however long the sum, and the pretrained
/// baseline's 500-row gradient ran 5% faster as a whole step than on faer
/// (16,399–16,446 against 15,588–15,635 steps/s, three runs each,
/// alternated, AMD Zen 4, 2026-12-06). Longer sums stream δ from further
/// out in the caches once per block of output rows, and stay on faer.
pub const SMALL_TN_ROWS: usize = 512;

/// True when `aᵀ · b`, for `a` of `m × k` and `b` of `m × n`, runs on the
/// small kernel, read with A transposed in place: the widths of
/// [`is_small`] with k the output rows (wider was slower on the 784-wide
/// layers), over at most [`SMALL_TN_ROWS`] rows m.
pub fn is_small_tn(m: usize, k: usize, n: usize) -> bool {
    m <= SMALL_TN_ROWS && small_widths(k, n)
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
        outer(Epilogue::new(accumulate), out, a, b);
    } else if n == 1 {
        matvec(accumulate, out, a, b, k);
    } else if is_small(m, k, n) {
        small::<T, false, 1>(Epilogue::new(accumulate), out, [(a, b)], k, m, k, n);
    } else {
        faer_product(accumulate, view_mut(out, m, n), view(a, m, k), view(b, k, n));
    }
}

/// `out (m × n) ← σ(a (m × k) · b (k × n) + bias)`, the bias broadcast over
/// rows and σ the identity or, when `relu`, ReLU: a dense layer's forward
/// pass. On the small kernel and the outer product (`k = 1`) the bias and σ
/// are applied to the sums in registers, before their one store, instead of
/// a second sweep over `out`; elsewhere the product and then the sweep. The
/// bits are the same either way: the sum, one rounded addition of the bias,
/// and ReLU, which is exact.
#[allow(clippy::too_many_arguments)]
pub fn gemm_bias_relu<T: Real>(
    relu: bool,
    out: &mut [T],
    a: &[T],
    b: &[T],
    bias: &[T],
    m: usize,
    k: usize,
    n: usize,
) {
    let (out, a, b, bias) = (&mut out[..m * n], &a[..m * k], &b[..k * n], &bias[..n]);
    let epilogue = Epilogue::Bias { bias, relu };
    // On more rows than `is_small` takes, the small kernel's fused store
    // saves a sweep over the output, and its sums are faer's bit for bit
    // where multiply-adds are fused (tested at 500 × 40 × 40); without FMA
    // the two round differently, and faer keeps the tall products.
    let small_kernel =
        if cfg!(target_feature = "fma") { small_widths(k, n) } else { is_small(m, k, n) };
    if k == 1 {
        outer(epilogue, out, a, b);
    } else if small_kernel {
        small::<T, false, 1>(epilogue, out, [(a, b)], k, m, k, n);
    } else {
        gemm(false, out, a, b, m, k, n);
        let act = if relu { Activation::Relu } else { Activation::Identity };
        bias_activation(act, out, bias);
    }
}

/// What a product does with its sums: store them, add them to the old
/// values, or store `σ(sum + bias)` (σ the identity or ReLU, the bias
/// indexed by column).
#[derive(Clone, Copy)]
enum Epilogue<'a, T> {
    Replace,
    Accumulate,
    Bias { bias: &'a [T], relu: bool },
}

impl<'a, T: Real> Epilogue<'a, T> {
    fn new(accumulate: bool) -> Self {
        if accumulate { Epilogue::Accumulate } else { Epilogue::Replace }
    }

    /// The same epilogue for a block whose first column is `col`.
    fn at_column(self, col: usize) -> Self {
        match self {
            Epilogue::Bias { bias, relu } => Epilogue::Bias { bias: &bias[col..], relu },
            other => other,
        }
    }

    /// The value to store at column `col` (of the block) for the sums `sum`
    /// over a pack, given the old values there.
    #[inline(always)]
    fn apply<P: Pack<T>>(self, sum: P, col: usize, old: impl FnOnce() -> P) -> P {
        match self {
            Epilogue::Replace => sum,
            Epilogue::Accumulate => sum + old(),
            Epilogue::Bias { bias, relu } => {
                let z = sum + P::load(&bias[col..]);
                if relu { z.positive_select(z) } else { z }
            }
        }
    }

    /// [`Epilogue::apply`] for one value.
    #[inline(always)]
    fn apply_one(self, sum: T, col: usize, old: T) -> T {
        match self {
            Epilogue::Replace => sum,
            Epilogue::Accumulate => old + sum,
            Epilogue::Bias { bias, relu } => {
                let z = sum + bias[col];
                if !relu || z > T::ZERO { z } else { T::ZERO }
            }
        }
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
        small::<T, true, 1>(Epilogue::new(accumulate), out, [(a, b)], k, k, m, n);
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
        let out = &mut out[..m * n];
        small::<T, false, 2>(Epilogue::new(accumulate), out, [(a1, b1), (a2, b2)], k, m, k, n);
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
        let out = &mut out[..k * n];
        small::<T, true, 2>(Epilogue::new(accumulate), out, [(a1, b1), (a2, b2)], k, k, m, n);
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
        outer(Epilogue::new(accumulate), out, a, b);
    } else if is_tall_nt(m, n, k) {
        with_transposed(b, k, n, |bt| {
            small::<T, false, 1>(Epilogue::new(accumulate), out, [(a, bt)], n, m, n, k);
        });
    } else {
        faer_product(accumulate, view_mut(out, m, k), view(a, m, n), view(b, k, n).transpose());
    }
}

/// Rows from which [`gemm_nt`] runs `a · bᵀ` as `a · (bᵀ)` on the small
/// kernel, making bᵀ itself: there the transpose (172–300 ns at 40 × 40)
/// is small beside the product. The pretrained baseline's step, whose
/// `δz Wᵀ` is 500 × 40 × 40: 16,670–17,134 steps/s against 16,174–16,330
/// on faer (four runs each, alternated, AMD Zen 4, 2026-12-06). Below, a
/// caller that multiplies by one Wᵀ several times makes it once
/// ([`Dense::transposes`](crate::Dense::transposes)).
pub const TALL_NT_ROWS: usize = 64;

/// The most values of `b` that [`gemm_nt`] transposes (on the stack: 16 KB
/// in f32); larger layers stay on faer.
const TALL_NT_VALUES: usize = 4096;

/// Rows of a tall `δz Wᵀ ⊙ σ'` ([`gemm_nt_times_derivative`]) per chunk:
/// each chunk's product, then its σ' sweep while it is in L1 (40 rows × 40
/// columns are 6.4 KB in f32; a multiple of every blocking's rows).
const TALL_NT_CHUNK: usize = 40;

/// `f(bᵀ)` for `b` of `k × n`, bᵀ made on the stack (at most
/// [`TALL_NT_VALUES`] values).
fn with_transposed<T: Real>(b: &[T], k: usize, n: usize, f: impl FnOnce(&[T])) {
    let mut bt = [T::ZERO; TALL_NT_VALUES];
    let bt = &mut bt[..k * n];
    transpose(b, k, n, bt);
    f(bt)
}

/// True when `a (m × n) · bᵀ` (b of `k × n`) runs on the small kernel
/// through a transpose of b: on at least [`TALL_NT_ROWS`] rows, b of at
/// most 4,096 values, the small kernel's widths, and only where
/// multiply-adds are fused, where its sums are faer's bit for bit (so the
/// route never changes a result).
pub fn is_tall_nt(m: usize, n: usize, k: usize) -> bool {
    cfg!(target_feature = "fma")
        && m >= TALL_NT_ROWS
        && k * n <= TALL_NT_VALUES
        && small_widths(n, k)
}

/// `out (m × k) ← (a · bᵀ) ⊙ σ'` for `a` of `m × n` and `b` of `k × n`, σ'
/// taken from the activation's outputs `h` (`m × k`): a backward pass's
/// `δz Wᵀ` carried on through the activation of the layer below, δz of that
/// layer. With one column (n = 1, `δz Wᵀ` of a one-wide layer such as the
/// sinusoid's output) it is an outer product whose store multiplies by σ',
/// one sweep over the output fewer (the pretrained baseline's 500 × 40 is
/// an L2-bound sweep); on the tall route of [`gemm_nt`] ([`is_tall_nt`]),
/// chunks of rows, each product swept while it is in L1; otherwise the
/// product, then the sweep. The bits are the same either way: one rounded
/// product, then one multiplication by σ'.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt_times_derivative<T: Real>(
    act: Activation,
    h: &[T],
    out: &mut [T],
    a: &[T],
    b: &[T],
    m: usize,
    n: usize,
    k: usize,
) {
    let (out, h) = (&mut out[..m * k], &h[..m * k]);
    if n == 1 && k > 0 {
        let (a, b) = (&a[..m], &b[..k]);
        crate::activation::dispatch!(act, K => outer_times_derivative::<T, K>(h, out, a, b));
    } else if is_tall_nt(m, n, k) {
        // The sweep over each chunk of rows right after its product, in L1,
        // not over the whole output from L2 after (500 × 40 is 80 KB).
        with_transposed(&b[..k * n], k, n, |bt| {
            let chunks = out
                .chunks_mut(TALL_NT_CHUNK * k)
                .zip(a[..m * n].chunks(TALL_NT_CHUNK * n))
                .zip(h.chunks(TALL_NT_CHUNK * k));
            for ((out, a), h) in chunks {
                let rows = out.len() / k;
                small::<T, false, 1>(Epilogue::Replace, out, [(a, bt)], n, rows, n, k);
                mul_activation_derivative(act, h, out);
            }
        });
    } else {
        gemm_nt(false, out, a, b, m, n, k);
        mul_activation_derivative(act, h, out);
    }
}

/// `out ← (a ⊗ b) ⊙ σ'(h)`, row by row; a partial last pack over the row's
/// last whole pack's span (see [`outer`]).
#[inline(always)]
fn outer_times_derivative<T: Real, K: ActivationKernel>(h: &[T], out: &mut [T], a: &[T], b: &[T]) {
    let (lanes, n) = (T::Pack::LANES, b.len());
    let rows = out.chunks_exact_mut(n).zip(h.chunks_exact(n)).zip(a);
    if n < lanes {
        for ((row, h_row), &x) in rows {
            for ((o, &y), &h) in row.iter_mut().zip(b).zip(h_row) {
                *o = K::times_d_scalar(h, x * y);
            }
        }
        return;
    }
    let (whole, last) = (n - n % lanes, n - lanes);
    let b_last = T::Pack::load(&b[last..]);
    for ((row, h_row), &x) in rows {
        let xs = T::Pack::splat(x);
        for j in (0..whole).step_by(lanes) {
            let v = K::times_d::<T>(T::Pack::load(&h_row[j..]), xs * T::Pack::load(&b[j..]));
            v.store(&mut row[j..]);
        }
        if whole < n {
            K::times_d::<T>(T::Pack::load(&h_row[last..]), xs * b_last).store(&mut row[last..]);
        }
    }
}

/// `wt (cols × rows) ← wᵀ` for `w` of `rows × cols`, both row-major: in
/// square tiles of [`Real::TILE`] transposed in registers (edge tiles overlap
/// the tiles before them and write the same values again), or value by value
/// when a side is narrower than a tile. For `δ Wᵀ` on the small kernel, as
/// `δ · (Wᵀ)`, where one transpose serves several products (see
/// [`Dense`](crate::Dense)'s passes).
pub fn transpose<T: Real>(w: &[T], rows: usize, cols: usize, wt: &mut [T]) {
    let (w, wt) = (&w[..rows * cols], &mut wt[..rows * cols]);
    let tile = T::TILE;
    if rows < tile || cols < tile {
        for (i, row) in w.chunks_exact(cols.max(1)).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                wt[j * rows + i] = x;
            }
        }
        return;
    }
    let starts = |len: usize| (0..len.div_ceil(tile)).map(move |t| (t * tile).min(len - tile));
    for i0 in starts(rows) {
        for j0 in starts(cols) {
            T::transpose_tile(&w[i0 * cols + j0..], cols, &mut wt[j0 * rows + i0..], rows);
        }
    }
}

/// A product whose sums have no terms (or no outputs): zero, or unchanged.
fn no_terms<T: Real>(accumulate: bool, out: &mut [T]) {
    if !accumulate {
        out.fill(T::ZERO);
    }
}

/// `out ← [out +] a ⊗ b`, the `m × n` outer product of `a` (m) and `b` (n):
/// the products with one term, `k = 1`, through `epilogue`. A partial last
/// pack is taken over the row's last whole pack's span (no masked stores,
/// see the module doc), its old values read before the row's other packs
/// are written.
fn outer<T: Real>(epilogue: Epilogue<'_, T>, out: &mut [T], a: &[T], b: &[T]) {
    let (lanes, n) = (T::Pack::LANES, b.len());
    if n < lanes {
        for (row, &x) in out.chunks_exact_mut(n).zip(a) {
            for (j, (o, &y)) in row.iter_mut().zip(b).enumerate() {
                *o = epilogue.apply_one(x * y, j, *o);
            }
        }
        return;
    }
    let whole = n - n % lanes;
    let last = n - lanes;
    let b_last = T::Pack::load(&b[last..]);
    for (row, &x) in out.chunks_exact_mut(n).zip(a) {
        let xs = T::Pack::splat(x);
        let tail =
            (whole < n).then(|| epilogue.apply(xs * b_last, last, || T::Pack::load(&row[last..])));
        for j in (0..whole).step_by(lanes) {
            let v = epilogue.apply(xs * T::Pack::load(&b[j..]), j, || T::Pack::load(&row[j..]));
            v.store(&mut row[j..]);
        }
        if let Some(tail) = tail {
            tail.store(&mut row[last..]);
        }
    }
}

/// `out (n) ← [out +] Σ_p w[p] · rows[p, ·]` for `rows` of `w.len() × n`:
/// `xᵀ δ` when either side has one column. Each output is a fused sum over
/// p in order; a last partial pack is computed over the last whole pack's
/// span, so the columns it shares with the previous pack get the same bits.
/// Up to four packs are summed at once, as independent chains: one chain
/// per pack was bound by the multiply-add's latency (the pretrained step's
/// 500-row sums, 3 packs for 40 columns).
fn weighted_row_sum<T: Real>(accumulate: bool, out: &mut [T], w: &[T], rows: &[T]) {
    weighted_row_sum_and(accumulate, out, w, rows, None, None);
}

/// [`weighted_row_sum`], and plain sums along, in the same pass: the rows'
/// column sums `Σ_p rows[p, ·]` into `of_rows` (n values; `∂b = Σ δ` when
/// `rows` is δ) and the weights' sum `Σ_p w[p]` into `of_weights` (`∂b` of
/// a one-wide layer, whose δ is `w`), each summed from zero in order as
/// [`column_sums`](crate::activation::column_sums) sums them (the same
/// bits): in packs, as independent chains beside the weighted ones; on
/// outputs narrower than a pack, value by value (and `Σ w` in a loop of its
/// own).
fn weighted_row_sum_and<T: Real>(
    accumulate: bool,
    out: &mut [T],
    w: &[T],
    rows: &[T],
    mut of_rows: Option<&mut [T]>,
    mut of_weights: Option<&mut T>,
) {
    let (lanes, n) = (T::Pack::LANES, out.len());
    if n < lanes {
        for (j, o) in out.iter_mut().enumerate() {
            let (mut s, mut b) = (T::ZERO, T::ZERO);
            for (&x, row) in w.iter().zip(rows.chunks_exact(n)) {
                s += x * row[j];
                b += row[j];
            }
            *o = if accumulate { *o + s } else { s };
            if let Some(of_rows) = of_rows.as_deref_mut() {
                of_rows[j] = b;
            }
        }
        if let Some(total) = of_weights {
            *total = w.iter().fold(T::ZERO, |s, &x| s + x);
        }
        return;
    }
    let packs = n.div_ceil(lanes);
    let mut v0 = 0;
    while v0 < packs {
        let count = (packs - v0).min(4);
        // The sum of the weights goes along with the first group.
        let total = of_weights.take();
        macro_rules! group {
            ($v:literal) => {
                match of_rows.as_deref_mut() {
                    None => weighted_pack_sums::<T, $v, false>(
                        accumulate,
                        out,
                        w,
                        rows,
                        v0,
                        &mut [],
                        total,
                    ),
                    Some(s) => {
                        weighted_pack_sums::<T, $v, true>(accumulate, out, w, rows, v0, s, total)
                    }
                }
            };
        }
        match count {
            1 => group!(1),
            2 => group!(2),
            3 => group!(3),
            _ => group!(4),
        }
        v0 += count;
    }
}

/// [`weighted_row_sum_and`] of packs `v0..v0 + V` at once, with the rows'
/// column sums of those packs into `of_rows` when `ROWS`, and `Σ w` into
/// `of_weights` when given. Stored in order, so a partial last pack (always
/// the last of all) finds the pack it overlaps already stored, and keeps
/// that pack's lanes when accumulating.
#[inline(always)]
fn weighted_pack_sums<T: Real, const V: usize, const ROWS: bool>(
    accumulate: bool,
    out: &mut [T],
    w: &[T],
    rows: &[T],
    v0: usize,
    of_rows: &mut [T],
    of_weights: Option<&mut T>,
) {
    let (lanes, n) = (T::Pack::LANES, out.len());
    let starts: [usize; V] = std::array::from_fn(|v| ((v0 + v) * lanes).min(n - lanes));
    let zero = T::Pack::splat(T::ZERO);
    let (mut acc, mut sum) = ([zero; V], [zero; V]);
    let mut total = T::ZERO;
    for (&x, row) in w.iter().zip(rows.chunks_exact(n)) {
        if of_weights.is_some() {
            total += x;
        }
        let xs = T::Pack::splat(x);
        for v in 0..V {
            let r = T::Pack::load(&row[starts[v]..]);
            acc[v] = xs.mul_add(r, acc[v]);
            if ROWS {
                sum[v] = sum[v] + r;
            }
        }
    }
    if let Some(t) = of_weights {
        *t = total;
    }
    for v in 0..V {
        let (j, s) = (starts[v], acc[v]);
        let s = match (accumulate, (v0 + v + 1) * lanes > n) {
            (false, _) => s,
            (true, false) => T::Pack::load(&out[j..]) + s,
            (true, true) => {
                let old = T::Pack::load(&out[j..]);
                old.blend_first(lanes - n % lanes, old + s)
            }
        };
        s.store(&mut out[j..]);
        if ROWS {
            sum[v].store(&mut of_rows[j..]);
        }
    }
}

/// A dense layer's weight and bias gradients, `grad_w (k × n) ← aᵀ δ` and
/// `grad_b (n) ← Σ_rows δ`, for `a` of `m × k` and δ of `m × n`: [`gemm_tn`]
/// and [`column_sums`](crate::activation::column_sums), with the same bits.
/// Where a side has one column (the sinusoid's input and output layers),
/// both reductions run in one pass over δ, beside each other.
#[allow(clippy::too_many_arguments)]
pub fn weight_and_bias_gradients<T: Real>(
    grad_w: &mut [T],
    grad_b: &mut [T],
    a: &[T],
    delta: &[T],
    m: usize,
    k: usize,
    n: usize,
) {
    let (grad_w, grad_b, a, delta) =
        (&mut grad_w[..k * n], &mut grad_b[..n], &a[..m * k], &delta[..m * n]);
    if m > 0 && k == 1 {
        weighted_row_sum_and(false, grad_w, a, delta, Some(grad_b), None);
    } else if m > 0 && n == 1 {
        weighted_row_sum_and(false, grad_w, delta, a, None, Some(&mut grad_b[0]));
    } else {
        gemm_tn(false, grad_w, a, delta, m, k, n);
        crate::activation::column_sums(delta, grad_b);
    }
}

/// `out (m) ← [out +] a (m × k) · b (k)`: a dot product per row, in packs
/// along k (a last partial pack over the last whole pack's span, its shared
/// lanes zeroed), the lanes then summed as a tree: sixteen rows' packs at a
/// time where there are sixteen ([`Pack::tree_sums`]: with AVX-512, 31
/// shuffles of whole registers instead of a store and fifteen scalar
/// additions per row; the pretrained baseline's output layer has 500
/// rows), the rows left one by one (a task's 10: padded to sixteen packs,
/// iMAML's steps ran 3% slower, though the product alone was faster).
fn matvec<T: Real>(accumulate: bool, out: &mut [T], a: &[T], b: &[T], k: usize) {
    const ROWS: usize = 16;
    let lanes = T::Pack::LANES;
    let whole = k - k % lanes;
    let zero = T::Pack::splat(T::ZERO);
    let row_sums = |row: &[T]| {
        let mut s = zero;
        for p in (0..whole).step_by(lanes) {
            s = T::Pack::load(&row[p..]).mul_add(T::Pack::load(&b[p..]), s);
        }
        if whole < k {
            let (p, done) = (k - lanes, lanes - k % lanes);
            let tail = zero.blend_first(done, T::Pack::load(&row[p..]));
            s = tail.mul_add(T::Pack::load(&b[p..]), s);
        }
        s
    };
    let set = |o: &mut T, s: T| *o = if accumulate { *o + s } else { s };
    let full = if k >= lanes { out.len() - out.len() % ROWS } else { 0 };
    let (head, tail) = out.split_at_mut(full);
    let mut packs = [zero; ROWS];
    let mut sums = [T::ZERO; ROWS];
    for (outs, rows) in head.chunks_exact_mut(ROWS).zip(a.chunks_exact(ROWS * k)) {
        for (p, row) in packs.iter_mut().zip(rows.chunks_exact(k)) {
            *p = row_sums(row);
        }
        T::Pack::tree_sums(&packs, lanes, &mut sums);
        for (o, &s) in outs.iter_mut().zip(&sums) {
            set(o, s);
        }
    }
    for (o, row) in tail.iter_mut().zip(a[full * k..].chunks_exact(k)) {
        let s = if k >= lanes {
            tree_sum(row_sums(row))
        } else {
            row.iter().zip(b).fold(T::ZERO, |s, (&x, &y)| s + x * y)
        };
        set(o, s);
    }
}

/// The sum of a pack's lanes as [`Pack::tree_sums`] sums them, one pack.
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
    epilogue: Epilogue<'_, T>,
    out: &mut [T],
    terms: [(&[T], &[T]); N],
    lda: usize,
    m: usize,
    k: usize,
    n: usize,
) {
    #[cfg(target_feature = "avx512f")]
    if !half_width_fma() {
        let (mr, nv) = blocking::WIDE;
        return blocked::<T, T::Pack, AT, N>(epilogue, out, terms, (lda, mr, nv), m, k, n);
    }
    let (mr, nv) = blocking::NARROW;
    blocked::<T, T::Narrow, AT, N>(epilogue, out, terms, (lda, mr, nv), m, k, n)
}

/// [`small`] in blocks of at most `mr` rows × `nv` packs `P`.
#[allow(clippy::too_many_arguments)]
fn blocked<T: Real, P: Pack<T>, const AT: bool, const N: usize>(
    epilogue: Epilogue<'_, T>,
    out: &mut [T],
    terms: [(&[T], &[T]); N],
    (lda, mr, nv): (usize, usize, usize),
    m: usize,
    k: usize,
    n: usize,
) {
    let lanes = P::LANES;
    debug_assert!(n >= lanes, "the small kernel needs a whole pack of columns");
    // Pack g covers the columns from `start(g)`: whole packs, and a partial
    // last one taken over the row's last `lanes` columns, so every load and
    // store is one whole pack inside its row.
    let packs = n.div_ceil(lanes);
    let start = |g: usize| (g * lanes).min(n - lanes);
    let overlaps = !n.is_multiple_of(lanes);
    let mut v0 = 0;
    while v0 < packs {
        let mut count = (packs - v0).min(nv);
        // The overlapping last pack shares a block with the pack it overlaps:
        // a block reads all of a row's old values before it stores any, so
        // the shared columns are added to once (4 + 1 packs become 3 + 2).
        if overlaps && count > 1 && packs - v0 - count == 1 {
            count -= 1;
        }
        let s0 = start(v0);
        // Blocks of nearly equal height: 10 rows are two blocks of 5, not 8 + 2.
        let blocks = m.div_ceil(mr);
        let mut i0 = 0;
        for block_index in 0..blocks {
            let rows = (m - i0).div_ceil(blocks - block_index);
            let block_terms: [(&[T], &[T]); N] = std::array::from_fn(|t| {
                let (a, b) = terms[t];
                (if AT { &a[i0..] } else { &a[i0 * lda..] }, &b[s0..])
            });
            let out = &mut out[i0 * n + s0..];
            macro_rules! run {
                ($($r:literal),*; $($v:literal),*) => {
                    run!(@rows [$($r),*] [$($v),*])
                };
                (@rows [$($r:literal),*] $vs:tt) => {
                    match rows {
                        $($r => run!(@packs $r $vs),)*
                        _ => unreachable!("row blocks hold 1..=mr rows"),
                    }
                };
                (@packs $r:literal [$($v:literal),*]) => {
                    match count {
                        $($v => block::<T, P, AT, $r, $v, N>(
                            epilogue.at_column(s0),
                            out,
                            &block_terms,
                            (lda, n),
                            k,
                            std::array::from_fn(|v| start(v0 + v) - s0),
                        ),)*
                        _ => unreachable!("column blocks hold 1..=nv packs"),
                    }
                };
            }
            #[cfg(target_feature = "avx512f")]
            run!(1, 2, 3, 4, 5; 1, 2, 3, 4, 5);
            #[cfg(not(target_feature = "avx512f"))]
            run!(1, 2; 1, 2, 3, 4, 5);
            i0 += rows;
        }
        v0 += count;
    }
}

/// One register block: `R` output rows × `V` packs, the packs at columns
/// `offsets` from the block's first column, summed over the terms in order.
/// `a` and `b` of each term start at the block's first row and column; `ld`
/// is (A's, B's and out's) leading dimension.
#[inline(always)]
fn block<T: Real, P: Pack<T>, const AT: bool, const R: usize, const V: usize, const N: usize>(
    epilogue: Epilogue<'_, T>,
    out: &mut [T],
    terms: &[(&[T], &[T]); N],
    (lda, ld): (usize, usize),
    k: usize,
    offsets: [usize; V],
) {
    let lanes = P::LANES;
    let span = offsets[V - 1] + lanes;
    let zero = P::splat(T::ZERO);
    let mut acc = [[zero; V]; R];
    for &(a, b) in terms {
        // A's rows as slices of exactly k values, so indexing by p < k needs
        // no check in the loop (read transposed, column p of the block is R
        // consecutive values).
        let mut a_rows = [&a[..0]; R];
        if !AT {
            for r in 0..R {
                a_rows[r] = &a[r * lda..][..k];
            }
        }
        for p in 0..k {
            let bp = &b[p * ld..][..span];
            let bv: [P; V] = std::array::from_fn(|v| P::load(&bp[offsets[v]..]));
            let column = if AT { &a[p * lda..][..R] } else { &a[..0] };
            for r in 0..R {
                // Broadcast straight from memory (a load, not a shuffle).
                let x = P::splat(if AT { column[r] } else { a_rows[r][p] });
                for v in 0..V {
                    acc[r][v] = x.mul_add(bv[v], acc[r][v]);
                }
            }
        }
    }
    // Unrolled, so the accumulators stay in registers. A row's old values are
    // all read before any is written: packs may share columns, and they hold
    // the same bits there (the same sums, in the same order).
    for (r, acc) in acc.iter().enumerate() {
        let row = &mut out[r * ld..][..span];
        let mut value = *acc;
        for v in 0..V {
            let old = || P::load(&row[offsets[v]..]);
            value[v] = epilogue.apply(value[v], offsets[v], old);
        }
        for v in 0..V {
            value[v].store(&mut row[offsets[v]..]);
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

#[cfg(test)]
mod tests {
    //! Every blocking of the small kernel, whichever this CPU takes: the
    //! same bits (the choice is the CPU's, so a blocking it does not take
    //! must still agree with the one it does), and near the scalar reference.
    use super::*;

    /// One blocking of the small kernel, on two terms.
    type Run<T> = fn(Epilogue<'_, T>, &mut [T], [(&[T], &[T]); 2], usize, usize, usize, usize);

    /// The most rows a block may have in this build (the arms of `small`).
    const ROWS: usize = if cfg!(target_feature = "avx512f") { 5 } else { 2 };

    fn blockings<T: Real, const AT: bool>() -> Vec<(&'static str, Run<T>)> {
        vec![
            ("16-lane packs, 4 a block", |e, o, t, lda, m, k, n| {
                blocked::<T, T::Pack, AT, 2>(e, o, t, (lda, ROWS, 4), m, k, n)
            }),
            ("8-lane packs, 5 a block", |e, o, t, lda, m, k, n| {
                blocked::<T, T::Narrow, AT, 2>(e, o, t, (lda, ROWS, 5), m, k, n)
            }),
            ("8-lane packs, 2 × 5", |e, o, t, lda, m, k, n| {
                blocked::<T, T::Narrow, AT, 2>(e, o, t, (lda, 2, 5), m, k, n)
            }),
            ("8-lane packs, 1 × 3", |e, o, t, lda, m, k, n| {
                blocked::<T, T::Narrow, AT, 2>(e, o, t, (lda, 1, 3), m, k, n)
            }),
        ]
    }

    fn values<T: Real>(seed: u64, n: usize) -> Vec<T> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                T::from_f64(2.0 * ((s >> 11) as f64 / (1u64 << 53) as f64) - 1.0)
            })
            .collect()
    }

    fn all_blockings_agree<T: Real, const AT: bool>() {
        for (m, k, n) in [(1, 3, 16), (10, 40, 40), (7, 33, 45), (12, 5, 24), (5, 64, 100)] {
            // Two terms; A is m × k, or k-major when read transposed (AT).
            let (a1, a2) = (values::<T>(1, m * k), values::<T>(2, m * k));
            let (b1, b2) = (values::<T>(3, k * n), values::<T>(4, k * n));
            let (old, bias) = (values::<T>(5, m * n), values::<T>(6, n));
            let lda = if AT { m } else { k };
            let epilogues = [
                Epilogue::Replace,
                Epilogue::Accumulate,
                Epilogue::Bias { bias: &bias, relu: true },
                Epilogue::Bias { bias: &bias, relu: false },
            ];
            for (e, epilogue) in epilogues.into_iter().enumerate() {
                let mut first: Option<Vec<T>> = None;
                for (name, run) in blockings::<T, AT>() {
                    let mut out = old.clone();
                    run(epilogue, &mut out, [(&a1, &b1), (&a2, &b2)], lda, m, k, n);
                    match &first {
                        None => first = Some(out),
                        Some(f) => assert!(
                            f.iter()
                                .zip(&out)
                                .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits()),
                            "{name} differs at {m} × {k} × {n}, epilogue {e}, AT = {AT}"
                        ),
                    }
                }
                // Near the scalar sum of both terms (the plain product check).
                let (mut r1, mut r2) = (vec![T::ZERO; m * n], vec![T::ZERO; m * n]);
                let a_strides = if AT { (1, m) } else { (k, 1) };
                gemm_ref(false, &mut r1, (&a1, a_strides.0, a_strides.1), (&b1, n, 1), m, k, n);
                gemm_ref(false, &mut r2, (&a2, a_strides.0, a_strides.1), (&b2, n, 1), m, k, n);
                if e == 0 {
                    let out = first.expect("the blockings ran");
                    for (i, (&o, (&x, &y))) in out.iter().zip(r1.iter().zip(&r2)).enumerate() {
                        let err = (o - (x + y)).to_f64().abs();
                        assert!(err <= 1e-4 * (2 * k) as f64, "{i}: {o} against {}", x + y);
                    }
                }
            }
        }
    }

    #[test]
    fn every_blocking_gives_the_same_bits() {
        all_blockings_agree::<f32, false>();
        all_blockings_agree::<f32, true>();
        all_blockings_agree::<f64, false>();
        all_blockings_agree::<f64, true>();
    }
}
