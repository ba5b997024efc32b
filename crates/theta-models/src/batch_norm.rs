//! The MAML paper's Omniglot network: an MLP whose hidden layers are batch
//! normalised before their activation.
//!
//! For hidden layers l < L: `u_l = h_{l−1} W_l`, `ẑ_l = BN(u_l)` over the
//! rows of the batch, `h_l = σ(ẑ_l + b_l)`; the output layer is a plain dense
//! layer `h_L = σ_L(h_{L−1} W_L + b_L)`. As in cbfinn/maml (TensorFlow's
//! `batch_norm` with `scale=False`), the normalisation has no scale and its
//! offset is the layer's bias, and the statistics are always those of the
//! batch at hand (the support set in the inner loop, the query set for the
//! query loss, no running averages): a loss is a function of the whole batch,
//! and predictions are transductive. θ's layout is the [`Mlp`]'s.
//!
//! The derivatives chain [`theta_kernels::batch_norm`] with the dense-layer
//! products and activation sweeps; scratch layout:
//!
//! ```text
//! [ h_1…h_L | ẑ_1…ẑ_L | 1/s | stats 4·M | δ ping | δ pong | Rz_1…Rz_L | Rh_1…Rh_L | Rs | Rδ ping | Rδ pong ]
//! ```
//!
//! (`Rz_l` holds R(ẑ_l + b_l) for hidden layers.) MAML's fused one-step
//! pass lays out a Hessian-vector scratch for the support rows, a gradient
//! scratch for the query rows, then the [`Mlp`]'s input-layer buffers.

use theta_core::{Error, Matrix, Model, Pass, Result, Scratch, Split, check_len};
use theta_kernels::activation::{
    backward_tangent, bias_activation, column_sums, mul_activation_derivative,
    tangent_bias_activation,
};
use theta_kernels::batch_norm;
use theta_kernels::gemm::{gemm, gemm_nt, gemm_sum, gemm_tn, gemm_tn_sum};
use theta_kernels::{Loss, Real};

use crate::mlp::{Init, InputProducts, LayerLayout, Mlp, MlpSpec, check_direction};

/// An [`Mlp`] with batch normalisation before each hidden activation.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormMlp {
    mlp: Mlp,
    epsilon: f64,
    total: usize,
    max: usize,
}

struct Regions<'a, T> {
    hs: &'a mut [T],
    zs: &'a mut [T],
    inv_s: &'a mut [T],
    stats: &'a mut [T],
    delta_a: &'a mut [T],
    delta_b: &'a mut [T],
    rzs: &'a mut [T],
    rhs: &'a mut [T],
    rs: &'a mut [T],
    r_delta_a: &'a mut [T],
    r_delta_b: &'a mut [T],
}

