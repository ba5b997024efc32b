//! A dense layer `h = σ(x W + b)` and its four passes, on row-major buffers.
//!
//! Shapes, for a batch of `N` rows: `x` is `N × fan_in`, `W` is
//! `fan_in × fan_out` (row-major, exactly the flat layout of theta's parameter
//! vectors), `b` has `fan_out` values, `h` is `N × fan_out`.
//!
//! The matrix products are [`crate::gemm`]'s (one thread, a fixed order);
//! everything element-wise around them is one fused SIMD sweep from
//! [`crate::activation`]. The passes, with `v = (V, c)` a direction in
//! parameter space and `R{·}` Pearlmutter's directional derivative along it:
//!
//! ```text
//! forward            z = x W + b,             h = σ(z)
//! backward           δz = δh ⊙ σ'(z),         ∂W = xᵀ δz,  ∂b = Σ_n δz,  δx = δz Wᵀ
//! tangent forward    Rz = Rx W + x V + c,     Rh = σ'(z) ⊙ Rz
//! tangent backward   Rδz = Rδh ⊙ σ' + δh ⊙ σ'' ⊙ Rz
//!                    R∂W = Rxᵀ δz + xᵀ Rδz,   R∂b = Σ_n Rδz
//!                    Rδx = Rδz Wᵀ + δz Vᵀ
//! ```
//!
//! `(R∂W, R∂b)` over all layers is the exact Hessian-vector product `H v`.
//! None of these functions allocates.

use crate::activation::{
    Activation, backward_tangent, bias_activation, column_sums, mul_activation_derivative,
    tangent_bias_activation,
};
use crate::gemm::{
    gemm, gemm_bias_relu, gemm_nt, gemm_nt_times_derivative, gemm_sum, gemm_tn, gemm_tn_sum,
    is_small, weight_and_bias_gradients,
};
use crate::real::Real;

/// The shape and activation of one dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    /// Input width `d_{l−1}`.
    pub fan_in: usize,
    /// Output width `d_l`.
    pub fan_out: usize,
    /// σ.
    pub activation: Activation,
}

impl Dense {
    /// Number of parameters: `fan_in · fan_out` weights then `fan_out` biases.
    pub fn num_params(&self) -> usize {
        self.fan_in * self.fan_out + self.fan_out
    }

    /// Floating-point operations of one forward pass over `rows` rows (the
    /// matrix product's multiply-adds counted as two).
    pub fn forward_flops(&self, rows: usize) -> usize {
        2 * rows * self.fan_in * self.fan_out
    }

    /// Forward: `h = σ(x W + b)`; `h` is also the cache the other passes read.
    pub fn forward<T: Real>(&self, rows: usize, x: &[T], w: &[T], b: &[T], h: &mut [T]) {
        let (i, o) = (self.fan_in, self.fan_out);
        match self.activation {
            // Fused into the product's store (the same bits, one sweep fewer).
            Activation::Identity | Activation::Relu => {
                gemm_bias_relu(self.activation == Activation::Relu, h, x, w, b, rows, i, o)
            }
            act => {
                gemm(false, h, x, w, rows, i, o);
                bias_activation(act, &mut h[..rows * o], b);
            }
        }
    }

