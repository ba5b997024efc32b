//! The one error type of the model and task contract.

use std::borrow::Cow;

/// What can go wrong when a model meets parameters and data, or a task
/// distribution is configured. Every message names what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A buffer, matrix or vector has the wrong size.
    #[error("{what}: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// What was measured, e.g. "parameter vector length".
        what: Cow<'static, str>,
        /// The size the model or task needs.
        expected: usize,
        /// The size it was given.
        actual: usize,
    },
    /// A split (or another set of points) has no rows.
    #[error("the {0} set is empty")]
    Empty(&'static str),
    /// A value that must be finite is NaN or infinite.
    #[error("{0} is not finite")]
    NonFinite(Cow<'static, str>),
    /// A hyper-parameter or configuration value is out of its domain.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in configuration files.
        name: &'static str,
        /// The rejected value, printed.
        value: String,
        /// What it must be instead.
        reason: &'static str,
    },
    /// A model description that cannot be built.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// An activation name that theta does not know.
    #[error("unknown activation {0:?} (expected identity, relu, tanh or sigmoid)")]
    UnknownActivation(String),
    /// A loss name that theta does not know.
    #[error("unknown loss {0:?} (expected mse or softmax_cross_entropy)")]
    UnknownLoss(String),
    /// A class label outside the model's outputs.
    #[error("label {label} of point {index} is not below the {classes} classes")]
    LabelOutOfRange {
        /// The label.
        label: u32,
        /// The point's row.
        index: usize,
        /// The number of classes (the model's output width).
        classes: usize,
    },
    /// Regression targets given to a classification loss, or the reverse.
    #[error("the {loss} loss needs {expected}, but the split has {actual}")]
    TargetKind {
        /// The model's loss.
        loss: &'static str,
        /// "values" or "labels".
        expected: &'static str,
        /// What the split holds.
        actual: &'static str,
    },
    /// The caller's scratch buffer is smaller than [`crate::Model::scratch_len`].
    #[error("scratch buffer too small: {needed} values needed, {given} given")]
    ScratchTooSmall {
        /// Values needed.
        needed: usize,
        /// Values given.
        given: usize,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `actual == expected`, naming `what` otherwise.
pub fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { what: Cow::Borrowed(what), expected, actual })
    }
}
