//! Every algorithm against first principles, on cases the reference files do
//! not cover (other activations, losses, step counts).

use theta_core::random::rng_from_seed;
use theta_core::vector::{axpy, dot};
use theta_core::{Activation, Loss, Model, Pass, Scratch, Task, TaskDistribution};
use theta_fomaml::{Fomaml, FomamlConfig};
use theta_imaml::{Curvature, Imaml, ImamlConfig, InnerSolver};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{MetaError, MetaLearner, TrainState, Trainer};
use theta_models::{BatchNormMlp, Init, Mlp, MlpSpec};
use theta_optim::{Adam, Optimizer, Sgd};
use theta_pretrained::{Pretrained, PretrainedConfig};
use theta_reptile::{InnerOptimizer, Reptile, ReptileConfig};
use theta_tasks::{GaussianBlobs, LinearRegression, Sinusoid};
use theta_tests::rel_err;

fn net(sizes: &[usize], hidden: Activation, loss: Loss) -> Mlp {
    Mlp::new(MlpSpec { layer_sizes: sizes.to_vec(), hidden, output: Activation::Identity, loss })
        .unwrap()
}

fn batch(dist: &dyn TaskDistribution<f64>, n: usize, seed: u64) -> Vec<Task<f64>> {
    let mut rng = rng_from_seed(seed);
    (0..n).map(|_| dist.sample(&mut rng).unwrap()).collect()
}

fn meta_grad(
    l: &mut dyn MetaLearner<f64>,
    m: &dyn Model<f64>,
    theta: &[f64],
    tasks: &[Task<f64>],
) -> (Vec<f64>, f64) {
    let mut g = vec![0.0; theta.len()];
    let mut losses = vec![0.0; tasks.len()];
    let stats = l.meta_gradient(m, theta, tasks, &mut g, &mut losses).unwrap();
    assert!((stats.meta_loss - losses.iter().sum::<f64>() / tasks.len() as f64).abs() < 1e-12);
    (g, stats.meta_loss)
}

/// Central differences (h = 1e-6) of the mean meta-loss at θ, one
/// coordinate at a time.
fn meta_loss_differences(
    l: &mut dyn MetaLearner<f64>,
    m: &dyn Model<f64>,
    theta: &[f64],
    tasks: &[Task<f64>],
) -> Vec<f64> {
    let h = 1e-6;
    (0..theta.len())
        .map(|i| {
            let (mut tp, mut tm) = (theta.to_vec(), theta.to_vec());
            tp[i] += h;
            tm[i] -= h;
            (meta_grad(l, m, &tp, tasks).1 - meta_grad(l, m, &tm, tasks).1) / (2.0 * h)
        })
        .collect()
}

/// MAML's meta-gradient is the exact gradient of the mean query loss after
/// m inner steps: compare with central differences of that meta-loss.
#[test]
fn maml_meta_gradient_matches_finite_differences() {
    let cases: [(&[usize], Activation, Loss, usize, f64); 3] = [
        (&[2, 6, 5, 1], Activation::Tanh, Loss::Mse, 3, 0.05),
        (&[3, 5, 4], Activation::Sigmoid, Loss::SoftmaxCrossEntropy, 2, 0.5),
        (&[2, 7, 1], Activation::Tanh, Loss::Mse, 5, 0.02),
    ];
    for (sizes, act, loss, m, alpha) in cases {
        let mlp = net(sizes, act, loss);
        let dist: Box<dyn TaskDistribution<f64>> = match loss {
            Loss::Mse => Box::new(LinearRegression::new(sizes[0], 0.1, 6, 5).unwrap()),
            Loss::SoftmaxCrossEntropy => {
                Box::new(GaussianBlobs::new(*sizes.last().unwrap(), 2, 2, sizes[0], 1.5).unwrap())
            }
        };
        let tasks = batch(dist.as_ref(), 3, 7);
        let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(1));
        let mut maml = Maml::new(MamlConfig { inner_lr: alpha, inner_steps: m }).unwrap();
        let (g, _) = meta_grad(&mut maml, &mlp, &theta, &tasks);
        let fd = meta_loss_differences(&mut maml, &mlp, &theta, &tasks);
        let e = rel_err(&g, &fd);
        assert!(e < 1e-6, "{sizes:?} {act} m={m}: relative error {e:e}");
        // First-order MAML differs from it: the second-order terms matter here.
        let mut fo = Fomaml::new(FomamlConfig { inner_lr: alpha, inner_steps: m }).unwrap();
        assert!(rel_err(&meta_grad(&mut fo, &mlp, &theta, &tasks).0, &g) > 1e-4);
    }
}

