//! Optimizers for theta.
//!
//! * [`Sgd`], [`Momentum`], [`Adam`]: first-order rules behind one
//!   [`Optimizer`] trait; configuration is validated at construction and the
//!   state is a value the caller owns (and checkpoints).
//! * [`ConjugateGradient`]: solves `A x = b` for a [`LinearOperator`] known
//!   only through products, reporting iterations and residual — iMAML runs
//!   it on Hessian-vector products.
#![warn(missing_docs)]

mod cg;
mod error;
mod first_order;

pub use cg::{CgReport, CgWorkspace, ConjugateGradient, LinearOperator};
pub use error::OptimError;
pub use first_order::{Adam, AdamState, Momentum, Optimizer, Sgd};
