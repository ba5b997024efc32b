//! `cargo xtask bench --peers`: the same sinusoid workload in JAX and PyTorch
//! (`benches/peers/*.py`), run in the same invocation as theta's benchmarks,
//! and one table of theta's throughput against theirs.
//!
//! A peer whose Python or packages are missing is skipped with the command
//! that installs it; a peer that fails is reported and skipped. The bench
//! never fails because of a peer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// (framework, style) → algorithm → meta-steps/s.
pub(crate) type PeerResults = BTreeMap<(String, String), BTreeMap<String, f64>>;

const INSTALL: &str = "pip install -r benches/peers/requirements.txt";

/// The target of issue 5 per algorithm: a multiple of JAX's throughput.
fn target(algorithm: &str) -> f64 {
    if algorithm == "pretrained" { 2.0 } else { 5.0 }
}

fn python() -> Option<&'static str> {
    ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Runs every peer script that can run; prints what it skips and why.
pub(crate) fn run(root: &Path, seconds: f64) -> PeerResults {
    let mut results = PeerResults::new();
    let Some(py) = python() else {
        eprintln!("peers skipped: no python3 on PATH (install Python 3, then {INSTALL})");
        return results;
    };
    for (script, module, name) in
        [("jax_bench.py", "jax", "JAX"), ("torch_bench.py", "torch", "PyTorch")]
    {
        let has = Command::new(py)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            eprintln!(
                "{name} skipped: `import {module}` failed; install the peers with: {INSTALL}"
            );
            continue;
        }
        let path = root.join("benches/peers").join(script);
        eprintln!("$ {py} {} --seconds {seconds}", path.display());
        let out = Command::new(py).arg(&path).args(["--seconds", &seconds.to_string()]).output();
        let out = match out {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let last = err.lines().last().unwrap_or("no message");
                eprintln!("{name} skipped: the script failed ({last})");
                continue;
            }
            Err(e) => {
                eprintln!("{name} skipped: cannot run {}: {e}", path.display());
                continue;
            }
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            let (Some(f), Some(s), Some(a), Some(r)) = (
                v["framework"].as_str(),
                v["style"].as_str(),
                v["algorithm"].as_str(),
                v["meta_steps_per_s"].as_f64(),
            ) else {
                continue;
            };
            results.entry((f.into(), s.into())).or_default().insert(a.into(), r);
        }
    }
    results
}

/// Prints theta against every peer that ran: meta-steps/s and ratios.
pub(crate) fn print_table(theta: &BTreeMap<String, f64>, peers: &PeerResults) {
    if peers.is_empty() {
        return;
    }
    let columns: Vec<&(String, String)> = peers.keys().collect();
    print!("\n{:<36} {:>9}", "meta-steps/s, one thread", "theta");
    for (f, s) in &columns {
        print!(" {:>22}", format!("{f} {s}"));
    }
    println!(" {:>16}", "target vs JAX");
    for (algorithm, &ours) in theta {
        print!("{algorithm:<36} {ours:>9.0}");
        for key in &columns {
            let cell = peers[*key]
                .get(algorithm)
                .map_or("—".to_string(), |&r| format!("{r:.0} ({:.1}x)", ours / r));
            print!(" {cell:>22}");
        }
        let jax = peers.iter().find(|((f, _), _)| f == "jax").and_then(|(_, m)| m.get(algorithm));
        let verdict = jax.map_or("—".to_string(), |&r| {
            let (ratio, want) = (ours / r, target(algorithm));
            format!("{want:.0}x: {}", if ratio >= want { "met" } else { "not met" })
        });
        println!(" {verdict:>16}");
    }
    println!("(theta's ratio to each peer in brackets; both measured in this run)");
}
