//! The hot path allocates nothing after warm-up: model passes (including
//! faer's matrix products) and task sampling. A counting global allocator
//! observes this thread's allocations only, so parallel tests do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use theta_core::random::rng_from_seed;
use theta_core::{Loss, Model, Pass, Scratch, Task, TaskDistribution};
use theta_models::{BatchNormMlp, Init, Mlp, MlpSpec};
use theta_tasks::{GaussianBlobs, Sinusoid};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code, reason = "a global allocator is an unsafe trait")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn passes_allocate_nothing<T: theta_core::Real>(
    sizes: &[usize],
    loss: Loss,
    dist: &dyn TaskDistribution<T>,
) {
    let mlp = Mlp::new(MlpSpec::relu(sizes, loss)).unwrap();
    let bn = BatchNormMlp::new(MlpSpec::relu(sizes, loss), 1e-3).unwrap();
    passes_of_model_allocate_nothing(&mlp, &mlp, sizes, dist);
    passes_of_model_allocate_nothing(&bn, &mlp, sizes, dist);
}

fn passes_of_model_allocate_nothing<T: theta_core::Real>(
    model: &dyn Model<T>,
    mlp: &Mlp,
    sizes: &[usize],
    dist: &dyn TaskDistribution<T>,
) {
    let mut rng = rng_from_seed(0);
    let theta: Vec<T> = mlp.init(Init::UniformFanIn, &mut rng);
    let p = theta.len();
    let mut tasks: Vec<Task<T>> = (0..4).map(|_| dist.empty_task()).collect();
    let (mut g, mut hv, v) = (vec![T::ZERO; p], vec![T::ZERO; p], theta.clone());
    let rows = dist.support_size();
    let mut scratch = Scratch::for_model(model, Pass::HessianVector, rows);
    let mut out = vec![T::ZERO; rows * model.output_dim()];
    let mut step = |tasks: &mut [Task<T>], rng: &mut theta_core::Rng| {
        dist.sample_batch_into(rng, tasks).unwrap();
        for task in tasks.iter() {
            let s = scratch.get(model, Pass::HessianVector, rows);
            model.loss_grad_hvp(&theta, &task.support, &v, &mut g, &mut hv, s).unwrap();
            model.loss_gnvp(&theta, &task.support, &v, &mut hv, s).unwrap();
            model.loss_grad(&theta, &task.support, &mut g, s).unwrap();
            model.loss(&theta, &task.support, s).unwrap();
            model.predict(&theta, task.support.x(), &mut out, s).unwrap();
        }
    };
    step(&mut tasks, &mut rng); // warm-up
    let n = allocations_during(|| {
        for _ in 0..3 {
            step(&mut tasks, &mut rng);
        }
    });
    assert_eq!(n, 0, "{sizes:?} {}: {n} allocations after warm-up", T::NAME);
}

#[test]
fn sinusoid_network_and_sampling() {
    let dist = Sinusoid::new(10, 10).unwrap();
    passes_allocate_nothing::<f32>(&[1, 40, 40, 1], Loss::Mse, &dist);
    passes_allocate_nothing::<f64>(&[1, 40, 40, 1], Loss::Mse, &dist);
}

#[test]
fn omniglot_sized_network_and_blobs() {
    let dist = GaussianBlobs::new(5, 16, 1, 784, 1.0).unwrap();
    passes_allocate_nothing::<f32>(&[784, 256, 128, 64, 64, 5], Loss::SoftmaxCrossEntropy, &dist);
}

#[test]
fn every_task_family_samples_in_place() {
    use theta_tasks::{CurveFitting, LinearRegression};
    let families: Vec<Box<dyn TaskDistribution<f32>>> = vec![
        Box::new(Sinusoid::new(10, 10).unwrap()),
        Box::new(CurveFitting::new(10, 10).unwrap()),
        Box::new(LinearRegression::new(4, 0.1, 10, 10).unwrap()),
        Box::new(GaussianBlobs::new(5, 2, 3, 8, 1.0).unwrap()),
    ];
    for dist in &families {
        let mut rng = rng_from_seed(1);
        let mut batch: Vec<Task<f32>> = (0..25).map(|_| dist.empty_task()).collect();
        let n = allocations_during(|| {
            for _ in 0..10 {
                dist.sample_batch_into(&mut rng, &mut batch).unwrap();
            }
        });
        assert_eq!(n, 0, "{}: {n} allocations", dist.name());
    }
}

