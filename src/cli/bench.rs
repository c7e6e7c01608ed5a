//! `gradstab bench`.

use std::process::ExitCode;

use gradstab::Gpu;

use super::args::{json, AdapterArg, Format};

pub(crate) fn run_bench(
    adapter: &AdapterArg,
    quick: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let gpu = Gpu::new(&adapter.options())?;
    let table = matches!(format, Format::Table);
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let report = gradstab::bench::bench(&gpu, quick, |what| bar.set_message(what.to_string()))?;
    bar.finish_and_clear();
    if !table {
        json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({}, {}, {}){}",
        report.adapter,
        report.backend,
        report.device_type,
        report.driver,
        if quick { ", quick sizes" } else { "" }
    );
    let peaks: Vec<String> = report
        .roofline
        .fma_gflops
        .iter()
        .map(|(p, g)| format!("{p} FMA peak {g:.1} GFLOP/s"))
        .collect();
    println!(
        "Roofline: {}, copy {:.1} GB/s",
        peaks.join(", "),
        report.roofline.copy_gbps
    );
    println!(
        "{:<36} {:<9} {:>10} {:>11} {:>16} {:>9}",
        "kernel", "precision", "size", "time", "achieved", "of peak"
    );
    for k in &report.kernels {
        let achieved = match (k.gflops, k.gbps) {
            (Some(g), _) => format!("{g:.2} GFLOP/s"),
            (None, Some(b)) => format!("{b:.2} GB/s"),
            _ => "-".into(),
        };
        println!(
            "{:<36} {:<9} {:>10} {:>9.3}ms {:>16} {:>8.1}%",
            k.kernel,
            k.precision,
            k.size,
            k.seconds * 1e3,
            achieved,
            k.percent_of_peak
        );
    }
    println!("compute-bound kernels: % of the FMA peak of their arithmetic; memory-bound: % of copy bandwidth.");
    Ok(ExitCode::SUCCESS)
}
