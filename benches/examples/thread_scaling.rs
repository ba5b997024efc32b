//! Thread scaling of every meta-learning algorithm on issue 5's sinusoid
//! workload (its deliverable 2: two threads at least 1.7× one), for `cargo
//! xtask bench`:
//!
//!     cargo run --release -p theta-benches --example thread_scaling -- [ROUNDS] [SECONDS]
//!
//! Each round runs `Trainer::run` (its persistent workers, a fixed-order
//! reduction) on one thread and on two, from the same state, in alternating
//! order (1 then 2, then 2 then 1), each run about SECONDS long (default
//! 0.25; the step count is set from a warm-up run). A shared machine moves
//! a rate by ±30% from one minute to the next, and criterion, which
//! measures one benchmark after the other, turned that into speedups of
//! 1.4–2.0× for the same code; runs a fraction of a second apart share
//! most of the drift. Prints, per learner, `name best_1 best_2 median_ratio`:
//! the best rate (meta-steps/s) of the ROUNDS (default 9) on each thread
//! count, and the median of the per-round ratios. The pretrained baseline
//! pools its batch into one pass on one thread and is left out.

use std::time::Instant;

use theta_benches::workload::{self, META_BATCH, learners};
use theta_meta::Trainer;

fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    let n = x.len();
    if n % 2 == 1 { x[n / 2] } else { 0.5 * (x[n / 2 - 1] + x[n / 2]) }
}

fn main() {
    let rounds: usize =
        std::env::args().nth(1).and_then(|a| a.parse().ok()).filter(|&r| r > 0).unwrap_or(9);
    let seconds: f64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .filter(|&s: &f64| s > 0.0)
        .unwrap_or(0.25);
    let (mlp, dist, adam) = workload::setup();
    for (name, mut learner) in learners() {
        if learner.pools_batch() {
            continue;
        }
        let state = workload::initial_state(&mlp, &adam);
        let mut trainers = [1, 2].map(|threads| {
            let trainer = Trainer::new(&mlp, &dist, META_BATCH).expect("a valid meta-batch");
            trainer.with_threads(threads).expect("at least one thread")
        });
        let mut rate = |t: usize, steps: u64| {
            // Every run starts from the same state, as in the criterion bench.
            let mut s = state.clone();
            let start = Instant::now();
            let run = trainers[t].run(learner.as_mut(), &adam, &mut s, steps, &mut ());
            run.expect("the workload runs");
            steps as f64 / start.elapsed().as_secs_f64()
        };
        // Warm up both (caches, the clock) and size the runs.
        let warm = rate(0, 20).max(rate(0, 20));
        rate(1, 20);
        let steps = ((warm * seconds) as u64).clamp(20, 20_000);
        let (mut one, mut two, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = rate(0, steps);
                (a, rate(1, steps))
            } else {
                let b = rate(1, steps);
                (rate(0, steps), b)
            };
            one.push(a);
            two.push(b);
            ratio.push(b / a);
        }
        let best = |x: &[f64]| x.iter().copied().fold(0.0, f64::max);
        println!("{name} {:.1} {:.1} {:.4}", best(&one), best(&two), median(ratio));
    }
}
