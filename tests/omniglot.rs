//! The real Omniglot, when `shared/data/omniglot/` is beside the repository
//! (it is never part of it): the official zips are read whole, the protocol's
//! split has the right sizes, and a short MAML run learns to classify
//! characters it never saw. Skips, saying so, where the data is absent.

use std::sync::Arc;

use theta_core::random::rng_from_seed;
use theta_core::{Loss, Model, TaskDistribution};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{Evaluation, TrainState, Trainer};
use theta_models::{Init, Mlp, MlpSpec};
use theta_omniglot::{Archive, Omniglot, OmniglotTasks, PIXELS, Protocol, Side};
use theta_optim::{Adam, Optimizer};
use theta_tests::shared_dir;

const STEPS: u64 = 1000;

fn load() -> Option<Arc<Omniglot>> {
    let data = shared_dir().join("data/omniglot");
    if !data.join("images_background.zip").is_file() {
        eprintln!("SKIPPED: no Omniglot in {} (the real-data tests need it)", data.display());
        return None;
    }
    let cache = std::env::temp_dir().join("theta-tests-omniglot-cache");
    let (o, report) = Omniglot::load(&data, &cache, &mut |_, _| {}).unwrap();
    assert!(report.cache_problem.is_none(), "{:?}", report.cache_problem);
    Some(Arc::new(o))
}

#[test]
fn the_official_release_is_read_whole() {
    let Some(o) = load() else { return };
    let chars = o.characters();
    assert_eq!(chars.len(), 1623);
    assert_eq!(o.num_images(), 32_460);
    assert!(chars.iter().all(|c| c.drawings == 20));
    let background = chars.iter().filter(|c| c.archive == Archive::Background).count();
    assert_eq!((background, chars.len() - background), (964, 659));
    let mut alphabets: Vec<&str> = chars.iter().map(|c| c.alphabet.as_str()).collect();
    alphabets.dedup();
    assert_eq!(alphabets.len(), 50);
    // Ink is sparse: strokes cover roughly a tenth of an image.
    let ink: f64 = (0..20).map(|d| o.image(0, d).iter().map(|&v| f64::from(v)).sum::<f64>()).sum();
    let mean = ink / (20.0 * 255.0 * PIXELS as f64);
    assert!((0.03..0.3).contains(&mean), "mean ink {mean}");
    let train = OmniglotTasks::new(o.clone(), Protocol::default(), Side::Train, 5, 1, 19).unwrap();
    let test = OmniglotTasks::new(o, Protocol::default(), Side::Test, 20, 5, 15).unwrap();
    assert_eq!((train.num_characters(), test.num_characters()), (1200, 423));
}

#[test]
fn a_short_maml_run_classifies_unseen_characters() {
    let Some(o) = load() else { return };
    let train = OmniglotTasks::new(o.clone(), Protocol::default(), Side::Train, 5, 1, 5).unwrap();
    let test = OmniglotTasks::new(o, Protocol::default(), Side::Test, 5, 1, 10).unwrap();
    let mlp = Mlp::new(MlpSpec::relu(&[PIXELS, 64, 5], Loss::SoftmaxCrossEntropy)).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, Model::<f32>::num_params(&mlp)),
        theta: mlp.init(Init::UniformFanIn, &mut rng_from_seed(1)),
        rng: rng_from_seed(2),
        step: 0,
    };
    let eval = Evaluation::new(100, 3, 0.4, 1).unwrap();
    let test: &dyn TaskDistribution<f32> = &test;
    let accuracy = |theta: &[f32], steps: usize| {
        eval.sgd_curve(&mlp, theta, test).unwrap()[steps].accuracy.unwrap().mean
    };
    let untrained = accuracy(&state.theta, 1);
    let mut maml = Maml::new(MamlConfig { inner_lr: 0.4, inner_steps: 1 }).unwrap();
    Trainer::new(&mlp, &train, 16)
        .unwrap()
        .run(&mut maml, &adam, &mut state, STEPS, &mut ())
        .unwrap();
    let (before, after) = (accuracy(&state.theta, 0), accuracy(&state.theta, 1));
    eprintln!(
        "5-way 1-shot on test characters, one step: {untrained:.3} from θ₀, \
         {after:.3} after {STEPS} meta-steps ({before:.3} before the step)"
    );
    // Chance is 0.2: θ alone knows no classes; one step from it must, and
    // far better than one step from the untrained θ₀.
    assert!(before < 0.3, "{before}");
    assert!(after > untrained + 0.2, "{after} vs {untrained}");
}
