//! The multi-layer perceptron.
//!
//! `h_0 = x`, `z_l = h_{l−1} W_l + b_l`, `h_l = σ_l(z_l)` for l = 1..L, with
//! the hidden activation for l < L and the output activation for l = L, then
//! the loss on `h_L`. Each layer is a [`Dense`] kernel; this module chains
//! them and lays out the caller's scratch:
//!
//! ```text
//! [ h_1 … h_L | δ ping | δ pong | Rz_1 … Rz_L | Rh_1 … Rh_L | Rδ ping | Rδ pong | δh_1 … δh_L | W_lᵀ … ]
//!   forward     gradient         Hessian- and Gauss-Newton-vector products     δ cache (Hessian)  transposes
//! ```
//!
//! each `h_l`, `Rz_l`, `Rh_l`, `δh_l` being `N × d_l` and each δ buffer
//! `N × max d_l`. A Hessian-vector scratch keeps the backward pass's δh_l
//! (the loss's gradient with respect to h_l) from its preparation, so that
//! every prepared product reuses them instead of recomputing `δz Wᵀ` per
//! layer: the same bits, one matrix product fewer per hidden layer.
//!
//! Both curvature scratches (Hessian- and Gauss-Newton-vector; the latter
//! leaves the δ cache unused) end with `W_lᵀ` for the layers above the
//! first that [`Dense::transposes`] on the pass's rows: made once by the pass
//! that starts or prepares a product, they turn every `δ W_lᵀ` after it into
//! a product on the small kernel, the same bits as faer's (with FMA; without
//! it there are no transposes). They pay where products share a
//! preparation: iMAML's conjugate-gradient steps (the
//! Gauss-Newton iMAML meta-step's faer time from 19% to 3%, about 4% faster
//! overall); for MAML's one product per preparation the transpose costs
//! what it saves (2026-12-03, Xeon with AVX-512, perf profiles). Gradient
//! passes keep faer for the same reason: transposing W there too, and the
//! direction's V for the Hessian-vector product's `δ Vᵀ`, made MAML's
//! meta-step 0.89–0.94× and Gauss-Newton iMAML's 0.92–0.97× as fast
//! (2026-12-04, AMD Zen 3, in-process A/B runs); transposing W alone in
//! gradient passes, 1.00–1.03× (a later day). Why, from perf profiles of
//! first-order MAML's meta-steps there: inside them faer's `δ Wᵀ` at
//! 10 × 40 × 40 takes about 500 ns, what the small kernel's products take
//! (the microbenches, 720–920 ns for faer's, moved by ±25% between runs),
//! and the transpose adds about 240.
//!
//! MAML's fused one-step pass ([`Model::one_step_meta_gradient`]) lays out
//! its own scratch: a Hessian-vector scratch for the support rows, a
//! gradient scratch for the query rows, then the stacked inputs, their
//! products with `W_1`, the Gram matrix and P values for φ.

use std::ops::Range;

use theta_core::random::{Rng, truncated_normal, uniform};
use theta_core::{Error, Matrix, Model, Pass, Result, Scratch, Split, Targets, check_len};
use theta_kernels::activation::{
    backward_tangent, bias_activation, column_sums, tangent_bias_activation,
};
use theta_kernels::gemm::{SMALL_ROWS, gemm, gemm_nt, gemm_tn, transpose};
use theta_kernels::vector::{all_finite, axpy, axpy_to, scale};
use theta_kernels::{Activation, Dense, Loss, Real};

/// What an [`Mlp`] is: its widths, activations and loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpSpec {
    /// `[d_0, d_1, …, d_L]`: input width, hidden widths, output width.
    pub layer_sizes: Vec<usize>,
    /// σ for layers 1..L−1.
    pub hidden: Activation,
    /// σ for layer L (identity for regression and for logits).
    pub output: Activation,
    /// The loss on `h_L`.
    pub loss: Loss,
}

impl MlpSpec {
    /// A ReLU network with identity output, as the MAML paper's sinusoid
    /// (1-40-40-1, MSE) and classification (…-N, cross-entropy) networks.
    pub fn relu(layer_sizes: &[usize], loss: Loss) -> Self {
        MlpSpec {
            layer_sizes: layer_sizes.to_vec(),
            hidden: Activation::Relu,
            output: Activation::Identity,
            loss,
        }
    }
}

/// How to draw initial parameters θ₀.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Weights and biases uniform in ±1/√fan_in (PyTorch's `nn.Linear`, and
    /// the distribution of the reference cases).
    UniformFanIn,
    /// Weights uniform in ±1/√fan_in, biases zero (the weights of
    /// [`Init::UniformFanIn`], drawn in the same order, without drawing the
    /// biases). On the sinusoids this is what lets iMAML reach the JAX
    /// study's numbers: with uniform biases its own-solve query MSE was
    /// 0.026–0.041 across seeds, with zero biases 0.014 (README).
    UniformFanInZeroBias,
    /// Weights from a normal truncated at two standard deviations, biases
    /// zero (cbfinn/maml uses `std = 0.01`).
    TruncatedNormal {
        /// Standard deviation before truncation.
        std: f64,
    },
}

/// Where one layer's parameters sit in θ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    /// Shape and activation.
    pub dense: Dense,
    /// `W_l`, `fan_in × fan_out`, row-major.
    pub weights: Range<usize>,
    /// `b_l`.
    pub bias: Range<usize>,
    /// Σ_{k<l} d_k: where `h_l` starts in the activation scratch, per row.
    pub(crate) act_offset: usize,
    /// Where `W_lᵀ` goes in the transposes' region of a Hessian- or
    /// Gauss-Newton-vector scratch, for a layer above the first that is
    /// narrow enough for [`Dense::transposes`] (on few enough rows).
    wt_offset: Option<usize>,
}

impl LayerLayout {
    /// Where `W_lᵀ` sits in the transposes' region, if the layer uses it on
    /// `rows` rows.
    fn wt_span(&self, rows: usize) -> Option<Range<usize>> {
        let at = self.wt_offset.filter(|_| self.dense.transposes(rows))?;
        Some(at..at + self.weights.len())
    }
}

