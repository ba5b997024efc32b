//! Activations and the element-wise sweeps of a dense layer.
//!
//! Every derivative is computed from the layer's *output* `h = σ(z)`, so the
//! forward pass caches one buffer per layer and nothing else:
//!
//! | σ | σ'(z) | σ''(z) |
//! |---|---|---|
//! | identity | 1 | 0 |
//! | ReLU | `[h > 0]` | 0 (almost everywhere; 0 at the kink, as JAX) |
//! | tanh | 1 − h² | −2h(1 − h²) |
//! | sigmoid | h(1 − h) | h(1 − h)(1 − 2h) |
//!
//! Each sweep has a SIMD version (packs of [`Pack::LANES`], a scalar tail) and
//! a plain scalar `*_ref` that the tests compare it with.

use crate::real::{Pack, Real};

/// An element-wise activation σ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// σ(z) = z.
    Identity,
    /// σ(z) = max(z, 0).
    Relu,
    /// σ(z) = tanh z.
    Tanh,
    /// σ(z) = 1 / (1 + e⁻ᶻ), the logistic function.
    Sigmoid,
}

impl Activation {
    /// Every activation, for tests and listings.
    pub const ALL: [Activation; 4] =
        [Activation::Identity, Activation::Relu, Activation::Tanh, Activation::Sigmoid];

    /// The name used in configuration and reference files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }

