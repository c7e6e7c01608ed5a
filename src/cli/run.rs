//! `gradstab run`: its arguments, turned into the library's `RunOptions`, and the report.

use std::process::ExitCode;

use gradstab::api::run::{run_experiment, RunOptions};
use gradstab::api::BackendChoice;
use gradstab::experiment::Experiment;
use gradstab::init::{Init, InputInit};
use gradstab::network::Loss;
use gradstab::Activation;

use super::args::{
    at_least_one, backend_parser, depth_range, parse_bias_std, parse_positive, parse_precisions,
    parse_widths, parse_with, AdapterArg, Bar, Fp8Args, MemorySize, PrecisionList, StatsFormat,
    Widths, YesNo,
};

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// A preset from `gradstab presets`; the other flags override it.
    #[arg(long)]
    preset: Option<String>,
    /// Layers, 1 to 1,000,000 (default 20).
    #[arg(long, value_parser = depth_range(), allow_negative_numbers = true)]
    depth: Option<usize>,
    /// One width, or depth + 1 comma-separated widths, input first (default 256).
    #[arg(long, value_parser = parse_widths, allow_hyphen_values = true)]
    width: Option<Widths>,
    /// The batch (default 64).
    #[arg(long, value_parser = at_least_one(), allow_negative_numbers = true)]
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
    #[arg(long, value_parser = parse_bias_std, allow_negative_numbers = true)]
    bias_std: Option<f64>,
    /// h^t = h^{t−1} + act(W^t h^{t−1}) (widths must match).
    #[arg(long)]
    residual: bool,
    /// Whether the activation follows the last layer too (default yes, h^t = act(W^t h^{t−1})
    /// at every layer; no with --loss cross-entropy, whose input is logits).
    #[arg(long, value_enum)]
    output_activation: Option<YesNo>,
    /// probe (∂l/∂h^d ~ N(0, 1)), sum, mse (float y from --data, or drawn) or cross-entropy
    /// (integer labels y [N] from --data; alias cross_entropy)
    #[arg(long, value_parser = parse_with::<Loss>)]
    loss: Option<Loss>,
    /// Clip the weight gradients to this global norm (clip_grad_norm_).
    #[arg(long, value_parser = parse_positive, conflicts_with = "clip_value", allow_negative_numbers = true)]
    clip_norm: Option<f64>,
    /// Clamp the weight gradients to ±this (clip_grad_value_).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    clip_value: Option<f64>,
    /// Comma list of f32, f16, f16acc32, bf16, bf16acc32, fp8 (docs/formats.md).
    #[arg(long, value_parser = parse_precisions)]
    precision: Option<PrecisionList>,
    #[command(flatten)]
    fp8: Fp8Args,
    /// gpu or cpu; default (auto): the GPU, or the CPU with a notice when there is no adapter.
    #[arg(long, value_parser = backend_parser())]
    backend: Option<BackendChoice>,
    #[command(flatten)]
    adapter: AdapterArg,
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Start from the weights of a PyTorch nn.Sequential of nn.Linear layers, as
    /// safetensors.torch.save_file(model.state_dict(), FILE) writes them; depth and widths
    /// come from the file.
    #[arg(long, value_name = "FILE.safetensors",
          conflicts_with_all = ["preset", "depth", "width", "init", "bias_std"])]
    weights: Option<std::path::PathBuf>,
    /// The input batch x [N, inputs] (and y: for --loss mse the targets [N, outputs], for
    /// --loss cross-entropy integer labels [N]; the other losses ignore y) from a
    /// .safetensors or .npz file; the batch size comes from the file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["preset", "batch", "input"])]
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

impl RunArgs {
    /// The library's options: the flags as given, with no default filled in.
    pub(crate) fn options(&self) -> RunOptions {
        RunOptions {
            preset: self.preset.clone(),
            depth: self.depth,
            widths: self.width.clone().map(|Widths(w)| w),
            batch: self.batch,
            activation: self.activation,
            init: self.init,
            input: self.input,
            bias_std: self.bias_std,
            residual: self.residual,
            output_activation: self.output_activation.map(|y| y == YesNo::Yes),
            loss: self.loss,
            clip_norm: self.clip_norm,
            clip_value: self.clip_value,
            precisions: self.precision.clone().map(|PrecisionList(p)| p),
            fp8_scaling: self.fp8.fp8_scaling.clone(),
            fp8_history: self.fp8.fp8_history,
            fp8_margin: self.fp8.fp8_margin,
            seed: self.seed,
            weights: self.weights.clone(),
            data: self.data.clone(),
            max_memory: self.max_memory.map(|MemorySize(b)| b),
        }
    }

    /// Where the output and the plot go, checked before the run: each can be written, the
    /// plot is an SVG, and neither overwrites the other or an input.
    pub(crate) fn check_destinations(&self) -> anyhow::Result<()> {
        let inputs = super::args::given([("--weights", &self.weights), ("--data", &self.data)]);
        let mut outputs = super::args::given([("--out", &self.out), ("--plot", &self.plot)]);
        // Without --out the report goes to standard output, which no other output may share.
        if self.out.is_none() {
            outputs.insert(0, ("the report (without --out)", std::path::Path::new("-")));
        }
        gradstab::output::check_outputs(&inputs, &outputs, |flag| {
            (flag == "--plot").then_some("svg")
        })?;
        Ok(())
    }
}

pub(crate) fn run_network(args: &RunArgs, experiment: Experiment) -> anyhow::Result<ExitCode> {
    let device = args.adapter.open(args.backend)?;
    let bar = Bar::new(args.quiet, "layers");
    let report = run_experiment(&device, &experiment, args.preset.clone(), &mut |p| {
        bar.show(p)
    })?;
    bar.finish();
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