/// A multi-layer perceptron with a loss, implementing [`Model`] for `f32`
/// and `f64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    spec: MlpSpec,
    layers: Vec<LayerLayout>,
    num_params: usize,
    /// Σ_{l≥1} d_l.
    pub(crate) total_width: usize,
    /// max_{l≥1} d_l.
    pub(crate) max_width: usize,
    /// Σ of the transposed layers' `fan_in · fan_out`.
    transposed_len: usize,
}

impl Mlp {
    /// Builds the network, checking that it has at least one layer, no layer
    /// of width zero, and at least two classes for cross-entropy.
    pub fn new(spec: MlpSpec) -> Result<Self> {
        let sizes = &spec.layer_sizes;
        if sizes.len() < 2 {
            return Err(Error::InvalidModel(format!(
                "layer_sizes {sizes:?} needs an input and an output width"
            )));
        }
        if let Some(i) = sizes.iter().position(|&d| d == 0) {
            return Err(Error::InvalidModel(format!("layer_sizes {sizes:?}: width {i} is zero")));
        }
        if spec.loss == Loss::SoftmaxCrossEntropy && sizes[sizes.len() - 1] < 2 {
            return Err(Error::InvalidModel(
                "softmax cross-entropy needs at least two outputs (classes)".into(),
            ));
        }
        let n_layers = sizes.len() - 1;
        let mut layers = Vec::with_capacity(n_layers);
        let (mut offset, mut act_offset, mut transposed_len) = (0, 0, 0);
        for l in 0..n_layers {
            let dense = Dense {
                fan_in: sizes[l],
                fan_out: sizes[l + 1],
                activation: if l + 1 == n_layers { spec.output } else { spec.hidden },
            };
            let w = offset..offset + dense.fan_in * dense.fan_out;
            let b = w.end..w.end + dense.fan_out;
            offset = b.end;
            // Layer 1 has no δx; a layer too wide for the small kernel's most
            // rows is on faer always.
            let wt_offset = (l > 0 && dense.transposes(SMALL_ROWS)).then_some(transposed_len);
            transposed_len += if wt_offset.is_some() { w.len() } else { 0 };
            layers.push(LayerLayout { dense, weights: w, bias: b, act_offset, wt_offset });
            act_offset += dense.fan_out;
        }
        let max_width = sizes[1..].iter().copied().max().unwrap_or(0);
        let (total_width, num_params) = (act_offset, offset);
        Ok(Mlp { spec, layers, num_params, total_width, max_width, transposed_len })
    }

    pub(crate) fn num_params_(&self) -> usize {
        self.num_params
    }

    /// The description it was built from.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// Each layer's shape and place in θ.
    pub fn layers(&self) -> &[LayerLayout] {
        &self.layers
    }

    /// Draws θ₀.
    pub fn init<T: Real>(&self, init: Init, rng: &mut Rng) -> Vec<T> {
        let mut theta = vec![T::ZERO; self.num_params];
        self.init_into(init, rng, &mut theta);
        theta
    }

    /// Draws θ₀ into `theta` (of length P), layer by layer, weights row by
    /// row, then biases.
    pub fn init_into<T: Real>(&self, init: Init, rng: &mut Rng, theta: &mut [T]) {
        for layer in &self.layers {
            let fan_in = layer.dense.fan_in as f64;
            match init {
                Init::UniformFanIn => {
                    let r = 1.0 / fan_in.sqrt();
                    for p in &mut theta[layer.weights.start..layer.bias.end] {
                        *p = T::from_f64(uniform(rng, -r, r));
                    }
                }
                Init::UniformFanInZeroBias => {
                    let r = 1.0 / fan_in.sqrt();
                    for p in &mut theta[layer.weights.clone()] {
                        *p = T::from_f64(uniform(rng, -r, r));
                    }
                    theta[layer.bias.clone()].fill(T::ZERO);
                }
                Init::TruncatedNormal { std } => {
                    for p in &mut theta[layer.weights.clone()] {
                        *p = T::from_f64(truncated_normal(rng, std));
                    }
                    theta[layer.bias.clone()].fill(T::ZERO);
                }
            }
        }
    }

    fn activations_len(&self, rows: usize) -> usize {
        rows * self.total_width
    }

    fn delta_len(&self, rows: usize) -> usize {
        rows * self.max_width
    }

    fn output_dim_(&self) -> usize {
        self.layers[self.layers.len() - 1].dense.fan_out
    }

    /// Checks θ, the split and the scratch against the network.
    fn check<T: Real>(
        &self,
        theta: &[T],
        split: &Split<T>,
        pass: Pass,
        scratch: &[T],
    ) -> Result<()> {
        self.check_params(theta)?;
        self.check_inputs(split.x(), pass, scratch)?;
        self.check_targets(split)
    }

    /// θ's length and finiteness.
    pub(crate) fn check_params<T: Real>(&self, theta: &[T]) -> Result<()> {
        check_len("parameter vector length", self.num_params, theta.len())?;
        if all_finite(theta) {
            Ok(())
        } else {
            Err(Error::NonFinite("the parameter vector θ".into()))
        }
    }

    /// The inputs' shape (non-empty, the input width).
    pub(crate) fn check_x<T: Real>(&self, x: &Matrix<T>) -> Result<()> {
        if x.rows() == 0 {
            return Err(Error::Empty("input"));
        }
        check_len("input width", self.spec.layer_sizes[0], x.cols())
    }

    /// The targets against the loss and the output width.
    pub(crate) fn check_targets<T: Real>(&self, split: &Split<T>) -> Result<()> {
        let d_out = self.output_dim_();
        match (self.spec.loss, split.y()) {
            (Loss::Mse, Targets::Values(y)) => check_len("target width", d_out, y.cols()),
            (Loss::SoftmaxCrossEntropy, Targets::Labels(labels)) => {
                match labels.iter().position(|&l| l as usize >= d_out) {
                    Some(index) => {
                        Err(Error::LabelOutOfRange { label: labels[index], index, classes: d_out })
                    }
                    None => Ok(()),
                }
            }
            (loss, y) => Err(Error::TargetKind {
                loss: loss.name(),
                expected: if loss == Loss::Mse { "values" } else { "labels" },
                actual: y.kind(),
            }),
        }
    }

