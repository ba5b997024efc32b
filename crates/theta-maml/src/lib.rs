//! MAML (Finn, Abbeel & Levine, 2017) with the exact meta-gradient.
//!
//! For each task τ, the inner loop takes m SGD steps from θ on the support
//! loss, φ_{k+1} = φ_k − α∇L_s(φ_k), and the meta-loss is the query loss
//! `L_q(φ_m)`. Its gradient with respect to θ runs back through every inner
//! step, each contributing the Jacobian `I − α H(φ_k)` (H the Hessian of L_s):
//!
//! ```text
//! g ← ∇L_q(φ_m);   for k = m−1 … 0:  g ← g − α H(φ_k) g;   ∇_θ L_q(φ_m) = g
//! ```
//!
//! Each `H(φ_k) g` is an exact Hessian-vector product (Pearlmutter), so the
//! meta-gradient is exact, second order, and costs O(m·P) memory — the
//! points φ₁ … φ_{m−1} besides θ = φ₀ — and no computation graph.
//!
//! With one inner step, a model may compute all of this as one pass
//! ([`Model::one_step_meta_gradient`]): theta's MLPs, plain and
//! batch-normalised, never form the first layer's part of φ₁ when its input
//! is wide against the support rows (the same gradient, rounded
//! differently; on Omniglot's 784 pixels and 5 support images the
//! meta-gradient is 1.3× as fast for the plain network, 1.5× for the
//! batch-normalised one of the paper). MAML takes it for a task it runs
//! alone whenever the model offers it.
//!
//! On a model with lane passes (an MLP with MSE: the regression tasks),
//! a batch's tasks run in groups side by side instead, one per SIMD lane
//! ([`LaneGroup::meta_gradient`]): the same reverse pass, each `H(φ_k) g`
//! the model's lane R-pass, the same numbers up to rounding. On the
//! sinusoid network that is 1.2× the fused pass task by task (one inner
//! step; also 1.2× with five, against the composed passes). With one
//! inner step, a group takes the model's fused lane pass where it has one
//! ([`Model::one_step_meta_gradient_lanes`]: the MLP never forms the
//! 40 × 40 layer's part of φ; 1.10–1.11× the composed lane passes), and
//! a group whose sum is not finite runs again one by one, which names the
//! task.

#![warn(missing_docs)]

use theta_core::vector::axpy;
use theta_core::{Model, Pass, Real, Scratch, Split, Task};
use theta_meta::{
    InnerSgd, LaneGroup, MetaError, MetaLearner, TaskOutcome, at_least_one, sum_one_by_one_in,
};

/// MAML's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MamlConfig {
    /// α, the inner step size.
    pub inner_lr: f64,
    /// m ≥ 1, the inner steps.
    pub inner_steps: usize,
}

impl Default for MamlConfig {
    /// The MAML paper's sinusoid setting: α = 0.01, one step.
    fn default() -> Self {
        MamlConfig { inner_lr: 0.01, inner_steps: 1 }
    }
}

/// MAML with the exact second-order meta-gradient.
#[derive(Clone, Debug)]
pub struct Maml<T: Real> {
    inner: InnerSgd,
    trajectory: Vec<T>,
    phi: Vec<T>,
    work: Vec<T>,
    hv: Vec<T>,
    scratch: Scratch<T>,
    /// Holds the support pass at φ_{m−1} from the inner loop to the reverse
    /// pass's first product.
    prepared: Scratch<T>,
    /// A group of tasks side by side.
    lanes: LaneGroup<T>,
    /// A task's meta-gradient when a group runs one by one.
    group_work: Vec<T>,
}

