//! `gradstab devices` and `gradstab probe`.

use std::process::ExitCode;

use gradstab::gpu::probe::{probe, FormatBehaviour};
use gradstab::gpu::{list_adapters, ADAPTER_ENV};
use gradstab::Gpu;

use super::args::{json, AdapterArg, Format};

pub(crate) fn devices(format: Format) -> anyhow::Result<ExitCode> {
    let adapters = list_adapters();
    if let Format::Json = format {
        json(&adapters)?;
        return Ok(ExitCode::SUCCESS);
    }
    if adapters.is_empty() {
        out!("No GPU adapter found. For a software GPU on Debian/Ubuntu: apt-get install mesa-vulkan-drivers")?;
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{:<3} {:<36} {:<7} {:<13} {:<28} {:<4} {:>14} {:>14}",
        "#",
        "adapter",
        "backend",
        "type",
        "driver",
        "f16",
        "max binding",
        "max groups/dim"
    )?;
    for (i, a) in adapters.iter().enumerate() {
        out!(
            "{:<3} {:<36} {:<7} {:<13} {:<28} {:<4} {:>14} {:>14}",
            i,
            truncate(&a.name, 36),
            a.backend,
            a.device_type,
            truncate(&format!("{} {}", a.driver, a.driver_info), 28),
            if a.shader_f16 { "yes" } else { "no" },
            a.max_storage_buffer_binding_size,
            a.max_compute_workgroups_per_dimension
        )?;
    }
    out!("(the first is the default; choose another with --adapter # or NAME, or {ADAPTER_ENV})")?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

pub(crate) fn run_probe(adapter: &AdapterArg, format: Format) -> anyhow::Result<ExitCode> {
    let gpu = Gpu::new(&adapter.options()?)?;
    let report = probe(&gpu)?;
    if let Format::Json = format {
        json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    out!("{} ({}, {})", report.adapter, report.backend, report.driver)?;
    print_probe_table(&report.f32, report.f16.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_probe_table(
    f32: &FormatBehaviour,
    f16: Option<&FormatBehaviour>,
) -> std::io::Result<()> {
    out!("{:<24} {:<16} {:<16}", "", "f32", "f16")?;
    let f16_rows = f16.map(FormatBehaviour::rows);
    for (i, (name, value)) in f32.rows().into_iter().enumerate() {
        let f16_value = f16_rows
            .as_ref()
            .map_or("(no SHADER_F16)".to_string(), |rows| rows[i].1.clone());
        out!("{name:<24} {value:<16} {f16_value:<16}")?;
    }
    Ok(())
}