    fn check_inputs<T: Real>(&self, x: &Matrix<T>, pass: Pass, scratch: &[T]) -> Result<()> {
        self.check_x(x)?;
        let needed = self.scratch_len_(pass, x.rows());
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall { needed, given: scratch.len() });
        }
        Ok(())
    }

    fn scratch_len_(&self, pass: Pass, rows: usize) -> usize {
        let (s, m) = (self.activations_len(rows), self.delta_len(rows));
        match pass {
            Pass::Predict | Pass::Loss => s,
            Pass::Gradient => s + 2 * m,
            // The δ cache stays unused in a Gauss-Newton scratch, so that
            // the transposes sit at the same place in both.
            Pass::GaussNewton | Pass::HessianVector => 4 * s + 4 * m + self.transposed_len,
        }
    }

    /// `W_lᵀ` of the layers that use it on `rows` rows, into `wts` (see
    /// [`Dense::transposes`]): made once by the pass that starts a curvature
    /// product, for every `δ W_lᵀ` of the pass and of the prepared products
    /// after it.
    fn transpose_weights<T: Real>(&self, theta: &[T], rows: usize, wts: &mut [T]) {
        for layer in &self.layers {
            if let Some(span) = layer.wt_span(rows) {
                let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
                transpose(&theta[layer.weights.clone()], i, o, &mut wts[span]);
            }
        }
    }

    /// `W_lᵀ` in `wts` when [`Mlp::transpose_weights`] made it.
    fn wt<'a, T>(&self, wts: Option<&'a [T]>, l: usize, rows: usize) -> Option<&'a [T]> {
        Some(&wts?[self.layers[l].wt_span(rows)?])
    }

    /// Forward pass: fills `h_1 … h_L` in `hs` (with [`InputProducts::Given`],
    /// from `x W_1` already in `h_1`).
    fn forward<T: Real>(
        &self,
        theta: &[T],
        x: &[T],
        rows: usize,
        hs: &mut [T],
        products: InputProducts,
    ) {
        for (l, layer) in self.layers.iter().enumerate() {
            let start = rows * layer.act_offset;
            let (before, rest) = hs.split_at_mut(start);
            let (b, h) = (&theta[layer.bias.clone()], &mut rest[..rows * layer.dense.fan_out]);
            if l == 0 && products == InputProducts::Given {
                bias_activation(layer.dense.activation, h, b);
                continue;
            }
            let input = if l == 0 { x } else { self.h(before, rows, l - 1) };
            layer.dense.forward(rows, input, &theta[layer.weights.clone()], b, h);
        }
    }

    /// `h_{l+1}` (layer index `l`, 0-based) inside an activation buffer.
    fn h<'a, T>(&self, hs: &'a [T], rows: usize, l: usize) -> &'a [T] {
        let layer = &self.layers[l];
        let start = rows * layer.act_offset;
        &hs[start..start + rows * layer.dense.fan_out]
    }

    fn h_mut<'a, T>(&self, hs: &'a mut [T], rows: usize, l: usize) -> &'a mut [T] {
        let layer = &self.layers[l];
        let start = rows * layer.act_offset;
        &mut hs[start..start + rows * layer.dense.fan_out]
    }

    /// Tangent forward pass along v: fills `Rz_l`, `Rh_l` (with
    /// [`InputProducts::Given`], from `x V_1` already in `Rz_1`).
    fn tangent_forward<T: Real>(
        &self,
        theta: &[T],
        v: &[T],
        x: &[T],
        rows: usize,
        hs: &[T],
        rzs: &mut [T],
        rhs: &mut [T],
        products: InputProducts,
    ) {
        for (l, layer) in self.layers.iter().enumerate() {
            let start = rows * layer.act_offset;
            let (rh_before, rh_rest) = rhs.split_at_mut(start);
            if l == 0 && products == InputProducts::Given {
                let (h, rh) = (self.h(hs, rows, 0), &mut rh_rest[..h_len(rows, layer)]);
                let c = &v[layer.bias.clone()];
                tangent_bias_activation(layer.dense.activation, h, c, self.h_mut(rzs, rows, 0), rh);
                continue;
            }
            let (input, rx) = if l == 0 {
                (x, None)
            } else {
                (self.h(hs, rows, l - 1), Some(self.h(rh_before, rows, l - 1)))
            };
            let n = rows * layer.dense.fan_out;
            layer.dense.tangent_forward(
                rows,
                input,
                rx,
                &theta[layer.weights.clone()],
                &v[layer.weights.clone()],
                &v[layer.bias.clone()],
                self.h(hs, rows, l),
                self.h_mut(rzs, rows, l),
                &mut rh_rest[..n],
            );
        }
    }

    /// Backward pass from δh_L (in `delta_a`): writes the gradient with
    /// respect to θ of `Σ_n δh_L[n] · h_L[n]` into `grad` when given (but
    /// for `W_1` with [`InputProducts::Given`]), and each layer's δh_l into
    /// `cache` when given (a preparation of Hessian-vector products may
    /// want the δ chain alone). Returns the buffer that ends with δz_1.
    fn backward<'d, T: Real>(
        &self,
        theta: &[T],
        wts: Option<&[T]>,
        x: &[T],
        rows: usize,
        hs: &[T],
        mut delta_a: &'d mut [T],
        mut delta_b: &'d mut [T],
        mut grad: Option<&mut [T]>,
        mut cache: Option<&mut [T]>,
        products: InputProducts,
    ) -> &'d mut [T] {
        // Without a cache, each layer hands the one below its δz (δx ⊙ σ'),
        // not δx: one sweep fewer where δx is an outer product. The cache
        // wants δh itself.
        let hands_dz = cache.is_none();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate().rev() {
            if let Some(cache) = cache.as_deref_mut() {
                let n = rows * layer.dense.fan_out;
                self.h_mut(cache, rows, l).copy_from_slice(&delta_a[..n]);
            }
            let input = if l == 0 { x } else { self.h(hs, rows, l - 1) };
            let span = layer.weights.start..layer.bias.end;
            let mut g = grad.as_deref_mut().map(|g| g[span].split_at_mut(layer.weights.len()));
            // ∂b_1 alone: the caller makes ∂W_1.
            let bias_only =
                if l == 0 && products == InputProducts::Given { g.take() } else { None };
            let delta_in = if l == 0 { None } else { Some(&mut *delta_b) };
            let below = (l > 0 && hands_dz).then(|| self.layers[l - 1].dense.activation);
            layer.dense.backward(
                rows,
                input,
                &theta[layer.weights.clone()],
                self.wt(wts, l, rows),
                self.h(hs, rows, l),
                delta_a,
                // δz from the layer above; the top layer's δ is the loss's.
                hands_dz && l < last,
                g,
                delta_in,
                below,
            );
            if let Some((_, grad_b)) = bias_only {
                column_sums(&delta_a[..h_len(rows, layer)], grad_b);
            }
            std::mem::swap(&mut delta_a, &mut delta_b);
        }
        delta_b
    }
}

