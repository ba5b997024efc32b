//! Learners that run a group of tasks side by side, one per SIMD lane
//! (`theta_meta::LaneGroup`: MAML, first-order MAML, Reptile): their group
//! sums are the per-task gradients' sums up to rounding, on other networks
//! and step counts than the sinusoid's; the lane passes themselves do not
//! fail on these cases (so that those sums are not the one-by-one
//! fallback's); a group that cannot run so runs one by one; a failing lane
//! is named by its task's own error; and training is the same bits on every
//! thread count when a batch is several groups.

use theta_core::random::rng_from_seed;
use theta_core::{Activation, Loss, Model, Real, Task, TaskDistribution};
use theta_fomaml::{Fomaml, FomamlConfig};
use theta_kernels::Pack;
use theta_maml::{Maml, MamlConfig};
use theta_meta::{
    InnerSgd, LaneGroup, MetaError, MetaLearner, TaskOutcome, TrainState, Trainer, sum_one_by_one,
};
use theta_models::{Init, Mlp, MlpSpec};
use theta_optim::{Adam, Optimizer};
use theta_reptile::{Reptile, ReptileConfig};
use theta_tasks::{LinearRegression, Sinusoid};
use theta_tests::rel_err;

fn net(sizes: &[usize], hidden: Activation, output: Activation) -> Mlp {
    Mlp::new(MlpSpec { layer_sizes: sizes.to_vec(), hidden, output, loss: Loss::Mse }).unwrap()
}

fn batch<T: Real>(dist: &dyn TaskDistribution<T>, n: usize, seed: u64) -> Vec<Task<T>> {
    let mut rng = rng_from_seed(seed);
    (0..n).map(|_| dist.sample(&mut rng).unwrap()).collect()
}

/// Each group's sum against the sum of its tasks' per-task gradients, and
/// the losses, for every size of group up to a pack's lanes.
/// Three networks and task families: the sinusoid's, and two others of other
/// depths, widths, activations and split sizes.
fn cases<T: Real>() -> Vec<(Mlp, Box<dyn TaskDistribution<T>>)> {
    vec![
        (
            net(&[1, 40, 40, 1], Activation::Relu, Activation::Identity),
            Box::new(Sinusoid::new(10, 10).unwrap()),
        ),
        (
            net(&[3, 17, 5, 1], Activation::Tanh, Activation::Identity),
            Box::new(LinearRegression::new(3, 0.1, 7, 12).unwrap()),
        ),
        (
            net(&[2, 9, 1], Activation::Sigmoid, Activation::Tanh),
            Box::new(LinearRegression::new(2, 0.0, 5, 5).unwrap()),
        ),
    ]
}

fn groups_are_the_per_task_sums<T: Real>(tolerance: f64) {
    let lanes = T::Pack::LANES;
    for (case, (mlp, dist)) in cases::<T>().iter().enumerate() {
        let model: &dyn Model<T> = mlp;
        let p = model.num_params();
        let theta: Vec<T> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(3));
        for (steps, learner) in
            [(1, "fomaml"), (3, "fomaml"), (2, "reptile"), (5, "reptile"), (1, "maml"), (3, "maml")]
        {
            let make = || -> Box<dyn MetaLearner<T>> {
                match learner {
                    "reptile" => {
                        let config = ReptileConfig {
                            inner_lr: 0.05,
                            inner_steps: steps,
                            ..Default::default()
                        };
                        Box::new(Reptile::<T>::new(config).unwrap())
                    }
                    "maml" => {
                        let config = MamlConfig { inner_lr: 0.05, inner_steps: steps };
                        Box::new(Maml::<T>::new(config).unwrap())
                    }
                    _ => {
                        let config = FomamlConfig { inner_lr: 0.05, inner_steps: steps };
                        Box::new(Fomaml::<T>::new(config).unwrap())
                    }
                }
            };
            let (mut side_by_side, mut one_by_one) = (make(), make());
            assert_eq!(side_by_side.group_size(model), lanes);
            for n in [1, 2, lanes - 1, lanes] {
                let tasks = batch(dist.as_ref(), n, 10 + n as u64);
                let (mut sum, mut outcomes) = (vec![T::ZERO; p], vec![TaskOutcome::default(); n]);
                side_by_side
                    .group_gradient(model, &theta, &tasks, &mut sum, &mut outcomes)
                    .unwrap();
                let mut want = vec![T::ZERO; p];
                let mut g = vec![T::ZERO; p];
                for (task, o) in tasks.iter().zip(&outcomes) {
                    let expected = one_by_one.task_gradient(model, &theta, task, &mut g).unwrap();
                    for (w, &v) in want.iter_mut().zip(&g) {
                        *w += v;
                    }
                    let loss_error = (o.loss - expected.loss).abs() / expected.loss.abs();
                    let name = one_by_one.name();
                    assert!(
                        loss_error < tolerance,
                        "{name}, case {case}, m = {steps}, {n} tasks: loss"
                    );
                }
                let to_f64 = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<_>>();
                let error = rel_err(&to_f64(&sum), &to_f64(&want));
                assert!(
                    error < tolerance,
                    "{}, case {case}, m = {steps}, {n} tasks ({}): relative error {error:e}",
                    one_by_one.name(),
                    T::NAME
                );
            }
        }
    }
}

#[test]
fn groups_are_the_per_task_sums_f32() {
    groups_are_the_per_task_sums::<f32>(2e-5);
}

#[test]
fn groups_are_the_per_task_sums_f64() {
    groups_are_the_per_task_sums::<f64>(1e-12);
}

