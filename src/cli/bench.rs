//! `gradstab bench`.

use std::process::ExitCode;

use gradstab::api::BackendChoice;
use gradstab::bench::BenchReport;
use gradstab::Gpu;

use super::args::{json, AdapterArg, Format};

pub(crate) fn run_bench(
    adapter: &AdapterArg,
    backend: Option<BackendChoice>,
    quick: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let progress = |what: &str| bar.set_message(what.to_string());
    // A benchmark measures the device asked for: no fallback from one backend to the other.
    let report = match backend.unwrap_or(BackendChoice::Gpu) {
        BackendChoice::Cpu => gradstab::bench::bench_cpu(quick, progress)?,
        BackendChoice::Gpu | BackendChoice::Auto => {
            gradstab::bench::bench(&Gpu::new(&adapter.options()?)?, quick, progress)?
        }
    };
    bar.finish_and_clear();
    match format {
        Format::Json => json(&report)?,
        Format::Table => table(&report)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn table(report: &BenchReport) -> std::io::Result<()> {
    out!(
        "{} ({}, {}, {}){}",
        report.adapter,
        report.backend,
        report.device_type,
        report.driver,
        if report.quick { ", quick sizes" } else { "" }
    )?;
    if let Some(roofline) = &report.roofline {
        let peaks: Vec<String> = roofline
            .fma_gflops
            .iter()
            .map(|(p, g)| format!("{p} FMA peak {g:.1} GFLOP/s"))
            .collect();
        out!(
            "Roofline: {}, copy {:.1} GB/s",
            peaks.join(", "),
            roofline.copy_gbps
        )?;
    }
    out!(
        "{:<36} {:<9} {:>10} {:>11} {:>16} {:>9}",
        "kernel",
        "precision",
        "size",
        "time",
        "achieved",
        "of peak"
    )?;
    for k in &report.kernels {
        let achieved = match (k.gflops, k.gbps) {
            (Some(g), _) => format!("{g:.2} GFLOP/s"),
            (None, Some(b)) => format!("{b:.2} GB/s"),
            _ => "-".into(),
        };
        let share = k
            .percent_of_peak
            .map_or("-".to_string(), |p| format!("{p:.1}%"));
        out!(
            "{:<36} {:<9} {:>10} {:>9.3}ms {:>16} {:>9}",
            k.kernel,
            k.precision,
            k.size,
            k.seconds * 1e3,
            achieved,
            share
        )?;
    }
    if report.roofline.is_some() {
        out!("compute-bound kernels: % of the FMA peak of their arithmetic; memory-bound: % of copy bandwidth.")?;
    }
    Ok(())
}
