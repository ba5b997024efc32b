//! Peak resident memory of MAML training with m inner steps, for `cargo
//! xtask bench` (one process per m, so each peak is its own):
//! `cargo run --release -p theta-benches --example maml_memory -- M`.
//!
//! The workload is issue 5's kernel one: the MAML paper's Omniglot network
//! (784-256-128-64-64-5, P = 246,597), 32 tasks of 5 + 75 rows (5-way 1-shot
//! shapes, Gaussian-blob data so that no download is needed), one thread, 20
//! meta-steps. MAML keeps the inner trajectory φ₁…φ_{m−1} (φ₀ is θ) for its
//! reverse pass: from m = 2 on, memory should grow by (m − 1)·P numbers and
//! nothing per step beyond that. (With m = 1 MAML runs the network's fused
//! one-step pass, which needs neither the trajectory nor the reverse pass's
//! buffers.)
//! Prints `m P peak_rss_kib`.

use theta_core::random::rng_from_seed;
use theta_core::{Loss, Model};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{TrainState, Trainer};
use theta_models::{Init, Mlp, MlpSpec};
use theta_optim::{Adam, Optimizer};
use theta_tasks::GaussianBlobs;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let m: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mlp = Mlp::new(MlpSpec::relu(&[784, 256, 128, 64, 64, 5], Loss::SoftmaxCrossEntropy))
        .expect("a valid network");
    let dist = GaussianBlobs::new(5, 1, 15, 784, 1.0).expect("valid tasks");
    let adam = Adam::new(1e-3).expect("a valid rate");
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(0));
    let p = theta.len();
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, Model::<f32>::num_params(&mlp)),
        theta,
        rng: rng_from_seed(1),
        step: 0,
    };
    let mut maml = Maml::new(MamlConfig { inner_lr: 0.01, inner_steps: m }).expect("valid");
    Trainer::new(&mlp, &dist, 32)
        .and_then(|mut t| t.run(&mut maml, &adam, &mut state, 20, &mut ()))
        .expect("training runs");
    match peak_rss_kib() {
        Some(kib) => println!("{m} {p} {kib}"),
        None => println!("{m} {p} unknown"),
    }
}
