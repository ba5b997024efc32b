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
    print!("{}", table(theta, peers));
}

/// The table [`print_table`] prints (empty when no peer ran).
fn table(theta: &BTreeMap<String, f64>, peers: &PeerResults) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if peers.is_empty() {
        return out;
    }
    let columns: Vec<&(String, String)> = peers.keys().collect();
    write!(out, "\n{:<36} {:>9}", "meta-steps/s, one thread", "theta").unwrap();
    for (f, s) in &columns {
        write!(out, " {:>22}", format!("{f} {s}")).unwrap();
    }
    writeln!(out, " {:>20}", "target vs JAX").unwrap();
    for (algorithm, &ours) in theta {
        write!(out, "{algorithm:<36} {ours:>9.0}").unwrap();
        for key in &columns {
            let cell = peers[*key]
                .get(algorithm)
                .map_or("—".to_string(), |&r| format!("{r:.0} ({})", ratio(ours / r)));
            write!(out, " {cell:>22}").unwrap();
        }
        let jax = peers.iter().find(|((f, _), _)| f == "jax").and_then(|(_, m)| m.get(algorithm));
        let verdict = jax.map_or("—".to_string(), |&r| {
            let want = target(algorithm);
            if ours / r >= want {
                format!("{want:.0}x: met")
            } else {
                format!("{want:.0}x: needs {:.0}/s", want * r)
            }
        });
        writeln!(out, " {verdict:>20}").unwrap();
    }
    out.push_str(
        "(theta's ratio to each peer in brackets; both measured in this run; \
         a target not met shows the meta-steps/s that would meet it)\n",
    );
    out
}

/// A ratio as the table prints it: two decimals below 10×, so that one just
/// short of its target (1.97×) does not read as the target (2.0×).
fn ratio(r: f64) -> String {
    if r < 10.0 { format!("{r:.2}x") } else { format!("{r:.1}x") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_just_short_of_its_target_reads_short() {
        let theta = BTreeMap::from([
            ("maml_1_step".to_string(), 12_500.0),
            ("pretrained".to_string(), 16_393.0),
        ]);
        let jax = BTreeMap::from([
            ("maml_1_step".to_string(), 2_439.0),
            ("pretrained".to_string(), 8_342.0),
        ]);
        let peers = PeerResults::from([(("jax".to_string(), "jit".to_string()), jax)]);
        let text = table(&theta, &peers);
        let line = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap().to_string();
        let pretrained = line("pretrained");
        assert!(pretrained.contains("8342 (1.97x)"), "{pretrained}");
        assert!(pretrained.ends_with("2x: needs 16684/s"), "{pretrained}");
        let maml = line("maml_1_step");
        assert!(maml.contains("2439 (5.13x)") && maml.ends_with("5x: met"), "{maml}");
        assert!(table(&theta, &PeerResults::new()).is_empty());
    }
}
