//! Reproduces the sinusoid experiment of the MAML paper for every algorithm
//! and prints the README's results table.
//!
//!     cargo run --release -p theta-cli --example sinusoid_table
//!
//! The configuration is the paper's: a 1-40-40-1 ReLU network, K = 10
//! support and 10 query points per training task, inner step α = 0.01, Adam
//! 1e-3, 25 tasks per meta-batch, 20,000 meta-steps, one inner step in
//! training (five for the "MAML, 5 inner steps" row and for Reptile),
//! weights uniform in ±1/√fan_in and zero biases (`--init`). Each
//! algorithm is trained once and its θ evaluated on 600 test tasks of 100
//! query points (a fixed seed) with K = 10 and with K = 5 support points,
//! after 1 and 10 SGD steps of α = 0.01. iMAML is also evaluated with its own
//! proximal solve. Jobs run on two threads; every job has its own seeds, so
//! the numbers do not depend on that.

use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use theta_core::random::rng_from_seed;
use theta_core::{Loss, Model};
use theta_fomaml::{Fomaml, FomamlConfig};
use theta_imaml::{Imaml, ImamlConfig};
use theta_maml::{Maml, MamlConfig};
use theta_meta::{EvalPoint, Evaluation, MetaLearner, TrainState, Trainer};
use theta_models::{Init, Mlp, MlpSpec};
use theta_optim::{Adam, Optimizer};
use theta_pretrained::{Pretrained, PretrainedConfig};
use theta_reptile::{Reptile, ReptileConfig};
use theta_tasks::Sinusoid;

#[derive(Parser)]
struct Args {
    /// Meta-steps per training run.
    #[arg(long, default_value_t = 20_000)]
    steps: u64,
    /// Tasks per meta-batch.
    #[arg(long, default_value_t = 25)]
    meta_batch: usize,
    /// Test tasks.
    #[arg(long, default_value_t = 600)]
    eval_tasks: usize,
    /// Worker threads (jobs, not tasks, run in parallel).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Initialisation of θ: `uniform-zero-bias` (weights ±1/√fan_in, zero
    /// biases: the table's), `uniform` (biases ±1/√fan_in too) or
    /// `truncated-normal` (std 0.01, zero biases: cbfinn/maml's).
    #[arg(long, default_value = "uniform-zero-bias")]
    init: String,
    /// Seed of θ's initialisation; the task stream uses seed + 1000.
    #[arg(long, default_value_t = 1000)]
    seed: u64,
    /// iMAML's λ.
    #[arg(long, default_value_t = 2.0)]
    imaml_lambda: f64,
    /// iMAML's curvature in the outer solve: `gauss-newton` or `hessian`.
    #[arg(long, default_value = "gauss-newton")]
    imaml_curvature: String,
    /// Only these rows (comma-separated: maml, fomaml, reptile, pretrained, maml5, imaml).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Algo {
    Maml,
    Fomaml,
    Reptile,
    Pretrained,
    Maml5,
    Imaml,
}

impl Algo {
    const ALL: [Algo; 6] =
        [Algo::Maml, Algo::Fomaml, Algo::Reptile, Algo::Pretrained, Algo::Maml5, Algo::Imaml];
    fn key(self) -> &'static str {
        match self {
            Algo::Maml => "maml",
            Algo::Fomaml => "fomaml",
            Algo::Reptile => "reptile",
            Algo::Pretrained => "pretrained",
            Algo::Maml5 => "maml5",
            Algo::Imaml => "imaml",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Algo::Maml => "MAML",
            Algo::Fomaml => "FOMAML",
            Algo::Reptile => "Reptile (5 inner steps)",
            Algo::Pretrained => "pretrained",
            Algo::Maml5 => "MAML, 5 inner steps",
            Algo::Imaml => "iMAML (proximal Gauss-Newton)",
        }
    }
    fn learner(self, args: &Args) -> Box<dyn MetaLearner<f32>> {
        match self {
            Algo::Maml => Box::new(Maml::new(MamlConfig::default()).unwrap()),
            Algo::Fomaml => Box::new(Fomaml::new(FomamlConfig::default()).unwrap()),
            Algo::Reptile => Box::new(Reptile::new(ReptileConfig::default()).unwrap()),
            Algo::Pretrained => Box::new(Pretrained::new(PretrainedConfig::default()).unwrap()),
            Algo::Maml5 => {
                Box::new(Maml::new(MamlConfig { inner_lr: 0.01, inner_steps: 5 }).unwrap())
            }
            Algo::Imaml => {
                let curvature = match args.imaml_curvature.as_str() {
                    "gauss-newton" => theta_imaml::Curvature::GaussNewton,
                    "hessian" => theta_imaml::Curvature::Hessian,
                    other => panic!("unknown --imaml-curvature {other:?}"),
                };
                let config =
                    ImamlConfig { lambda: args.imaml_lambda, curvature, ..ImamlConfig::default() };
                Box::new(Imaml::new(config).unwrap())
            }
        }
    }
}

