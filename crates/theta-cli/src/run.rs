//! Turning a [`TrainConfig`] into the pieces of a run: the network, the task
//! family, the learner and the outer optimizer. Every bad name or value
//! becomes one readable message.

use std::path::PathBuf;
use std::sync::Arc;
use theta_core::random::rng_from_seed;
use theta_core::{Activation, Model, TaskDistribution};
use theta_fomaml::{Fomaml, FomamlConfig};
use theta_imaml::{Curvature, Imaml, ImamlConfig, InnerSolver};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{MetaLearner, TrainState};
use theta_models::{BatchNormMlp, Init, Mlp, MlpSpec};
use theta_optim::{Adam, AdamState, OptimError, Optimizer, Sgd};
use theta_pretrained::{Pretrained, PretrainedConfig};
use theta_reptile::{InnerOptimizer, Reptile, ReptileConfig};

use theta_omniglot::{Omniglot, OmniglotTasks, Protocol, Side};
use theta_tasks::{CurveFitting, GaussianBlobs, LinearRegression, Sinusoid};

use crate::config::TrainConfig;

/// The algorithms `theta` knows, by their configuration names.
pub(crate) const ALGORITHMS: [&str; 5] = ["maml", "fomaml", "reptile", "imaml", "pretrained"];
/// The task families `theta` knows.
pub(crate) const TASKS: [&str; 5] = ["sinusoid", "curve", "linear", "blobs", "omniglot"];

/// The outer optimizer of a run: Adam or SGD.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outer {
    Adam(Adam),
    Sgd(Sgd),
}

/// Its state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OuterState {
    Adam(AdamState<f32>),
    Sgd,
}

impl Optimizer<f32> for Outer {
    type State = OuterState;
    fn init_state(&self, n: usize) -> OuterState {
        match self {
            Outer::Adam(a) => OuterState::Adam(a.init_state(n)),
            Outer::Sgd(_) => OuterState::Sgd,
        }
    }
    fn step(
        &self,
        theta: &mut [f32],
        grad: &[f32],
        state: &mut OuterState,
    ) -> Result<(), OptimError> {
        match (self, state) {
            (Outer::Adam(a), OuterState::Adam(s)) => a.step(theta, grad, s),
            (Outer::Sgd(s), OuterState::Sgd) => s.step(theta, grad, &mut ()),
            _ => Err(OptimError::NonFinite("an optimizer state of the other kind".into())),
        }
    }
}

/// The network of a run: the MLP, or its batch-normalised twin (same θ layout).
pub(crate) enum Network {
    Plain(Mlp),
    BatchNorm(BatchNormMlp),
}

impl Network {
    pub(crate) fn as_model(&self) -> &dyn Model<f32> {
        match self {
            Network::Plain(m) => m,
            Network::BatchNorm(m) => m,
        }
    }

    fn init(&self, init: Init, seed: u64) -> Vec<f32> {
        match self {
            Network::Plain(m) => m.init(init, &mut rng_from_seed(seed)),
            Network::BatchNorm(m) => m.init(init, &mut rng_from_seed(seed)),
        }
    }
}

/// Everything a run is made of.
pub(crate) struct Run {
    pub(crate) model: Network,
    pub(crate) dist: Box<dyn TaskDistribution<f32>>,
    pub(crate) learner: Box<dyn MetaLearner<f32>>,
    pub(crate) outer: Outer,
}

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("unknown {what} {value:?} (expected one of: {})", allowed.join(", ")))
    }
}

/// The folder of the decoded-Omniglot cache: the configured one, else
/// `$XDG_CACHE_HOME/theta`, else `~/.cache/theta`, else `.theta-cache`.
fn cache_dir(c: &TrainConfig) -> PathBuf {
    if !c.cache.is_empty() {
        return PathBuf::from(&c.cache);
    }
    let home = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty()).map(PathBuf::from);
    home("XDG_CACHE_HOME")
        .or_else(|| home("HOME").map(|h| h.join(".cache")))
        .map_or_else(|| PathBuf::from(".theta-cache"), |d| d.join("theta"))
}

/// Loads Omniglot from the configured folder, with a progress bar the first
/// time (when the images are decoded) and a note when the cache was unusable.
fn omniglot(c: &TrainConfig) -> Result<Arc<Omniglot>, String> {
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "decoding Omniglot (first load only) {bar:30} {pos}/{len} images {eta}",
        )
        .expect("a valid template"),
    );
    let (data, report) =
        Omniglot::load(&PathBuf::from(&c.data), &cache_dir(c), &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if let Some(problem) = report.cache_problem {
        eprintln!("note: {problem}");
    } else if !report.from_cache {
        eprintln!("decoded Omniglot once; cached in {}", report.cache.display());
    }
    Ok(Arc::new(data))
}

/// Which tasks a family is asked for: those to train on or those to test on
/// (only Omniglot keeps them apart; the synthetic families draw both from
/// one distribution, with different seeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Train,
    Test,
}

/// The task family of a configuration, with `support` and `query` points.
pub(crate) fn task_family(
    c: &TrainConfig,
    support: usize,
    query: usize,
    purpose: Purpose,
) -> Result<Box<dyn TaskDistribution<f32>>, String> {
    one_of("task", &c.task, &TASKS)?;
    let e = |e: theta_core::Error| e.to_string();
    Ok(match c.task.as_str() {
        "sinusoid" => Box::new(Sinusoid::new(support, query).map_err(e)?),
        "curve" => Box::new(CurveFitting::new(support, query).map_err(e)?),
        "linear" => Box::new(LinearRegression::new(c.dim, 0.0, support, query).map_err(e)?),
        "blobs" => Box::new(GaussianBlobs::new(c.n_way, support, query, c.dim, 1.0).map_err(e)?),
        _ => {
            let side = if purpose == Purpose::Train { Side::Train } else { Side::Test };
            let tasks = OmniglotTasks::new(
                omniglot(c)?,
                Protocol::default(),
                side,
                c.n_way,
                support,
                query,
            )
            .map_err(|e| e.to_string())?;
            Box::new(tasks)
        }
    })
}

