//! Why a case file cannot be used.

/// A case file that cannot be read or does not fit its own model.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// Not JSON, or JSON of the wrong structure.
    #[error("not a reference case: {0}")]
    Json(String),
    /// A format string other than `theta-reference-case/1`.
    #[error("format {0:?} is not theta-reference-case/1")]
    Format(String),
    /// A value that does not fit the format or the case's model.
    #[error("{0}")]
    Invalid(String),
    /// A quantity this reader does not know.
    #[error("check {index}: unknown quantity {name:?}")]
    UnknownQuantity {
        /// The check's position.
        index: usize,
        /// Its quantity.
        name: String,
    },
    /// A task that is not valid for the model.
    #[error("task {index}: {source}")]
    Task {
        /// The task's position.
        index: usize,
        /// What is wrong with it.
        source: theta_core::Error,
    },
    /// A model that cannot be built, or an evaluation that failed.
    #[error(transparent)]
    Model(#[from] theta_core::Error),
}
