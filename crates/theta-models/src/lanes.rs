//! An [`Mlp`]'s loss and gradient, and its Hessian-vector product (the
//! R-pass), for a group of tasks at once, one task per SIMD lane
//! ([`theta_kernels::lanes`]).
//!
//! A meta-batch is many small tasks through one network: the sinusoid's 25
//! tasks of 10 rows through 1-40-40-1. One task at a time, a gradient pass
//! spends most of its time at the edges of its small products and on partial
//! packs (37% of the FMA peak on the Xeon these numbers come from); with the
//! tasks in the lanes of every pack, nothing is partial and nothing is
//! transposed. The parameters are θ, shared by every task (broadcast from
//! one copy), or each task's own, lane-major (an adapted φ: value i of every
//! task's vector in pack i).
//!
//! Each lane's sums run in increasing order, fused multiply-adds from zero
//! (the register-blocked kernel's order), so a lane's result never depends
//! on which lane or group its task is in, or how many threads there are.
//! They are not always the per-task pass's bits: that pass sums one-column
//! products in a tree and computes tanh and sigmoid on partial packs with
//! the standard library; the tests hold the two within rounding.
//!
//! Measured (2026-12-06, Xeon with AVX-512, `cargo bench -p theta-benches
//! -- lanes_1-40`): the sinusoid network's pass over 16 tasks of 10 rows,
//! each with its own parameters, 15.1–15.3 µs, 0.95 µs a task against the
//! per-task pass's 1.55 (1.63×); with θ shared, 13.9 µs. A throw-away
//! probe with every size a constant and the sweeps fused into its loops
//! took 11.1–11.9 µs: the product `xᵀ δ` (4.3–4.6 µs here, 3.3 there: the
//! bookkeeping of its 80 blocks of ten terms), the one-wide layers and the
//! finiteness scan of each task's parameters (about 0.8 µs: 113 KB from
//! L2) are where the difference is.
//!
//! MAML with one inner step has a pass of its own here
//! ([`Mlp::one_step_meta_gradient_lanes_`]). Composed, its meta-gradient
//! forms each lane's φ and query gradient V, 40 × 40 per task for the
//! sinusoid's middle layer (113 KB a group, written and read from L2), and
//! takes four products with them. But both have rank at most the rows of
//! a split (`φ_W = W − α h_sᵀ δz_s`, `V = h_qᵀ δz_q`), so each of those
//! products is one with θ's W, broadcast from L1, and two with 10 × 10
//! Gram matrices. On the sinusoid workload (2026-12-06, an AMD EPYC Zen 4
//! with AVX-512 on 256-bit units, in-process runs alternated with the
//! composed passes, three each): 7,165–7,217 meta-steps/s against
//! 6,473–6,507, 1.10–1.11×.

use theta_core::{Error, LaneSplit, Result, check_len};
use theta_kernels::lanes::{self, Store, Weights};
use theta_kernels::{Activation, Loss, Pack, Real};

use crate::Mlp;

/// Values `range` of lane-major or shared parameters.
fn part<'a, T: Real>(theta: Weights<'a, T>, range: std::ops::Range<usize>) -> Weights<'a, T> {
    match theta {
        Weights::Shared(t) => Weights::Shared(&t[range]),
        Weights::Lanes(t) => Weights::Lanes(&t[range]),
    }
}

/// A dense layer's forward pass in every lane, `h = σ(x W + b)` for `rows`
/// rows of `i` inputs and `o` outputs: bias and σ in the product's store
/// where it has them (identity, ReLU), else a sweep after it.
fn dense_forward_lanes<T: Real>(
    act: Activation,
    h: &mut [T::Pack],
    x: &[T::Pack],
    w: Weights<'_, T>,
    b: Weights<'_, T>,
    (rows, i, o): (usize, usize, usize),
) {
    match act {
        Activation::Identity | Activation::Relu => {
            let store = Store::Bias { bias: b, relu: act == Activation::Relu };
            lanes::gemm(store, h, x, w, rows, i, o);
        }
        _ => {
            lanes::gemm(Store::Replace, h, x, w, rows, i, o);
            lanes::bias_activation(act, h, b, o);
        }
    }
}

/// True when every value of every lane is finite: `Σ 0 · x` is 0 then, and
/// NaN as soon as one value is NaN or infinite (eight independent sums:
/// one chain was bound by the addition's latency, 2.5 µs on the sinusoid's
/// 1,761 packs).
fn all_finite_lanes<T: Real>(x: &[T::Pack]) -> bool {
    let zero = T::Pack::splat(T::ZERO);
    let mut acc = [zero; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = v.mul_add(zero, *a);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = v.mul_add(zero, *a);
    }
    lanes_finite::<T>(acc.iter().fold(zero, |s, &a| s + a))
}

/// True when every lane of `x` is finite.
fn lanes_finite<T: Real>(x: T::Pack) -> bool {
    // A pack has at most 16 lanes (f32 with AVX-512).
    let mut lanes = [T::ZERO; 16];
    x.store(&mut lanes[..T::Pack::LANES]);
    lanes[..T::Pack::LANES].iter().all(|v| v.is_finite())
}

