//! `gradstab stats FILE`.

use std::process::ExitCode;

use gradstab::api::{file_stats, BackendChoice};

use super::args::{json, AdapterArg, StatsFormat};

pub(crate) fn stats(
    file: &std::path::Path,
    adapter: &AdapterArg,
    backend: Option<BackendChoice>,
    format: StatsFormat,
    histogram: bool,
) -> anyhow::Result<ExitCode> {
    let tensors = gradstab::files::load(file)?;
    let device = adapter.open(backend)?;
    let reports = file_stats(&device, &tensors)?;
    let info = device.info();
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
