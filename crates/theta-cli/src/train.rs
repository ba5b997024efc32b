//! `theta train`: meta-train with progress, metrics and crash-safe checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::ops::ControlFlow;

use theta_meta::{StepReport, Trainer};

use crate::checkpoint::{self, Checkpoint};
use crate::config::TrainConfig;
use crate::run;

macro_rules! overrides {
    ($($field:ident : $ty:ty => $doc:literal),* $(,)?) => {
        /// Flags that override the configuration file, one per key.
        #[derive(clap::Args, Debug, Default)]
        #[command(next_help_heading = "Configuration (flags override --config; defaults in brackets)")]
        pub(crate) struct Overrides {
            $( #[doc = $doc] #[arg(long)] $field: Option<$ty>, )*
            /// Hidden widths, comma-separated [40,40]
            #[arg(long, value_delimiter = ',')]
            hidden: Option<Vec<usize>>,
            /// Batch-normalise the hidden layers (the MAML paper's Omniglot network) [off]
            #[arg(long)]
            batch_norm: bool,
        }

        impl Overrides {
            fn apply(self, c: &mut TrainConfig) {
                $( if let Some(v) = self.$field { c.$field = v; } )*
                if let Some(v) = self.hidden { c.hidden = v; }
                if self.batch_norm { c.batch_norm = true; }
            }

            fn any(&self) -> bool {
                self.hidden.is_some() || self.batch_norm $( || self.$field.is_some() )*
            }
        }
    };
}

overrides! {
    algorithm: String => "maml | fomaml | reptile | imaml | pretrained [maml]",
    task: String => "sinusoid | curve | linear | blobs | omniglot [sinusoid]",
    data: String => "Folder of Omniglot's images_background.zip and images_evaluation.zip [data/omniglot]",
    cache: String => "Folder of the decoded-Omniglot cache [$XDG_CACHE_HOME/theta or ~/.cache/theta]",
    steps: u64 => "Meta-steps [20000]",
    meta_batch: usize => "Tasks per meta-batch [25]",
    seed: u64 => "Seed of θ₀ and of the task stream [0]",
    outer_optimizer: String => "adam | sgd [adam]",
    outer_lr: f64 => "Outer learning rate β [0.001]",
    activation: String => "Hidden activation: identity | relu | tanh | sigmoid [relu]",
    init: String => "uniform (±1/√fan_in) | uniform-zero-bias (the same weights, zero biases) | truncated-normal (std 0.01, zero biases) [uniform]",
    support: usize => "K, support points per task (per class for classification) [10]",
    query: usize => "Query points per task (per class for classification) [10]",
    dim: usize => "Input width of linear and blob tasks [16]",
    n_way: usize => "N, classes of classification tasks (blobs, omniglot) [5]",
    inner_lr: f64 => "α, inner step size (and fine-tuning step) [0.01]",
    inner_steps: usize => "Inner steps m (k for Reptile); 0 = 1, or 5 for Reptile [0]",
    reptile_inner: String => "Reptile's inner optimizer: sgd | adam [sgd]",
    lambda: f64 => "iMAML's λ [2]",
    curvature: String => "iMAML's curvature: gauss-newton | hessian [gauss-newton]",
    imaml_inner: String => "iMAML's inner solver: proximal-gauss-newton | gradient [proximal-gauss-newton]",
    imaml_inner_steps: usize => "iMAML's inner solver steps [3]",
    imaml_inner_cg: usize => "CG iterations per proximal Gauss-Newton step [5]",
    cg_iterations: usize => "CG iterations on iMAML's outer system [5]",
}

/// How metrics are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricsFormat {
    /// One JSON object per line: metrics.jsonl
    Jsonl,
    /// Comma-separated values with a header: metrics.csv
    Csv,
}

/// Arguments of `theta train`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A TOML file with any of the configuration keys below (unknown keys are an error).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The run's folder: config.toml, checkpoint.theta, metrics. Must not hold another run.
    #[arg(long, value_name = "DIR", default_value = "theta-run")]
    out: PathBuf,
    /// Continue the run in DIR from its checkpoint; the result is bit-identical
    /// to an uninterrupted run. Takes no configuration flags but --steps,
    /// which extends the run to that many meta-steps in all.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "out"])]
    resume: Option<PathBuf>,
    /// Write a checkpoint every N meta-steps (and at the end).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    checkpoint_every: u64,
    /// Write metrics every N meta-steps.
    #[arg(long, value_name = "N", default_value_t = 100)]
    log_every: u64,
    /// Metrics file format.
    #[arg(long, value_enum, default_value_t = MetricsFormat::Jsonl)]
    metrics: MetricsFormat,
    /// Threads over the tasks of each meta-batch; the results are
    /// bit-identical for every count.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    overrides: Overrides,
}

fn metrics_path(dir: &Path, format: MetricsFormat) -> PathBuf {
    dir.join(match format {
        MetricsFormat::Jsonl => "metrics.jsonl",
        MetricsFormat::Csv => "metrics.csv",
    })
}

