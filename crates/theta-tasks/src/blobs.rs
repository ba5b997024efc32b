//! N-way K-shot classification of Gaussian blobs: a synthetic family that
//! exercises the classification path (softmax cross-entropy, labels) quickly.
//!
//! Each task draws N class centres from N(0, s²·I) in `dim` dimensions; a
//! point of class c is its centre plus N(0, I) noise. The support set holds
//! K points per class and the query set Q, class by class (labels 0..N in
//! order; the losses do not depend on row order).

use theta_core::random::{Rng, standard_normal};
use theta_core::{Loss, Real, Result, Split, Task, TaskDistribution};

use crate::validate;

/// Gaussian-blob classification tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianBlobs {
    n_way: usize,
    k_shot: usize,
    query_per_class: usize,
    dim: usize,
    center_std: f64,
}

impl GaussianBlobs {
    /// `n_way` classes (at least 2), `k_shot` support and `query_per_class`
    /// query points per class, in `dim` dimensions, centres of standard
    /// deviation `center_std`.
    pub fn new(
        n_way: usize,
        k_shot: usize,
        query_per_class: usize,
        dim: usize,
        center_std: f64,
    ) -> Result<Self> {
        if n_way < 2 {
            return Err(theta_core::Error::InvalidParameter {
                name: "n_way",
                value: n_way.to_string(),
                reason: "classification needs at least 2 classes",
            });
        }
        validate::count("k_shot", k_shot)?;
        validate::count("query_per_class", query_per_class)?;
        validate::count("dim", dim)?;
        validate::non_negative("center_std", center_std)?;
        Ok(GaussianBlobs { n_way, k_shot, query_per_class, dim, center_std })
    }
}

impl<T: Real> TaskDistribution<T> for GaussianBlobs {
    fn name(&self) -> &'static str {
        "blobs"
    }
    fn input_dim(&self) -> usize {
        self.dim
    }
    fn output_dim(&self) -> usize {
        self.n_way
    }
    fn loss(&self) -> Loss {
        Loss::SoftmaxCrossEntropy
    }
    fn support_size(&self) -> usize {
        self.n_way * self.k_shot
    }
    fn query_size(&self) -> usize {
        self.n_way * self.query_per_class
    }
    fn empty_task(&self) -> Task<T> {
        Task {
            support: Split::zeros(self.n_way * self.k_shot, self.dim, None),
            query: Split::zeros(self.n_way * self.query_per_class, self.dim, None),
        }
    }
    /// Draw order: the centres (class by class, coordinate by coordinate),
    /// then the noise of the support points, then of the query points. Each
    /// centre coordinate is written straight into its class's rows, so
    /// sampling needs no buffer.
    fn sample_into(&self, rng: &mut Rng, task: &mut Task<T>) -> Result<()> {
        validate::task_shape(task, self.n_way * self.k_shot, self.n_way * self.query_per_class)?;
        theta_core::check_len("input width", self.dim, task.support.x().cols())?;
        let d = self.dim;
        for c in 0..self.n_way {
            for j in 0..d {
                let centre = T::from_f64(self.center_std * standard_normal(rng));
                for (split, per_class) in
                    [(&mut task.support, self.k_shot), (&mut task.query, self.query_per_class)]
                {
                    let (x, _, labels) = split.parts_mut();
                    let labels = labels.expect("blob tasks are classification tasks");
                    for row in c * per_class..(c + 1) * per_class {
                        x[row * d + j] = centre;
                        labels[row] = c as u32;
                    }
                }
            }
        }
        for split in [&mut task.support, &mut task.query] {
            let (x, _, _) = split.parts_mut();
            for v in x.iter_mut() {
                *v += T::from_f64(standard_normal(rng));
            }
        }
        Ok(())
    }
}
