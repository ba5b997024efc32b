//! The model contract: what every model gives the algorithms.
//!
//! A model maps a flat parameter vector θ and a split to a loss, and gives
//! its exact derivatives. Algorithms see nothing else of it, so any model
//! that implements [`Model`] runs under every algorithm.
//!
//! # Parameter layout
//! θ is one flat slice. For a multi-layer perceptron it is, layer by layer for
//! l = 1..L, the weights `W_l` (`d_{l−1} × d_l`, row-major: `W_l[i][j]` joins
//! input unit i to output unit j), then the bias `b_l` (`d_l` values): the
//! layout of the `theta-reference-case/1` format, so parameters can be
//! exchanged with JAX or PyTorch code. Gradients and directions share it.
//!
//! # Scratch
//! The passes allocate nothing. Each needs a scratch slice of at least
//! [`Model::scratch_len`] values for its [`Pass`] and number of rows; the
//! caller owns it and reuses it (a [`Scratch`] does the sizing).

use crate::data::{Matrix, Split};
use crate::error::Result;
use theta_kernels::lanes::Weights;
use theta_kernels::{Loss, Real};

/// Which computation a scratch buffer is sized for. Each pass needs at most
/// as much as the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// Outputs only.
    Predict,
    /// The loss.
    Loss,
    /// The loss and its gradient.
    Gradient,
    /// The loss, the gradient and a Hessian-vector product.
    HessianVector,
    /// The loss and a Gauss-Newton-vector product.
    GaussNewton,
}

/// One split of a group of tasks side by side, as the lane passes read
/// it: `rows` points of every task, inputs `x` (`rows × d_0` packs) and
/// targets `y` (`rows × d_L` packs), task t in lane t of every pack
/// ("lane-major", [`theta_kernels::lanes`]); a lane without a task holds
/// zeros.
#[derive(Clone, Copy)]
pub struct LaneSplit<'a, T: Real> {
    /// Points per task.
    pub rows: usize,
    /// Inputs, lane-major.
    pub x: &'a [T::Pack],
    /// Targets, lane-major.
    pub y: &'a [T::Pack],
}

/// A differentiable model with a loss: everything an algorithm needs.
///
/// Every method validates its arguments (θ's length, the split's widths and
/// target kind, labels, buffer lengths) and returns an error instead of
/// panicking; a loss that comes out non-finite is an error too.
pub trait Model<T: Real>: Send + Sync {
    /// Number of parameters P (the length of θ).
    fn num_params(&self) -> usize;
    /// Input width `d_0`.
    fn input_dim(&self) -> usize;
    /// Output width `d_L` (the number of classes for classification).
    fn output_dim(&self) -> usize;
    /// The loss the model is trained with.
    fn loss_kind(&self) -> Loss;
    /// Scratch values a pass over `rows` points needs.
    fn scratch_len(&self, pass: Pass, rows: usize) -> usize;
    /// Floating-point operations of a pass over `rows` points (for throughput).
    fn flops(&self, pass: Pass, rows: usize) -> usize;

    /// Writes the outputs `h_L` for inputs `x` into `out` (`rows × d_L`).
    fn predict(&self, theta: &[T], x: &Matrix<T>, out: &mut [T], scratch: &mut [T]) -> Result<()>;

    /// The loss `L(θ)` on a split.
    fn loss(&self, theta: &[T], split: &Split<T>, scratch: &mut [T]) -> Result<T>;

    /// The loss and its gradient `∇L(θ)`, written into `grad`.
    fn loss_grad(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<T>;

    /// The loss, its gradient, and the exact Hessian-vector product `H(θ) v`
    /// (Pearlmutter's R-operator), in one fused pass.
    fn loss_grad_hvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        grad: &mut [T],
        hvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<T>;

    /// The loss and the Gauss-Newton-vector product `G(θ) v = Jᵀ H_out J v`,
    /// J the Jacobian of the outputs and `H_out` the loss's Hessian with
    /// respect to them. G is positive semi-definite where H may not be.
    fn loss_gnvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        gnvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<T>;

    /// The loss and its gradient, as [`Model::loss_grad`], in a `scratch`
    /// sized for [`Pass::HessianVector`], which it leaves prepared for
    /// [`Model::hvp_prepared`] at the same θ and split (MAML's inner loop
    /// computes this gradient, its reverse pass then needs `H(θ) v` there).
    /// The default prepares nothing.
    fn loss_grad_prepare_hvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        self.loss_grad(theta, split, grad, scratch)
    }

