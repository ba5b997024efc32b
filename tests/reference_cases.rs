//! Every support quantity of every case file in `shared/reference/` is
//! reproduced to 1e-9 relative in f64 and 1e-4 in f32.

use theta_reference::{ReferenceCase, relative_error, support_quantity};
use theta_tests::reference_case_files;

#[test]
fn support_quantities_match_the_jax_oracle() {
    let mut compared = 0;
    for path in reference_case_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let case =
            ReferenceCase::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for check in &case.checks {
            let Some(got64) = support_quantity::<f64>(&case, &check.quantity).unwrap() else {
                continue;
            };
            let got32 = support_quantity::<f32>(&case, &check.quantity).unwrap().unwrap();
            let (e64, e32) =
                (relative_error(&got64, &check.expected), relative_error(&got32, &check.expected));
            println!(
                "{:>24} {:<14} f64 {e64:.2e}  f32 {e32:.2e}",
                case.name,
                check.quantity.name()
            );
            assert!(
                e64 < 1e-9,
                "{} {}: f64 relative error {e64:e}",
                path.display(),
                check.quantity.name()
            );
            assert!(
                e32 < 1e-4,
                "{} {}: f32 relative error {e32:e}",
                path.display(),
                check.quantity.name()
            );
            compared += 1;
        }
    }
    assert!(compared >= 8, "only {compared} support quantities found");
}

#[test]
fn tampered_and_malformed_cases_are_rejected() {
    let path = &reference_case_files()[0];
    let text = std::fs::read_to_string(path).unwrap();
    let ok = ReferenceCase::from_json(&text).unwrap();

    // A changed expected value is read fine but no longer matches.
    let mut tampered = ok.clone();
    for check in &mut tampered.checks {
        if let theta_reference::Expected::Vector(v) = &mut check.expected {
            v[0] += 1e-3 * (1.0 + v[0].abs());
        }
    }
    let check = tampered.checks.iter().find(|c| c.quantity.name() == "support_grad").unwrap();
    let got = support_quantity::<f64>(&tampered, &check.quantity).unwrap().unwrap();
    assert!(relative_error(&got, &check.expected) > 1e-9);

    let cases = [
        (text.replacen("theta-reference-case/1", "theta-reference-case/9", 1), "format"),
        (text.replacen("\"relu\"", "\"swish\"", 1), "unknown activation"),
        (text.replacen(&format!("\"{}\"", ok.model.loss.name()), "\"hinge\"", 1), "unknown loss"),
        (text[..text.len() / 2].to_string(), "not a reference case"),
        ("{}".to_string(), "not a reference case"),
    ];
    for (bad, expected) in cases {
        let err = ReferenceCase::from_json(&bad).unwrap_err().to_string();
        assert!(err.contains(expected), "expected an error about {expected:?}, got {err:?}");
    }
}
