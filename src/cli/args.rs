//! What every command shares: output formats, the backend and adapter choice, and the GPU
//! or the CPU fallback with its one-line notice.

use clap::ValueEnum;

use gradstab::network::Fp8Scaling;
use gradstab::ops::matmul::MatmulVariant;
use gradstab::{Gpu, GpuOptions, Precision};

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
    /// The environment's options (`GpuOptions::from_env`), with the flags over them.
    pub(crate) fn options(&self) -> gradstab::Result<GpuOptions> {
        let mut options = GpuOptions::from_env()?;
        if let Some(a) = &self.adapter {
            options.adapter = Some(a.clone());
        }
        if let Some(v) = self.matmul_variant {
            options.matmul_variant = Some(v);
        }
        Ok(options)
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
    match Gpu::new(&adapter.options()?) {
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

/// The FP8 scaling flags of `run` and `train`.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct Fp8Args {
    /// How --precision fp8 scales each matmul operand before its cast: delayed (Transformer
    /// Engine's default: from the amax of past steps), current (from the tensor's own amax)
    /// or none.
    #[arg(long, value_name = "none|delayed|current")]
    pub(crate) fp8_scaling: Option<String>,
    /// Steps of amax history delayed scaling takes the maximum over (default 1024).
    #[arg(long, value_parser = parse_history, allow_hyphen_values = true)]
    pub(crate) fp8_history: Option<usize>,
    /// Delayed scaling's margin: each scale is divided by 2^margin (default 0).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) fp8_margin: Option<i32>,
}

impl Fp8Args {
    pub(crate) fn given(&self) -> bool {
        self.fp8_scaling.is_some() || self.fp8_history.is_some() || self.fp8_margin.is_some()
    }

    /// The rule these flags ask for (`None` when none was given), checked against the
    /// precisions of the run: a flag that nothing would read is refused, not ignored.
    pub(crate) fn scaling(&self, precisions: &[Precision]) -> anyhow::Result<Option<Fp8Scaling>> {
        if !self.given() {
            return Ok(None);
        }
        if !precisions.iter().any(|p| p.quantised().is_some()) {
            anyhow::bail!("the --fp8-* flags apply to --precision fp8 only");
        }
        let default = Fp8Scaling::default();
        let name = self.fp8_scaling.as_deref().unwrap_or(default.name());
        if !name.trim().eq_ignore_ascii_case("delayed")
            && (self.fp8_history.is_some() || self.fp8_margin.is_some())
        {
            anyhow::bail!("--fp8-history and --fp8-margin apply to --fp8-scaling delayed only");
        }
        let (history, margin) = match default {
            Fp8Scaling::Delayed { history, margin } => (history, margin),
            _ => unreachable!("Transformer Engine's default is delayed scaling"),
        };
        Ok(Some(Fp8Scaling::parse(
            name,
            self.fp8_history.unwrap_or(history),
            self.fp8_margin.unwrap_or(margin),
        )?))
    }
}

/// A number of steps, at least 1.
fn parse_history(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of steps, at least 1, not '{s}'"
        )),
    }
}
