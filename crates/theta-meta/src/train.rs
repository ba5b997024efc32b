//! The training loop: any [`MetaLearner`], any outer [`Optimizer`], observers
//! plugged in from outside (argmin's executor pattern).

use std::ops::ControlFlow;

use theta_core::{Model, Real, Rng, Task, TaskDistribution};
use theta_optim::Optimizer;

use crate::error::{MetaError, at_least_one};
use crate::learner::{MetaLearner, StepStats, TaskOutcome, reduce_in_order};

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

/// Runs meta-steps: sample a batch of tasks, compute each task's outer
/// gradient (on one thread or several), reduce them in task order, take an
/// outer optimizer step. The results are bit-identical for every thread
/// count. Its buffers are reused, so a one-thread step allocates nothing
/// once the learner's own buffers are warm.
pub struct Trainer<'a, T: Real> {
    model: &'a dyn Model<T>,
    dist: &'a dyn TaskDistribution<T>,
    tasks: Vec<Task<T>>,
    task_grads: Vec<T>,
    outcomes: Vec<TaskOutcome>,
    grad: Vec<T>,
    task_losses: Vec<f64>,
    threads: usize,
    /// Copies of the learner for threads 2…n, made on the first parallel step.
    workers: Vec<Box<dyn MetaLearner<T>>>,
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
        let p = model.num_params();
        Ok(Trainer {
            model,
            dist,
            tasks: (0..meta_batch).map(|_| dist.empty_task()).collect(),
            task_grads: vec![T::ZERO; meta_batch * p],
            outcomes: vec![TaskOutcome::default(); meta_batch],
            grad: vec![T::ZERO; p],
            task_losses: vec![0.0; meta_batch],
            threads: 1,
            workers: Vec::new(),
        })
    }

    /// Runs the tasks of each meta-batch on `threads` threads (at least 1;
    /// more than the meta-batch is pointless). The numbers do not change.
    pub fn with_threads(mut self, threads: usize) -> Result<Self, MetaError> {
        self.threads = at_least_one("threads", threads)?;
        self.workers.clear();
        Ok(self)
    }

    /// Every task's gradient into its slice of `task_grads`, in parallel
    /// over contiguous blocks of tasks, one learner per block.
    fn task_gradients(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        theta: &[T],
    ) -> Result<(), MetaError> {
        let p = self.grad.len();
        let n = self.tasks.len();
        let threads = self.threads.min(n);
        if threads <= 1 {
            for ((task, g), o) in
                self.tasks.iter().zip(self.task_grads.chunks_exact_mut(p)).zip(&mut self.outcomes)
            {
                *o = learner.task_gradient(self.model, theta, task, g)?;
            }
            return Ok(());
        }
        while self.workers.len() < threads - 1 {
            self.workers.push(learner.boxed_clone());
        }
        let block = n.div_ceil(threads);
        let model = self.model;
        let mut learners: Vec<&mut dyn MetaLearner<T>> = vec![learner];
        learners.extend(self.workers.iter_mut().map(|w| &mut **w as &mut dyn MetaLearner<T>));
        let results: Vec<Result<(), MetaError>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .tasks
                .chunks(block)
                .zip(self.task_grads.chunks_mut(block * p))
                .zip(self.outcomes.chunks_mut(block))
                .zip(learners)
                .map(|(((tasks, grads), outcomes), learner)| {
                    s.spawn(move || {
                        for ((task, g), o) in
                            tasks.iter().zip(grads.chunks_exact_mut(p)).zip(outcomes)
                        {
                            *o = learner.task_gradient(model, theta, task, g)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a task worker panicked")).collect()
        });
        // The first failure in task order, as one thread would have reported it.
        results.into_iter().collect()
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
        self.task_gradients(learner, &state.theta).map_err(wrap)?;
        let stats = reduce_in_order(
            &self.task_grads,
            &self.outcomes,
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