/// A model in both precisions.
trait BothPrecisions: Model<f64> + Model<f32> {}
impl<M: Model<f64> + Model<f32>> BothPrecisions for M {}

/// A network of the fused one-step pass (an input wide against the support
/// rows, so that [`Model::one_step_meta_gradient`] takes it), its tasks, α.
struct WideInput {
    label: String,
    model: Box<dyn BothPrecisions>,
    theta: Vec<f64>,
    dist: Box<dyn TaskDistribution<f64>>,
    alpha: f64,
}

/// Plain and batch-normalised networks, every hidden activation, both losses.
fn wide_input_cases() -> Vec<WideInput> {
    let dist = |sizes: &[usize], loss| -> Box<dyn TaskDistribution<f64>> {
        match loss {
            Loss::Mse => Box::new(LinearRegression::new(sizes[0], 0.1, 6, 5).unwrap()),
            Loss::SoftmaxCrossEntropy => {
                Box::new(GaussianBlobs::new(*sizes.last().unwrap(), 1, 4, sizes[0], 1.5).unwrap())
            }
        }
    };
    let cases: [(&[usize], _, _, _); 3] = [
        (&[40, 16, 5, 3], Activation::Tanh, Loss::SoftmaxCrossEntropy, 0.3),
        (&[30, 24, 1], Activation::Sigmoid, Loss::Mse, 0.05),
        (&[64, 32, 20, 4], Activation::Relu, Loss::SoftmaxCrossEntropy, 0.2),
    ];
    let mut out = Vec::new();
    for (sizes, hidden, loss, alpha) in cases {
        let spec =
            MlpSpec { layer_sizes: sizes.to_vec(), hidden, output: Activation::Identity, loss };
        let mlp = Mlp::new(spec.clone()).unwrap();
        let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(5));
        let label = format!("{sizes:?} {hidden}");
        out.push(WideInput {
            label: format!("batch-normalised {label}"),
            model: Box::new(BatchNormMlp::new(spec, 1e-3).unwrap()),
            theta: theta.clone(),
            dist: dist(sizes, loss),
            alpha,
        });
        out.push(WideInput { label, model: Box::new(mlp), theta, dist: dist(sizes, loss), alpha });
    }
    out
}

/// MAML's meta-gradient through one step as the composed passes make it:
/// φ = θ − α∇L_s(θ), v = ∇L_q(φ), g = v − αH_s(θ) v.
fn composed_one_step<T: theta_core::Real>(
    m: &dyn Model<T>,
    theta: &[T],
    task: &Task<T>,
    alpha: T,
) -> (Vec<T>, T) {
    let p = theta.len();
    let (mut gs, mut v, mut g, mut hv) =
        (vec![T::ZERO; p], vec![T::ZERO; p], vec![T::ZERO; p], vec![T::ZERO; p]);
    let mut s = Scratch::new();
    let (k, n) = (task.support.len(), task.query.len());
    m.loss_grad(theta, &task.support, &mut gs, s.get(m, Pass::Gradient, k)).unwrap();
    let phi: Vec<T> = theta.iter().zip(&gs).map(|(&t, &d)| t - alpha * d).collect();
    let lq = m.loss_grad(&phi, &task.query, &mut v, s.get(m, Pass::Gradient, n)).unwrap();
    let sc = s.get(m, Pass::HessianVector, k);
    m.loss_grad_hvp(theta, &task.support, &v, &mut g, &mut hv, sc).unwrap();
    let g = v.iter().zip(&hv).map(|(&v, &h)| v - alpha * h).collect();
    (g, lq)
}