impl Mlp {
    /// The widths a lane pass keeps: every layer's outputs, and a δ
    /// buffer of the widest layer (δ is never carried below the first
    /// layer, so not the input's).
    fn lane_spans(&self, rows: usize) -> (usize, usize) {
        let widths = &self.spec().layer_sizes[1..];
        let max = widths.iter().copied().max().unwrap_or(0);
        (rows * widths.iter().sum::<usize>(), rows * max)
    }

    /// [`theta_core::Model::lane_scratch_len`], the Hessian-vector pass's
    /// (the larger): the outputs, the δh a prepared R-pass reads, `Rz` and
    /// `Rh` of every layer, two δ and two Rδ buffers. None for softmax
    /// cross-entropy, whose tasks run one by one.
    pub(crate) fn lane_scratch_len_(&self, rows: usize) -> Option<usize> {
        let (hs, delta) = self.lane_spans(rows);
        (self.spec().loss == Loss::Mse).then_some(4 * hs + 4 * delta)
    }

    /// The checks every lane pass makes: [`Mlp::check_lane_shapes`], and θ
    /// finite.
    fn check_lanes<T: Real>(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        outputs: &[(&'static str, usize)],
        scratch: usize,
    ) -> Result<()> {
        self.check_lane_shapes(theta, split, outputs, scratch)?;
        let finite = match theta {
            Weights::Shared(t) => theta_kernels::vector::all_finite(t),
            Weights::Lanes(t) => all_finite_lanes::<T>(t),
        };
        if !finite {
            return Err(Error::NonFinite("θ".into()));
        }
        Ok(())
    }

    /// Rows, the loss, and the lengths of θ, x, y, the parameter-sized
    /// `outputs` (named) and the scratch.
    fn check_lane_shapes<T: Real>(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        outputs: &[(&'static str, usize)],
        scratch: usize,
    ) -> Result<()> {
        let LaneSplit { rows, x, y } = split;
        let sizes = &self.spec().layer_sizes;
        let (d_in, d_out) = (sizes[0], sizes[sizes.len() - 1]);
        if rows == 0 {
            return Err(Error::Empty("lane pass's row"));
        }
        if self.spec().loss != Loss::Mse {
            return Err(Error::InvalidParameter {
                name: "loss",
                value: self.spec().loss.name().into(),
                reason: "lane passes compute mse only; run these tasks one by one",
            });
        }
        let p = <Mlp as theta_core::Model<T>>::num_params(self);
        let theta_len = match theta {
            Weights::Shared(t) => t.len(),
            Weights::Lanes(t) => t.len(),
        };
        check_len("parameter vector length", p, theta_len)?;
        check_len("lane inputs (rows × input width)", rows * d_in, x.len())?;
        check_len("lane targets (rows × output width)", rows * d_out, y.len())?;
        for &(what, len) in outputs {
            check_len(what, p, len)?;
        }
        let need = self.lane_scratch_len_(rows).unwrap_or(0);
        if scratch < need {
            check_len("lane scratch length (at least)", need, scratch)?;
        }
        Ok(())
    }

    /// The forward pass in every lane: `h_l = σ(h_{l−1} W_l + b_l)`, each
    /// layer's outputs into its span of `hs`.
    fn forward_lanes<T: Real>(
        &self,
        theta: Weights<'_, T>,
        rows: usize,
        x: &[T::Pack],
        hs: &mut [T::Pack],
    ) {
        let mut offset = 0;
        for (l, layer) in self.layers().iter().enumerate() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (before, rest) = hs.split_at_mut(offset);
            let h = &mut rest[..rows * o];
            let input = if l == 0 { x } else { &before[offset - rows * i..] };
            let (w, b) = (part(theta, layer.weights.clone()), part(theta, layer.bias.clone()));
            dense_forward_lanes(layer.dense.activation, h, input, w, b, (rows, i, o));
            offset += rows * o;
        }
    }

    /// [`theta_core::Model::loss_grad_lanes`] (MSE only: a network with
    /// softmax cross-entropy is refused); with `prepare`,
    /// [`theta_core::Model::loss_grad_prepare_hvp_lanes`]: the same bits,
    /// and every layer's δh kept in the scratch beside its outputs, for
    /// [`Mlp::hvp_lanes_`]'s prepared R-pass. With `step` (−α),
    /// [`theta_core::Model::gradient_step_lanes`]: `θ − α∇L(θ)` into `grad`
    /// in the stores of the gradient's products, the gradient never stored.
    pub(crate) fn loss_grad_lanes_<T: Real>(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        grad: &mut [T::Pack],
        scratch: &mut [T::Pack],
        prepare: bool,
        step: Option<T>,
    ) -> Result<T::Pack> {
        let LaneSplit { rows, x, y } = split;
        let outputs = [("gradient buffer length", grad.len())];
        // A step from each lane's own θ does not scan it (113 KB a group
        // for the sinusoid): θ_i is the base of the step's φ_i, so a
        // non-finite value stays in φ, which the next pass scans.
        if let (Some(_), Weights::Lanes(_)) = (step, theta) {
            self.check_lane_shapes(theta, split, &outputs, scratch.len())?;
        } else {
            self.check_lanes(theta, split, &outputs, scratch.len())?;
        }
        let (hs_len, delta_len) = self.lane_spans(rows);
        let (hs, rest) = scratch.split_at_mut(hs_len);
        let (dhs, rest) = rest.split_at_mut(hs_len);
        let (delta_a, rest) = rest.split_at_mut(delta_len);
        let delta_b = &mut rest[..delta_len];
        let layers = self.layers();
        self.forward_lanes(theta, rows, x, hs);
        // The loss, and δ of the output layer.
        let d_out = layers[layers.len() - 1].dense.fan_out;
        let mut offset = hs_len;
        let out = &hs[offset - rows * d_out..offset];
        let (mut delta, mut below) = (&mut delta_a[..], &mut delta_b[..]);
        let loss = lanes::mse::<T>(out, y, rows, &mut delta[..rows * d_out]);
        let last = layers.len() - 1;
        lanes::mul_activation_derivative::<T>(
            layers[last].dense.activation,
            out,
            &mut delta[..rows * d_out],
        );
        // Backward: ∂W_l = h_{l−1}ᵀ δz_l, ∂b_l = Σ_n δz_l, δz_{l−1} = δz_l W_lᵀ ⊙ σ'.
        for (l, layer) in layers.iter().enumerate().rev() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            offset -= rows * o;
            let input = if l == 0 { x } else { &hs[offset - rows * i..offset] };
            let dz = &delta[..rows * o];
            let (w_out, b_out) = (layer.weights.clone(), layer.bias.clone());
            if let Some(step) = step {
                let (w, b) = (part(theta, w_out.clone()), part(theta, b_out.clone()));
                lanes::gemm_tn_step::<T, 1>(step, w, &mut grad[w_out], [(input, dz)], rows, i, o);
                lanes::column_sums_step::<T>(dz, step, b, &mut grad[b_out]);
            } else {
                lanes::gemm_tn::<T>(false, &mut grad[w_out], input, dz, rows, i, o);
                lanes::column_sums::<T>(dz, &mut grad[b_out]);
            }
            if l > 0 {
                let w = part(theta, layer.weights.clone());
                let act = layers[l - 1].dense.activation;
                let n = rows * i;
                if prepare {
                    // δh kept before σ' (the R-pass needs it for σ''):
                    // the fused store's product and multiply, apart.
                    let dh = &mut dhs[offset - n..offset];
                    lanes::gemm_nt(false, dh, dz, w, rows, o, i);
                    lanes::tangent_activation::<T>(act, input, dh, &mut below[..n]);
                } else {
                    let below = &mut below[..n];
                    lanes::gemm_nt_times_derivative(act, input, below, dz, w, rows, o, i);
                }
                std::mem::swap(&mut delta, &mut below);
            }
        }
        if lanes_finite::<T>(loss) { Ok(loss) } else { Err(Error::NonFinite("the loss".into())) }
    }

    /// [`theta_core::Model::hvp_lanes`]: Pearlmutter's R-pass in every
    /// lane, the per-task pass's (`theta_kernels::dense`) maths with the
    /// tangent's two products of each layer summed as one:
    ///
    /// ```text
    /// Rz_l = Rh_{l−1} W_l + h_{l−1} V_l + c_l,  Rh_l = σ' ⊙ Rz_l   (Rh_0 = 0)
    /// Rδz_l = Rδh_l ⊙ σ' + δh_l ⊙ σ'' ⊙ Rz_l,   δz_l = δh_l ⊙ σ'
    /// (H v)_{W_l} = h_{l−1}ᵀ Rδz_l + Rh_{l−1}ᵀ δz_l,  (H v)_{b_l} = Σ_n Rδz_l
    /// Rδh_{l−1} = Rδz_l W_lᵀ + δz_l V_lᵀ,  δh_{l−1} = δz_l W_lᵀ
    /// ```
    ///
    /// With `prepared`, [`theta_core::Model::hvp_lanes_prepared`]: the
    /// forward pass and the δh below the output layer are those a
    /// [`Mlp::loss_grad_lanes_`] with `prepare` left in the scratch at this
    /// θ, not computed again (the same bits). With `step` (−α),
    /// [`theta_core::Model::hvp_step_lanes`]: `v − α H v` into `hv`, in the
    /// stores of the product's own sums.
    pub(crate) fn hvp_lanes_<T: Real>(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        v: &[T::Pack],
        hv: &mut [T::Pack],
        scratch: &mut [T::Pack],
        prepared: bool,
        step: Option<T>,
    ) -> Result<T::Pack> {
        let LaneSplit { rows, x, y } = split;
        let outputs = [("direction length", v.len()), ("Hessian-vector buffer length", hv.len())];
        self.check_lanes(theta, split, &outputs, scratch.len())?;
        // A step's v is not scanned (113 KB a group for the sinusoid):
        // v_i is a term of out_i, so a non-finite v stays in `out`.
        if step.is_none() && !all_finite_lanes::<T>(v) {
            return Err(Error::NonFinite("the direction v".into()));
        }
        let (hs_len, delta_len) = self.lane_spans(rows);
        let (hs, rest) = scratch.split_at_mut(hs_len);
        let (dhs, rest) = rest.split_at_mut(hs_len);
        let (rzs, rest) = rest.split_at_mut(hs_len);
        let (rhs, rest) = rest.split_at_mut(hs_len);
        let (delta_a, rest) = rest.split_at_mut(delta_len);
        let (delta_b, rest) = rest.split_at_mut(delta_len);
        let (r_delta_a, rest) = rest.split_at_mut(delta_len);
        let r_delta_b = &mut rest[..delta_len];
        let layers = self.layers();
        if !prepared {
            self.forward_lanes(theta, rows, x, hs);
        }
        // Tangent forward.
        let mut offset = 0;
        for (l, layer) in layers.iter().enumerate() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let n = rows * o;
            let (w, v_w) =
                (part(theta, layer.weights.clone()), Weights::Lanes(&v[layer.weights.clone()]));
            let store = Store::Bias { bias: Weights::Lanes(&v[layer.bias.clone()]), relu: false };
            let (rh_before, rh) = rhs.split_at_mut(offset);
            let rz = &mut rzs[offset..offset + n];
            if l == 0 {
                lanes::gemm(store, rz, x, v_w, rows, i, o);
            } else {
                let input = &hs[offset - rows * i..offset];
                let r_input = &rh_before[offset - rows * i..];
                lanes::gemm_sum(store, rz, [(input, v_w), (r_input, w)], rows, i, o);
            }
            let h = &hs[offset..offset + n];
            lanes::tangent_activation::<T>(layer.dense.activation, h, rz, &mut rh[..n]);
            offset += n;
        }
        // The loss, δh and Rδh of the output layer, through its σ.
        let last = layers.len() - 1;
        let d_out = layers[last].dense.fan_out;
        let out_span = hs_len - rows * d_out..hs_len;
        let (mut delta, mut below) = (&mut delta_a[..], &mut delta_b[..]);
        let (mut r_delta, mut r_below) = (&mut r_delta_a[..], &mut r_delta_b[..]);
        let loss = lanes::mse::<T>(&hs[out_span.clone()], y, rows, &mut delta[..rows * d_out]);
        lanes::mse_hessian_product::<T>(&rhs[out_span.clone()], rows, &mut r_delta[..rows * d_out]);
        lanes::backward_tangent::<T>(
            layers[last].dense.activation,
            &hs[out_span.clone()],
            &rzs[out_span],
            &mut delta[..rows * d_out],
            &mut r_delta[..rows * d_out],
        );
        // Tangent backward.
        for (l, layer) in layers.iter().enumerate().rev() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            offset -= rows * o;
            let (dz, rdz) = (&delta[..rows * o], &r_delta[..rows * o]);
            let (w_span, b_span) = (layer.weights.clone(), layer.bias.clone());
            let (v_w, v_b) =
                (Weights::Lanes(&v[w_span.clone()]), Weights::Lanes(&v[b_span.clone()]));
            let hv_w = &mut hv[w_span];
            match (l, step) {
                (0, None) => lanes::gemm_tn::<T>(false, hv_w, x, rdz, rows, i, o),
                (0, Some(step)) => {
                    lanes::gemm_tn_step::<T, 1>(step, v_w, hv_w, [(x, rdz)], rows, i, o)
                }
                (_, step) => {
                    let below_span = offset - rows * i..offset;
                    let (input, r_input) = (&hs[below_span.clone()], &rhs[below_span]);
                    let terms = [(input, rdz), (r_input, dz)];
                    match step {
                        None => lanes::gemm_tn_sum::<T, 2>(false, hv_w, terms, rows, i, o),
                        Some(step) => {
                            lanes::gemm_tn_step::<T, 2>(step, v_w, hv_w, terms, rows, i, o)
                        }
                    }
                }
            }
            match step {
                None => lanes::column_sums::<T>(rdz, &mut hv[b_span]),
                Some(step) => lanes::column_sums_step::<T>(rdz, step, v_b, &mut hv[b_span]),
            }
            if l > 0 {
                let w = part(theta, layer.weights.clone());
                let v_w = Weights::Lanes(&v[layer.weights.clone()]);
                let n = rows * i;
                let below_span = offset - n..offset;
                lanes::gemm_nt_sum(false, &mut r_below[..n], [(rdz, w), (dz, v_w)], rows, o, i);
                let (act, h, rz) = (
                    layers[l - 1].dense.activation,
                    &hs[below_span.clone()],
                    &rzs[below_span.clone()],
                );
                if prepared {
                    let dh = &dhs[below_span];
                    lanes::backward_tangent_from::<T>(
                        act,
                        h,
                        rz,
                        dh,
                        &mut below[..n],
                        &mut r_below[..n],
                    );
                } else {
                    lanes::gemm_nt(false, &mut below[..n], dz, w, rows, o, i);
                    lanes::backward_tangent::<T>(act, h, rz, &mut below[..n], &mut r_below[..n]);
                }
                std::mem::swap(&mut delta, &mut below);
                std::mem::swap(&mut r_delta, &mut r_below);
            }
        }
        if lanes_finite::<T>(loss) { Ok(loss) } else { Err(Error::NonFinite("the loss".into())) }
    }
}

