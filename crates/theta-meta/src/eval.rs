//! The evaluation protocol of cbfinn/maml: a fixed set of test tasks drawn
//! from a fixed seed, K-shot adaptation for 0 to N steps, and the query loss
//! (and, for classification, accuracy) as a mean with its 95% confidence
//! interval at each step count.

use theta_core::random::rng_from_seed;
use theta_core::vector::axpy;
use theta_core::{Loss, Model, Pass, Real, Scratch, Split, Targets, Task, TaskDistribution};

use crate::error::{MetaError, at_least_one, positive};

/// A mean and the half-width of its 95% confidence interval
/// (1.96 · sample standard deviation / √n).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// The mean.
    pub mean: f64,
    /// The 95% half-width.
    pub ci95: f64,
}

impl Stat {
    /// From samples (at least one). A non-finite sample makes both the mean
    /// and the interval infinite: a diverged task is not averaged away.
    pub fn from_samples(x: &[f64]) -> Stat {
        if x.iter().any(|v| !v.is_finite()) {
            return Stat { mean: f64::INFINITY, ci95: f64::INFINITY };
        }
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = if x.len() > 1 {
            x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Stat { mean, ci95: 1.96 * (var / n).sqrt() }
    }
}

impl std::fmt::Display for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(3);
        write!(f, "{:.p$} ± {:.p$}", self.mean, self.ci95)
    }
}

/// An algorithm's own U(θ): writes φ for θ and a support set.
pub type Adaptation<'a, T> = dyn FnMut(&[T], &Split<T>, &mut [T]) -> Result<(), MetaError> + 'a;

/// The query metrics after some number of adaptation steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalPoint {
    /// Adaptation steps taken.
    pub steps: usize,
    /// Query loss (MSE for regression).
    pub loss: Stat,
    /// Query accuracy, for classification.
    pub accuracy: Option<Stat>,
    /// Tasks whose adaptation diverged (a non-finite loss or parameter) by
    /// this step; their loss counts as infinite and their accuracy as 0.
    pub diverged: usize,
}

/// The protocol's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    tasks: usize,
    seed: u64,
    alpha: f64,
    max_steps: usize,
}

impl Evaluation {
    /// `tasks` test tasks from generator seed `seed`, SGD with step α for
    /// 0..=`max_steps` steps. The MAML paper: 600 tasks, 10 steps.
    pub fn new(tasks: usize, seed: u64, alpha: f64, max_steps: usize) -> Result<Self, MetaError> {
        Ok(Evaluation {
            tasks: at_least_one("evaluation tasks", tasks)?,
            seed,
            alpha: positive("evaluation step size α", alpha)?,
            max_steps,
        })
    }

    /// The test tasks: the same for every model evaluated with these settings.
    pub fn tasks<T: Real>(
        &self,
        dist: &dyn TaskDistribution<T>,
    ) -> Result<Vec<Task<T>>, MetaError> {
        let mut rng = rng_from_seed(self.seed);
        (0..self.tasks).map(|_| dist.sample(&mut rng).map_err(MetaError::from)).collect()
    }

    /// Query metrics after 0, 1, …, `max_steps` SGD steps from θ on each
    /// task's support set: the shared protocol every algorithm is held to.
    pub fn sgd_curve<T: Real>(
        &self,
        model: &dyn Model<T>,
        theta: &[T],
        dist: &dyn TaskDistribution<T>,
    ) -> Result<Vec<EvalPoint>, MetaError> {
        let tasks = self.tasks(dist)?;
        let p = model.num_params();
        let (mut phi, mut grad) = (vec![T::ZERO; p], vec![T::ZERO; p]);
        let mut scratch = Scratch::new();
        let mut out = Vec::new();
        let n = self.max_steps + 1;
        let mut losses = vec![Vec::with_capacity(self.tasks); n];
        let mut accs = vec![Vec::with_capacity(self.tasks); n];
        let mut diverged = vec![0; n];
        for task in &tasks {
            phi.copy_from_slice(theta);
            let mut alive = true;
            for s in 0..n {
                if alive {
                    match diverges(query_metrics(model, &phi, &task.query, &mut scratch, &mut out))?
                    {
                        Some((l, a)) => {
                            losses[s].push(l);
                            accs[s].extend(a);
                        }
                        None => alive = false,
                    }
                }
                if !alive {
                    losses[s].push(f64::INFINITY);
                    if model.loss_kind() == Loss::SoftmaxCrossEntropy {
                        accs[s].push(0.0);
                    }
                    diverged[s] += 1;
                    continue;
                }
                if s + 1 < n {
                    let sc = scratch.get(model, Pass::Gradient, task.support.len());
                    match diverges(
                        model
                            .loss_grad(&phi, &task.support, &mut grad, sc)
                            .map_err(MetaError::from),
                    )? {
                        Some(_) => axpy(T::from_f64(-self.alpha), &grad, &mut phi),
                        None => alive = false,
                    }
                }
            }
        }
        Ok((0..n)
            .map(|s| EvalPoint {
                steps: s,
                loss: Stat::from_samples(&losses[s]),
                accuracy: (!accs[s].is_empty()).then(|| Stat::from_samples(&accs[s])),
                diverged: diverged[s],
            })
            .collect())
    }

