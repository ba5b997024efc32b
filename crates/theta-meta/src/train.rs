//! The training loop: any [`MetaLearner`], any outer [`Optimizer`], observers
//! plugged in from outside (argmin's executor pattern).

use std::ops::ControlFlow;

use theta_core::{Model, Real, Rng, Task, TaskDistribution};
use theta_optim::Optimizer;

use crate::error::{MetaError, at_least_one};
use crate::learner::{MetaLearner, StepStats};

/// Everything that changes during training, and nothing else: θ, the outer
/// optimizer's state, the task generator and the number of meta-steps taken.
/// Saving and restoring it resumes a run exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState<T, S> {
    /// The meta-parameters θ.
    pub theta: Vec<T>,
    /// The outer optimizer's state.
    pub optimizer: S,
    /// The generator tasks are drawn from.
    pub rng: Rng,
    /// Meta-steps taken.
    pub step: u64,
}

/// What an observer sees after each meta-step.
#[derive(Debug)]
pub struct StepReport<'a, T> {
    /// The meta-step just taken (1-based).
    pub step: u64,
    /// Its statistics.
    pub stats: StepStats,
    /// The per-task meta-losses of its batch.
    pub task_losses: &'a [f64],
    /// θ after the update.
    pub theta: &'a [T],
}

/// Watches training: progress bars, metric logs, checkpoints. Returning
/// `ControlFlow::Break(())` stops the run after this step.
pub trait Observer<T> {
    /// Called after every meta-step.
    fn on_step(&mut self, report: &StepReport<'_, T>) -> ControlFlow<()>;
}

/// Observes nothing.
impl<T> Observer<T> for () {
    fn on_step(&mut self, _: &StepReport<'_, T>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// Any closure over a step report is an observer.
impl<T, F: FnMut(&StepReport<'_, T>) -> ControlFlow<()>> Observer<T> for F {
    fn on_step(&mut self, report: &StepReport<'_, T>) -> ControlFlow<()> {
        self(report)
    }
}

/// Runs meta-steps: sample a batch of tasks, ask the learner for the outer
/// gradient, take an outer optimizer step. Its buffers are reused, so a step
/// allocates nothing once the learner's own buffers are warm.
pub struct Trainer<'a, T: Real> {
    model: &'a dyn Model<T>,
    dist: &'a dyn TaskDistribution<T>,
    tasks: Vec<Task<T>>,
    grad: Vec<T>,
    task_losses: Vec<f64>,
}

impl<'a, T: Real> Trainer<'a, T> {
    /// Checks that the distribution fits the model (widths, loss) and sizes
    /// the buffers for `meta_batch` tasks per step.
    pub fn new(
        model: &'a dyn Model<T>,
        dist: &'a dyn TaskDistribution<T>,
        meta_batch: usize,
    ) -> Result<Self, MetaError> {
        at_least_one("meta-batch size", meta_batch)?;
        theta_core::check_len(
            "model input width (task inputs)",
            dist.input_dim(),
            model.input_dim(),
        )?;
        theta_core::check_len(
            "model output width (task outputs)",
            dist.output_dim(),
            model.output_dim(),
        )?;
        if dist.loss() != model.loss_kind() {
            return Err(MetaError::InvalidParameter {
                name: "loss",
                value: model.loss_kind().name().into(),
                reason: "does not fit the task family's targets",
            });
        }
        Ok(Trainer {
            model,
            dist,
            tasks: (0..meta_batch).map(|_| dist.empty_task()).collect(),
            grad: vec![T::ZERO; model.num_params()],
            task_losses: vec![0.0; meta_batch],
        })
    }

    /// One meta-step on `state`. Any failure inside it is reported as
    /// [`MetaError::Diverged`] with the step's number, and leaves θ unchanged.
    pub fn step<O: Optimizer<T>>(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        outer: &O,
        state: &mut TrainState<T, O::State>,
    ) -> Result<StepStats, MetaError> {
        let step = state.step + 1;
        let wrap = |e: MetaError| MetaError::Diverged { step, source: Box::new(e) };
        theta_core::check_len("θ length", self.model.num_params(), state.theta.len())?;
        self.dist.sample_batch_into(&mut state.rng, &mut self.tasks).map_err(|e| wrap(e.into()))?;
        let stats = learner
            .meta_gradient(
                self.model,
                &state.theta,
                &self.tasks,
                &mut self.grad,
                &mut self.task_losses,
            )
            .map_err(wrap)?;
        outer
            .step(&mut state.theta, &self.grad, &mut state.optimizer)
            .map_err(|e| wrap(e.into()))?;
        state.step = step;
        Ok(stats)
    }

    /// `steps` meta-steps, reporting each to `observer`; stops early if the
    /// observer asks to.
    pub fn run<O: Optimizer<T>>(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        outer: &O,
        state: &mut TrainState<T, O::State>,
        steps: u64,
        observer: &mut dyn Observer<T>,
    ) -> Result<(), MetaError> {
        for _ in 0..steps {
            let stats = self.step(learner, outer, state)?;
            let report = StepReport {
                step: state.step,
                stats,
                task_losses: &self.task_losses,
                theta: &state.theta,
            };
            if observer.on_step(&report).is_break() {
                break;
            }
        }
        Ok(())
    }
}
