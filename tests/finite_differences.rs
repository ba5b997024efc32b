//! Exactness of every derivative against central finite differences in f64,
//! for every activation (hidden and output), both losses and several shapes.

use theta_core::random::{below, rng_from_seed, uniform};
use theta_core::{Activation, Loss, Matrix, Model, Pass, Scratch, Split, Targets};
use theta_models::{BatchNormMlp, Init, Mlp, MlpSpec};
use theta_tests::rel_err;

const TOL: f64 = 1e-6;

struct Case {
    mlp: Mlp,
    /// The model under test: the MLP itself, or its batch-normalised twin.
    model: Box<dyn Model<f64>>,
    theta: Vec<f64>,
    split: Split<f64>,
    v: Vec<f64>,
}

fn case(sizes: &[usize], hidden: Activation, output: Activation, loss: Loss, seed: u64) -> Case {
    case_of_rows(sizes, hidden, output, loss, seed, 7)
}

fn case_of_rows(
    sizes: &[usize],
    hidden: Activation,
    output: Activation,
    loss: Loss,
    seed: u64,
    rows: usize,
) -> Case {
    let mlp = Mlp::new(MlpSpec { layer_sizes: sizes.to_vec(), hidden, output, loss }).unwrap();
    let mut rng = rng_from_seed(seed);
    let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng);
    let (d_in, d_out) = (sizes[0], sizes[sizes.len() - 1]);
    let x: Vec<f64> = (0..rows * d_in).map(|_| uniform(&mut rng, -2.0, 2.0)).collect();
    let y = match loss {
        Loss::Mse => Targets::Values(
            Matrix::from_vec(
                rows,
                d_out,
                (0..rows * d_out).map(|_| uniform(&mut rng, -1.0, 1.0)).collect(),
            )
            .unwrap(),
        ),
        Loss::SoftmaxCrossEntropy => {
            Targets::Labels((0..rows).map(|_| below(&mut rng, d_out) as u32).collect())
        }
    };
    let split = Split::new("support", Matrix::from_vec(rows, d_in, x).unwrap(), y).unwrap();
    let v: Vec<f64> = (0..theta.len()).map(|_| uniform(&mut rng, -1.0, 1.0)).collect();
    Case { model: Box::new(mlp.clone()), mlp, theta, split, v }
}

/// The same case on the batch-normalised network (θ has the same layout).
fn batch_norm(mut c: Case, epsilon: f64) -> Case {
    c.model = Box::new(BatchNormMlp::new(c.mlp.spec().clone(), epsilon).unwrap());
    c
}

fn loss(c: &Case, theta: &[f64]) -> f64 {
    let m: &dyn Model<f64> = c.model.as_ref();
    m.loss(
        theta,
        &c.split,
        Scratch::for_model(m, Pass::Loss, c.split.len()).get(m, Pass::Loss, c.split.len()),
    )
    .unwrap()
}

fn grad(c: &Case, theta: &[f64]) -> Vec<f64> {
    let m: &dyn Model<f64> = c.model.as_ref();
    let mut g = vec![0.0; theta.len()];
    let mut s = Scratch::new();
    m.loss_grad(theta, &c.split, &mut g, s.get(m, Pass::Gradient, c.split.len())).unwrap();
    g
}

fn outputs(c: &Case, theta: &[f64]) -> Vec<f64> {
    let m: &dyn Model<f64> = c.model.as_ref();
    let mut out = vec![0.0; c.split.len() * m.output_dim()];
    let mut s = Scratch::new();
    m.predict(theta, c.split.x(), &mut out, s.get(m, Pass::Predict, c.split.len())).unwrap();
    out
}

fn shifted(theta: &[f64], dir: &[f64], eps: f64) -> Vec<f64> {
    theta.iter().zip(dir).map(|(t, d)| t + eps * d).collect()
}

