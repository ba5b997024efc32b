//! Computing a case's quantities with theta, in `f32` or `f64`.

use theta_core::vector::{axpy, scale};
use theta_core::{Model, Pass, Real, Scratch, Task};
use theta_fomaml::{Fomaml, FomamlConfig};
use theta_imaml::{Imaml, ImamlConfig, InnerSolver};
use theta_maml::{Maml, MamlConfig};
use theta_meta::MetaLearner;
use theta_reptile::{InnerOptimizer, Reptile, ReptileConfig};

use crate::case::{Expected, Quantity, ReferenceCase};
use crate::error::CaseError;

/// What theta computed for one quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct Computed {
    /// The value to compare with the check's `expected`.
    pub value: Expected,
    /// The mean meta-loss, for quantities that have one.
    pub meta_loss: Option<f64>,
}

/// `‖actual − expected‖ / ‖expected‖` (for numbers, `|a − e| / |e|`), in f64.
/// Where `expected` is zero it is the absolute error.
pub fn relative_error(actual: &Expected, expected: &Expected) -> f64 {
    let (a, e): (&[f64], &[f64]) = match (actual, expected) {
        (Expected::Scalar(a), Expected::Scalar(e)) => {
            (std::slice::from_ref(a), std::slice::from_ref(e))
        }
        (Expected::Vector(a), Expected::Vector(e)) if a.len() == e.len() => (a, e),
        _ => return f64::INFINITY,
    };
    let diff = a.iter().zip(e).map(|(a, e)| (a - e) * (a - e)).sum::<f64>().sqrt();
    let norm = e.iter().map(|e| e * e).sum::<f64>().sqrt();
    if norm > 0.0 { diff / norm } else { diff }
}

/// Computes a quantity of `case` with theta in precision `T`; the case's θ,
/// tasks and directions are rounded to `T` first. Meta quantities run the
/// algorithm crates exactly as training does.
pub fn evaluate<T: Real>(case: &ReferenceCase, quantity: &Quantity) -> Result<Computed, CaseError> {
    let mlp = case.mlp();
    let model: &dyn Model<T> = &mlp;
    let p = model.num_params();
    let theta: Vec<T> = case.params.iter().map(|&x| T::from_f64(x)).collect();
    let tasks: Vec<Task<T>> = case.tasks.iter().map(Task::cast).collect();
    let n = tasks.len();
    let mut mean = vec![T::ZERO; p];
    let mut losses = vec![0.0; n];
    let to_f64 = |v: &[T]| Expected::Vector(v.iter().map(|x| x.to_f64()).collect());
    let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();

    let mut meta = |learner: &mut dyn MetaLearner<T>, mean: &mut [T]| -> Result<f64, CaseError> {
        let stats = learner
            .meta_gradient(model, &theta, &tasks, mean, &mut losses)
            .map_err(|e| CaseError::Invalid(format!("{}: {e}", learner.name())))?;
        Ok(stats.meta_loss)
    };
    let computed = match quantity {
        Quantity::SupportLoss
        | Quantity::SupportGrad
        | Quantity::SupportHvp { .. }
        | Quantity::SupportGnvp { .. } => {
            let mut scratch = Scratch::new();
            let (mut a, mut b) = (vec![T::ZERO; p], vec![T::ZERO; p]);
            let v = match quantity {
                Quantity::SupportHvp { v } | Quantity::SupportGnvp { v } => cast(v),
                _ => Vec::new(),
            };
            let mut total = 0.0;
            for task in &tasks {
                let (s, rows) = (&task.support, task.support.len());
                let (loss, term) = match quantity {
                    Quantity::SupportLoss => {
                        (model.loss(&theta, s, scratch.get(model, Pass::Loss, rows))?, &a)
                    }
                    Quantity::SupportGrad => (
                        model.loss_grad(
                            &theta,
                            s,
                            &mut a,
                            scratch.get(model, Pass::Gradient, rows),
                        )?,
                        &a,
                    ),
                    Quantity::SupportHvp { .. } => {
                        let sc = scratch.get(model, Pass::HessianVector, rows);
                        (model.loss_grad_hvp(&theta, s, &v, &mut a, &mut b, sc)?, &b)
                    }
                    _ => (
                        model.loss_gnvp(
                            &theta,
                            s,
                            &v,
                            &mut b,
                            scratch.get(model, Pass::GaussNewton, rows),
                        )?,
                        &b,
                    ),
                };
                total += loss.to_f64();
                axpy(T::ONE / T::from_usize(n), term, &mut mean);
            }
            match quantity {
                Quantity::SupportLoss => {
                    Computed { value: Expected::Scalar(total / n as f64), meta_loss: None }
                }
                _ => Computed { value: to_f64(&mean), meta_loss: None },
            }
        }
        Quantity::MamlMetaGrad { inner_steps, alpha, .. } => {
            let mut maml = Maml::new(MamlConfig { inner_lr: *alpha, inner_steps: *inner_steps })
                .map_err(|e| CaseError::Invalid(e.to_string()))?;
            let loss = meta(&mut maml, &mut mean)?;
            Computed { value: to_f64(&mean), meta_loss: Some(loss) }
        }
        Quantity::FomamlMetaGrad { inner_steps, alpha, .. } => {
            let mut fomaml =
                Fomaml::new(FomamlConfig { inner_lr: *alpha, inner_steps: *inner_steps })
                    .map_err(|e| CaseError::Invalid(e.to_string()))?;
            let loss = meta(&mut fomaml, &mut mean)?;
            Computed { value: to_f64(&mean), meta_loss: Some(loss) }
        }
        Quantity::ReptileDirection { inner_steps, alpha } => {
            let config = ReptileConfig {
                inner_lr: *alpha,
                inner_steps: *inner_steps,
                inner_optimizer: InnerOptimizer::Sgd,
            };
            let mut reptile =
                Reptile::new(config).map_err(|e| CaseError::Invalid(e.to_string()))?;
            meta(&mut reptile, &mut mean)?;
            // The learner returns θ − mean φ; the format's direction is mean φ − θ.
            scale(-T::ONE, &mut mean);
            Computed { value: to_f64(&mean), meta_loss: None }
        }
        Quantity::ImamlMetaGrad {
            lambda, curvature, inner_steps, inner_lr, cg_iterations, ..
        } => {
            let config = ImamlConfig {
                lambda: *lambda,
                curvature: *curvature,
                inner: InnerSolver::GradientSteps { steps: *inner_steps, lr: *inner_lr },
                cg_iterations: *cg_iterations,
            };
            let mut imaml = Imaml::new(config).map_err(|e| CaseError::Invalid(e.to_string()))?;
            let loss = meta(&mut imaml, &mut mean)?;
            Computed { value: to_f64(&mean), meta_loss: Some(loss) }
        }
    };
    Ok(computed)
}
