//! The pretrained baseline (seed 003, "A simple baseline"): ignore the
//! adaptation U altogether and minimise the joint loss of all tasks' data,
//! `min_θ E_τ[L_τ(θ)]`, then fine-tune on a new task.
//!
//! Each task's support and query points are pooled: its loss is the mean
//! over all of them, `(N_s·L_s + N_q·L_q)/(N_s + N_q)`, and the batch's
//! gradient is the mean over tasks. When every task of a batch has the same
//! sizes (as every theta task family's do) that is the mean over all the
//! batch's points, and the learner computes it so: one pass over the pooled
//! batch (`MetaLearner::pools_batch`), the plain batched pass a framework
//! would run, instead of two small passes per task. Every task then reports
//! the batch's joint loss. Adaptation is plain fine-tuning: m SGD steps of
//! size α on the support set.

#![warn(missing_docs)]

use theta_core::vector::{all_finite, axpy, scale};
use theta_core::{Model, Pass, Real, Scratch, Split, Targets, Task};
use theta_meta::{
    InnerSgd, MetaError, MetaLearner, StepStats, TaskOutcome, mean_of_task_gradients,
};

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
    /// Every point of the last batch, task by task (support, then query);
    /// rebuilt only when the batch's shape changes.
    pool: Option<Split<T>>,
}

impl<T: Real> Pretrained<T> {
    /// Validates the fine-tuning settings.
    pub fn new(config: PretrainedConfig) -> Result<Self, MetaError> {
        Ok(Pretrained {
            fine_tune: InnerSgd::new(config.fine_tune_lr, config.fine_tune_steps)?,
            work: Vec::new(),
            scratch: Scratch::new(),
            pool: None,
        })
    }

    /// Copies every point of `tasks` into the pool (support, then query, task
    /// by task), resizing it only when the batch's shape changed; returns the
    /// number of points. Every split must have `first`'s shape
    /// ([`pools_alike`]).
    fn fill_pool(&mut self, tasks: &[Task<T>]) -> usize {
        let first = &tasks[0];
        let rows = tasks.len() * (first.support.len() + first.query.len());
        let (d_in, d_out) = widths(&first.support);
        if !self.pool.as_ref().is_some_and(|p| p.len() == rows && widths(p) == (d_in, d_out)) {
            self.pool = Some(Split::zeros(rows, d_in, d_out));
        }
        let pool = self.pool.as_mut().expect("made above");
        let (x, mut values, mut labels) = pool.parts_mut();
        let (mut at, mut row) = (0, 0);
        for split in tasks.iter().flat_map(|t| [&t.support, &t.query]) {
            let n = split.len();
            x[at..at + n * d_in].copy_from_slice(split.x().as_slice());
            at += n * d_in;
            match (split.y(), values.as_deref_mut(), labels.as_deref_mut()) {
                (Targets::Values(m), Some(v), _) => {
                    let d = m.cols();
                    v[row * d..(row + n) * d].copy_from_slice(m.as_slice());
                }
                (Targets::Labels(l), _, Some(out)) => out[row..row + n].copy_from_slice(l),
                _ => unreachable!("the pool has the batch's target kind"),
            }
            row += n;
        }
        rows
    }
}

/// A split's input width and target width (`None` for labels).
fn widths<T: Real>(split: &Split<T>) -> (usize, Option<usize>) {
    let d_out = match split.y() {
        Targets::Values(m) => Some(m.cols()),
        Targets::Labels(_) => None,
    };
    (split.x().cols(), d_out)
}

/// True when every task has the first one's sizes and widths, so that the
/// batch pools into one split whose mean loss is the mean of the tasks'.
fn pools_alike<T: Real>(tasks: &[Task<T>]) -> bool {
    let first = &tasks[0];
    let w = widths(&first.support);
    tasks.iter().all(|t| {
        t.support.len() == first.support.len()
            && t.query.len() == first.query.len()
            && widths(&t.support) == w
            && widths(&t.query) == w
    })
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

    fn pools_batch(&self) -> bool {
        true
    }

    /// The joint-loss gradient of the whole batch: one pass over its pooled
    /// points when every task has the same sizes and widths (then it equals
    /// the mean of [`MetaLearner::task_gradient`] over the tasks), task by
    /// task otherwise.
    fn meta_gradient(
        &mut self,
        model: &dyn Model<T>,
        theta: &[T],
        tasks: &[Task<T>],
        grad: &mut [T],
        task_losses: &mut [f64],
    ) -> Result<StepStats, MetaError> {
        if tasks.is_empty() {
            return Err(MetaError::EmptyBatch);
        }
        theta_core::check_len("per-task loss buffer", tasks.len(), task_losses.len())?;
        if !pools_alike(tasks) {
            // Task by task: each task's own weighting, and the model's own
            // error for a task that does not fit it.
            return mean_of_task_gradients(self, model, theta, tasks, grad, task_losses);
        }
        let rows = self.fill_pool(tasks);
        let Pretrained { pool, scratch, .. } = self;
        let pool = pool.as_ref().expect("filled above");
        let loss =
            model.loss_grad(theta, pool, grad, scratch.get(model, Pass::Gradient, rows))?.to_f64();
        if !all_finite(grad) {
            return Err(MetaError::NonFinite("the meta-gradient".into()));
        }
        task_losses.fill(loss);
        Ok(StepStats { meta_loss: loss, cg: None })
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
