//! A group of tasks side by side, one per SIMD lane, through a model's lane
//! passes ([`theta_core::Model::loss_grad_lanes`]): the inner loop U^m and
//! the query gradient of up to [`Pack::LANES`] tasks at once, and the sums
//! over the group that a batch mean adds.
//!
//! Why: a meta-batch is many small tasks through one network, and one task
//! at a time a gradient pass spends much of its time on the edges of its
//! small products; side by side, every pack is full
//! ([`theta_kernels::lanes`]).
//!
//! Each lane's numbers never depend on the other lanes, and a group's sum
//! is a fixed tree over its lanes ([`Pack::tree_sums`]): the same group
//! gives the same bits on any thread. They are the per-task computation's
//! numbers up to rounding, not its bits.

use theta_core::{LaneSplit, Model, Real, Split, Targets, Task};
use theta_kernels::Pack;
use theta_kernels::lanes::{self, Weights};

use crate::error::MetaError;
use crate::inner::InnerSgd;
use crate::learner::TaskOutcome;

/// One split of a group's tasks, lane-major: inputs and targets.
#[derive(Clone)]
struct GroupSplit<T: Real> {
    rows: usize,
    x: Vec<T::Pack>,
    y: Vec<T::Pack>,
}

impl<T: Real> GroupSplit<T> {
    fn new() -> Self {
        GroupSplit { rows: 0, x: Vec::new(), y: Vec::new() }
    }

    /// The split as the lane passes read it.
    fn view(&self) -> LaneSplit<'_, T> {
        LaneSplit { rows: self.rows, x: &self.x, y: &self.y }
    }

    /// Lays out split `which` of each task side by side.
    fn load(&mut self, tasks: &[Task<T>], which: fn(&Task<T>) -> &Split<T>) {
        let first = which(&tasks[0]);
        self.rows = first.len();
        let zero = T::Pack::splat(T::ZERO);
        self.x.resize(first.x().as_slice().len(), zero);
        lanes::gather::<T>(&mut self.x, tasks.len(), |t| which(&tasks[t]).x().as_slice());
        if let Targets::Values(y) = first.y() {
            self.y.resize(y.as_slice().len(), zero);
        }
        lanes::gather::<T>(&mut self.y, tasks.len(), |t| match which(&tasks[t]).y() {
            Targets::Values(y) => y.as_slice(),
            Targets::Labels(_) => unreachable!("checked by LaneGroup::load"),
        });
    }
}

/// Up to [`Pack::LANES`] tasks side by side, and the buffers of their lane
/// passes: φ and a gradient for each task, lane-major. Reused from group to
/// group; it allocates only when a larger model or task arrives.
#[derive(Clone)]
pub struct LaneGroup<T: Real> {
    tasks: usize,
    support: GroupSplit<T>,
    query: GroupSplit<T>,
    phi: Vec<T::Pack>,
    grad: Vec<T::Pack>,
    /// φ₁ … φ_{m−1} of every lane, for MAML's reverse pass.
    trajectory: Vec<T::Pack>,
    /// The reverse pass's next g: `g − α H g` goes here, then it and `grad`
    /// are swapped.
    g_next: Vec<T::Pack>,
    scratch: Vec<T::Pack>,
    /// MAML's last inner step's pass, prepared for the first reverse step
    /// while the query pass runs in `scratch`.
    prepared: Vec<T::Pack>,
}

impl<T: Real> std::fmt::Debug for LaneGroup<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneGroup").field("tasks", &self.tasks).finish_non_exhaustive()
    }
}

impl<T: Real> Default for LaneGroup<T> {
    fn default() -> Self {
        LaneGroup {
            tasks: 0,
            support: GroupSplit::new(),
            query: GroupSplit::new(),
            phi: Vec::new(),
            grad: Vec::new(),
            trajectory: Vec::new(),
            g_next: Vec::new(),
            scratch: Vec::new(),
            prepared: Vec::new(),
        }
    }
}

/// The lanes of a pack, as an array (a pack has at most 16).
fn lane_values<T: Real>(p: T::Pack) -> [T; 16] {
    let mut a = [T::ZERO; 16];
    p.store(&mut a[..T::Pack::LANES]);
    a
}

impl<T: Real> LaneGroup<T> {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many tasks a group holds with `model`: a pack's lanes when the
    /// model has lane passes, else 1.
    pub fn size(model: &dyn Model<T>) -> usize {
        if model.lane_scratch_len(1).is_some() { T::Pack::LANES } else { 1 }
    }