/// The fused one-step meta-gradient (no W_1 part of φ, products through the
/// Gram matrix of the inputs) computes what the composed passes compute, in
/// f64 to rounding and in f32 to f32's precision, for plain and
/// batch-normalised networks, every hidden activation and both losses; and
/// MAML with one step takes it.
#[test]
fn fused_one_step_meta_gradient_matches_the_composed_passes() {
    for WideInput { label, model, theta, dist, alpha } in wide_input_cases() {
        let tasks = batch(dist.as_ref(), 2, 8);
        let m: &dyn Model<f64> = model.as_ref();
        let mut maml = Maml::new(MamlConfig { inner_lr: alpha, inner_steps: 1 }).unwrap();
        for task in &tasks {
            let (s, q) = (&task.support, &task.query);
            let mut g = vec![0.0; theta.len()];
            let fused = m.one_step_meta_gradient(&theta, s, q, alpha, &mut g, &mut Scratch::new());
            let lq = fused.unwrap_or_else(|| panic!("{label}: not fused")).unwrap();
            let (want, want_lq) = composed_one_step(m, &theta, task, alpha);
            let e = rel_err(&g, &want);
            assert!(e < 1e-12, "{label}: relative error {e:e}");
            assert!((lq - want_lq).abs() < 1e-12 * want_lq.abs(), "{label}: {lq} vs {want_lq}");
            // MAML takes the fused pass: the same bits.
            let mut gm = vec![0.0; theta.len()];
            maml.task_gradient(m, &theta, task, &mut gm).unwrap();
            assert_eq!(gm, g, "{label}");
            // f32 against f64.
            let m32: &dyn Model<f32> = model.as_ref();
            let theta32: Vec<f32> = theta.iter().map(|&x| x as f32).collect();
            let (task32, mut g32) = (task.cast::<f32>(), vec![0f32; theta.len()]);
            let (s32, q32, a32) = (&task32.support, &task32.query, alpha as f32);
            let mut scratch = Scratch::new();
            m32.one_step_meta_gradient(&theta32, s32, q32, a32, &mut g32, &mut scratch)
                .unwrap()
                .unwrap();
            let g32: Vec<f64> = g32.iter().map(|&x| x as f64).collect();
            let e = rel_err(&g32, &g);
            assert!(e < 1e-5, "{label}: f32 relative error {e:e}");
        }
    }
}

/// The fused pass is an exact meta-gradient: central differences of the
/// mean query loss after one step, on the smooth cases (tanh, sigmoid).
#[test]
fn fused_one_step_meta_gradient_matches_finite_differences() {
    for WideInput { label, model, theta, dist, alpha } in wide_input_cases().into_iter().take(4) {
        let tasks = batch(dist.as_ref(), 2, 9);
        let m: &dyn Model<f64> = model.as_ref();
        let mut maml = Maml::new(MamlConfig { inner_lr: alpha, inner_steps: 1 }).unwrap();
        let (g, _) = meta_grad(&mut maml, m, &theta, &tasks);
        let fd = meta_loss_differences(&mut maml, m, &theta, &tasks);
        let e = rel_err(&g, &fd);
        assert!(e < 1e-6, "{label}: relative error {e:e}");
    }
}

/// FOMAML drops the −αH terms, so it approaches MAML linearly as α → 0.
#[test]
fn fomaml_equals_maml_as_alpha_goes_to_zero() {
    let mlp = net(&[1, 20, 20, 1], Activation::Relu, Loss::Mse);
    let tasks = batch(&Sinusoid::new(10, 10).unwrap(), 4, 3);
    let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(2));
    let mut prev = f64::INFINITY;
    for alpha in [1e-2, 1e-3, 1e-4, 1e-5] {
        let cfg = MamlConfig { inner_lr: alpha, inner_steps: 2 };
        let g = meta_grad(&mut Maml::new(cfg).unwrap(), &mlp, &theta, &tasks).0;
        let f = meta_grad(
            &mut Fomaml::new(FomamlConfig { inner_lr: alpha, inner_steps: 2 }).unwrap(),
            &mlp,
            &theta,
            &tasks,
        )
        .0;
        let e = rel_err(&f, &g);
        // The difference is O(α): each tenfold smaller α divides it by ~10.
        if prev.is_finite() {
            let ratio = prev / e;
            assert!((8.0..12.0).contains(&ratio), "α = {alpha:e}: difference {e:e}, ratio {ratio}");
        }
        prev = e;
    }
    assert!(prev < 5e-4, "{prev:e}");
}

/// Reptile with one inner SGD step: θ − φ = α∇L_s(θ), so an outer SGD step
/// of size β is SGD on the joint support loss with step αβ.
#[test]
fn reptile_with_one_step_is_scaled_sgd_on_the_joint_loss() {
    let mlp = net(&[1, 16, 1], Activation::Tanh, Loss::Mse);
    let tasks = batch(&Sinusoid::new(10, 10).unwrap(), 5, 4);
    let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(3));
    let (alpha, beta) = (0.02, 0.5);
    let cfg =
        ReptileConfig { inner_lr: alpha, inner_steps: 1, inner_optimizer: InnerOptimizer::Sgd };
    let (pseudo, _) = meta_grad(&mut Reptile::new(cfg).unwrap(), &mlp, &theta, &tasks);
    let mut reptile_theta = theta.clone();
    Sgd::new(beta).unwrap().step(&mut reptile_theta, &pseudo, &mut ()).unwrap();

    let m: &dyn Model<f64> = &mlp;
    let mut joint = vec![0.0; theta.len()];
    let (mut g, mut s) = (vec![0.0; theta.len()], Scratch::new());
    for task in &tasks {
        m.loss_grad(&theta, &task.support, &mut g, s.get(m, Pass::Gradient, 10)).unwrap();
        axpy(1.0 / tasks.len() as f64, &g, &mut joint);
    }
    let mut sgd_theta = theta.clone();
    Sgd::new(alpha * beta).unwrap().step(&mut sgd_theta, &joint, &mut ()).unwrap();
    let step = |t: &[f64]| t.iter().zip(&theta).map(|(a, b)| a - b).collect::<Vec<_>>();
    assert!(rel_err(&step(&reptile_theta), &step(&sgd_theta)) < 1e-10);

    // With k = 2 it is not: the second step's gradient depends on the first.
    let cfg2 = ReptileConfig { inner_steps: 2, ..cfg };
    let (pseudo2, _) = meta_grad(&mut Reptile::new(cfg2).unwrap(), &mlp, &theta, &tasks);
    let scaled: Vec<f64> = joint.iter().map(|g| 2.0 * alpha * g).collect();
    assert!(rel_err(&pseudo2, &scaled) > 1e-4);
}

