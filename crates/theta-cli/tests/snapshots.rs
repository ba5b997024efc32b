//! Snapshots of what users read: help texts, error messages, a seeded
//! training curve and evaluation table, and the figures' data, all rounded
//! as the commands print them (never raw float bits).
//!
//! `cargo xtask snapshots` re-records them for review (`git diff`), and
//! `cargo xtask snapshots --check` (CI) fails on a stale or orphaned one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every snapshot this file records; `no_orphaned_snapshots` holds the
/// folder to this list.
const SNAPSHOTS: &[&str] = &[
    "help_theta",
    "help_train",
    "help_eval",
    "help_verify",
    "help_figures",
    "errors",
    "training_curve",
    "evaluation_table",
    "figure_data",
];

fn theta(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_theta")).args(args).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("theta-snap-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Replaces a temporary path with a stable placeholder.
fn scrub(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "<DIR>")
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("help_theta", vec!["--help"]),
        ("help_train", vec!["train", "--help"]),
        ("help_eval", vec!["eval", "--help"]),
        ("help_verify", vec!["verify", "--help"]),
        ("help_figures", vec!["figures", "--help"]),
    ] {
        let (stdout, _, code) = theta(&args);
        assert_eq!(code, 0);
        insta::assert_snapshot!(name, stdout);
    }
}

#[test]
fn error_messages() {
    let mut all = String::new();
    for args in [
        vec!["train", "--algorithm", "mamml"],
        vec!["train", "--task", "omniglott"],
        vec!["train", "--task", "omniglot", "--data", "/nonexistent/omniglot"],
        vec!["train", "--inner-lr=0"],
        vec!["train", "--algorithm", "imaml", "--lambda=-1"],
        vec!["train", "--activation", "swish"],
        vec!["train", "--hidden", "40,0"],
        vec!["train", "--steps", "0"],
        vec!["train", "--outer-optimizer", "rmsprop"],
        vec!["train", "--stepz", "5"],
        vec!["eval", "/nonexistent/run"],
        vec!["verify", "/nonexistent/case.json"],
        vec!["frobnicate"],
    ] {
        let (_, stderr, code) = theta(&args);
        all.push_str(&format!("$ theta {}\n[exit {code}] {stderr}\n", args.join(" ")));
    }
    insta::assert_snapshot!("errors", all);
}

#[test]
fn seeded_training_and_evaluation() {
    let dir = scratch("run");
    let run = dir.display().to_string();
    let (_, stderr, code) = theta(&[
        "train",
        "--steps",
        "200",
        "--seed",
        "5",
        "--log-every",
        "20",
        "--quiet",
        "--out",
        &run,
    ]);
    assert_eq!(code, 0, "{stderr}");
    // The curve as rounded step/meta-loss pairs (elapsed times vary).
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let curve: String = metrics
        .lines()
        .map(|l| {
            let step = l.strip_prefix("{\"step\":").unwrap().split(',').next().unwrap();
            let loss: f64 = l
                .split("\"meta_loss\":")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            format!("{step:>4} {loss:.4}\n")
        })
        .collect();
    insta::assert_snapshot!("training_curve", curve);
    let (stdout, stderr, code) = theta(&["eval", &run, "--tasks", "50", "--max-steps", "3"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("evaluation_table", scrub(&stdout, &dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn figure_data() {
    let dir = scratch("figures");
    let (stdout, stderr, code) = theta(&[
        "figures",
        "--steps",
        "40",
        "--eval-tasks",
        "8",
        "--out",
        &dir.display().to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("figure_data", stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_orphaned_snapshots() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let Ok(entries) = std::fs::read_dir(&folder) else { return };
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix("snapshots__").and_then(|n| n.strip_suffix(".snap"))
        else {
            panic!(
                "{name}: not a snapshot of this suite (a pending .snap.new? run `cargo xtask snapshots`)"
            );
        };
        assert!(
            SNAPSHOTS.contains(&stem),
            "orphaned snapshot {name}: delete it or record it in SNAPSHOTS"
        );
    }
}
