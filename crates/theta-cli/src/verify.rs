//! `theta verify CASE.json…`

use std::path::PathBuf;
use std::process::ExitCode;

use theta_reference::{Expected, Quantity, ReferenceCase, evaluate, relative_error};

/// Arguments of `theta verify`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Case files to check.
    #[arg(required = true, value_name = "CASE.json")]
    cases: Vec<PathBuf>,
    /// Compute in f32 instead of f64, with the format's f32 tolerance (1e-4).
    #[arg(long)]
    f32: bool,
}

fn detail(q: &Quantity) -> String {
    match q {
        Quantity::MamlMetaGrad { inner_steps, alpha, .. }
        | Quantity::FomamlMetaGrad { inner_steps, alpha, .. } => {
            format!("m={inner_steps} α={alpha}")
        }
        Quantity::ReptileDirection { inner_steps, alpha } => format!("k={inner_steps} α={alpha}"),
        Quantity::ImamlMetaGrad {
            lambda, curvature, inner_steps, inner_lr, cg_iterations, ..
        } => {
            let c = match curvature {
                theta_reference::Curvature::Hessian => "H",
                theta_reference::Curvature::GaussNewton => "G",
            };
            format!("λ={lambda} C={c} k={inner_steps} η={inner_lr} cg={cg_iterations}")
        }
        _ => String::new(),
    }
}

/// Checks every case; returns failure if any check misses its tolerance.
/// An unreadable or malformed file is an error (exit 2), after the others ran.
pub(crate) fn run(args: &Args) -> Result<ExitCode, String> {
    let (mut checks, mut failed, mut broken) = (0, 0, Vec::new());
    for path in &args.cases {
        let shown = path.display();
        let case = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| ReferenceCase::from_json(&text).map_err(|e| e.to_string()))
        {
            Ok(case) => case,
            Err(e) => {
                broken.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let spec = &case.model;
        println!(
            "{} ({shown}): {} {}/{}, {}, {} tasks, {}",
            case.name,
            spec.layer_sizes.iter().map(usize::to_string).collect::<Vec<_>>().join("-"),
            spec.hidden,
            spec.output,
            spec.loss,
            case.tasks.len(),
            if args.f32 { "f32" } else { "f64" },
        );
        println!("  {:<18} {:<30} {:>10} {:>9}", "quantity", "settings", "rel. error", "tolerance");
        for check in &case.checks {
            let q = &check.quantity;
            let computed =
                if args.f32 { evaluate::<f32>(&case, q) } else { evaluate::<f64>(&case, q) };
            let computed = match computed {
                Ok(c) => c,
                Err(e) => {
                    println!("  {:<18} {:<30} FAILED: {e}", q.name(), detail(q));
                    checks += 1;
                    failed += 1;
                    continue;
                }
            };
            let tol = if args.f32 { 1e-4 } else { q.tolerance_f64() };
            let mut rows =
                vec![(q.name().to_string(), relative_error(&computed.value, &check.expected))];
            if let (Some(expected), Some(got)) = (q.expected_meta_loss(), computed.meta_loss) {
                rows.push((
                    "  meta_loss".into(),
                    relative_error(&Expected::Scalar(got), &Expected::Scalar(expected)),
                ));
            }
            for (i, (name, err)) in rows.into_iter().enumerate() {
                let ok = err < tol;
                checks += 1;
                failed += usize::from(!ok);
                let settings = if i == 0 { detail(q) } else { String::new() };
                println!(
                    "  {name:<18} {settings:<30} {err:>10.1e} {tol:>9.0e}  {}",
                    if ok { "ok" } else { "MISMATCH" }
                );
            }
        }
    }
    println!();
    match broken.as_slice() {
        [] => {}
        [only] if args.cases.len() == 1 => return Err(only.clone()),
        _ => {
            for b in &broken {
                eprintln!("theta: {b}");
            }
            return Err(format!(
                "{} of {} files could not be checked",
                broken.len(),
                args.cases.len()
            ));
        }
    }
    if failed == 0 {
        println!("all {checks} checks agree");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} of {checks} checks disagree");
        Ok(ExitCode::FAILURE)
    }
}