/// iMAML's meta-gradient solves (I + H/λ) x = ∇L_q(φ): with enough CG
/// iterations on a small network it equals a dense solve built column by
/// column from Hessian-vector products.
/// The pretrained baseline's pooled pass over the whole batch is the mean of
/// its per-task joint-loss gradients (equal task sizes), and a batch of
/// unequal tasks falls back to exactly that mean.
#[test]
fn pretrained_pooled_batch_equals_the_mean_over_tasks() {
    for (mlp, dist) in [
        (
            net(&[1, 8, 8, 1], Activation::Tanh, Loss::Mse),
            Box::new(Sinusoid::new(10, 7).unwrap()) as Box<dyn TaskDistribution<f64>>,
        ),
        (
            net(&[3, 6, 4], Activation::Relu, Loss::SoftmaxCrossEntropy),
            Box::new(GaussianBlobs::new(4, 2, 3, 3, 1.5).unwrap()),
        ),
    ] {
        let mut tasks = batch(dist.as_ref(), 5, 11);
        let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(2));
        let mut pretrained = Pretrained::new(PretrainedConfig::default()).unwrap();
        assert!(MetaLearner::<f64>::pools_batch(&pretrained));
        let per_task_mean = |l: &mut Pretrained<f64>, tasks: &[Task<f64>]| {
            let mut mean = vec![0.0; theta.len()];
            let mut g = vec![0.0; theta.len()];
            let mut loss = 0.0;
            for t in tasks {
                loss += l.task_gradient(&mlp, &theta, t, &mut g).unwrap().loss;
                axpy(1.0 / tasks.len() as f64, &g, &mut mean);
            }
            (mean, loss / tasks.len() as f64)
        };
        let (pooled, pooled_loss) = meta_grad(&mut pretrained, &mlp, &theta, &tasks);
        let (mean, mean_loss) = per_task_mean(&mut pretrained, &tasks);
        assert!(rel_err(&pooled, &mean) < 1e-13, "pooled vs per task: {}", rel_err(&pooled, &mean));
        assert!((pooled_loss - mean_loss).abs() < 1e-13 * mean_loss.abs());
        // A second batch of the same shape reuses the pool and sees new data.
        let other = batch(dist.as_ref(), 5, 12);
        let (pooled2, _) = meta_grad(&mut pretrained, &mlp, &theta, &other);
        let (mean2, _) = per_task_mean(&mut pretrained, &other);
        assert!(rel_err(&pooled2, &mean2) < 1e-13 && rel_err(&pooled2, &pooled) > 1e-3);

        // Unequal sizes: task by task.
        tasks[1] = batch(&*dist_with_other_sizes(&mlp), 1, 3).remove(0);
        let (pooled, _) = meta_grad(&mut pretrained, &mlp, &theta, &tasks);
        let (mean, _) = per_task_mean(&mut pretrained, &tasks);
        assert!(rel_err(&pooled, &mean) < 1e-13);

        // Same sizes, wrong input width: the model's error, not a panic.
        if mlp.spec().loss == Loss::Mse {
            tasks[1] = batch(&LinearRegression::new(2, 0.1, 10, 7).unwrap(), 1, 4).remove(0);
            let mut g = vec![0.0; theta.len()];
            let mut losses = vec![0.0; tasks.len()];
            let err = pretrained.meta_gradient(&mlp, &theta, &tasks, &mut g, &mut losses);
            assert!(err.unwrap_err().to_string().contains("width"));
        }
    }
}