/// The lane passes themselves succeed on every case: a learner whose group
/// fails runs it one by one, with the per-task sums, so the test above
/// would pass through that fallback alone.
#[test]
fn the_lane_passes_run_on_every_case() {
    for (case, (mlp, dist)) in cases::<f32>().iter().enumerate() {
        let model: &dyn Model<f32> = mlp;
        let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(3));
        let tasks = batch(dist.as_ref(), 16, 7);
        let mut outcomes = vec![TaskOutcome::default(); tasks.len()];
        let mut group = LaneGroup::new();
        assert!(group.load(model, &tasks), "case {case}: not side by side");
        for steps in [1, 2, 3] {
            let inner = InnerSgd::new(0.05, steps).unwrap();
            let at = |what| format!("case {case}, m = {steps}: {what}");
            group.adapt(model, &inner, &theta).unwrap_or_else(|e| panic!("{}: {e}", at("adapt")));
            group
                .query_gradient(model, &mut outcomes)
                .unwrap_or_else(|e| panic!("{}: {e}", at("query")));
            group
                .meta_gradient(model, &inner, &theta, &mut outcomes)
                .unwrap_or_else(|e| panic!("{}: {e}", at("meta-gradient")));
        }
    }
}

#[test]
fn a_group_that_cannot_run_side_by_side_runs_one_by_one() {
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
    let model: &dyn Model<f32> = &mlp;
    let p = model.num_params();
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(4));
    // Tasks of two support sizes in one group.
    let mut tasks = batch::<f32>(&Sinusoid::new(10, 10).unwrap(), 3, 5);
    tasks.extend(batch::<f32>(&Sinusoid::new(5, 10).unwrap(), 2, 6));
    let mut fomaml = Fomaml::<f32>::new(FomamlConfig::default()).unwrap();
    let (mut sum, mut outcomes) = (vec![0.0; p], vec![TaskOutcome::default(); 5]);
    fomaml.group_gradient(model, &theta, &tasks, &mut sum, &mut outcomes).unwrap();
    let (mut want, mut want_outcomes, mut work) =
        (vec![0.0; p], vec![TaskOutcome::default(); 5], vec![0.0; p]);
    let mut other = Fomaml::<f32>::new(FomamlConfig::default()).unwrap();
    sum_one_by_one(&mut other, model, &theta, &tasks, &mut want, &mut want_outcomes, &mut work)
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&sum), bits(&want));
    assert_eq!(outcomes, want_outcomes);
}

#[test]
fn a_failing_lane_is_named_by_its_tasks_own_error() {
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
    let model: &dyn Model<f32> = &mlp;
    let p = model.num_params();
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(4));
    let mut tasks = batch::<f32>(&Sinusoid::new(10, 10).unwrap(), 9, 7);
    // Task 6's targets overflow its loss.
    let (_, y, _) = tasks[6].support.parts_mut();
    y.expect("regression targets").fill(1e30);
    let mut fomaml = Fomaml::<f32>::new(FomamlConfig::default()).unwrap();
    let (mut sum, mut outcomes) = (vec![0.0; p], vec![TaskOutcome::default(); 9]);
    let err = fomaml.group_gradient(model, &theta, &tasks, &mut sum, &mut outcomes).unwrap_err();
    let mut g = vec![0.0; p];
    let own = fomaml.task_gradient(model, &theta, &tasks[6], &mut g).unwrap_err();
    assert_eq!(err, own);
    assert!(matches!(err, MetaError::Model(theta_core::Error::NonFinite(_))), "{err}");
    // MAML with one step, whose groups take the fused lane pass, and with
    // three, through the lane R-pass's reverse steps.
    for inner_steps in [1, 3] {
        let config = MamlConfig { inner_steps, ..MamlConfig::default() };
        let mut maml = Maml::<f32>::new(config).unwrap();
        let err = maml.group_gradient(model, &theta, &tasks, &mut sum, &mut outcomes).unwrap_err();
        let own = maml.task_gradient(model, &theta, &tasks[6], &mut g).unwrap_err();
        assert_eq!(err, own, "MAML, {inner_steps} steps");
        assert!(matches!(err, MetaError::Model(theta_core::Error::NonFinite(_))), "{err}");
    }
}

/// First-order MAML on a batch of `tasks` sinusoids (several groups), 6
/// steps on `threads` threads, through `Trainer::run`, or step by step.
fn train(tasks: usize, threads: usize, by_steps: bool) -> Vec<u32> {
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
    let dist = Sinusoid::new(10, 10).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(8));
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
        theta,
        rng: rng_from_seed(9),
        step: 0,
    };
    let mut fomaml = Fomaml::<f32>::new(FomamlConfig::default()).unwrap();
    let mut trainer = Trainer::new(&mlp, &dist, tasks).unwrap().with_threads(threads).unwrap();
    if by_steps {
        for _ in 0..6 {
            trainer.step(&mut fomaml, &adam, &mut state).unwrap();
        }
    } else {
        trainer.run(&mut fomaml, &adam, &mut state, 6, &mut ()).unwrap();
    }
    state.theta.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn batches_of_several_groups_train_to_the_same_bits_on_every_thread_count() {
    // 37 tasks: groups of 16, 16 and 5.
    let one = train(37, 1, false);
    assert_ne!(one, train(36, 1, false), "the batch size is seen");
    for threads in [2, 3, 5] {
        assert_eq!(one, train(37, threads, false), "run on {threads} threads");
        assert_eq!(one, train(37, threads, true), "step by step on {threads} threads");
    }
}
