//! `theta train`: a run killed by a signal and resumed ends bit-identical to
//! an uninterrupted one; bad checkpoints and configurations are refused with
//! one readable line and never overwritten.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn theta() -> Command {
    Command::new(env!("CARGO_BIN_EXE_theta"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("theta-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert!(
        err.starts_with("theta: ") && !err.contains("panicked") && err.lines().count() == 1,
        "{err}"
    );
    err
}

const STEPS: &str = "3000";

fn train_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--steps",
        STEPS,
        "--checkpoint-every",
        "50",
        "--log-every",
        "50",
        "--quiet",
        "--seed",
        "3",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

fn steps_logged(metrics: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(metrics)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let step =
                l.strip_prefix("{\"step\":").unwrap().split(',').next().unwrap().parse().unwrap();
            let loss =
                l.split("\"meta_loss\":").nth(1).unwrap().split(',').next().unwrap().to_string();
            (step, loss)
        })
        .collect()
}

#[test]
fn a_killed_run_resumes_bit_identically() {
    let root = scratch("kill");
    let (whole, killed) = (root.join("whole"), root.join("killed"));
    ok(theta().args(train_args(&whole)).output().unwrap());

    let mut child = theta().args(train_args(&killed)).spawn().unwrap();
    let ckpt = killed.join("checkpoint.theta");
    let start = Instant::now();
    while !ckpt.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let logged = steps_logged(&killed.join("metrics.jsonl"));
    let last = logged.last().map_or(0, |l| l.0);
    assert!(last < STEPS.parse().unwrap(), "the run finished before it was killed; raise STEPS");

    ok(theta()
        .args(["train", "--quiet", "--log-every", "50", "--resume"])
        .arg(&killed)
        .output()
        .unwrap());
    let (a, b) =
        (std::fs::read(whole.join("checkpoint.theta")).unwrap(), std::fs::read(&ckpt).unwrap());
    assert!(a == b, "the resumed run's final checkpoint differs from the uninterrupted run's");
    // The metrics agree too (elapsed times aside), each step once.
    assert_eq!(
        steps_logged(&whole.join("metrics.jsonl")),
        steps_logged(&killed.join("metrics.jsonl"))
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn resume_with_steps_extends_a_finished_run_exactly() {
    let root = scratch("extend");
    let (whole, short) = (root.join("whole"), root.join("short"));
    let args = |out: &Path, steps: &str| {
        let mut a = train_args(out);
        a[2] = steps.into();
        a
    };
    ok(theta().args(args(&whole, "300")).output().unwrap());
    ok(theta().args(args(&short, "200")).output().unwrap());
    ok(theta()
        .args(["train", "--quiet", "--steps", "300", "--resume"])
        .arg(&short)
        .output()
        .unwrap());
    let read = |d: &Path| std::fs::read(d.join("checkpoint.theta")).unwrap();
    assert!(read(&whole) == read(&short), "200 + 100 steps differ from 300");
    let config = std::fs::read_to_string(short.join("config.toml")).unwrap();
    assert!(config.contains("steps = 300"), "{config}");
    // Shortening is refused.
    let err = one_line_error(
        &theta().args(["train", "--steps", "100", "--resume"]).arg(&short).output().unwrap(),
    );
    assert!(err.contains("already at step 300"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_checkpoints_are_refused_and_left_alone() {
    let root = scratch("bad");
    let run = root.join("run");
    ok(theta().args(["train", "--steps", "20", "--quiet", "--out"]).arg(&run).output().unwrap());
    let path = run.join("checkpoint.theta");
    let good = std::fs::read(&path).unwrap();
    let mut version = good.clone();
    version[8] = 9;
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let cases: [(&[u8], &str); 4] = [
        (&good[..good.len() / 2], "checksum mismatch"),
        (&flipped, "checksum mismatch"),
        (&version, "format version 9"),
        (b"PK\x03\x04 a zip file, say", "not a theta checkpoint"),
    ];
    for (bytes, expected) in cases {
        std::fs::write(&path, bytes).unwrap();
        for args in [vec!["train", "--resume"], vec!["eval"]] {
            let out = theta().args(&args).arg(&run).output().unwrap();
            let err = one_line_error(&out);
            assert!(err.contains(expected) && err.contains("checkpoint.theta"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "a refused checkpoint was changed");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_configurations_are_one_readable_line() {
    let root = scratch("config");
    let cfg = root.join("run.toml");
    std::fs::write(&cfg, "algoritm = \"maml\"\n").unwrap();
    let err = one_line_error(&theta().args(["train", "--config"]).arg(&cfg).output().unwrap());
    assert!(err.contains("run.toml") && err.contains("algoritm"), "{err}");
    std::fs::write(&cfg, "algorithm = \"reptile\"\nsteps = 10\ninner_steps = 3\n").unwrap();
    let out = root.join("out");
    ok(theta()
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert!(
        std::fs::read_to_string(out.join("config.toml"))
            .unwrap()
            .contains("algorithm = \"reptile\"")
    );
    for (args, expected) in [
        (vec!["train", "--task", "omniglott"], "unknown task \"omniglott\""),
        (vec!["train", "--inner-lr=-1"], "inner learning rate"),
        (vec!["train", "--algorithm", "imaml", "--lambda", "0"], "lambda"),
        (vec!["train", "--steps", "0"], "steps must be at least 1"),
        (vec!["eval", "/no/such/run"], "cannot read"),
    ] {
        let mut cmd = theta();
        cmd.args(&args);
        if args[0] == "train" {
            cmd.arg("--out").arg(root.join("x"));
        }
        let err = one_line_error(&cmd.output().unwrap());
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // A mistyped flag: clap's message, on one line.
    let err = one_line_error(&theta().args(["train", "--stepz", "5"]).output().unwrap());
    assert!(err.contains("--stepz"), "{err}");
    // --resume with configuration flags contradicts itself.
    let err = one_line_error(
        &theta().args(["train", "--seed", "5", "--resume"]).arg(&out).output().unwrap(),
    );
    assert!(err.contains("--resume"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