impl BatchNormMlp {
    /// Builds the network; `epsilon` (ε > 0) is added to each variance
    /// (cbfinn/maml: TensorFlow's default, 1e-3).
    pub fn new(spec: MlpSpec, epsilon: f64) -> Result<Self> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(Error::InvalidParameter {
                name: "epsilon",
                value: epsilon.to_string(),
                reason: "batch normalisation needs a finite ε > 0",
            });
        }
        let mlp = Mlp::new(spec)?;
        let widths = &mlp.spec().layer_sizes[1..];
        let (total, max) = (widths.iter().sum(), widths.iter().copied().max().unwrap_or(0));
        Ok(BatchNormMlp { mlp, epsilon, total, max })
    }

    /// The description it was built from.
    pub fn spec(&self) -> &MlpSpec {
        self.mlp.spec()
    }

    /// Draws θ₀ (as [`Mlp::init`]).
    pub fn init<T: Real>(&self, init: Init, rng: &mut theta_core::Rng) -> Vec<T> {
        self.mlp.init(init, rng)
    }

    fn layers(&self) -> &[LayerLayout] {
        self.mlp.layers()
    }

    fn hidden(&self, l: usize) -> bool {
        l + 1 < self.layers().len()
    }

    fn scratch_len_(&self, pass: Pass, rows: usize) -> usize {
        let (s, m) = (rows * self.total, rows * self.max);
        let base = 2 * s + self.total + 4 * self.max;
        match pass {
            Pass::Predict | Pass::Loss => base,
            Pass::Gradient => base + 2 * m,
            Pass::HessianVector | Pass::GaussNewton => base + 4 * m + 2 * s + self.total,
        }
    }

    fn regions<'a, T>(&self, rows: usize, scratch: &'a mut [T]) -> Regions<'a, T> {
        let (s, m) = (rows * self.total, rows * self.max);
        let mut rest = scratch;
        let mut take = |n: usize| {
            let all = std::mem::take(&mut rest);
            let n = n.min(all.len());
            let (head, tail) = all.split_at_mut(n);
            rest = tail;
            head
        };
        Regions {
            hs: take(s),
            zs: take(s),
            inv_s: take(self.total),
            stats: take(4 * self.max),
            delta_a: take(m),
            delta_b: take(m),
            rzs: take(s),
            rhs: take(s),
            rs: take(self.total),
            r_delta_a: take(m),
            r_delta_b: take(m),
        }
    }

    /// Layer `l`'s `rows × d_l` block of a per-layer buffer.
    fn at<'a, T>(&self, buf: &'a [T], rows: usize, l: usize) -> &'a [T] {
        let (off, d) = self.offset(l);
        &buf[rows * off..rows * (off + d)]
    }

    fn at_mut<'a, T>(&self, buf: &'a mut [T], rows: usize, l: usize) -> &'a mut [T] {
        let (off, d) = self.offset(l);
        &mut buf[rows * off..rows * (off + d)]
    }

    /// (Σ_{k<l} d_k, d_l) for layer index l (0-based, output widths).
    fn offset(&self, l: usize) -> (usize, usize) {
        let widths = &self.mlp.spec().layer_sizes[1..];
        (widths[..l].iter().sum(), widths[l])
    }

    fn check<T: Real>(
        &self,
        theta: &[T],
        split: &Split<T>,
        pass: Pass,
        scratch: &[T],
    ) -> Result<()> {
        self.mlp.check_params(theta)?;
        self.check_scratch(split.x(), pass, scratch)?;
        self.mlp.check_targets(split)
    }

    fn check_scratch<T: Real>(&self, x: &Matrix<T>, pass: Pass, scratch: &[T]) -> Result<()> {
        self.mlp.check_x(x)?;
        let needed = self.scratch_len_(pass, x.rows());
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall { needed, given: scratch.len() });
        }
        Ok(())
    }

    /// Forward: fills `h_l`, `ẑ_l` (hidden layers) and 1/s (with
    /// [`InputProducts::Given`], from `u_1 = x W_1` already in `ẑ_1`).
    fn forward<T: Real>(
        &self,
        theta: &[T],
        x: &[T],
        rows: usize,
        r: &mut Regions<'_, T>,
        products: InputProducts,
    ) {
        let eps = T::from_f64(self.epsilon);
        for (l, layer) in self.layers().iter().enumerate() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (off, _) = self.offset(l);
            let (before, rest) = r.hs.split_at_mut(rows * off);
            let input = if l == 0 { x } else { self.at(before, rows, l - 1) };
            let h = &mut rest[..rows * o];
            let (w, b) = (&theta[layer.weights.clone()], &theta[layer.bias.clone()]);
            if self.hidden(l) {
                let z = self.at_mut(r.zs, rows, l);
                if l > 0 || products == InputProducts::Run {
                    gemm(false, z, input, w, rows, i, o);
                }
                batch_norm::forward(z, eps, &mut r.inv_s[off..off + o], &mut r.stats[..o]);
                h.copy_from_slice(z);
                bias_activation(layer.dense.activation, h, b);
            } else {
                layer.dense.forward(rows, input, w, b, h);
            }
        }
    }

    /// Tangent forward along v: `Rz_l` (R of the pre-activation), `Rh_l`, Rs
    /// (with [`InputProducts::Given`], from `x V_1` already in `Rz_1`).
    fn tangent_forward<T: Real>(
        &self,
        theta: &[T],
        v: &[T],
        x: &[T],
        rows: usize,
        r: &mut Regions<'_, T>,
        products: InputProducts,
    ) {
        for (l, layer) in self.layers().iter().enumerate() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (off, _) = self.offset(l);
            let (rh_before, rh_rest) = r.rhs.split_at_mut(rows * off);
            let (input, rx) = if l == 0 {
                (x, None)
            } else {
                (self.at(r.hs, rows, l - 1), Some(self.at(rh_before, rows, l - 1)))
            };
            let (w, vw, vb) =
                (&theta[layer.weights.clone()], &v[layer.weights.clone()], &v[layer.bias.clone()]);
            let h = self.at(r.hs, rows, l);
            let rz = self.at_mut(r.rzs, rows, l);
            let rh = &mut rh_rest[..rows * o];
            if self.hidden(l) {
                match rx {
                    Some(rx) => gemm_sum(false, rz, (input, vw), (rx, w), rows, i, o),
                    None if products == InputProducts::Given => {}
                    None => gemm(false, rz, input, vw, rows, i, o),
                }
                let (z, inv_s) = (self.at(r.zs, rows, l), &r.inv_s[off..off + o]);
                batch_norm::project(z, inv_s, rz, &mut r.rs[off..off + o], &mut r.stats[..o]);
                tangent_bias_activation(layer.dense.activation, h, vb, rz, rh);
            } else {
                layer.dense.tangent_forward(rows, input, rx, w, vw, vb, h, rz, rh);
            }
        }
    }

    /// The tangent backward pass, from δh_L in `delta_a` and Rδh_L in
    /// `r_delta_a` after the forward and tangent forward passes: `H v` into
    /// `hvp` and the gradient into `grad` when given (with
    /// [`InputProducts::Given`], neither `∂W_1` nor `R∂W_1`). Returns
    /// Rδu_1, the tangent of the gradient with respect to `u_1 = x W_1`.
    #[allow(clippy::too_many_arguments)]
    fn tangent_backward<'r, T: Real>(
        &self,
        theta: &[T],
        v: &[T],
        x: &[T],
        rows: usize,
        r: &'r mut Regions<'_, T>,
        mut grad: Option<&mut [T]>,
        hvp: &mut [T],
        products: InputProducts,
    ) -> &'r [T] {
        let (mut delta_a, mut delta_b) = (&mut *r.delta_a, &mut *r.delta_b);
        let (mut r_delta_a, mut r_delta_b) = (&mut *r.r_delta_a, &mut *r.r_delta_b);
        for (l, layer) in self.layers().iter().enumerate().rev() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let n = rows * o;
            let (off, _) = self.offset(l);
            let (input, rx) = if l == 0 {
                (x, None)
            } else {
                (self.at(r.hs, rows, l - 1), Some(self.at(r.rhs, rows, l - 1)))
            };
            let (w, vw) = (&theta[layer.weights.clone()], &v[layer.weights.clone()]);
            let span = layer.weights.start..layer.bias.end;
            let mut g =
                grad.as_deref_mut().map(|g| g[span.clone()].split_at_mut(layer.weights.len()));
            let (hw, hb) = hvp[span].split_at_mut(layer.weights.len());
            let input_weights = l > 0 || products == InputProducts::Run;
            let h = self.at(r.hs, rows, l);
            let rz = self.at_mut(r.rzs, rows, l);
            if self.hidden(l) {
                let act = layer.dense.activation;
                backward_tangent(act, h, rz, &mut delta_a[..n], &mut r_delta_a[..n]);
                if let Some((_, gb)) = g.as_mut() {
                    column_sums(&delta_a[..n], gb);
                }
                column_sums(&r_delta_a[..n], hb);
                // Rẑ = R(ẑ + b) − c: the bias direction is constant over rows.
                let vb = &v[layer.bias.clone()];
                for row in rz.chunks_exact_mut(o) {
                    for (a, &c) in row.iter_mut().zip(vb) {
                        *a -= c;
                    }
                }
                batch_norm::tangent_backward(
                    self.at(r.zs, rows, l),
                    &r.inv_s[off..off + o],
                    rz,
                    &r.rs[off..off + o],
                    &mut delta_a[..n],
                    &mut r_delta_a[..n],
                    &mut r.stats[..4 * o],
                );
                if let Some((gw, _)) = g.filter(|_| input_weights) {
                    gemm_tn(false, gw, input, delta_a, rows, i, o);
                }
                match rx {
                    Some(rx) => {
                        gemm_tn_sum(false, hw, (input, r_delta_a), (rx, delta_a), rows, i, o)
                    }
                    None if input_weights => gemm_tn(false, hw, input, r_delta_a, rows, i, o),
                    None => {}
                }
                if l > 0 {
                    gemm_nt(false, delta_b, delta_a, w, rows, o, i);
                    gemm_nt(false, r_delta_b, r_delta_a, w, rows, o, i);
                    gemm_nt(true, r_delta_b, delta_a, vw, rows, o, i);
                }
            } else {
                let (delta_in, r_delta_in) = if l == 0 {
                    (None, None)
                } else {
                    (Some(&mut *delta_b), Some(&mut *r_delta_b))
                };
                layer.dense.tangent_backward(
                    rows, input, rx, w, None, vw, h, rz, delta_a, r_delta_a, g, hw, hb, delta_in,
                    r_delta_in,
                );
            }
            std::mem::swap(&mut delta_a, &mut delta_b);
            std::mem::swap(&mut r_delta_a, &mut r_delta_b);
        }
        r_delta_b
    }

    /// Backward from δh_L in `delta_a`: the gradient of `Σ δh_L ⊙ h_L`
    /// (but `∂W_1` with [`InputProducts::Given`]). Returns δu_1, the
    /// gradient with respect to `u_1 = x W_1` (for a hidden input layer).
    fn backward<'r, T: Real>(
        &self,
        theta: &[T],
        x: &[T],
        rows: usize,
        r: &'r mut Regions<'_, T>,
        grad: &mut [T],
        products: InputProducts,
    ) -> &'r [T] {
        let (mut delta_a, mut delta_b) = (&mut *r.delta_a, &mut *r.delta_b);
        for (l, layer) in self.layers().iter().enumerate().rev() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (off, _) = self.offset(l);
            let input = if l == 0 { x } else { self.at(r.hs, rows, l - 1) };
            let w = &theta[layer.weights.clone()];
            let (gw, gb) =
                grad[layer.weights.start..layer.bias.end].split_at_mut(layer.weights.len());
            let delta_in = if l == 0 { None } else { Some(&mut *delta_b) };
            if self.hidden(l) {
                let n = rows * o;
                let h = self.at(r.hs, rows, l);
                mul_activation_derivative(layer.dense.activation, h, &mut delta_a[..n]);
                column_sums(&delta_a[..n], gb);
                let (q, mean) = r.stats.split_at_mut(self.max);
                batch_norm::project(
                    self.at(r.zs, rows, l),
                    &r.inv_s[off..off + o],
                    &mut delta_a[..n],
                    &mut q[..o],
                    &mut mean[..o],
                );
                if l > 0 || products == InputProducts::Run {
                    gemm_tn(false, gw, input, delta_a, rows, i, o);
                }
                if let Some(d) = delta_in {
                    gemm_nt(false, d, delta_a, w, rows, o, i);
                }
            } else {
                let h = self.at(r.hs, rows, l);
                let (grad, below) = (Some((gw, gb)), None);
                layer
                    .dense
                    .backward(rows, input, w, None, h, delta_a, false, grad, delta_in, below);
            }
            std::mem::swap(&mut delta_a, &mut delta_b);
        }
        delta_b
    }
}

