//! The trait every meta-learner implements, and the batch reduction they share.

use theta_core::vector::{all_finite, axpy, scale};
use theta_core::{Model, Real, Split, Task};

use crate::error::MetaError;

/// What one meta-gradient computation reports besides the gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Mean over the batch of the per-task meta-losses (for MAML, FOMAML and
    /// iMAML `L_q(φ)`; for Reptile the query loss at its φ; for the
    /// pretrained baseline the joint loss at θ).
    pub meta_loss: f64,
    /// For solvers: the conjugate-gradient solves of the step.
    pub cg: Option<CgStats>,
}

/// A summary of the conjugate-gradient solves of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CgStats {
    /// Iterations, summed over the batch's solves.
    pub iterations: usize,
    /// The largest relative residual ‖r‖/‖b‖ of the batch.
    pub max_relative_residual: f64,
}

/// A meta-learning algorithm.
///
/// A learner value holds its validated configuration and reusable work
/// buffers, nothing that changes the results from step to step: the state of
/// training (θ, the outer optimizer's state, the generator, the step count)
/// lives in [`crate::TrainState`], outside. The outer update is always an
/// [`theta_optim::Optimizer`] step on [`MetaLearner::meta_gradient`]'s result.
pub trait MetaLearner<T: Real>: Send {
    /// A short name, e.g. "maml".
    fn name(&self) -> &'static str;

    /// The outer gradient for a batch of tasks, written into `grad` (length
    /// P): the meta-gradient (MAML, FOMAML, iMAML), θ − mean φ (Reptile, so
    /// that an SGD step of size β is θ + β(φ̄ − θ)), or the joint-loss
    /// gradient (pretrained). Per-task meta-losses go into `task_losses`
    /// (one per task).
    fn meta_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        tasks: &[Task<T>],
        grad: &mut [T],
        task_losses: &mut [f64],
    ) -> Result<StepStats, MetaError>;

    /// The algorithm's own adaptation U(θ) to a new task from its support
    /// set, written into `phi`.
    fn adapt(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
    ) -> Result<(), MetaError>;
}

/// The mean over a batch of per-task gradients, reduced in task order so
/// that the result does not depend on how the tasks were scheduled.
#[derive(Clone, Debug, Default)]
pub struct BatchMean<T> {
    task_grad: Vec<T>,
}

impl<T: Real> BatchMean<T> {
    /// An empty reducer; its buffer grows once to P.
    pub fn new() -> Self {
        BatchMean { task_grad: Vec::new() }
    }

    /// Runs `per_task` for each task (it writes the task's gradient into its
    /// buffer and returns its meta-loss), and writes the mean gradient into
    /// `grad` and the losses into `task_losses`. Returns the mean loss.
    pub fn run(
        &mut self,
        tasks: &[Task<T>],
        grad: &mut [T],
        task_losses: &mut [f64],
        mut per_task: impl FnMut(&Task<T>, &mut [T]) -> Result<f64, MetaError>,
    ) -> Result<f64, MetaError> {
        if tasks.is_empty() {
            return Err(MetaError::EmptyBatch);
        }
        theta_core::check_len("per-task loss buffer", tasks.len(), task_losses.len())?;
        self.task_grad.resize(grad.len(), T::ZERO);
        grad.fill(T::ZERO);
        let mut total = 0.0;
        for (task, loss) in tasks.iter().zip(task_losses.iter_mut()) {
            *loss = per_task(task, &mut self.task_grad)?;
            total += *loss;
            axpy(T::ONE, &self.task_grad, grad);
        }
        scale(T::ONE / T::from_usize(tasks.len()), grad);
        let mean = total / tasks.len() as f64;
        if !mean.is_finite() {
            return Err(MetaError::NonFinite("the meta-loss".into()));
        }
        if !all_finite(grad) {
            return Err(MetaError::NonFinite("the meta-gradient".into()));
        }
        Ok(mean)
    }
}
