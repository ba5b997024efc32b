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
    let lanes = T::Pack::LANES;
    let zero = T::Pack::splat(T::ZERO);
    let mut acc = zero;
    let mut i = 0;
    while i + lanes <= x.len() {
        acc = T::Pack::load(&x[i..]).mul_add(zero, acc);
        i += lanes;
    }
    acc.sum_lanes().is_finite() && x[i..].iter().all(|v| v.is_finite())
}