impl<T: Real> Model<T> for BatchNormMlp {
    fn num_params(&self) -> usize {
        self.mlp.num_params_()
    }

    fn input_dim(&self) -> usize {
        self.mlp.spec().layer_sizes[0]
    }

    fn output_dim(&self) -> usize {
        *self.mlp.spec().layer_sizes.last().expect("at least two widths")
    }

    fn loss_kind(&self) -> Loss {
        self.mlp.spec().loss
    }

    fn scratch_len(&self, pass: Pass, rows: usize) -> usize {
        self.scratch_len_(pass, rows)
    }

    fn flops(&self, pass: Pass, rows: usize) -> usize {
        Model::<T>::flops(&self.mlp, pass, rows)
    }

    fn predict(&self, theta: &[T], x: &Matrix<T>, out: &mut [T], scratch: &mut [T]) -> Result<()> {
        self.mlp.check_params(theta)?;
        self.check_scratch(x, Pass::Predict, scratch)?;
        let rows = x.rows();
        let d_out = Model::<T>::output_dim(self);
        check_len("output buffer length", rows * d_out, out.len())?;
        let mut r = self.regions(rows, scratch);
        self.forward(theta, x.as_slice(), rows, &mut r, InputProducts::Run);
        out.copy_from_slice(self.at(r.hs, rows, self.layers().len() - 1));
        Ok(())
    }

