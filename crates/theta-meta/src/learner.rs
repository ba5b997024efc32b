//! The trait every meta-learner implements, and the reduction over a batch.

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

/// A summary of conjugate-gradient solves.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CgStats {
    /// Iterations, summed over the solves.
    pub iterations: usize,
    /// The largest relative residual ‖r‖/‖b‖ of the outer solves.
    pub max_relative_residual: f64,
}

/// What one task contributed to a meta-step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TaskOutcome {
    /// The task's meta-loss.
    pub loss: f64,
    /// Its conjugate-gradient solves, for solvers.
    pub cg: Option<CgStats>,
}

/// A meta-learning algorithm.
///
/// A learner value holds its validated configuration and reusable work
/// buffers, nothing that changes the results from step to step: the state of
/// training (θ, the outer optimizer's state, the generator, the step count)
/// lives in [`crate::TrainState`], outside. That is what lets a trainer run
/// copies of a learner ([`MetaLearner::boxed_clone`]) on several threads.
/// The outer update is always an [`theta_optim::Optimizer`] step on the mean
/// of the per-task gradients.
pub trait MetaLearner<T: Real>: Send {
    /// A short name, e.g. "maml".
    fn name(&self) -> &'static str;

    /// One task's outer gradient, written into `grad` (length P): its
    /// meta-gradient (MAML, FOMAML, iMAML), θ − φ (Reptile, so that an SGD
    /// step of size β on the mean is θ + β(φ̄ − θ)), or its joint-loss
    /// gradient (pretrained); and its meta-loss.
    fn task_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        task: &Task<T>,
        grad: &mut [T],
    ) -> Result<TaskOutcome, MetaError>;

    /// The algorithm's own adaptation U(θ) to a new task from its support
    /// set, written into `phi`.
    fn adapt(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
    ) -> Result<(), MetaError>;

    /// A copy with the same configuration (and its own work buffers).
    fn boxed_clone(&self) -> Box<dyn MetaLearner<T>>;

    /// How many tasks [`MetaLearner::group_gradient`] takes at once with
    /// `model`: 1 (the default) when tasks run one by one, up to a pack's
    /// lanes for a learner that runs a group of tasks side by side
    /// ([`crate::LaneGroup`]). The [`crate::Trainer`] cuts every batch into
    /// groups of this size from its first task (the last one shorter),
    /// whatever its thread count, so the groups, and the bits, never depend
    /// on it.
    fn group_size(&self, model: &dyn Model<T>) -> usize {
        let _ = model;
        1
    }

    /// The sum of the outer gradients of `tasks` (1 ..=
    /// [`group_size`](MetaLearner::group_size) tasks) into `sum` (P values),
    /// added in an order fixed by the group alone, and each task's outcome
    /// into `outcomes`. The default takes a group of one: its
    /// [`MetaLearner::task_gradient`].
    fn group_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        tasks: &[Task<T>],
        sum: &mut [T],
        outcomes: &mut [TaskOutcome],
    ) -> Result<(), MetaError> {
        match (tasks, outcomes) {
            ([task], [outcome]) => {
                *outcome = self.task_gradient(model, theta, task, sum)?;
                Ok(())
            }
            (tasks, _) => Err(MetaError::InvalidParameter {
                name: "task group",
                value: format!("{} tasks", tasks.len()),
                reason: "this learner takes its tasks one at a time",
            }),
        }
    }

    /// True when this learner's batch gradient is one pooled computation
    /// over the whole batch ([`MetaLearner::meta_gradient`], overridden)
    /// rather than the mean of per-task gradients: the pretrained baseline's
    /// joint loss is one pass over all the batch's points. The
    /// [`crate::Trainer`] then calls `meta_gradient` on its own thread,
    /// whatever its thread count, so the bits never depend on it.
    fn pools_batch(&self) -> bool {
        false
    }

    /// The mean outer gradient of a batch, per-task meta-losses in
    /// `task_losses`. A convenience that allocates its per-task buffers; the
    /// [`crate::Trainer`] keeps its own and runs tasks on several threads
    /// (unless the learner [pools](MetaLearner::pools_batch) the batch).
    fn meta_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        tasks: &[Task<T>],
        grad: &mut [T],
        task_losses: &mut [f64],
    ) -> Result<StepStats, MetaError> {
        mean_of_task_gradients(self, model, theta, tasks, grad, task_losses)
    }
}

