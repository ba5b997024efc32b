//! Operations on flat parameter vectors (θ, gradients, directions).
//!
//! Reductions keep four pack accumulators, combined in a fixed order, so a
//! result depends only on the length and the SIMD width, never on threads.

use crate::real::{Pack, Real};

/// `y ← y + a·x`.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "axpy: vectors differ in length");
    let lanes = T::Pack::LANES;
    let n = x.len();
    let ap = T::Pack::splat(a);
    let mut i = 0;
    while i + lanes <= n {
        ap.mul_add(T::Pack::load(&x[i..]), T::Pack::load(&y[i..])).store(&mut y[i..]);
        i += lanes;
    }
    for i in i..n {
        y[i] += a * x[i];
    }
}

/// `out ← y + a·x`: [`axpy`] into another vector, the same bits, one pass
/// instead of a copy and an update (MAML's first inner step, φ₁ = θ − α∇L).
///
/// # Panics
/// If the lengths differ.
pub fn axpy_to<T: Real>(a: T, x: &[T], y: &[T], out: &mut [T]) {
    assert!(x.len() == y.len() && y.len() == out.len(), "axpy_to: vectors differ in length");
    let lanes = T::Pack::LANES;
    let n = x.len();
    let ap = T::Pack::splat(a);
    let mut i = 0;
    while i + lanes <= n {
        ap.mul_add(T::Pack::load(&x[i..]), T::Pack::load(&y[i..])).store(&mut out[i..]);
        i += lanes;
    }
    for i in i..n {
        out[i] = y[i] + a * x[i];
    }
}

/// `out ← ((t₀ + t₁) + t₂) + …`, element by element, over the `terms`
/// vectors `term(0)`, `term(1)`, … in that order: the bits of copying
/// `term(0)` and then [`axpy`]ing each other term with `a = 1` (one rounded
/// addition each, in the same order), in one pass over `out`. A block of
/// output packs stays in registers while every term streams through it, so
/// each number is loaded once and stored once instead of once per term.
///
/// # Panics
/// If `terms` is 0 or a term is shorter than `out`.
pub fn sum_in_order<'a, T: Real>(out: &mut [T], terms: usize, term: impl Fn(usize) -> &'a [T]) {
    assert!(terms > 0, "sum_in_order: no terms");
    let (lanes, n) = (T::Pack::LANES, out.len());
    // Eight independent accumulators hide the addition's latency.
    const PACKS: usize = 8;
    let block = PACKS * lanes;
    let mut j = 0;
    while j + block <= n {
        let first = &term(0)[j..j + block];
        let mut acc: [T::Pack; PACKS] = std::array::from_fn(|k| T::Pack::load(&first[k * lanes..]));
        for t in 1..terms {
            let x = &term(t)[j..j + block];
            for (k, a) in acc.iter_mut().enumerate() {
                *a = *a + T::Pack::load(&x[k * lanes..]);
            }
        }
        for (k, a) in acc.into_iter().enumerate() {
            a.store(&mut out[j + k * lanes..]);
        }
        j += block;
    }
    while j + lanes <= n {
        let mut acc = T::Pack::load(&term(0)[j..]);
        for t in 1..terms {
            acc = acc + T::Pack::load(&term(t)[j..]);
        }
        acc.store(&mut out[j..]);
        j += lanes;
    }
    for (i, o) in out.iter_mut().enumerate().skip(j) {
        *o = (1..terms).fold(term(0)[i], |acc, t| acc + term(t)[i]);
    }
}

/// Scalar reference of [`axpy`].
pub fn axpy_ref<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `x ← a·x`.
pub fn scale<T: Real>(a: T, x: &mut [T]) {
    let lanes = T::Pack::LANES;
    let n = x.len();
    let ap = T::Pack::splat(a);
    let mut i = 0;
    while i + lanes <= n {
        (T::Pack::load(&x[i..]) * ap).store(&mut x[i..]);
        i += lanes;
    }
    for i in i..n {
        x[i] *= a;
    }
}

