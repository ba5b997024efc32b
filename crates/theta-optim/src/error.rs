//! What goes wrong in an optimizer or a solve.

/// An optimizer's or solver's error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimError {
    /// A hyper-parameter outside its domain, caught at construction.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Its name.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What it must be.
        reason: &'static str,
    },
    /// Vectors of different lengths.
    #[error("{what}: expected {expected} values, got {actual}")]
    Length {
        /// Which vector.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Given length.
        actual: usize,
    },
    /// A gradient or an iterate that is NaN or infinite: training diverged.
    #[error("{0} is not finite")]
    NonFinite(String),
    /// The linear operator of a solve failed.
    #[error(transparent)]
    Operator(#[from] theta_core::Error),
}

pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64, OptimError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(OptimError::InvalidParameter { name, value, reason: "must be finite and > 0" })
    }
}

pub(crate) fn in_unit_interval(name: &'static str, value: f64) -> Result<f64, OptimError> {
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(OptimError::InvalidParameter { name, value, reason: "must be in [0, 1)" })
    }
}

pub(crate) fn same_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), OptimError> {
    if expected == actual { Ok(()) } else { Err(OptimError::Length { what, expected, actual }) }
}
