//! The `gradstab` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use gradstab::backend::stats_in_pieces;
use gradstab::demo::{first_nonfinite_layer, relu_chain_max_abs, ChainConfig};
use gradstab::experiment::{Experiment, VariantRun};
use gradstab::files::FileTensor;
use gradstab::gpu::probe::{probe, FormatBehaviour};
use gradstab::gpu::{list_adapters, ADAPTER_ENV};
use gradstab::init::{Init, InputInit};
use gradstab::network::{run, Clip, Loss, NetworkConfig};
use gradstab::ops::matmul::MatmulVariant;
use gradstab::report::run::RunReport;
use gradstab::report::TensorReport;
use gradstab::verify::{verify, VerifyRow};
use gradstab::Activation;
use gradstab::{Backend, Cpu, Gpu, GpuOptions, Precision};
use std::io::Write as _;

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
    /// Use this matmul variant instead of the autotuned one: tile64-shared, tile32-shared or
    /// tile64-direct (also GRADSTAB_MATMUL_VARIANT).
    #[arg(long, value_parser = parse_with::<MatmulVariant>)]
    matmul_variant: Option<MatmulVariant>,
}

impl AdapterArg {
    fn options(&self) -> GpuOptions {
        let mut options = GpuOptions::from_env();
        if let Some(a) = &self.adapter {
            options.adapter = Some(a.clone());
        }
        options.matmul_variant = self.matmul_variant;
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
    /// Measure the device: its roofline (peak FMA throughput, copy bandwidth), then each kernel's
    /// achieved throughput and share of that peak.
    Bench {
        #[command(flatten)]
        adapter: AdapterArg,
        /// Tiny sizes: seconds even on a software GPU (for CI and smoke tests).
        #[arg(long)]
        quick: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// List the presets (the lecture's experiments), one line each.
    Presets,
    /// Run a deep MLP forward and backward and record every layer, beside the theory.
    Run(Box<RunArgs>),
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

#[derive(clap::Args)]
struct RunArgs {
    /// A preset from `gradstab presets`; the other flags override it.
    #[arg(long)]
    preset: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    depth: Option<usize>,
    /// One width, or depth + 1 comma-separated widths (input first).
    #[arg(long, value_parser = parse_widths)]
    width: Option<Widths>,
    #[arg(long, allow_negative_numbers = true)]
    batch: Option<usize>,
    /// linear, linear:ALPHA,BETA, relu, leaky_relu[:SLOPE], sigmoid, tanh, scaled_sigmoid
    #[arg(long, value_parser = parse_with::<Activation>)]
    activation: Option<Activation>,
    /// constant:C, normal:STD, uniform:A, xavier_normal[:GAIN], xavier_uniform[:GAIN],
    /// kaiming_normal[:fan_in|fan_out[:GAIN]], kaiming_uniform[…], orthogonal[:GAIN]
    #[arg(long, value_parser = parse_with::<Init>)]
    init: Option<Init>,
    /// normal:STD, uniform:A or constant:C
    #[arg(long, value_parser = parse_with::<InputInit>)]
    input: Option<InputInit>,
    #[arg(long, value_parser = parse_non_negative, allow_negative_numbers = true)]
    bias_std: Option<f64>,
    /// h^t = h^{t−1} + act(W^t h^{t−1}) (widths must match).
    #[arg(long)]
    residual: bool,
    /// probe (∂l/∂h^d ~ N(0, 1)), sum or mse
    #[arg(long, value_parser = parse_with::<Loss>)]
    loss: Option<Loss>,
    /// Clip the weight gradients to this global norm (clip_grad_norm_).
    #[arg(long, value_parser = parse_positive, conflicts_with = "clip_value", allow_negative_numbers = true)]
    clip_norm: Option<f64>,
    /// Clamp the weight gradients to ±this (clip_grad_value_).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    clip_value: Option<f64>,
    /// Comma list of f32, f16, f16acc32.
    #[arg(long, value_parser = parse_precisions)]
    precision: Option<PrecisionList>,
    #[arg(long, value_enum, default_value = "gpu")]
    backend: BackendChoice,
    #[command(flatten)]
    adapter: AdapterArg,
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value = "table")]
    format: StatsFormat,
    /// Write the output here instead of standard output.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Also draw log10 variance against depth to this SVG file.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn parse_with<T: std::str::FromStr<Err = gradstab::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: gradstab::Error| e.to_string())
}

/// A comma-separated list parsed as one value (clap would read a `Vec` as repeated values).
#[derive(Clone, Debug)]
struct Widths(Vec<usize>);

#[derive(Clone, Debug)]
struct PrecisionList(Vec<Precision>);

fn parse_widths(s: &str) -> Result<Widths, String> {
    let widths: Result<Vec<usize>, _> = s.split(',').map(|w| w.trim().parse::<usize>()).collect();
    match widths {
        Ok(w) if !w.is_empty() && !w.contains(&0) => Ok(Widths(w)),
        _ => Err(format!(
            "invalid width list '{s}': expected positive integers separated by commas"
        )),
    }
}

fn parse_precisions(s: &str) -> Result<PrecisionList, String> {
    gradstab::precision::parse_precision_list(s)
        .map(PrecisionList)
        .map_err(|e| e.to_string())
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number > 0, got '{s}'")),
    }
}

fn parse_non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number ≥ 0, got '{s}'")),
    }
}

