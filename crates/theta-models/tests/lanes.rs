//! The lane pass against the per-task pass: every lane's loss and gradient
//! are its task's from `Model::loss_grad`, within rounding, for networks of
//! several depths, widths and activations, rows from 1 up, θ shared and per
//! lane, in f32 and f64; so is every lane's Hessian-vector product (the
//! R-pass), which is also the central difference of the lane gradient; a
//! task's result does not depend on its lane or on the other lanes; bad
//! input is refused.

use theta_core::random::{Rng, rng_from_seed, uniform};
use theta_core::{Error, LaneSplit, Loss, Matrix, Model, Pass, Scratch, Split, Targets};
use theta_kernels::lanes::Weights;
use theta_kernels::{Activation, Pack, Real};
use theta_models::{Init, Mlp, MlpSpec};

fn lanes<T: Real>() -> usize {
    T::Pack::LANES
}

/// Lane-major packs of per-task vectors (task t in lane t).
fn to_lanes<T: Real>(tasks: &[Vec<T>]) -> Vec<T::Pack> {
    let mut lane = vec![T::ZERO; lanes::<T>()];
    (0..tasks[0].len())
        .map(|i| {
            for (l, t) in lane.iter_mut().zip(tasks) {
                *l = t[i];
            }
            T::Pack::load(&lane)
        })
        .collect()
}

fn lane<T: Real>(x: &[T::Pack], t: usize) -> Vec<T> {
    let mut buf = vec![T::ZERO; lanes::<T>()];
    x.iter()
        .map(|p| {
            p.store(&mut buf);
            buf[t]
        })
        .collect()
}

/// One vector of `len` values per lane, each uniform in ±`scale`.
fn per_lane<T: Real>(rng: &mut Rng, len: usize, scale: f64) -> Vec<Vec<T>> {
    (0..lanes::<T>()).map(|_| draw(rng, len, scale)).collect()
}

fn draw<T: Real>(rng: &mut Rng, n: usize, scale: f64) -> Vec<T> {
    (0..n).map(|_| T::from_f64(uniform(rng, -scale, scale))).collect()
}

/// ‖a − b‖ / ‖b‖ (or ‖a − b‖ when b is 0).
fn relative<T: Real>(a: &[T], b: &[T]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x.to_f64() - y.to_f64()).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y.to_f64().powi(2)).sum();
    diff.sqrt() / norm.sqrt().max(1.0)
}

struct Case {
    sizes: &'static [usize],
    hidden: Activation,
    output: Activation,
    rows: usize,
}

const CASES: [Case; 6] = [
    Case {
        sizes: &[1, 40, 40, 1],
        hidden: Activation::Relu,
        output: Activation::Identity,
        rows: 10,
    },
    Case {
        sizes: &[1, 40, 40, 1],
        hidden: Activation::Relu,
        output: Activation::Identity,
        rows: 1,
    },
    Case { sizes: &[3, 7, 5, 2], hidden: Activation::Tanh, output: Activation::Identity, rows: 17 },
    Case { sizes: &[2, 16, 3], hidden: Activation::Sigmoid, output: Activation::Tanh, rows: 5 },
    Case { sizes: &[4, 3], hidden: Activation::Relu, output: Activation::Sigmoid, rows: 6 },
    Case {
        sizes: &[5, 33, 20, 17, 2],
        hidden: Activation::Relu,
        output: Activation::Relu,
        rows: 11,
    },
];

impl Case {
    /// The case's network, with MSE (the lane passes' loss).
    fn network(&self) -> Mlp {
        let (hidden, output) = (self.hidden, self.output);
        Mlp::new(MlpSpec { layer_sizes: self.sizes.to_vec(), hidden, output, loss: Loss::Mse })
            .unwrap()
    }
}

/// One task's split from its inputs and targets, row-major.
fn task_split<T: Real>(x: &[T], y: &[T], d_in: usize, d_out: usize) -> Split<T> {
    let rows = x.len() / d_in;
    let x = Matrix::from_vec(rows, d_in, x.to_vec()).unwrap();
    let y = Targets::Values(Matrix::from_vec(rows, d_out, y.to_vec()).unwrap());
    Split::new("support", x, y).unwrap()
}