/// Keeps the metrics lines up to `step` (a resumed run rewrites what came after
/// its checkpoint), and opens the file for appending.
fn open_metrics(path: &Path, format: MetricsFormat, step: u64) -> Result<std::fs::File, String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut kept = String::new();
    for line in old.lines() {
        let line_step = match format {
            MetricsFormat::Jsonl => line
                .strip_prefix("{\"step\":")
                .and_then(|r| r.split(',').next())
                .and_then(|s| s.parse::<u64>().ok()),
            MetricsFormat::Csv => line.split(',').next().and_then(|s| s.parse::<u64>().ok()),
        };
        if line_step.is_none_or(|s| s <= step) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if format == MetricsFormat::Csv && kept.is_empty() {
        kept.push_str("step,meta_loss,elapsed_s,cg_iterations,cg_max_relative_residual\n");
    }
    checkpoint::write_atomic(path, kept.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(path).map_err(fail)
}

/// How a run reports and saves itself.
struct Options {
    threads: usize,
    checkpoint_every: u64,
    log_every: u64,
    metrics: MetricsFormat,
    quiet: bool,
}

/// Runs `theta train`.
pub(crate) fn run(args: Args) -> Result<(), String> {
    let Args {
        config,
        out,
        resume,
        checkpoint_every,
        log_every,
        metrics,
        threads,
        quiet,
        overrides,
    } = args;
    if checkpoint_every == 0 || log_every == 0 || threads == 0 {
        return Err("--checkpoint-every, --log-every and --threads must be at least 1".into());
    }
    let options = Options { threads, checkpoint_every, log_every, metrics, quiet };
    if let Some(dir) = resume {
        let mut overrides = overrides;
        // --steps may extend a finished run: nothing in a run depends on its length.
        let extend = overrides.steps.take();
        if overrides.any() {
            return Err("--resume continues a run with its saved configuration; drop the configuration flags (only --steps may extend it)".into());
        }
        let mut ckpt = checkpoint::load(&dir)?;
        if let Some(steps) = extend {
            if steps < ckpt.state.step {
                return Err(format!(
                    "--steps {steps}: the run in {} is already at step {}",
                    dir.display(),
                    ckpt.state.step
                ));
            }
            ckpt.config.steps = steps;
            checkpoint::write_atomic(&dir.join("config.toml"), ckpt.config.to_toml().as_bytes())?;
        }
        let run = run::build(&ckpt.config)?;
        return train(&dir, &ckpt.config, run, ckpt.state, &options);
    }
    let mut config = match &config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    overrides.apply(&mut config);
    let run = run::build(&config)?;
    if out.join(checkpoint::FILE).exists() || out.join("config.toml").exists() {
        return Err(format!(
            "{} holds another run; continue it with --resume {0}, or choose another --out",
            out.display()
        ));
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    checkpoint::write_atomic(&out.join("config.toml"), config.to_toml().as_bytes())?;
    let state = run.initial_state(&config);
    train(&out, &config, run, state, &options)
}

/// After each meta-step: the progress bar, a metrics line every
/// `log_every` steps, a checkpoint every `checkpoint_every` steps and at the end.
fn observe_step(
    r: &StepReport<'_, f32, run::OuterState>,
    dir: &Path,
    config: &TrainConfig,
    options: &Options,
    mpath: &Path,
    log: &mut std::fs::File,
    bar: &ProgressBar,
    start: Instant,
) -> Result<(), String> {
    let (step, stats) = (r.state.step, &r.stats);
    bar.set_position(step);
    if step.is_multiple_of(10) {
        bar.set_message(format!("meta-loss {:.4}", stats.meta_loss));
    }
    if step.is_multiple_of(options.log_every) || step == config.steps {
        let elapsed = start.elapsed().as_secs_f64();
        let (cg_it, cg_res) =
            stats.cg.map_or((0, 0.0), |c| (c.iterations, c.max_relative_residual));
        let line = match options.metrics {
            MetricsFormat::Jsonl => format!(
                "{{\"step\":{step},\"meta_loss\":{},\"elapsed_s\":{elapsed:.3},\"cg_iterations\":{cg_it},\"cg_max_relative_residual\":{cg_res:e}}}\n",
                stats.meta_loss
            ),
            MetricsFormat::Csv => {
                format!("{step},{},{elapsed:.3},{cg_it},{cg_res:e}\n", stats.meta_loss)
            }
        };
        log.write_all(line.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", mpath.display()))?;
    }
    if step.is_multiple_of(options.checkpoint_every) || step == config.steps {
        checkpoint::save(dir, &Checkpoint { config: config.clone(), state: r.state.clone() })?;
    }
    Ok(())
}

fn train(
    dir: &Path,
    config: &TrainConfig,
    mut run: run::Run,
    mut state: theta_meta::TrainState<f32, run::OuterState>,
    options: &Options,
) -> Result<(), String> {
    let mut trainer = Trainer::new(run.model.as_model(), run.dist.as_ref(), config.meta_batch)
        .and_then(|t| t.with_threads(options.threads))
        .map_err(|e| e.to_string())?;
    let mpath = metrics_path(dir, options.metrics);
    let mut log = open_metrics(&mpath, options.metrics, state.step)?;
    let bar = if options.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(config.steps), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} meta-steps  {msg}  {per_sec}  eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} on {}", config.algorithm, config.task));
    bar.set_position(state.step);
    let start = Instant::now();
    let first = state.step;
    // The observer logs, checkpoints and draws; a failure to write stops the
    // run and is reported after it.
    let mut failure: Option<String> = None;
    let mut observe = |r: &StepReport<'_, f32, run::OuterState>| match observe_step(
        r, dir, config, options, &mpath, &mut log, &bar, start,
    ) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            failure = Some(e);
            ControlFlow::Break(())
        }
    };
    let remaining = config.steps.saturating_sub(state.step);
    trainer
        .run(run.learner.as_mut(), &run.outer, &mut state, remaining, &mut observe)
        .map_err(|e| format!("{e} (the last checkpoint is in {})", dir.display()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let done = state.step - first;
    eprintln!(
        "trained {done} meta-steps of {} on {} in {secs:.1} s ({:.0} meta-steps/s); checkpoint: {}",
        config.algorithm,
        config.task,
        done as f64 / secs.max(1e-9),
        dir.join(checkpoint::FILE).display()
    );
    Ok(())
}