/// Parses the command line; a bad flag or value is one line on stderr and exit code 2.
fn parse_cli() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("gradstab: {first} (see gradstab --help)");
            std::process::exit(2);
        }
    }
}

fn main() -> ExitCode {
    let cli = parse_cli();
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
        Command::Bench {
            adapter,
            quick,
            format,
        } => run_bench(&adapter, quick, format),
        Command::Presets => {
            for e in gradstab::experiment::presets() {
                println!("{:<18} {}", e.name, e.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => match experiment_of(&args) {
            // A preset that does not exist or flags that do not fit together: a usage error.
            Err(e) => {
                eprintln!("gradstab: error: {e}");
                return ExitCode::from(2);
            }
            Ok(experiment) => run_network(&args, experiment),
        },
        Command::Demo {
            adapter,
            backend,
            seed,
        } => demo(&adapter, backend, seed),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`gradstab run | head`) is the reader's choice, not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
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

fn run_bench(adapter: &AdapterArg, quick: bool, format: Format) -> anyhow::Result<ExitCode> {
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

/// The experiment a `run` asks for: the preset (or a default He/ReLU net) with every flag
/// applied on top of each of its configurations.
fn experiment_of(args: &RunArgs) -> anyhow::Result<Experiment> {
    let mut experiment = match &args.preset {
        Some(name) => gradstab::experiment::preset(name)?,
        None => Experiment {
            name: "custom",
            summary: "",
            variants: vec![("net".into(), NetworkConfig::new(20, 256, 64))],
            precisions: vec![Precision::F32],
        },
    };
    for (_, config) in &mut experiment.variants {
        if let Some(depth) = args.depth {
            config.depth = depth;
            let width = config.widths[0];
            config.widths = vec![width; depth + 1];
        }
        if let Some(Widths(w)) = &args.width {
            *config = config.clone().with_widths(w)?;
        }
        if let Some(b) = args.batch {
            config.batch = b;
        }
        if let Some(a) = args.activation {
            config.activation = a;
        }
        if let Some(i) = args.init {
            config.init = i;
        }
        if let Some(i) = args.input {
            config.input = i;
        }
        if let Some(b) = args.bias_std {
            config.bias_std = b;
        }
        config.residual |= args.residual;
        if let Some(l) = args.loss {
            config.loss = l;
        }
        if let Some(c) = args.clip_norm {
            config.clip = Some(Clip::Norm(c));
        }
        if let Some(c) = args.clip_value {
            config.clip = Some(Clip::Value(c));
        }
        if let Some(s) = args.seed {
            config.seed = s;
        }
        config.validate()?;
    }
    if let Some(PrecisionList(p)) = &args.precision {
        experiment.precisions = p.clone();
    }
    Ok(experiment)
}

fn run_all<B: Backend>(
    backend: &B,
    experiment: &Experiment,
    quiet: bool,
) -> anyhow::Result<Vec<VariantRun>> {
    let total: usize = experiment
        .variants
        .iter()
        .map(|(_, c)| 2 * c.depth)
        .sum::<usize>()
        * experiment.precisions.len();
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        )
    };
    let mut runs = Vec::new();
    let mut done = 0;
    for (label, config) in &experiment.variants {
        for &precision in &experiment.precisions {
            bar.set_message(format!("{label} {precision}"));
            let record = run(backend, config, precision, &mut |step, _| {
                bar.set_position((done + step) as u64)
            })?;
            done += 2 * config.depth;
            runs.push(VariantRun {
                variant: label.clone(),
                config: config.clone(),
                record,
            });
        }
    }
    bar.finish_and_clear();
    Ok(runs)
}

fn run_network(args: &RunArgs, experiment: Experiment) -> anyhow::Result<ExitCode> {
    let gpu = gpu_or_cpu_notice(&args.adapter, args.backend);
    let needs_f16 = experiment.precisions.iter().any(|p| p.needs_shader_f16());
    if let (Some(gpu), true) = (&gpu, needs_f16) {
        gpu.require_f16()?;
    }
    let (runs, device) = match &gpu {
        Some(gpu) => (run_all(gpu, &experiment, args.quiet)?, gpu.info()),
        None => (run_all(&Cpu, &experiment, args.quiet)?, Cpu.info()),
    };
    let report = RunReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        preset: args.preset.clone(),
        config: experiment.variants[0].1.clone(),
        device,
        runs,
    };
    let mut out: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match args.format {
        StatsFormat::Table => {
            writeln!(out, "{} on {}", experiment.name, report.device.adapter)?;
            gradstab::report::run::table(&mut out, &report)?;
        }
        StatsFormat::Csv => gradstab::report::run::csv(&mut out, &report)?,
        StatsFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
    }
    out.flush()?;
    if let Some(path) = &args.plot {
        gradstab::report::plot::svg(&report, path)?;
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
    println!("\nA tour of the lecture (gradstab presets lists them; gradstab run --preset NAME shows every layer):");
    for experiment in gradstab::experiment::demo_tour() {
        println!("{}: {}", experiment.name, experiment.summary);
        let runs = match &gpu {
            Some(gpu) if gpu.supports_f16() => run_all(gpu, &experiment, true)?,
            _ => run_all(&Cpu, &experiment, true)?,
        };
        for run in &runs {
            println!("    {}", gradstab::experiment::conclusion(run));
        }
    }
    Ok(ExitCode::SUCCESS)
}