fn matches_the_per_task_pass<T: Real>(tolerance: f64)
where
    Mlp: Model<T>,
{
    let mut rng = rng_from_seed(5);
    for case in &CASES {
        let mlp = case.network();
        let model: &dyn Model<T> = &mlp;
        let (d_in, d_out, rows) = (case.sizes[0], case.sizes[case.sizes.len() - 1], case.rows);
        let p = model.num_params();
        let thetas: Vec<Vec<T>> =
            (0..lanes::<T>()).map(|_| mlp.init(Init::UniformFanIn, &mut rng)).collect();
        let xs: Vec<Vec<T>> = per_lane(&mut rng, rows * d_in, 2.0);
        let ys: Vec<Vec<T>> = per_lane(&mut rng, rows * d_out, 1.0);
        let (x, y) = (to_lanes(&xs), to_lanes(&ys));
        let mut scratch = lane_scratch::<T>(&mlp, rows);
        let mut per_task = Scratch::for_model(model, Pass::Gradient, rows);
        let zero = T::Pack::splat(T::ZERO);
        for shared in [false, true] {
            let theta_lanes = to_lanes(&thetas);
            let theta =
                if shared { Weights::Shared(&thetas[0]) } else { Weights::Lanes(&theta_lanes) };
            let mut grad = vec![zero; p];
            let loss = model
                .loss_grad_lanes(theta, LaneSplit { rows, x: &x, y: &y }, &mut grad, &mut scratch)
                .unwrap()
                .unwrap();
            for t in 0..lanes::<T>() {
                let theta_t = if shared { &thetas[0] } else { &thetas[t] };
                let split = task_split(&xs[t], &ys[t], d_in, d_out);
                let mut g = vec![T::ZERO; p];
                let s = per_task.get(model, Pass::Gradient, rows);
                let expected_loss = model.loss_grad(theta_t, &split, &mut g, s).unwrap();
                let what =
                    format!("{:?} rows {rows} shared {shared} lane {t} ({})", case.sizes, T::NAME);
                let loss_t = lane::<T>(&[loss], t)[0];
                let loss_error = relative(&[loss_t], &[expected_loss]);
                assert!(loss_error < tolerance, "{what}: loss {loss_t} vs {expected_loss}");
                let error = relative(&lane::<T>(&grad, t), &g);
                assert!(error < tolerance, "{what}: gradient relative error {error:e}");
            }
        }
    }
}

#[test]
fn every_lane_is_its_tasks_per_task_pass_f32() {
    matches_the_per_task_pass::<f32>(1e-5);
}

#[test]
fn every_lane_is_its_tasks_per_task_pass_f64() {
    matches_the_per_task_pass::<f64>(1e-12);
}

/// The lane Hessian-vector product against the per-task one
/// (`Model::loss_grad_hvp`), each lane with its own direction, θ shared
/// (MAML's first reverse step) and per lane (its later ones).
fn hvp_matches_the_per_task_product<T: Real>(tolerance: f64)
where
    Mlp: Model<T>,
{
    let mut rng = rng_from_seed(6);
    for case in &CASES {
        let mlp = case.network();
        let model: &dyn Model<T> = &mlp;
        let (d_in, d_out, rows) = (case.sizes[0], case.sizes[case.sizes.len() - 1], case.rows);
        let p = model.num_params();
        let n = lanes::<T>();
        let thetas: Vec<Vec<T>> = (0..n).map(|_| mlp.init(Init::UniformFanIn, &mut rng)).collect();
        let vs: Vec<Vec<T>> = per_lane(&mut rng, p, 1.0);
        let xs: Vec<Vec<T>> = per_lane(&mut rng, rows * d_in, 2.0);
        let ys: Vec<Vec<T>> = per_lane(&mut rng, rows * d_out, 1.0);
        let (x, y, v) = (to_lanes(&xs), to_lanes(&ys), to_lanes(&vs));
        let mut scratch = lane_scratch::<T>(&mlp, rows);
        let mut per_task = Scratch::for_model(model, Pass::HessianVector, rows);
        for shared in [false, true] {
            let theta_lanes = to_lanes(&thetas);
            let theta =
                if shared { Weights::Shared(&thetas[0]) } else { Weights::Lanes(&theta_lanes) };
            let mut hv = vec![T::Pack::splat(T::ZERO); p];
            let loss = model
                .hvp_lanes(theta, LaneSplit { rows, x: &x, y: &y }, &v, &mut hv, &mut scratch)
                .unwrap()
                .unwrap();
            for t in 0..n {
                let theta_t = if shared { &thetas[0] } else { &thetas[t] };
                let split = task_split(&xs[t], &ys[t], d_in, d_out);
                let (mut g, mut expected) = (vec![T::ZERO; p], vec![T::ZERO; p]);
                let s = per_task.get(model, Pass::HessianVector, rows);
                let expected_loss =
                    model.loss_grad_hvp(theta_t, &split, &vs[t], &mut g, &mut expected, s).unwrap();
                let what =
                    format!("{:?} rows {rows} shared {shared} lane {t} ({})", case.sizes, T::NAME);
                let loss_t = lane::<T>(&[loss], t)[0];
                assert!(relative(&[loss_t], &[expected_loss]) < tolerance, "{what}: loss");
                let error = relative(&lane::<T>(&hv, t), &expected);
                assert!(error < tolerance, "{what}: H v relative error {error:e}");
            }
        }
    }
}

