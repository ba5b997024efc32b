//! Computing a case's quantities with theta, in `f32` or `f64`.

use theta_core::vector::axpy;
use theta_core::{Model, Pass, Real, Scratch, Task};

use crate::case::{Expected, Quantity, ReferenceCase};
use crate::error::CaseError;

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

/// Computes a support quantity (`support_loss`, `support_grad`,
/// `support_hvp`, `support_gnvp`) with theta's model in precision `T`; the
/// case's θ, tasks and directions are rounded to `T` first. Returns `None`
/// for the meta quantities, which the algorithm crates compute.
pub fn support_quantity<T: Real>(
    case: &ReferenceCase,
    quantity: &Quantity,
) -> Result<Option<Expected>, CaseError> {
    let mlp = case.mlp();
    let model: &dyn Model<T> = &mlp;
    let p = model.num_params();
    let theta: Vec<T> = case.params.iter().map(|&x| T::from_f64(x)).collect();
    let tasks: Vec<Task<T>> = case.tasks.iter().map(Task::cast).collect();
    let inv_tasks = T::ONE / T::from_usize(tasks.len());
    let mut scratch = Scratch::new();
    let mut mean = vec![T::ZERO; p];
    let (mut a, mut b) = (vec![T::ZERO; p], vec![T::ZERO; p]);
    let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let to_f64 = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
    match quantity {
        Quantity::SupportLoss => {
            let mut total = 0.0;
            for task in &tasks {
                let rows = task.support.len();
                total += model
                    .loss(&theta, &task.support, scratch.get(model, Pass::Loss, rows))?
                    .to_f64();
            }
            Ok(Some(Expected::Scalar(total / tasks.len() as f64)))
        }
        Quantity::SupportGrad => {
            for task in &tasks {
                let rows = task.support.len();
                model.loss_grad(
                    &theta,
                    &task.support,
                    &mut a,
                    scratch.get(model, Pass::Gradient, rows),
                )?;
                axpy(inv_tasks, &a, &mut mean);
            }
            Ok(Some(Expected::Vector(to_f64(&mean))))
        }
        Quantity::SupportHvp { v } => {
            let v = cast(v);
            for task in &tasks {
                let rows = task.support.len();
                let s = scratch.get(model, Pass::HessianVector, rows);
                model.loss_grad_hvp(&theta, &task.support, &v, &mut a, &mut b, s)?;
                axpy(inv_tasks, &b, &mut mean);
            }
            Ok(Some(Expected::Vector(to_f64(&mean))))
        }
        Quantity::SupportGnvp { v } => {
            let v = cast(v);
            for task in &tasks {
                let rows = task.support.len();
                let s = scratch.get(model, Pass::GaussNewton, rows);
                model.loss_gnvp(&theta, &task.support, &v, &mut b, s)?;
                axpy(inv_tasks, &b, &mut mean);
            }
            Ok(Some(Expected::Vector(to_f64(&mean))))
        }
        _ => Ok(None),
    }
}
