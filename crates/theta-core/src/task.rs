//! Task distributions p(τ) and batches of tasks.

use crate::data::Task;
use crate::error::Result;
use crate::random::Rng;
use theta_kernels::{Loss, Real};

/// A distribution of tasks p(τ) to sample from.
///
/// Sampling writes into a task of the right shapes ([`Self::empty_task`]),
/// so a training loop that reuses its tasks allocates nothing after warm-up.
pub trait TaskDistribution<T: Real>: Send + Sync {
    /// A short name, e.g. "sinusoid".
    fn name(&self) -> &'static str;
    /// Input width `d_0`.
    fn input_dim(&self) -> usize;
    /// Output width `d_L`: values per point, or the number of classes.
    fn output_dim(&self) -> usize;
    /// The loss the family is measured with.
    fn loss(&self) -> Loss;
    /// Points in each support set.
    fn support_size(&self) -> usize;
    /// Points in each query set.
    fn query_size(&self) -> usize;
    /// A task of the right shapes, all zeros, to sample into.
    fn empty_task(&self) -> Task<T>;
    /// Draws a task into `task`, which must have this distribution's shapes.
    fn sample_into(&self, rng: &mut Rng, task: &mut Task<T>) -> Result<()>;

    /// Draws a new task.
    fn sample(&self, rng: &mut Rng) -> Result<Task<T>> {
        let mut task = self.empty_task();
        self.sample_into(rng, &mut task)?;
        Ok(task)
    }

    /// Fills every task of `batch` in order, reusing its buffers.
    fn sample_batch_into(&self, rng: &mut Rng, batch: &mut [Task<T>]) -> Result<()> {
        for task in batch {
            self.sample_into(rng, task)?;
        }
        Ok(())
    }
}