#[test]
fn every_lanes_hessian_vector_product_is_its_tasks_f32() {
    hvp_matches_the_per_task_product::<f32>(2e-5);
}

#[test]
fn every_lanes_hessian_vector_product_is_its_tasks_f64() {
    hvp_matches_the_per_task_product::<f64>(1e-12);
}

/// The prepared pair (MAML's last inner step, then its first reverse
/// step): the gradient is `loss_grad_lanes`'s and the product `hvp_lanes`'s,
/// bit for bit, θ shared and per lane; so is the fused gradient step
/// (`gradient_step_lanes`, the gradient never stored) the gradient
/// followed by its multiply-add, preparing or not, and the reverse step
/// (`hvp_step_lanes`) the product followed by its.
fn prepared_passes_are_the_plain_ones<T: Real>()
where
    Mlp: Model<T>,
{
    let mut rng = rng_from_seed(12);
    for case in &CASES {
        let mlp = case.network();
        let model: &dyn Model<T> = &mlp;
        let (d_in, d_out, rows) = (case.sizes[0], case.sizes[case.sizes.len() - 1], case.rows);
        let (p, n) = (model.num_params(), lanes::<T>());
        let thetas: Vec<Vec<T>> = (0..n).map(|_| mlp.init(Init::UniformFanIn, &mut rng)).collect();
        let v = to_lanes(&per_lane::<T>(&mut rng, p, 1.0));
        let x = to_lanes(&per_lane::<T>(&mut rng, rows * d_in, 2.0));
        let y = to_lanes(&per_lane::<T>(&mut rng, rows * d_out, 1.0));
        let (mut plain, mut prepared) =
            (lane_scratch::<T>(&mlp, rows), lane_scratch::<T>(&mlp, rows));
        let zero = T::Pack::splat(T::ZERO);
        let bits = |v: &[T::Pack]| {
            (0..n).flat_map(|t| lane::<T>(v, t)).map(|x| x.to_f64().to_bits()).collect::<Vec<_>>()
        };
        for shared in [false, true] {
            let theta_lanes = to_lanes(&thetas);
            let theta =
                if shared { Weights::Shared(&thetas[0]) } else { Weights::Lanes(&theta_lanes) };
            let (mut g, mut g_prepared) = (vec![zero; p], vec![zero; p]);
            model
                .loss_grad_lanes(theta, LaneSplit { rows, x: &x, y: &y }, &mut g, &mut plain)
                .unwrap()
                .unwrap();
            model
                .loss_grad_prepare_hvp_lanes(
                    theta,
                    LaneSplit { rows, x: &x, y: &y },
                    &mut g_prepared,
                    &mut prepared,
                )
                .unwrap()
                .unwrap();
            let what = format!("{:?} shared {shared} ({})", case.sizes, T::NAME);
            assert_eq!(bits(&g), bits(&g_prepared), "{what}: gradient");
            let (mut hv, mut hv_prepared) = (vec![zero; p], vec![zero; p]);
            model
                .hvp_lanes(theta, LaneSplit { rows, x: &x, y: &y }, &v, &mut hv, &mut plain)
                .unwrap()
                .unwrap();
            model
                .hvp_lanes_prepared(
                    theta,
                    LaneSplit { rows, x: &x, y: &y },
                    &v,
                    &mut hv_prepared,
                    &mut prepared,
                )
                .unwrap()
                .unwrap();
            assert_eq!(bits(&hv), bits(&hv_prepared), "{what}: H v");
            // The fused gradient step: the gradient, then `(−α) g + θ`.
            let alpha = T::from_f64(0.01);
            let stepped: Vec<T::Pack> = g
                .iter()
                .enumerate()
                .map(|(i, &g)| {
                    let at = match theta {
                        Weights::Shared(t) => T::Pack::splat(t[i]),
                        Weights::Lanes(t) => t[i],
                    };
                    T::Pack::splat(-alpha).mul_add(g, at)
                })
                .collect();
            for prepare in [false, true] {
                let mut phi = vec![zero; p];
                let scratch = if prepare { &mut prepared } else { &mut plain };
                model
                    .gradient_step_lanes(
                        theta,
                        alpha,
                        LaneSplit { rows, x: &x, y: &y },
                        &mut phi,
                        scratch,
                        prepare,
                    )
                    .unwrap()
                    .unwrap();
                assert_eq!(bits(&phi), bits(&stepped), "{what}: step, prepare {prepare}");
            }
            hv_prepared.fill(zero);
            model
                .hvp_lanes_prepared(
                    theta,
                    LaneSplit { rows, x: &x, y: &y },
                    &v,
                    &mut hv_prepared,
                    &mut prepared,
                )
                .unwrap()
                .unwrap();
            assert_eq!(bits(&hv), bits(&hv_prepared), "{what}: H v after a prepared step");
            // MAML's reverse step `v − α H v` in the product's stores.
            let reverse: Vec<T::Pack> =
                hv.iter().zip(&v).map(|(&h, &v)| T::Pack::splat(-alpha).mul_add(h, v)).collect();
            for prepared_scratch in [false, true] {
                let mut out = vec![zero; p];
                let scratch = if prepared_scratch { &mut prepared } else { &mut plain };
                model
                    .hvp_step_lanes(
                        theta,
                        alpha,
                        LaneSplit { rows, x: &x, y: &y },
                        &v,
                        &mut out,
                        scratch,
                        prepared_scratch,
                    )
                    .unwrap()
                    .unwrap();
                let what = format!("{what}: v − α H v, prepared {prepared_scratch}");
                assert_eq!(bits(&out), bits(&reverse), "{what}");
            }
            // The steps do not scan v, nor each lane's own θ: a NaN in one
            // lane's value stays at its index of the output (the caller
            // finds it: LaneGroup's query pass scans φ, MAML the group's sum).
            let (at, t) = (p / 2, n - 1);
            let poison = |v: &[T::Pack]| {
                let mut poisoned = v.to_vec();
                let mut values = vec![T::ZERO; n];
                poisoned[at].store(&mut values);
                values[t] = T::from_f64(f64::NAN);
                poisoned[at] = T::Pack::load(&values);
                poisoned
            };
            let (bad_v, bad_theta) = (poison(&v), poison(&theta_lanes));
            let lane_value = |out: &[T::Pack]| lane::<T>(out, t)[at].to_f64();
            let split = LaneSplit { rows, x: &x, y: &y };
            let mut out = vec![zero; p];
            let step =
                model.hvp_step_lanes(theta, alpha, split, &bad_v, &mut out, &mut plain, false);
            step.unwrap().unwrap();
            assert!(!lane_value(&out).is_finite(), "{what}: the NaN of v left out");
            if !shared {
                let bad = Weights::Lanes(&bad_theta);
                let step =
                    model.gradient_step_lanes(bad, alpha, split, &mut out, &mut plain, false);
                let kept = step.unwrap().map_or(true, |_| !lane_value(&out).is_finite());
                assert!(kept, "{what}: the NaN of θ left out of φ");
            }
        }
    }
}