    fn loss(&self, theta: &[T], split: &Split<T>, scratch: &mut [T]) -> Result<T> {
        self.check(theta, split, Pass::Loss, scratch)?;
        let rows = split.len();
        let mut r = self.regions(rows, scratch);
        self.forward(theta, split.x().as_slice(), rows, &mut r, InputProducts::Run);
        let out = self.at(r.hs, rows, self.layers().len() - 1);
        let d_out = Model::<T>::output_dim(self);
        Mlp::finite(self.loss_kind_().value_and_gradient(out, d_out, split.y().as_ref(), None))
    }

    fn loss_grad(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        self.check(theta, split, Pass::Gradient, scratch)?;
        check_len("gradient buffer length", self.mlp.num_params_(), grad.len())?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let mut r = self.regions(rows, scratch);
        self.forward(theta, x, rows, &mut r, InputProducts::Run);
        let loss = self.seed(split, &mut r)?;
        self.backward(theta, x, rows, &mut r, grad, InputProducts::Run);
        Ok(loss)
    }

    fn loss_grad_hvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        grad: &mut [T],
        hvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        self.check(theta, split, Pass::HessianVector, scratch)?;
        check_direction(v, self.mlp.num_params_())?;
        let p = self.mlp.num_params_();
        check_len("gradient buffer length", p, grad.len())?;
        check_len("Hessian-vector buffer length", p, hvp.len())?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let mut r = self.regions(rows, scratch);
        self.forward(theta, x, rows, &mut r, InputProducts::Run);
        self.tangent_forward(theta, v, x, rows, &mut r, InputProducts::Run);
        let last = self.layers().len() - 1;
        let d_out = Model::<T>::output_dim(self);
        let n_out = rows * d_out;
        let out = self.at(r.hs, rows, last);
        let loss = self.loss_kind_().value_and_gradient(
            out,
            d_out,
            split.y().as_ref(),
            Some(&mut r.delta_a[..n_out]),
        );
        let loss = Mlp::finite(loss)?;
        self.loss_kind_().output_hessian_product(
            out,
            d_out,
            self.at(r.rhs, rows, last),
            &mut r.r_delta_a[..n_out],
        );
        self.tangent_backward(theta, v, x, rows, &mut r, Some(grad), hvp, InputProducts::Run);
        Ok(loss)
    }

    fn one_step_meta_gradient(
        &self,
        theta: &[T],
        support: &Split<T>,
        query: &Split<T>,
        alpha: T,
        g: &mut [T],
        scratch: &mut Scratch<T>,
    ) -> Option<Result<T>> {
        let (k, n) = (support.len(), query.len());
        // The input layer must be a batch-normalised hidden layer.
        if self.layers().len() < 2 || !self.mlp.fuses_one_step(k, n) {
            return None;
        }
        let len = self.scratch_len_(Pass::HessianVector, k)
            + self.scratch_len_(Pass::Gradient, n)
            + self.mlp.one_step_input_len(k, n);
        let scratch = scratch.slice(len);
        Some(self.one_step_meta_gradient_(theta, support, query, alpha, g, scratch))
    }

    fn loss_gnvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        gnvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        self.check(theta, split, Pass::GaussNewton, scratch)?;
        check_direction(v, self.mlp.num_params_())?;
        check_len("Gauss-Newton-vector buffer length", self.mlp.num_params_(), gnvp.len())?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let mut r = self.regions(rows, scratch);
        self.forward(theta, x, rows, &mut r, InputProducts::Run);
        self.tangent_forward(theta, v, x, rows, &mut r, InputProducts::Run);
        let last = self.layers().len() - 1;
        let d_out = Model::<T>::output_dim(self);
        let out = self.at(r.hs, rows, last);
        let loss = self.loss_kind_().value_and_gradient(out, d_out, split.y().as_ref(), None);
        let loss = Mlp::finite(loss)?;
        // J v is Rh_L; H_out (J v) seeds a plain backward pass, which applies Jᵀ.
        self.loss_kind_().output_hessian_product(
            out,
            d_out,
            self.at(r.rhs, rows, last),
            &mut r.delta_a[..rows * d_out],
        );
        self.backward(theta, x, rows, &mut r, gnvp, InputProducts::Run);
        Ok(loss)
    }
}