/// Whether a pass makes the input layer's products with its weights or was
/// handed them: the fused one-step meta-gradient makes `x W_1` and `x V_1`
/// itself, and `∂W_1` and `R∂W_1` as one product after the passes
/// ([`Mlp::one_step_meta_gradient_`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputProducts {
    /// The pass makes them.
    Run,
    /// `x W_1` (forward) or `x V_1` (tangent forward) is already in the
    /// layer's `h_1` or `Rz_1`; the backward passes skip `∂W_1`, `R∂W_1`.
    Given,
}

/// The input layer's side of a fused one-step pass (shared with
/// [`crate::BatchNormMlp`]): its buffers, `k` support rows and `n` query
/// rows, `W_1` of `d_0 × d_1`, and every step that touches `W_1` or φ.
pub(crate) struct OneStep<'a, T> {
    k: usize,
    n: usize,
    d0: usize,
    d1: usize,
    /// Where `W_1` sits in θ.
    weights: Range<usize>,
    /// `[x_q; x_s]`.
    xs: &'a [T],
    /// `[x_q; x_s] W_1`; at the end, `[δu_q; −α Rδu_s]`.
    us: &'a mut [T],
    /// `x_q x_sᵀ`, n × k.
    gram: &'a [T],
    /// P values: φ above `W_1`, then `H_s v`.
    pub(crate) phi: &'a mut [T],
}

impl<'a, T: Real> OneStep<'a, T> {
    /// `(x_q, x_s)`.
    pub(crate) fn inputs(&self) -> (&'a [T], &'a [T]) {
        self.xs.split_at(self.n * self.d0)
    }

    /// `x_s W_1`.
    pub(crate) fn support_product(&self) -> &[T] {
        &self.us[self.n * self.d1..]
    }

    /// `x_q φ_{W_1} = x_q W_1 − α (x_q x_sᵀ) δu_s` into `u_q`, with `work`
    /// (n · d_1 values) for the correction.
    pub(crate) fn query_product(&self, alpha: T, du_s: &[T], u_q: &mut [T], work: &mut [T]) {
        let (n, k, d1) = (self.n, self.k, self.d1);
        let correction = &mut work[..n * d1];
        gemm(false, correction, self.gram, &du_s[..k * d1], n, k, d1);
        u_q.copy_from_slice(&self.us[..n * d1]);
        axpy(-alpha, correction, u_q);
    }

    /// φ = θ − α∇L_s(θ) above `W_1`, from the support gradient in `g`, into
    /// `self.phi`; an error when φ or δu_s (the support's `∂L/∂(x W_1)`) is
    /// not finite.
    pub(crate) fn form_phi(&mut self, theta: &[T], g: &[T], alpha: T, du_s: &[T]) -> Result<()> {
        let tail = self.weights.end..self.phi.len();
        axpy_to(-alpha, &g[tail.clone()], &theta[tail.clone()], &mut self.phi[tail.clone()]);
        if all_finite(&self.phi[tail]) && all_finite(&du_s[..self.k * self.d1]) {
            Ok(())
        } else {
            Err(Error::NonFinite("the inner step's φ = θ − α∇L_s(θ)".into()))
        }
    }

    /// The last of a fused one-step pass, with the query gradient but `W_1`'s
    /// in `g`, `H_s v` but `W_1`'s in `self.phi`, δu_q and Rδu_s: `g ← g − α
    /// H_s v` above `W_1`, and `g_{W_1} = [x_q; x_s]ᵀ [δu_q; −α Rδu_s]`.
    pub(crate) fn finish(self, alpha: T, du_q: &[T], r_du_s: &[T], g: &mut [T]) {
        let (n, k, d1) = (self.n, self.k, self.d1);
        let tail = self.weights.end..self.phi.len();
        axpy(-alpha, &self.phi[tail.clone()], &mut g[tail]);
        let (top, bottom) = self.us.split_at_mut(n * d1);
        top.copy_from_slice(&du_q[..n * d1]);
        bottom.copy_from_slice(&r_du_s[..k * d1]);
        scale(-alpha, bottom);
        gemm_tn(false, &mut g[self.weights], self.xs, self.us, n + k, self.d0, d1);
    }

    /// An error when the query gradient (but `W_1`'s, in g) or δu_q is not
    /// finite.
    pub(crate) fn check_query_gradient(&self, g: &[T], du_q: &[T]) -> Result<()> {
        if all_finite(&g[self.weights.end..]) && all_finite(&du_q[..self.n * self.d1]) {
            Ok(())
        } else {
            Err(Error::NonFinite("the query gradient ∇L_q(φ)".into()))
        }
    }

    /// `x_s V_{W_1} = (x_s x_qᵀ) δu_q` into `ru_s`, V = ∇L_q(φ).
    pub(crate) fn support_tangent_product(&self, du_q: &[T], ru_s: &mut [T]) {
        let (n, k, d1) = (self.n, self.k, self.d1);
        gemm_tn(false, ru_s, self.gram, &du_q[..n * d1], n, k, d1);
    }
}

/// Values of one layer's output over `rows` rows.
fn h_len(rows: usize, layer: &LayerLayout) -> usize {
    rows * layer.dense.fan_out
}

