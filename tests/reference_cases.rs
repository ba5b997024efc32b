//! Every quantity of every case file in `shared/reference/` — support
//! losses and derivatives, and the meta-gradients of MAML, first-order MAML,
//! Reptile and iMAML — is reproduced within the format's tolerances in f64
//! (1e-9; 1e-8 for CG results) and to about 1e-4 in f32.

use theta_reference::{Expected, ReferenceCase, evaluate, relative_error};
use theta_tests::reference_case_files;

/// The format's README: "in float32, expect about 1e-4".
const TOLERANCE_F32: f64 = 1e-4;

#[test]
fn every_quantity_matches_the_jax_oracle() {
    let mut compared = 0;
    for path in reference_case_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let case =
            ReferenceCase::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for check in &case.checks {
            let q = &check.quantity;
            let got64 = evaluate::<f64>(&case, q).unwrap();
            let got32 = evaluate::<f32>(&case, q).unwrap();
            let (e64, e32) = (
                relative_error(&got64.value, &check.expected),
                relative_error(&got32.value, &check.expected),
            );
            println!("{:>16} {:<18} f64 {e64:.2e}  f32 {e32:.2e}", case.name, q.name());
            assert!(
                e64 < q.tolerance_f64(),
                "{} {}: f64 relative error {e64:e}",
                path.display(),
                q.name()
            );
            assert!(
                e32 < TOLERANCE_F32,
                "{} {}: f32 relative error {e32:e}",
                path.display(),
                q.name()
            );
            if let Some(expected) = q.expected_meta_loss() {
                let e = relative_error(
                    &Expected::Scalar(got64.meta_loss.unwrap()),
                    &Expected::Scalar(expected),
                );
                assert!(
                    e < 1e-9,
                    "{} {}: meta-loss relative error {e:e}",
                    path.display(),
                    q.name()
                );
            }
            compared += 1;
        }
    }
    assert!(compared >= 16, "only {compared} quantities found");
}

#[test]
fn tampered_and_malformed_cases_are_rejected() {
    let path = &reference_case_files()[0];
    let text = std::fs::read_to_string(path).unwrap();
    let ok = ReferenceCase::from_json(&text).unwrap();

    // A changed expected value is read fine but no longer matches.
    let mut tampered = ok.clone();
    for check in &mut tampered.checks {
        if let Expected::Vector(v) = &mut check.expected {
            v[0] += 1e-3 * (1.0 + v[0].abs());
        }
    }
    for check in &tampered.checks {
        if let Expected::Vector(_) = check.expected {
            let got = evaluate::<f64>(&tampered, &check.quantity).unwrap();
            assert!(
                relative_error(&got.value, &check.expected) > 1e-9,
                "{}",
                check.quantity.name()
            );
        }
    }

    let cases = [
        (text.replacen("theta-reference-case/1", "theta-reference-case/9", 1), "format"),
        (text.replacen("\"relu\"", "\"swish\"", 1), "unknown activation"),
        (text.replacen(&format!("\"{}\"", ok.model.loss.name()), "\"hinge\"", 1), "unknown loss"),
        (text.replacen("\"maml_meta_grad\"", "\"anil_meta_grad\"", 1), "unknown quantity"),
        (text.replacen("\"gauss_newton\"", "\"fisher\"", 1), "curvature"),
        (text[..text.len() / 2].to_string(), "not a reference case"),
        ("{}".to_string(), "not a reference case"),
    ];
    for (bad, expected) in cases {
        let err = ReferenceCase::from_json(&bad).unwrap_err().to_string();
        assert!(err.contains(expected), "expected an error about {expected:?}, got {err:?}");
    }
}
