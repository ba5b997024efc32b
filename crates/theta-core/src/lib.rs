//! The contract every theta crate speaks.
//!
//! * [`Model`]: loss, gradient, Hessian-vector and Gauss-Newton-vector
//!   products on a flat parameter vector θ, with caller-owned [`Scratch`].
//! * [`Task`], [`Split`], [`Matrix`], [`Targets`]: a task τ's support and
//!   query sets; [`TaskDistribution`]: p(τ).
//! * [`Error`]: what goes wrong, named.
//! * [`random`]: the seeded generator [`Rng`], always passed in.
//! * [`fs`]: atomic writes and the checksum of theta's file formats.
//!
//! The scalar types and the activation and loss names come from
//! `theta-kernels` and are re-exported here, so most crates need only this one.
#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod fs;
pub mod model;
pub mod random;
pub mod task;

pub use data::{Matrix, Split, Targets, Task};
pub use error::{Error, Result, check_len};
pub use model::{LaneSplit, Model, Pass, Scratch};
pub use random::{Rng, rng_from_seed};
pub use task::TaskDistribution;
pub use theta_kernels::{Activation, Loss, Real, vector};