/// The batch mean of `learner`'s outer gradients into `grad`: the sums of
/// its groups of tasks ([`MetaLearner::group_size`]; one task each unless
/// it runs tasks side by side) added in order, as the [`crate::Trainer`]
/// does (what [`MetaLearner::meta_gradient`] does unless a learner
/// overrides it). Allocates its group buffer.
pub fn mean_of_task_gradients<T: Real, L: MetaLearner<T> + ?Sized>(
    learner: &mut L,
    model: &dyn Model<T>,
    theta: &[T],
    tasks: &[Task<T>],
    grad: &mut [T],
    task_losses: &mut [f64],
) -> Result<StepStats, MetaError> {
    let mut outcomes = vec![TaskOutcome::default(); tasks.len()];
    let mut sum = vec![T::ZERO; grad.len()];
    mean_by_groups(learner, model, theta, tasks, &mut sum, &mut outcomes, grad, task_losses)
}

/// [`mean_of_task_gradients`] in the caller's buffers: `sum` (P values)
/// for each group's sum, `outcomes` one per task. Allocates nothing; each
/// group's sum is added as soon as it is made, while it is in cache.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mean_by_groups<T: Real, L: MetaLearner<T> + ?Sized>(
    learner: &mut L,
    model: &dyn Model<T>,
    theta: &[T],
    tasks: &[Task<T>],
    sum: &mut [T],
    outcomes: &mut [TaskOutcome],
    grad: &mut [T],
    task_losses: &mut [f64],
) -> Result<StepStats, MetaError> {
    theta_core::check_len("per-task loss buffer", tasks.len(), task_losses.len())?;
    theta_core::check_len("per-task outcomes", tasks.len(), outcomes.len())?;
    let mut mean = BatchMean::new(grad, task_losses)?;
    let size = learner.group_size(model).max(1);
    for (group, o) in tasks.chunks(size).zip(outcomes.chunks_mut(size)) {
        learner.group_gradient(model, theta, group, sum, o)?;
        mean.add_group(sum, o);
    }
    mean.finish()
}

/// The sum of `tasks`' outer gradients into `sum`, one task after the other
/// ([`MetaLearner::task_gradient`], each into `work`, P values) and added
/// in task order from zero: how a learner that runs groups side by side
/// takes a group that cannot run so, and finds which task of a failed
/// group failed.
pub fn sum_one_by_one<T: Real, L: MetaLearner<T> + ?Sized>(
    learner: &mut L,
    model: &dyn Model<T>,
    theta: &[T],
    tasks: &[Task<T>],
    sum: &mut [T],
    outcomes: &mut [TaskOutcome],
    work: &mut [T],
) -> Result<(), MetaError> {
    sum.fill(T::ZERO);
    for (task, o) in tasks.iter().zip(outcomes) {
        *o = learner.task_gradient(model, theta, task, work)?;
        add_gradient(sum, work);
    }
    Ok(())
}

/// [`sum_one_by_one`] with its work buffer kept in the learner (`work`
/// picks it): taken out for the call, sized to P, and put back, so that a
/// learner's fallback allocates only the first time.
pub fn sum_one_by_one_in<T: Real, L: MetaLearner<T> + ?Sized>(
    learner: &mut L,
    work: impl Fn(&mut L) -> &mut Vec<T>,
    model: &dyn Model<T>,
    theta: &[T],
    tasks: &[Task<T>],
    sum: &mut [T],
    outcomes: &mut [TaskOutcome],
) -> Result<(), MetaError> {
    let mut buffer = std::mem::take(work(learner));
    buffer.resize(model.num_params(), T::ZERO);
    let result = sum_one_by_one(learner, model, theta, tasks, sum, outcomes, &mut buffer);
    *work(learner) = buffer;
    result
}

