//! In-process throughput of every algorithm on issue 5's sinusoid workload
//! (the setup of the criterion bench), for profiling without criterion's
//! overhead:
//!
//!     cargo run --release -p theta-benches --example throughput -- [NAME] [STEPS] [THREADS]
//!
//! Prints `name meta-steps/s` (the best of five runs of STEPS meta-steps,
//! default 2,000) for each learner whose name contains NAME. With THREADS
//! (default 1) the runs go through `Trainer::run` and its persistent workers
//! on that many threads.

use std::time::Instant;

use theta_benches::workload::{self, META_BATCH, learners};
use theta_meta::Trainer;

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let steps: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let threads: Option<usize> = std::env::args().nth(3).and_then(|a| a.parse().ok());
    let (mlp, dist, adam) = workload::setup();
    for (name, mut learner) in learners() {
        if !name.contains(&filter) {
            continue;
        }
        let state = workload::initial_state(&mlp, &adam);
        let trainer = Trainer::new(&mlp, &dist, META_BATCH).expect("a valid meta-batch");
        let mut trainer = trainer.with_threads(threads.unwrap_or(1)).expect("at least one thread");
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            // Every run starts from the same state, as in the criterion bench.
            let mut s = state.clone();
            let t = Instant::now();
            if threads.is_some() {
                let run = trainer.run(learner.as_mut(), &adam, &mut s, steps as u64, &mut ());
                run.expect("the workload runs");
            } else {
                for _ in 0..steps {
                    trainer.step(learner.as_mut(), &adam, &mut s).expect("the workload steps");
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name} {:.0}", steps as f64 / best);
    }
}