/// The network for a configuration and task family.
pub(crate) fn network(
    c: &TrainConfig,
    dist: &dyn TaskDistribution<f32>,
) -> Result<Network, String> {
    let hidden = Activation::from_name(&c.activation).ok_or_else(|| {
        format!("unknown activation {:?} (expected identity, relu, tanh or sigmoid)", c.activation)
    })?;
    let mut sizes = vec![dist.input_dim()];
    sizes.extend(&c.hidden);
    sizes.push(dist.output_dim());
    let output = if c.task == "curve" && c.hidden.is_empty() {
        Activation::Tanh
    } else {
        Activation::Identity
    };
    let spec = MlpSpec { layer_sizes: sizes, hidden, output, loss: dist.loss() };
    let e = |e: theta_core::Error| e.to_string();
    Ok(if c.batch_norm {
        Network::BatchNorm(BatchNormMlp::new(spec, BATCH_NORM_EPSILON).map_err(e)?)
    } else {
        Network::Plain(Mlp::new(spec).map_err(e)?)
    })
}

/// ε of batch normalisation: TensorFlow's default, which cbfinn/maml uses.
const BATCH_NORM_EPSILON: f64 = 1e-3;

/// Builds a run, checking every name and value.
pub(crate) fn build(c: &TrainConfig) -> Result<Run, String> {
    one_of("algorithm", &c.algorithm, &ALGORITHMS)?;
    one_of("outer optimizer", &c.outer_optimizer, &["adam", "sgd"])?;
    one_of("init", &c.init, &["uniform", "uniform-zero-bias", "truncated-normal"])?;
    if c.steps == 0 {
        return Err("steps must be at least 1".into());
    }
    let dist = task_family(c, c.support, c.query, Purpose::Train)?;
    let model = network(c, dist.as_ref())?;
    let m = c.inner_steps();
    let e = |e: theta_meta::MetaError| e.to_string();
    let learner: Box<dyn MetaLearner<f32>> = match c.algorithm.as_str() {
        "maml" => {
            Box::new(Maml::new(MamlConfig { inner_lr: c.inner_lr, inner_steps: m }).map_err(e)?)
        }
        "fomaml" => {
            Box::new(Fomaml::new(FomamlConfig { inner_lr: c.inner_lr, inner_steps: m }).map_err(e)?)
        }
        "reptile" => {
            one_of("reptile_inner", &c.reptile_inner, &["sgd", "adam"])?;
            let inner_optimizer = if c.reptile_inner == "adam" {
                InnerOptimizer::Adam { beta1: 0.0, beta2: 0.999, epsilon: 1e-8 }
            } else {
                InnerOptimizer::Sgd
            };
            Box::new(
                Reptile::new(ReptileConfig {
                    inner_lr: c.inner_lr,
                    inner_steps: m,
                    inner_optimizer,
                })
                .map_err(e)?,
            )
        }
        "imaml" => {
            one_of("curvature", &c.curvature, &["gauss-newton", "hessian"])?;
            one_of("imaml_inner", &c.imaml_inner, &["proximal-gauss-newton", "gradient"])?;
            let curvature =
                if c.curvature == "hessian" { Curvature::Hessian } else { Curvature::GaussNewton };
            let inner = if c.imaml_inner == "gradient" {
                InnerSolver::GradientSteps { steps: c.imaml_inner_steps, lr: c.inner_lr }
            } else {
                InnerSolver::ProximalGaussNewton {
                    steps: c.imaml_inner_steps,
                    cg_iterations: c.imaml_inner_cg,
                }
            };
            Box::new(
                Imaml::new(ImamlConfig {
                    lambda: c.lambda,
                    curvature,
                    inner,
                    cg_iterations: c.cg_iterations,
                })
                .map_err(e)?,
            )
        }
        _ => Box::new(
            Pretrained::new(PretrainedConfig { fine_tune_lr: c.inner_lr, fine_tune_steps: m })
                .map_err(e)?,
        ),
    };
    let o = |e: OptimError| e.to_string();
    let outer = match c.outer_optimizer.as_str() {
        "adam" => Outer::Adam(Adam::new(c.outer_lr).map_err(o)?),
        _ => Outer::Sgd(Sgd::new(c.outer_lr).map_err(o)?),
    };
    Ok(Run { model, dist, learner, outer })
}

impl Run {
    /// The state of a new run: θ₀ from the seed, a fresh optimizer, the task
    /// stream from the seed.
    pub(crate) fn initial_state(&self, c: &TrainConfig) -> TrainState<f32, OuterState> {
        let init = match c.init.as_str() {
            "truncated-normal" => Init::TruncatedNormal { std: 0.01 },
            "uniform-zero-bias" => Init::UniformFanInZeroBias,
            _ => Init::UniformFanIn,
        };
        let theta: Vec<f32> = self.model.init(init, c.seed);
        TrainState {
            optimizer: self.outer.init_state(self.model.as_model().num_params()),
            theta,
            // A stream apart from the initialisation's.
            rng: rng_from_seed(c.seed ^ 0x9e37_79b9_7f4a_7c15),
            step: 0,
        }
    }
}
