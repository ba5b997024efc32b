//! The `theta-reference-case/1` format: parsing and validation.

use serde::Deserialize;
use serde_json::Value;
use theta_core::{Activation, Loss, Matrix, Model, Split, Targets, Task};
use theta_imaml::Curvature;
use theta_models::{Mlp, MlpSpec};

use crate::error::CaseError;

/// The format string this reader understands.
pub const FORMAT: &str = "theta-reference-case/1";

/// A parsed, validated reference case: a model, θ, tasks, and the values an
/// exact implementation must reproduce.
#[derive(Clone, Debug)]
pub struct ReferenceCase {
    /// The case's label.
    pub name: String,
    /// The network.
    pub model: MlpSpec,
    /// θ, in theta's flat layout.
    pub params: Vec<f64>,
    /// The tasks; every meta quantity is a mean over them.
    pub tasks: Vec<Task<f64>>,
    /// The quantities to reproduce.
    pub checks: Vec<Check>,
}

/// One quantity of a case and its expected value.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// What to compute.
    pub quantity: Quantity,
    /// What the independent implementation computed.
    pub expected: Expected,
}

/// An expected value.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    /// A number (a loss).
    Scalar(f64),
    /// A vector in θ's layout.
    Vector(Vec<f64>),
}

/// The quantities of the format (see `shared/reference/README.md`).
#[derive(Clone, Debug, PartialEq)]
pub enum Quantity {
    /// Mean over tasks of `L_s(θ)`.
    SupportLoss,
    /// Its gradient.
    SupportGrad,
    /// `H v`, H the Hessian of the mean support loss.
    SupportHvp {
        /// The direction.
        v: Vec<f64>,
    },
    /// `G v`, G the Gauss-Newton matrix of the mean support loss.
    SupportGnvp {
        /// The direction.
        v: Vec<f64>,
    },
    /// MAML's exact meta-gradient through m inner SGD steps of size α.
    MamlMetaGrad {
        /// m.
        inner_steps: usize,
        /// α.
        alpha: f64,
        /// Mean of `L_q(φ_m)`.
        meta_loss: f64,
    },
    /// First-order MAML: mean of `∇L_q(φ_m)`.
    FomamlMetaGrad {
        /// m.
        inner_steps: usize,
        /// α.
        alpha: f64,
        /// Mean of `L_q(φ_m)`.
        meta_loss: f64,
    },
    /// Reptile's direction: mean of `φ_m − θ`.
    ReptileDirection {
        /// m.
        inner_steps: usize,
        /// α.
        alpha: f64,
    },
    /// iMAML's meta-gradient from conjugate gradient on `(I + C/λ) x = ∇L_q(φ_k)`.
    ImamlMetaGrad {
        /// λ.
        lambda: f64,
        /// C: Hessian or Gauss-Newton matrix of the support loss at φ_k.
        curvature: Curvature,
        /// k inner steps of `φ ← φ − η(∇L_s(φ) + λ(φ − θ))`.
        inner_steps: usize,
        /// η.
        inner_lr: f64,
        /// CG iterations from x = 0, no early stop.
        cg_iterations: usize,
        /// Mean of `L_q(φ_k)`.
        meta_loss: f64,
        /// Mean of the exact solutions of the linear systems.
        exact_solve: Vec<f64>,
    },
}

impl Quantity {
    /// The expected mean meta-loss, for the quantities that record one.
    pub fn expected_meta_loss(&self) -> Option<f64> {
        match self {
            Quantity::MamlMetaGrad { meta_loss, .. }
            | Quantity::FomamlMetaGrad { meta_loss, .. }
            | Quantity::ImamlMetaGrad { meta_loss, .. } => Some(*meta_loss),
            _ => None,
        }
    }

    /// The relative tolerance in f64 of the format's README: 1e-9, and 1e-8
    /// for the fixed-iteration conjugate-gradient results.
    pub fn tolerance_f64(&self) -> f64 {
        match self {
            Quantity::ImamlMetaGrad { .. } => 1e-8,
            _ => 1e-9,
        }
    }