#[test]
fn prepared_passes_are_the_plain_ones_f32() {
    prepared_passes_are_the_plain_ones::<f32>();
}

#[test]
fn prepared_passes_are_the_plain_ones_f64() {
    prepared_passes_are_the_plain_ones::<f64>();
}

/// `H v` against central differences of the lane gradient along v, in f64:
/// `(∇L(θ + εv) − ∇L(θ − εv)) / 2ε`, each lane its own θ and v, on the
/// curved networks (tanh, sigmoid) and the sinusoid's.
#[test]
fn the_lane_hessian_vector_product_is_the_gradients_derivative() {
    let mut rng = rng_from_seed(8);
    for case in CASES.iter().filter(|c| c.rows > 1) {
        let mlp = case.network();
        let model: &dyn Model<f64> = &mlp;
        let (d_in, d_out, rows) = (case.sizes[0], case.sizes[case.sizes.len() - 1], case.rows);
        let (p, n) = (model.num_params(), lanes::<f64>());
        let thetas: Vec<Vec<f64>> =
            (0..n).map(|_| mlp.init(Init::UniformFanIn, &mut rng)).collect();
        let vs: Vec<Vec<f64>> = per_lane(&mut rng, p, 1.0);
        let x = to_lanes(&per_lane::<f64>(&mut rng, rows * d_in, 2.0));
        let y = to_lanes(&per_lane::<f64>(&mut rng, rows * d_out, 1.0));
        let mut scratch = lane_scratch::<f64>(&mlp, rows);
        let zero = <f64 as Real>::Pack::splat(0.0);
        let (theta, v) = (to_lanes(&thetas), to_lanes(&vs));
        let mut hv = vec![zero; p];
        model
            .hvp_lanes(
                Weights::Lanes(&theta),
                LaneSplit { rows, x: &x, y: &y },
                &v,
                &mut hv,
                &mut scratch,
            )
            .unwrap()
            .unwrap();
        let eps = 1e-5;
        let mut grad_at = |sign: f64| {
            let moved: Vec<Vec<f64>> = thetas
                .iter()
                .zip(&vs)
                .map(|(t, v)| t.iter().zip(v).map(|(t, v)| t + sign * eps * v).collect())
                .collect();
            let mut grad = vec![zero; p];
            let moved = to_lanes(&moved);
            model
                .loss_grad_lanes(
                    Weights::Lanes(&moved),
                    LaneSplit { rows, x: &x, y: &y },
                    &mut grad,
                    &mut scratch,
                )
                .unwrap()
                .unwrap();
            grad
        };
        let (plus, minus) = (grad_at(1.0), grad_at(-1.0));
        for t in 0..n {
            let (plus, minus) = (lane::<f64>(&plus, t), lane::<f64>(&minus, t));
            let fd: Vec<f64> =
                plus.iter().zip(&minus).map(|(a, b)| (a - b) / (2.0 * eps)).collect();
            let error = relative(&lane::<f64>(&hv, t), &fd);
            assert!(error < 1e-6, "{:?} lane {t}: H v against differences {error:e}", case.sizes);
        }
    }
}