/// v's length and finiteness (shared with [`crate::BatchNormMlp`]).
pub(crate) fn check_direction<T: Real>(v: &[T], p: usize) -> Result<()> {
    check_len("direction length", p, v.len())?;
    if all_finite(v) { Ok(()) } else { Err(Error::NonFinite("the direction v".into())) }
}

/// The scratch regions of one pass.
struct Regions<'a, T> {
    hs: &'a mut [T],
    delta_a: &'a mut [T],
    delta_b: &'a mut [T],
    rzs: &'a mut [T],
    rhs: &'a mut [T],
    r_delta_a: &'a mut [T],
    r_delta_b: &'a mut [T],
    /// δh_1 … δh_L, in Hessian-vector scratch only (empty otherwise).
    dhs: &'a mut [T],
    /// The transposed weights, in curvature scratch only (empty otherwise).
    wts: &'a mut [T],
}

impl Mlp {
    fn regions<'a, T>(&self, rows: usize, scratch: &'a mut [T]) -> Regions<'a, T> {
        let (s, m) = (self.activations_len(rows), self.delta_len(rows));
        let (hs, rest) = scratch.split_at_mut(s);
        let (delta_a, rest) = rest.split_at_mut(m.min(rest.len()));
        let (delta_b, rest) = rest.split_at_mut(m.min(rest.len()));
        let (rzs, rest) = rest.split_at_mut(s.min(rest.len()));
        let (rhs, rest) = rest.split_at_mut(s.min(rest.len()));
        let (r_delta_a, rest) = rest.split_at_mut(m.min(rest.len()));
        let (r_delta_b, rest) = rest.split_at_mut(m.min(rest.len()));
        let (dhs, rest) = rest.split_at_mut(s.min(rest.len()));
        let (wts, _) = rest.split_at_mut(self.transposed_len.min(rest.len()));
        Regions { hs, delta_a, delta_b, rzs, rhs, r_delta_a, r_delta_b, dhs, wts }
    }

    /// The loss at the network's output (in `r.hs`) and its gradient
    /// δh_L, the backward pass's seed, into `delta`.
    fn seed<T: Real>(&self, split: &Split<T>, hs: &[T], delta: &mut [T]) -> Result<T> {
        let (rows, d_out) = (split.len(), self.output_dim_());
        let out = self.h(hs, rows, self.layers.len() - 1);
        let delta = Some(&mut delta[..rows * d_out]);
        Self::finite(self.spec.loss.value_and_gradient(out, d_out, split.y().as_ref(), delta))
    }

    /// Everything of the Hessian-vector pass after the forward pass (in
    /// `r.hs`): the tangent forward pass, the loss's Hessian seed, and the
    /// fused tangent backward. The δ chain is either computed along, from
    /// the seed in `r.delta_a`, writing the gradient when `grad` is given,
    /// or read from the cache `r.dhs` of a preparation (`cached`). With
    /// [`InputProducts::Given`] (`x V_1` in `Rz_1`), it makes neither `∂W_1`
    /// nor `R∂W_1`. Returns the buffer that ends with Rδz_1.
    fn tangent_pass<'a, T: Real>(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        mut grad: Option<&mut [T]>,
        cached: bool,
        hvp: &mut [T],
        r: Regions<'a, T>,
        products: InputProducts,
    ) -> &'a mut [T] {
        let (rows, x) = (split.len(), split.x().as_slice());
        self.tangent_forward(theta, v, x, rows, r.hs, r.rzs, r.rhs, products);
        let last = self.layers.len() - 1;
        let d_out = self.output_dim_();
        self.spec.loss.output_hessian_product(
            self.h(r.hs, rows, last),
            d_out,
            self.h(r.rhs, rows, last),
            &mut r.r_delta_a[..rows * d_out],
        );

        let (mut delta_a, mut delta_b) = (r.delta_a, r.delta_b);
        let (mut r_delta_a, mut r_delta_b) = (r.r_delta_a, r.r_delta_b);
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let (input, rx) = if l == 0 {
                (x, None)
            } else {
                (self.h(r.hs, rows, l - 1), Some(self.h(r.rhs, rows, l - 1)))
            };
            if cached {
                let n = rows * layer.dense.fan_out;
                delta_a[..n].copy_from_slice(self.h(r.dhs, rows, l));
            }
            let span = layer.weights.start..layer.bias.end;
            let (hw, hb) = hvp[span.clone()].split_at_mut(layer.weights.len());
            if l == 0 && products == InputProducts::Given {
                // Rδz_1 and R∂b_1; the caller makes R∂W_1.
                let n = h_len(rows, layer);
                let (h, rz) = (self.h(r.hs, rows, 0), self.h(r.rzs, rows, 0));
                let (delta, r_delta) = (&mut delta_a[..n], &mut r_delta_a[..n]);
                backward_tangent(layer.dense.activation, h, rz, delta, r_delta);
                column_sums(r_delta, hb);
                return r_delta_a;
            }
            let g = grad.as_deref_mut().map(|g| g[span].split_at_mut(layer.weights.len()));
            let delta_in = if l == 0 || cached { None } else { Some(&mut *delta_b) };
            let r_delta_in = if l == 0 { None } else { Some(&mut *r_delta_b) };
            layer.dense.tangent_backward(
                rows,
                input,
                rx,
                &theta[layer.weights.clone()],
                self.wt(Some(&*r.wts), l, rows),
                &v[layer.weights.clone()],
                self.h(r.hs, rows, l),
                self.h(r.rzs, rows, l),
                delta_a,
                r_delta_a,
                g,
                hw,
                hb,
                delta_in,
                r_delta_in,
            );
            if !cached {
                std::mem::swap(&mut delta_a, &mut delta_b);
            }
            std::mem::swap(&mut r_delta_a, &mut r_delta_b);
        }
        r_delta_b
    }

    /// Loss and gradient, in a scratch checked to hold `pass`.
    fn gradient_pass<T: Real>(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        pass: Pass,
        scratch: &mut [T],
    ) -> Result<T> {
        self.check(theta, split, pass, scratch)?;
        check_len("gradient buffer length", self.num_params, grad.len())?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let r = self.regions(rows, scratch);
        self.forward(theta, x, rows, r.hs, InputProducts::Run);
        let loss = self.seed(split, r.hs, r.delta_a)?;
        // In a curvature scratch, keep the transposes for prepared products
        // (and, for Hessian-vector products, the δ chain).
        let curvature = matches!(pass, Pass::HessianVector | Pass::GaussNewton);
        if curvature {
            self.transpose_weights(theta, rows, r.wts);
        }
        let wts = curvature.then_some(&*r.wts);
        let cache = (pass == Pass::HessianVector).then_some(r.dhs);
        self.backward(
            theta,
            wts,
            x,
            rows,
            r.hs,
            r.delta_a,
            r.delta_b,
            Some(grad),
            cache,
            InputProducts::Run,
        );
        Ok(loss)
    }

    /// The checks of a prepared product: θ's values were checked when
    /// prepared; the shapes and the direction cost nothing to check again.
    fn check_prepared<T: Real>(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        pass: Pass,
        scratch: &[T],
    ) -> Result<()> {
        check_len("parameter vector length", self.num_params, theta.len())?;
        self.check_inputs(split.x(), pass, scratch)?;
        self.check_targets(split)?;
        check_direction(v, self.num_params)
    }

    /// Checks, the forward pass into the scratch's `h` region, and the loss:
    /// `loss` itself, and the part that curvature products at one θ share.
    fn forward_loss<T: Real>(
        &self,
        theta: &[T],
        split: &Split<T>,
        pass: Pass,
        scratch: &mut [T],
    ) -> Result<T> {
        self.check(theta, split, pass, scratch)?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let r = self.regions(rows, scratch);
        self.forward(theta, x, rows, r.hs, InputProducts::Run);
        if pass == Pass::GaussNewton {
            self.transpose_weights(theta, rows, r.wts);
        }
        let out = self.h(r.hs, rows, self.layers.len() - 1);
        let loss =
            self.spec.loss.value_and_gradient(out, self.output_dim_(), split.y().as_ref(), None);
        Self::finite(loss)
    }

    /// Whether the fused one-step meta-gradient pays over `k` support and
    /// `n` query rows. It saves the support's three `k`-row products the size
    /// of `W_1` (`∂W_1`, `x_s V_1`, `R∂W_1`) and three sweeps over
    /// `W_1`-sized vectors (forming φ's, the product's, and adding it to
    /// g); it adds the Gram matrix `x_q x_sᵀ`, two `n × k × d_1` products
    /// and copies of the stacked rows. Counted in multiply-adds and values
    /// moved, it must save twice what it adds: the 784-wide input layer of
    /// the Omniglot network saves six times; the sinusoid's one-wide input
    /// would add seven times what it saves.
    pub(crate) fn fuses_one_step(&self, k: usize, n: usize) -> bool {
        let (d0, d1) = (self.layers[0].dense.fan_in, self.layers[0].dense.fan_out);
        let saved = 3 * k * d0 * d1 + 3 * d0 * d1;
        let added = n * k * d0 + 2 * n * k * d1 + (n + k) * (d0 + 2 * d1);
        k > 0 && n > 0 && saved > 2 * added
    }

    /// The end of a fused one-step scratch, after the model's support and
    /// query scratches: the stacked inputs `[x_q; x_s]` and their products
    /// with `W_1`, the Gram matrix `x_q x_sᵀ`, and P values for φ and then
    /// `H_s v`.
    pub(crate) fn one_step_input_len(&self, k: usize, n: usize) -> usize {
        let (d0, d1) = (self.layers[0].dense.fan_in, self.layers[0].dense.fan_out);
        (n + k) * (d0 + d1) + n * k + self.num_params
    }

    /// The checks of a fused one-step pass: θ, both splits, g.
    pub(crate) fn one_step_checks<T: Real>(
        &self,
        theta: &[T],
        support: &Split<T>,
        query: &Split<T>,
        g: &[T],
    ) -> Result<()> {
        self.check_params(theta)?;
        for split in [support, query] {
            self.check_x(split.x())?;
            self.check_targets(split)?;
        }
        check_len("gradient buffer length", self.num_params, g.len())
    }

    /// Lays out the input layer's buffers of a fused one-step pass in
    /// `scratch` (of [`Mlp::one_step_input_len`] values) and makes `[x_q;
    /// x_s] W_1` (one product over the stacked rows) and `x_q x_sᵀ`.
    pub(crate) fn one_step_input<'a, T: Real>(
        &self,
        theta: &[T],
        support: &Split<T>,
        query: &Split<T>,
        scratch: &'a mut [T],
    ) -> OneStep<'a, T> {
        let first = &self.layers[0];
        let (k, n, d0, d1) = (support.len(), query.len(), first.dense.fan_in, first.dense.fan_out);
        let (xs, rest) = scratch.split_at_mut((n + k) * d0);
        let (us, rest) = rest.split_at_mut((n + k) * d1);
        let (gram, rest) = rest.split_at_mut(n * k);
        xs[..n * d0].copy_from_slice(query.x().as_slice());
        xs[n * d0..].copy_from_slice(support.x().as_slice());
        gemm(false, us, xs, &theta[first.weights.clone()], n + k, d0, d1);
        let (xq, xsup) = xs.split_at(n * d0);
        gemm_nt(false, gram, xq, xsup, n, d0, k);
        let (weights, phi) = (first.weights.clone(), &mut rest[..self.num_params]);
        OneStep { k, n, d0, d1, weights, xs, us, gram, phi }
    }

    /// Scratch of the MLP's fused one-step meta-gradient: the support's
    /// Hessian-vector scratch, the query's gradient scratch, then
    /// [`Mlp::one_step_input_len`].
    fn one_step_len(&self, k: usize, n: usize) -> usize {
        self.scratch_len_(Pass::HessianVector, k)
            + self.scratch_len_(Pass::Gradient, n)
            + self.one_step_input_len(k, n)
    }

    /// MAML's one-step meta-gradient without forming `W_1`'s part of φ
    /// (see [`Model::one_step_meta_gradient`]).
    ///
    /// The support gradient of `W_1` is `x_sᵀ δz_s` (δz_s the support's
    /// `∂L/∂z_1`), of rank at most k, so every product with `W_1`'s part of
    /// φ or of the query gradient runs through the k × n Gram matrix
    /// `G = x_s x_qᵀ` instead of a `d_0 × d_1` matrix over k rows:
    ///
    /// ```text
    /// x_q φ_{W_1}  = x_q W_1 − α Gᵀ δz_s        (query forward at φ)
    /// x_s V_{W_1}  = G δz_q                     (tangent forward, V = ∇L_q(φ))
    /// g_{W_1}      = x_qᵀ δz_q − α x_sᵀ Rδz_s   (one product over n + k rows)
    /// ```
    ///
    /// The rest of φ and g (the upper layers and b_1) is formed as MAML's
    /// composed passes form it. With a wide input and few support rows
    /// this removes most of the support's work: for the Omniglot network
    /// (784 inputs, 5 + 75 rows), `W_1` holds 82% of the parameters.
    fn one_step_meta_gradient_<T: Real>(
        &self,
        theta: &[T],
        support: &Split<T>,
        query: &Split<T>,
        alpha: T,
        g: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        self.one_step_checks(theta, support, query, g)?;
        let (k, n) = (support.len(), query.len());
        let (sup, rest) = scratch.split_at_mut(self.scratch_len_(Pass::HessianVector, k));
        let (qry, rest) = rest.split_at_mut(self.scratch_len_(Pass::Gradient, n));
        let mut os = self.one_step_input(theta, support, query, rest);
        let (xq, xsup) = os.inputs();

        // The support pass at θ, prepared for the Hessian-vector product:
        // ∇L_s(θ) but ∂W_1, into g.
        let s = self.regions(k, sup);
        self.h_mut(s.hs, k, 0).copy_from_slice(os.support_product());
        self.forward(theta, xsup, k, s.hs, InputProducts::Given);
        self.seed(support, s.hs, s.delta_a)?;
        self.transpose_weights(theta, k, s.wts);
        let (wts, dhs) = (Some(&*s.wts), Some(&mut *s.dhs));
        let (da, db) = (&mut *s.delta_a, &mut *s.delta_b);
        let given = InputProducts::Given;
        let dz_s = self.backward(theta, wts, xsup, k, s.hs, da, db, Some(g), dhs, given);
        os.form_phi(theta, g, alpha, dz_s)?;

        // The query pass at φ: ∇L_q(φ) but ∂W_1, into g, and δz_q.
        let q = self.regions(n, qry);
        os.query_product(alpha, dz_s, self.h_mut(q.hs, n, 0), q.delta_a);
        self.forward(os.phi, xq, n, q.hs, given);
        let loss = self.seed(query, q.hs, q.delta_a)?;
        let dz_q =
            self.backward(os.phi, None, xq, n, q.hs, q.delta_a, q.delta_b, Some(g), None, given);
        os.check_query_gradient(g, dz_q)?;

        // H_s(θ) v for v = ∇L_q(φ), whose W_1 part x_qᵀ δz_q stays unformed;
        // φ's buffer takes the product.
        os.support_tangent_product(dz_q, self.h_mut(s.rzs, k, 0));
        let r_dz_s = self.tangent_pass(theta, support, g, None, true, os.phi, s, given);
        os.finish(alpha, dz_q, r_dz_s, g);
        Ok(loss)
    }

    /// A loss, or the error that it is not finite.
    pub(crate) fn finite<T: Real>(loss: T) -> Result<T> {
        if loss.is_finite() { Ok(loss) } else { Err(Error::NonFinite("the loss".into())) }
    }
}

