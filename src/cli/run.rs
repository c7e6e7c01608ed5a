//! `gradstab run`: its arguments, the experiment they describe, and running it.

use std::process::ExitCode;

use gradstab::experiment::{Experiment, VariantRun};
use gradstab::init::{Init, InputInit};
use gradstab::network::{run, Clip, Loss, NetworkConfig};
use gradstab::report::run::RunReport;
use gradstab::{Activation, Backend, Cpu, Precision};

use super::args::{gpu_or_cpu_notice, parse_with, AdapterArg, BackendChoice, Fp8Args, StatsFormat};

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// A preset from `gradstab presets`; the other flags override it.
    #[arg(long)]
    preset: Option<String>,
    /// Layers, 1 to 1,000,000.
    #[arg(long, value_parser = parse_depth, allow_hyphen_values = true)]
    depth: Option<usize>,
    /// One width, or depth + 1 comma-separated widths (input first).
    #[arg(long, value_parser = parse_widths, allow_hyphen_values = true)]
    width: Option<Widths>,
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    batch: Option<usize>,
    /// linear, linear:ALPHA,BETA, relu, leaky_relu[:SLOPE], sigmoid, tanh, scaled_sigmoid
    #[arg(long, value_parser = parse_with::<Activation>)]
    activation: Option<Activation>,
    /// constant:C, normal:STD, uniform:A, xavier_normal[:GAIN], xavier_uniform[:GAIN],
    /// kaiming_normal[:fan_in|fan_out][:GAIN], kaiming_uniform[…], orthogonal[:GAIN]. Without
    /// a gain, PyTorch's default (1; √2 for kaiming); GAIN may be `auto`, the activation's.
    #[arg(long, value_parser = parse_with::<Init>)]
    init: Option<Init>,
    /// normal:STD, uniform:A or constant:C
    #[arg(long, value_parser = parse_with::<InputInit>)]
    input: Option<InputInit>,
    #[arg(long, value_parser = parse_bias_std, allow_hyphen_values = true)]
    bias_std: Option<f64>,
    /// h^t = h^{t−1} + act(W^t h^{t−1}) (widths must match).
    #[arg(long)]
    residual: bool,
    /// probe (∂l/∂h^d ~ N(0, 1)), sum or mse
    #[arg(long, value_parser = parse_with::<Loss>)]
    loss: Option<Loss>,
    /// Clip the weight gradients to this global norm (clip_grad_norm_).
    #[arg(long, value_parser = parse_positive, conflicts_with = "clip_value", allow_hyphen_values = true)]
    clip_norm: Option<f64>,
    /// Clamp the weight gradients to ±this (clip_grad_value_).
    #[arg(long, value_parser = parse_positive, allow_hyphen_values = true)]
    clip_value: Option<f64>,
    /// Comma list of f32, f16, f16acc32, bf16, bf16acc32, fp8 (docs/formats.md).
    #[arg(long, value_parser = parse_precisions)]
    precision: Option<PrecisionList>,
    #[command(flatten)]
    fp8: Fp8Args,
    /// gpu or cpu; default: the GPU, or the CPU with a notice when there is no adapter.
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    #[command(flatten)]
    adapter: AdapterArg,
    #[arg(long, value_parser = parse_seed, allow_hyphen_values = true)]
    seed: Option<u64>,
    /// Start from the weights of a PyTorch nn.Sequential of nn.Linear layers, as
    /// safetensors.torch.save_file(model.state_dict(), FILE) writes them; depth and widths
    /// come from the file.
    #[arg(long, value_name = "FILE.safetensors")]
    weights: Option<std::path::PathBuf>,
    /// The input batch x [N, inputs] (and, for --loss mse, the targets y [N, outputs]) from a
    /// .safetensors or .npz file; the batch size comes from the file.
    #[arg(long, value_name = "FILE")]
    data: Option<std::path::PathBuf>,
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
    /// Refuse a run that needs more host or device memory than this (512M, 8G, …); the
    /// machine's available memory and the device's buffer limit always apply.
    #[arg(long, value_name = "SIZE", value_parser = parse_with::<MemorySize>, allow_hyphen_values = true)]
    max_memory: Option<MemorySize>,
}

