//! Bad input gets a typed error that names the problem, never a panic.

use theta_core::random::rng_from_seed;
use theta_core::{Activation, Error, Loss, Matrix, Model, Pass, Scratch, Split, Targets};
use theta_models::{Init, Mlp, MlpSpec};

fn mlp(loss: Loss, sizes: &[usize]) -> Mlp {
    Mlp::new(MlpSpec::relu(sizes, loss)).unwrap()
}

fn split(rows: usize, cols: usize, y: Targets<f64>) -> Split<f64> {
    Split::new("support", Matrix::zeros(rows, cols), y).unwrap()
}

#[test]
fn models_refuse_what_does_not_fit() {
    let m = mlp(Loss::Mse, &[2, 3, 1]);
    let model: &dyn Model<f64> = &m;
    let theta: Vec<f64> = m.init(Init::UniformFanIn, &mut rng_from_seed(0));
    let good = split(4, 2, Targets::Values(Matrix::zeros(4, 1)));
    let mut s = Scratch::new();
    let mut g = vec![0.0; theta.len()];
    let mut run = |theta: &[f64], split: &Split<f64>, g: &mut [f64]| {
        let rows = split.len();
        model
            .loss_grad(theta, split, g, s.get(model, Pass::Gradient, rows))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        run(&theta[1..], &good, &mut g.clone()),
        "parameter vector length: expected 13, got 12"
    );
    assert_eq!(
        run(&theta, &split(4, 3, Targets::Values(Matrix::zeros(4, 1))), &mut g),
        "input width: expected 2, got 3"
    );
    assert_eq!(
        run(&theta, &split(4, 2, Targets::Values(Matrix::zeros(4, 2))), &mut g),
        "target width: expected 1, got 2"
    );
    assert_eq!(
        run(&theta, &split(4, 2, Targets::Labels(vec![0; 4])), &mut g),
        "the mse loss needs values, but the split has labels"
    );
    assert_eq!(run(&theta, &good, &mut g[1..]), "gradient buffer length: expected 13, got 12");
    let mut nan = theta.clone();
    nan[3] = f64::NAN;
    assert_eq!(run(&nan, &good, &mut g), "the parameter vector θ is not finite");
    let e = model.loss(&theta, &good, &mut [0.0; 3]).unwrap_err();
    assert!(matches!(e, Error::ScratchTooSmall { given: 3, .. }), "{e}");

    let c = mlp(Loss::SoftmaxCrossEntropy, &[2, 3]);
    let cm: &dyn Model<f64> = &c;
    let ct: Vec<f64> = c.init(Init::UniformFanIn, &mut rng_from_seed(0));
    let e = cm
        .loss(&ct, &split(3, 2, Targets::Labels(vec![0, 3, 1])), s.get(cm, Pass::Loss, 3))
        .unwrap_err();
    assert_eq!(e.to_string(), "label 3 of point 1 is not below the 3 classes");
}

#[test]
fn splits_refuse_empty_mismatched_and_non_finite_data() {
    let e = Split::<f64>::new("support", Matrix::zeros(0, 2), Targets::Labels(vec![])).unwrap_err();
    assert_eq!(e.to_string(), "the support set is empty");
    let e =
        Split::<f64>::new("query", Matrix::zeros(3, 2), Targets::Labels(vec![0, 1])).unwrap_err();
    assert_eq!(e.to_string(), "query targets (one per input row): expected 3, got 2");
    let mut x = Matrix::zeros(2, 1);
    x.as_mut_slice()[1] = f64::INFINITY;
    let e = Split::new("support", x, Targets::Values(Matrix::zeros(2, 1))).unwrap_err();
    assert_eq!(e.to_string(), "an input of the support set is not finite");
    let e = Matrix::<f64>::from_rows(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
    assert_eq!(e.to_string(), "matrix row length: expected 2, got 1");
}

#[test]
fn impossible_networks_are_named() {
    let spec = |sizes: &[usize], loss| MlpSpec {
        layer_sizes: sizes.to_vec(),
        hidden: Activation::Tanh,
        output: Activation::Identity,
        loss,
    };
    let e = Mlp::new(spec(&[3, 0, 1], Loss::Mse)).unwrap_err();
    assert_eq!(e.to_string(), "invalid model: layer_sizes [3, 0, 1]: width 1 is zero");
    let e = Mlp::new(spec(&[3], Loss::Mse)).unwrap_err();
    assert!(e.to_string().contains("needs an input and an output width"));
    let e = Mlp::new(spec(&[3, 1], Loss::SoftmaxCrossEntropy)).unwrap_err();
    assert!(e.to_string().contains("at least two outputs"));
}

/// MAML's fused one-step pass (inputs wide against the support rows) checks
/// what the composed passes check, and names a step that diverges.
#[test]
fn the_fused_one_step_pass_refuses_what_the_composed_passes_refuse() {
    let m = mlp(Loss::SoftmaxCrossEntropy, &[64, 32, 20, 4]);
    let model: &dyn Model<f64> = &m;
    let theta: Vec<f64> = m.init(Init::UniformFanIn, &mut rng_from_seed(0));
    let labels = |n: usize| Targets::Labels((0..n as u32).map(|i| i % 4).collect());
    let x = |rows, cols| Matrix::from_vec(rows, cols, vec![0.5; rows * cols]).unwrap();
    // Large inputs, large support gradients.
    let big = Matrix::from_vec(4, 64, vec![50.0; 4 * 64]).unwrap();
    let (support, query) = (
        Split::new("support", big, labels(4)).unwrap(),
        Split::new("query", x(16, 64), labels(16)).unwrap(),
    );
    let mut g = vec![0.0; theta.len()];
    let run = |theta: &[f64], q: &Split<f64>, alpha: f64, g: &mut [f64]| {
        model
            .one_step_meta_gradient(theta, &support, q, alpha, g, &mut Scratch::new())
            .expect("fused on these shapes")
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let p = theta.len();
    assert_eq!(
        run(&theta[1..], &query, 0.1, &mut g.clone()),
        format!("parameter vector length: expected {p}, got {}", p - 1)
    );
    let mut nan = theta.clone();
    nan[7] = f64::NAN;
    assert_eq!(run(&nan, &query, 0.1, &mut g), "the parameter vector θ is not finite");
    let narrow = Split::new("query", x(16, 63), labels(16)).unwrap();
    assert_eq!(run(&theta, &narrow, 0.1, &mut g), "input width: expected 64, got 63");
    let bad = Split::new("query", x(2, 64), Targets::Labels(vec![0, 4])).unwrap();
    assert_eq!(run(&theta, &bad, 0.1, &mut g), "label 4 of point 1 is not below the 4 classes");
    assert_eq!(
        run(&theta, &query, 0.1, &mut g[1..]),
        format!("gradient buffer length: expected {p}, got {}", p - 1)
    );
    // A step too large for the floating-point range: φ's upper layers
    // overflow; one that does not overflow but blows up the query loss.
    assert_eq!(
        run(&theta, &query, f64::MAX, &mut g),
        "the inner step's φ = θ − α∇L_s(θ) is not finite"
    );
    assert_eq!(run(&theta, &query, 1e300, &mut g), "the loss is not finite");
}
