//! `theta train` and `theta eval` on the real Omniglot, as the README runs
//! them (with a small network and few steps), when `shared/data/omniglot/` is
//! beside the repository; skips, saying so, otherwise.

use std::path::PathBuf;
use std::process::Command;

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/omniglot");
    if dir.join("images_background.zip").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: no Omniglot in {}", dir.display());
        None
    }
}

#[test]
fn train_and_eval_a_batch_normalised_network_with_a_task_figure() {
    let Some(data) = data() else { return };
    let root = std::env::temp_dir().join(format!("theta-omniglot-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (run, cache, figures) = (root.join("run"), root.join("cache"), root.join("figures"));
    let theta = || Command::new(env!("CARGO_BIN_EXE_theta"));
    let out = theta()
        .args(["train", "--task", "omniglot", "--support", "1", "--query", "5"])
        .args(["--hidden", "32", "--batch-norm", "--inner-lr", "0.4", "--meta-batch", "4"])
        .args(["--steps", "30", "--threads", "2", "--quiet"])
        .arg("--data")
        .arg(&data)
        .arg("--cache")
        .arg(&cache)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = theta()
        .args(["eval", "--tasks", "20", "--max-steps", "1", "--figure"])
        .arg(&figures)
        .arg(&run)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("K = 1, 15 query points, SGD α = 0.4"), "{stdout}");
    assert!(stdout.contains("accuracy"), "{stdout}");
    for ext in ["svg", "png"] {
        assert!(figures.join(format!("run-task.{ext}")).is_file());
    }
    // 5-way 5-shot with 16 query drawings per class needs 21 of the 20.
    let out = theta().args(["eval", "--support", "5", "--query", "16"]).arg(&run).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("k_shot + query = 5 + 16 drawings per class"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