    /// Lays out `tasks` (1 ..= [`Pack::LANES`]) side by side. False, and
    /// nothing loaded, when they cannot run so: the model has no lane pass,
    /// or the tasks' splits differ in shape or hold labels; the caller then
    /// runs them one by one.
    pub fn load(&mut self, model: &dyn Model<T>, tasks: &[Task<T>]) -> bool {
        let Some(first) = tasks.first() else { return false };
        let shape = |s: &Split<T>| {
            let values = matches!(s.y(), Targets::Values(_));
            (s.len(), s.x().cols(), s.y().len(), values)
        };
        let same = tasks.iter().all(|t| {
            shape(&t.support) == shape(&first.support) && shape(&t.query) == shape(&first.query)
        });
        let values = shape(&first.support).3 && shape(&first.query).3;
        let rows = first.support.len().max(first.query.len());
        let Some(scratch) = model.lane_scratch_len(rows) else { return false };
        if tasks.len() > T::Pack::LANES || !same || !values {
            return false;
        }
        let zero = T::Pack::splat(T::ZERO);
        let p = model.num_params();
        self.tasks = tasks.len();
        self.support.load(tasks, |t| &t.support);
        self.query.load(tasks, |t| &t.query);
        self.phi.resize(p, zero);
        self.grad.resize(p, zero);
        if self.scratch.len() < scratch {
            self.scratch.resize(scratch, zero);
        }
        true
    }

    /// The tasks loaded.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// U^m in every lane: each task's φ_m from θ by `inner`'s m steps of
    /// size α on its support loss, as [`InnerSgd::run`] (φ₁ = θ − α∇L_s(θ)
    /// read from θ in place).
    pub fn adapt(
        &mut self,
        model: &dyn Model<T>,
        inner: &InnerSgd,
        theta: &[T],
    ) -> Result<(), MetaError> {
        self.adapt_keeping(model, inner, theta, false)
    }

    /// [`LaneGroup::adapt`], keeping φ₁ … φ_{m−1} in `trajectory` when `keep`.
    fn adapt_keeping(
        &mut self,
        model: &dyn Model<T>,
        inner: &InnerSgd,
        theta: &[T],
        keep: bool,
    ) -> Result<(), MetaError> {
        if inner.steps() == 0 {
            for (phi, &t) in self.phi.iter_mut().zip(theta) {
                *phi = T::Pack::splat(t);
            }
        }
        let p = theta.len();
        if keep {
            let len = inner.steps().saturating_sub(1) * p;
            self.trajectory.resize(len, T::Pack::splat(T::ZERO));
        }
        let alpha = T::from_f64(inner.alpha());
        let s = &self.support;
        if keep && self.prepared.len() < self.scratch.len() {
            self.prepared.resize(self.scratch.len(), T::Pack::splat(T::ZERO));
        }
        let steps = inner.steps();
        for k in 0..steps {
            // The reverse pass starts with H at the last step's point.
            let prepare = keep && k + 1 == steps;
            let scratch = if prepare { &mut self.prepared } else { &mut self.scratch };
            // φ_{k+1} = φ_k − α∇L_s(φ_k) in the gradient's stores: kept, into
            // its place in the trajectory (read from there by the next
            // step); else into the other buffer, which then becomes φ.
            let (kept, free) = self.trajectory.split_at_mut(if keep { k * p } else { 0 });
            let at = match (k, keep) {
                (0, _) => Weights::Shared(theta),
                (_, true) => Weights::Lanes(&kept[(k - 1) * p..]),
                (_, false) => Weights::Lanes(&self.phi),
            };
            let next = if keep && k + 1 < steps { &mut free[..p] } else { &mut self.grad[..] };
            model
                .gradient_step_lanes(at, alpha, s.view(), next, scratch, prepare)
                .expect("LaneGroup::load checked that the model has lane passes")?;
            if !keep || k + 1 == steps {
                std::mem::swap(&mut self.phi, &mut self.grad);
            }
        }
        Ok(())
    }

    /// Each task's query loss and gradient at its φ, the gradient kept for
    /// [`LaneGroup::sum_gradients`]; the losses into `outcomes`.
    pub fn query_gradient(
        &mut self,
        model: &dyn Model<T>,
        outcomes: &mut [TaskOutcome],
    ) -> Result<(), MetaError> {
        let q = &self.query;
        let at = Weights::Lanes(&self.phi);
        let pass = model.loss_grad_lanes(at, q.view(), &mut self.grad, &mut self.scratch);
        let loss = pass.expect("LaneGroup::load checked that the model has lane passes")?;
        self.record_losses(loss, outcomes);
        Ok(())
    }

