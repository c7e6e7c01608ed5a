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
    let gpu = Gpu::new(&adapter.options()?)?;
    let table = matches!(format, Format::Table);
    if table {
        out!(
            "Verifying every kernel on {} against the CPU reference{}",
            gpu.adapter_name(),
            if quick {
                " (quick: no folded grids)"
            } else {
                ""
            }
        )?;
        if !gpu.supports(gradstab::Precision::F16) {
            out!("(no SHADER_F16 on this adapter: f16 and f16acc32 are skipped)")?;
        }
        out!(
            "{:<30} {:<9} {:>6} {:>9} {:>11} {:>11} {:>10} {:>9}  result",
            "kernel",
            "precision",
            "shapes",
            "elements",
            "max error",
            "its bound",
            "worst e/b",
            "identical"
        )?;
    }
    // The first failed write (a full disk), returned once verify is done.
    let mut write_error = None;
    let report = verify(&gpu, quick, |row: &VerifyRow| {
        let print = || -> std::io::Result<()> {
            let c = &row.comparison;
            out!(
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
            )?;
            if let Some(f) = &c.first_failure {
                out!("    first failure: {f}")?;
            }
            Ok(())
        };
        if table && write_error.is_none() {
            write_error = print().err();
        }
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if table {
        let failed = report.rows.iter().filter(|r| !r.passed).count();
        if failed == 0 {
            out!(
                "All {} kernel × precision rows within their bounds.",
                report.rows.len()
            )?;
        } else {
            out!("{failed} of {} rows broke their bounds.", report.rows.len())?;
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
