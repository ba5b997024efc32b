//! `cargo xtask bench`: run the criterion benchmarks and print one table.
//!
//! Reads what criterion wrote in this run (`target/criterion/**/new/`), and
//! prints algorithm throughput (meta-steps/s and tasks/s on the sinusoid
//! workload), its thread scaling (the paired runs of
//! `benches/examples/thread_scaling.rs`), kernel throughput (GFLOP/s and the
//! fraction of the f32 FMA peak measured in the same run) and MAML's
//! memory. Saves the results as JSON in
//! `target/theta-bench/latest.json` (and `NAME.json` with `--save NAME`);
//! `--baseline NAME` prints each benchmark's ratio against a saved run and
//! flags the ones slower by more than `--threshold` (default 20%: these
//! machines are shared and noisy). `--peers` also runs the JAX and PyTorch
//! versions of the algorithm workload (`peers.rs`) and prints the ratios.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{Value, json};

/// Tasks per meta-step of the algorithm benchmarks (`benches/algorithms.rs`).
const META_BATCH: f64 = 25.0;

struct Options {
    quick: bool,
    peers: bool,
    save: Option<String>,
    baseline: Option<String>,
    threshold: f64,
    filter: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        peers: false,
        save: None,
        baseline: None,
        threshold: 0.2,
        filter: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value =
            |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--peers" => o.peers = true,
            "--save" => o.save = Some(value("--save")?),
            "--baseline" => o.baseline = Some(value("--baseline")?),
            "--threshold" => {
                o.threshold = value("--threshold")?
                    .parse()
                    .map_err(|_| "--threshold takes a fraction, e.g. 0.2")?
            }
            f if !f.starts_with('-') => o.filter.push(f.to_string()),
            other => return Err(format!("unknown bench option {other:?}")),
        }
    }
    Ok(o)
}

/// One benchmark's result.
struct Measured {
    median_ns: f64,
    elements: Option<f64>,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Thread scaling, two threads against one, from the paired runs of
/// `benches/examples/thread_scaling.rs`: each round runs one thread and two
/// a fraction of a second apart (criterion, which measures one benchmark
/// after the other, let a shared machine's drift into the ratio), and times
/// the FMA peak loop on one thread and two, what the second core gave at
/// the time. Prints the table against issue 5's 1.7× and returns, per
/// learner, the best rates, the median paired ratio and the machine's, for
/// the saved JSON.
fn threads(target: &Path, quick: bool) -> Result<BTreeMap<String, [f64; 4]>, String> {
    let exe = build_example(target, "thread_scaling")?;
    let rounds = if quick { "5" } else { "9" };
    let out = Command::new(&exe)
        .arg(rounds)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the thread-scaling example failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    println!(
        "\n{:<44} {:>14} {:>14} {:>9} {:>9} {:>9}  (Trainer::run; target 1.7x)",
        format!("threads (meta-steps/s, best of {rounds} rounds)"),
        "1 thread",
        "2 threads",
        "speedup",
        "paired",
        "machine"
    );
    let mut rows = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap_or_default().to_string();
        let values: Vec<f64> = fields.filter_map(|f| f.parse().ok()).collect();
        let [one, two, paired, machine] = values[..] else { continue };
        let x = |r: f64| format!("{r:.2}x");
        println!(
            "{name:<44} {one:>14.0} {two:>14.0} {:>9} {:>9} {:>9}",
            x(two / one),
            x(paired),
            x(machine)
        );
        rows.insert(name, [one, two, paired, machine]);
    }
    println!(
        "(speedup: best two-thread rate over best one-thread rate; paired: the median of the \
         rounds' ratios, each of two runs a fraction of a second apart; machine: the median \
         two-thread speedup of the FMA peak loop in the same rounds: near 1x, the second \
         virtual core was not a whole core at the time)"
    );
    Ok(rows)
}

