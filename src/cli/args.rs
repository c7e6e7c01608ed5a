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
    /// The adapter's number in `gradstab devices`, or the first whose "name (Backend)"
    /// contains this (case-insensitive); default: the best one, or GRADSTAB_ADAPTER. An
    /// adapter asked for and not found is an error.
    #[arg(long, value_name = "#|NAME")]
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
    out!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Whether the user asked for a GPU in any way: `--backend gpu`, an adapter or a matmul variant
/// by flag or environment variable. Such a request is honoured or refused, never replaced.
fn asked_for_gpu(adapter: &AdapterArg, backend: Option<BackendChoice>) -> bool {
    let set = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
    backend == Some(BackendChoice::Gpu)
        || adapter.adapter.is_some()
        || adapter.matmul_variant.is_some()
        || set(gradstab::gpu::ADAPTER_ENV)
        || set(gradstab::ops::matmul::autotune::VARIANT_ENV)
}

/// The GPU unless the CPU was asked for. Only when nothing was asked for and no adapter
/// exists does the command fall back to the CPU backend, with a one-line notice; an adapter,
/// variant or backend the user named that cannot be had is an error.
pub(crate) fn gpu_or_cpu_notice(
    adapter: &AdapterArg,
    backend: Option<BackendChoice>,
) -> anyhow::Result<Option<Gpu>> {
    if backend == Some(BackendChoice::Cpu) {
        return Ok(None);
    }
    match Gpu::new(&adapter.options()) {
        Ok(gpu) => Ok(Some(gpu)),
        Err(e @ gradstab::Error::NoAdapter { .. }) if !asked_for_gpu(adapter, backend) => {
            eprintln!("gradstab: {e}; running on the CPU backend instead.");
            Ok(None)
        }
        Err(e @ gradstab::Error::NoAdapter { .. }) => Err(anyhow::anyhow!(
            "{e}; `--backend cpu` runs on the CPU instead"
        )),
        Err(e) => Err(e.into()),
    }
}

/// The paths of the flags that were given, with their flags.
pub(crate) fn given<'a, const N: usize>(
    flags: [(&'a str, &'a Option<std::path::PathBuf>); N],
) -> Vec<(&'a str, &'a std::path::Path)> {
    flags
        .into_iter()
        .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
        .collect()
}

/// Writes what `render` produces to `out`, whole or not at all, or to standard output.
pub(crate) fn write_output(
    out: Option<&std::path::Path>,
    render: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    match out {
        Some(path) => gradstab::output::write_atomically(path, render)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            render(&mut stdout)?;
            std::io::Write::flush(&mut stdout)?;
        }
    }
    Ok(())
}
