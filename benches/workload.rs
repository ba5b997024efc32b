//! Issue 5's sinusoid workload, shared by the criterion bench
//! (`algorithms.rs`) and the in-process profiling example (`throughput`): a
//! 1-40-40-1 ReLU network, K = 10 support and 10 query points, 25 tasks per
//! meta-batch, α = 0.01, Adam 1e-3, f32.

use theta_core::random::rng_from_seed;
use theta_core::{Loss, Model};
use theta_fomaml::{Fomaml, FomamlConfig};
use theta_imaml::{Curvature, Imaml, ImamlConfig, InnerSolver};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{MetaLearner, TrainState};
use theta_models::{Init, Mlp, MlpSpec};
use theta_optim::{Adam, AdamState, Optimizer};
use theta_pretrained::{Pretrained, PretrainedConfig};
use theta_reptile::{Reptile, ReptileConfig};
use theta_tasks::Sinusoid;

/// Tasks per meta-batch, so that tasks/s = meta-steps/s × this.
pub const META_BATCH: usize = 25;

/// The network, the task family and the outer optimizer of the workload.
pub fn setup() -> (Mlp, Sinusoid, Adam) {
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).expect("a valid network");
    let dist = Sinusoid::new(10, 10).expect("valid shot counts");
    let adam = Adam::new(1e-3).expect("a valid learning rate");
    (mlp, dist, adam)
}

/// The state every measured step starts from: θ₀ from seed 0, a fresh Adam,
/// the task stream from seed 1.
pub fn initial_state(mlp: &Mlp, adam: &Adam) -> TrainState<f32, AdamState<f32>> {
    TrainState {
        optimizer: Optimizer::<f32>::init_state(adam, Model::<f32>::num_params(mlp)),
        theta: mlp.init(Init::UniformFanIn, &mut rng_from_seed(0)),
        rng: rng_from_seed(1),
        step: 0,
    }
}

/// The seven rows of issue 5's table, named as the bench reports them.
pub fn learners() -> Vec<(&'static str, Box<dyn MetaLearner<f32>>)> {
    let imaml_gradient = ImamlConfig {
        lambda: 2.0,
        curvature: Curvature::GaussNewton,
        inner: InnerSolver::GradientSteps { steps: 5, lr: 0.01 },
        cg_iterations: 5,
    };
    let valid = "the workload's configurations are valid";
    vec![
        ("maml_1_step", Box::new(Maml::new(MamlConfig::default()).expect(valid))),
        (
            "maml_5_steps",
            Box::new(Maml::new(MamlConfig { inner_lr: 0.01, inner_steps: 5 }).expect(valid)),
        ),
        ("fomaml_1_step", Box::new(Fomaml::new(FomamlConfig::default()).expect(valid))),
        ("reptile_5_steps", Box::new(Reptile::new(ReptileConfig::default()).expect(valid))),
        ("imaml_5_gradient_steps_5_cg", Box::new(Imaml::new(imaml_gradient).expect(valid))),
        (
            "imaml_3_proximal_gauss_newton_5_cg",
            Box::new(Imaml::new(ImamlConfig::default()).expect(valid)),
        ),
        ("pretrained", Box::new(Pretrained::new(PretrainedConfig::default()).expect(valid))),
    ]
}