/// Scalar reference of [`scale`].
pub fn scale_ref<T: Real>(a: T, x: &mut [T]) {
    for x in x {
        *x *= a;
    }
}

/// `xᵀy`.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn dot<T: Real>(x: &[T], y: &[T]) -> T {
    assert_eq!(x.len(), y.len(), "dot: vectors differ in length");
    let lanes = T::Pack::LANES;
    let n = x.len();
    let zero = T::Pack::splat(T::ZERO);
    let mut acc = [zero; 4];
    let mut i = 0;
    while i + 4 * lanes <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let o = i + k * lanes;
            *a = T::Pack::load(&x[o..]).mul_add(T::Pack::load(&y[o..]), *a);
        }
        i += 4 * lanes;
    }
    while i + lanes <= n {
        acc[0] = T::Pack::load(&x[i..]).mul_add(T::Pack::load(&y[i..]), acc[0]);
        i += lanes;
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])).sum_lanes();
    for i in i..n {
        s += x[i] * y[i];
    }
    s
}

/// Scalar reference of [`dot`].
pub fn dot_ref<T: Real>(x: &[T], y: &[T]) -> T {
    x.iter().zip(y).map(|(&a, &b)| a * b).sum()
}

/// The Euclidean norm `‖x‖`.
pub fn norm<T: Real>(x: &[T]) -> T {
    dot(x, x).sqrt()
}

/// Scalar reference of [`norm`].
pub fn norm_ref<T: Real>(x: &[T]) -> T {
    dot_ref(x, x).sqrt()
}

/// True when no value is NaN or infinite. One pass of `acc += x·0` in packs:
/// ∞·0 and NaN·0 are NaN, and NaN sticks, so the check costs about as much
/// as reading the vector once.
pub fn all_finite<T: Real>(x: &[T]) -> bool {
    // x · 0 is 0 for finite x and NaN otherwise; four chains hide the
    // latency of the multiply-add.
    let lanes = T::Pack::LANES;
    let zero = T::Pack::splat(T::ZERO);
    let mut acc = [zero; 4];
    let mut chunks = x.chunks_exact(4 * lanes);
    for chunk in &mut chunks {
        for (v, a) in acc.iter_mut().enumerate() {
            *a = T::Pack::load(&chunk[v * lanes..]).mul_add(zero, *a);
        }
    }
    let rest = chunks.remainder();
    let mut packs = rest.chunks_exact(lanes);
    for pack in &mut packs {
        acc[0] = T::Pack::load(pack).mul_add(zero, acc[0]);
    }
    let acc = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    acc.sum_lanes().is_finite() && packs.remainder().iter().all(|v| v.is_finite())
}

/// The constants of one Adam step (see [`adam_update`]).
#[derive(Clone, Copy, Debug)]
pub struct AdamStep<T> {
    /// β₁.
    pub beta1: T,
    /// β₂.
    pub beta2: T,
    /// 1 − β₁.
    pub one_minus_beta1: T,
    /// 1 − β₂.
    pub one_minus_beta2: T,
    /// The learning rate over the first bias correction, lr / (1 − β₁ᵗ).
    pub step: T,
    /// One over the second bias correction, 1 / (1 − β₂ᵗ).
    pub inv_correction2: T,
    /// ε.
    pub eps: T,
}

