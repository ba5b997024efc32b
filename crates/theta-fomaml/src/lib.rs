//! First-order MAML: MAML's meta-gradient without its second-order terms.
//!
//! The inner loop is MAML's (m SGD steps of size α on the support loss); the
//! meta-gradient treats φ_m as a constant, `∇_θ L_q(φ_m) ≈ ∇L_q(φ_m)`, which
//! drops every `−α H(φ_k)` factor. As α → 0 it equals MAML's.

#![warn(missing_docs)]

use theta_core::{Model, Pass, Real, Scratch, Split, Task};
use theta_meta::{
    InnerSgd, LaneGroup, MetaError, MetaLearner, TaskOutcome, at_least_one, sum_one_by_one_in,
};

/// First-order MAML's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FomamlConfig {
    /// α, the inner step size.
    pub inner_lr: f64,
    /// m ≥ 1, the inner steps.
    pub inner_steps: usize,
}

impl Default for FomamlConfig {
    /// α = 0.01, one step.
    fn default() -> Self {
        FomamlConfig { inner_lr: 0.01, inner_steps: 1 }
    }
}

/// First-order MAML.
///
/// With a model that has lane passes (`theta_models::Mlp` with MSE),
/// its groups of tasks run side by side, one task per SIMD lane
/// ([`LaneGroup`]); else one by one.
#[derive(Clone, Debug)]
pub struct Fomaml<T: Real> {
    inner: InnerSgd,
    phi: Vec<T>,
    work: Vec<T>,
    group_work: Vec<T>,
    scratch: Scratch<T>,
    lanes: LaneGroup<T>,
}

impl<T: Real> Fomaml<T> {
    /// Validates the configuration (α > 0, m ≥ 1).
    pub fn new(config: FomamlConfig) -> Result<Self, MetaError> {
        at_least_one("inner steps m", config.inner_steps)?;
        Ok(Fomaml {
            inner: InnerSgd::new(config.inner_lr, config.inner_steps)?,
            phi: Vec::new(),
            work: Vec::new(),
            group_work: Vec::new(),
            scratch: Scratch::new(),
            lanes: LaneGroup::new(),
        })
    }

    fn size(&mut self, p: usize) {
        self.phi.resize(p, T::ZERO);
        self.work.resize(p, T::ZERO);
    }
}

impl<T: Real> MetaLearner<T> for Fomaml<T> {
    fn name(&self) -> &'static str {
        "fomaml"
    }

    fn task_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        task: &Task<T>,
        g: &mut [T],
    ) -> Result<TaskOutcome, MetaError> {
        self.size(model.num_params());
        let Fomaml { inner, phi, work, scratch, .. } = self;
        inner.run(model, theta, &task.support, phi, work, scratch, None)?;
        let query = &task.query;
        let lq = model.loss_grad(phi, query, g, scratch.get(model, Pass::Gradient, query.len()))?;
        Ok(TaskOutcome { loss: lq.to_f64(), cg: None })
    }

    fn boxed_clone(&self) -> Box<dyn MetaLearner<T>> {
        Box::new(self.clone())
    }

    fn group_size(&self, model: &dyn Model<T>) -> usize {
        LaneGroup::<T>::size(model)
    }

    /// Side by side when the group loads ([`LaneGroup::load`]): U^m in
    /// every lane, each task's `∇L_q(φ_m)`, their tree sum. A group that
    /// cannot run so, or whose lane pass fails, runs one by one (which
    /// names the task that failed).
    fn group_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        tasks: &[Task<T>],
        sum: &mut [T],
        outcomes: &mut [TaskOutcome],
    ) -> Result<(), MetaError> {
        if self.lanes.load(model, tasks) {
            let lanes = &mut self.lanes;
            let side_by_side = lanes
                .adapt(model, &self.inner, theta)
                .and_then(|()| lanes.query_gradient(model, outcomes));
            if side_by_side.is_ok() {
                lanes.sum_gradients(sum);
                return Ok(());
            }
        }
        sum_one_by_one_in(self, |l| &mut l.group_work, model, theta, tasks, sum, outcomes)
    }

    /// U(θ): the m inner SGD steps.
    fn adapt(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
    ) -> Result<(), MetaError> {
        self.size(model.num_params());
        self.inner.run(model, theta, support, phi, &mut self.work, &mut self.scratch, None)?;
        Ok(())
    }
}