#[test]
fn a_tasks_result_does_not_depend_on_its_lane_or_its_neighbours() {
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).unwrap();
    let mut rng = rng_from_seed(9);
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng);
    let n = lanes::<f32>();
    let xs: Vec<Vec<f32>> = per_lane(&mut rng, 10, 5.0);
    let ys: Vec<Vec<f32>> = per_lane(&mut rng, 10, 5.0);
    let mut scratch = lane_scratch::<f32>(&mlp, 10);
    let zero = <f32 as Real>::Pack::splat(0.0);
    let run = |xs: &[Vec<f32>], ys: &[Vec<f32>], scratch: &mut _| {
        let mut grad = vec![zero; theta.len()];
        Model::<f32>::loss_grad_lanes(
            &mlp,
            Weights::Shared(&theta),
            LaneSplit { rows: 10, x: &to_lanes(xs), y: &to_lanes(ys) },
            &mut grad,
            scratch,
        )
        .unwrap()
        .unwrap();
        grad
    };
    let grad = run(&xs, &ys, &mut scratch);
    // Task 0 moved to the last lane, the others replaced by zeros.
    let mut moved_x = vec![vec![0.0; 10]; n];
    let mut moved_y = vec![vec![0.0; 10]; n];
    moved_x[n - 1] = xs[0].clone();
    moved_y[n - 1] = ys[0].clone();
    let moved = run(&moved_x, &moved_y, &mut scratch);
    let bits = |g: Vec<f32>| g.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(lane::<f32>(&grad, 0)), bits(lane::<f32>(&moved, n - 1)));
}

/// A lane pass over 4 rows.
fn pass(
    model: &dyn Model<f32>,
    theta: Weights<'_, f32>,
    x: &[<f32 as Real>::Pack],
    y: &[<f32 as Real>::Pack],
    grad: &mut [<f32 as Real>::Pack],
    scratch: &mut [<f32 as Real>::Pack],
) -> theta_core::Result<<f32 as Real>::Pack> {
    model
        .loss_grad_lanes(theta, LaneSplit { rows: 4, x, y }, grad, scratch)
        .expect("an MLP has lane passes")
}