impl<T: Real> Model<T> for Mlp {
    fn num_params(&self) -> usize {
        self.num_params
    }

    fn input_dim(&self) -> usize {
        self.spec.layer_sizes[0]
    }

    fn output_dim(&self) -> usize {
        self.output_dim_()
    }

    fn loss_kind(&self) -> Loss {
        self.spec.loss
    }

    fn scratch_len(&self, pass: Pass, rows: usize) -> usize {
        self.scratch_len_(pass, rows)
    }

    fn flops(&self, pass: Pass, rows: usize) -> usize {
        // Matrix products per layer (the input layer skips those with Rx or δx).
        let (first, rest) = match pass {
            Pass::Predict | Pass::Loss => (1, 1),
            Pass::Gradient => (2, 3),
            Pass::HessianVector => (4, 9),
            Pass::GaussNewton => (3, 5),
        };
        self.layers
            .iter()
            .enumerate()
            .map(|(l, layer)| layer.dense.forward_flops(rows) * if l == 0 { first } else { rest })
            .sum()
    }

    fn predict(&self, theta: &[T], x: &Matrix<T>, out: &mut [T], scratch: &mut [T]) -> Result<()> {
        check_len("parameter vector length", self.num_params, theta.len())?;
        if !all_finite(theta) {
            return Err(Error::NonFinite("the parameter vector θ".into()));
        }
        self.check_inputs(x, Pass::Predict, scratch)?;
        let rows = x.rows();
        check_len("output buffer length", rows * self.output_dim_(), out.len())?;
        let r = self.regions(rows, scratch);
        self.forward(theta, x.as_slice(), rows, r.hs, InputProducts::Run);
        out.copy_from_slice(self.h(r.hs, rows, self.layers.len() - 1));
        Ok(())
    }

