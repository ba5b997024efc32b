//! theta's hot path: the numeric kernels every other crate builds on.
//!
//! * [`real`]: the scalar types (`f32`, `f64`) and their 512-bit SIMD packs;
//!   [`simd_level`] reports the instructions a build uses.
//! * [`activation`]: activations σ and the fused element-wise sweeps of a
//!   dense layer (bias + activation; derivative products; the R-pass sweep).
//! * [`batch_norm`]: batch normalisation over a batch's rows (no scale, as
//!   cbfinn/maml's), its backward and its two tangent passes.
//! * [`gemm`]: the matrix products: faer, and a register-blocked SIMD kernel
//!   for small `x · W`.
//! * [`dense`]: a dense layer's forward, backward, tangent forward and tangent
//!   backward passes, matrix products around those sweeps.
//! * [`lanes`]: the same products over a group of tasks, one task per SIMD
//!   lane, each lane's sums the small kernel's, and the sweeps and MSE
//!   around them.
//! * [`loss`]: MSE and softmax cross-entropy, their gradients and output
//!   Hessian-vector products.
//! * [`vector`]: axpy, dot, norm, scale and in-order sums on flat parameter
//!   vectors.
//!
//! Every SIMD kernel has a plain scalar `*_ref` twin that the tests hold it
//! to. Nothing here allocates: callers own the buffers. This crate depends on
//! nothing else of theta's.
#![warn(missing_docs)]

pub mod activation;
pub mod batch_norm;
pub mod dense;
pub mod gemm;
pub mod lanes;
pub mod loss;
pub mod real;
pub mod vector;

pub use activation::Activation;
pub use dense::Dense;
pub use loss::{Loss, TargetsRef};
pub use real::{Pack, Real, simd_level};
