//! `gradstab stats FILE`.

use std::process::ExitCode;

use gradstab::files::FileTensor;
use gradstab::report::TensorReport;
use gradstab::{Backend, Cpu};

use super::args::{gpu_or_cpu_notice, json, AdapterArg, BackendChoice, StatsFormat};

/// Each tensor's record, reduced in pieces that fit the backend.
pub(crate) fn file_stats<B: Backend>(
    backend: &B,
    tensors: &[FileTensor],
) -> anyhow::Result<Vec<TensorReport>> {
    tensors
        .iter()
        .map(|t| {
            let stats = match &t.values {
                Some(values) => Some(backend.stats_of_host(values)?),
                None => None,
            };
            Ok(TensorReport::new(t, stats))
        })
        .collect()
}

pub(crate) fn stats(
    file: &std::path::Path,
    adapter: &AdapterArg,
    backend: Option<BackendChoice>,
    format: StatsFormat,
    histogram: bool,
) -> anyhow::Result<ExitCode> {
    let tensors = gradstab::files::load(file)?;
    let gpu = gpu_or_cpu_notice(adapter, backend)?;
    let (reports, info) = match &gpu {
        Some(gpu) => (file_stats(gpu, &tensors)?, gpu.info()),
        None => (file_stats(&Cpu, &tensors)?, Cpu.info()),
    };
    let mut out = std::io::stdout().lock();
    match format {
        StatsFormat::Table => {
            use std::io::Write;
            writeln!(
                out,
                "{} ({} tensors) on {}",
                file.display(),
                reports.len(),
                info.adapter
            )?;
            gradstab::report::stats_table(&mut out, &reports, histogram)?;
        }
        StatsFormat::Csv => gradstab::report::stats_csv(out, &reports)?,
        StatsFormat::Json => json(&serde_json::json!({
            "file": file.display().to_string(),
            "device": info,
            "tensors": reports,
        }))?,
    }
    Ok(ExitCode::SUCCESS)
}
