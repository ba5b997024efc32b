//! `theta eval`: the evaluation protocol on a run's checkpoint.

use std::path::PathBuf;

use theta_meta::{EvalPoint, Evaluation, Stat};

use crate::checkpoint;
use crate::figures::classification::FewShotTask;
use crate::run;

/// Arguments of `theta eval`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The run folder (holding checkpoint.theta).
    #[arg(value_name = "DIR")]
    run: PathBuf,
    /// Test tasks.
    #[arg(long, default_value_t = 600)]
    tasks: usize,
    /// Seed of the test tasks (the same seed gives the same tasks for every run).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Adaptation step size α [the run's inner step size]
    #[arg(long)]
    alpha: Option<f64>,
    /// Adaptation steps: the table shows 0 to this many.
    #[arg(long, default_value_t = 10)]
    max_steps: usize,
    /// K, support points per test task [the run's]
    #[arg(long)]
    support: Option<usize>,
    /// Query points per test task (per class for classification) [100; 15 for omniglot]
    #[arg(long)]
    query: Option<usize>,
    /// Also draw one test task of image classification runs (Omniglot): its
    /// support drawings and its query drawings marked right or wrong after the
    /// algorithm's own adaptation, as DIR/<run folder>-task.svg and .png.
    #[arg(long, value_name = "DIR")]
    figure: Option<PathBuf>,
    /// Also write the results as JSON to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn stat_json(s: &Stat) -> serde_json::Value {
    // Infinite means (diverged tasks) become null, which JSON can hold.
    let num = |x: f64| if x.is_finite() { serde_json::json!(x) } else { serde_json::Value::Null };
    serde_json::json!({ "mean": num(s.mean), "ci95": num(s.ci95) })
}

fn point_json(p: &EvalPoint) -> serde_json::Value {
    serde_json::json!({
        "steps": p.steps,
        "loss": stat_json(&p.loss),
        "accuracy": p.accuracy.as_ref().map(stat_json),
        "diverged": p.diverged,
    })
}

/// Runs `theta eval`.
pub(crate) fn run(args: Args) -> Result<(), String> {
    let ckpt = checkpoint::load(&args.run)?;
    let config = &ckpt.config;
    let support = args.support.unwrap_or(config.support);
    let mut built = run::build(config)?;
    let query = args.query.unwrap_or(if config.task == "omniglot" { 15 } else { 100 });
    let alpha = args.alpha.unwrap_or(config.inner_lr);
    let test = run::task_family(config, support, query, run::Purpose::Test)?;
    let eval =
        Evaluation::new(args.tasks, args.seed, alpha, args.max_steps).map_err(|e| e.to_string())?;
    let theta = &ckpt.state.theta;
    let curve =
        eval.sgd_curve(built.model.as_model(), theta, test.as_ref()).map_err(|e| e.to_string())?;
    let own = if config.algorithm == "imaml" {
        let model = built.model.as_model();
        let learner = &mut built.learner;
        let mut adapt = |t: &[f32], s: &theta_core::Split<f32>, phi: &mut [f32]| {
            learner.adapt(model, t, s, phi)
        };
        Some(
            eval.with_adaptation(model, theta, test.as_ref(), &mut adapt)
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    println!(
        "{} on {} after {} meta-steps: {} test tasks (seed {}), K = {support}, {} query points, SGD α = {}",
        config.algorithm, config.task, ckpt.state.step, args.tasks, args.seed, query, alpha
    );
    let classification = curve[0].accuracy.is_some();
    println!(
        "{:>6}  {:>20}{}",
        "steps",
        "query loss",
        if classification { format!("  {:>20}", "accuracy") } else { String::new() }
    );
    let row = |label: String, p: &EvalPoint| {
        let loss = if p.diverged > 0 {
            format!("diverged on {} tasks", p.diverged)
        } else {
            format!("{:.4}", p.loss)
        };
        let acc = p.accuracy.map_or(String::new(), |a| format!("  {:>20}", format!("{:.4}", a)));
        println!("{label:>6}  {loss:>20}{acc}");
    };
    for p in &curve {
        row(p.steps.to_string(), p);
    }
    if let Some(p) = &own {
        row("own".into(), p);
        println!("(own: the algorithm's own adaptation, iMAML's proximal solve)");
    }
    if let Some(dir) = &args.figure {
        if config.task != "omniglot" {
            return Err("--figure draws image classification tasks; this run is not one".into());
        }
        let task =
            test.sample(&mut theta_core::rng_from_seed(args.seed)).map_err(|e| e.to_string())?;
        let model = built.model.as_model();
        let learner = &mut built.learner;
        let mut adapt = |t: &[f32], s: &theta_core::Split<f32>, phi: &mut [f32]| {
            learner.adapt(model, t, s, phi)
        };
        let what = format!("{} after {} meta-steps", config.algorithm, ckpt.state.step);
        let fig =
            FewShotTask::compute(model, theta, &task, theta_omniglot::SIDE, &what, &mut adapt)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // Named after the run folder, so that several runs draw side by side.
        let name = args.run.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let [svg, png] = crate::figures::plot::save(&fig, dir, &format!("{name}-task"))?;
        eprintln!("wrote {} and {}", svg.display(), png.display());
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "algorithm": config.algorithm,
            "task": config.task,
            "meta_steps": ckpt.state.step,
            "tasks": args.tasks,
            "seed": args.seed,
            "support": support,
            "query": query,
            "alpha": alpha,
            "curve": curve.iter().map(point_json).collect::<Vec<_>>(),
            "own": own.as_ref().map(point_json),
        })
        .to_string()
            + "\n";
        if path.as_os_str() == "-" {
            print!("{json}");
        } else {
            checkpoint::write_atomic(path, json.as_bytes())?;
        }
    }
    Ok(())
}
