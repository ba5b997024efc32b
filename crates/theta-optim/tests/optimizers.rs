use theta_optim::*;

#[test]
fn sgd_and_momentum_follow_their_formulas() {
    let mut theta = vec![1.0f64, -2.0];
    Sgd::new(0.5).unwrap().step(&mut theta, &[2.0, 4.0], &mut ()).unwrap();
    assert_eq!(theta, [0.0, -4.0]);

    let opt = Momentum::new(0.1, 0.9).unwrap();
    let mut theta = vec![0.0f64];
    let mut u = Optimizer::<f64>::init_state(&opt, 1);
    for _ in 0..2 {
        opt.step(&mut theta, &[1.0], &mut u).unwrap();
    }
    // u₁ = 1, u₂ = 1.9; θ = −0.1·(1 + 1.9).
    assert!((theta[0] + 0.29).abs() < 1e-15);
}

#[test]
fn adam_matches_a_scalar_transcription() {
    let opt = Adam::with_betas(0.01, 0.9, 0.999, 1e-8).unwrap();
    let grads = [[0.3, -1.0], [0.1, 2.0], [-0.5, 0.0]];
    let mut theta = vec![0.5f64, 0.25];
    let mut state = Optimizer::<f64>::init_state(&opt, 2);
    let (mut m, mut v, mut expect) = ([0.0; 2], [0.0; 2], [0.5, 0.25]);
    for (t, g) in grads.iter().enumerate() {
        opt.step(&mut theta, g, &mut state).unwrap();
        let t = (t + 1) as i32;
        for i in 0..2 {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            expect[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
        }
    }
    assert!((theta[0] - expect[0]).abs() < 1e-15 && (theta[1] - expect[1]).abs() < 1e-15);
    assert_eq!(state.t, 3);
    // The first step moves each coordinate by about lr, whatever the gradient's scale.
    let mut th = vec![0.0f32; 2];
    let mut s = Optimizer::<f32>::init_state(&opt, 2);
    opt.step(&mut th, &[1e-3, 1e3], &mut s).unwrap();
    assert!((th[0] + 0.01).abs() < 1e-6 && (th[1] + 0.01).abs() < 1e-6);
}

#[test]
fn invalid_settings_and_bad_gradients_are_refused() {
    assert_eq!(
        Sgd::new(0.0).unwrap_err().to_string(),
        "invalid learning rate = 0: must be finite and > 0"
    );
    assert!(Sgd::new(f64::NAN).is_err());
    assert_eq!(
        Momentum::new(0.1, 1.0).unwrap_err().to_string(),
        "invalid momentum = 1: must be in [0, 1)"
    );
    assert!(Adam::with_betas(1e-3, 0.9, -0.1, 1e-8).is_err());
    assert!(ConjugateGradient::new(5, -1.0).is_err());
    let opt = Adam::new(1e-3).unwrap();
    let mut theta = vec![1.0f32, 2.0];
    let mut s = Optimizer::<f32>::init_state(&opt, 2);
    let before = (theta.clone(), s.clone());
    assert_eq!(
        opt.step(&mut theta, &[1.0, f32::NAN], &mut s).unwrap_err().to_string(),
        "the gradient is not finite"
    );
    assert_eq!((theta.clone(), s.clone()), before, "a refused step changes nothing");
    assert!(opt.step(&mut theta, &[1.0], &mut s).is_err());
}

/// A dense symmetric matrix as an operator, counting its products.
struct Dense {
    a: Vec<Vec<f64>>,
    products: usize,
}

impl LinearOperator<f64> for Dense {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> Result<(), theta_core::Error> {
        self.products += 1;
        for (o, row) in out.iter_mut().zip(&self.a) {
            *o = row.iter().zip(x).map(|(a, b)| a * b).sum();
        }
        Ok(())
    }
}

fn spd(n: usize) -> Dense {
    // A = MᵀM + I with a fixed, well-spread M.
    let m: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.4).collect())
        .collect();
    let a = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    (0..n).map(|k| m[k][i] * m[k][j]).sum::<f64>() + if i == j { 1.0 } else { 0.0 }
                })
                .collect()
        })
        .collect();
    Dense { a, products: 0 }
}

#[test]
fn cg_solves_spd_systems_in_n_steps() {
    let n = 12;
    let mut a = spd(n);
    let b: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
    let mut x = vec![0.0; n];
    let cg = ConjugateGradient::new(n, 0.0).unwrap();
    let report = cg.solve(&mut a, &b, &mut x, &mut CgWorkspace::new(n)).unwrap();
    let mut ax = vec![0.0; n];
    a.apply(&x, &mut ax).unwrap();
    let err: f64 = ax.iter().zip(&b).map(|(p, q)| (p - q).powi(2)).sum::<f64>().sqrt();
    assert!(err < 1e-10, "‖Ax − b‖ = {err}");
    assert!(report.relative_residual < 1e-10 && !report.negative_curvature);
    // From x = 0, the initial residual costs no product.
    assert_eq!(a.products, report.iterations + 1);
}

#[test]
fn cg_runs_its_budget_and_honours_a_tolerance() {
    let n = 12;
    let b: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
    let mut ws = CgWorkspace::new(n);
    let mut a = spd(n);
    let mut x = vec![0.0; n];
    let r3 = ConjugateGradient::new(3, 0.0).unwrap().solve(&mut a, &b, &mut x, &mut ws).unwrap();
    assert_eq!(r3.iterations, 3);
    assert!(r3.relative_residual > 1e-6);
    let mut x = vec![0.0; n];
    let rt = ConjugateGradient::new(100, 1e-6).unwrap().solve(&mut a, &b, &mut x, &mut ws).unwrap();
    assert!(rt.relative_residual <= 1e-6 && rt.iterations <= n);
    // An indefinite system is reported, not hidden.
    let mut ind = Dense { a: vec![vec![1.0, 0.0], vec![0.0, -2.0]], products: 0 };
    let mut x = vec![0.0; 2];
    let r = ConjugateGradient::new(2, 0.0)
        .unwrap()
        .solve(&mut ind, &[1.0, 1.0], &mut x, &mut CgWorkspace::new(2))
        .unwrap();
    assert!(r.negative_curvature);
    assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] + 0.5).abs() < 1e-12);
}
