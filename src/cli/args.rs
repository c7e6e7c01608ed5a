//! What every command shares: output formats, the backend and adapter choice, and the GPU
//! or the CPU fallback with its one-line notice.

use clap::ValueEnum;

use gradstab::ops::matmul::MatmulVariant;
use gradstab::{Gpu, GpuOptions};

/// Parses a flag's value with the library's `FromStr`, whose error names the accepted forms.
pub(crate) fn parse_with<T: std::str::FromStr<Err = gradstab::Error>>(
    s: &str,
) -> Result<T, String> {
    s.parse().map_err(|e: gradstab::Error| e.to_string())
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StatsFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub(crate) enum BackendChoice {
    Gpu,
    Cpu,
}

#[derive(clap::Args)]
pub(crate) struct AdapterArg {
    /// Use the first adapter whose name contains this (case-insensitive); default: the best
    /// one, or GRADSTAB_ADAPTER.
    #[arg(long, value_name = "NAME-SUBSTRING")]
    pub(crate) adapter: Option<String>,
    /// Use this matmul variant instead of the autotuned one: tile64-shared, tile32-shared or
    /// tile64-direct (also GRADSTAB_MATMUL_VARIANT).
    #[arg(long, value_parser = parse_with::<MatmulVariant>)]
    pub(crate) matmul_variant: Option<MatmulVariant>,
}

impl AdapterArg {
    pub(crate) fn options(&self) -> GpuOptions {
        let mut options = GpuOptions::from_env();
        if let Some(a) = &self.adapter {
            options.adapter = Some(a.clone());
        }
        options.matmul_variant = self.matmul_variant;
        options
    }
}

pub(crate) fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The GPU unless the CPU was asked for; without a usable GPU, `None` and a one-line notice.
pub(crate) fn gpu_or_cpu_notice(adapter: &AdapterArg, backend: BackendChoice) -> Option<Gpu> {
    match backend {
        BackendChoice::Cpu => None,
        BackendChoice::Gpu => match Gpu::new(&adapter.options()) {
            Ok(gpu) => Some(gpu),
            Err(e) => {
                eprintln!("gradstab: no usable GPU ({e}); running on the CPU backend instead.");
                None
            }
        },
    }
}
