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

    /// The checks every lane pass makes: rows, the loss, the lengths of
    /// θ, x, y, the parameter-sized `outputs` (named) and the scratch, and
    /// θ finite.
    fn check_lanes<T: Real>(
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
        let finite = match theta {
            Weights::Shared(t) => theta_kernels::vector::all_finite(t),
            Weights::Lanes(t) => all_finite_lanes::<T>(t),
        };
        if !finite {
            return Err(Error::NonFinite("θ".into()));
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
            match layer.dense.activation {
                act @ (Activation::Identity | Activation::Relu) => {
                    let store = Store::Bias { bias: b, relu: act == Activation::Relu };
                    lanes::gemm(store, h, input, w, rows, i, o);
                }
                act => {
                    lanes::gemm(Store::Replace, h, input, w, rows, i, o);
                    lanes::bias_activation(act, h, b, o);
                }
            }
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
        self.check_lanes(theta, split, &[("gradient buffer length", grad.len())], scratch.len())?;
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
                    lanes::gemm_nt(false, &mut below[..n], dz, w, rows, o, i);
                    dhs[offset - n..offset].copy_from_slice(&below[..n]);
                    lanes::mul_activation_derivative::<T>(act, input, &mut below[..n]);
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
        if !all_finite_lanes::<T>(v) {
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
                if prepared {
                    below[..n].copy_from_slice(&dhs[below_span.clone()]);
                } else {
                    lanes::gemm_nt(false, &mut below[..n], dz, w, rows, o, i);
                }
                lanes::gemm_nt_sum(false, &mut r_below[..n], [(rdz, w), (dz, v_w)], rows, o, i);
                lanes::backward_tangent::<T>(
                    layers[l - 1].dense.activation,
                    &hs[below_span.clone()],
                    &rzs[below_span],
                    &mut below[..n],
                    &mut r_below[..n],
                );
                std::mem::swap(&mut delta, &mut below);
                std::mem::swap(&mut r_delta, &mut r_below);
            }
        }
        if lanes_finite::<T>(loss) { Ok(loss) } else { Err(Error::NonFinite("the loss".into())) }
    }
}