/// Checks gradient, Hessian-vector and Gauss-Newton-vector products of one
/// case against finite differences, and the fused pass against the plain one.
fn check(c: &Case, label: &str) {
    let m: &dyn Model<f64> = c.model.as_ref();
    let p = c.theta.len();
    let n = c.split.len();

    // Gradient: each coordinate by a central difference.
    let g = grad(c, &c.theta);
    let h = 1e-6;
    let fd: Vec<f64> = (0..p)
        .map(|i| {
            let mut e = vec![0.0; p];
            e[i] = 1.0;
            (loss(c, &shifted(&c.theta, &e, h)) - loss(c, &shifted(&c.theta, &e, -h))) / (2.0 * h)
        })
        .collect();
    let e = rel_err(&g, &fd);
    assert!(e < TOL, "{label}: gradient relative error {e:e}");

    // Hessian-vector product: central difference of the gradient along v.
    let (mut g2, mut hv) = (vec![0.0; p], vec![0.0; p]);
    let mut s = Scratch::new();
    let l = m
        .loss_grad_hvp(&c.theta, &c.split, &c.v, &mut g2, &mut hv, s.get(m, Pass::HessianVector, n))
        .unwrap();
    assert_eq!(l, loss(c, &c.theta), "{label}: fused pass changes the loss");
    assert!(rel_err(&g2, &g) < 1e-14, "{label}: fused pass changes the gradient");
    let h = 1e-5;
    let gp = grad(c, &shifted(&c.theta, &c.v, h));
    let gm = grad(c, &shifted(&c.theta, &c.v, -h));
    let fd: Vec<f64> = gp.iter().zip(&gm).map(|(a, b)| (a - b) / (2.0 * h)).collect();
    let e = rel_err(&hv, &fd);
    assert!(e < TOL, "{label}: Hessian-vector relative error {e:e}");

    // Gauss-Newton: Jᵀ H_out J v with J v by a central difference of the
    // outputs, H_out from the loss's formula, and Jᵀ u column by column.
    let d = m.output_dim();
    let out = outputs(c, &c.theta);
    let jv: Vec<f64> = outputs(c, &shifted(&c.theta, &c.v, h))
        .iter()
        .zip(outputs(c, &shifted(&c.theta, &c.v, -h)))
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    let mut u = vec![0.0; n * d];
    for r in 0..n {
        let (o, ju) = (&out[r * d..(r + 1) * d], &jv[r * d..(r + 1) * d]);
        match m.loss_kind() {
            Loss::Mse => (0..d).for_each(|j| u[r * d + j] = 2.0 / n as f64 * ju[j]),
            Loss::SoftmaxCrossEntropy => {
                let mx = o.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = o.iter().map(|x| (x - mx).exp()).sum();
                let pr: Vec<f64> = o.iter().map(|x| (x - mx).exp() / z).collect();
                let pj: f64 = pr.iter().zip(ju).map(|(a, b)| a * b).sum();
                (0..d).for_each(|j| u[r * d + j] = pr[j] * (ju[j] - pj) / n as f64);
            }
        }
    }
    let h = 1e-6;
    let fd_gn: Vec<f64> = (0..p)
        .map(|i| {
            let mut e = vec![0.0; p];
            e[i] = 1.0;
            let (a, b) =
                (outputs(c, &shifted(&c.theta, &e, h)), outputs(c, &shifted(&c.theta, &e, -h)));
            (0..n * d).map(|k| (a[k] - b[k]) / (2.0 * h) * u[k]).sum()
        })
        .collect();
    let mut gn = vec![0.0; p];
    m.loss_gnvp(&c.theta, &c.split, &c.v, &mut gn, s.get(m, Pass::GaussNewton, n)).unwrap();
    let e = rel_err(&gn, &fd_gn);
    assert!(e < TOL, "{label}: Gauss-Newton-vector relative error {e:e}");
    // G is positive semi-definite: vᵀ G v ≥ 0.
    let vgv: f64 = c.v.iter().zip(&gn).map(|(a, b)| a * b).sum();
    assert!(vgv >= -1e-12, "{label}: vᵀGv = {vgv} < 0");
    // Prepared once, then several directions (as conjugate gradient asks):
    // every product bit for bit that of loss_gnvp.
    let mut prepared = Scratch::new();
    let ps = prepared.get(m, Pass::GaussNewton, n);
    m.prepare_gnvp(&c.theta, &c.split, ps).unwrap();
    for (i, factor) in [1.0, -0.5, 3.0].into_iter().enumerate() {
        let u: Vec<f64> =
            c.v.iter().enumerate().map(|(j, x)| factor * x + 0.1 * j as f64).collect();
        let (mut expected, mut actual) = (vec![0.0; p], vec![0.0; p]);
        m.loss_gnvp(&c.theta, &c.split, &u, &mut expected, s.get(m, Pass::GaussNewton, n)).unwrap();
        m.gnvp_prepared(&c.theta, &c.split, &u, &mut actual, ps).unwrap();
        assert_eq!(actual, expected, "{label}: prepared Gauss-Newton product {i}");
    }
    let bad: Vec<f64> = c.v.iter().map(|_| f64::NAN).collect();
    let mut out = vec![0.0; p];
    assert!(m.gnvp_prepared(&c.theta, &c.split, &bad, &mut out, ps).is_err(), "{label}: NaN v");
    // Prepared by a gradient pass (a proximal Gauss-Newton step): the
    // gradient as loss_grad's, every product as loss_gnvp's, bit for bit.
    let (mut g_prepared, mut g_plain) = (vec![0.0; p], vec![0.0; p]);
    let plain = m.loss_grad(&c.theta, &c.split, &mut g_plain, s.get(m, Pass::Gradient, n)).unwrap();
    ps.fill(f64::NAN);
    let loss = m.loss_grad_prepare_gnvp(&c.theta, &c.split, &mut g_prepared, ps).unwrap();
    assert_eq!(
        (loss.to_bits(), &g_prepared),
        (plain.to_bits(), &g_plain),
        "{label}: Gauss-Newton-prepared gradient"
    );
    for (i, factor) in [0.5, -2.0].into_iter().enumerate() {
        let u: Vec<f64> =
            c.v.iter().enumerate().map(|(j, x)| factor * x + 0.2 * j as f64).collect();
        let (mut expected, mut actual) = (vec![0.0; p], vec![0.0; p]);
        m.loss_gnvp(&c.theta, &c.split, &u, &mut expected, s.get(m, Pass::GaussNewton, n)).unwrap();
        m.gnvp_prepared(&c.theta, &c.split, &u, &mut actual, ps).unwrap();
        assert_eq!(actual, expected, "{label}: Gauss-Newton product {i} after a gradient pass");
    }
    // The same for Hessian-vector products prepared by a gradient pass (MAML's
    // inner loop then reverse pass): the gradient as loss_grad's, every
    // product as loss_grad_hvp's, bit for bit.
    let ps = prepared.get(m, Pass::HessianVector, n);
    let loss = m.loss_grad_prepare_hvp(&c.theta, &c.split, &mut g_prepared, ps).unwrap();
    assert_eq!(
        (loss.to_bits(), &g_prepared),
        (plain.to_bits(), &g_plain),
        "{label}: prepared gradient"
    );
    for (i, factor) in [1.0, -0.5, 3.0].into_iter().enumerate() {
        let u: Vec<f64> =
            c.v.iter().enumerate().map(|(j, x)| factor * x - 0.2 * j as f64).collect();
        let (mut expected, mut actual, mut work) = (vec![0.0; p], vec![0.0; p], vec![0.0; p]);
        let hs = s.get(m, Pass::HessianVector, n);
        m.loss_grad_hvp(&c.theta, &c.split, &u, &mut work, &mut expected, hs).unwrap();
        m.hvp_prepared(&c.theta, &c.split, &u, &mut work, &mut actual, ps).unwrap();
        assert_eq!(actual, expected, "{label}: prepared Hessian-vector product {i}");
    }
    assert!(
        m.hvp_prepared(&c.theta, &c.split, &bad, &mut g_plain, &mut out, ps).is_err(),
        "{label}: NaN v"
    );
    // Prepared by the forward pass alone (no gradient): the same products.
    // A NaN θ is refused: by the preparation, or, for a model that prepares
    // nothing, by the product.
    let nan_theta: Vec<f64> = c.theta.iter().map(|&t| t * f64::NAN).collect();
    let mut work = vec![0.0; p];
    let accepted = m.prepare_hvp(&nan_theta, &c.split, ps).is_ok()
        && m.hvp_prepared(&nan_theta, &c.split, &c.v, &mut work, &mut out, ps).is_ok();
    assert!(!accepted, "{label}: NaN θ accepted");
    m.prepare_hvp(&c.theta, &c.split, ps).unwrap();
    for (i, factor) in [2.0, -1.0].into_iter().enumerate() {
        let u: Vec<f64> =
            c.v.iter().enumerate().map(|(j, x)| factor * x + 0.3 * j as f64).collect();
        let (mut expected, mut actual, mut work) = (vec![0.0; p], vec![0.0; p], vec![0.0; p]);
        let hs = s.get(m, Pass::HessianVector, n);
        m.loss_grad_hvp(&c.theta, &c.split, &u, &mut work, &mut expected, hs).unwrap();
        m.hvp_prepared(&c.theta, &c.split, &u, &mut work, &mut actual, ps).unwrap();
        assert_eq!(actual, expected, "{label}: Hessian-vector product {i} after prepare_hvp");
    }
}

