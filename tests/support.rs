//! Helpers shared by the workspace's conformance tests.

use std::path::PathBuf;

/// The `shared/` folder beside the repository (`THETA_SHARED` overrides).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("THETA_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// Every `*.json` case file in `shared/reference/`, sorted by name.
///
/// # Panics
/// If the folder is missing or holds no case: these tests exist to run them.
pub fn reference_case_files() -> Vec<PathBuf> {
    let dir = shared_dir().join("reference");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!("cannot read {}: {e} (set THETA_SHARED to the shared folder)", dir.display())
        })
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no reference case in {}", dir.display());
    files
}

/// `‖a − b‖ / ‖b‖`, or the absolute error where `b` is zero.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let n = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if n > 0.0 { d / n } else { d }
}
