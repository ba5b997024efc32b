//! `theta`: the command line of the theta meta-learning library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod checkpoint;
mod config;
mod eval;
mod figures;
mod run;
mod train;
mod verify;

/// Gradient-based meta-learning with exact, hand-derived derivatives.
#[derive(Parser)]
#[command(name = "theta", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Meta-train MAML and the pretrained baseline on sinusoids (5 to 15
    /// seconds on two cores), compare them on 600 new tasks, and draw the
    /// adaptation figure into the current directory.
    Demo,
    /// Check theta against reference case files (format theta-reference-case/1).
    ///
    /// Computes every quantity of each case (support loss, gradient,
    /// Hessian- and Gauss-Newton-vector products, and the meta-gradients of
    /// MAML, first-order MAML, Reptile and iMAML) with theta, prints each
    /// one's relative error against the file's expected value, and exits
    /// non-zero if any exceeds its tolerance or a file cannot be read.
    Verify(verify::Args),
    /// Meta-train a model: any algorithm on any task family, from flags or a
    /// TOML file, with a progress bar, metrics, and checkpoints that `--resume`
    /// continues bit for bit.
    Train(Box<train::Args>),
    /// Evaluate a run's checkpoint with the MAML paper's protocol: query loss
    /// (and accuracy) after 0 to 10 adaptation steps on fixed test tasks,
    /// mean ± 95% confidence interval.
    Eval(eval::Args),
    /// Draw the article's six figures from real runs, as SVG and PNG.
    Figures(figures::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One readable line: clap's first line, without its usage block.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("theta: {first} (see `theta --help`)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Demo => figures::demo(std::path::Path::new(".")).map(|()| ExitCode::SUCCESS),
        Command::Figures(args) => figures::run(args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::run(&args),
        Command::Train(args) => train::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => eval::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("theta: {message}");
            ExitCode::from(2)
        }
    }
}
