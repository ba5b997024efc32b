//! Reproduces the sinusoid experiment of the MAML paper for every algorithm
//! and prints the README's results table.
//!
//!     cargo run --release -p theta-cli --example sinusoid_table
//!
//! The configuration is the paper's: a 1-40-40-1 ReLU network, K support
//! points, inner step α = 0.01, Adam 1e-3, 25 tasks per meta-batch, 20,000
//! meta-steps, one inner step in training (five for the "MAML, 5 inner
//! steps" row and for Reptile). Each algorithm is trained once with K = 10
//! and once with K = 5 and evaluated with the same K on 600 test tasks of
//! 100 query points (a fixed seed), after 1 and 10 SGD steps of α = 0.01.
//! iMAML is also evaluated with its own proximal solve. Jobs run on two
//! threads; every job has its own seeds, so the numbers do not depend on that.

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
    const ALL: [Algo; 6] = [Algo::Maml, Algo::Fomaml, Algo::Reptile, Algo::Pretrained, Algo::Maml5, Algo::Imaml];
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
    fn learner(self) -> Box<dyn MetaLearner<f32>> {
        match self {
            Algo::Maml => Box::new(Maml::new(MamlConfig::default()).unwrap()),
            Algo::Fomaml => Box::new(Fomaml::new(FomamlConfig::default()).unwrap()),
            Algo::Reptile => Box::new(Reptile::new(ReptileConfig::default()).unwrap()),
            Algo::Pretrained => Box::new(Pretrained::new(PretrainedConfig::default()).unwrap()),
            Algo::Maml5 => Box::new(Maml::new(MamlConfig { inner_lr: 0.01, inner_steps: 5 }).unwrap()),
            Algo::Imaml => Box::new(Imaml::new(ImamlConfig::default()).unwrap()),
        }
    }
}

struct Outcome {
    algo: Algo,
    k: usize,
    seconds: f64,
    curve: Vec<EvalPoint>,
    own: Option<EvalPoint>,
}

fn job(algo: Algo, k: usize, args: &Args) -> Outcome {
    let mlp = Mlp::new(MlpSpec::relu(&[1, 40, 40, 1], Loss::Mse)).unwrap();
    let train_dist = Sinusoid::new(k, k).unwrap();
    let adam = Adam::new(1e-3).unwrap();
    let theta: Vec<f32> = mlp.init(Init::UniformFanIn, &mut rng_from_seed(1000 + k as u64));
    let mut state = TrainState {
        optimizer: Optimizer::<f32>::init_state(&adam, Model::<f32>::num_params(&mlp)),
        theta,
        rng: rng_from_seed(2000 + k as u64),
        step: 0,
    };
    let mut learner = algo.learner();
    let start = Instant::now();
    let mut trainer = Trainer::new(&mlp, &train_dist, args.meta_batch).unwrap();
    trainer
        .run(learner.as_mut(), &adam, &mut state, args.steps, &mut ())
        .unwrap_or_else(|e| panic!("{} K={k}: {e}", algo.label()));
    let seconds = start.elapsed().as_secs_f64();

    let test_dist = Sinusoid::new(k, 100).unwrap();
    let eval = Evaluation::new(args.eval_tasks, 7, 0.01, 10).unwrap();
    let curve = eval.sgd_curve(&mlp, &state.theta, &test_dist).unwrap();
    let own = (algo == Algo::Imaml).then(|| {
        let mut adapt = |theta: &[f32], support: &theta_core::Split<f32>, phi: &mut [f32]| {
            learner.adapt(&mlp, theta, support, phi)
        };
        eval.with_adaptation(&mlp, &state.theta, &test_dist, &mut adapt).unwrap()
    });
    eprintln!("  {} K={k}: trained in {seconds:.1} s", algo.label());
    Outcome { algo, k, seconds, curve, own }
}

fn main() {
    let args = Args::parse();
    let jobs: Vec<(Algo, usize)> = Algo::ALL.iter().flat_map(|&a| [(a, 10), (a, 5)]).collect();
    eprintln!(
        "sinusoid: {} jobs of {} meta-steps (meta-batch {}) on {} threads, {}",
        jobs.len(),
        args.steps,
        args.meta_batch,
        args.threads,
        "f32"
    );
    let queue = Mutex::new(jobs.into_iter().rev().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.threads.max(1) {
            s.spawn(|| {
                while let Some((algo, k)) = queue.lock().unwrap().pop() {
                    let outcome = job(algo, k, &args);
                    results.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let find = |a: Algo, k: usize| results.iter().find(|o| o.algo == a && o.k == k).unwrap();
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
        "| algorithm | K=10, 1 step | K=10, 10 steps | K=5, 1 step | K=5, 10 steps | training time (K=10, K=5) |"
    );
    println!("|---|---|---|---|---|---|");
    for algo in Algo::ALL {
        let (a, b) = (find(algo, 10), find(algo, 5));
        println!(
            "| {} | {} | {} | {} | {} | {:.0} s, {:.0} s |",
            algo.label(),
            cell(&a.curve[1]),
            cell(&a.curve[10]),
            cell(&b.curve[1]),
            cell(&b.curve[10]),
            a.seconds,
            b.seconds
        );
    }
    for o in results.iter().filter(|o| o.own.is_some()) {
        println!("\niMAML adapted by its own proximal solve, K={}: {}", o.k, cell(o.own.as_ref().unwrap()));
    }
    eprintln!("total wall time {:.0} s", start.elapsed().as_secs_f64());
}