    /// The loss and its gradient, as [`Model::loss_grad`] (the same bits), in
    /// a `scratch` sized for [`Pass::GaussNewton`], which it leaves prepared
    /// for [`Model::gnvp_prepared`] at the same θ and split, as
    /// [`Model::prepare_gnvp`] would (a proximal Gauss-Newton step computes
    /// this gradient, then solves with `G(θ)` there). The default runs the
    /// two.
    fn loss_grad_prepare_gnvp(
        &self,
        theta: &[T],
        split: &Split<T>,
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<T> {
        let loss = self.loss_grad(theta, split, grad, scratch)?;
        self.prepare_gnvp(theta, split, scratch)?;
        Ok(loss)
    }

    /// Prepares Hessian-vector products at one θ on one split without a
    /// gradient (MAML's reverse pass at its earlier points, conjugate gradient
    /// on the Hessian): checks θ and the split and runs into `scratch` (sized
    /// for [`Pass::HessianVector`]) what every product at θ shares (for an
    /// MLP, the forward pass and the backward pass's δ chain). The default
    /// prepares nothing (its products check everything themselves).
    fn prepare_hvp(&self, theta: &[T], split: &Split<T>, scratch: &mut [T]) -> Result<()> {
        let _ = (theta, split, scratch);
        Ok(())
    }

    /// `H(θ) v` at the θ and split of the last [`Model::prepare_hvp`] or
    /// [`Model::loss_grad_prepare_hvp`] on this `scratch`, which must not have
    /// been used for anything else since: the same bits as
    /// [`Model::loss_grad_hvp`]'s product, without its forward pass and
    /// gradient. `work` is P values of work space; the default runs
    /// `loss_grad_hvp` with the gradient written there.
    fn hvp_prepared(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        work: &mut [T],
        hvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.loss_grad_hvp(theta, split, v, work, hvp, scratch).map(|_| ())
    }

    /// Prepares several Gauss-Newton-vector products at one θ on one split
    /// (conjugate gradient asks for one per iteration): checks θ and the
    /// split and runs into `scratch` the part of [`Model::loss_gnvp`] that
    /// does not depend on v (the forward pass). The default prepares nothing
    /// (its products check everything themselves).
    fn prepare_gnvp(&self, theta: &[T], split: &Split<T>, scratch: &mut [T]) -> Result<()> {
        let _ = (theta, split, scratch);
        Ok(())
    }

    /// `G(θ) v` at the θ and split of the last [`Model::prepare_gnvp`] on this
    /// `scratch`, which must not have been used for anything else since: the
    /// same bits as [`Model::loss_gnvp`], without repeating the forward pass.
    /// The default runs `loss_gnvp`.
    fn gnvp_prepared(
        &self,
        theta: &[T],
        split: &Split<T>,
        v: &[T],
        gnvp: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.loss_gnvp(theta, split, v, gnvp, scratch).map(|_| ())
    }

    /// MAML's meta-gradient through one inner step, as one fused pass, for
    /// a model that has one that pays on these splits: with
    /// `φ = θ − α∇L_s(θ)` (α = `alpha`, `L_s` the `support` loss), writes
    /// `g = ∇_θ L_q(φ) = (I − αH_s(θ)) ∇L_q(φ)` (`L_q` the `query` loss,
    /// `H_s` the Hessian of `L_s`) and returns `Some(L_q(φ))`, or the
    /// error of what was wrong. `φ` itself need not be formed. The same
    /// numbers as the composed passes up to rounding, not the same bits.
    ///
    /// `None` (the default): no such pass; MAML composes the meta-gradient
    /// from [`Model::loss_grad_prepare_hvp`], [`Model::loss_grad`] and
    /// [`Model::hvp_prepared`].
    fn one_step_meta_gradient(
        &self,
        theta: &[T],
        support: &Split<T>,
        query: &Split<T>,
        alpha: T,
        g: &mut [T],
        scratch: &mut Scratch<T>,
    ) -> Option<Result<T>> {
        let _ = (theta, support, query, alpha, g, scratch);
        None
    }

    /// Packs of scratch that the lane passes ([`Model::loss_grad_lanes`],
    /// [`Model::hvp_lanes`]) need for tasks of `rows` points; `None` (the
    /// default) when this model has no lane pass for its loss, and its tasks
    /// run one by one.
    fn lane_scratch_len(&self, rows: usize) -> Option<usize> {
        let _ = rows;
        None
    }

    /// The loss and its gradient for as many tasks as a pack has lanes
    /// ([`theta_kernels::Pack::LANES`]: 16 in f32, 8 in f64), task t in lane
    /// t of every pack ([`LaneSplit`]), the gradient into `grad` (P packs);
    /// `theta` is θ shared by every task or each task's own parameters.
    /// Returns each task's loss in its lane. Each lane's numbers are those of
    /// [`Model::loss_grad`] on its task up to rounding, and never depend on
    /// the other lanes. `scratch` holds at least
    /// [`Model::lane_scratch_len`] packs.
    ///
    /// `None` (the default) when the model has no lane pass; an error for
    /// wrong lengths, non-finite parameters, or a loss that is not finite
    /// in some lane (which task's it was, the per-task passes say).
    fn loss_grad_lanes(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        grad: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        let _ = (theta, split, grad, scratch);
        None
    }

    /// The loss and its gradient in every lane, as
    /// [`Model::loss_grad_lanes`], leaving `scratch` prepared for
    /// [`Model::hvp_lanes_prepared`] at the same θ and tasks (MAML's last
    /// inner step computes this gradient; its reverse pass then needs
    /// `H v` there). The default prepares nothing.
    fn loss_grad_prepare_hvp_lanes(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        grad: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        self.loss_grad_lanes(theta, split, grad, scratch)
    }

    /// `H(θ) v` in every lane, as [`Model::hvp_lanes`], at the θ and tasks
    /// of the last [`Model::loss_grad_prepare_hvp_lanes`] on this
    /// `scratch`, which must not have been used for anything else since:
    /// the same bits, without the forward pass and the gradient's δ chain.
    /// The default runs [`Model::hvp_lanes`].
    fn hvp_lanes_prepared(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        v: &[T::Pack],
        hv: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<()>> {
        self.hvp_lanes(theta, split, v, hv, scratch).map(|r| r.map(|_| ()))
    }

    /// One gradient-descent step in every lane: `φ = θ − α ∇L(θ)` into `phi`
    /// (P packs), θ shared or each lane's own point (never `phi` itself),
    /// as [`Model::loss_grad_lanes`] followed by `φ_i = (−α) g_i + θ_i` in
    /// one multiply-add (the bits of that pair), so that the inner loop
    /// need not store each gradient and read it again (for a group, each
    /// is P packs: 113 KB for the sinusoid network). With `prepare`, the
    /// scratch is left as [`Model::loss_grad_prepare_hvp_lanes`] leaves
    /// it, for `H(θ) v`. Returns each lane's loss. The default composes
    /// the two. An implementation need not scan θ for non-finite values
    /// when it is each lane's own: `θ_i` is the base of `phi_i`, so one
    /// stays in `phi`, which the caller checks (`LaneGroup`'s query pass
    /// scans the last φ).
    fn gradient_step_lanes(
        &self,
        theta: Weights<'_, T>,
        alpha: T,
        split: LaneSplit<'_, T>,
        phi: &mut [T::Pack],
        scratch: &mut [T::Pack],
        prepare: bool,
    ) -> Option<Result<T::Pack>> {
        let loss = if prepare {
            self.loss_grad_prepare_hvp_lanes(theta, split, phi, scratch)
        } else {
            self.loss_grad_lanes(theta, split, phi, scratch)
        };
        if let Some(Ok(_)) = loss {
            theta_kernels::lanes::step_from(-alpha, theta, phi);
        }
        loss
    }

    /// MAML's reverse step in every lane: `v − α H(θ) v` into `out`, each
    /// lane's own direction v, as [`Model::hvp_lanes`] (or, `prepared`,
    /// [`Model::hvp_lanes_prepared`] on its prepared scratch) followed by
    /// `(−α) (H v)_i + v_i` in one multiply-add: the bits of that pair,
    /// without storing `H v` to read it back. The default composes the two.
    /// An implementation need not scan v for non-finite values: `v_i` is a
    /// term of `out_i`, so one stays in `out`, which the caller checks
    /// (MAML checks each group's sum).
    fn hvp_step_lanes(
        &self,
        theta: Weights<'_, T>,
        alpha: T,
        split: LaneSplit<'_, T>,
        v: &[T::Pack],
        out: &mut [T::Pack],
        scratch: &mut [T::Pack],
        prepared: bool,
    ) -> Option<Result<()>> {
        let product = if prepared {
            self.hvp_lanes_prepared(theta, split, v, out, scratch)
        } else {
            self.hvp_lanes(theta, split, v, out, scratch).map(|r| r.map(|_| ()))
        };
        if let Some(Ok(())) = product {
            theta_kernels::lanes::step_from(-alpha, Weights::Lanes(v), out);
        }
        product
    }

    /// Packs of scratch that [`Model::one_step_meta_gradient_lanes`] needs
    /// for tasks of `support_rows` and `query_rows` points; `None` (the
    /// default) when the model has no such pass for them, and MAML composes
    /// the lane passes.
    fn one_step_lane_scratch_len(&self, support_rows: usize, query_rows: usize) -> Option<usize> {
        let _ = (support_rows, query_rows);
        None
    }

    /// MAML's meta-gradient through one inner step in every lane, as one
    /// pass: with `φ = θ − α∇L_s(θ)` (θ shared by the lanes, α = `alpha`),
    /// `(I − αH_s(θ)) ∇L_q(φ)` into `out` (P packs), each lane's task's
    /// `support` and `query` laid out as [`Model::loss_grad_lanes`]'s;
    /// returns each lane's query loss `L_q(φ)`. The numbers of the composed
    /// lane passes ([`Model::gradient_step_lanes`], [`Model::loss_grad_lanes`],
    /// [`Model::hvp_step_lanes`]) up to rounding; a model offers it where it
    /// need not form all of φ (see `Mlp`). `scratch` holds at least
    /// [`Model::one_step_lane_scratch_len`] packs.
    ///
    /// `None` (the default) when the model has no such pass; an error for
    /// wrong lengths, non-finite θ, or a loss that is not finite in some
    /// lane. The meta-gradient itself is not checked: a caller sums the
    /// lanes ([`theta_kernels::Pack::tree_sums`]) and checks the sum, which
    /// a lane's NaN or infinity makes non-finite.
    #[allow(clippy::too_many_arguments)]
    fn one_step_meta_gradient_lanes(
        &self,
        theta: &[T],
        alpha: T,
        support: LaneSplit<'_, T>,
        query: LaneSplit<'_, T>,
        out: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        let _ = (theta, alpha, support, query, out, scratch);
        None
    }

    /// The Hessian-vector product `H(θ) v` of the loss for as many tasks as
    /// a pack has lanes, laid out as [`Model::loss_grad_lanes`]'s, each task
    /// with its own direction `v` (P packs, lane-major), the products into
    /// `hv` (P packs); returns each task's loss in its lane. Each lane's
    /// numbers are those of [`Model::loss_grad_hvp`] on its task up to
    /// rounding, and never depend on the other lanes. `scratch` holds at
    /// least [`Model::lane_scratch_len`] packs.
    ///
    /// `None` (the default) when the model has no lane pass; an error for
    /// wrong lengths, non-finite parameters or directions, or a loss that
    /// is not finite in some lane.
    fn hvp_lanes(
        &self,
        theta: Weights<'_, T>,
        split: LaneSplit<'_, T>,
        v: &[T::Pack],
        hv: &mut [T::Pack],
        scratch: &mut [T::Pack],
    ) -> Option<Result<T::Pack>> {
        let _ = (theta, split, v, hv, scratch);
        None
    }
}

/// A reusable scratch buffer that grows to the largest pass asked of it.
/// After the first call for the largest pass it never allocates again.
#[derive(Clone, Debug, Default)]
pub struct Scratch<T> {
    buf: Vec<T>,
}

impl<T: Real> Scratch<T> {
    /// An empty buffer.
    pub fn new() -> Self {
        Scratch { buf: Vec::new() }
    }

    /// A buffer already sized for `pass` over `rows` points of `model`.
    pub fn for_model(model: &dyn Model<T>, pass: Pass, rows: usize) -> Self {
        let mut s = Self::new();
        s.get(model, pass, rows);
        s
    }

    /// The scratch slice for `pass` over `rows` points of `model`.
    pub fn get(&mut self, model: &dyn Model<T>, pass: Pass, rows: usize) -> &mut [T] {
        self.slice(model.scratch_len(pass, rows))
    }

    /// The first `n` values, growing the buffer when it is shorter (for a
    /// pass that sizes its scratch itself).
    pub fn slice(&mut self, n: usize) -> &mut [T] {
        if self.buf.len() < n {
            self.buf.resize(n, T::ZERO);
        }
        &mut self.buf[..n]
    }
}
