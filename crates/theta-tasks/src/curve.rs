//! The article's two-parameter curve fitting (seed 003, "Accumulated
//! Meta-Loss"): each task asks for g(x) = ξ(a·x + b).
//!
//! theta's choices, which the article leaves open: **ξ = tanh** and
//! **x ~ U[−3, 3]**. With them, the model is the 1-1 MLP with tanh as its
//! output activation (`layer_sizes [1, 1]`, MSE), so θ = (W, b) = (a, b) and a
//! task's loss is a function of two numbers that can be drawn as a landscape;
//! tanh saturates for |a·x + b| ≳ 2, which bends the landscapes as the article
//! wants ("to make the resulting loss spaces a bit more interesting").
//! The article's example tasks are [`ARTICLE_TASKS`].

use theta_core::random::{Rng, uniform};
use theta_core::{Loss, Matrix, Real, Result, Split, Targets, Task, TaskDistribution};

use crate::{function, validate};

/// The article's two tasks: (a, b) = (0.3, 0.05) and (0.83, 0.75).
pub const ARTICLE_TASKS: [CurveParams; 2] =
    [CurveParams { a: 0.3, b: 0.05 }, CurveParams { a: 0.83, b: 0.75 }];

/// One task's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurveParams {
    /// Slope a.
    pub a: f64,
    /// Offset b.
    pub b: f64,
}

impl CurveParams {
    /// g(x) = tanh(a·x + b).
    pub fn eval(&self, x: f64) -> f64 {
        (self.a * x + self.b).tanh()
    }
}

/// The curve-fitting family: a ~ U[a_range], b ~ U[b_range].
#[derive(Clone, Debug, PartialEq)]
pub struct CurveFitting {
    a: (f64, f64),
    b: (f64, f64),
    x_range: (f64, f64),
    support: usize,
    query: usize,
}

impl CurveFitting {
    /// a, b ~ U[0, 1] (a range that holds both article tasks), x ~ U[−3, 3].
    pub fn new(support: usize, query: usize) -> Result<Self> {
        Self::with_ranges((0.0, 1.0), (0.0, 1.0), (-3.0, 3.0), support, query)
    }

    /// Any ranges.
    pub fn with_ranges(
        a: (f64, f64),
        b: (f64, f64),
        x_range: (f64, f64),
        support: usize,
        query: usize,
    ) -> Result<Self> {
        validate::range("a", a)?;
        validate::range("b", b)?;
        validate::range("x_range", x_range)?;
        validate::count("support size", support)?;
        validate::count("query size", query)?;
        Ok(CurveFitting { a, b, x_range, support, query })
    }

    /// A deterministic task for `params`: both splits hold `points` xs evenly
    /// spaced over the x range (for loss landscapes, which should not depend
    /// on a draw).
    pub fn grid_task<T: Real>(&self, params: CurveParams, points: usize) -> Result<Task<T>> {
        validate::count("points", points)?;
        let (lo, hi) = self.x_range;
        let xs: Vec<f64> = (0..points)
            .map(|i| {
                if points == 1 {
                    0.5 * (lo + hi)
                } else {
                    lo + (hi - lo) * i as f64 / (points - 1) as f64
                }
            })
            .collect();
        let split = |name| {
            Split::new(
                name,
                Matrix::from_vec(points, 1, xs.iter().map(|&x| T::from_f64(x)).collect())?,
                Targets::Values(Matrix::from_vec(
                    points,
                    1,
                    xs.iter().map(|&x| T::from_f64(params.eval(x))).collect(),
                )?),
            )
        };
        Ok(Task { support: split("support")?, query: split("query")? })
    }

    /// Draws a task into `task`, returning its (a, b). Draw order: a, b,
    /// support xs, query xs.
    pub fn sample_with_params<T: Real>(
        &self,
        rng: &mut Rng,
        task: &mut Task<T>,
    ) -> Result<CurveParams> {
        validate::task_shape(task, self.support, self.query)?;
        let params = CurveParams {
            a: uniform(rng, self.a.0, self.a.1),
            b: uniform(rng, self.b.0, self.b.1),
        };
        function::fill_1d(rng, self.x_range, task, |xs| {
            for x in xs {
                *x = params.eval(*x);
            }
        });
        Ok(params)
    }
}

impl<T: Real> TaskDistribution<T> for CurveFitting {
    fn name(&self) -> &'static str {
        "curve"
    }
    fn input_dim(&self) -> usize {
        1
    }
    fn output_dim(&self) -> usize {
        1
    }
    fn loss(&self) -> Loss {
        Loss::Mse
    }
    fn support_size(&self) -> usize {
        self.support
    }
    fn query_size(&self) -> usize {
        self.query
    }
    fn empty_task(&self) -> Task<T> {
        function::empty_1d(self.support, self.query)
    }
    fn sample_into(&self, rng: &mut Rng, task: &mut Task<T>) -> Result<()> {
        self.sample_with_params(rng, task).map(|_| ())
    }
}
