//! `theta figures` writes the six figures as SVG and PNG (a short run).

use std::process::Command;

#[test]
fn figures_are_written_as_svg_and_png() {
    let dir = std::env::temp_dir().join(format!("theta-figures-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_theta"))
        .args(["figures", "--steps", "40", "--eval-tasks", "8", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in [
        "a-sinusoid-adaptation",
        "b-accumulated-meta-loss",
        "c-task-arrows",
        "d-reptile",
        "e-imaml-proximal",
        "f-comparison",
    ] {
        let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{name}.png");
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>") && svg.len() > 10_000, "{name}.svg");
    }
    // No temporary file is left behind.
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.'))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