    /// The format's name of the quantity.
    pub fn name(&self) -> &'static str {
        match self {
            Quantity::SupportLoss => "support_loss",
            Quantity::SupportGrad => "support_grad",
            Quantity::SupportHvp { .. } => "support_hvp",
            Quantity::SupportGnvp { .. } => "support_gnvp",
            Quantity::MamlMetaGrad { .. } => "maml_meta_grad",
            Quantity::FomamlMetaGrad { .. } => "fomaml_meta_grad",
            Quantity::ReptileDirection { .. } => "reptile_direction",
            Quantity::ImamlMetaGrad { .. } => "imaml_meta_grad",
        }
    }
}

#[derive(Deserialize)]
struct RawCase {
    format: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    dtype: Option<String>,
    model: RawModel,
    loss: String,
    params: Vec<f64>,
    tasks: Vec<RawTask>,
    checks: Vec<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct RawModel {
    kind: String,
    layer_sizes: Vec<usize>,
    hidden_activation: String,
    output_activation: String,
}

#[derive(Deserialize)]
struct RawTask {
    x_support: Vec<Vec<f64>>,
    y_support: Vec<Value>,
    x_query: Vec<Vec<f64>>,
    y_query: Vec<Value>,
}

impl ReferenceCase {
    /// Parses and validates a case from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, CaseError> {
        let raw: RawCase =
            serde_json::from_str(text).map_err(|e| CaseError::Json(e.to_string()))?;
        if raw.format != FORMAT {
            return Err(CaseError::Format(raw.format));
        }
        if let Some(dtype) = &raw.dtype
            && dtype != "float64"
        {
            return Err(CaseError::Invalid(format!("dtype {dtype:?}: only float64 cases exist")));
        }
        if raw.model.kind != "mlp" {
            return Err(CaseError::Invalid(format!(
                "model kind {:?}: this reader knows \"mlp\"",
                raw.model.kind
            )));
        }
        let activation = |name: &str| {
            Activation::from_name(name)
                .ok_or_else(|| theta_core::Error::UnknownActivation(name.into()))
        };
        let model = MlpSpec {
            layer_sizes: raw.model.layer_sizes,
            hidden: activation(&raw.model.hidden_activation)?,
            output: activation(&raw.model.output_activation)?,
            loss: Loss::from_name(&raw.loss)
                .ok_or_else(|| theta_core::Error::UnknownLoss(raw.loss.clone()))?,
        };
        let mlp = Mlp::new(model.clone())?;
        let p = Model::<f64>::num_params(&mlp);
        check_vector("params", &raw.params, p)?;
        if raw.tasks.is_empty() {
            return Err(CaseError::Invalid("the case has no tasks".into()));
        }
        let tasks = raw
            .tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| task(i, t, &model))
            .collect::<Result<Vec<_>, _>>()?;
        let checks = raw
            .checks
            .into_iter()
            .enumerate()
            .map(|(i, c)| check(i, c, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ReferenceCase { name: raw.name, model, params: raw.params, tasks, checks })
    }

    /// The network of the case.
    pub fn mlp(&self) -> Mlp {
        Mlp::new(self.model.clone()).expect("validated when the case was read")
    }
}