/// A byte count such as 8G.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemorySize(pub(crate) u64);

impl std::str::FromStr for MemorySize {
    type Err = gradstab::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        gradstab::host_memory::parse_bytes(s).map(MemorySize)
    }
}

/// The most layers a run may have: a million layers' records alone take gigabytes.
const MAX_DEPTH: usize = 1_000_000;

/// Biases are drawn as f32: a larger standard deviation would only draw infinities.
pub(crate) fn parse_bias_std(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=f32::MAX as f64).contains(&v) => Ok(v),
        _ => Err("expected a number from 0 to 3.4e38 (biases are drawn as f32)".into()),
    }
}

pub(crate) fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(b) if b >= 1 => Ok(b),
        _ => Err("expected a whole number ≥ 1".into()),
    }
}

pub(crate) fn parse_whole(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| "expected a whole number ≥ 0".into())
}

pub(crate) fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("expected a whole number from 0 to {}", u64::MAX))
}

pub(crate) fn parse_depth(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(d) if (1..=MAX_DEPTH).contains(&d) => Ok(d),
        _ => Err(format!("expected a whole number from 1 to {MAX_DEPTH}")),
    }
}

/// A comma-separated list parsed as one value (clap would read a `Vec` as repeated values).
#[derive(Clone, Debug)]
pub(crate) struct Widths(pub(crate) Vec<usize>);

#[derive(Clone, Debug)]
pub(crate) struct PrecisionList(pub(crate) Vec<Precision>);

pub(crate) fn parse_widths(s: &str) -> Result<Widths, String> {
    let widths: Result<Vec<usize>, _> = s.split(',').map(|w| w.trim().parse::<usize>()).collect();
    match widths {
        Ok(w) if !w.is_empty() && !w.contains(&0) => Ok(Widths(w)),
        _ => Err("expected whole numbers ≥ 1 separated by commas".into()),
    }
}

pub(crate) fn parse_precisions(s: &str) -> Result<PrecisionList, String> {
    gradstab::precision::parse_precision_list(s)
        .map(PrecisionList)
        .map_err(|e| e.to_string())
}

pub(crate) fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err("expected a finite number > 0".into()),
    }
}

