//! `theta`: the command line of the theta meta-learning library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Check theta against reference case files (format theta-reference-case/1).
    ///
    /// Computes every quantity of each case (support loss, gradient,
    /// Hessian- and Gauss-Newton-vector products, and the meta-gradients of
    /// MAML, first-order MAML, Reptile and iMAML) with theta, prints each
    /// one's relative error against the file's expected value, and exits
    /// non-zero if any exceeds its tolerance or a file cannot be read.
    Verify(verify::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => verify::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("theta: {message}");
            ExitCode::from(2)
        }
    }
}
