//! Losses on a layer of network outputs, with their gradient and the product
//! of their Hessian (with respect to the outputs) with a vector.
//!
//! Both losses are means over the `N` rows (points) of a split:
//!
//! * MSE: `L = (1/N) Σ_n Σ_j (h[n,j] − y[n,j])²` (no factor ½), so
//!   `∂L/∂h = (2/N)(h − y)` and `H_out u = (2/N) u`.
//! * softmax cross-entropy over integer labels:
//!   `L = (1/N) Σ_n (logsumexp(h[n]) − h[n, y_n])`, so with `p = softmax(h[n])`
//!   `∂L/∂h[n] = (p − e_y)/N` and `H_out u[n] = (p ⊙ u[n] − p (pᵀu[n]))/N`.

use crate::real::{Pack, Real};

/// A loss over a split's network outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Mean over points of the squared error summed over outputs.
    Mse,
    /// Mean over points of `−log softmax(h)[y]`, `y` an integer label.
    SoftmaxCrossEntropy,
}

/// The targets of a split, as the loss reads them.
#[derive(Clone, Copy, Debug)]
pub enum TargetsRef<'a, T> {
    /// Row-major `N × d_L` values (regression).
    Values(&'a [T]),
    /// `N` class labels in `0..d_L` (classification).
    Labels(&'a [u32]),
}

impl Loss {
    /// The name used in configuration and reference files.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::SoftmaxCrossEntropy => "softmax_cross_entropy",
        }
    }

    /// Parses [`Loss::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "mse" => Loss::Mse,
            "softmax_cross_entropy" | "cross_entropy" => Loss::SoftmaxCrossEntropy,
            _ => return None,
        })
    }

    /// The loss of row-major outputs `out` (`cols` per row) against `targets`;
    /// writes `∂L/∂out` into `grad` when given.
    ///
    /// # Panics
    /// If the targets are of the other kind, or shapes disagree, or a label is
    /// not below `cols`. Models validate all of this before they call it.
    pub fn value_and_gradient<T: Real>(
        self,
        out: &[T],
        cols: usize,
        targets: TargetsRef<'_, T>,
        grad: Option<&mut [T]>,
    ) -> T {
        match (self, targets) {
            (Loss::Mse, TargetsRef::Values(y)) => mse(out, y, cols, grad),
            (Loss::SoftmaxCrossEntropy, TargetsRef::Labels(labels)) => {
                softmax_cross_entropy(out, cols, labels, grad)
            }
            (loss, _) => panic!("{} given the wrong kind of targets", loss.name()),
        }
    }

    /// `hu = H_out u`, the Hessian of the loss with respect to the outputs
    /// (at `out`) times `u`, both row-major with `cols` per row.
    pub fn output_hessian_product<T: Real>(self, out: &[T], cols: usize, u: &[T], hu: &mut [T]) {
        match self {
            Loss::Mse => {
                let rows = out.len() / cols;
                let s = T::from_f64(2.0) / T::from_usize(rows);
                hu.copy_from_slice(u);
                crate::vector::scale(s, hu);
            }
            Loss::SoftmaxCrossEntropy => softmax_cross_entropy_hessian_product(out, cols, u, hu),
        }
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Mean squared error of `out` against `y` (both `N × cols`, row-major);
/// writes `(2/N)(out − y)` into `grad` when given. SIMD with two accumulators.
pub fn mse<T: Real>(out: &[T], y: &[T], cols: usize, grad: Option<&mut [T]>) -> T {
    assert_eq!(out.len(), y.len(), "outputs and targets differ in length");
    let rows = out.len() / cols;
    let inv_n = T::ONE / T::from_usize(rows);
    let lanes = T::Pack::LANES;
    let n = out.len();
    let mut acc0 = T::Pack::splat(T::ZERO);
    let mut acc1 = T::Pack::splat(T::ZERO);
    let mut i = 0;
    while i + 2 * lanes <= n {
        let d0 = T::Pack::load(&out[i..]) - T::Pack::load(&y[i..]);
        let d1 = T::Pack::load(&out[i + lanes..]) - T::Pack::load(&y[i + lanes..]);
        acc0 = d0.mul_add(d0, acc0);
        acc1 = d1.mul_add(d1, acc1);
        i += 2 * lanes;
    }
    let mut sum = (acc0 + acc1).sum_lanes();
    for i in i..n {
        let d = out[i] - y[i];
        sum += d * d;
    }
    if let Some(grad) = grad {
        assert_eq!(grad.len(), n, "gradient buffer has the wrong length");
        let s = T::Pack::splat(T::from_f64(2.0) * inv_n);
        let mut i = 0;
        while i + lanes <= n {
            ((T::Pack::load(&out[i..]) - T::Pack::load(&y[i..])) * s).store(&mut grad[i..]);
            i += lanes;
        }
        for i in i..n {
            grad[i] = (out[i] - y[i]) * (T::from_f64(2.0) * inv_n);
        }
    }
    sum * inv_n
}

/// Scalar reference of [`mse`].
pub fn mse_ref<T: Real>(out: &[T], y: &[T], cols: usize, grad: Option<&mut [T]>) -> T {
    let rows = out.len() / cols;
    let n = T::from_usize(rows);
    let mut sum = T::ZERO;
    for i in 0..out.len() {
        sum += (out[i] - y[i]) * (out[i] - y[i]);
    }
    if let Some(grad) = grad {
        for i in 0..out.len() {
            grad[i] = (out[i] - y[i]) * (T::from_f64(2.0) / n);
        }
    }
    sum / n
}

/// Softmax cross-entropy of `logits` (`N × cols`) against `labels`; writes
/// `(softmax − onehot)/N` into `grad` when given.
///
/// Scalar by design: rows are as wide as the number of classes (a handful),
/// too narrow for packs; the cost is negligible next to the matrix products.
pub fn softmax_cross_entropy<T: Real>(
    logits: &[T],
    cols: usize,
    labels: &[u32],
    mut grad: Option<&mut [T]>,
) -> T {
    let rows = labels.len();
    assert_eq!(logits.len(), rows * cols, "logits and labels disagree on the number of points");
    let inv_n = T::ONE / T::from_usize(rows);
    let mut total = T::ZERO;
    for (n, (row, &label)) in logits.chunks_exact(cols).zip(labels).enumerate() {
        let label = label as usize;
        assert!(label < cols, "label {label} is not below the {cols} classes");
        let m = row.iter().fold(T::from_f64(f64::NEG_INFINITY), |m, &x| m.max(x));
        let s: T = row.iter().map(|&x| (x - m).exp()).sum();
        total += s.ln() + m - row[label];
        if let Some(grad) = grad.as_deref_mut() {
            let g = &mut grad[n * cols..(n + 1) * cols];
            for j in 0..cols {
                g[j] = (row[j] - m).exp() / s * inv_n;
            }
            g[label] -= inv_n;
        }
    }
    total * inv_n
}

/// `hu = H_out u` for the softmax cross-entropy: per row,
/// `(p ⊙ u − p (pᵀu)) / N` with `p = softmax(logits)`.
pub fn softmax_cross_entropy_hessian_product<T: Real>(
    logits: &[T],
    cols: usize,
    u: &[T],
    hu: &mut [T],
) {
    let rows = logits.len() / cols;
    let inv_n = T::ONE / T::from_usize(rows);
    for ((row, u), hu) in
        logits.chunks_exact(cols).zip(u.chunks_exact(cols)).zip(hu.chunks_exact_mut(cols))
    {
        let m = row.iter().fold(T::from_f64(f64::NEG_INFINITY), |m, &x| m.max(x));
        let s: T = row.iter().map(|&x| (x - m).exp()).sum();
        let mut pu = T::ZERO;
        for j in 0..cols {
            let p = (row[j] - m).exp() / s;
            hu[j] = p;
            pu += p * u[j];
        }
        for j in 0..cols {
            hu[j] = hu[j] * (u[j] - pu) * inv_n;
        }
    }
}