    /// Each task's loss, from its lane, into `outcomes`.
    fn record_losses(&self, loss: T::Pack, outcomes: &mut [TaskOutcome]) {
        let losses = lane_values::<T>(loss);
        for (o, l) in outcomes.iter_mut().zip(&losses[..self.tasks]) {
            *o = TaskOutcome { loss: l.to_f64(), cg: None };
        }
    }

    /// MAML's exact meta-gradient in every lane, as the per-task MAML:
    /// U^m keeping φ₁ … φ_{m−1}, `g = ∇L_q(φ_m)`, then back through the
    /// inner steps, `g ← g − α H_s(φ_k) g` for k = m−1 … 0 (φ₀ = θ, shared
    /// by the lanes), each `H_s(φ_k) g` the model's lane R-pass
    /// ([`Model::hvp_lanes`]; at k = m−1 prepared by the last inner step's
    /// gradient pass, [`Model::hvp_lanes_prepared`]). The query losses go
    /// into `outcomes`; the meta-gradients stay for
    /// [`LaneGroup::sum_gradients`]. With one inner step, the model's fused
    /// pass ([`Model::one_step_meta_gradient_lanes`]) where it offers one
    /// for these rows: the same numbers up to rounding, which does not
    /// scan its lanes' meta-gradients (check the group's sum). An error for a model with a lane
    /// gradient pass but none for `H v`, as for a failed pass: the caller
    /// runs the group one by one.
    pub fn meta_gradient(
        &mut self,
        model: &dyn Model<T>,
        inner: &InnerSgd,
        theta: &[T],
        outcomes: &mut [TaskOutcome],
    ) -> Result<(), MetaError> {
        if inner.steps() == 1 {
            let (rs, rq) = (self.support.rows, self.query.rows);
            if let Some(len) = model.one_step_lane_scratch_len(rs, rq) {
                // The model's fused pass: `prepared` is its scratch.
                if self.prepared.len() < len {
                    self.prepared.resize(len, T::Pack::splat(T::ZERO));
                }
                let alpha = T::from_f64(inner.alpha());
                let (s, q) = (self.support.view(), self.query.view());
                let pass = model.one_step_meta_gradient_lanes(
                    theta,
                    alpha,
                    s,
                    q,
                    &mut self.grad,
                    &mut self.prepared,
                );
                let loss = pass.expect("the model offered the pass")?;
                self.record_losses(loss, outcomes);
                return Ok(());
            }
        }
        self.adapt_keeping(model, inner, theta, true)?;
        self.query_gradient(model, outcomes)?;
        let p = theta.len();
        self.g_next.resize(p, T::Pack::splat(T::ZERO));
        let alpha = T::from_f64(inner.alpha());
        let split = &self.support;
        for k in (0..inner.steps()).rev() {
            let at = if k == 0 {
                Weights::Shared(theta)
            } else {
                Weights::Lanes(&self.trajectory[(k - 1) * p..k * p])
            };
            let (support, g) = (split.view(), &self.grad);
            // g − α H g into the other buffer, which then becomes g.
            let prepared = k + 1 == inner.steps();
            let scratch = if prepared { &mut self.prepared } else { &mut self.scratch };
            model
                .hvp_step_lanes(at, alpha, support, g, &mut self.g_next, scratch, prepared)
                .unwrap_or_else(|| {
                    Err(theta_core::Error::InvalidModel(
                        "a lane gradient pass but no lane Hessian-vector pass".into(),
                    ))
                })?;
            std::mem::swap(&mut self.grad, &mut self.g_next);
        }
        Ok(())
    }

    /// The sum over the group's tasks of their last gradients, into `sum`.
    pub fn sum_gradients(&self, sum: &mut [T]) {
        T::Pack::tree_sums(&self.grad, self.tasks, sum);
    }

    /// The sum over the group's tasks of `θ − φ` (Reptile's direction), into
    /// `sum`. Overwrites the gradients.
    pub fn sum_theta_minus_phi(&mut self, theta: &[T], sum: &mut [T]) {
        for ((d, &phi), &t) in self.grad.iter_mut().zip(&self.phi).zip(theta) {
            *d = T::Pack::splat(t) - phi;
        }
        T::Pack::tree_sums(&self.grad, self.tasks, sum);
    }
}