/// The low-rank layers of [`Mlp::one_step_meta_gradient_lanes_`] on some
/// support rows: Σ of their widths and their count, which size its
/// scratch. Counted without allocating: the pass runs once per group.
#[derive(Clone, Copy)]
struct LowRank {
    width: usize,
    count: usize,
}

impl Mlp {
    /// Whether layer `l` runs MAML's one-step pass in low rank on `rows`
    /// support rows: `φ_W = W + h_sᵀ u_s` (u_s = −α δz_s) is never formed
    /// where a product with it costs more than its two factors,
    /// `rows · (fan_in + fan_out) < fan_in · fan_out` (the sinusoid's
    /// 40 × 40 layer on 10 rows; never a one-wide layer).
    fn low_rank_layer(&self, l: usize, rows: usize) -> bool {
        let d = &self.layers()[l].dense;
        rows * (d.fan_in + d.fan_out) < d.fan_in * d.fan_out
    }

    /// The low-rank layers below layer `l` (all of them for `l` = L).
    fn low_rank_below(&self, l: usize, support_rows: usize) -> LowRank {
        let mut below = LowRank { width: 0, count: 0 };
        for k in (0..l).filter(|&k| self.low_rank_layer(k, support_rows)) {
            below.width += self.layers()[k].dense.fan_out;
            below.count += 1;
        }
        below
    }