    /// Query metrics after an algorithm's own adaptation (iMAML's proximal
    /// solve, say) on the same test tasks. `steps` in the result is 0.
    pub fn with_adaptation<T: Real>(
        &self,
        model: &dyn Model<T>,
        theta: &[T],
        dist: &dyn TaskDistribution<T>,
        adapt: &mut Adaptation<'_, T>,
    ) -> Result<EvalPoint, MetaError> {
        let tasks = self.tasks(dist)?;
        let mut phi = vec![T::ZERO; model.num_params()];
        let mut scratch = Scratch::new();
        let mut out = Vec::new();
        let (mut losses, mut accs, mut diverged) = (Vec::new(), Vec::new(), 0);
        for task in &tasks {
            let metrics = match diverges(adapt(theta, &task.support, &mut phi))? {
                Some(()) => {
                    diverges(query_metrics(model, &phi, &task.query, &mut scratch, &mut out))?
                }
                None => None,
            };
            match metrics {
                Some((l, a)) => {
                    losses.push(l);
                    accs.extend(a);
                }
                None => {
                    diverged += 1;
                    losses.push(f64::INFINITY);
                    if model.loss_kind() == Loss::SoftmaxCrossEntropy {
                        accs.push(0.0);
                    }
                }
            }
        }
        Ok(EvalPoint {
            steps: 0,
            loss: Stat::from_samples(&losses),
            accuracy: (!accs.is_empty()).then(|| Stat::from_samples(&accs)),
            diverged,
        })
    }
}

/// `Ok(None)` where a computation diverged (a non-finite loss, parameter or
/// iterate), so that evaluation can count it; other errors pass through.
fn diverges<X>(r: Result<X, MetaError>) -> Result<Option<X>, MetaError> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(MetaError::Model(theta_core::Error::NonFinite(_)) | MetaError::NonFinite(_)) => {
            Ok(None)
        }
        Err(MetaError::Optim(theta_optim::OptimError::NonFinite(_))) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The query loss at φ and, for classification, the fraction of query points
/// whose largest output is their label.
fn query_metrics<T: Real>(
    model: &dyn Model<T>,
    phi: &[T],
    query: &Split<T>,
    scratch: &mut Scratch<T>,
    out: &mut Vec<T>,
) -> Result<(f64, Option<f64>), MetaError> {
    let rows = query.len();
    let loss = model.loss(phi, query, scratch.get(model, Pass::Loss, rows))?.to_f64();
    let accuracy = match (model.loss_kind(), query.y()) {
        (Loss::SoftmaxCrossEntropy, Targets::Labels(labels)) => {
            let d = model.output_dim();
            out.resize(rows * d, T::ZERO);
            model.predict(phi, query.x(), out, scratch.get(model, Pass::Predict, rows))?;
            let hits = out
                .chunks_exact(d)
                .zip(labels)
                .filter(|(row, label)| {
                    let best = (0..d).fold(0, |b, j| if row[j] > row[b] { j } else { b });
                    best == **label as usize
                })
                .count();
            Some(hits as f64 / rows as f64)
        }
        _ => None,
    };
    Ok((loss, accuracy))
}
