//! `theta figures` and `theta demo`: the article's figures from real runs.
//!
//! | file | figure |
//! |---|---|
//! | `a-sinusoid-adaptation` | a new sinusoid, K samples, pretrained and MAML predictions before and after 1 and 10 steps |
//! | `b-accumulated-meta-loss` | Σᵢ L_τi(U^m(θ)) over θ = (a, b) for m = 0, 1, 2, 5, minimum marked |
//! | `c-task-arrows` | each task's landscape with θ and φᵢ = U(θ) as arrows |
//! | `d-reptile` | θ, the k-step path to U(θ), and θ + β(φ − θ) |
//! | `e-imaml-proximal` | the proximal solutions φ*(θ) for several λ |
//! | `f-comparison` | all five algorithms: meta-training curves, query MSE against adaptation steps with 95% bands |

pub(crate) mod classification;
pub(crate) mod landscapes;
pub(crate) mod plot;
pub(crate) mod sinusoid;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use theta_meta::Evaluation;

use landscapes::{AccumulatedLoss, CurveTasks, ProximalSolutions, ReptileStep, TaskArrows};
use sinusoid::{Adaptation, Comparison, Trained};

/// Arguments of `theta figures`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Where to write the figures (SVG and PNG of each).
    #[arg(long, value_name = "DIR", default_value = "figures")]
    out: PathBuf,
    /// Meta-steps of each sinusoid training run (figures a and f).
    #[arg(long, default_value_t = 20_000)]
    steps: u64,
    /// Test tasks of the comparison (figure f).
    #[arg(long, default_value_t = 600)]
    eval_tasks: usize,
}

fn wrote(paths: [PathBuf; 2]) {
    eprintln!("  wrote {} and {}", paths[0].display(), paths[1].display());
}

/// Trains the named learners on two threads (each run has its own seed, so
/// the results do not depend on the scheduling).
fn train_all(names: &[&str], steps: u64) -> Result<Vec<Trained>, String> {
    let queue: Vec<_> =
        sinusoid::learners().into_iter().filter(|(n, _)| names.contains(n)).collect();
    let queue = Mutex::new(queue);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some((name, learner)) = queue.lock().expect("not poisoned").pop() else {
                        break;
                    };
                    let start = Instant::now();
                    let result = sinusoid::train(name, learner, steps, 1);
                    if result.is_ok() {
                        eprintln!(
                            "  trained {name} for {steps} meta-steps in {:.1} s",
                            start.elapsed().as_secs_f64()
                        );
                    }
                    done.lock().expect("not poisoned").push(result);
                }
            });
        }
    });
    let mut trained =
        done.into_inner().expect("not poisoned").into_iter().collect::<Result<Vec<_>, _>>()?;
    trained.sort_by_key(|t| names.iter().position(|n| *n == t.name));
    Ok(trained)
}

fn find<'a>(trained: &'a [Trained], name: &str) -> &'a [f32] {
    &trained.iter().find(|t| t.name == name).expect("trained").theta
}

/// Runs `theta figures`.
pub(crate) fn run(args: Args) -> Result<(), String> {
    let dir = &args.out;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    eprintln!("the article's curve-fitting landscapes:");
    let mut curves = CurveTasks::new()?;
    let accumulated = AccumulatedLoss::compute(&mut curves);
    wrote(plot::save(&accumulated, dir, "b-accumulated-meta-loss")?);
    println!("figure data (rounded):");
    for (m, (a, b)) in accumulated.minima() {
        println!(
            "  b: minimum of the accumulated meta-loss for m = {m}: (a, b) = ({a:.3}, {b:.3})"
        );
    }
    let maml_theta = accumulated.minima()[1].1;
    wrote(plot::save(&TaskArrows::compute(&mut curves, maml_theta), dir, "c-task-arrows")?);
    let start = (1.2, -0.4);
    wrote(plot::save(&ReptileStep::compute(&mut curves, start, 5, 0.5), dir, "d-reptile")?);
    wrote(plot::save(
        &ProximalSolutions::compute(&mut curves, start, &[0.1, 0.5, 2.0, 10.0]),
        dir,
        "e-imaml-proximal",
    )?);

    eprintln!("sinusoids: training the five algorithms ({} meta-steps each)", args.steps);
    let mut trained = train_all(&["pretrained", "MAML", "FOMAML", "Reptile", "iMAML"], args.steps)?;
    let adaptation = Adaptation::compute(
        &[("pretrained", find(&trained, "pretrained")), ("MAML", find(&trained, "MAML"))],
        11,
    )?;
    wrote(plot::save(&adaptation, dir, "a-sinusoid-adaptation")?);
    let comparison = Comparison::compute(&mut trained, args.eval_tasks)?;
    wrote(plot::save(&comparison, dir, "f-comparison")?);
    for (name, after) in comparison.summary() {
        println!(
            "  f: {name:<10} query MSE after 0, 1, 10 steps: {}",
            after.map(|x| format!("{x:.3}")).join(", ")
        );
    }
    Ok(())
}

/// Runs `theta demo`: MAML against the pretrained baseline on sinusoids,
/// a table, and the adaptation figure in `dir`.
pub(crate) fn demo(dir: &Path) -> Result<(), String> {
    let steps = 20_000;
    println!("theta demo: MAML and the pretrained baseline on the MAML paper's sinusoids");
    println!(
        "(1-40-40-1 ReLU, K = 10, α = 0.01, Adam 1e-3, 25 tasks per meta-step, {steps} meta-steps)\n"
    );
    let trained = train_all(&["pretrained", "MAML"], steps)?;
    let mlp = sinusoid::network();
    let test = theta_tasks::Sinusoid::new(10, 100).expect("valid");
    let eval = Evaluation::new(600, 7, 0.01, 10).map_err(|e| e.to_string())?;
    println!("\nquery MSE on 600 new tasks after adapting with K = 10 points (mean ± 95% CI):");
    println!("  {:<11} {:>16} {:>16} {:>16}", "", "0 steps", "1 step", "10 steps");
    for t in &trained {
        let c = eval.sgd_curve(&mlp, &t.theta, &test).map_err(|e| e.to_string())?;
        let cell = |i: usize| format!("{:.3}", c[i].loss);
        println!("  {:<11} {:>16} {:>16} {:>16}", t.name, cell(0), cell(1), cell(10));
    }
    let adaptation = Adaptation::compute(
        &[("pretrained", find(&trained, "pretrained")), ("MAML", find(&trained, "MAML"))],
        11,
    )?;
    let [svg, png] = plot::save(&adaptation, dir, "theta-demo-adaptation")?;
    println!(
        "\nMAML's θ is an initialisation: one gradient step on 10 points fits a new sinusoid,"
    );
    println!(
        "where the pretrained model barely moves. See it: {} (and {})",
        svg.display(),
        png.display()
    );
    Ok(())
}