impl<T: Real> Maml<T> {
    /// Validates the configuration (α > 0, m ≥ 1).
    pub fn new(config: MamlConfig) -> Result<Self, MetaError> {
        at_least_one("inner steps m", config.inner_steps)?;
        Ok(Maml {
            inner: InnerSgd::new(config.inner_lr, config.inner_steps)?,
            trajectory: Vec::new(),
            phi: Vec::new(),
            work: Vec::new(),
            hv: Vec::new(),
            scratch: Scratch::new(),
            prepared: Scratch::new(),
            lanes: LaneGroup::new(),
            group_work: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> MamlConfig {
        MamlConfig { inner_lr: self.inner.alpha(), inner_steps: self.inner.steps() }
    }

    fn size(&mut self, p: usize) {
        // φ₁ … φ_{m−1}; φ₀ is θ itself.
        self.trajectory.resize((self.inner.steps() - 1) * p, T::ZERO);
        for buf in [&mut self.phi, &mut self.work, &mut self.hv] {
            buf.resize(p, T::ZERO);
        }
    }
}

impl<T: Real> MetaLearner<T> for Maml<T> {
    fn name(&self) -> &'static str {
        "maml"
    }

    fn task_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        task: &Task<T>,
        g: &mut [T],
    ) -> Result<TaskOutcome, MetaError> {
        let support = &task.support;
        if self.inner.steps() == 1 {
            // The model's fused pass, when it has one for these splits (it
            // needs none of the buffers below).
            let alpha = T::from_f64(self.inner.alpha());
            let (query, s) = (&task.query, &mut self.scratch);
            if let Some(lq) = model.one_step_meta_gradient(theta, support, query, alpha, g, s) {
                return Ok(TaskOutcome { loss: lq?.to_f64(), cg: None });
            }
        }
        let p = model.num_params();
        self.size(p);
        let Maml { inner, trajectory, phi, work, hv, scratch, prepared, .. } = self;
        let (m, neg_alpha) = (inner.steps(), T::from_f64(-inner.alpha()));
        inner.run_preparing_hvp(model, theta, support, phi, work, scratch, trajectory, prepared)?;
        let query = &task.query;
        let lq = model.loss_grad(phi, query, g, scratch.get(model, Pass::Gradient, query.len()))?;
        // Back through the inner steps: g ← (I − αH(φ_k)) g. The inner loop
        // left its pass at φ_{m−1} in `prepared`; the earlier points rerun
        // their forward pass (and no gradient).
        let s = prepared.get(model, Pass::HessianVector, support.len());
        for k in (0..m).rev() {
            let phi_k = if k == 0 { theta } else { &trajectory[(k - 1) * p..k * p] };
            if k + 1 < m {
                model.prepare_hvp(phi_k, support, s)?;
            }
            model.hvp_prepared(phi_k, support, g, work, hv, s)?;
            axpy(neg_alpha, hv, g);
        }
        Ok(TaskOutcome { loss: lq.to_f64(), cg: None })
    }

    fn group_size(&self, model: &dyn Model<T>) -> usize {
        LaneGroup::<T>::size(model)
    }

    /// Side by side when the group loads ([`LaneGroup::load`]): each task's
    /// meta-gradient in its lane ([`LaneGroup::meta_gradient`]), their tree
    /// sum. A group that cannot run so, or whose lane pass fails, runs one
    /// by one (which names the task that failed).
    fn group_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        tasks: &[Task<T>],
        sum: &mut [T],
        outcomes: &mut [TaskOutcome],
    ) -> Result<(), MetaError> {
        if self.lanes.load(model, tasks)
            && self.lanes.meta_gradient(model, &self.inner, theta, outcomes).is_ok()
        {
            self.lanes.sum_gradients(sum);
            // A lane whose meta-gradient diverged makes the sum non-finite
            // (the fused one-step pass does not scan its lanes): one by
            // one, the task is named.
            if theta_core::vector::all_finite(sum) {
                return Ok(());
            }
        }
        sum_one_by_one_in(self, |l| &mut l.group_work, model, theta, tasks, sum, outcomes)
    }

    fn boxed_clone(&self) -> Box<dyn MetaLearner<T>> {
        Box::new(self.clone())
    }

    /// U(θ): the m inner SGD steps MAML trained through.
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
