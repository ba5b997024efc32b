//! Configuration checks shared by the task families.

use theta_core::{Error, Result};

pub(crate) fn range(name: &'static str, (lo, hi): (f64, f64)) -> Result<()> {
    if lo.is_finite() && hi.is_finite() && lo <= hi {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value: format!("[{lo}, {hi}]"),
            reason: "must be a finite interval with low <= high",
        })
    }
}

pub(crate) fn count(name: &'static str, n: usize) -> Result<()> {
    if n > 0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter { name, value: "0".into(), reason: "must be at least 1" })
    }
}

pub(crate) fn non_negative(name: &'static str, x: f64) -> Result<()> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value: x.to_string(),
            reason: "must be finite and >= 0",
        })
    }
}

/// Checks that a task has the shapes a distribution samples.
pub(crate) fn task_shape<T: theta_core::Real>(
    task: &theta_core::Task<T>,
    support: usize,
    query: usize,
) -> Result<()> {
    theta_core::check_len("support set size", support, task.support.len())?;
    theta_core::check_len("query set size", query, task.query.len())
}
