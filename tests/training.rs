//! Short, seeded meta-training runs on the MAML paper's sinusoid, with
//! thresholds a broken algorithm would miss. The same test tasks (a fixed
//! seed) are used for every learner, so comparisons are paired.

use theta_core::random::rng_from_seed;
use theta_core::{Loss, Model, Split};
use theta_imaml::{Imaml, ImamlConfig};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{EvalPoint, Evaluation, MetaLearner, TrainState, Trainer};
use theta_models::{Init, Mlp, MlpSpec};
use theta_optim::{Adam, Optimizer};
use theta_pretrained::{Pretrained, PretrainedConfig};
use theta_tasks::Sinusoid;

const STEPS: u64 = 1000;

fn train_and_evaluate(
    learner: &mut dyn MetaLearner<f32>,
    own_adaptation: bool,
) -> (Vec<EvalPoint>, Option<EvalPoint>) {
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(10));
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, Model::<f32>::num_params(&mlp)),
        theta,
        rng: rng_from_seed(11),
        step: 0,
    };
    let dist = Sinusoid::new(10, 10).unwrap();
    Trainer::new(&mlp, &dist, 25).unwrap().run(learner, &adam, &mut state, STEPS, &mut ()).unwrap();
    let eval = Evaluation::new(100, 12, 0.01, 10).unwrap();
    let test = Sinusoid::new(10, 50).unwrap();
    let curve = eval.sgd_curve(&mlp, &state.theta, &test).unwrap();
    let own = own_adaptation.then(|| {
        let mut adapt = |t: &[f32], s: &Split<f32>, phi: &mut [f32]| learner.adapt(&mlp, t, s, phi);
        eval.with_adaptation(&mlp, &state.theta, &test, &mut adapt).unwrap()
    });
    (curve, own)
}

#[test]
fn maml_after_one_step_beats_pretrained_after_ten() {
    let (maml, _) = train_and_evaluate(&mut Maml::new(MamlConfig::default()).unwrap(), false);
    let (pre, _) =
        train_and_evaluate(&mut Pretrained::new(PretrainedConfig::default()).unwrap(), false);
    let (m1, p10) = (maml[1].loss.mean, pre[10].loss.mean);
    eprintln!(
        "MAML 0/1/10 steps: {:.3} {:.3} {:.3}; pretrained: {:.3} {:.3} {:.3}",
        maml[0].loss.mean, m1, maml[10].loss.mean, pre[0].loss.mean, pre[1].loss.mean, p10
    );
    assert!(m1 < 0.8 * p10, "MAML after 1 step {m1:.3} vs pretrained after 10 steps {p10:.3}");
    // MAML's θ is an initialisation, not a solution: one step helps a lot.
    assert!(m1 < 0.7 * maml[0].loss.mean);
    // The pretrained θ barely moves with fine-tuning.
    assert!(p10 > 0.5 * pre[0].loss.mean);
}

#[test]
fn imaml_learns_with_its_own_adaptation() {
    let (curve, own) = train_and_evaluate(&mut Imaml::new(ImamlConfig::default()).unwrap(), true);
    let own = own.unwrap().loss.mean;
    eprintln!(
        "iMAML own adaptation {own:.3}; SGD 0/10 steps {:.3} {:.3}",
        curve[0].loss.mean, curve[10].loss.mean
    );
    assert!(
        own < 0.4 * curve[0].loss.mean,
        "iMAML's proximal solve {own:.3} vs θ itself {:.3}",
        curve[0].loss.mean
    );
    assert!(own < 1.0);
}