/// Builds one of `benches/examples` in release and returns its path.
fn build_example(target: &Path, name: &str) -> Result<PathBuf, String> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q", "-p", "theta-benches", "--example", name])
        .status()
        .map_err(|e| format!("cannot build the {name} example: {e}"))?;
    if !status.success() {
        return Err(format!("the {name} example did not build"));
    }
    Ok(target.join("release/examples").join(name))
}

/// Every benchmark criterion finished since `since`, by "group/function".
fn collect(dir: &Path, since: SystemTime, out: &mut BTreeMap<String, Measured>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let est = path.join("estimates.json");
            let fresh =
                std::fs::metadata(&est).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
            if let (true, Some(b), Some(e)) =
                (fresh, read_json(&path.join("benchmark.json")), read_json(&est))
            {
                let id = b["full_id"].as_str().unwrap_or_default().to_string();
                let median_ns = e["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                let elements = b["throughput"]["Elements"].as_f64();
                out.insert(id, Measured { median_ns, elements });
            }
        } else {
            collect(&path, since, out);
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn simd() -> &'static str {
    if cfg!(target_feature = "avx512f") {
        "AVX-512 (512-bit vectors)"
    } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        "AVX2 + FMA (pairs of 256-bit vectors)"
    } else {
        "baseline x86-64"
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Peak resident memory of MAML with m = 1, 2, 5, 10, 20 inner steps, one
/// process each (`benches/examples/maml_memory.rs`), against the m·P
/// numbers its reverse pass must hold. With one step MAML runs the model's
/// fused pass, which holds no trajectory and other buffers, so the growth
/// is measured from m = 2, the first reverse pass of Hessian-vector
/// products.
fn memory(target: &Path) -> Result<(), String> {
    let exe = build_example(target, "maml_memory")?;
    println!(
        "\n{:<44} {:>14} {:>16} {:>16}",
        "MAML memory (784-…-5 net, 32 × 80 rows)", "peak RSS", "growth vs m = 2", "(m−2)·P f32"
    );
    let mut base = None;
    for m in [1u64, 2, 5, 10, 20] {
        let out = Command::new(&exe)
            .arg(m.to_string())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<u64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let [_, p, kib] = fields[..] else {
            println!("  m = {m}: no reading ({})", text.trim());
            continue;
        };
        let mib = |k: f64| k / 1024.0;
        if m == 1 {
            println!("{:<44} {:>10.1} MiB", "m = 1 (the fused one-step pass)", mib(kib as f64));
            continue;
        }
        let b = *base.get_or_insert((kib, m));
        println!(
            "{:<44} {:>10.1} MiB {:>12.1} MiB {:>12.1} MiB",
            format!("m = {m}"),
            mib(kib as f64),
            mib(kib as f64 - b.0 as f64),
            (m - b.1) as f64 * p as f64 * 4.0 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}

/// Runs `cargo xtask bench`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let target =
        PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()));
    // "threads" names the paired thread-scaling runs, not a criterion group.
    let want_threads = o.filter.is_empty() || o.filter.iter().any(|f| f == "threads");
    let filter: Vec<&str> =
        o.filter.iter().map(String::as_str).filter(|&f| f != "threads").collect();
    let mut results = BTreeMap::new();
    if o.filter.is_empty() || !filter.is_empty() {
        let start = SystemTime::now();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["bench", "-p", "theta-benches", "--bench", "main", "--"]);
        if o.quick {
            cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
        }
        // criterion takes one filter, a regular expression: several words mean any of them.
        if !filter.is_empty() {
            cmd.arg(filter.join("|"));
        }
        eprintln!("$ {cmd:?}");
        let status = cmd.status().map_err(|e| format!("cannot run cargo bench: {e}"))?;
        if !status.success() {
            return Err("the benchmarks failed".into());
        }
        collect(&target.join("criterion"), start, &mut results);
        if results.is_empty() {
            return Err(format!("criterion wrote no results (no benchmark matches {filter:?}?)"));
        }
    }
    let peak = results.get("peak/f32_fma").and_then(|m| m.elements.map(|e| e / m.median_ns));

    println!(
        "\ntheta bench — {} — {}, f32; one thread, except in the threads table",
        cpu_model(),
        simd()
    );
    let algos: Vec<_> = results.iter().filter(|(k, _)| k.starts_with("algorithms/")).collect();
    if !algos.is_empty() {
        println!(
            "\n{:<44} {:>12} {:>14} {:>12}",
            "algorithm (sinusoid, 25 tasks/meta-step)", "median", "meta-steps/s", "tasks/s"
        );
        for (id, m) in &algos {
            let per_s = 1e9 / m.median_ns;
            println!(
                "{:<44} {:>12} {:>14.0} {:>12.0}",
                &id["algorithms/".len()..],
                time(m.median_ns),
                per_s,
                per_s * META_BATCH
            );
        }
    }
    let scaling = if want_threads { threads(&target, o.quick)? } else { BTreeMap::new() };
    let kernels: Vec<_> = results.iter().filter(|(k, _)| !k.starts_with("algorithms/")).collect();
    if !kernels.is_empty() {
        println!("\n{:<58} {:>12} {:>9} {:>9}", "kernel", "median", "GFLOP/s", "of peak");
        for (id, m) in &kernels {
            let gflops = m.elements.map(|e| e / m.median_ns);
            let of_peak = match (gflops, peak) {
                (Some(g), Some(p)) if !id.starts_with("peak/") => format!("{:.0}%", 100.0 * g / p),
                _ => String::new(),
            };
            println!(
                "{id:<58} {:>12} {:>9} {of_peak:>9}",
                time(m.median_ns),
                gflops.map_or(String::new(), |g| format!("{g:.1}"))
            );
        }
    }

    if o.filter.is_empty() {
        memory(&target)?;
    }

    if o.peers {
        let theta: BTreeMap<String, f64> = algos
            .iter()
            .map(|(id, m)| (id["algorithms/".len()..].to_string(), 1e9 / m.median_ns))
            .collect();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let peers = crate::peers::run(&root, if o.quick { 1.0 } else { 3.0 });
        crate::peers::print_table(&theta, &peers);
    }

    let json = json!({
        "cpu": cpu_model(),
        "simd": simd(),
        "benchmarks": results.iter().map(|(id, m)| (id.clone(), json!({
            "median_ns": m.median_ns,
            "per_second": 1e9 / m.median_ns,
            "elements": m.elements,
        }))).collect::<serde_json::Map<_, _>>(),
        "threads": scaling.iter().map(|(name, [one, two, paired, machine])| (name.clone(), json!({
            "one_thread_per_second": one,
            "two_threads_per_second": two,
            "speedup": two / one,
            "paired_median_speedup": paired,
            "machine_fma_speedup": machine,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    let dir = target.join("theta-bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&json).expect("serialisable");
    for name in std::iter::once("latest").chain(o.save.as_deref()) {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("\nsaved {}", path.display());
    }

    if let Some(name) = &o.baseline {
        let path = dir.join(format!("{name}.json"));
        let base = read_json(&path).ok_or_else(|| {
            format!("no saved run {} (save one with --save {name})", path.display())
        })?;
        println!(
            "\nagainst {name} (ratio > 1 is faster; flagged if slower by more than {:.0}%):",
            100.0 * o.threshold
        );
        let mut regressions = 0;
        for (id, m) in &results {
            let Some(old) = base["benchmarks"][id]["median_ns"].as_f64() else { continue };
            let ratio = old / m.median_ns;
            let flag = if ratio < 1.0 - o.threshold {
                regressions += 1;
                "  REGRESSION"
            } else {
                ""
            };
            println!("  {id:<58} {ratio:>6.2}x{flag}");
        }
        if regressions > 0 {
            println!("{regressions} regression(s) beyond the threshold");
        }
    }
    Ok(())
}
