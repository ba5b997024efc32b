//! First-order optimizers: the outer loop's β-step (and Reptile's inner Adam).
//!
//! An optimizer value holds only its validated configuration; its state
//! (velocities, moments, step count) is a separate value the caller owns,
//! passes in to [`Optimizer::step`] and may save in a checkpoint.

use theta_core::Real;
use theta_core::vector::{AdamStep, adam_update, all_finite, axpy};

use crate::error::{OptimError, in_unit_interval, positive, same_len};

/// A rule that turns a gradient into a parameter update.
pub trait Optimizer<T: Real>: Send + Sync {
    /// The state carried from step to step.
    type State: Clone + std::fmt::Debug + PartialEq;
    /// The state before the first step, for `num_params` parameters.
    fn init_state(&self, num_params: usize) -> Self::State;
    /// One update of `theta` from `grad`. A non-finite gradient is an error
    /// and leaves θ and the state unchanged.
    fn step(&self, theta: &mut [T], grad: &[T], state: &mut Self::State) -> Result<(), OptimError>;
}

fn check<T: Real>(theta: &[T], grad: &[T]) -> Result<(), OptimError> {
    same_len("gradient", theta.len(), grad.len())?;
    if all_finite(grad) { Ok(()) } else { Err(OptimError::NonFinite("the gradient".into())) }
}

/// Plain gradient descent: θ ← θ − lr·g.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    lr: f64,
}

impl Sgd {
    /// Learning rate `lr > 0`.
    pub fn new(lr: f64) -> Result<Self, OptimError> {
        Ok(Sgd { lr: positive("learning rate", lr)? })
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }
}

impl<T: Real> Optimizer<T> for Sgd {
    type State = ();
    fn init_state(&self, _: usize) {}
    fn step(&self, theta: &mut [T], grad: &[T], _: &mut ()) -> Result<(), OptimError> {
        check(theta, grad)?;
        axpy(T::from_f64(-self.lr), grad, theta);
        Ok(())
    }
}

/// Heavy-ball momentum: u ← μ·u + g, θ ← θ − lr·u.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Momentum {
    lr: f64,
    momentum: f64,
}

impl Momentum {
    /// Learning rate `lr > 0`, momentum μ in [0, 1).
    pub fn new(lr: f64, momentum: f64) -> Result<Self, OptimError> {
        Ok(Momentum {
            lr: positive("learning rate", lr)?,
            momentum: in_unit_interval("momentum", momentum)?,
        })
    }
}

impl<T: Real> Optimizer<T> for Momentum {
    type State = Vec<T>;
    fn init_state(&self, n: usize) -> Vec<T> {
        vec![T::ZERO; n]
    }
    fn step(&self, theta: &mut [T], grad: &[T], velocity: &mut Vec<T>) -> Result<(), OptimError> {
        check(theta, grad)?;
        same_len("momentum state", theta.len(), velocity.len())?;
        let mu = T::from_f64(self.momentum);
        for (u, &g) in velocity.iter_mut().zip(grad) {
            *u = mu * *u + g;
        }
        axpy(T::from_f64(-self.lr), velocity, theta);
        Ok(())
    }
}

/// Adam (Kingma & Ba), with bias correction, as in TensorFlow and PyTorch:
///
/// ```text
/// m ← β₁m + (1 − β₁)g,   v ← β₂v + (1 − β₂)g²
/// θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

/// Adam's moments and step count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState<T> {
    /// First moment m.
    pub m: Vec<T>,
    /// Second moment v.
    pub v: Vec<T>,
    /// Steps taken, t.
    pub t: u64,
}

impl Adam {
    /// Learning rate with the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn new(lr: f64) -> Result<Self, OptimError> {
        Self::with_betas(lr, 0.9, 0.999, 1e-8)
    }

    /// Every hyper-parameter: `lr > 0`, β₁ and β₂ in [0, 1), `ε > 0`.
    pub fn with_betas(lr: f64, beta1: f64, beta2: f64, eps: f64) -> Result<Self, OptimError> {
        Ok(Adam {
            lr: positive("learning rate", lr)?,
            beta1: in_unit_interval("beta1", beta1)?,
            beta2: in_unit_interval("beta2", beta2)?,
            eps: positive("epsilon", eps)?,
        })
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }
}

impl<T: Real> Optimizer<T> for Adam {
    type State = AdamState<T>;
    fn init_state(&self, n: usize) -> AdamState<T> {
        AdamState { m: vec![T::ZERO; n], v: vec![T::ZERO; n], t: 0 }
    }
    fn step(&self, theta: &mut [T], grad: &[T], s: &mut AdamState<T>) -> Result<(), OptimError> {
        check(theta, grad)?;
        same_len("Adam first moment", theta.len(), s.m.len())?;
        same_len("Adam second moment", theta.len(), s.v.len())?;
        s.t += 1;
        // Bias corrections in f64: βᵗ underflows gracefully and stays exact longer.
        let t = s.t.min(i32::MAX as u64) as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        let constants = AdamStep {
            beta1: T::from_f64(self.beta1),
            beta2: T::from_f64(self.beta2),
            one_minus_beta1: T::from_f64(1.0 - self.beta1),
            one_minus_beta2: T::from_f64(1.0 - self.beta2),
            step: T::from_f64(self.lr / c1),
            inv_correction2: T::from_f64(1.0 / c2),
            eps: T::from_f64(self.eps),
        };
        adam_update(theta, grad, &mut s.m, &mut s.v, constants);
        Ok(())
    }
}
