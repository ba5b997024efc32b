//! Linear regression tasks: y = xᵀw + c + ε with w ~ N(0, I), c ~ N(0, 1),
//! x ~ U[−1, 1]^d and noise ε ~ N(0, σ²).

use theta_core::random::{Rng, standard_normal, uniform};
use theta_core::{Loss, Real, Result, Split, Task, TaskDistribution};

use crate::validate;

/// Linear regression in `dim` dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearRegression {
    dim: usize,
    noise_std: f64,
    support: usize,
    query: usize,
}

impl LinearRegression {
    /// `dim` inputs, noise of standard deviation `noise_std`.
    pub fn new(dim: usize, noise_std: f64, support: usize, query: usize) -> Result<Self> {
        validate::count("dim", dim)?;
        validate::non_negative("noise_std", noise_std)?;
        validate::count("support size", support)?;
        validate::count("query size", query)?;
        Ok(LinearRegression { dim, noise_std, support, query })
    }
}

impl<T: Real> TaskDistribution<T> for LinearRegression {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn input_dim(&self) -> usize {
        self.dim
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
        Task {
            support: Split::zeros(self.support, self.dim, Some(1)),
            query: Split::zeros(self.query, self.dim, Some(1)),
        }
    }
    /// Draw order: c, the support inputs, the query inputs, then w₁…w_d,
    /// then the noise of each support and query point. Each wᵢ is added into
    /// the targets as it is drawn, so no buffer holds w.
    fn sample_into(&self, rng: &mut Rng, task: &mut Task<T>) -> Result<()> {
        validate::task_shape(task, self.support, self.query)?;
        theta_core::check_len("input width", self.dim, task.support.x().cols())?;
        let c = T::from_f64(standard_normal(rng));
        for split in [&mut task.support, &mut task.query] {
            let (x, y, _) = split.parts_mut();
            x.iter_mut().for_each(|x| *x = T::from_f64(uniform(rng, -1.0, 1.0)));
            y.expect("linear tasks are regression tasks").fill(c);
        }
        for i in 0..self.dim {
            let w = T::from_f64(standard_normal(rng));
            for split in [&mut task.support, &mut task.query] {
                let (x, y, _) = split.parts_mut();
                for (row, y) in x.chunks_exact(self.dim).zip(y.expect("regression").iter_mut()) {
                    *y += row[i] * w;
                }
            }
        }
        for split in [&mut task.support, &mut task.query] {
            let (_, y, _) = split.parts_mut();
            for y in y.expect("regression") {
                *y += T::from_f64(self.noise_std * standard_normal(rng));
            }
        }
        Ok(())
    }
}