/// The batch mean of per-task gradients, fed task by task or group by
/// group ([`BatchMean::add_group`]) in task order, so that the bits do not
/// depend on which thread computed which task; [`BatchMean::finish`]
/// checks that the meta-loss and the gradient are finite. Allocates nothing.
pub struct BatchMean<'a, T> {
    grad: &'a mut [T],
    task_losses: &'a mut [f64],
    tasks: usize,
    total: f64,
    cg: Option<CgStats>,
}

impl<'a, T: Real> BatchMean<'a, T> {
    /// Starts a mean into `grad` (P numbers), with one loss slot per task of
    /// the batch in `task_losses`.
    pub fn new(grad: &'a mut [T], task_losses: &'a mut [f64]) -> Result<Self, MetaError> {
        grad.fill(T::ZERO);
        Self::of_sum(grad, task_losses, &[])
    }

    /// Adds the next tasks: their gradients (`outcomes.len()` × P, task by
    /// task) and outcomes.
    ///
    /// # Panics
    /// If the gradients do not match the outcomes, or more tasks arrive than
    /// the batch holds.
    pub fn add(&mut self, task_grads: &[T], outcomes: &[TaskOutcome]) {
        let p = self.grad.len();
        assert_eq!(task_grads.len(), outcomes.len() * p, "one gradient per outcome");
        for (g, o) in task_grads.chunks_exact(p.max(1)).zip(outcomes) {
            add_gradient(self.grad, g);
            self.add_outcome(o);
        }
    }

    /// Adds the next group of tasks: the sum of their gradients (P values,
    /// from [`MetaLearner::group_gradient`]) and their outcomes. For a
    /// group of one, [`BatchMean::add`].
    ///
    /// # Panics
    /// If the sum is not P values, or more tasks arrive than the batch holds.
    pub fn add_group(&mut self, sum: &[T], outcomes: &[TaskOutcome]) {
        assert_eq!(sum.len(), self.grad.len(), "one sum of P values per group");
        add_gradient(self.grad, sum);
        for o in outcomes {
            self.add_outcome(o);
        }
    }

    /// A mean whose first tasks' gradients `grad` already holds, summed
    /// elsewhere in task order from zero with [`add_gradient`] (the same bits
    /// as adding them here one by one), with their `outcomes` (none: a mean
    /// from zero).
    pub(crate) fn of_sum(
        grad: &'a mut [T],
        task_losses: &'a mut [f64],
        outcomes: &[TaskOutcome],
    ) -> Result<Self, MetaError> {
        if task_losses.is_empty() {
            return Err(MetaError::EmptyBatch);
        }
        let mut mean = BatchMean { grad, task_losses, tasks: 0, total: 0.0, cg: None };
        for o in outcomes {
            mean.add_outcome(o);
        }
        Ok(mean)
    }

    fn add_outcome(&mut self, o: &TaskOutcome) {
        self.task_losses[self.tasks] = o.loss;
        self.tasks += 1;
        self.total += o.loss;
        if let Some(c) = o.cg {
            let acc = self.cg.get_or_insert_with(CgStats::default);
            acc.iterations += c.iterations;
            acc.max_relative_residual = acc.max_relative_residual.max(c.max_relative_residual);
        }
    }

    /// Divides by the number of tasks and checks that the meta-loss and the
    /// meta-gradient are finite.
    pub fn finish(self) -> Result<StepStats, MetaError> {
        theta_core::check_len("tasks reduced", self.task_losses.len(), self.tasks)?;
        let n = self.tasks;
        scale(T::ONE / T::from_usize(n), self.grad);
        let meta_loss = self.total / n as f64;
        if !meta_loss.is_finite() {
            return Err(MetaError::NonFinite("the meta-loss".into()));
        }
        if !all_finite(self.grad) {
            return Err(MetaError::NonFinite("the meta-gradient".into()));
        }
        Ok(StepStats { meta_loss, cg: self.cg })
    }
}

/// `sum ← sum + g`: how [`BatchMean`] adds a task's gradient, the one
/// operation a sum kept elsewhere must repeat to give its bits.
pub(crate) fn add_gradient<T: Real>(sum: &mut [T], g: &[T]) {
    axpy(T::ONE, g, sum);
}