impl BatchNormMlp {
    fn loss_kind_(&self) -> Loss {
        self.mlp.spec().loss
    }

    /// The loss at the output (in `r.hs`) of a pass over `split`, and its
    /// gradient δh_L into `r.delta_a`.
    fn seed<T: Real>(&self, split: &Split<T>, r: &mut Regions<'_, T>) -> Result<T> {
        let (rows, d_out) = (split.len(), Model::<T>::output_dim(self));
        let out = self.at(r.hs, rows, self.layers().len() - 1);
        let delta = Some(&mut r.delta_a[..rows * d_out]);
        Mlp::finite(self.loss_kind_().value_and_gradient(out, d_out, split.y().as_ref(), delta))
    }

    /// MAML's one-step meta-gradient without forming `W_1`'s part of φ, as
    /// the [`Mlp`]'s (`Mlp::one_step_meta_gradient_`), with `u_1 = x W_1`,
    /// the input to the first batch normalisation, in place of `z_1`: the
    /// support gradient of `W_1` is `x_sᵀ δu_s`, of rank at most k. The
    /// support's Hessian-vector pass reruns its δ chain beside the tangent
    /// (the network has no prepared products), without the gradient.
    fn one_step_meta_gradient_<T: Real>(
        &self,
        theta: &[T],
        support: &Split<T>,
        query: &Split<T>,
        alpha: T,
        g: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        self.mlp.one_step_checks(theta, support, query, g)?;
        let (k, n) = (support.len(), query.len());
        let (sup, rest) = scratch.split_at_mut(self.scratch_len_(Pass::HessianVector, k));
        let (qry, rest) = rest.split_at_mut(self.scratch_len_(Pass::Gradient, n));
        let mut os = self.mlp.one_step_input(theta, support, query, rest);
        let (xq, xsup) = os.inputs();
        let given = InputProducts::Given;

        // ∇L_s(θ) but ∂W_1, into g; φ above W_1.
        let mut s = self.regions(k, sup);
        self.at_mut(s.zs, k, 0).copy_from_slice(os.support_product());
        self.forward(theta, xsup, k, &mut s, given);
        self.seed(support, &mut s)?;
        let du_s = self.backward(theta, xsup, k, &mut s, g, given);
        os.form_phi(theta, g, alpha, du_s)?;

        // ∇L_q(φ) but ∂W_1, into g, and δu_q.
        let mut q = self.regions(n, qry);
        os.query_product(alpha, du_s, self.at_mut(q.zs, n, 0), q.delta_a);
        self.forward(os.phi, xq, n, &mut q, given);
        let loss = self.seed(query, &mut q)?;
        let du_q = self.backward(os.phi, xq, n, &mut q, g, given);
        os.check_query_gradient(g, du_q)?;

        // H_s(θ) v for v = ∇L_q(φ), into φ's buffer.
        os.support_tangent_product(du_q, self.at_mut(s.rzs, k, 0));
        self.tangent_forward(theta, g, xsup, k, &mut s, given);
        self.seed(support, &mut s)?;
        let (last, d_out) = (self.layers().len() - 1, Model::<T>::output_dim(self));
        self.loss_kind_().output_hessian_product(
            self.at(s.hs, k, last),
            d_out,
            self.at(s.rhs, k, last),
            &mut s.r_delta_a[..k * d_out],
        );
        let r_du_s = self.tangent_backward(theta, g, xsup, k, &mut s, None, os.phi, given);
        os.finish(alpha, du_q, r_du_s, g);
        Ok(loss)
    }
}
