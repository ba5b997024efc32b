//! The inner loop U^m: m steps of gradient descent on a task's support loss,
//!
//! ```text
//! φ₀ = θ,   φ_{k+1} = φ_k − α ∇L_s(φ_k)   for k < m,
//! ```
//!
//! written once and shared by every algorithm and by the evaluation protocol.

use theta_core::vector::{axpy, axpy_to};
use theta_core::{Model, Pass, Real, Scratch, Split};

use crate::error::{MetaError, positive};

/// U^m with SGD: the step size α and the number of steps m (0 allowed: U⁰(θ) = θ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InnerSgd {
    alpha: f64,
    steps: usize,
}

impl InnerSgd {
    /// α > 0, any m.
    pub fn new(alpha: f64, steps: usize) -> Result<Self, MetaError> {
        Ok(InnerSgd { alpha: positive("inner learning rate α", alpha)?, steps })
    }

    /// α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// m.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The same α with another m.
    pub fn with_steps(&self, steps: usize) -> Self {
        InnerSgd { steps, ..*self }
    }

    /// Writes φ_m into `phi`. When `trajectory` is given ((m − 1)·P values),
    /// it receives φ₁ … φ_{m−1}: with θ = φ₀, the points MAML's reverse pass
    /// needs. `grad` is work space of length P. Returns L_s(φ₀) (NaN if
    /// m = 0).
    pub fn run<T: Real>(
        &self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
        grad: &mut [T],
        scratch: &mut Scratch<T>,
        trajectory: Option<&mut [T]>,
    ) -> Result<f64, MetaError> {
        self.steps_from(model, theta, support, phi, grad, scratch, trajectory, None)
    }

    /// As [`InnerSgd::run`] with the trajectory, for MAML's reverse pass: the
    /// last step's gradient at φ_{m−1} is computed in `last` by
    /// [`Model::loss_grad_prepare_hvp`], which leaves it prepared for the
    /// reverse pass's first product, [`Model::hvp_prepared`] at φ_{m−1}.
    #[allow(clippy::too_many_arguments)]
    pub fn run_preparing_hvp<T: Real>(
        &self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
        grad: &mut [T],
        scratch: &mut Scratch<T>,
        trajectory: &mut [T],
        last: &mut Scratch<T>,
    ) -> Result<f64, MetaError> {
        self.steps_from(model, theta, support, phi, grad, scratch, Some(trajectory), Some(last))
    }

    #[allow(clippy::too_many_arguments)]
    fn steps_from<T: Real>(
        &self,
        model: &dyn Model<T>,
        theta: &[T],
        support: &Split<T>,
        phi: &mut [T],
        grad: &mut [T],
        scratch: &mut Scratch<T>,
        mut trajectory: Option<&mut [T]>,
        mut last: Option<&mut Scratch<T>>,
    ) -> Result<f64, MetaError> {
        let p = theta.len();
        if self.steps == 0 {
            phi.copy_from_slice(theta);
        }
        let mut first = f64::NAN;
        let step = T::from_f64(-self.alpha);
        let rows = support.len();
        for k in 0..self.steps {
            if let Some(traj) = trajectory.as_deref_mut().filter(|_| k > 0) {
                traj[(k - 1) * p..k * p].copy_from_slice(phi);
            }
            // φ₀ is θ itself: read in place, no copy.
            let at: &[T] = if k == 0 { theta } else { phi };
            let loss = match last.as_deref_mut() {
                Some(last) if k + 1 == self.steps => {
                    let s = last.get(model, Pass::HessianVector, rows);
                    model.loss_grad_prepare_hvp(at, support, grad, s)?
                }
                _ => {
                    model.loss_grad(at, support, grad, scratch.get(model, Pass::Gradient, rows))?
                }
            };
            if k == 0 {
                first = loss.to_f64();
                axpy_to(step, grad, theta, phi);
            } else {
                axpy(step, grad, phi);
            }
        }
        Ok(first)
    }
}
