//! What goes wrong in meta-training.

use theta_optim::OptimError;

/// An error of a meta-learner, the training loop or the evaluation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetaError {
    /// The model refused its input (shapes, labels, a non-finite θ or loss).
    #[error(transparent)]
    Model(#[from] theta_core::Error),
    /// An optimizer or solver failed.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A hyper-parameter outside its domain, caught at construction.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter, as in configuration files.
        name: &'static str,
        /// The rejected value.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// A meta-batch with no task.
    #[error("the meta-batch holds no task")]
    EmptyBatch,
    /// A value that went NaN or infinite inside a step.
    #[error("{0} is not finite")]
    NonFinite(String),
    /// Training diverged: the error of the meta-step it happened in.
    #[error("training diverged at meta-step {step}: {source}")]
    Diverged {
        /// The 1-based meta-step.
        step: u64,
        /// What went wrong in it.
        source: Box<MetaError>,
    },
}

/// Checks `value > 0` and finite.
pub fn positive(name: &'static str, value: f64) -> Result<f64, MetaError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(MetaError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: "must be finite and > 0",
        })
    }
}

/// Checks `value >= 1`.
pub fn at_least_one(name: &'static str, value: usize) -> Result<usize, MetaError> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(MetaError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: "must be at least 1",
        })
    }
}
