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
//! most of the drift. What pairing cannot remove is a second virtual core
//! that is not a whole core at the moment: so each round also times the
//! FMA peak loop on one thread and on two (the same work on each), the
//! machine's own two-core speedup then. Near 1×, the two virtual cores
//! shared one core at the time, and a learner's speedup measured then says
//! little about the code (seen on a 2-vCPU KVM guest, AMD Zen 3: in one
//! run the loop's median was 1.00× in first-order MAML's rounds, whose
//! paired speedup was 1.43×, and 1.80–1.88× in the other rows', 1.57–1.99×).
//!
//! Prints, per learner, `name best_1 best_2 median_ratio machine_ratio`:
//! the best rate (meta-steps/s) of the ROUNDS (default 9) on each thread
//! count, the median of the per-round ratios, and the median of the
//! rounds' FMA-loop ratios. The pretrained baseline pools its batch into
//! one pass on one thread and is left out.

use std::time::Instant;

use theta_benches::peak::fma_chains;
use theta_benches::workload::{self, META_BATCH, learners};
use theta_meta::Trainer;

fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    let n = x.len();
    if n % 2 == 1 { x[n / 2] } else { 0.5 * (x[n / 2 - 1] + x[n / 2]) }
}

/// Iterations of the FMA loop per thread in a round's machine check (about
/// 10 ms).
const FMA_ITERATIONS: usize = 4_000_000;

/// The FMA loop's two-thread speedup at this moment: one thread's time for
/// [`FMA_ITERATIONS`] over two threads' time for as many each, times two.
fn machine_speedup() -> f64 {
    // Opaque inputs: with constants the optimiser may fold the loop.
    let fma =
        || std::hint::black_box(fma_chains(std::hint::black_box(FMA_ITERATIONS), 0.999, 1e-3));
    let start = Instant::now();
    fma();
    let one = start.elapsed().as_secs_f64();
    // This thread runs one loop and a spawned one the other, as
    // `Trainer::run` shares a step: two threads spawned together right
    // after a busy run were at times both put on one core for the whole
    // loop (the machine check then read 1.0× in every round).
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(fma);
        fma();
    });
    2.0 * one / start.elapsed().as_secs_f64()
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
        let (mut one, mut two, mut ratio, mut machine) = (vec![], vec![], vec![], vec![]);
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
            machine.push(machine_speedup());
        }
        let best = |x: &[f64]| x.iter().copied().fold(0.0, f64::max);
        let (r, m) = (median(ratio), median(machine));
        println!("{name} {:.1} {:.1} {r:.4} {m:.4}", best(&one), best(&two));
    }
}
