//! The pretrained baseline (seed 003, "A simple baseline"): ignore the
//! adaptation U altogether and minimise the joint loss of all tasks' data,
//! `min_θ E_τ[L_τ(θ)]`, then fine-tune on a new task.
//!
//! Each task's support and query points are pooled: its loss is the mean
//! over all of them, `(N_s·L_s + N_q·L_q)/(N_s + N_q)`, and the batch's
//! gradient is the mean over tasks. Adaptation is plain fine-tuning: m SGD
//! steps of size α on the support set.

#![warn(missing_docs)]

use theta_core::vector::{axpy, scale};
use theta_core::{Model, Pass, Real, Scratch, Split, Task};
use theta_meta::{InnerSgd, MetaError, MetaLearner, TaskOutcome};

/// The baseline's fine-tuning settings (used only by [`MetaLearner::adapt`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PretrainedConfig {
    /// α for fine-tuning.
    pub fine_tune_lr: f64,
    /// Fine-tuning steps.
    pub fine_tune_steps: usize,
}

impl Default for PretrainedConfig {
    /// α = 0.01, one step.
    fn default() -> Self {
        PretrainedConfig { fine_tune_lr: 0.01, fine_tune_steps: 1 }
    }
}

/// Joint training on every task's pooled points.
#[derive(Clone, Debug)]
pub struct Pretrained<T> {
    fine_tune: InnerSgd,
    work: Vec<T>,
    scratch: Scratch<T>,
}

impl<T: Real> Pretrained<T> {
    /// Validates the fine-tuning settings.
    pub fn new(config: PretrainedConfig) -> Result<Self, MetaError> {
        Ok(Pretrained {
            fine_tune: InnerSgd::new(config.fine_tune_lr, config.fine_tune_steps)?,
            work: Vec::new(),
            scratch: Scratch::new(),
        })
    }
}

impl<T: Real> MetaLearner<T> for Pretrained<T> {
    fn name(&self) -> &'static str {
        "pretrained"
    }

    fn task_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        task: &Task<T>,
        g: &mut [T],
    ) -> Result<TaskOutcome, MetaError> {
        self.work.resize(model.num_params(), T::ZERO);
        let Pretrained { work, scratch, .. } = self;
        let (ns, nq) = (task.support.len(), task.query.len());
        let ls =
            model.loss_grad(theta, &task.support, g, scratch.get(model, Pass::Gradient, ns))?;
        let lq =
            model.loss_grad(theta, &task.query, work, scratch.get(model, Pass::Gradient, nq))?;
        // The pooled points' mean: (N_s ∇L_s + N_q ∇L_q) / (N_s + N_q).
        let (ws, wq) = (T::from_usize(ns), T::from_usize(nq));
        scale(ws, g);
        axpy(wq, work, g);
        scale(T::ONE / (ws + wq), g);
        let loss = (ns as f64 * ls.to_f64() + nq as f64 * lq.to_f64()) / (ns + nq) as f64;
        Ok(TaskOutcome { loss, cg: None })
    }

    fn boxed_clone(&self) -> Box<dyn MetaLearner<T>> {
        Box::new(self.clone())
    }

    /// Fine-tuning: the configured SGD steps on the support set.
    fn adapt(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
    ) -> Result<(), MetaError> {
        self.work.resize(model.num_params(), T::ZERO);
        self.fine_tune.run(model, theta, support, phi, &mut self.work, &mut self.scratch, None)?;
        Ok(())
    }
}
