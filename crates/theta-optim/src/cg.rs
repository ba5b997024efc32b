//! Conjugate gradient on a matrix-free linear operator.
//!
//! iMAML solves `(I + C/λ) x = g` with C a Hessian or Gauss-Newton matrix it
//! can only multiply by (a Hessian-vector product); this is the textbook
//! method of the reference format:
//!
//! ```text
//! r = b − A x,  p = r
//! repeat: α = rᵀr / pᵀAp,  x += α p,  r −= α Ap,  β = r'ᵀr' / rᵀr,  p = r' + β p
//! ```
//!
//! It runs a fixed number of iterations unless a tolerance is set, and stops
//! early only where continuing would divide by zero (an exact solution).

use theta_core::Real;
use theta_core::vector::{axpy, dot, norm};

use crate::error::{OptimError, same_len};

/// A symmetric linear map known only through products `A x`.
pub trait LinearOperator<T: Real> {
    /// The dimension n of `A` (n × n).
    fn dim(&self) -> usize;
    /// `out = A x`.
    fn apply(&mut self, x: &[T], out: &mut [T]) -> Result<(), theta_core::Error>;
}

/// Conjugate-gradient settings, validated at construction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConjugateGradient {
    max_iterations: usize,
    tolerance: f64,
}

/// What a solve did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CgReport {
    /// Iterations run (products with A, beyond the initial residual's).
    pub iterations: usize,
    /// ‖r‖ = ‖b − A x‖ at the end (the recursively updated residual).
    pub residual_norm: f64,
    /// ‖r‖ / ‖b‖.
    pub relative_residual: f64,
    /// True if some pᵀAp ≤ 0 was met: A is not positive definite along the
    /// path, and x is not a minimiser of the quadratic.
    pub negative_curvature: bool,
}

/// CG's three work vectors, kept between solves so that they allocate once.
#[derive(Clone, Debug, Default)]
pub struct CgWorkspace<T> {
    r: Vec<T>,
    p: Vec<T>,
    ap: Vec<T>,
}

impl<T: Real> CgWorkspace<T> {
    /// Work vectors for dimension `n`.
    pub fn new(n: usize) -> Self {
        CgWorkspace { r: vec![T::ZERO; n], p: vec![T::ZERO; n], ap: vec![T::ZERO; n] }
    }
}

impl ConjugateGradient {
    /// At most `max_iterations` iterations, none if 0. With `tolerance > 0`,
    /// stop once ‖r‖ ≤ tolerance·‖b‖; with 0, run them all (the reference
    /// semantics).
    pub fn new(max_iterations: usize, tolerance: f64) -> Result<Self, OptimError> {
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err(OptimError::InvalidParameter {
                name: "CG tolerance",
                value: tolerance,
                reason: "must be finite and >= 0",
            });
        }
        Ok(ConjugateGradient { max_iterations, tolerance })
    }

    /// The iteration budget.
    pub fn max_iterations(&self) -> usize {
        self.max_iterations
    }

    /// Solves `A x = b`, starting from the `x` given (all zeros for the
    /// reference semantics), and leaves the result in `x`.
    pub fn solve<T: Real, A: LinearOperator<T> + ?Sized>(
        &self,
        a: &mut A,
        b: &[T],
        x: &mut [T],
        ws: &mut CgWorkspace<T>,
    ) -> Result<CgReport, OptimError> {
        let n = a.dim();
        same_len("right-hand side b", n, b.len())?;
        same_len("solution x", n, x.len())?;
        for buf in [&mut ws.r, &mut ws.p, &mut ws.ap] {
            buf.resize(n, T::ZERO);
        }
        let CgWorkspace { r, p, ap } = ws;
        // r = b − A x; with x = 0 this is b exactly and costs no product.
        r.copy_from_slice(b);
        // A fold without early exit, so that it runs in SIMD.
        if x.iter().fold(false, |nonzero, &v| nonzero | (v != T::ZERO)) {
            a.apply(x, ap)?;
            axpy(-T::ONE, ap, r);
        }
        p.copy_from_slice(r);
        let b_norm = norm(b).to_f64();
        let mut rr = dot(r, r);
        let mut report = CgReport {
            iterations: 0,
            residual_norm: rr.to_f64().sqrt(),
            relative_residual: 0.0,
            negative_curvature: false,
        };
        let converged = |rr: T| {
            rr == T::ZERO || (self.tolerance > 0.0 && rr.to_f64().sqrt() <= self.tolerance * b_norm)
        };
        while report.iterations < self.max_iterations && !converged(rr) {
            a.apply(p, ap)?;
            let pap = dot(p, ap);
            if pap == T::ZERO {
                break;
            }
            report.negative_curvature |= pap < T::ZERO;
            let alpha = rr / pap;
            axpy(alpha, p, x);
            axpy(-alpha, ap, r);
            let rr_new = dot(r, r);
            report.iterations += 1;
            if !(alpha.is_finite() && rr_new.is_finite()) {
                return Err(OptimError::NonFinite(format!(
                    "conjugate gradient's residual at iteration {}",
                    report.iterations
                )));
            }
            let beta = rr_new / rr;
            rr = rr_new;
            for (p, &r) in p.iter_mut().zip(r.iter()) {
                *p = r + beta * *p;
            }
        }
        report.residual_norm = rr.to_f64().sqrt();
        report.relative_residual =
            if b_norm > 0.0 { report.residual_norm / b_norm } else { report.residual_norm };
        Ok(report)
    }
}
