//! The training loop: any [`MetaLearner`], any outer [`Optimizer`], observers
//! plugged in from outside (argmin's executor pattern).

use std::any::Any;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex, MutexGuard, RwLock};

use theta_core::{Model, Real, Rng, Task, TaskDistribution};
use theta_optim::Optimizer;

use crate::error::{MetaError, at_least_one};
use crate::learner::{BatchMean, MetaLearner, StepStats, TaskOutcome, reduce_in_order};

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
pub struct StepReport<'a, T, S> {
    /// Its statistics.
    pub stats: StepStats,
    /// The per-task meta-losses of its batch.
    pub task_losses: &'a [f64],
    /// The state after the update: θ, the optimizer's state, the task
    /// generator, and the step just taken (1-based) — all a checkpoint needs.
    pub state: &'a TrainState<T, S>,
}

/// Watches training: progress bars, metric logs, checkpoints. Returning
/// `ControlFlow::Break(())` stops the run after this step (an observer that
/// fails, say to write a checkpoint, keeps its error and breaks).
pub trait Observer<T, S> {
    /// Called after every meta-step.
    fn on_step(&mut self, report: &StepReport<'_, T, S>) -> ControlFlow<()>;
}

/// Observes nothing.
impl<T, S> Observer<T, S> for () {
    fn on_step(&mut self, _: &StepReport<'_, T, S>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// Any closure over a step report is an observer.
impl<T, S, F: FnMut(&StepReport<'_, T, S>) -> ControlFlow<()>> Observer<T, S> for F {
    fn on_step(&mut self, report: &StepReport<'_, T, S>) -> ControlFlow<()> {
        self(report)
    }
}

/// One worker's share of a meta-batch during [`Trainer::run`]: which tasks,
/// their gradients and outcomes, and how its last step went.
struct Block<T> {
    tasks: std::ops::Range<usize>,
    grads: Vec<T>,
    outcomes: Vec<TaskOutcome>,
    result: Result<(), MetaError>,
    panic: Option<Box<dyn Any + Send>>,
}

impl<T: Real> Block<T> {
    /// The gradients of this block's tasks at θ; a panic is kept, not
    /// propagated, so that every thread still meets at the barriers.
    fn compute(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        model: &dyn Model<T>,
        theta: &[T],
        batch: &[Task<T>],
    ) {
        let p = theta.len();
        let Block { tasks, grads, outcomes, result, panic } = self;
        match catch_unwind(AssertUnwindSafe(|| {
            for ((task, g), o) in
                batch[tasks.clone()].iter().zip(grads.chunks_exact_mut(p)).zip(outcomes.iter_mut())
            {
                *o = learner.task_gradient(model, theta, task, g)?;
            }
            Ok(())
        })) {
            Ok(r) => *result = r,
            Err(payload) => *panic = Some(payload),
        }
    }
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // A worker never panics while holding its lock (panics are caught inside).
    m.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The batch mean of the tasks' gradients into `grad`: on one thread,
    /// each gradient added as soon as it is computed (while it is in cache);
    /// on several, every task's gradient into its slice of `task_grads`, in
    /// parallel over contiguous blocks of tasks, one learner per block, then
    /// all added. The same additions in the same order either way.
    fn mean_gradient(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        theta: &[T],
    ) -> Result<StepStats, MetaError> {
        let p = self.grad.len();
        let n = self.tasks.len();
        let threads = self.threads.min(n);
        if threads <= 1 {
            let mut mean = BatchMean::new(&mut self.grad, &mut self.task_losses)?;
            let g = &mut self.task_grads[..p];
            for (task, o) in self.tasks.iter().zip(&mut self.outcomes) {
                *o = learner.task_gradient(self.model, theta, task, g)?;
                mean.add(g, std::slice::from_ref(o));
            }
            return mean.finish();
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
        results.into_iter().collect::<Result<(), MetaError>>()?;
        reduce_in_order(&self.task_grads, &self.outcomes, &mut self.grad, &mut self.task_losses)
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
        let stats = if learner.pools_batch() {
            learner
                .meta_gradient(
                    self.model,
                    &state.theta,
                    &self.tasks,
                    &mut self.grad,
                    &mut self.task_losses,
                )
                .map_err(wrap)?
        } else {
            self.mean_gradient(learner, &state.theta).map_err(wrap)?
        };
        outer
            .step(&mut state.theta, &self.grad, &mut state.optimizer)
            .map_err(|e| wrap(e.into()))?;
        state.step = step;
        Ok(stats)
    }

    /// `steps` meta-steps, reporting each to `observer`; stops early if the
    /// observer asks to (or fails).
    ///
    /// With several threads the workers live for the whole run: each step,
    /// this thread samples every task (in task order, from `state.rng`),
    /// publishes θ, computes the first block itself while the workers compute
    /// theirs, then adds all gradients in task order. Two barrier waits per
    /// step replace spawning threads (tens of microseconds each), and the bits
    /// are those of one thread.
    pub fn run<O: Optimizer<T>>(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        outer: &O,
        state: &mut TrainState<T, O::State>,
        steps: u64,
        observer: &mut dyn Observer<T, O::State>,
    ) -> Result<(), MetaError> {
        let threads = self.threads.min(self.tasks.len());
        // A learner that pools the batch computes it in one call, on this thread.
        if threads <= 1 || steps == 0 || learner.pools_batch() {
            for _ in 0..steps {
                let stats = self.step(learner, outer, state)?;
                let report = StepReport { stats, task_losses: &self.task_losses, state };
                if observer.on_step(&report).is_break() {
                    break;
                }
            }
            return Ok(());
        }
        theta_core::check_len("θ length", self.model.num_params(), state.theta.len())?;
        let p = self.grad.len();
        let block = self.tasks.len().div_ceil(threads);
        let n = self.tasks.len();
        let blocks: Vec<Block<T>> = (0..n)
            .step_by(block)
            .map(|lo| {
                let k = block.min(n - lo);
                Block {
                    tasks: lo..lo + k,
                    grads: vec![T::ZERO; k * p],
                    outcomes: vec![TaskOutcome::default(); k],
                    result: Ok(()),
                    panic: None,
                }
            })
            .collect();
        while self.workers.len() < blocks.len() - 1 {
            self.workers.push(learner.boxed_clone());
        }
        // The batch, sampled by this thread and read by all, lives in a lock
        // for the run and comes back afterwards.
        let batch = RwLock::new(std::mem::take(&mut self.tasks));
        let mut blocks = blocks.into_iter();
        let mut first = blocks.next().expect("a batch has a task");
        let shared: Vec<Mutex<Block<T>>> = blocks.map(Mutex::new).collect();
        let result = self
            .run_with_workers(learner, outer, state, steps, observer, &batch, &mut first, &shared);
        self.tasks = batch.into_inner().unwrap_or_else(|e| e.into_inner());
        result
    }

    fn run_with_workers<O: Optimizer<T>>(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        outer: &O,
        state: &mut TrainState<T, O::State>,
        steps: u64,
        observer: &mut dyn Observer<T, O::State>,
        batch: &RwLock<Vec<Task<T>>>,
        first: &mut Block<T>,
        shared: &[Mutex<Block<T>>],
    ) -> Result<(), MetaError> {
        let model = self.model;
        let dist = self.dist;
        let theta_copy = RwLock::new(state.theta.clone());
        let start = Barrier::new(shared.len() + 1);
        let end = Barrier::new(shared.len() + 1);
        let stop = AtomicBool::new(false);
        let (grad, task_losses) = (&mut self.grad, &mut self.task_losses);
        std::thread::scope(|s| {
            for (worker, block) in self.workers.iter_mut().zip(shared) {
                let (theta_copy, start, end, stop) = (&theta_copy, &start, &end, &stop);
                s.spawn(move || {
                    loop {
                        start.wait();
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        {
                            let theta = theta_copy.read().unwrap_or_else(|e| e.into_inner());
                            let tasks = batch.read().unwrap_or_else(|e| e.into_inner());
                            lock(block).compute(worker.as_mut(), model, &theta, &tasks);
                        }
                        end.wait();
                    }
                });
            }
            // Everything this thread does while the workers wait at `start`;
            // a panic here must still release them, hence the catch.
            let steps_taken = catch_unwind(AssertUnwindSafe(|| -> Result<(), MetaError> {
                for _ in 0..steps {
                    let step = state.step + 1;
                    let wrap = |e: MetaError| MetaError::Diverged { step, source: Box::new(e) };
                    {
                        let mut tasks = batch.write().unwrap_or_else(|e| e.into_inner());
                        dist.sample_batch_into(&mut state.rng, &mut tasks)
                            .map_err(|e| wrap(e.into()))?;
                    }
                    theta_copy
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .copy_from_slice(&state.theta);
                    start.wait();
                    {
                        let tasks = batch.read().unwrap_or_else(|e| e.into_inner());
                        first.compute(learner, model, &state.theta, &tasks);
                    }
                    end.wait();
                    // Reduce in task order; the first failure in task order wins.
                    let mut mean = BatchMean::new(grad, task_losses)?;
                    let mut failure = None;
                    let mut panic = None;
                    let mut visit = |b: &mut Block<T>| {
                        mean.add(&b.grads, &b.outcomes);
                        if let Some(payload) = b.panic.take() {
                            panic.get_or_insert(payload);
                        }
                        if let Err(e) = std::mem::replace(&mut b.result, Ok(())) {
                            failure.get_or_insert(e);
                        }
                    };
                    visit(first);
                    for b in shared {
                        visit(&mut lock(b));
                    }
                    if let Some(payload) = panic {
                        resume_unwind(payload);
                    }
                    if let Some(e) = failure {
                        return Err(wrap(e));
                    }
                    let stats = mean.finish().map_err(wrap)?;
                    outer
                        .step(&mut state.theta, grad, &mut state.optimizer)
                        .map_err(|e| wrap(e.into()))?;
                    state.step = step;
                    let report = StepReport { stats, task_losses, state };
                    if observer.on_step(&report).is_break() {
                        break;
                    }
                }
                Ok(())
            }));
            stop.store(true, Ordering::Release);
            start.wait();
            match steps_taken {
                Ok(result) => result,
                Err(payload) => resume_unwind(payload),
            }
        })
    }
}
