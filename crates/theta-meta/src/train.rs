//! The training loop: any [`MetaLearner`], any outer [`Optimizer`], observers
//! plugged in from outside (argmin's executor pattern).

use std::any::Any;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use theta_core::vector::sum_in_order;
use theta_core::{Model, Real, Rng, Task, TaskDistribution};
use theta_optim::Optimizer;

use crate::error::{MetaError, at_least_one};
use crate::learner::{
    BatchMean, MetaLearner, StepStats, TaskOutcome, add_gradient, mean_by_groups,
};

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

/// One task's share of a parallel meta-step during [`Trainer::run`]: its
/// gradient (unless the front thread summed it, see [`Claims`]) and how it
/// went.
struct Slot<T> {
    grad: Vec<T>,
    status: Status,
}

/// How a group of tasks of a parallel step went: its tasks' outcomes, or
/// its failure, or the panic to re-raise once every thread has met at the
/// step's barrier.
struct Status {
    outcomes: Vec<TaskOutcome>,
    result: Result<(), MetaError>,
    panic: Option<Box<dyn Any + Send>>,
}

impl Status {
    /// For a group of `tasks` tasks.
    fn new(tasks: usize) -> Self {
        Status { outcomes: vec![TaskOutcome::default(); tasks], result: Ok(()), panic: None }
    }
}

/// Computes the sum of `group`'s gradients into `grad` and keeps how it went
/// in `status`; true when the sum is there. A panic is kept, not
/// propagated, so that every thread still meets at the barriers.
fn compute<T: Real>(
    learner: &mut dyn MetaLearner<T>,
    model: &dyn Model<T>,
    theta: &[T],
    group: &[Task<T>],
    grad: &mut [T],
    status: &mut Status,
) -> bool {
    status.panic = None;
    status.result = Ok(());
    let outcomes = &mut status.outcomes;
    match catch_unwind(AssertUnwindSafe(|| {
        learner.group_gradient(model, theta, group, grad, outcomes)
    })) {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => status.result = Err(e),
        Err(payload) => status.panic = Some(payload),
    }
    false
}

/// The groups a batch of `n` tasks is cut into, `size` tasks each from the
/// first (the last one shorter): group `g` is tasks `range(g)`.
#[derive(Clone, Copy)]
struct Groups {
    n: usize,
    size: usize,
}

impl Groups {
    fn count(self) -> usize {
        self.n.div_ceil(self.size)
    }

    fn range(self, g: usize) -> std::ops::Range<usize> {
        g * self.size..((g + 1) * self.size).min(self.n)
    }
}

/// The tasks of a parallel step still to compute, `front..back` (packed in
/// one atomic: front in the low half, back in the high). One thread, the
/// front thread, takes them from the first on and adds each gradient to a
/// sum of its own at once, in task order, as one thread would; the others
/// take them from the last back, each gradient into its task's slot. When
/// they meet, the sum holds the first `front` tasks, and the calling thread
/// adds the slots of the rest to it in task order: the same additions in
/// the same order as one thread's, whichever thread computed which task.
///
/// Why not every gradient into a slot: the slots computed on another core
/// are read by the thread that adds them, and written again by their core
/// the next step. With two threads about half the batch's gradients (7 KB
/// each for the sinusoid network) crossed between the cores twice per
/// step, and a task on the worker took 20% longer than on one thread
/// (first-order MAML, `perf`, 2026-12-05). Now one sum crosses, once.
struct Claims(AtomicU64);

impl Claims {
    const HALF: u32 = 32;
    const LOW: u64 = (1 << Self::HALF) - 1;

    fn new() -> Self {
        Claims(AtomicU64::new(0))
    }

    /// A new step over `n` tasks.
    fn reset(&self, n: usize) {
        self.0.store((n as u64) << Self::HALF, Ordering::Relaxed);
    }

    /// The next task from the front, if any is left.
    fn front(&self) -> Option<usize> {
        self.claim(|v| v + 1).map(|v| (v & Self::LOW) as usize)
    }

    /// The next task from the back, if any is left.
    fn back(&self) -> Option<usize> {
        self.claim(|v| v - (1 << Self::HALF)).map(|v| (v >> Self::HALF) as usize - 1)
    }

