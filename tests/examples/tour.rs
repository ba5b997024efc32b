//! A tour of theta: a sinusoid task, the MAML paper's network, proof that its
//! derivatives are exact, and MAML against the pretrained baseline.
//!
//!     cargo run --release --example tour
//!
//! It samples a task, evaluates the loss, gradient and Hessian-vector product
//! in f64 and compares them with finite differences and, when
//! `../shared/reference/` is present, with the independent JAX reference
//! cases. Then it meta-trains MAML and the pretrained baseline for 3,000
//! meta-steps each (a few seconds) and compares them on 200 test tasks.

use theta_core::random::{rng_from_seed, uniform};
use theta_core::{Loss, Model, Pass, Scratch, TaskDistribution};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{Evaluation, MetaLearner, TrainState, Trainer};
use theta_models::{Init, Mlp, MlpSpec};
use theta_optim::{Adam, Optimizer};
use theta_pretrained::{Pretrained, PretrainedConfig};
use theta_reference::{ReferenceCase, evaluate, relative_error};
use theta_tasks::Sinusoid;

fn main() {
    println!("theta: the foundation, on {}", theta_kernels::simd_level());

    let sinusoid = Sinusoid::new(10, 10).expect("valid sinusoid");
    let mut rng = rng_from_seed(2017);
    let mut task = TaskDistribution::<f64>::empty_task(&sinusoid);
    let p = sinusoid.sample_with_params(&mut rng, &mut task).expect("shapes fit");
    println!(
        "\na sinusoid task (MAML paper): y = {:.3}·sin(x − {:.3}), K = 10 support points",
        p.amplitude, p.phase
    );
    for i in 0..3 {
        let x = task.support.x().row(i)[0];
        println!("  x = {x:+.3}  y = {:+.3}", p.eval(x));
    }

    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).expect("valid network");
    let model: &dyn Model<f64> = &mlp;
    let theta: Vec<f64> = mlp.init(Init::UniformFanIn, &mut rng);
    let n = model.num_params();
    println!("\nthe network: 1-40-40-1 ReLU, P = {n} parameters θ");

    let mut scratch = Scratch::for_model(model, Pass::HessianVector, 10);
    let (mut g, mut hv) = (vec![0.0; n], vec![0.0; n]);
    let v: Vec<f64> = (0..n).map(|_| uniform(&mut rng, -1.0, 1.0)).collect();
    let s = scratch.get(model, Pass::HessianVector, 10);
    let loss = model.loss_grad_hvp(&theta, &task.support, &v, &mut g, &mut hv, s).expect("fits");
    println!("support loss L_s(θ) = {loss:.6}, ‖∇L_s‖ = {:.6}", theta_core::vector::norm(&g));

    // Finite differences in f64.
    let loss_at = |t: &[f64], scratch: &mut Scratch<f64>| {
        model.loss(t, &task.support, scratch.get(model, Pass::Loss, 10)).expect("fits")
    };
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for i in (0..n).step_by(97) {
        let (mut tp, mut tm) = (theta.clone(), theta.clone());
        tp[i] += h;
        tm[i] -= h;
        let fd = (loss_at(&tp, &mut scratch) - loss_at(&tm, &mut scratch)) / (2.0 * h);
        worst = worst.max((fd - g[i]).abs() / g[i].abs().max(1e-8));
    }
    println!("gradient vs central differences (19 coordinates): worst relative error {worst:.1e}");
    let h = 1e-5;
    let grad_at = |t: &[f64], scratch: &mut Scratch<f64>| {
        let mut g = vec![0.0; n];
        model
            .loss_grad(t, &task.support, &mut g, scratch.get(model, Pass::Gradient, 10))
            .expect("fits");
        g
    };
    let tp: Vec<f64> = theta.iter().zip(&v).map(|(t, v)| t + h * v).collect();
    let tm: Vec<f64> = theta.iter().zip(&v).map(|(t, v)| t - h * v).collect();
    let (gp, gm) = (grad_at(&tp, &mut scratch), grad_at(&tm, &mut scratch));
    let fd: Vec<f64> = gp.iter().zip(&gm).map(|(a, b)| (a - b) / (2.0 * h)).collect();
    let err = fd.iter().zip(&hv).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()
        / theta_core::vector::norm(&fd);
    println!("Hessian-vector product H v vs differences of gradients: relative error {err:.1e}");

    reference_cases();
    meta_train();
}

/// Trains MAML and the pretrained baseline briefly and compares them.
fn meta_train() {
    let steps = 3000;
    println!(
        "\nmeta-training on sinusoids, K = 10, 25 tasks per meta-batch, {steps} meta-steps each (f32):"
    );
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).expect("valid network");
    let adam = Adam::new(1e-3).expect("valid learning rate");
    let train = Sinusoid::new(10, 10).expect("valid sinusoid");
    let test = Sinusoid::new(10, 100).expect("valid sinusoid");
    let eval = Evaluation::new(200, 7, 0.01, 10).expect("valid protocol");
    let learners: [(&str, Box<dyn MetaLearner<f32>>); 2] = [
        ("MAML", Box::new(Maml::new(MamlConfig::default()).expect("valid"))),
        ("pretrained", Box::new(Pretrained::new(PretrainedConfig::default()).expect("valid"))),
    ];
    println!(
        "  {:<11} {:>16} {:>16} {:>16}   (query MSE on 200 test tasks, mean ± 95% CI)",
        "", "before adapting", "after 1 step", "after 10 steps"
    );
    for (name, mut learner) in learners {
        let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(1));
        let mut state = TrainState {
            optimizer: Optimizer::<f32>::init_state(&adam, theta.len()),
            theta,
            rng: rng_from_seed(2),
            step: 0,
        };
        let start = std::time::Instant::now();
        Trainer::new(&mlp, &train, 25)
            .and_then(|mut t| t.run(learner.as_mut(), &adam, &mut state, steps, &mut ()))
            .expect("training runs");
        let seconds = start.elapsed().as_secs_f64();
        let curve = eval.sgd_curve(&mlp, &state.theta, &test).expect("evaluation runs");
        let cell = |i: usize| format!("{:.3}", curve[i].loss);
        println!(
            "  {name:<11} {:>16} {:>16} {:>16}   trained in {seconds:.1} s",
            cell(0),
            cell(1),
            cell(10)
        );
    }
    println!("MAML's θ is a starting point: one gradient step on 10 points fits a new sinusoid.");
}

fn reference_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("\n(no {} here: skipping the JAX reference cases)", dir.display());
        return;
    };
    println!("\nagainst the independent JAX float64 reference cases:");
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let text = std::fs::read_to_string(path).expect("readable case file");
        let case = match ReferenceCase::from_json(&text) {
            Ok(case) => case,
            Err(e) => {
                println!("  {}: {e}", path.display());
                continue;
            }
        };
        for check in &case.checks {
            if let Ok(got) = evaluate::<f64>(&case, &check.quantity) {
                let e = relative_error(&got.value, &check.expected);
                println!(
                    "  {:<16} {:<13} relative error {e:.1e}",
                    case.name,
                    check.quantity.name()
                );
            }
        }
    }
}
