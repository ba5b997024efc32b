//! Models for theta.
//!
//! [`Mlp`] is a multi-layer perceptron of any widths with a hidden and an
//! output activation and a loss, in `f32` (the fast default) or `f64` (for
//! exactness checks): it implements [`theta_core::Model`] for both. Its
//! derivatives are the hand-derived passes of `theta_kernels::dense`, chained
//! layer by layer; `tests/` proves them against finite differences and the
//! independent JAX reference cases. [`BatchNormMlp`] is the MAML paper's
//! Omniglot network: the same MLP with batch normalisation (over the batch at
//! hand, no scale) before each hidden activation.
#![warn(missing_docs)]

mod batch_norm;
mod lanes;
mod mlp;

pub use batch_norm::BatchNormMlp;
pub use mlp::{Init, LayerLayout, Mlp, MlpSpec};