/// One Adam step, element by element: `m ← β₁m + (1 − β₁)g`,
/// `v ← β₂v + (1 − β₂)g²`, `θ ← θ − step · m / (√(v / c₂) + ε)`. Packs do the
/// same operations in the same order as [`adam_update_ref`] (no fused
/// multiply-adds), so the two agree bit for bit.
///
/// A moment whose magnitude falls below the smallest normal number is
/// stored as 0 (flushed). The first moment of a parameter whose gradient has
/// stopped (a dead ReLU unit's) decays by β₁ per step into the subnormal
/// range, and on Intel cores every operation that reads or makes a
/// subnormal takes a microcode assist of about a hundred cycles: after a
/// thousand meta-steps of the sinusoid workload 180 of the 1,761 first
/// moments were subnormal, and Adam took 8% of first-order MAML's step
/// (2026-12-05, Xeon with AVX-512). The update such a moment would make,
/// below 10⁻³⁸ · lr / ε, moves no f32 parameter of magnitude above 10⁻³⁰.
///
/// # Panics
/// If the four vectors differ in length.
pub fn adam_update<T: Real>(theta: &mut [T], grad: &[T], m: &mut [T], v: &mut [T], c: AdamStep<T>) {
    let n = theta.len();
    assert!(grad.len() == n && m.len() == n && v.len() == n, "adam_update: lengths differ");
    let lanes = T::Pack::LANES;
    let splat = T::Pack::splat;
    let (b1, b2, ob1, ob2) =
        (splat(c.beta1), splat(c.beta2), splat(c.one_minus_beta1), splat(c.one_minus_beta2));
    let (step, inv_c2, eps) = (splat(c.step), splat(c.inv_correction2), splat(c.eps));
    let mut i = 0;
    while i + lanes <= n {
        let g = T::Pack::load(&grad[i..]);
        let mi = (b1 * T::Pack::load(&m[i..]) + ob1 * g).flush_subnormal();
        let vi = (b2 * T::Pack::load(&v[i..]) + ob2 * g * g).flush_subnormal();
        mi.store(&mut m[i..]);
        vi.store(&mut v[i..]);
        let t = T::Pack::load(&theta[i..]) - step * mi / ((vi * inv_c2).sqrt() + eps);
        t.store(&mut theta[i..]);
        i += lanes;
    }
    adam_update_ref(&mut theta[i..], &grad[i..], &mut m[i..], &mut v[i..], c);
}

/// Scalar reference of [`adam_update`].
pub fn adam_update_ref<T: Real>(
    theta: &mut [T],
    grad: &[T],
    m: &mut [T],
    v: &mut [T],
    c: AdamStep<T>,
) {
    for i in 0..theta.len() {
        let g = grad[i];
        let mi = flush_subnormal(c.beta1 * m[i] + c.one_minus_beta1 * g);
        let vi = flush_subnormal(c.beta2 * v[i] + c.one_minus_beta2 * g * g);
        m[i] = mi;
        v[i] = vi;
        theta[i] -= c.step * mi / ((vi * c.inv_correction2).sqrt() + c.eps);
    }
}

/// 0 for a subnormal `x`, else `x` (see [`adam_update`]).
fn flush_subnormal<T: Real>(x: T) -> T {
    if x.abs() < T::MIN_POSITIVE { T::ZERO } else { x }
}

/// `x ← sin(x)` for each value, eight at a time: wide's vectorised sine
/// (Cody-Waite reduction by π/2, minimax polynomials), within 2 ulp of the
/// standard library's `f64::sin` on the sinusoid's inputs (|x| < 9), and
/// therefore the same once rounded to f32 (no difference in 10⁷ draws).
/// Task sampling calls it; per value it is several times cheaper.
///
/// Whole packs are loaded and stored as they are: copying each through a
/// padded array (a memcpy call of variable length, then a 64-byte load of
/// the smaller stores it made, which cannot be forwarded) took half of a
/// sinusoid task's sampling time (perf, 2026-12-06).
pub fn sin_in_place(x: &mut [f64]) {
    let mut chunks = x.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let pack: &mut [f64; 8] = chunk.try_into().expect("chunks of eight");
        *pack = wide::f64x8::from(*pack).sin_cos().0.to_array();
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut a = [0.0; 8];
        a[..rest.len()].copy_from_slice(rest);
        let (sin, _) = wide::f64x8::from(a).sin_cos();
        rest.copy_from_slice(&sin.to_array()[..rest.len()]);
    }
}