/// The experiment a `run` asks for: the preset (or a default He/ReLU net) with every flag
/// applied on top of each of its configurations.
pub(crate) fn experiment_of(args: &RunArgs) -> anyhow::Result<Experiment> {
    // What a file brings cannot also be asked for with a flag: refuse rather than pick one.
    let conflicts = |file_flag: &str, given: bool, flags: &[(&str, bool)]| -> anyhow::Result<()> {
        if given {
            if let Some((flag, _)) = flags.iter().find(|(_, set)| *set) {
                anyhow::bail!(
                    "{flag} cannot be used with {file_flag}, which sets it from the file"
                );
            }
        }
        Ok(())
    };
    conflicts(
        "--weights",
        args.weights.is_some(),
        &[
            ("--preset", args.preset.is_some()),
            ("--depth", args.depth.is_some()),
            ("--width", args.width.is_some()),
            ("--init", args.init.is_some()),
            ("--bias-std", args.bias_std.is_some()),
        ],
    )?;
    conflicts(
        "--data",
        args.data.is_some(),
        &[
            ("--preset", args.preset.is_some()),
            ("--batch", args.batch.is_some()),
            ("--input", args.input.is_some()),
        ],
    )?;
    let mut experiment = match &args.preset {
        Some(name) => gradstab::experiment::preset(name)?,
        None => Experiment {
            name: "custom",
            summary: "",
            variants: vec![("net".into(), NetworkConfig::new(20, 256, 64))],
            precisions: vec![Precision::F32],
            claims: None,
        },
    };
    if let Some(PrecisionList(p)) = &args.precision {
        experiment.precisions = p.clone();
    }
    let fp8_scaling = args.fp8.scaling(&experiment.precisions)?;
    for (_, config) in &mut experiment.variants {
        if let Some(scaling) = fp8_scaling {
            config.fp8_scaling = scaling;
        }
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
        config.max_memory_bytes = args.max_memory.map(|MemorySize(b)| b);
        if let Some(path) = &args.weights {
            *config = config
                .clone()
                .with_given_parameters(gradstab::network::load_parameters(path)?);
        }
        if let Some(path) = &args.data {
            let data = gradstab::network::load_data(path)?;
            // Without --weights or --width, the data decide the input width (and, for MSE,
            // the output width) of the default network.
            if args.weights.is_none() && args.width.is_none() {
                config.widths[0] = data.x.shape().cols;
                if let (Loss::Mse, Some(y)) = (config.loss, &data.y) {
                    config.widths[config.depth] = y.shape().cols;
                }
            }
            *config = config.clone().with_given_data(data);
        }
        config.validate()?;
    }
    // A preset's claims are about its own runs: with any of them changed, they are not checked.
    let changed = [
        args.depth.is_some(),
        args.width.is_some(),
        args.batch.is_some(),
        args.activation.is_some(),
        args.init.is_some(),
        args.input.is_some(),
        args.bias_std.is_some(),
        args.residual,
        args.loss.is_some(),
        args.clip_norm.is_some(),
        args.clip_value.is_some(),
        args.precision.is_some(),
        args.seed.is_some(),
        args.fp8.given(),
    ];
    if experiment.claims.is_some() && changed.contains(&true) {
        eprintln!(
            "note: flags change the preset's runs, so its claims are not checked; run it without them to check them"
        );
        experiment.claims = None;
    }
    Ok(experiment)
}

pub(crate) fn run_all<B: Backend>(
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

/// Where the output and the plot go, checked before the run: each can be written, the plot is
/// an SVG, and neither overwrites the other or an input.
pub(crate) fn check_destinations(args: &RunArgs) -> anyhow::Result<()> {
    let inputs = super::args::given([("--weights", &args.weights), ("--data", &args.data)]);
    let mut outputs = super::args::given([("--out", &args.out), ("--plot", &args.plot)]);
    // Without --out the report goes to standard output, which no other output may share.
    if args.out.is_none() {
        outputs.insert(0, ("the report (without --out)", std::path::Path::new("-")));
    }
    gradstab::output::check_outputs(&inputs, &outputs, |flag| {
        (flag == "--plot").then_some("svg")
    })?;
    Ok(())
}

pub(crate) fn run_network(args: &RunArgs, experiment: Experiment) -> anyhow::Result<ExitCode> {
    let gpu = gpu_or_cpu_notice(&args.adapter, args.backend)?;
    // Everything the run asks for is checked before any of it runs: each precision on this
    // device, and whether each configuration fits in memory.
    for &precision in &experiment.precisions {
        for (_, config) in &experiment.variants {
            match &gpu {
                Some(gpu) => gradstab::network::check(gpu, config, precision)?,
                None => gradstab::network::check(&Cpu, config, precision)?,
            }
        }
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
        claims: experiment
            .claims
            .map(|check| check(&runs))
            .unwrap_or_default(),
        runs,
    };
    let render = |out: &mut dyn std::io::Write| -> std::io::Result<()> {
        match args.format {
            StatsFormat::Table => {
                writeln!(out, "{} on {}", experiment.name, report.device.adapter)?;
                gradstab::report::run::table(&mut &mut *out, &report)
            }
            StatsFormat::Csv => {
                gradstab::report::run::csv(&mut &mut *out, &report).map_err(std::io::Error::other)
            }
            StatsFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?
            ),
        }
    };
    // The plot first: a reader of standard output that goes away ends the process.
    if let Some(path) = &args.plot {
        gradstab::report::plot::svg(&report, path)?;
    }
    super::args::write_output(args.out.as_deref(), render)?;
    Ok(ExitCode::SUCCESS)
}