/// A task family for `mlp` whose tasks have other sizes than the test's.
fn dist_with_other_sizes(mlp: &Mlp) -> Box<dyn TaskDistribution<f64>> {
    match mlp.spec().loss {
        Loss::Mse => Box::new(Sinusoid::new(4, 9).unwrap()),
        Loss::SoftmaxCrossEntropy => Box::new(GaussianBlobs::new(4, 1, 5, 3, 1.5).unwrap()),
    }
}

#[test]
fn imaml_solves_its_linear_system() {
    let mlp = net(&[1, 4, 1], Activation::Tanh, Loss::Mse);
    let m: &dyn Model<f64> = &mlp;
    let p = m.num_params();
    let tasks = batch(&Sinusoid::new(8, 8).unwrap(), 1, 5);
    let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(4));
    for curvature in [Curvature::Hessian, Curvature::GaussNewton] {
        let lambda = 3.0;
        let cfg = ImamlConfig {
            lambda,
            curvature,
            inner: InnerSolver::GradientSteps { steps: 4, lr: 0.05 },
            cg_iterations: 4 * p,
        };
        let mut imaml = Imaml::new(cfg).unwrap();
        let (x, _) = meta_grad(&mut imaml, &mlp, &theta, &tasks);
        // Rebuild φ and the dense matrix A = I + C/λ.
        let mut phi = vec![0.0; p];
        imaml.adapt(m, &theta, &tasks[0].support, &mut phi).unwrap();
        let mut s = Scratch::new();
        let (mut g, mut col) = (vec![0.0; p], vec![0.0; p]);
        let mut a = vec![vec![0.0; p]; p];
        for j in 0..p {
            let mut e = vec![0.0; p];
            e[j] = 1.0;
            match curvature {
                Curvature::Hessian => {
                    m.loss_grad_hvp(
                        &phi,
                        &tasks[0].support,
                        &e,
                        &mut g,
                        &mut col,
                        s.get(m, Pass::HessianVector, 8),
                    )
                    .unwrap();
                }
                Curvature::GaussNewton => {
                    m.loss_gnvp(
                        &phi,
                        &tasks[0].support,
                        &e,
                        &mut col,
                        s.get(m, Pass::GaussNewton, 8),
                    )
                    .unwrap();
                }
            }
            for i in 0..p {
                a[i][j] = col[i] / lambda + if i == j { 1.0 } else { 0.0 };
            }
        }
        let mut gq = vec![0.0; p];
        m.loss_grad(&phi, &tasks[0].query, &mut gq, s.get(m, Pass::Gradient, 8)).unwrap();
        let ax: Vec<f64> = a.iter().map(|row| dot(row, &x)).collect();
        assert!(rel_err(&ax, &gq) < 1e-9, "{curvature:?}: ‖Ax − b‖/‖b‖ = {:e}", rel_err(&ax, &gq));
    }
}

fn train(learner: &mut dyn MetaLearner<f32>, steps: u64, seed: u64) -> Vec<f32> {
    train_on_threads(learner, steps, seed, 1)
}

fn train_on_threads(
    learner: &mut dyn MetaLearner<f32>,
    steps: u64,
    seed: u64,
    threads: usize,
) -> Vec<f32> {
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Loss::Mse);
    let dist = Sinusoid::new(10, 10).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(seed));
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
        theta,
        rng: rng_from_seed(seed + 1),
        step: 0,
    };
    let mut trainer = Trainer::new(&mlp, &dist, 5).unwrap().with_threads(threads).unwrap();
    trainer.run(learner, &adam, &mut state, steps, &mut ()).unwrap();
    assert_eq!(state.step, steps);
    state.theta
}

