//! Sinusoid regression, exactly as in the MAML paper's code (cbfinn/maml,
//! `data_generator.py`): amplitude A ~ U[0.1, 5], phase φ ~ U[0, π],
//! x ~ U[−5, 5], y = A·sin(x − φ).

use std::f64::consts::PI;

use theta_core::random::{Rng, uniform};
use theta_core::{Loss, Real, Result, Task, TaskDistribution, vector};

use crate::{function, validate};

/// The sinusoid task family.
#[derive(Clone, Debug, PartialEq)]
pub struct Sinusoid {
    amplitude: (f64, f64),
    phase: (f64, f64),
    x_range: (f64, f64),
    support: usize,
    query: usize,
}

/// One sinusoid's parameters, y = A·sin(x − φ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SinusoidParams {
    /// A.
    pub amplitude: f64,
    /// φ.
    pub phase: f64,
}

impl SinusoidParams {
    /// y at x.
    pub fn eval(&self, x: f64) -> f64 {
        self.amplitude * (x - self.phase).sin()
    }

    /// y at each x, in place, with the vectorised sine task sampling uses
    /// (within 2 ulp of [`SinusoidParams::eval`]; the same values in f32).
    pub fn eval_in_place(&self, xs: &mut [f64]) {
        for x in xs.iter_mut() {
            *x -= self.phase;
        }
        vector::sin_in_place(xs);
        for x in xs.iter_mut() {
            *x *= self.amplitude;
        }
    }
}

impl Sinusoid {
    /// The MAML paper's distribution with `support` (K) and `query` points per task.
    pub fn new(support: usize, query: usize) -> Result<Self> {
        Self::with_ranges((0.1, 5.0), (0.0, PI), (-5.0, 5.0), support, query)
    }

    /// Any ranges for A, φ and x.
    pub fn with_ranges(
        amplitude: (f64, f64),
        phase: (f64, f64),
        x_range: (f64, f64),
        support: usize,
        query: usize,
    ) -> Result<Self> {
        validate::range("amplitude", amplitude)?;
        validate::range("phase", phase)?;
        validate::range("x_range", x_range)?;
        validate::count("support size", support)?;
        validate::count("query size", query)?;
        Ok(Sinusoid { amplitude, phase, x_range, support, query })
    }

    /// The x interval.
    pub fn x_range(&self) -> (f64, f64) {
        self.x_range
    }

    /// Draws a task into `task` and returns its (A, φ), for drawing the true curve.
    ///
    /// Draw order: A, φ, then the support xs, then the query xs.
    pub fn sample_with_params<T: Real>(
        &self,
        rng: &mut Rng,
        task: &mut Task<T>,
    ) -> Result<SinusoidParams> {
        validate::task_shape(task, self.support, self.query)?;
        let params = SinusoidParams {
            amplitude: uniform(rng, self.amplitude.0, self.amplitude.1),
            phase: uniform(rng, self.phase.0, self.phase.1),
        };
        function::fill_1d(rng, self.x_range, task, |xs| params.eval_in_place(xs));
        Ok(params)
    }
}

impl<T: Real> TaskDistribution<T> for Sinusoid {
    fn name(&self) -> &'static str {
        "sinusoid"
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