    /// Where low-rank layer `l`'s `u_s` (and δz_s) and its Gram matrices
    /// start in their regions of the scratch, per pack; `None` for a
    /// layer that forms its part of φ.
    fn low_rank_at(
        &self,
        l: usize,
        support_rows: usize,
        query_rows: usize,
    ) -> Option<(usize, usize)> {
        if !self.low_rank_layer(l, support_rows) {
            return None;
        }
        let below = self.low_rank_below(l, support_rows);
        Some((below.width * support_rows, below.count * support_rows * query_rows))
    }

    /// [`theta_core::Model::one_step_lane_scratch_len`]: none for softmax
    /// cross-entropy, or when no layer is low-rank on these rows (the
    /// composed lane passes are then the same work).
    pub(crate) fn one_step_lane_scratch_len_<T: Real>(
        &self,
        support_rows: usize,
        query_rows: usize,
    ) -> Option<usize> {
        if self.spec().loss != Loss::Mse || support_rows == 0 || query_rows == 0 {
            return None;
        }
        let low_rank = self.low_rank_below(self.layers().len(), support_rows);
        if low_rank.count == 0 {
            return None;
        }
        let (rs, rq) = (support_rows, query_rows);
        let p = <Mlp as theta_core::Model<T>>::num_params(self);
        let rows = rs.max(rq);
        Some(
            4 * rs * self.total_width           // h_s, δh_s, Rz_s, Rh_s
                + 2 * rq * self.total_width     // h_q, δz_q
                + 2 * rs * low_rank.width       // δz_s, u_s
                + (2 * low_rank.count + 1) * rs * rq // G, D, one scaled D
                + 4 * rows * self.max_width
                + 2 * p,
        )
    }