#[test]
fn same_seed_same_parameters_bit_for_bit() {
    type Make = fn() -> Box<dyn MetaLearner<f32>>;
    let learners: [Make; 5] = [
        || Box::new(Maml::new(MamlConfig::default()).unwrap()),
        || Box::new(Fomaml::new(FomamlConfig::default()).unwrap()),
        || {
            let inner_optimizer = InnerOptimizer::Adam { beta1: 0.0, beta2: 0.999, epsilon: 1e-8 };
            Box::new(
                Reptile::new(ReptileConfig { inner_optimizer, ..ReptileConfig::default() })
                    .unwrap(),
            )
        },
        || Box::new(Imaml::new(ImamlConfig::default()).unwrap()),
        || Box::new(Pretrained::new(PretrainedConfig::default()).unwrap()),
    ];
    for make in &learners {
        let (a, b, c) = (
            train(make().as_mut(), 20, 1),
            train(make().as_mut(), 20, 1),
            train(make().as_mut(), 20, 2),
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{}", make().name());
        assert_ne!(bits(&a), bits(&c), "{}", make().name());
        // Whatever the thread count (5 tasks, claimed one at a time by 2, 3,
        // 5 or 8 threads).
        for threads in [2, 3, 5, 8] {
            let t = train_on_threads(make().as_mut(), 20, 1, threads);
            assert_eq!(bits(&a), bits(&t), "{} on {threads} threads", make().name());
        }
    }
}

/// MAML's fused one-step pass (the batch-normalised network, a wide input)
/// trains to the same bits on every thread count too.
#[test]
fn fused_one_step_training_is_the_same_on_every_thread_count() {
    let spec = MlpSpec::relu(&[64, 32, 20, 4], Loss::SoftmaxCrossEntropy);
    let bn = BatchNormMlp::new(spec, 1e-3).unwrap();
    let dist = GaussianBlobs::new(4, 1, 4, 64, 1.0).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let run = |threads: usize| {
        let theta: Vec<f32> = bn.init(Init::UniformFanIn, &mut rng_from_seed(3));
        let mut state = TrainState {
            optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
            theta,
            rng: rng_from_seed(4),
            step: 0,
        };
        let mut maml = Maml::new(MamlConfig { inner_lr: 0.4, inner_steps: 1 }).unwrap();
        let mut trainer = Trainer::new(&bn, &dist, 6).unwrap().with_threads(threads).unwrap();
        trainer.run(&mut maml, &adam, &mut state, 10, &mut ()).unwrap();
        state.theta.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        assert_eq!(one, run(threads), "{threads} threads");
    }
}

#[test]
fn divergence_is_reported_with_its_step() {
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Loss::Mse);
    let dist = Sinusoid::new(10, 10).unwrap();
    let sgd = Sgd::new(1e3).unwrap();
    let mut steps = Vec::new();
    // One thread, and persistent workers (which must all be released).
    for threads in [1, 2, 3] {
        let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(0));
        let mut state = TrainState { theta, optimizer: (), rng: rng_from_seed(1), step: 0 };
        let mut maml = Maml::new(MamlConfig { inner_lr: 0.5, inner_steps: 5 }).unwrap();
        let err = Trainer::new(&mlp, &dist, 5)
            .unwrap()
            .with_threads(threads)
            .unwrap()
            .run(&mut maml, &sgd, &mut state, 1000, &mut ())
            .unwrap_err();
        let MetaError::Diverged { step, .. } = &err else { panic!("{err}") };
        assert_eq!(*step, state.step + 1, "θ is left as it was before the failing step");
        assert!(state.theta.iter().all(|x| x.is_finite()));
        assert!(
            err.to_string().starts_with(&format!("training diverged at meta-step {step}: ")),
            "{err}"
        );
        steps.push(*step);
    }
    assert!(steps.iter().all(|&s| s == steps[0]), "{steps:?}");
}

#[test]
fn run_on_workers_equals_step_by_step_and_stops_when_asked() {
    use std::ops::ControlFlow;
    use theta_meta::StepReport;
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Loss::Mse);
    let dist = Sinusoid::new(10, 10).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let fresh = || {
        let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(4));
        TrainState {
            optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
            theta,
            rng: rng_from_seed(5),
            step: 0,
        }
    };
    let mut maml = Maml::new(MamlConfig::default()).unwrap();
    // Step by step on one thread (`step` spawns nothing).
    let mut a = fresh();
    let mut one = Trainer::new(&mlp, &dist, 7).unwrap();
    for _ in 0..12 {
        one.step(&mut maml, &adam, &mut a).unwrap();
    }
    // Persistent workers, stopped by the observer after 8 of 50 steps, and
    // the same trainer run again for 4: its buffers (and the generator,
    // though the workers' run samples each batch a step ahead) came back
    // whole.
    let mut b = fresh();
    let mut four = Trainer::new(&mlp, &dist, 7).unwrap().with_threads(4).unwrap();
    let mut seen = Vec::new();
    let mut observe = |r: &StepReport<'_, f32, _>| {
        seen.push(r.state.step);
        if r.state.step == 8 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    four.run(&mut maml, &adam, &mut b, 50, &mut observe).unwrap();
    assert_eq!(seen, (1..=8).collect::<Vec<u64>>());
    four.run(&mut maml, &adam, &mut b, 4, &mut ()).unwrap();
    assert_eq!(a, b);
}

/// Sinusoids that cannot be drawn from the `fail_at`-th sample on (counted
/// across batches): a task source that breaks mid-run, with an error or,
/// with `panics`, a panic.
struct FailingAt {
    inner: Sinusoid,
    drawn: std::sync::atomic::AtomicUsize,
    fail_at: usize,
    panics: bool,
}

