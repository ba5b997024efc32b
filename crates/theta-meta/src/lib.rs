//! What every theta meta-learner shares.
//!
//! * [`MetaLearner`]: the one trait of the algorithms (`theta-maml`,
//!   `theta-fomaml`, `theta-reptile`, `theta-imaml`, `theta-pretrained`): an
//!   outer gradient for a batch of tasks, and an adaptation U(θ) to a new task.
//! * [`InnerSgd`]: the inner loop U^m (φ ← φ − α∇L_s(φ)), written once.
//! * [`LaneGroup`]: a group of tasks side by side, one per SIMD lane, for
//!   learners whose tasks run through the model's lane passes.
//! * [`BatchMean`]: the batch mean of per-task gradients (or groups'
//!   sums), in task order whatever thread computed them.
//! * [`Trainer`] and [`TrainState`]: the training loop, with [`Observer`]s
//!   plugged in from outside and the state kept apart from the algorithm.
//! * [`Evaluation`]: the protocol of cbfinn/maml (600 test tasks from a
//!   fixed seed, 0..10 adaptation steps, mean ± 95% confidence interval).
#![warn(missing_docs)]

mod error;
mod eval;
mod inner;
mod lanes;
mod learner;
mod train;

pub use error::{MetaError, at_least_one, positive};
pub use eval::{Adaptation, EvalPoint, Evaluation, Stat};
pub use inner::InnerSgd;
pub use lanes::LaneGroup;
pub use learner::{
    BatchMean, CgStats, MetaLearner, StepStats, TaskOutcome, mean_of_task_gradients,
    sum_one_by_one, sum_one_by_one_in,
};
pub use train::{Observer, StepReport, TrainState, Trainer};
