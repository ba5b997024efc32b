//! Reference cases: independent values to hold an implementation to.
//!
//! A case file (format `theta-reference-case/1`, described in
//! `shared/reference/README.md`) holds an MLP, its parameters θ, a few tasks,
//! and quantities an independent JAX program computed in float64: support
//! losses, gradients, Hessian- and Gauss-Newton-vector products, and the
//! meta-gradients of MAML, first-order MAML, Reptile and iMAML.
//!
//! [`ReferenceCase::from_json`] parses and validates one (this crate reads no
//! files: callers pass the text); [`evaluate`] computes any of its
//! quantities with theta's model and algorithms, in f32 or f64;
//! [`relative_error`] compares. `theta verify` is the command-line face of it.
#![warn(missing_docs)]

mod case;
mod error;
mod evaluate;

pub use case::{Check, Expected, FORMAT, Quantity, ReferenceCase};
pub use error::CaseError;
pub use evaluate::{Computed, evaluate, relative_error};
pub use theta_imaml::Curvature;