    /// [`theta_core::Model::one_step_meta_gradient_lanes`]: MAML's
    /// meta-gradient through one inner step from θ (shared), in every
    /// lane, `(I − αH_s(θ)) ∇L_q(φ)` with `φ = θ − α∇L_s(θ)`, into `out`;
    /// returns each lane's query loss.
    ///
    /// A low-rank layer's part of φ, `W + h_sᵀ u_s` with `u_s = −α δz_s`,
    /// is never formed, and so is the query gradient's `V = h_qᵀ δz_q`:
    ///
    /// ```text
    /// h_q φ_W   = h_q W + (h_q h_sᵀ) u_s          query forward (G = h_q h_sᵀ)
    /// δz_q φ_Wᵀ = δz_q Wᵀ − α (δz_q δz_sᵀ) h_s    query backward (D = δz_q δz_sᵀ)
    /// h_s V     = Gᵀ δz_q                          R-pass forward
    /// δz_s Vᵀ   = Dᵀ h_q                           R-pass backward
    /// out_W     = h_qᵀ δz_q + h_sᵀ (−α Rδz_s) + Rh_sᵀ u_s
    /// ```
    ///
    /// so each product with a per-task 40 × 40 matrix becomes one with θ's
    /// (shared, broadcast) and two with 10 × 10 Gram matrices (G and D,
    /// each made once and used twice). The other
    /// layers form their part of φ and of the query gradient as the
    /// composed passes do.
    pub(crate) fn one_step_meta_gradient_lanes_<T: Real>(
        &self,
        theta: &[T],
        alpha: T,
        support: LaneSplit<'_, T>,
        query: LaneSplit<'_, T>,
        out: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Result<T::Pack> {
        let (rs, rq) = (support.rows, query.rows);
        let need = self.one_step_lane_scratch_len_::<T>(rs, rq).ok_or_else(|| {
            Error::InvalidModel("no low-rank layer: no fused one-step lane pass".into())
        })?;
        let shared = Weights::<T>::Shared(theta);
        // The scratch is checked below, against this pass's own length.
        let outputs = [("meta-gradient buffer length", out.len())];
        self.check_lanes(shared, support, &outputs, usize::MAX)?;
        self.check_lanes(shared, query, &[], usize::MAX)?;
        if scratch.len() < need {
            check_len("one-step lane scratch length (at least)", need, scratch.len())?;
        }
        let layers = self.layers();
        let low_rank = self.low_rank_below(layers.len(), rs);
        let (total, widest) = (self.total_width, self.max_width);
        let p = theta.len();
        let rows = rs.max(rq);
        let (hs, rest) = scratch.split_at_mut(rs * total);
        let (dhs, rest) = rest.split_at_mut(rs * total);
        let (rzs, rest) = rest.split_at_mut(rs * total);
        let (rhs, rest) = rest.split_at_mut(rs * total);
        let (hq, rest) = rest.split_at_mut(rq * total);
        let (dzq, rest) = rest.split_at_mut(rq * total);
        let (us, rest) = rest.split_at_mut(rs * low_rank.width);
        let (dzs, rest) = rest.split_at_mut(rs * low_rank.width);
        let (grams, rest) = rest.split_at_mut(low_rank.count * rs * rq);
        let (d_grams, rest) = rest.split_at_mut(low_rank.count * rs * rq);
        let (e, rest) = rest.split_at_mut(rs * rq);
        let (delta_a, rest) = rest.split_at_mut(rows * widest);
        let (delta_b, rest) = rest.split_at_mut(rows * widest);
        let (r_delta_a, rest) = rest.split_at_mut(rows * widest);
        let (r_delta_b, rest) = rest.split_at_mut(rows * widest);
        let (phi, rest) = rest.split_at_mut(p);
        let g = &mut rest[..p];
        let last = layers.len() - 1;
        let neg_alpha = T::Pack::splat(-alpha);
        // Layer l's outputs in a region of `rows` rows per pack.
        let offset = |l: usize| layers[l].act_offset;
        let span =
            |l: usize, rows: usize| offset(l) * rows..(offset(l) + layers[l].dense.fan_out) * rows;
        let lr = |l: usize| self.low_rank_at(l, rs, rq);

        // The support pass at θ: its outputs and δh kept, φ's formed parts
        // (biases, and the layers that are not low-rank), u_s.
        self.forward_lanes(shared, rs, support.x, hs);
        let d_out = layers[last].dense.fan_out;
        let (mut delta, mut below) = (&mut delta_a[..], &mut delta_b[..]);
        let out_s = &hs[span(last, rs)];
        let dh_out = &mut dhs[span(last, rs)];
        let loss_s = lanes::mse::<T>(out_s, support.y, rs, dh_out);
        if !lanes_finite::<T>(loss_s) {
            return Err(Error::NonFinite("the support loss".into()));
        }
        let act = layers[last].dense.activation;
        lanes::tangent_activation::<T>(act, out_s, dh_out, &mut delta[..rs * d_out]);
        for (l, layer) in layers.iter().enumerate().rev() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let input = if l == 0 { support.x } else { &hs[span(l - 1, rs)] };
            let dz = &delta[..rs * o];
            let (w, b) = (layer.weights.clone(), layer.bias.clone());
            let theta_b = Weights::<T>::Shared(&theta[b.clone()]);
            lanes::column_sums_step::<T>(dz, -alpha, theta_b, &mut phi[b]);
            match lr(l) {
                Some((u_at, _)) => {
                    for (u, &d) in us[u_at..u_at + rs * o].iter_mut().zip(dz) {
                        *u = d * neg_alpha;
                    }
                    dzs[u_at..u_at + rs * o].copy_from_slice(dz);
                }
                None => {
                    let theta_w = Weights::<T>::Shared(&theta[w.clone()]);
                    lanes::gemm_tn_step::<T, 1>(
                        -alpha,
                        theta_w,
                        &mut phi[w],
                        [(input, dz)],
                        rs,
                        i,
                        o,
                    )
                }
            }
            if l > 0 {
                let theta_w = Weights::<T>::Shared(&theta[layer.weights.clone()]);
                let dh = &mut dhs[span(l - 1, rs)];
                lanes::gemm_nt(false, dh, dz, theta_w, rs, o, i);
                let act = layers[l - 1].dense.activation;
                lanes::tangent_activation::<T>(act, input, dh, &mut below[..rs * i]);
                std::mem::swap(&mut delta, &mut below);
            }
        }

        // The query pass at φ: its outputs and δz kept, the Gram matrices
        // G = h_q h_sᵀ of the low-rank layers, the query gradient's formed
        // parts.
        for (l, layer) in layers.iter().enumerate() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (before, rest) = hq.split_at_mut(offset(l) * rq);
            let z = &mut rest[..rq * o];
            let input = if l == 0 { query.x } else { &before[offset(l - 1) * rq..] };
            let input_s = if l == 0 { support.x } else { &hs[span(l - 1, rs)] };
            let phi_b = Weights::<T>::Lanes(&phi[layer.bias.clone()]);
            let act = layer.dense.activation;
            match lr(l) {
                Some((u_at, g_at)) => {
                    let gram = &mut grams[g_at..g_at + rq * rs];
                    lanes::gemm_nt(false, gram, input, Weights::<T>::Lanes(input_s), rq, i, rs);
                    let u = Weights::<T>::Lanes(&us[u_at..u_at + rs * o]);
                    lanes::gemm(Store::Replace, z, gram, u, rq, rs, o);
                    let theta_w = Weights::<T>::Shared(&theta[layer.weights.clone()]);
                    lanes::gemm(Store::Accumulate, z, input, theta_w, rq, i, o);
                    lanes::bias_activation(act, z, phi_b, o);
                }
                None => {
                    let phi_w = Weights::<T>::Lanes(&phi[layer.weights.clone()]);
                    dense_forward_lanes(act, z, input, phi_w, phi_b, (rq, i, o));
                }
            }
        }
        let loss_q = {
            let (out_q, dz) = (&hq[span(last, rq)], &mut dzq[span(last, rq)]);
            let loss = lanes::mse::<T>(out_q, query.y, rq, dz);
            lanes::mul_activation_derivative::<T>(layers[last].dense.activation, out_q, dz);
            loss
        };
        if !lanes_finite::<T>(loss_q) {
            return Err(Error::NonFinite("the query loss".into()));
        }
        for (l, layer) in layers.iter().enumerate().rev() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (below_all, rest) = dzq.split_at_mut(offset(l) * rq);
            let dz = &rest[..rq * o];
            let input = if l == 0 { query.x } else { &hq[span(l - 1, rq)] };
            lanes::column_sums::<T>(dz, &mut g[layer.bias.clone()]);
            if lr(l).is_none() {
                lanes::gemm_tn::<T>(false, &mut g[layer.weights.clone()], input, dz, rq, i, o);
            }
            if l > 0 {
                let below = &mut below_all[offset(l - 1) * rq..][..rq * i];
                match lr(l) {
                    Some((u_at, g_at)) => {
                        // D = δz_q δz_sᵀ, kept for the R-pass (δz_s Vᵀ = Dᵀ h_q);
                        // here −α D, so that δz_q φ_Wᵀ = δz_q Wᵀ + (−α D) h_s.
                        let d = &mut d_grams[g_at..g_at + rq * rs];
                        let dz_s = Weights::<T>::Lanes(&dzs[u_at..u_at + rs * o]);
                        lanes::gemm_nt(false, d, dz, dz_s, rq, o, rs);
                        let scaled = &mut e[..rq * rs];
                        for (x, &y) in scaled.iter_mut().zip(d.iter()) {
                            *x = y * neg_alpha;
                        }
                        let d = &*scaled;
                        let theta_w = Weights::<T>::Shared(&theta[layer.weights.clone()]);
                        lanes::gemm_nt(false, below, dz, theta_w, rq, o, i);
                        let h_s = Weights::<T>::Lanes(&hs[span(l - 1, rs)]);
                        lanes::gemm(Store::Accumulate, below, d, h_s, rq, rs, i);
                        lanes::mul_activation_derivative::<T>(
                            layers[l - 1].dense.activation,
                            input,
                            below,
                        );
                    }
                    None => {
                        let phi_w = Weights::<T>::Lanes(&phi[layer.weights.clone()]);
                        let act = layers[l - 1].dense.activation;
                        lanes::gemm_nt_times_derivative(act, input, below, dz, phi_w, rq, o, i);
                    }
                }
            }
        }

        // The R-pass at θ on the support rows, along v = the query gradient.
        for (l, layer) in layers.iter().enumerate() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (rh_before, rh) = rhs.split_at_mut(offset(l) * rs);
            let rz = &mut rzs[span(l, rs)];
            let v_b = Weights::<T>::Lanes(&g[layer.bias.clone()]);
            let theta_w = Weights::<T>::Shared(&theta[layer.weights.clone()]);
            let r_input = if l == 0 { &[][..] } else { &rh_before[offset(l - 1) * rs..] };
            match lr(l) {
                Some((_, g_at)) => {
                    let gram = &grams[g_at..g_at + rq * rs];
                    lanes::gemm_tn::<T>(false, rz, gram, &dzq[span(l, rq)], rq, rs, o);
                    if l > 0 {
                        lanes::gemm(Store::Accumulate, rz, r_input, theta_w, rs, i, o);
                    }
                    lanes::bias_activation(Activation::Identity, rz, v_b, o);
                }
                None => {
                    let store = Store::Bias { bias: v_b, relu: false };
                    let v_w = Weights::<T>::Lanes(&g[layer.weights.clone()]);
                    if l == 0 {
                        lanes::gemm(store, rz, support.x, v_w, rs, i, o);
                    } else {
                        let input = &hs[span(l - 1, rs)];
                        lanes::gemm_sum(store, rz, [(input, v_w), (r_input, theta_w)], rs, i, o);
                    }
                }
            }
            let h = &hs[span(l, rs)];
            lanes::tangent_activation::<T>(layer.dense.activation, h, rz, &mut rh[..rs * o]);
        }
        let (mut delta, mut below) = (&mut delta_a[..], &mut delta_b[..]);
        let (mut r_delta, mut r_below) = (&mut r_delta_a[..], &mut r_delta_b[..]);
        let n_out = rs * d_out;
        lanes::mse_hessian_product::<T>(&rhs[span(last, rs)], rs, &mut r_delta[..n_out]);
        lanes::backward_tangent_from::<T>(
            layers[last].dense.activation,
            &hs[span(last, rs)],
            &rzs[span(last, rs)],
            &dhs[span(last, rs)],
            &mut delta[..n_out],
            &mut r_delta[..n_out],
        );
        for (l, layer) in layers.iter().enumerate().rev() {
            let (i, o) = (layer.dense.fan_in, layer.dense.fan_out);
            let (w_span, b_span) = (layer.weights.clone(), layer.bias.clone());
            let theta_w = Weights::<T>::Shared(&theta[w_span.clone()]);
            let (dz, rdz) = (&delta[..rs * o], &mut r_delta[..rs * o]);
            let g_b = Weights::<T>::Lanes(&g[b_span.clone()]);
            lanes::column_sums_step::<T>(rdz, -alpha, g_b, &mut out[b_span]);
            if l > 0 {
                let n = rs * i;
                let r_below = &mut r_below[..n];
                match lr(l) {
                    Some((_, g_at)) => {
                        let d = &d_grams[g_at..g_at + rq * rs];
                        lanes::gemm_tn::<T>(false, r_below, d, &hq[span(l - 1, rq)], rq, rs, i);
                        lanes::gemm_nt(true, r_below, rdz, theta_w, rs, o, i);
                    }
                    None => {
                        let v_w = Weights::<T>::Lanes(&g[w_span.clone()]);
                        lanes::gemm_nt_sum(false, r_below, [(&*rdz, theta_w), (dz, v_w)], rs, o, i);
                    }
                }
                lanes::backward_tangent_from::<T>(
                    layers[l - 1].dense.activation,
                    &hs[span(l - 1, rs)],
                    &rzs[span(l - 1, rs)],
                    &dhs[span(l - 1, rs)],
                    &mut below[..n],
                    r_below,
                );
            }
            let input = if l == 0 { support.x } else { &hs[span(l - 1, rs)] };
            let out_w = &mut out[w_span.clone()];
            match lr(l) {
                Some((u_at, _)) => {
                    let input_q = if l == 0 { query.x } else { &hq[span(l - 1, rq)] };
                    lanes::gemm_tn::<T>(false, out_w, input_q, &dzq[span(l, rq)], rq, i, o);
                    for r in rdz.iter_mut() {
                        *r = *r * neg_alpha;
                    }
                    let u = &us[u_at..u_at + rs * o];
                    if l == 0 {
                        lanes::gemm_tn::<T>(true, out_w, input, rdz, rs, i, o);
                    } else {
                        let r_input = &rhs[span(l - 1, rs)];
                        lanes::gemm_tn_sum::<T, 2>(
                            true,
                            out_w,
                            [(input, rdz), (r_input, u)],
                            rs,
                            i,
                            o,
                        );
                    }
                }
                None => {
                    let v_w = Weights::<T>::Lanes(&g[w_span]);
                    if l == 0 {
                        lanes::gemm_tn_step::<T, 1>(-alpha, v_w, out_w, [(input, rdz)], rs, i, o);
                    } else {
                        let r_input = &rhs[span(l - 1, rs)];
                        let terms = [(input, &*rdz), (r_input, dz)];
                        lanes::gemm_tn_step::<T, 2>(-alpha, v_w, out_w, terms, rs, i, o);
                    }
                }
            }
            if l > 0 {
                std::mem::swap(&mut delta, &mut below);
                std::mem::swap(&mut r_delta, &mut r_below);
            }
        }
        // The meta-gradient is not scanned here (113 KB for the sinusoid's
        // group): MAML checks the group's sum, in which a lane's NaN or
        // infinity stays one.
        Ok(loss_q)
    }
}