#[test]
fn every_activation_and_loss_matches_finite_differences() {
    let shapes: [&[usize]; 3] = [&[3, 5, 4, 2], &[1, 6, 1], &[2, 3, 17, 3]];
    let mut seed = 1;
    for loss in [Loss::Mse, Loss::SoftmaxCrossEntropy] {
        for hidden in Activation::ALL {
            for output in Activation::ALL {
                for sizes in shapes {
                    let mut sizes = sizes.to_vec();
                    if loss == Loss::SoftmaxCrossEntropy {
                        *sizes.last_mut().unwrap() = sizes.last().unwrap().max(&2).to_owned();
                    }
                    seed += 1;
                    let c = case(&sizes, hidden, output, loss, seed);
                    check(&c, &format!("{sizes:?} {hidden}/{output} {loss}"));
                }
            }
        }
    }
}

#[test]
fn single_layer_and_deep_networks() {
    check(&case(&[4, 3], Activation::Tanh, Activation::Sigmoid, Loss::Mse, 91), "single layer");
    check(
        &case(&[4, 3], Activation::Relu, Activation::Identity, Loss::SoftmaxCrossEntropy, 92),
        "logistic regression",
    );
    check(
        &case(&[2, 8, 8, 8, 8, 8, 2], Activation::Tanh, Activation::Identity, Loss::Mse, 93),
        "deep tanh",
    );
}