    /// The claims before this one's, if a task was left for it.
    fn claim(&self, take: impl Fn(u64) -> u64) -> Option<u64> {
        let left = |v: u64| (v & Self::LOW) < (v >> Self::HALF);
        self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| left(v).then(|| take(v))).ok()
    }

    /// How many tasks the front thread took (once the step is done).
    fn taken_from_front(&self) -> usize {
        (self.0.load(Ordering::Relaxed) & Self::LOW) as usize
    }
}

/// What the front thread (see [`Claims`]) keeps for a step, in one place
/// it alone writes until the step's barrier: the running sum of its tasks'
/// gradients, how each went, and the gradient it is computing.
struct Front<T> {
    sum: Vec<T>,
    status: Vec<Status>,
    grad: Vec<T>,
}

/// The batch mean of a parallel step, once every thread has met at its
/// barrier: the front thread's sum of the first `taken` tasks (see
/// [`Claims`]), then the slots of the others (`back`, their guards) added to
/// it in task order. Re-raises the first panic, returns the first failure
/// in task order, as one thread would have.
fn reduce_step<T: Real>(
    front: &mut Front<T>,
    taken: usize,
    back: &mut [MutexGuard<'_, Slot<T>>],
    outcomes: &mut [TaskOutcome],
    grad: &mut [T],
    task_losses: &mut [f64],
) -> Result<StepStats, MetaError> {
    let mut failure = Ok(());
    let statuses = front.status[..taken].iter_mut().chain(back.iter_mut().map(|s| &mut s.status));
    let mut at = 0;
    for status in statuses {
        if let Some(payload) = status.panic.take() {
            resume_unwind(payload);
        }
        if failure.is_ok() {
            failure = std::mem::replace(&mut status.result, Ok(()));
        }
        let tasks = status.outcomes.len();
        outcomes[at..at + tasks].copy_from_slice(&status.outcomes);
        at += tasks;
    }
    failure?;
    // The front's sum, then each slot, in task order: each number summed in
    // registers over the tasks, one rounded addition each.
    sum_in_order(grad, 1 + back.len(), |t| if t == 0 { &front.sum } else { &back[t - 1].grad });
    BatchMean::of_sum(grad, task_losses, outcomes)?.finish()
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

    /// How `learner` cuts this trainer's batches into groups.
    fn groups(&self, learner: &dyn MetaLearner<T>) -> Groups {
        Groups { n: self.tasks.len(), size: learner.group_size(self.model).max(1) }
    }

    /// The batch mean of the tasks' gradients into `grad`, from the sums of
    /// the learner's groups of tasks (one task each unless it runs them
    /// side by side): on one thread, each sum added as soon as it is
    /// computed (while it is in cache); on several, every group's sum into
    /// its slice of `task_grads`, in parallel over contiguous blocks of
    /// groups, one learner per block, then all added. The same additions in
    /// the same order either way.
    fn mean_gradient(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        theta: &[T],
    ) -> Result<StepStats, MetaError> {
        let p = self.grad.len();
        let groups = self.groups(learner);
        let count = groups.count();
        let threads = self.threads.min(count);
        if threads <= 1 {
            let (sum, outcomes) = (&mut self.task_grads[..p], &mut self.outcomes);
            let (grad, task_losses) = (&mut self.grad, &mut self.task_losses);
            return mean_by_groups(
                learner,
                self.model,
                theta,
                &self.tasks,
                sum,
                outcomes,
                grad,
                task_losses,
            );
        }
        while self.workers.len() < threads - 1 {
            self.workers.push(learner.boxed_clone());
        }
        let block = count.div_ceil(threads);
        let model = self.model;
        let mut learners: Vec<&mut dyn MetaLearner<T>> = vec![learner];
        learners.extend(self.workers.iter_mut().map(|w| &mut **w as &mut dyn MetaLearner<T>));
        let size = groups.size;
        let results: Vec<Result<(), MetaError>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .tasks
                .chunks(block * size)
                .zip(self.task_grads.chunks_mut(block * p))
                .zip(self.outcomes.chunks_mut(block * size))
                .zip(learners)
                .map(|(((tasks, sums), outcomes), learner)| {
                    s.spawn(move || {
                        for ((group, sum), o) in tasks
                            .chunks(size)
                            .zip(sums.chunks_exact_mut(p))
                            .zip(outcomes.chunks_mut(size))
                        {
                            learner.group_gradient(model, theta, group, sum, o)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a task worker panicked")).collect()
        });
        // The first failure in task order, as one thread would have reported it.
        results.into_iter().collect::<Result<(), MetaError>>()?;
        let mut mean = BatchMean::new(&mut self.grad, &mut self.task_losses)?;
        for g in 0..count {
            mean.add_group(&self.task_grads[g * p..][..p], &self.outcomes[groups.range(g)]);
        }
        mean.finish()
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
    /// this thread publishes θ and the batch, and every thread claims tasks
    /// one at a time (so a slower core takes fewer): the first worker from
    /// the front of the batch, adding each gradient to its own running sum
    /// in task order, the others from the back, each gradient into its
    /// task's slot (see [`Claims`]). This thread's serial work runs beside
    /// the workers' tasks, which they take from it: it samples the next
    /// step's batch (in task order, from a copy of `state.rng` that becomes
    /// the state's when that step starts). After the step's barrier it adds
    /// the slots to the running sum in task order and steps the optimizer.
    /// Two spinning barrier waits per step replace spawning threads (tens of
    /// microseconds each), and the bits are those of one thread.
    pub fn run<O: Optimizer<T>>(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        outer: &O,
        state: &mut TrainState<T, O::State>,
        steps: u64,
        observer: &mut dyn Observer<T, O::State>,
    ) -> Result<(), MetaError> {
        let groups = self.groups(learner);
        let threads = self.threads.min(groups.count());
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
        let new_slot =
            |g| Slot { grad: vec![T::ZERO; p], status: Status::new(groups.range(g).len()) };
        let slots: Vec<Mutex<Slot<T>>> =
            (0..groups.count()).map(|g| Mutex::new(new_slot(g))).collect();
        while self.workers.len() < threads - 1 {
            self.workers.push(learner.boxed_clone());
        }
        // Two batches, this step's (read by all) and the next one's (being
        // sampled by this thread), live in locks for the run; one comes back.
        let spare = (0..self.tasks.len()).map(|_| self.dist.empty_task()).collect();
        let batches = [RwLock::new(std::mem::take(&mut self.tasks)), RwLock::new(spare)];
        let result =
            self.run_with_workers(learner, outer, state, steps, observer, &batches, &slots, groups);
        let [batch, _] = batches;
        self.tasks = batch.into_inner().unwrap_or_else(|e| e.into_inner());
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run_with_workers<O: Optimizer<T>>(
        &mut self,
        learner: &mut dyn MetaLearner<T>,
        outer: &O,
        state: &mut TrainState<T, O::State>,
        steps: u64,
        observer: &mut dyn Observer<T, O::State>,
        batches: &[RwLock<Vec<Task<T>>>; 2],
        slots: &[Mutex<Slot<T>>],
        groups: Groups,
    ) -> Result<(), MetaError> {
        let model = self.model;
        let dist = self.dist;
        let (n, p) = (slots.len(), self.grad.len());
        let theta_copy = RwLock::new(state.theta.clone());
        let front = Mutex::new(Front {
            sum: vec![T::ZERO; p],
            status: (0..n).map(|g| Status::new(groups.range(g).len())).collect(),
            grad: vec![T::ZERO; p],
        });
        let start = SpinBarrier::new(self.workers.len() + 1);
        let end = SpinBarrier::new(self.workers.len() + 1);
        let stop = AtomicBool::new(false);
        let claims = Claims::new();
        // Which of `batches` this step's is.
        let current = AtomicUsize::new(0);
        let read = |i: usize| batches[i].read().unwrap_or_else(|e| e.into_inner());
        let write = |i: usize| batches[i].write().unwrap_or_else(|e| e.into_inner());
        let (grad, task_losses, outcomes) =
            (&mut self.grad, &mut self.task_losses, &mut self.outcomes);
        std::thread::scope(|s| {
            for (w, worker) in self.workers.iter_mut().enumerate() {
                let (theta_copy, front, start, end, stop, claims, current) =
                    (&theta_copy, &front, &start, &end, &stop, &claims, &current);
                s.spawn(move || {
                    loop {
                        start.wait();
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        {
                            let theta = theta_copy.read().unwrap_or_else(|e| e.into_inner());
                            let tasks = read(current.load(Ordering::Relaxed));
                            let learner = worker.as_mut();
                            if w == 0 {
                                let Front { sum, status, grad } = &mut *lock(front);
                                sum.fill(T::ZERO);
                                while let Some(g) = claims.front() {
                                    let (group, status) = (&tasks[groups.range(g)], &mut status[g]);
                                    if compute(learner, model, &theta, group, grad, status) {
                                        add_gradient(sum, grad);
                                    }
                                }
                            } else {
                                claim_back(learner, model, &theta, &tasks, slots, claims, groups);
                            }
                        }
                        end.wait();
                    }
                });
            }
            // Everything this thread does while the workers wait at `start`;
            // a panic here must still release them, hence the catch.
            let steps_taken = catch_unwind(AssertUnwindSafe(|| -> Result<(), MetaError> {
                // The next step's batch, sampled ahead: the generator after it,
                // or why it could not be drawn, reported (an error) or re-raised
                // (a panic) at that step, where one thread would have met it; a
                // panic must not leave this thread before the step's barrier.
                let mut ahead: Option<std::thread::Result<theta_core::Result<Rng>>> = None;
                // The slots' guards while a step is reduced, kept for the run.
                let mut guards = Vec::with_capacity(n);
                for i in 0..steps {
                    let step = state.step + 1;
                    let wrap = |e: MetaError| MetaError::Diverged { step, source: Box::new(e) };
                    let cur = (i % 2) as usize;
                    match ahead.take() {
                        Some(Ok(rng)) => state.rng = rng.map_err(|e| wrap(e.into()))?,
                        Some(Err(payload)) => resume_unwind(payload),
                        None => dist
                            .sample_batch_into(&mut state.rng, &mut write(cur))
                            .map_err(|e| wrap(e.into()))?,
                    }
                    theta_copy
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .copy_from_slice(&state.theta);
                    // Published to the workers by the barrier.
                    claims.reset(n);
                    current.store(cur, Ordering::Relaxed);
                    start.wait();
                    if i + 1 < steps {
                        ahead = Some(catch_unwind(AssertUnwindSafe(|| {
                            let mut rng = state.rng.clone();
                            dist.sample_batch_into(&mut rng, &mut write(1 - cur)).map(|()| rng)
                        })));
                    }
                    claim_back(learner, model, &state.theta, &read(cur), slots, &claims, groups);
                    end.wait();
                    let taken = claims.taken_from_front();
                    guards.extend(slots[taken..].iter().map(lock));
                    let mut front = lock(&front);
                    let stats =
                        reduce_step(&mut front, taken, &mut guards, outcomes, grad, task_losses);
                    drop(front);
                    guards.clear();
                    let stats = stats.map_err(wrap)?;
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

/// Claims groups of tasks from the back of the batch (see [`Claims`]) and
/// computes each group's sum into its slot, until none is left.
fn claim_back<T: Real>(
    learner: &mut dyn MetaLearner<T>,
    model: &dyn Model<T>,
    theta: &[T],
    batch: &[Task<T>],
    slots: &[Mutex<Slot<T>>],
    claims: &Claims,
    groups: Groups,
) {
    while let Some(g) = claims.back() {
        let slot = &mut *lock(&slots[g]);
        let group = &batch[groups.range(g)];
        compute(learner, model, theta, group, &mut slot.grad, &mut slot.status);
    }
}

/// A barrier that spins: `std::sync::Barrier` puts waiters to sleep, and
/// waking them twice per meta-step cost about as much as the meta-step
/// itself (first-order MAML on two threads ran at 0.58× one thread; with
/// this barrier and tasks claimed one at a time, 1.45×; MAML 0.80× → 1.59×;
/// `cargo xtask bench threads`, 2026-12-03). A waiter spins for up to
/// [`SpinBarrier::SPIN`], then sleeps in short naps, so that a long pause
/// (an observer writing a checkpoint) does not keep a core busy.
///
/// With more threads than cores, a spinning waiter yields its core now and
/// then, as the thread it waits for may need it. With a core each it does
/// not: there, the yields let the scheduler set a waiting worker aside, and
/// 1–3% of first-order MAML's two-thread steps began about 130 µs late
/// (under 0.1% without them; 2026-12-05, Xeon with 2 vCPUs).
struct SpinBarrier {
    threads: usize,
    /// True when there are more threads than cores.
    yields: bool,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    /// How long a waiter spins before it naps.
    const SPIN: Duration = Duration::from_millis(2);

    fn new(threads: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        SpinBarrier {
            threads,
            yields: threads > cores,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Returns once all `threads` threads have called it (in this round).
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            // The last to arrive opens the next round: the count is reset
            // before the release that the other threads wait for.
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let started = Instant::now();
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) {
                std::hint::spin_loop();
            } else if started.elapsed() < Self::SPIN {
                if self.yields {
                    std::thread::yield_now();
                }
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}
