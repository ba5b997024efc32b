//! Reptile (Nichol, Achiam & Schulman, 2018).
//!
//! For each task, k inner steps from θ on the support loss give φ = U(θ);
//! the update moves θ towards the adapted parameters, `θ ← θ + β·mean(φ − θ)`.
//! There is no meta-gradient: [`MetaLearner::meta_gradient`] returns the
//! pseudo-gradient `θ − mean φ`, so that an outer SGD step of size β is
//! exactly Reptile's interpolation (and an outer Adam step is the Adam
//! variant of the Reptile paper).
//!
//! The inner steps are SGD (the reference semantics) or, as an option, Adam
//! with fresh moments for each task, as in the Reptile paper's experiments.
//!
//! **Batched and serial.** With a meta-batch of n tasks, the direction is the
//! mean over n; the article's serial Reptile (seed 004: sample one task,
//! adapt, interpolate) is the same learner with a meta-batch of one.
//!
//! **Why k = 1 is joint training.** With one SGD step,
//! `φ − θ = −α∇L_s(θ)`, so `θ + β(φ − θ) = θ − αβ∇L_s(θ)`: plain gradient
//! descent on the tasks' joint loss with step αβ — the pretrained baseline
//! the article shows failing. Only k > 1 brings in terms that reward fast
//! adaptation (the gradient at φ₁ depends on the curvature at θ), which is
//! why the Reptile paper asks for k > 1. `tests/` checks the identity.

#![warn(missing_docs)]

use theta_core::vector::axpy;
use theta_core::{Model, Pass, Real, Scratch, Split, Task};
use theta_meta::{
    InnerSgd, LaneGroup, MetaError, MetaLearner, TaskOutcome, at_least_one, sum_one_by_one_in,
};
use theta_optim::{Adam, AdamState, Optimizer};

/// The optimizer of Reptile's inner loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InnerOptimizer {
    /// φ ← φ − α∇L_s(φ).
    Sgd,
    /// Adam with step α and these moments' rates, restarted for each task.
    Adam {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        epsilon: f64,
    },
}

/// Reptile's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReptileConfig {
    /// α, the inner step size.
    pub inner_lr: f64,
    /// k ≥ 1, the inner steps.
    pub inner_steps: usize,
    /// SGD or Adam in the inner loop.
    pub inner_optimizer: InnerOptimizer,
}

impl Default for ReptileConfig {
    /// α = 0.01, k = 5 SGD steps.
    fn default() -> Self {
        ReptileConfig { inner_lr: 0.01, inner_steps: 5, inner_optimizer: InnerOptimizer::Sgd }
    }
}

#[derive(Clone, Debug)]
enum Inner<T> {
    Sgd(InnerSgd),
    Adam { adam: Adam, steps: usize, state: AdamState<T> },
}

/// Reptile.
#[derive(Clone, Debug)]
pub struct Reptile<T: Real> {
    inner: Inner<T>,
    phi: Vec<T>,
    work: Vec<T>,
    group_work: Vec<T>,
    scratch: Scratch<T>,
    lanes: LaneGroup<T>,
}

impl<T: Real> Reptile<T> {
    /// Validates the configuration (α > 0, k ≥ 1, Adam's rates in range).
    pub fn new(config: ReptileConfig) -> Result<Self, MetaError> {
        let steps = at_least_one("inner steps k", config.inner_steps)?;
        let inner = match config.inner_optimizer {
            InnerOptimizer::Sgd => Inner::Sgd(InnerSgd::new(config.inner_lr, steps)?),
            InnerOptimizer::Adam { beta1, beta2, epsilon } => Inner::Adam {
                adam: Adam::with_betas(config.inner_lr, beta1, beta2, epsilon)?,
                steps,
                state: AdamState { m: Vec::new(), v: Vec::new(), t: 0 },
            },
        };
        Ok(Reptile {
            inner,
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
        if let Inner::Adam { state, .. } = &mut self.inner {
            state.m.resize(p, T::ZERO);
            state.v.resize(p, T::ZERO);
        }
    }
}

/// φ = U(θ) with the configured inner optimizer.
fn adapt_into<T: Real>(
    inner: &mut Inner<T>,
    model: &dyn Model<T>,
    theta: &[T],
    support: &Split<T>,
    phi: &mut [T],
    work: &mut [T],
    scratch: &mut Scratch<T>,
) -> Result<(), MetaError> {
    match inner {
        Inner::Sgd(sgd) => {
            sgd.run(model, theta, support, phi, work, scratch, None)?;
        }
        Inner::Adam { adam, steps, state } => {
            phi.copy_from_slice(theta);
            state.m.fill(T::ZERO);
            state.v.fill(T::ZERO);
            state.t = 0;
            for _ in 0..*steps {
                model.loss_grad(
                    phi,
                    support,
                    work,
                    scratch.get(model, Pass::Gradient, support.len()),
                )?;
                adam.step(phi, work, state)?;
            }
        }
    }
    Ok(())
}

impl<T: Real> MetaLearner<T> for Reptile<T> {
    fn name(&self) -> &'static str {
        "reptile"
    }

    /// Writes θ − φ; the reported meta-loss is the query loss at φ.
    fn task_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        task: &Task<T>,
        g: &mut [T],
    ) -> Result<TaskOutcome, MetaError> {
        self.size(model.num_params());
        let Reptile { inner, phi, work, scratch, .. } = self;
        adapt_into(inner, model, theta, &task.support, phi, work, scratch)?;
        g.copy_from_slice(theta);
        axpy(-T::ONE, phi, g);
        let query = &task.query;
        let lq = model.loss(phi, query, scratch.get(model, Pass::Loss, query.len()))?;
        Ok(TaskOutcome { loss: lq.to_f64(), cg: None })
    }

    fn boxed_clone(&self) -> Box<dyn MetaLearner<T>> {
        Box::new(self.clone())
    }

    /// Side by side with SGD inner steps on a model with lane passes.
    fn group_size(&self, model: &dyn Model<T>) -> usize {
        match self.inner {
            Inner::Sgd(_) => LaneGroup::<T>::size(model),
            Inner::Adam { .. } => 1,
        }
    }

    /// Side by side when the group loads ([`LaneGroup::load`]): U^k in
    /// every lane, the query losses at φ, and the tree sum of `θ − φ`. A
    /// group that cannot run so, or whose lane pass fails, runs one by one
    /// (which names the task that failed).
    fn group_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        tasks: &[Task<T>],
        sum: &mut [T],
        outcomes: &mut [TaskOutcome],
    ) -> Result<(), MetaError> {
        if let Inner::Sgd(sgd) = &self.inner
            && self.lanes.load(model, tasks)
        {
            let lanes = &mut self.lanes;
            // The query pass's gradient is not needed, only its losses.
            let side_by_side =
                lanes.adapt(model, sgd, theta).and_then(|()| lanes.query_gradient(model, outcomes));
            if side_by_side.is_ok() {
                lanes.sum_theta_minus_phi(theta, sum);
                return Ok(());
            }
        }
        sum_one_by_one_in(self, |l| &mut l.group_work, model, theta, tasks, sum, outcomes)
    }

    /// U(θ): the k inner steps.
    fn adapt(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
    ) -> Result<(), MetaError> {
        self.size(model.num_params());
        adapt_into(&mut self.inner, model, theta, support, phi, &mut self.work, &mut self.scratch)
    }
}