/// Batch normalisation couples the rows of a batch; every derivative still
/// matches finite differences, for every hidden activation, both losses,
/// several depths, and a one-row batch (zero variance: ẑ = 0).
#[test]
fn batch_normalised_networks_match_finite_differences() {
    let mut seed = 500;
    for loss in [Loss::Mse, Loss::SoftmaxCrossEntropy] {
        for hidden in Activation::ALL {
            for sizes in [&[3, 5, 4, 2][..], &[2, 6, 3], &[4, 7, 5, 6, 3]] {
                seed += 1;
                let c = batch_norm(case(sizes, hidden, Activation::Identity, loss, seed), 1e-3);
                check(&c, &format!("batch norm {sizes:?} {hidden} {loss}"));
            }
        }
    }
    let c = batch_norm(case(&[3, 5, 2], Activation::Tanh, Activation::Sigmoid, Loss::Mse, 7), 0.5);
    check(&c, "batch norm, sigmoid output, ε = 0.5");
    let one = case_of_rows(&[3, 4, 2], Activation::Tanh, Activation::Identity, Loss::Mse, 8, 1);
    check(&batch_norm(one, 1e-3), "batch norm, one row");
}

#[test]
fn f32_agrees_with_f64() {
    let c = case(&[3, 20, 20, 2], Activation::Tanh, Activation::Identity, Loss::Mse, 5);
    let m32: &dyn Model<f32> = &c.mlp;
    let theta32: Vec<f32> = c.theta.iter().map(|&x| x as f32).collect();
    let v32: Vec<f32> = c.v.iter().map(|&x| x as f32).collect();
    let split32 = c.split.cast::<f32>();
    let (mut g, mut hv) = (vec![0f32; theta32.len()], vec![0f32; theta32.len()]);
    let mut s = Scratch::new();
    m32.loss_grad_hvp(
        &theta32,
        &split32,
        &v32,
        &mut g,
        &mut hv,
        s.get(m32, Pass::HessianVector, 7),
    )
    .unwrap();
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    assert!(rel_err(&to64(&g), &grad(&c, &c.theta)) < 1e-5);
}

/// The article's curve-fitting model: the 1-1 MLP with tanh output is
/// g(x) = tanh(a·x + b) with θ = (a, b), so a task's own (a, b) has zero loss
/// and a zero gradient.
#[test]
fn curve_fitting_model_has_theta_equal_to_a_b() {
    use theta_tasks::{ARTICLE_TASKS, CurveFitting};
    let mlp = Mlp::new(MlpSpec {
        layer_sizes: vec![1, 1],
        hidden: Activation::Identity,
        output: Activation::Tanh,
        loss: Loss::Mse,
    })
    .unwrap();
    let m: &dyn Model<f64> = &mlp;
    assert_eq!(m.num_params(), 2);
    let dist = CurveFitting::new(10, 10).unwrap();
    for params in ARTICLE_TASKS {
        let task = dist.grid_task::<f64>(params, 25).unwrap();
        let mut g = [1.0; 2];
        let mut s = Scratch::new();
        let l = m
            .loss_grad(&[params.a, params.b], &task.support, &mut g, s.get(m, Pass::Gradient, 25))
            .unwrap();
        assert!(l < 1e-30 && g.iter().all(|g| g.abs() < 1e-15), "loss {l}, gradient {g:?}");
        let off =
            m.loss(&[params.a + 0.1, params.b], &task.support, s.get(m, Pass::Loss, 25)).unwrap();
        assert!(off > 1e-4);
    }
}