impl TaskDistribution<f32> for FailingAt {
    fn name(&self) -> &'static str {
        "failing sinusoid"
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
        TaskDistribution::<f32>::support_size(&self.inner)
    }
    fn query_size(&self) -> usize {
        TaskDistribution::<f32>::query_size(&self.inner)
    }
    fn empty_task(&self) -> Task<f32> {
        self.inner.empty_task()
    }
    fn sample_into(
        &self,
        rng: &mut theta_core::Rng,
        task: &mut Task<f32>,
    ) -> theta_core::Result<()> {
        use std::sync::atomic::Ordering;
        if self.drawn.fetch_add(1, Ordering::Relaxed) >= self.fail_at {
            assert!(!self.panics, "the task source broke");
            return Err(theta_core::Error::Empty("task source"));
        }
        self.inner.sample_into(rng, task)
    }
}

/// MAML on sinusoids whose 4th batch of 5 cannot be drawn (an error, or
/// with `panics` a panic), 10 steps on `threads`: the run's result, θ at
/// the end, and the steps the observer saw.
fn run_on_failing_source(
    threads: usize,
    panics: bool,
    observed: &mut Vec<u64>,
) -> (Result<(), MetaError>, Vec<f32>) {
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Loss::Mse);
    let adam = Adam::new(1e-3).unwrap();
    let inner = Sinusoid::new(10, 10).unwrap();
    let dist = FailingAt { inner, drawn: 0.into(), fail_at: 17, panics };
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(6));
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
        theta,
        rng: rng_from_seed(7),
        step: 0,
    };
    let mut trainer = Trainer::new(&mlp, &dist, 5).unwrap().with_threads(threads).unwrap();
    let mut maml = Maml::new(MamlConfig::default()).unwrap();
    let mut observe = |r: &theta_meta::StepReport<'_, f32, _>| {
        observed.push(r.state.step);
        std::ops::ControlFlow::Continue(())
    };
    let result = trainer.run(&mut maml, &adam, &mut state, 10, &mut observe);
    assert_eq!(state.step, observed.len() as u64);
    (result, state.theta)
}

#[test]
fn a_task_source_that_fails_mid_run_is_reported_at_its_step() {
    // With workers the next batch is drawn during a step; the failure must
    // still be the 4th step's, after 3 steps whose θ is one thread's.
    let mut thetas = Vec::new();
    for threads in [1, 2, 3] {
        let mut observed = Vec::new();
        let (result, theta) = run_on_failing_source(threads, false, &mut observed);
        let err = result.unwrap_err();
        let MetaError::Diverged { step, source } = &err else { panic!("{err}") };
        assert_eq!((*step, observed), (4, vec![1, 2, 3]), "{threads} threads: {err}");
        assert!(source.to_string().contains("task source"), "{source}");
        thetas.push(theta);
    }
    assert!(thetas.iter().all(|t| *t == thetas[0]), "θ after 3 steps depends on the threads");
}

#[test]
fn a_task_source_that_panics_mid_run_panics_the_run_after_its_steps() {
    // Drawn ahead during the 3rd step, the 4th batch's panic must reach the
    // caller after 3 observed steps, not strand the workers at a barrier:
    // each run gets a minute.
    for threads in [1, 2, 3] {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut observed = Vec::new();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_on_failing_source(threads, true, &mut observed)
            }));
            let message = match run {
                Err(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default(),
                Ok((r, _)) => format!("no panic: {r:?}"),
            };
            done.send((message, observed)).unwrap();
        });
        let (message, observed) = result
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{threads} threads: the run did not return"));
        assert!(message.contains("the task source broke"), "{threads} threads: {message}");
        assert_eq!(observed, vec![1, 2, 3], "{threads} threads");
    }
}

#[test]
fn invalid_hyper_parameters_are_named() {
    let msg = |e: MetaError| e.to_string();
    assert_eq!(
        msg(Maml::<f32>::new(MamlConfig { inner_lr: 0.0, inner_steps: 1 }).unwrap_err()),
        "invalid inner learning rate α = 0: must be finite and > 0"
    );
    assert_eq!(
        msg(Maml::<f32>::new(MamlConfig { inner_lr: 0.01, inner_steps: 0 }).unwrap_err()),
        "invalid inner steps m = 0: must be at least 1"
    );
    assert!(
        msg(Fomaml::<f32>::new(FomamlConfig { inner_lr: -1.0, inner_steps: 1 }).unwrap_err())
            .contains("inner learning rate")
    );
    assert!(
        msg(Reptile::<f32>::new(ReptileConfig { inner_steps: 0, ..ReptileConfig::default() })
            .unwrap_err())
        .contains("inner steps k")
    );
    assert!(
        msg(Imaml::<f32>::new(ImamlConfig { lambda: 0.0, ..ImamlConfig::default() }).unwrap_err())
            .contains("lambda λ = 0")
    );
    assert!(
        msg(Imaml::<f32>::new(ImamlConfig { cg_iterations: 0, ..ImamlConfig::default() })
            .unwrap_err())
        .contains("CG iterations")
    );
    let mlp = net(&[2, 4, 1], Activation::Relu, Loss::Mse);
    let e = Trainer::<f32>::new(&mlp, &Sinusoid::new(5, 5).unwrap(), 4).err().unwrap();
    assert_eq!(msg(e), "model input width (task inputs): expected 1, got 2");
    let cls = net(&[1, 4, 3], Activation::Relu, Loss::SoftmaxCrossEntropy);
    assert!(Trainer::<f32>::new(&cls, &GaussianBlobs::new(3, 1, 1, 1, 1.0).unwrap(), 0).is_err());
}

