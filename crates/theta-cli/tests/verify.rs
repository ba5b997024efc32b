//! `theta verify` accepts every shared case, rejects a tampered one (exit 1)
//! and a malformed one (exit 2, one readable line).

use std::path::PathBuf;
use std::process::Command;

fn shared_reference() -> PathBuf {
    match std::env::var_os("THETA_SHARED") {
        Some(dir) => PathBuf::from(dir).join("reference"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference"),
    }
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared_reference())
        .expect("../shared/reference beside the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn theta(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_theta")).args(args).output().unwrap()
}

fn scratch_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("theta-verify-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_shared_case_verifies_in_f64_and_f32() {
    let cases = cases();
    let args: Vec<&std::ffi::OsStr> = cases.iter().map(|p| p.as_os_str()).collect();
    for extra in [None, Some("--f32")] {
        let mut a: Vec<&std::ffi::OsStr> = vec!["verify".as_ref()];
        a.extend(extra.map(std::ffi::OsStr::new));
        a.extend(&args);
        let out = theta(&a);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("checks agree") && !stdout.contains("MISMATCH"), "{stdout}");
    }
}

#[test]
fn a_tampered_case_is_a_mismatch() {
    let original = std::fs::read_to_string(&cases()[0]).unwrap();
    // Change the first digit of the first vector-valued "expected".
    let at = original
        .match_indices("\"expected\"")
        .map(|(i, k)| i + k.len())
        .find(|&i| original[i..].trim_start().trim_start_matches(':').trim_start().starts_with('['))
        .expect("a vector check");
    let digit = original[at..].find(|c: char| c.is_ascii_digit()).unwrap() + at;
    let mut tampered = original.clone();
    let d = tampered.as_bytes()[digit];
    tampered.replace_range(digit..digit + 1, if d == b'9' { "1" } else { "9" });
    let path = scratch_file("tampered.json", &tampered);
    let out = theta(&["verify".as_ref(), path.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MISMATCH") && stdout.contains("checks disagree"), "{stdout}");
}

#[test]
fn a_malformed_case_is_one_readable_line() {
    let path =
        scratch_file("truncated.json", "{\"format\": \"theta-reference-case/1\", \"model\": ");
    let out = theta(&["verify".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("theta: ") && stderr.contains("truncated.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = theta(&["verify".as_ref(), "no-such-file.json".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-file.json"));
}