/// One algorithm's training time and its evaluation at K = 10 and K = 5.
struct Outcome {
    algo: Algo,
    seconds: f64,
    curves: [Vec<EvalPoint>; 2],
    own: [Option<EvalPoint>; 2],
}

const SHOTS: [usize; 2] = [10, 5];

fn job(algo: Algo, args: &Args) -> Outcome {
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).unwrap();
    let train_dist = Sinusoid::new(10, 10).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let init = match args.init.as_str() {
        "uniform" => Init::UniformFanIn,
        "uniform-zero-bias" => Init::UniformFanInZeroBias,
        "truncated-normal" => Init::TruncatedNormal { std: 0.01 },
        other => panic!("unknown --init {other:?}"),
    };
    let theta: Vec<f32> = mlp.init(init, &mut rng_from_seed(args.seed));
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, Model::<f32>::num_params(&mlp)),
        theta,
        rng: rng_from_seed(args.seed + 1000),
        step: 0,
    };
    let mut learner = algo.learner(args);
    let start = Instant::now();
    let mut trainer = Trainer::new(&mlp, &train_dist, args.meta_batch).unwrap();
    trainer
        .run(learner.as_mut(), &adam, &mut state, args.steps, &mut ())
        .unwrap_or_else(|e| panic!("{}: {e}", algo.label()));
    let seconds = start.elapsed().as_secs_f64();

    let eval = Evaluation::new(args.eval_tasks, 7, 0.01, 10).unwrap();
    let evaluate = |k: usize, learner: &mut dyn MetaLearner<f32>| {
        let test_dist = Sinusoid::new(k, 100).unwrap();
        let curve = eval.sgd_curve(&mlp, &state.theta, &test_dist).unwrap();
        let own = (algo == Algo::Imaml).then(|| {
            let mut adapt = |theta: &[f32], support: &theta_core::Split<f32>, phi: &mut [f32]| {
                learner.adapt(&mlp, theta, support, phi)
            };
            eval.with_adaptation(&mlp, &state.theta, &test_dist, &mut adapt).unwrap()
        });
        (curve, own)
    };
    let (c10, o10) = evaluate(SHOTS[0], learner.as_mut());
    let (c5, o5) = evaluate(SHOTS[1], learner.as_mut());
    eprintln!("  {}: trained in {seconds:.1} s", algo.label());
    Outcome { algo, seconds, curves: [c10, c5], own: [o10, o5] }
}

fn main() {
    let args = Args::parse();
    let jobs: Vec<Algo> = Algo::ALL
        .into_iter()
        .filter(|a| args.only.is_empty() || args.only.iter().any(|o| o == a.key()))
        .collect();
    eprintln!(
        "sinusoid: {} jobs of {} meta-steps (meta-batch {}) on {} threads, {} init, seed {}, f32",
        jobs.len(),
        args.steps,
        args.meta_batch,
        args.threads,
        args.init,
        args.seed
    );
    let queue = Mutex::new(jobs.into_iter().rev().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.threads.max(1) {
            s.spawn(|| {
                loop {
                    // Take the lock for the pop alone: in a `while let`
                    // scrutinee the guard would live through the job, and
                    // the jobs would run one at a time.
                    let next = queue.lock().unwrap().pop();
                    let Some(algo) = next else { break };
                    let outcome = job(algo, &args);
                    results.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let find = |a: Algo| results.iter().find(|o| o.algo == a);
    let cell = |p: &EvalPoint| {
        if p.diverged > 0 {
            format!("diverged ({} of {} tasks)", p.diverged, args.eval_tasks)
        } else if p.loss.mean < 0.1 {
            format!("{:.4}", p.loss)
        } else {
            format!("{:.3}", p.loss)
        }
    };
    println!(
        "| algorithm | K=10, 1 step | K=10, 10 steps | K=5, 1 step | K=5, 10 steps | training time |"
    );
    println!("|---|---|---|---|---|---|");
    for algo in Algo::ALL {
        let Some(o) = find(algo) else { continue };
        let [c10, c5] = &o.curves;
        println!(
            "| {} | {} | {} | {} | {} | {:.0} s |",
            algo.label(),
            cell(&c10[1]),
            cell(&c10[10]),
            cell(&c5[1]),
            cell(&c5[10]),
            o.seconds
        );
    }
    for o in &results {
        if let [Some(a), Some(b)] = &o.own {
            println!(
                "\n{} adapted by its own proximal solve: K=10 {}, K=5 {}",
                o.algo.label(),
                cell(a),
                cell(b)
            );
        }
    }
    eprintln!("total wall time {:.0} s", start.elapsed().as_secs_f64());
}