    /// Parses [`Activation::name`]; `logistic` is accepted for sigmoid.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "identity" | "linear" => Activation::Identity,
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" | "logistic" => Activation::Sigmoid,
            _ => return None,
        })
    }

    /// σ(z) for one scalar.
    pub fn apply<T: Real>(self, z: T) -> T {
        dispatch!(self, K => K::f(z))
    }

    /// σ'(z) given h = σ(z).
    pub fn derivative_from_output<T: Real>(self, h: T) -> T {
        dispatch!(self, K => K::d(h))
    }

    /// σ''(z) given h = σ(z).
    pub fn second_derivative_from_output<T: Real>(self, h: T) -> T {
        dispatch!(self, K => K::dd(h))
    }

    /// True when σ'' is not identically zero, so the R-pass needs its term.
    pub fn is_curved(self) -> bool {
        matches!(self, Activation::Tanh | Activation::Sigmoid)
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Selects the monomorphised kernel for an activation once, outside the loops.
macro_rules! dispatch {
    ($act:expr, $k:ident => $body:expr) => {
        match $act {
            Activation::Identity => {
                type $k = $crate::activation::IdentityK;
                $body
            }
            Activation::Relu => {
                type $k = $crate::activation::ReluK;
                $body
            }
            Activation::Tanh => {
                type $k = $crate::activation::TanhK;
                $body
            }
            Activation::Sigmoid => {
                type $k = $crate::activation::SigmoidK;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// One activation's scalar and SIMD formulas; zero-sized, chosen by [`dispatch!`].
pub(crate) trait ActivationKernel {
    fn f<T: Real>(z: T) -> T;
    fn f_pack<T: Real>(z: T::Pack) -> T::Pack;
    fn d<T: Real>(h: T) -> T;
    fn d_pack<T: Real>(h: T::Pack) -> T::Pack;
    fn dd<T: Real>(h: T) -> T;
    fn dd_pack<T: Real>(h: T::Pack) -> T::Pack;
    /// `x · σ'` from the output `h`, a multiplication for every σ. (For ReLU a
    /// select would do, but an in-place select is a masked store, which
    /// costs 15–20 cycles per 256 bits on AMD's Zen 3: a fifth of the
    /// pretrained baseline's time.)
    #[inline(always)]
    fn times_d<T: Real>(h: T::Pack, x: T::Pack) -> T::Pack {
        x * Self::d_pack::<T>(h)
    }
    #[inline(always)]
    fn times_d_scalar<T: Real>(h: T, x: T) -> T {
        x * Self::d(h)
    }
}

pub(crate) struct IdentityK;
pub(crate) struct ReluK;
pub(crate) struct TanhK;
pub(crate) struct SigmoidK;

impl ActivationKernel for IdentityK {
    #[inline(always)]
    fn f<T: Real>(z: T) -> T {
        z
    }
    #[inline(always)]
    fn f_pack<T: Real>(z: T::Pack) -> T::Pack {
        z
    }
    #[inline(always)]
    fn d<T: Real>(_: T) -> T {
        T::ONE
    }
    #[inline(always)]
    fn d_pack<T: Real>(_: T::Pack) -> T::Pack {
        T::Pack::splat(T::ONE)
    }
    #[inline(always)]
    fn dd<T: Real>(_: T) -> T {
        T::ZERO
    }
    #[inline(always)]
    fn dd_pack<T: Real>(_: T::Pack) -> T::Pack {
        T::Pack::splat(T::ZERO)
    }
    #[inline(always)]
    fn times_d<T: Real>(_: T::Pack, x: T::Pack) -> T::Pack {
        x
    }
    #[inline(always)]
    fn times_d_scalar<T: Real>(_: T, x: T) -> T {
        x
    }
}

impl ActivationKernel for ReluK {
    #[inline(always)]
    fn f<T: Real>(z: T) -> T {
        if z > T::ZERO { z } else { T::ZERO }
    }
    #[inline(always)]
    fn f_pack<T: Real>(z: T::Pack) -> T::Pack {
        z.positive_select(z)
    }
    #[inline(always)]
    fn d<T: Real>(h: T) -> T {
        if h > T::ZERO { T::ONE } else { T::ZERO }
    }
    #[inline(always)]
    fn d_pack<T: Real>(h: T::Pack) -> T::Pack {
        h.positive_select(T::Pack::splat(T::ONE))
    }
    #[inline(always)]
    fn dd<T: Real>(_: T) -> T {
        T::ZERO
    }
    #[inline(always)]
    fn dd_pack<T: Real>(_: T::Pack) -> T::Pack {
        T::Pack::splat(T::ZERO)
    }
}

impl ActivationKernel for TanhK {
    #[inline(always)]
    fn f<T: Real>(z: T) -> T {
        z.tanh()
    }
    /// tanh z = sign(z) · e / (e + 2) with e = expm1(2|z|): no cancellation
    /// near 0 (expm1 is accurate there) and, with |z| clamped where tanh
    /// rounds to ±1, no inf / inf.
    #[inline(always)]
    fn f_pack<T: Real>(z: T::Pack) -> T::Pack {
        let limit = T::Pack::splat(T::from_f64(if T::NAME == "f32" { 9.5 } else { 19.5 }));
        let two = T::Pack::splat(T::from_f64(2.0));
        let a = z.abs().min(limit);
        let e = (a * two).exp_m1();
        (e / (e + two)).with_sign_of(z)
    }
    #[inline(always)]
    fn d<T: Real>(h: T) -> T {
        T::ONE - h * h
    }
    #[inline(always)]
    fn d_pack<T: Real>(h: T::Pack) -> T::Pack {
        let one = T::Pack::splat(T::ONE);
        one - h * h
    }
    #[inline(always)]
    fn dd<T: Real>(h: T) -> T {
        T::from_f64(-2.0) * h * (T::ONE - h * h)
    }
    #[inline(always)]
    fn dd_pack<T: Real>(h: T::Pack) -> T::Pack {
        let one = T::Pack::splat(T::ONE);
        T::Pack::splat(T::from_f64(-2.0)) * h * (one - h * h)
    }
}

impl ActivationKernel for SigmoidK {
    #[inline(always)]
    fn f<T: Real>(z: T) -> T {
        T::ONE / (T::ONE + (-z).exp())
    }
    #[inline(always)]
    fn f_pack<T: Real>(z: T::Pack) -> T::Pack {
        let one = T::Pack::splat(T::ONE);
        one / (one + (T::Pack::splat(T::ZERO) - z).exp())
    }
    #[inline(always)]
    fn d<T: Real>(h: T) -> T {
        h * (T::ONE - h)
    }
    #[inline(always)]
    fn d_pack<T: Real>(h: T::Pack) -> T::Pack {
        h * (T::Pack::splat(T::ONE) - h)
    }
    #[inline(always)]
    fn dd<T: Real>(h: T) -> T {
        h * (T::ONE - h) * (T::ONE - T::from_f64(2.0) * h)
    }
    #[inline(always)]
    fn dd_pack<T: Real>(h: T::Pack) -> T::Pack {
        let one = T::Pack::splat(T::ONE);
        h * (one - h) * (one - T::Pack::splat(T::from_f64(2.0)) * h)
    }
}

fn rows_of(len: usize, cols: usize) -> usize {
    assert!(
        cols > 0 && len.is_multiple_of(cols),
        "buffer of {len} values is not a whole number of rows of {cols}"
    );
    len / cols
}

/// Forward sweep of a dense layer: `h = σ(z + b)` in place, `z` row-major
/// with `b.len()` columns (the bias is broadcast over rows).
///
/// # Panics
/// If `z.len()` is not a multiple of `b.len()`.
pub fn bias_activation<T: Real>(act: Activation, z: &mut [T], b: &[T]) {
    dispatch!(act, K => bias_activation_k::<T, K>(z, b))
}

#[inline(always)]
fn bias_activation_k<T: Real, K: ActivationKernel>(z: &mut [T], b: &[T]) {
    let cols = b.len();
    let lanes = T::Pack::LANES;
    let _ = rows_of(z.len(), cols);
    for row in z.chunks_exact_mut(cols) {
        let mut j = 0;
        while j + lanes <= cols {
            let v = T::Pack::load(&row[j..]) + T::Pack::load(&b[j..]);
            K::f_pack::<T>(v).store(&mut row[j..]);
            j += lanes;
        }
        for j in j..cols {
            row[j] = K::f(row[j] + b[j]);
        }
    }
}

/// Scalar reference of [`bias_activation`].
pub fn bias_activation_ref<T: Real>(act: Activation, z: &mut [T], b: &[T]) {
    let cols = b.len();
    let _ = rows_of(z.len(), cols);
    for (i, x) in z.iter_mut().enumerate() {
        *x = act.apply(*x + b[i % cols]);
    }
}

/// `x ← x ⊙ σ'(z)`, element-wise, given `h = σ(z)`.
///
/// This is the backward pass through σ (δz = δh ⊙ σ') and the tangent forward
/// pass through it (Rh = σ' ⊙ Rz).
///
/// # Panics
/// If `h` and `x` differ in length.
pub fn mul_activation_derivative<T: Real>(act: Activation, h: &[T], x: &mut [T]) {
    assert_eq!(h.len(), x.len(), "activation output and buffer differ in length");
    dispatch!(act, K => mul_activation_derivative_k::<T, K>(h, x))
}

#[inline(always)]
fn mul_activation_derivative_k<T: Real, K: ActivationKernel>(h: &[T], x: &mut [T]) {
    let lanes = T::Pack::LANES;
    let n = x.len();
    let mut i = 0;
    while i + lanes <= n {
        K::times_d::<T>(T::Pack::load(&h[i..]), T::Pack::load(&x[i..])).store(&mut x[i..]);
        i += lanes;
    }
    for i in i..n {
        x[i] = K::times_d_scalar(h[i], x[i]);
    }
}

/// Scalar reference of [`mul_activation_derivative`].
pub fn mul_activation_derivative_ref<T: Real>(act: Activation, h: &[T], x: &mut [T]) {
    assert_eq!(h.len(), x.len());
    for (x, &h) in x.iter_mut().zip(h) {
        *x *= act.derivative_from_output(h);
    }
}

/// Tangent forward sweep of a dense layer: `rz ← rz + c` (the bias direction,
/// broadcast over rows) and `rh = σ'(z) ⊙ rz`, given `h = σ(z)`.
///
/// # Panics
/// If the buffers are not rows of `c.len()` columns of the same shape.
pub fn tangent_bias_activation<T: Real>(
    act: Activation,
    h: &[T],
    c: &[T],
    rz: &mut [T],
    rh: &mut [T],
) {
    assert!(h.len() == rz.len() && h.len() == rh.len(), "tangent buffers differ in length");
    let _ = rows_of(h.len(), c.len());
    dispatch!(act, K => tangent_bias_activation_k::<T, K>(h, c, rz, rh))
}

#[inline(always)]
fn tangent_bias_activation_k<T: Real, K: ActivationKernel>(
    h: &[T],
    c: &[T],
    rz: &mut [T],
    rh: &mut [T],
) {
    let cols = c.len();
    let lanes = T::Pack::LANES;
    let whole = cols - cols % lanes;
    // A partial last pack is taken over the row's last `lanes` columns, from
    // the old `rz` (read before the packs it overlaps are updated in place):
    // the shared columns get the same bits twice. Narrower rows go one value
    // at a time.
    let tail = (whole < cols && cols >= lanes).then(|| cols - lanes);
    for ((h, rz), rh) in
        h.chunks_exact(cols).zip(rz.chunks_exact_mut(cols)).zip(rh.chunks_exact_mut(cols))
    {
        let step = |j: usize, rz: &[T]| T::Pack::load(&rz[j..]) + T::Pack::load(&c[j..]);
        let last = tail.map(|j| (j, step(j, rz)));
        for j in (0..whole).step_by(lanes) {
            let z = step(j, rz);
            z.store(&mut rz[j..]);
            K::times_d::<T>(T::Pack::load(&h[j..]), z).store(&mut rh[j..]);
        }
        match last {
            Some((j, z)) => {
                z.store(&mut rz[j..]);
                K::times_d::<T>(T::Pack::load(&h[j..]), z).store(&mut rh[j..]);
            }
            None => {
                for j in whole..cols {
                    let z = rz[j] + c[j];
                    rz[j] = z;
                    rh[j] = K::times_d_scalar(h[j], z);
                }
            }
        }
    }
}

/// Scalar reference of [`tangent_bias_activation`].
pub fn tangent_bias_activation_ref<T: Real>(
    act: Activation,
    h: &[T],
    c: &[T],
    rz: &mut [T],
    rh: &mut [T],
) {
    let cols = c.len();
    for i in 0..h.len() {
        rz[i] += c[i % cols];
        rh[i] = act.derivative_from_output(h[i]) * rz[i];
    }
}

/// The backward sweep through σ of the R-pass, fused with the plain one:
///
/// ```text
/// Rδz = Rδh ⊙ σ'(z) + δh ⊙ σ''(z) ⊙ Rz      (in place of Rδh)
///  δz =  δh ⊙ σ'(z)                          (in place of δh)
/// ```
///
/// given `h = σ(z)` and the tangent `rz = Rz`.
///
/// # Panics
/// If the four buffers differ in length.
pub fn backward_tangent<T: Real>(
    act: Activation,
    h: &[T],
    rz: &[T],
    delta: &mut [T],
    r_delta: &mut [T],
) {
    let n = h.len();
    assert!(
        rz.len() == n && delta.len() == n && r_delta.len() == n,
        "R-pass buffers differ in length"
    );
    dispatch!(act, K => backward_tangent_k::<T, K>(act.is_curved(), h, rz, delta, r_delta))
}

#[inline(always)]
fn backward_tangent_k<T: Real, K: ActivationKernel>(
    curved: bool,
    h: &[T],
    rz: &[T],
    delta: &mut [T],
    r_delta: &mut [T],
) {
    if !curved {
        // σ'' = 0: both sweeps are the plain derivative product.
        mul_activation_derivative_k::<T, K>(h, delta);
        mul_activation_derivative_k::<T, K>(h, r_delta);
        return;
    }
    let lanes = T::Pack::LANES;
    let n = h.len();
    let mut i = 0;
    while i + lanes <= n {
        let hp = T::Pack::load(&h[i..]);
        let d = T::Pack::load(&delta[i..]);
        let d1 = K::d_pack::<T>(hp);
        let d2 = K::dd_pack::<T>(hp);
        let rd = T::Pack::load(&r_delta[i..]);
        (d * d2).mul_add(T::Pack::load(&rz[i..]), rd * d1).store(&mut r_delta[i..]);
        (d * d1).store(&mut delta[i..]);
        i += lanes;
    }
    for i in i..n {
        let d1 = K::d(h[i]);
        let d2 = K::dd(h[i]);
        r_delta[i] = r_delta[i] * d1 + delta[i] * d2 * rz[i];
        delta[i] *= d1;
    }
}

/// Scalar reference of [`backward_tangent`].
pub fn backward_tangent_ref<T: Real>(
    act: Activation,
    h: &[T],
    rz: &[T],
    delta: &mut [T],
    r_delta: &mut [T],
) {
    for i in 0..h.len() {
        let d1 = act.derivative_from_output(h[i]);
        let d2 = act.second_derivative_from_output(h[i]);
        r_delta[i] = r_delta[i] * d1 + delta[i] * d2 * rz[i];
        delta[i] *= d1;
    }
}

/// `out ← Σ_rows m[row, :]`: the bias gradient of a layer from its δz.
/// Rows are added in order, so the result does not depend on the SIMD level's
/// lane count beyond the lanes themselves (each column is its own sum).
///
/// # Panics
/// If `m.len()` is not a multiple of `out.len()`.
pub fn column_sums<T: Real>(m: &[T], out: &mut [T]) {
    let cols = out.len();
    let _ = rows_of(m.len(), cols);
    let lanes = T::Pack::LANES;
    if cols < lanes {
        out.fill(T::ZERO);
        for row in m.chunks_exact(cols) {
            for (o, &x) in out.iter_mut().zip(row) {
                *o += x;
            }
        }
        return;
    }
    // Each column is summed from zero down the rows, in order, whichever
    // lane holds it: a partial last pack is taken over the last `lanes`
    // columns, and the columns it shares get the same bits again.
    let packs = cols.div_ceil(lanes);
    let start = |v: usize| (v * lanes).min(cols - lanes);
    let mut v0 = 0;
    while v0 < packs {
        let count = (packs - v0).min(4);
        match count {
            1 => column_pack_sums::<T, 1>(m, out, v0, start),
            2 => column_pack_sums::<T, 2>(m, out, v0, start),
            3 => column_pack_sums::<T, 3>(m, out, v0, start),
            _ => column_pack_sums::<T, 4>(m, out, v0, start),
        }
        v0 += count;
    }
}

/// Column sums of `V` packs at once (independent chains), packs `v0..v0 + V`
/// starting at `start(v)`.
#[inline(always)]
fn column_pack_sums<T: Real, const V: usize>(
    m: &[T],
    out: &mut [T],
    v0: usize,
    start: impl Fn(usize) -> usize,
) {
    let cols = out.len();
    let mut acc = [T::Pack::splat(T::ZERO); V];
    let starts: [usize; V] = std::array::from_fn(|v| start(v0 + v));
    for row in m.chunks_exact(cols) {
        for v in 0..V {
            acc[v] = acc[v] + T::Pack::load(&row[starts[v]..]);
        }
    }
    for v in 0..V {
        acc[v].store(&mut out[starts[v]..]);
    }
}

/// Scalar reference of [`column_sums`].
pub fn column_sums_ref<T: Real>(m: &[T], out: &mut [T]) {
    let cols = out.len();
    out.fill(T::ZERO);
    for (i, &x) in m.iter().enumerate() {
        out[i % cols] += x;
    }
}
