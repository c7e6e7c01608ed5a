//! `gradstab verify`.

use std::process::ExitCode;

use gradstab::verify::{verify, VerifyRow};
use gradstab::Gpu;

use super::args::{json, AdapterArg, Format};

pub(crate) fn run_verify(
    adapter: &AdapterArg,
    quick: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let gpu = Gpu::new(&adapter.options())?;
    let table = matches!(format, Format::Table);
    if table {
        println!(
            "Verifying every kernel on {} against the CPU reference{}",
            gpu.adapter_name(),
            if quick {
                " (quick: no folded grids)"
            } else {
                ""
            }
        );
        if !gpu.supports(gradstab::Precision::F16) {
            println!("(no SHADER_F16 on this adapter: f16 and f16acc32 are skipped)");
        }
        println!(
            "{:<30} {:<9} {:>6} {:>9} {:>11} {:>11} {:>10} {:>9}  result",
            "kernel",
            "precision",
            "shapes",
            "elements",
            "max error",
            "its bound",
            "worst e/b",
            "identical"
        );
    }
    let report = verify(&gpu, quick, |row: &VerifyRow| {
        if table {
            let c = &row.comparison;
            println!(
                "{:<30} {:<9} {:>6} {:>9} {:>11.3e} {:>11.3e} {:>10.4} {:>8.1}%  {}",
                row.kernel,
                row.precision,
                row.shapes,
                c.elements,
                c.max_error,
                c.bound_at_max_error,
                c.worst_ratio,
                100.0 * c.bit_identical_fraction(),
                if row.passed { "ok" } else { "FAILED" }
            );
            if let Some(f) = &c.first_failure {
                println!("    first failure: {f}");
            }
        }
    })?;
    if table {
        let failed = report.rows.iter().filter(|r| !r.passed).count();
        if failed == 0 {
            println!(
                "All {} kernel × precision rows within their bounds.",
                report.rows.len()
            );
        } else {
            println!("{failed} of {} rows broke their bounds.", report.rows.len());
        }
    } else {
        json(&report)?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