fn check_vector(what: &str, v: &[f64], len: usize) -> Result<(), CaseError> {
    if v.len() != len {
        return Err(CaseError::Invalid(format!(
            "{what} has {} values, the model has {len} parameters",
            v.len()
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(CaseError::Invalid(format!("{what} holds a value that is not finite")));
    }
    Ok(())
}

fn task(index: usize, raw: RawTask, model: &MlpSpec) -> Result<Task<f64>, CaseError> {
    let split = |name: &'static str,
                 x: Vec<Vec<f64>>,
                 y: Vec<Value>|
     -> Result<Split<f64>, CaseError> {
        let context = |e: theta_core::Error| CaseError::Task { index, source: e };
        let x = Matrix::from_rows(&x).map_err(context)?;
        let d_in = model.layer_sizes[0];
        if x.rows() > 0 && x.cols() != d_in {
            return Err(CaseError::Invalid(format!(
                "task {index}: {name} inputs have {} columns, the model takes {d_in}",
                x.cols()
            )));
        }
        let d_out = model.layer_sizes[model.layer_sizes.len() - 1];
        let y = match model.loss {
            Loss::Mse => {
                let rows = y
                    .iter()
                    .map(|row| {
                        let row: Vec<f64> = serde_json::from_value(row.clone()).map_err(|_| {
                            CaseError::Invalid(format!("task {index}: a {name} target is not a row of numbers"))
                        })?;
                        if row.len() != d_out {
                            return Err(CaseError::Invalid(format!(
                                "task {index}: a {name} target row has {} values, the model outputs {d_out}",
                                row.len()
                            )));
                        }
                        Ok(row)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Targets::Values(Matrix::from_rows(&rows).map_err(context)?)
            }
            Loss::SoftmaxCrossEntropy => Targets::Labels(
                y.iter()
                    .map(|v| match v.as_f64() {
                        Some(l) if l >= 0.0 && l.fract() == 0.0 && (l as usize) < d_out => {
                            Ok(l as u32)
                        }
                        _ => Err(CaseError::Invalid(format!(
                            "task {index}: {name} label {v} is not a class in 0..{d_out}"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Split::new(name, x, y).map_err(context)
    };
    Ok(Task {
        support: split("support", raw.x_support, raw.y_support)?,
        query: split("query", raw.x_query, raw.y_query)?,
    })
}

fn check(
    index: usize,
    mut raw: serde_json::Map<String, Value>,
    p: usize,
) -> Result<Check, CaseError> {
    let name = raw
        .get("quantity")
        .and_then(Value::as_str)
        .ok_or_else(|| CaseError::Invalid(format!("check {index} has no quantity")))?
        .to_string();
    let mut field = |key: &str| {
        raw.remove(key)
            .ok_or_else(|| CaseError::Invalid(format!("check {index} ({name}) has no {key}")))
    };
    let number = |v: Value, key: &str| {
        v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            CaseError::Invalid(format!("check {index} ({name}): {key} is not a finite number"))
        })
    };
    let count = |v: Value, key: &str| {
        v.as_u64().map(|x| x as usize).ok_or_else(|| {
            CaseError::Invalid(format!("check {index} ({name}): {key} is not a whole number"))
        })
    };
    let vector = |v: Value, key: &str| -> Result<Vec<f64>, CaseError> {
        let v: Vec<f64> = serde_json::from_value(v).map_err(|_| {
            CaseError::Invalid(format!("check {index} ({name}): {key} is not a list of numbers"))
        })?;
        check_vector(&format!("check {index} ({name}) {key}"), &v, p)?;
        Ok(v)
    };
    let quantity = match name.as_str() {
        "support_loss" => Quantity::SupportLoss,
        "support_grad" => Quantity::SupportGrad,
        "support_hvp" => Quantity::SupportHvp { v: vector(field("v")?, "v")? },
        "support_gnvp" => Quantity::SupportGnvp { v: vector(field("v")?, "v")? },
        "maml_meta_grad" | "fomaml_meta_grad" => {
            let inner_steps = count(field("inner_steps")?, "inner_steps")?;
            let alpha = number(field("alpha")?, "alpha")?;
            let meta_loss = number(field("meta_loss")?, "meta_loss")?;
            if name == "maml_meta_grad" {
                Quantity::MamlMetaGrad { inner_steps, alpha, meta_loss }
            } else {
                Quantity::FomamlMetaGrad { inner_steps, alpha, meta_loss }
            }
        }
        "reptile_direction" => Quantity::ReptileDirection {
            inner_steps: count(field("inner_steps")?, "inner_steps")?,
            alpha: number(field("alpha")?, "alpha")?,
        },
        "imaml_meta_grad" => Quantity::ImamlMetaGrad {
            lambda: number(field("lambda")?, "lambda")?,
            curvature: match field("curvature")?.as_str() {
                Some("hessian") => Curvature::Hessian,
                Some("gauss_newton") => Curvature::GaussNewton,
                other => {
                    return Err(CaseError::Invalid(format!(
                        "check {index} (imaml_meta_grad): curvature {other:?} is not \"hessian\" or \"gauss_newton\""
                    )));
                }
            },
            inner_steps: count(field("inner_steps")?, "inner_steps")?,
            inner_lr: number(field("inner_lr")?, "inner_lr")?,
            cg_iterations: count(field("cg_iterations")?, "cg_iterations")?,
            meta_loss: number(field("meta_loss")?, "meta_loss")?,
            exact_solve: vector(field("exact_solve")?, "exact_solve")?,
        },
        other => return Err(CaseError::UnknownQuantity { index, name: other.to_string() }),
    };
    let expected = field("expected")?;
    let expected = if name == "support_loss" {
        Expected::Scalar(number(expected, "expected")?)
    } else {
        Expected::Vector(vector(expected, "expected")?)
    };
    Ok(Check { quantity, expected })
}