/// The lane scratch of `mlp` for tasks of `rows` rows.
fn lane_scratch<T: Real>(mlp: &Mlp, rows: usize) -> Vec<T::Pack> {
    let len = Model::<T>::lane_scratch_len(mlp, rows).expect("an MSE network has lane passes");
    vec![T::Pack::splat(T::ZERO); len]
}

#[test]
fn bad_input_is_refused() {
    let mlp = Mlp::new(MlpSpec::relu(&[1, 8, 1], Loss::Mse)).unwrap();
    let p = <Mlp as Model<f32>>::num_params(&mlp);
    let zero = <f32 as Real>::Pack::splat(0.0);
    let mut scratch = lane_scratch::<f32>(&mlp, 4);
    let model: &dyn Model<f32> = &mlp;
    let (x, y, mut grad) = (vec![zero; 4], vec![zero; 4], vec![zero; p]);
    let theta = vec![0.1f32; p];
    let mut nan = theta.clone();
    nan[3] = f32::NAN;
    let err = pass(model, Weights::Shared(&nan), &x, &y, &mut grad, &mut scratch);
    assert!(matches!(err, Err(Error::NonFinite(_))), "{err:?}");
    let nan_lanes = vec![<f32 as Real>::Pack::splat(f32::INFINITY); p];
    let err = pass(model, Weights::Lanes(&nan_lanes), &x, &y, &mut grad, &mut scratch);
    assert!(matches!(err, Err(Error::NonFinite(_))), "{err:?}");
    let err = pass(model, Weights::Shared(&theta[1..]), &x, &y, &mut grad, &mut scratch);
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
    let err = pass(model, Weights::Shared(&theta), &x[1..], &y, &mut grad, &mut scratch);
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
    let err = pass(model, Weights::Shared(&theta), &x, &y, &mut grad[1..], &mut scratch);
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
    let err = pass(model, Weights::Shared(&theta), &x, &y, &mut grad, &mut scratch[1..]);
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
    let huge = vec![<f32 as Real>::Pack::splat(1e30); 4];
    let err = pass(model, Weights::Shared(&theta), &x, &huge, &mut grad, &mut scratch);
    assert!(matches!(err, Err(Error::NonFinite(_))), "{err:?}");
    // The R-pass: a direction or product of the wrong length, a direction
    // that is not finite.
    let v = vec![zero; p];
    let mut hv = vec![zero; p];
    let mut hvp = |v: &[<f32 as Real>::Pack], hv: &mut [<f32 as Real>::Pack]| {
        let theta = Weights::Shared(&theta);
        model
            .hvp_lanes(theta, LaneSplit { rows: 4, x: &x, y: &y }, v, hv, &mut scratch)
            .expect("an MLP has lane passes")
    };
    let err = hvp(&v[1..], &mut hv);
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
    let err = hvp(&v, &mut hv[1..]);
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
    let mut nan_v = v.clone();
    nan_v[2] = <f32 as Real>::Pack::splat(f32::NAN);
    let err = hvp(&nan_v, &mut hv);
    assert!(matches!(err, Err(Error::NonFinite(_))), "{err:?}");
    assert!(hvp(&v, &mut hv).is_ok());
    let classifier = Mlp::new(MlpSpec::relu(&[1, 8, 3], Loss::SoftmaxCrossEntropy)).unwrap();
    let p = <Mlp as Model<f32>>::num_params(&classifier);
    assert_eq!(Model::<f32>::lane_scratch_len(&classifier, 4), None);
    let classifier: &dyn Model<f32> = &classifier;
    let (y3, mut grad) = (vec![zero; 12], vec![zero; p]);
    let theta = vec![0.1f32; p];
    let err = pass(classifier, Weights::Shared(&theta), &x, &y3, &mut grad, &mut scratch);
    assert!(matches!(err, Err(Error::InvalidParameter { name: "loss", .. })), "{err:?}");
}

