//! Task distributions p(τ) for theta.
//!
//! | family | type | inputs → outputs | loss |
//! |---|---|---|---|
//! | MAML paper's sinusoids | [`Sinusoid`] | 1 → 1 | MSE |
//! | the article's curve fitting ξ(ax + b) | [`CurveFitting`] | 1 → 1 | MSE |
//! | linear regression | [`LinearRegression`] | d → 1 | MSE |
//! | N-way K-shot Gaussian blobs | [`GaussianBlobs`] | d → N classes | cross-entropy |
//!
//! Each implements [`theta_core::TaskDistribution`]: sampling is seeded by
//! the caller's generator, writes into a task of the right shapes, and
//! allocates nothing. Each documents the order of its draws, so that a
//! stream of tasks is reproducible from the seed alone.
#![warn(missing_docs)]

mod blobs;
mod curve;
mod function;
mod linear;
mod sinusoid;
mod validate;

pub use blobs::GaussianBlobs;
pub use curve::{ARTICLE_TASKS, CurveFitting, CurveParams};
pub use linear::LinearRegression;
pub use sinusoid::{Sinusoid, SinusoidParams};
