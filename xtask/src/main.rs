//! `cargo xtask <command>`: theta's project chores, in Rust so that they run
//! wherever cargo does (the alias lives in `.cargo/config.toml`).
//!
//! * `ci`: exactly what CI runs — formatting, lints, the test suite.
//! * `bench`: the criterion benchmarks, as one comparison table (`bench.rs`).
//! * `figures`: the article's figures from real runs, into `docs/figures/`.
//! * `snapshots`: the insta snapshot suite, re-recorded or (`--check`) checked.

use std::process::{Command, ExitCode};

mod bench;
mod peers;

/// The README's test command; `.ci/run` calls it too.
const TEST: &[&str] = &["test", "--workspace"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(&args[1..]),
        Some("figures") => figures(&args[1..]),
        Some("snapshots") => snapshots(args.get(1).map(String::as_str)),
        Some("help" | "--help" | "-h") | None => {
            println!(
                "usage: cargo xtask <command>\n\ncommands:\n\
                 \x20 ci       formatting, clippy -D warnings and `cargo test --workspace`, as CI runs them\n\
                 \x20 bench    [--quick] [--peers] [--save NAME] [--baseline NAME] [--threshold 0.2] [FILTER]\n\
                 \x20          the benchmarks as one table of algorithm and kernel throughput;\n\
                 \x20          --peers also runs benches/peers/ (JAX, PyTorch) and prints the ratios\n\
                 \x20 figures  [theta figures options]: the article's figures into docs/figures\n\
                 \x20 snapshots [--check]: re-record the insta snapshots for review, or check them (CI)"
            );
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed", args.join(" "))) }
}

/// Regenerates `docs/figures/` with `theta figures` (release build).
fn figures(extra: &[String]) -> Result<(), String> {
    let mut args = vec![
        "run",
        "--release",
        "--quiet",
        "-p",
        "theta-cli",
        "--",
        "figures",
        "--out",
        "docs/figures",
    ];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

/// The snapshot suite: `--check` fails on stale, missing or orphaned
/// snapshots; without it, snapshots are re-recorded for review with `git diff`.
fn snapshots(flag: Option<&str>) -> Result<(), String> {
    let check = match flag {
        Some("--check") => true,
        None => false,
        Some(other) => return Err(format!("unknown snapshots option {other:?}")),
    };
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "-p", "theta-cli", "--test", "snapshots"]);
    if check {
        cmd.env("INSTA_UPDATE", "no").env("CI", "true");
    } else {
        cmd.env("INSTA_UPDATE", "always").env_remove("CI");
    }
    eprintln!("$ {cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(if check {
            "snapshots are stale or orphaned: run `cargo xtask snapshots`, review `git diff`, commit".into()
        } else {
            "the snapshot suite failed".into()
        });
    }
    if !check {
        eprintln!(
            "re-recorded; review with `git diff crates/theta-cli/tests/snapshots` and commit"
        );
    }
    Ok(())
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    cargo(TEST)?;
    snapshots(Some("--check"))?;
    // The SIMD kernels at a second level, the one below the native CPU's, as
    // `.ci/run` does.
    let avx512 = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.split_whitespace().any(|w| w == "avx512f"))
        .unwrap_or(false);
    let second = if avx512 { "x86-64-v3" } else { "x86-64-v2" };
    let target_dir = format!("target/simd-{second}");
    eprintln!(
        "$ RUSTFLAGS=\"-C target-cpu={second}\" cargo test -p theta-kernels --target-dir {target_dir}"
    );
    let status = Command::new(env!("CARGO"))
        .args(["test", "-p", "theta-kernels", "--target-dir", &target_dir])
        .env("RUSTFLAGS", format!("-C target-cpu={second}"))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the kernels fail at target-cpu={second}"));
    }
    if avx512 {
        return Ok(());
    }
    // No AVX-512 to run its code paths on: they must at least compile,
    // lint-clean (`--target` keeps the flag off the build scripts, run here).
    eprintln!("$ kernels' AVX-512 paths: cargo clippy at target-cpu=x86-64-v4 (compile only)");
    let status = Command::new(env!("CARGO"))
        .args(["clippy", "-p", "theta-kernels", "--all-targets"])
        .args(["--target", "x86_64-unknown-linux-gnu", "--target-dir", "target/simd-x86-64-v4"])
        .args(["--", "-D", "warnings"])
        .env("RUSTFLAGS", "-C target-cpu=x86-64-v4")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err("the kernels' AVX-512 paths do not build".into()) }
}