/// Allocations in three meta-steps of `learner` on one thread, after a
/// warm-up step.
fn meta_step_allocations(
    mlp: &dyn Model<f32>,
    dist: &dyn theta_core::TaskDistribution<f32>,
    learner: &mut dyn theta_meta::MetaLearner<f32>,
) -> usize {
    use theta_meta::{TrainState, Trainer};
    use theta_optim::{Adam, Optimizer};
    let adam = Adam::new(1e-3).unwrap();
    let theta: Vec<f32> = (0..mlp.num_params()).map(|i| 0.1 * ((i % 7) as f32 - 3.0)).collect();
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
        theta,
        rng: rng_from_seed(1),
        step: 0,
    };
    let mut trainer = Trainer::new(mlp, dist, 8).unwrap();
    trainer.step(learner, &adam, &mut state).unwrap(); // warm-up
    allocations_during(|| {
        for _ in 0..3 {
            trainer.step(learner, &adam, &mut state).unwrap();
        }
    })
}

/// A whole meta-step on one thread — sampling, every algorithm's per-task
/// gradients, the reduction, the Adam step — allocates nothing after warm-up.
#[test]
fn meta_steps_allocate_nothing() {
    use theta_meta::MetaLearner;
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).unwrap();
    let dist = Sinusoid::new(10, 10).unwrap();
    let learners: Vec<Box<dyn MetaLearner<f32>>> = vec![
        Box::new(
            theta_maml::Maml::new(theta_maml::MamlConfig { inner_lr: 0.01, inner_steps: 3 })
                .unwrap(),
        ),
        // One step: the MLP's fused lane pass.
        Box::new(theta_maml::Maml::new(theta_maml::MamlConfig::default()).unwrap()),
        Box::new(theta_fomaml::Fomaml::new(theta_fomaml::FomamlConfig::default()).unwrap()),
        Box::new(theta_reptile::Reptile::new(theta_reptile::ReptileConfig::default()).unwrap()),
        Box::new(theta_imaml::Imaml::new(theta_imaml::ImamlConfig::default()).unwrap()),
        Box::new(
            theta_pretrained::Pretrained::new(theta_pretrained::PretrainedConfig::default())
                .unwrap(),
        ),
    ];
    for mut learner in learners {
        let n = meta_step_allocations(&mlp, &dist, learner.as_mut());
        assert_eq!(n, 0, "{}: {n} allocations in 3 meta-steps", learner.name());
    }
}

/// MAML's fused one-step passes (a wide input against few support rows)
/// size their scratch once, too.
#[test]
fn fused_one_step_meta_steps_allocate_nothing() {
    let spec = MlpSpec::relu(&[64, 32, 20, 4], Loss::SoftmaxCrossEntropy);
    let mlp = Mlp::new(spec.clone()).unwrap();
    let bn = BatchNormMlp::new(spec, 1e-3).unwrap();
    let dist = GaussianBlobs::new(4, 1, 4, 64, 1.0).unwrap();
    for model in [&mlp as &dyn Model<f32>, &bn] {
        let mut maml = theta_maml::Maml::new(theta_maml::MamlConfig::default()).unwrap();
        let n = meta_step_allocations(model, &dist, &mut maml);
        assert_eq!(n, 0, "{n} allocations in 3 meta-steps");
    }
}

#[test]
fn lane_passes_allocate_nothing() {
    use theta_kernels::lanes::Weights;
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).unwrap();
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(0));
    let pack = <f32 as theta_core::Real>::Pack::splat;
    let theta_lanes: Vec<_> = theta.iter().map(|&v| pack(v)).collect();
    let (x, y) = (vec![pack(0.5); 10], vec![pack(-0.25); 10]);
    let mut grad = vec![pack(0.0); theta.len()];
    let model: &dyn Model<f32> = &mlp;
    let mut scratch = vec![pack(0.0); model.lane_scratch_len(10).unwrap()];
    let n = allocations_during(|| {
        for theta in [Weights::Shared(&theta), Weights::Lanes(&theta_lanes)] {
            for _ in 0..3 {
                let split = theta_core::LaneSplit { rows: 10, x: &x, y: &y };
                model.loss_grad_lanes(theta, split, &mut grad, &mut scratch).unwrap().unwrap();
            }
        }
    });
    assert_eq!(n, 0, "lane passes: {n} allocations");
}