/// Evaluation counts tasks whose adaptation diverges instead of failing or
/// averaging them away (iMAML's sharp θ makes SGD at α = 0.01 diverge).
#[test]
fn evaluation_reports_divergence() {
    use theta_meta::Evaluation;
    let mlp = net(&[1, 40, 40, 1], Activation::Relu, Loss::Mse);
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(0));
    let dist = Sinusoid::new(10, 20).unwrap();
    let curve = Evaluation::new(30, 1, 50.0, 8).unwrap().sgd_curve(&mlp, &theta, &dist).unwrap();
    assert_eq!(curve[0].diverged, 0);
    assert!(curve[0].loss.mean.is_finite());
    let last = curve.last().unwrap();
    assert!(last.diverged > 0 && last.loss.mean.is_infinite(), "{last:?}");
    assert!(curve.windows(2).all(|w| w[0].diverged <= w[1].diverged));
}

/// The proximal Gauss-Newton inner solve reaches the proximal argmin: on a
/// linear model (G = H, a quadratic objective) in one step with a full CG
/// solve; on a network fitting a small-residual task, linearly, to
/// stationarity of L_s(φ) + λ/2‖φ − θ‖². (With large residuals, fixed-damping
/// Gauss-Newton can fall into a 2-cycle instead: H − G is then large. That is
/// the method, not the code; iMAML takes only a few steps from θ anyway.)
#[test]
fn proximal_gauss_newton_reaches_the_proximal_argmin() {
    let stationarity = |mlp: &Mlp, theta: &[f64], phi: &[f64], task: &Task<f64>, lambda: f64| {
        let m: &dyn Model<f64> = mlp;
        let mut g = vec![0.0; theta.len()];
        m.loss_grad(
            phi,
            &task.support,
            &mut g,
            Scratch::new().get(m, Pass::Gradient, task.support.len()),
        )
        .unwrap();
        let r: Vec<f64> = (0..g.len()).map(|i| g[i] + lambda * (phi[i] - theta[i])).collect();
        r.iter().map(|x| x * x).sum::<f64>().sqrt()
    };
    let linear = net(&[3, 1], Activation::Identity, Loss::Mse);
    let tasks = batch(&LinearRegression::new(3, 0.1, 8, 8).unwrap(), 1, 9);
    let theta: Vec<f64> = linear.init(Init::UniformFanIn, &mut rng_from_seed(5));
    let lambda = 2.0;
    let one_step = ImamlConfig {
        lambda,
        curvature: Curvature::GaussNewton,
        inner: InnerSolver::ProximalGaussNewton { steps: 1, cg_iterations: 4 },
        cg_iterations: 4,
    };
    let mut phi = vec![0.0; theta.len()];
    Imaml::new(one_step).unwrap().adapt(&linear, &theta, &tasks[0].support, &mut phi).unwrap();
    assert!(stationarity(&linear, &theta, &phi, &tasks[0], lambda) < 1e-12);

    let mlp = net(&[1, 10, 10, 1], Activation::Tanh, Loss::Mse);
    let tasks = batch(&LinearRegression::new(1, 0.0, 10, 10).unwrap(), 1, 9);
    let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(6));
    let p = theta.len();
    let start = stationarity(&mlp, &theta, &theta, &tasks[0], lambda);
    let many = ImamlConfig {
        inner: InnerSolver::ProximalGaussNewton { steps: 40, cg_iterations: p },
        ..one_step
    };
    let mut phi = vec![0.0; p];
    Imaml::new(many).unwrap().adapt(&mlp, &theta, &tasks[0].support, &mut phi).unwrap();
    let end = stationarity(&mlp, &theta, &phi, &tasks[0], lambda);
    assert!(end < 1e-6 * start, "‖∇‖ from {start:e} to {end:e}");
}