/// MAML's fused one-step lane pass (`one_step_meta_gradient_lanes`, which
/// never forms a low-rank layer's part of φ) against the composed lane
/// passes it replaces: the inner step, the query gradient at φ, the
/// reverse step `g − α H_s(θ) g`, per lane within rounding, and the same
/// query losses; offered exactly where some layer is low-rank on the
/// support rows (here the first, a middle one, or none).
fn fused_one_step_is_the_composed_passes<T: Real>(tolerance: f64)
where
    Mlp: Model<T>,
{
    let mut rng = rng_from_seed(31);
    let extra = [
        Case {
            sizes: &[20, 16, 1],
            hidden: Activation::Relu,
            output: Activation::Identity,
            rows: 3,
        },
        Case {
            sizes: &[3, 30, 30, 2],
            hidden: Activation::Tanh,
            output: Activation::Sigmoid,
            rows: 4,
        },
        Case {
            sizes: &[2, 24, 24, 24, 1],
            hidden: Activation::Sigmoid,
            output: Activation::Identity,
            rows: 5,
        },
    ];
    let mut fused_cases = 0;
    for case in CASES.iter().chain(&extra) {
        let mlp = case.network();
        let model: &dyn Model<T> = &mlp;
        let (d_in, d_out, rs) = (case.sizes[0], case.sizes[case.sizes.len() - 1], case.rows);
        let rq = rs + 3;
        let low_rank = case.sizes.windows(2).any(|w| rs * (w[0] + w[1]) < w[0] * w[1]);
        let Some(len) = model.one_step_lane_scratch_len(rs, rq) else {
            assert!(!low_rank, "{:?}: a low-rank layer and no fused pass", case.sizes);
            continue;
        };
        assert!(low_rank, "{:?}: a fused pass without a low-rank layer", case.sizes);
        fused_cases += 1;
        let (p, n) = (model.num_params(), lanes::<T>());
        let theta: Vec<T> = mlp.init(Init::UniformFanIn, &mut rng);
        let xs = to_lanes(&per_lane::<T>(&mut rng, rs * d_in, 2.0));
        let ys = to_lanes(&per_lane::<T>(&mut rng, rs * d_out, 1.0));
        let xq = to_lanes(&per_lane::<T>(&mut rng, rq * d_in, 2.0));
        let yq = to_lanes(&per_lane::<T>(&mut rng, rq * d_out, 1.0));
        let (support, query) =
            (LaneSplit { rows: rs, x: &xs, y: &ys }, LaneSplit { rows: rq, x: &xq, y: &yq });
        let zero = T::Pack::splat(T::ZERO);
        let alpha = T::from_f64(0.1);
        // The composed passes, as LaneGroup runs them for one inner step.
        let mut scratch = lane_scratch::<T>(&mlp, rs.max(rq));
        let (mut phi, mut g, mut expected) = (vec![zero; p], vec![zero; p], vec![zero; p]);
        let shared = Weights::Shared(&theta);
        model
            .gradient_step_lanes(shared, alpha, support, &mut phi, &mut scratch, false)
            .unwrap()
            .unwrap();
        let loss = model
            .loss_grad_lanes(Weights::Lanes(&phi), query, &mut g, &mut scratch)
            .unwrap()
            .unwrap();
        model
            .hvp_step_lanes(shared, alpha, support, &g, &mut expected, &mut scratch, false)
            .unwrap()
            .unwrap();
        let mut fused_scratch = vec![zero; len];
        let mut out = vec![zero; p];
        let fused = model
            .one_step_meta_gradient_lanes(
                &theta,
                alpha,
                support,
                query,
                &mut out,
                &mut fused_scratch,
            )
            .expect("offered")
            .unwrap();
        let what = format!("{:?} ({})", case.sizes, T::NAME);
        for t in 0..n {
            let (a, b) = (lane::<T>(&out, t), lane::<T>(&expected, t));
            let err = relative(&a, &b);
            assert!(err < tolerance, "{what}: lane {t}'s meta-gradient off by {err:e}");
        }
        let err = relative(&lane_all::<T>(&[fused]), &lane_all::<T>(&[loss]));
        assert!(err < tolerance, "{what}: query losses off by {err:e}");
    }
    assert_eq!(fused_cases, 6, "the cases with a low-rank layer");
}

/// Every lane of the packs, lane by lane.
fn lane_all<T: Real>(x: &[T::Pack]) -> Vec<T> {
    (0..lanes::<T>()).flat_map(|t| lane::<T>(x, t)).collect()
}

#[test]
fn fused_one_step_is_the_composed_passes_f32() {
    fused_one_step_is_the_composed_passes::<f32>(1e-4);
}

#[test]
fn fused_one_step_is_the_composed_passes_f64() {
    fused_one_step_is_the_composed_passes::<f64>(1e-12);
}