    /// Backward: turns `delta` from δh into δz in place (unless
    /// `delta_is_dz`: the layer above handed δz down already), writes
    /// `(∂W, ∂b)` when `grad` is given (a pass that only caches the δ chain
    /// needs none), and `δx = δz Wᵀ` into `delta_in` when given (not needed
    /// for layer 1), from `wt` = Wᵀ when the caller made it (see
    /// [`Dense::transposes`]). With `below`, the activation of the layer
    /// below (whose outputs are this layer's input `x`), `delta_in`
    /// receives that layer's δz = δx ⊙ σ'(x) instead, for its pass with
    /// `delta_is_dz` (one sweep fewer where `δz Wᵀ` is an outer product).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        rows: usize,
        x: &[T],
        w: &[T],
        wt: Option<&[T]>,
        h: &[T],
        delta: &mut [T],
        delta_is_dz: bool,
        grad: Option<(&mut [T], &mut [T])>,
        delta_in: Option<&mut [T]>,
        below: Option<Activation>,
    ) {
        let (i, o) = (self.fan_in, self.fan_out);
        let n = rows * o;
        if !delta_is_dz {
            mul_activation_derivative(self.activation, &h[..n], &mut delta[..n]);
        }
        if let Some((grad_w, grad_b)) = grad {
            weight_and_bias_gradients(grad_w, grad_b, x, delta, rows, i, o);
        }
        match (delta_in, below) {
            (Some(delta_in), Some(act)) if wt.is_none() => {
                gemm_nt_times_derivative(act, x, delta_in, delta, w, rows, o, i);
            }
            (Some(delta_in), below) => {
                times_w_transposed(false, delta_in, delta, (w, wt), rows, o, i);
                if let Some(act) = below {
                    mul_activation_derivative(act, &x[..rows * i], &mut delta_in[..rows * i]);
                }
            }
            (None, _) => {}
        }
    }

    /// True when `δ Wᵀ` over `rows` rows runs faster as `δ · (Wᵀ)` on the
    /// register-blocked kernel than on faer, given Wᵀ: a caller that
    /// multiplies by the same Wᵀ more than once makes it with
    /// [`transpose`](crate::gemm::transpose) and passes it as `wt`. (A
    /// transpose costs about what faer's product loses to the small kernel:
    /// 10 × 40 × 40, 600 ns on faer, 311 on the small kernel, about 300 for
    /// the transpose.) Always false in a build without FMA, where the two
    /// routes would round differently.
    pub fn transposes(&self, rows: usize) -> bool {
        // The route must not change a result (a test holds it to that): from
        // 3 rows, because faer's one- and two-row products sum in another
        // order, and only where multiply-adds are fused, because without FMA
        // (x86-64-v2) faer's kernels and the small kernel round differently.
        cfg!(target_feature = "fma")
            && rows >= 3
            && self.fan_out > 1
            && is_small(rows, self.fan_out, self.fan_in)
    }

    /// Tangent forward along `v = (V, c)`: `Rz = Rx W + x V + c` and
    /// `Rh = σ'(z) ⊙ Rz`, with `Rx = 0` when `rx` is `None` (the input layer).
    pub fn tangent_forward<T: Real>(
        &self,
        rows: usize,
        x: &[T],
        rx: Option<&[T]>,
        w: &[T],
        v_w: &[T],
        v_b: &[T],
        h: &[T],
        rz: &mut [T],
        rh: &mut [T],
    ) {
        let (i, o) = (self.fan_in, self.fan_out);
        let n = rows * o;
        match rx {
            Some(rx) => gemm_sum(false, rz, (x, v_w), (rx, w), rows, i, o),
            None => gemm(false, rz, x, v_w, rows, i, o),
        }
        tangent_bias_activation(self.activation, &h[..n], v_b, &mut rz[..n], &mut rh[..n]);
    }

    /// Tangent backward, fused with the plain backward pass: turns `delta`
    /// (δh → δz) and `r_delta` (Rδh → Rδz) in place, writes the gradient
    /// `(∂W, ∂b)` when `grad` is given, the Hessian-vector product
    /// `(R∂W, R∂b)` of this layer, `δx` into `delta_in` and `Rδx` into
    /// `r_delta_in` when given (a caller that cached the δ chain of an
    /// earlier backward pass asks for `Rδx` alone); `wt` as in
    /// [`Dense::backward`].
    pub fn tangent_backward<T: Real>(
        &self,
        rows: usize,
        x: &[T],
        rx: Option<&[T]>,
        w: &[T],
        wt: Option<&[T]>,
        v_w: &[T],
        h: &[T],
        rz: &[T],
        delta: &mut [T],
        r_delta: &mut [T],
        grad: Option<(&mut [T], &mut [T])>,
        hv_w: &mut [T],
        hv_b: &mut [T],
        delta_in: Option<&mut [T]>,
        r_delta_in: Option<&mut [T]>,
    ) {
        let (i, o) = (self.fan_in, self.fan_out);
        let n = rows * o;
        backward_tangent(self.activation, &h[..n], &rz[..n], &mut delta[..n], &mut r_delta[..n]);
        if let Some((grad_w, grad_b)) = grad {
            weight_and_bias_gradients(grad_w, grad_b, x, delta, rows, i, o);
        }
        match rx {
            Some(rx) => gemm_tn_sum(false, hv_w, (x, r_delta), (rx, delta), rows, i, o),
            None => gemm_tn(false, hv_w, x, r_delta, rows, i, o),
        }
        column_sums(&r_delta[..n], hv_b);
        if let Some(delta_in) = delta_in {
            times_w_transposed(false, delta_in, delta, (w, wt), rows, o, i);
        }
        if let Some(r_delta_in) = r_delta_in {
            times_w_transposed(false, r_delta_in, r_delta, (w, wt), rows, o, i);
            gemm_nt(true, r_delta_in, delta, v_w, rows, o, i);
        }
    }
}

/// `out ← [out +] δ Wᵀ` for δ of `rows × o` and W of `i × o`: as `δ · (Wᵀ)`
/// when the caller made Wᵀ (`o × i`), otherwise on faer. The same bits
/// either way, on the shapes of [`Dense::transposes`]: both sum each output
/// in order, fused, from zero (a test holds them to it).
fn times_w_transposed<T: Real>(
    accumulate: bool,
    out: &mut [T],
    delta: &[T],
    (w, wt): (&[T], Option<&[T]>),
    rows: usize,
    o: usize,
    i: usize,
) {
    match wt {
        Some(wt) => gemm(accumulate, out, delta, wt, rows, o, i),
        None => gemm_nt(accumulate, out, delta, w, rows, o, i),
    }
}