    fn loss(&self, theta: &[T], split: &Split<T>, scratch: &mut [T]) -> Result<T> {
        self.forward_loss(theta, split, Pass::Loss, scratch)
    }

    fn loss_grad(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        self.gradient_pass(theta, split, grad, Pass::Gradient, scratch)
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
        check_direction(v, self.num_params)?;
        check_len("gradient buffer length", self.num_params, grad.len())?;
        check_len("Hessian-vector buffer length", self.num_params, hvp.len())?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let r = self.regions(rows, scratch);
        self.forward(theta, x, rows, r.hs, InputProducts::Run);
        self.transpose_weights(theta, rows, r.wts);
        let loss = self.seed(split, r.hs, r.delta_a)?;
        self.tangent_pass(theta, split, v, Some(grad), false, hvp, r, InputProducts::Run);
        Ok(loss)
    }

    fn loss_grad_prepare_hvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        // The gradient pass in the larger scratch: its forward pass stays in
        // `hs`, which no later step of the gradient pass writes, and it
        // caches its δ chain in `dhs`.
        self.gradient_pass(theta, split, grad, Pass::HessianVector, scratch)
    }

    fn loss_grad_prepare_gnvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        // The forward pass stays in `hs`, the transposes in `wts`: what
        // prepare_gnvp leaves.
        self.gradient_pass(theta, split, grad, Pass::GaussNewton, scratch)
    }

    fn hvp_prepared(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        _work: &mut [T],
        hvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check_prepared(theta, split, v, Pass::HessianVector, scratch)?;
        check_len("Hessian-vector buffer length", self.num_params, hvp.len())?;
        let r = self.regions(split.len(), scratch);
        self.tangent_pass(theta, split, v, None, true, hvp, r, InputProducts::Run);
        Ok(())
    }

    fn loss_gnvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        gnvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        let loss = self.forward_loss(theta, split, Pass::GaussNewton, scratch)?;
        self.gnvp_prepared(theta, split, v, gnvp, scratch)?;
        Ok(loss)
    }

    fn prepare_gnvp(&self, theta: &[T], split: &Split<T>, scratch: &mut [T]) -> Result<()> {
        self.forward_loss(theta, split, Pass::GaussNewton, scratch).map(|_| ())
    }

    fn lane_scratch_len(&self, rows: usize) -> Option<usize> {
        self.lane_scratch_len_(rows)
    }

    fn loss_grad_lanes(
        &self,
        theta: theta_kernels::lanes::Weights<'_, T>,
        split: theta_core::LaneSplit<'_, T>,
        grad: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        Some(self.loss_grad_lanes_(theta, split, grad, scratch, false, None))
    }

    fn gradient_step_lanes(
        &self,
        theta: theta_kernels::lanes::Weights<'_, T>,
        alpha: T,
        split: theta_core::LaneSplit<'_, T>,
        phi: &mut [T::Pack],
        scratch: &mut [T::Pack],
        prepare: bool,
    ) -> Option<Result<T::Pack>> {
        let step = Some(-alpha);
        Some(self.loss_grad_lanes_(theta, split, phi, scratch, prepare, step))
    }

    fn loss_grad_prepare_hvp_lanes(
        &self,
        theta: theta_kernels::lanes::Weights<'_, T>,
        split: theta_core::LaneSplit<'_, T>,
        grad: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        Some(self.loss_grad_lanes_(theta, split, grad, scratch, true, None))
    }

    fn hvp_lanes(
        &self,
        theta: theta_kernels::lanes::Weights<'_, T>,
        split: theta_core::LaneSplit<'_, T>,
        v: &[T::Pack],
        hv: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        Some(self.hvp_lanes_(theta, split, v, hv, scratch, false, None))
    }

    fn hvp_step_lanes(
        &self,
        theta: theta_kernels::lanes::Weights<'_, T>,
        alpha: T,
        split: theta_core::LaneSplit<'_, T>,
        v: &[T::Pack],
        out: &mut [T::Pack],
        scratch: &mut [T::Pack],
        prepared: bool,
    ) -> Option<Result<()>> {
        let step = Some(-alpha);
        Some(self.hvp_lanes_(theta, split, v, out, scratch, prepared, step).map(|_| ()))
    }

    fn one_step_lane_scratch_len(&self, support_rows: usize, query_rows: usize) -> Option<usize> {
        self.one_step_lane_scratch_len_::<T>(support_rows, query_rows)
    }

    fn one_step_meta_gradient_lanes(
        &self,
        theta: &[T],
        alpha: T,
        support: theta_core::LaneSplit<'_, T>,
        query: theta_core::LaneSplit<'_, T>,
        out: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        self.one_step_lane_scratch_len_::<T>(support.rows, query.rows)?;
        Some(self.one_step_meta_gradient_lanes_(theta, alpha, support, query, out, scratch))
    }

    fn hvp_lanes_prepared(
        &self,
        theta: theta_kernels::lanes::Weights<'_, T>,
        split: theta_core::LaneSplit<'_, T>,
        v: &[T::Pack],
        hv: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<()>> {
        Some(self.hvp_lanes_(theta, split, v, hv, scratch, true, None).map(|_| ()))
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
        if !self.fuses_one_step(k, n) {
            return None;
        }
        let scratch = scratch.slice(self.one_step_len(k, n));
        Some(self.one_step_meta_gradient_(theta, support, query, alpha, g, scratch))
    }

    fn prepare_hvp(&self, theta: &[T], split: &Split<T>, scratch: &mut [T]) -> Result<()> {
        // The forward pass and the gradient pass's δ chain, without ∂W, ∂b.
        self.check(theta, split, Pass::HessianVector, scratch)?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let r = self.regions(rows, scratch);
        self.forward(theta, x, rows, r.hs, InputProducts::Run);
        self.seed(split, r.hs, r.delta_a)?;
        self.transpose_weights(theta, rows, r.wts);
        let wts = Some(&*r.wts);
        self.backward(
            theta,
            wts,
            x,
            rows,
            r.hs,
            r.delta_a,
            r.delta_b,
            None,
            Some(r.dhs),
            InputProducts::Run,
        );
        Ok(())
    }

    fn gnvp_prepared(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        gnvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check_prepared(theta, split, v, Pass::GaussNewton, scratch)?;
        check_len("Gauss-Newton-vector buffer length", self.num_params, gnvp.len())?;
        let (rows, x) = (split.len(), split.x().as_slice());
        let r = self.regions(rows, scratch);
        self.tangent_forward(theta, v, x, rows, r.hs, r.rzs, r.rhs, InputProducts::Run);
        let last = self.layers.len() - 1;
        let d_out = self.output_dim_();
        let out = self.h(r.hs, rows, last);
        // J v is Rh_L; H_out (J v) seeds a plain backward pass, which applies Jᵀ.
        self.spec.loss.output_hessian_product(
            out,
            d_out,
            self.h(r.rhs, rows, last),
            &mut r.delta_a[..rows * d_out],
        );
        let wts = Some(&*r.wts);
        self.backward(
            theta,
            wts,
            x,
            rows,
            r.hs,
            r.delta_a,
            r.delta_b,
            Some(gnvp),
            None,
            InputProducts::Run,
        );
        Ok(())
    }
}
