//! The `gradstab` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use gradstab::backend::stats_in_pieces;
use gradstab::demo::{first_nonfinite_layer, relu_chain_max_abs, ChainConfig};
use gradstab::files::FileTensor;
use gradstab::gpu::probe::{probe, FormatBehaviour};
use gradstab::gpu::{list_adapters, ADAPTER_ENV};
use gradstab::report::TensorReport;
use gradstab::verify::{verify, VerifyRow};
use gradstab::{Backend, Cpu, Gpu, GpuOptions, Precision};

#[derive(Parser)]
#[command(
    name = "gradstab",
    version,
    about = "Make the numerical (in)stability of deep networks visible on real GPU hardware"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum StatsFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum BackendChoice {
    Gpu,
    Cpu,
}

#[derive(clap::Args)]
struct AdapterArg {
    /// Use the first adapter whose name contains this (case-insensitive); default: the best
    /// one, or GRADSTAB_ADAPTER.
    #[arg(long, value_name = "NAME-SUBSTRING")]
    adapter: Option<String>,
}

impl AdapterArg {
    fn options(&self) -> GpuOptions {
        let mut options = GpuOptions::from_env();
        if let Some(a) = &self.adapter {
            options.adapter = Some(a.clone());
        }
        options
    }
}

#[derive(Subcommand)]
enum Command {
    /// Every GPU adapter with its backend, type, driver, f16 support and key limits.
    Devices {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Measure what the device does at the edges of f32 and f16 (subnormals, fma, overflow, NaN).
    Probe {
        #[command(flatten)]
        adapter: AdapterArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Check every kernel on the device against the CPU reference; non-zero exit on any failure.
    Verify {
        #[command(flatten)]
        adapter: AdapterArg,
        /// Leave out the shapes whose dispatch grids need folding (slow on software GPUs).
        #[arg(long)]
        quick: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Statistics of every tensor in a .npy or .safetensors file, and what f16 or bf16 would do
    /// to it.
    Stats {
        /// A .npy (f16, f32, f64) or .safetensors (f16, bf16, f32) file.
        file: std::path::PathBuf,
        #[command(flatten)]
        adapter: AdapterArg,
        #[arg(long, value_enum, default_value = "gpu")]
        backend: BackendChoice,
        #[arg(long, value_enum, default_value = "table")]
        format: StatsFormat,
        /// Print each tensor's exponent histogram as text bars.
        #[arg(long)]
        histogram: bool,
    },
    /// A 20-layer ReLU MLP with N(0, 1) weights in f32 and f16: where does f16 overflow?
    Demo {
        #[command(flatten)]
        adapter: AdapterArg,
        #[arg(long, value_enum, default_value = "gpu")]
        backend: BackendChoice,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices { format } => devices(format),
        Command::Probe { adapter, format } => run_probe(&adapter, format),
        Command::Verify {
            adapter,
            quick,
            format,
        } => run_verify(&adapter, quick, format),
        Command::Stats {
            file,
            adapter,
            backend,
            format,
            histogram,
        } => stats(&file, &adapter, backend, format, histogram),
        Command::Demo {
            adapter,
            backend,
            seed,
        } => demo(&adapter, backend, seed),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gradstab: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn devices(format: Format) -> anyhow::Result<ExitCode> {
    let adapters = list_adapters();
    if let Format::Json = format {
        json(&adapters)?;
        return Ok(ExitCode::SUCCESS);
    }
    if adapters.is_empty() {
        println!("No GPU adapter found. For a software GPU on Debian/Ubuntu: apt-get install mesa-vulkan-drivers");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<3} {:<36} {:<7} {:<13} {:<28} {:<4} {:>14} {:>14}",
        "#", "adapter", "backend", "type", "driver", "f16", "max binding", "max groups/dim"
    );
    for (i, a) in adapters.iter().enumerate() {
        println!(
            "{:<3} {:<36} {:<7} {:<13} {:<28} {:<4} {:>14} {:>14}",
            i,
            truncate(&a.name, 36),
            a.backend,
            a.device_type,
            truncate(&format!("{} {}", a.driver, a.driver_info), 28),
            if a.shader_f16 { "yes" } else { "no" },
            a.max_storage_buffer_binding_size,
            a.max_compute_workgroups_per_dimension
        );
    }
    println!("(the first is the default; choose another with --adapter NAME or {ADAPTER_ENV})");
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

fn run_probe(adapter: &AdapterArg, format: Format) -> anyhow::Result<ExitCode> {
    let gpu = Gpu::new(&adapter.options())?;
    let report = probe(&gpu)?;
    if let Format::Json = format {
        json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} ({}, {})", report.adapter, report.backend, report.driver);
    print_probe_table(&report.f32, report.f16.as_ref());
    Ok(ExitCode::SUCCESS)
}

fn print_probe_table(f32: &FormatBehaviour, f16: Option<&FormatBehaviour>) {
    println!("{:<24} {:<16} {:<16}", "", "f32", "f16");
    let f16_rows = f16.map(FormatBehaviour::rows);
    for (i, (name, value)) in f32.rows().into_iter().enumerate() {
        let f16_value = f16_rows
            .as_ref()
            .map_or("(no SHADER_F16)".to_string(), |rows| rows[i].1.clone());
        println!("{name:<24} {value:<16} {f16_value:<16}");
    }
}

fn run_verify(adapter: &AdapterArg, quick: bool, format: Format) -> anyhow::Result<ExitCode> {
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
        if !gpu.supports_f16() {
            println!("(no SHADER_F16 on this adapter: f16 and f16acc32 are skipped)");
        }
        println!(
            "{:<22} {:<9} {:>6} {:>9} {:>11} {:>11} {:>10} {:>9}  result",
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
                "{:<22} {:<9} {:>6} {:>9} {:>11.3e} {:>11.3e} {:>10.4} {:>8.1}%  {}",
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

/// The GPU unless the CPU was asked for; without a usable GPU, `None` and a one-line notice.
fn gpu_or_cpu_notice(adapter: &AdapterArg, backend: BackendChoice) -> Option<Gpu> {
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

/// Each tensor's record, reduced in pieces of at most `max_len(dtype)` values.
fn file_stats<B: Backend>(
    backend: &B,
    tensors: &[FileTensor],
    max_len: impl Fn(gradstab::DType) -> usize,
) -> anyhow::Result<Vec<TensorReport>> {
    tensors
        .iter()
        .map(|t| {
            let stats = match &t.values {
                Some(values) => Some(stats_in_pieces(backend, values, max_len(values.dtype()))?),
                None => None,
            };
            Ok(TensorReport::new(t, stats))
        })
        .collect()
}

fn stats(
    file: &std::path::Path,
    adapter: &AdapterArg,
    backend: BackendChoice,
    format: StatsFormat,
    histogram: bool,
) -> anyhow::Result<ExitCode> {
    let tensors = gradstab::files::load(file)?;
    let gpu = gpu_or_cpu_notice(adapter, backend);
    let (reports, info) = match &gpu {
        Some(gpu) => (
            file_stats(gpu, &tensors, |d| gpu.max_tensor_len(d))?,
            gpu.info(),
        ),
        None => (file_stats(&Cpu, &tensors, |_| usize::MAX)?, Cpu.info()),
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

fn demo(adapter: &AdapterArg, backend: BackendChoice, seed: u64) -> anyhow::Result<ExitCode> {
    let config = ChainConfig {
        seed,
        ..ChainConfig::default()
    };
    let gpu = gpu_or_cpu_notice(adapter, backend);
    let run = |precision: Precision| -> anyhow::Result<(Vec<f64>, String)> {
        match &gpu {
            Some(gpu) if !precision.needs_shader_f16() || gpu.supports_f16() => Ok((
                relu_chain_max_abs(gpu, &config, precision)?,
                gpu.info().adapter,
            )),
            _ => Ok((
                relu_chain_max_abs(&Cpu, &config, precision)?,
                Cpu.info().adapter,
            )),
        }
    };
    let (f32_max, f32_on) = run(Precision::F32)?;
    let (f16_max, f16_on) = run(Precision::F16)?;
    println!(
        "A {}-layer ReLU MLP, width {}, batch {}, weights N(0, 1), input N(0, 1), seed {seed}",
        config.depth, config.width, config.batch
    );
    if f32_on == f16_on {
        println!("on {f32_on}");
    } else {
        println!("f32 on {f32_on}; f16 on {f16_on} (this adapter has no SHADER_F16)");
    }
    println!("{:>5}  {:>12}  {:>12}", "layer", "max|h| f32", "max|h| f16");
    for t in 0..config.depth {
        println!("{:>5}  {:>12.3e}  {:>12.3e}", t + 1, f32_max[t], f16_max[t]);
    }
    let growth =
        (config.width as f64 * config.weight_std as f64 * config.weight_std as f64 / 2.0).sqrt();
    println!(
        "Theory: each layer multiplies E[h²] by width·σ²/2 = {}, so |h| grows about {growth:.1}× per layer.",
        config.width / 2
    );
    let describe = |name: &str, maxima: &[f64], limit: &str| match first_nonfinite_layer(maxima) {
        Some(t) => format!("{name} first overflows at layer {t}"),
        None => format!(
            "{name} stays finite through layer {} (largest |h| {:.2e}, limit {limit})",
            maxima.len(),
            maxima.last().copied().unwrap_or(0.0)
        ),
    };
    println!(
        "{}; {}.",
        describe("f16", &f16_max, "65504"),
        describe("f32", &f32_max, "3.4e38")
    );
    if f16_max.iter().any(|m| m.is_nan()) {
        println!(
            "After an overflow the next matmul meets inf × 0 (the zeros ReLU made), which is NaN."
        );
    }
    Ok(ExitCode::SUCCESS)
}
