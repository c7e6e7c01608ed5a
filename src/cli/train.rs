//! `gradstab train`: its arguments, the runs they describe, and training them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use gradstab::init::Init;
use gradstab::network::{Clip, NetworkConfig};
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::presets::{self, TrainPreset};
use gradstab::train::{self, DynamicScaling, LossScale, Task, TrainConfig, TrainReport};
use gradstab::{Activation, Backend, Cpu, Precision};

use super::args::{gpu_or_cpu_notice, parse_with, AdapterArg, BackendChoice, Fp8Args, StatsFormat};
use super::run::{
    parse_count, parse_depth, parse_positive, parse_precisions, parse_seed, parse_whole,
    parse_widths, MemorySize, PrecisionList, Widths,
};

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub(crate) enum YesNo {
    Yes,
    No,
}

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub(crate) enum TaskChoice {
    Teacher,
    Classify,
}

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// lr-sensitivity, vanishing-train, loss-scaling, remedies, bf16-stagnation or fp8-scaling;
    /// --steps, --seed and --record-every apply to it, and the model, data and optimizer flags
    /// are refused.
    #[arg(long)]
    preset: Option<String>,
    /// Layers, 1 to 1,000,000 (default 8).
    #[arg(long, value_parser = parse_depth, allow_hyphen_values = true)]
    depth: Option<usize>,
    /// One width, or depth + 1 comma-separated widths, input first (default 64).
    #[arg(long, value_parser = parse_widths, allow_hyphen_values = true)]
    width: Option<Widths>,
    /// relu (default), tanh, sigmoid, scaled_sigmoid, leaky_relu[:SLOPE], linear[:A,B].
    #[arg(long, value_parser = parse_with::<Activation>)]
    activation: Option<Activation>,
    /// The weights' initialiser, as in `gradstab run` (default kaiming_normal).
    #[arg(long, value_parser = parse_with::<Init>)]
    init: Option<Init>,
    /// Biases in every layer, drawn as nn.Linear draws them: U(−1/√fan_in, 1/√fan_in).
    #[arg(long)]
    bias: bool,
    /// h^t = h^{t−1} + act(W^t h^{t−1}) (widths must match).
    #[arg(long)]
    residual: bool,
    /// Whether the activation follows the last layer too (default no: a linear head).
    #[arg(long, value_enum)]
    output_activation: Option<YesNo>,
    /// The seed of the weights, the data and the shuffling (default 0).
    #[arg(long, value_parser = parse_seed, allow_hyphen_values = true)]
    seed: Option<u64>,
    /// Start from a PyTorch nn.Sequential state dict (safetensors); depth, widths and
    /// biases come from the file.
    #[arg(long, value_name = "FILE.safetensors")]
    weights: Option<PathBuf>,
    /// Write the trained weights as a state dict that model.load_state_dict takes (one
    /// learning rate and precision only).
    #[arg(long, value_name = "FILE.safetensors")]
    save_weights: Option<PathBuf>,
    /// teacher (MSE against a random teacher MLP, the default) or classify (cross-entropy on
    /// the teacher's argmax).
    #[arg(long, value_enum)]
    task: Option<TaskChoice>,
    /// The teacher's depth (default 2).
    #[arg(long, value_parser = parse_depth, allow_hyphen_values = true)]
    teacher_depth: Option<usize>,
    /// The teacher's hidden width (default: the network's).
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    teacher_width: Option<usize>,
    /// Samples in the built-in task's data set (default 256).
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    samples: Option<usize>,
    /// Train on x and y of a .safetensors or .npz file: y [N, outputs] floats for MSE, or
    /// [N] integer labels for cross-entropy.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Minibatch size; without it, the whole data set is one batch.
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    batch: Option<usize>,
    /// A fresh order of the samples each epoch, drawn from the seed.
    #[arg(long)]
    shuffle: bool,
    /// Optimizer steps (default 100).
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    steps: Option<usize>,
    /// Keep the full statistics of every layer every K steps (and at the first and last).
    #[arg(long, value_name = "K", value_parser = parse_whole, allow_hyphen_values = true)]
    record_every: Option<usize>,
    /// sgd (default), adam or adamw, with torch.optim's update rules and defaults.
    #[arg(long, value_parser = parse_with::<OptimizerKind>)]
    optimizer: Option<OptimizerKind>,
    /// One learning rate or a comma list, one run each (default 0.01 for sgd, 0.001 for adam).
    #[arg(long, value_parser = parse_rates, allow_hyphen_values = true)]
    lr: Option<Rates>,
    /// SGD's momentum.
    #[arg(long, allow_hyphen_values = true)]
    momentum: Option<f64>,
    /// SGD's Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// L2 penalty (sgd, adam) or decoupled decay (adamw; default 0.01 there).
    #[arg(long, allow_hyphen_values = true)]
    weight_decay: Option<f64>,
    /// Adam's β1,β2 (default 0.9,0.999).
    #[arg(long, value_parser = parse_betas, allow_hyphen_values = true)]
    betas: Option<(f64, f64)>,
    /// Adam's eps (default 1e-8).
    #[arg(long, allow_hyphen_values = true)]
    eps: Option<f64>,
    /// f32, f16 (model.half()), f16acc32 (mixed precision), bf16 (model.bfloat16()),
    /// bf16acc32 (bf16 autocast) or fp8 (Transformer Engine's recipe), or a comma list.
    #[arg(long, value_parser = parse_precisions)]
    precision: Option<PrecisionList>,
    #[command(flatten)]
    fp8: Fp8Args,
    /// none (default), static:S, or dynamic (torch.amp.GradScaler).
    #[arg(long, value_parser = parse_with::<LossScale>, allow_hyphen_values = true)]
    loss_scale: Option<LossScale>,
    /// GradScaler's init_scale (default 65536).
    #[arg(long, value_parser = parse_positive, allow_hyphen_values = true)]
    init_scale: Option<f64>,
    /// GradScaler's growth_factor (default 2).
    #[arg(long, value_parser = parse_positive, allow_hyphen_values = true)]
    growth_factor: Option<f64>,
    /// GradScaler's backoff_factor (default 0.5).
    #[arg(long, value_parser = parse_positive, allow_hyphen_values = true)]
    backoff_factor: Option<f64>,
    /// GradScaler's growth_interval (default 2000).
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    growth_interval: Option<usize>,
    /// clip_grad_norm_ of the unscaled gradients (weights and biases together).
    #[arg(long, value_parser = parse_positive, conflicts_with = "clip_value", allow_hyphen_values = true)]
    clip_norm: Option<f64>,
    /// clip_grad_value_ of the unscaled gradients.
    #[arg(long, value_parser = parse_positive, allow_hyphen_values = true)]
    clip_value: Option<f64>,
    /// gpu or cpu; default: the GPU, or the CPU with a notice when there is no adapter.
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    #[command(flatten)]
    adapter: AdapterArg,
    #[arg(long, value_enum, default_value = "table")]
    format: StatsFormat,
    /// Write the output here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw the loss curves of every run to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Draw a layer × step heat map of log10 ‖ΔW‖/‖W‖ per run to this SVG file.
    #[arg(long)]
    heatmap: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Refuse a run that needs more host or device memory than this (512M, 8G, …).
    #[arg(long, value_name = "SIZE", value_parser = parse_with::<MemorySize>, allow_hyphen_values = true)]
    max_memory: Option<MemorySize>,
}

#[derive(Clone, Debug)]
pub(crate) struct Rates(Vec<f64>);

fn parse_rates(s: &str) -> Result<Rates, String> {
    let rates: Result<Vec<f64>, _> = s.split(',').map(|r| r.trim().parse::<f64>()).collect();
    match rates {
        Ok(r) if !r.is_empty() && r.iter().all(|v| *v >= 0.0 && v.is_finite()) => Ok(Rates(r)),
        _ => Err("expected finite numbers ≥ 0 separated by commas".into()),
    }
}

fn parse_betas(s: &str) -> Result<(f64, f64), String> {
    let parts: Vec<&str> = s.split(',').collect();
    let bad = || "expected two numbers in [0, 1), as 0.9,0.999".to_string();
    if parts.len() != 2 {
        return Err(bad());
    }
    let b1: f64 = parts[0].trim().parse().map_err(|_| bad())?;
    let b2: f64 = parts[1].trim().parse().map_err(|_| bad())?;
    if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) {
        Ok((b1, b2))
    } else {
        Err(bad())
    }
}

/// The runs `args` ask for: a preset's, or one per learning rate and precision.
pub(crate) fn runs_of(args: &TrainArgs) -> anyhow::Result<TrainPreset> {
    if let Some(name) = &args.preset {
        let model_flags = [
            ("--depth", args.depth.is_some()),
            ("--width", args.width.is_some()),
            ("--activation", args.activation.is_some()),
            ("--init", args.init.is_some()),
            ("--bias", args.bias),
            ("--residual", args.residual),
            ("--output-activation", args.output_activation.is_some()),
            ("--weights", args.weights.is_some()),
            ("--save-weights", args.save_weights.is_some()),
            ("--task", args.task.is_some()),
            ("--data", args.data.is_some()),
            ("--batch", args.batch.is_some()),
            ("--samples", args.samples.is_some()),
            ("--optimizer", args.optimizer.is_some()),
            ("--lr", args.lr.is_some()),
            ("--momentum", args.momentum.is_some()),
            ("--weight-decay", args.weight_decay.is_some()),
            ("--precision", args.precision.is_some()),
            ("--loss-scale", args.loss_scale.is_some()),
            ("--clip-norm", args.clip_norm.is_some()),
            ("--clip-value", args.clip_value.is_some()),
            ("--nesterov", args.nesterov),
            ("--betas", args.betas.is_some()),
            ("--eps", args.eps.is_some()),
            ("--init-scale", args.init_scale.is_some()),
            ("--growth-factor", args.growth_factor.is_some()),
            ("--backoff-factor", args.backoff_factor.is_some()),
            ("--growth-interval", args.growth_interval.is_some()),
            ("--shuffle", args.shuffle),
            ("--teacher-depth", args.teacher_depth.is_some()),
            ("--teacher-width", args.teacher_width.is_some()),
            (
                "--fp8-scaling, --fp8-history and --fp8-margin",
                args.fp8.given(),
            ),
        ];
        if let Some((flag, _)) = model_flags.iter().find(|(_, set)| *set) {
            anyhow::bail!(
                "{flag} cannot be used with --preset, whose runs fix it; --steps, --seed and \
                 --record-every apply to a preset"
            );
        }
        let mut preset = presets::preset(name)?;
        for (_, config) in &mut preset.runs {
            if let Some(steps) = args.steps {
                config.steps = steps;
            }
            if let Some(seed) = args.seed {
                config.network.seed = seed;
            }
            if let Some(k) = args.record_every {
                config.record_every = k;
            }
            config.network.max_memory_bytes = args.max_memory.map(|MemorySize(b)| b);
            config.validate()?;
        }
        return Ok(preset);
    }
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
            ("--depth", args.depth.is_some()),
            ("--width", args.width.is_some()),
            ("--init", args.init.is_some()),
            ("--bias", args.bias),
        ],
    )?;
    conflicts(
        "--data",
        args.data.is_some(),
        &[
            ("--task", args.task.is_some()),
            ("--samples", args.samples.is_some()),
            ("--teacher-depth", args.teacher_depth.is_some()),
            ("--teacher-width", args.teacher_width.is_some()),
        ],
    )?;
    let depth = args.depth.unwrap_or(8);
    let mut network = NetworkConfig {
        output_activation: args.output_activation == Some(YesNo::Yes),
        linear_bias: args.bias,
        residual: args.residual,
        seed: args.seed.unwrap_or(0),
        max_memory_bytes: args.max_memory.map(|MemorySize(b)| b),
        ..NetworkConfig::new(depth, 64, 1)
    };
    if let Some(Widths(w)) = &args.width {
        network = network.with_widths(w)?;
    }
    if let Some(a) = args.activation {
        network.activation = a;
    }
    if let Some(i) = args.init {
        network.init = i;
    }
    network.clip = match (args.clip_norm, args.clip_value) {
        (Some(n), _) => Some(Clip::Norm(n)),
        (_, Some(v)) => Some(Clip::Value(v)),
        _ => None,
    };
    let data = args
        .data
        .as_deref()
        .map(train::data::load_train_data)
        .transpose()?
        .map(Arc::new);
    if let Some(path) = &args.weights {
        network = network.with_given_parameters(gradstab::network::load_parameters(path)?);
    } else if let (Some(data), None) = (&data, &args.width) {
        // Without --weights or --width, the file decides the input and output widths.
        network.widths[0] = data.x.shape().cols;
        network.widths[depth] = match &data.targets {
            train::Targets::Values(y) => y.shape().cols,
            train::Targets::Labels(l) => classes_of(l, &data_source(args))?,
        };
    }
    let d = network.depth;
    let task = match (&data, args.task) {
        (Some(data), _) => Task::File {
            source: args
                .data
                .as_ref()
                .expect("data came from --data")
                .display()
                .to_string(),
            data: Arc::clone(data),
        },
        (None, task) => {
            let depth = args.teacher_depth.unwrap_or(2);
            let width = args.teacher_width.unwrap_or(network.widths[d / 2]);
            match task {
                Some(TaskChoice::Classify) => Task::Classify { depth, width },
                _ => Task::Teacher { depth, width },
            }
        }
    };
    let samples = data
        .as_ref()
        .map_or(args.samples.unwrap_or(256), |d| d.samples());
    network.batch = args.batch.unwrap_or(samples);
    let kind = args.optimizer.unwrap_or(OptimizerKind::Sgd);
    if kind == OptimizerKind::Sgd && (args.betas.is_some() || args.eps.is_some()) {
        anyhow::bail!("--betas and --eps are Adam's and AdamW's; sgd has --momentum");
    }
    let mut optimizer = OptimizerConfig::new(kind);
    if let Some(m) = args.momentum {
        optimizer.momentum = m;
    }
    optimizer.nesterov = args.nesterov;
    if let Some(w) = args.weight_decay {
        optimizer.weight_decay = w;
    }
    if let Some(b) = args.betas {
        optimizer.betas = b;
    }
    if let Some(e) = args.eps {
        optimizer.eps = e;
    }
    let scaler_flags = [
        ("--init-scale", args.init_scale.is_some()),
        ("--growth-factor", args.growth_factor.is_some()),
        ("--backoff-factor", args.backoff_factor.is_some()),
        ("--growth-interval", args.growth_interval.is_some()),
    ];
    let loss_scale = match args.loss_scale.unwrap_or(LossScale::None) {
        LossScale::Dynamic(d) => LossScale::Dynamic(DynamicScaling {
            init_scale: args.init_scale.unwrap_or(d.init_scale),
            growth_factor: args.growth_factor.unwrap_or(d.growth_factor),
            backoff_factor: args.backoff_factor.unwrap_or(d.backoff_factor),
            growth_interval: args.growth_interval.map_or(d.growth_interval, |n| n as u64),
        }),
        other => {
            if let Some((flag, _)) = scaler_flags.iter().find(|(_, set)| *set) {
                anyhow::bail!("{flag} sets dynamic loss scaling; add --loss-scale dynamic");
            }
            other
        }
    };
    let rates = match &args.lr {
        Some(Rates(r)) => r.clone(),
        None if kind == OptimizerKind::Sgd => vec![0.01],
        None => vec![0.001],
    };
    let precisions = match &args.precision {
        Some(PrecisionList(p)) => p.clone(),
        None => vec![Precision::F32],
    };
    if args.save_weights.is_some() && rates.len() * precisions.len() > 1 {
        anyhow::bail!(
            "--save-weights writes one model: give one --lr and one --precision, not {} runs",
            rates.len() * precisions.len()
        );
    }
    if let Some(scaling) = args.fp8.scaling(&precisions)? {
        network.fp8_scaling = scaling;
    }
    let mut runs = Vec::new();
    for &precision in &precisions {
        for &lr in &rates {
            let config = TrainConfig {
                network: network.clone(),
                task: task.clone(),
                samples,
                shuffle: args.shuffle,
                steps: args.steps.unwrap_or(100),
                record_every: args.record_every.unwrap_or(0),
                optimizer,
                lr,
                precision,
                loss_scale,
            };
            config.validate()?;
            // Every label names what its run does differently, the loss scale included.
            let scaled = match loss_scale {
                LossScale::None => String::new(),
                scale => format!(" loss-scale={scale}"),
            };
            runs.push((format!("{precision} {kind} lr={lr}{scaled}"), config));
        }
    }
    Ok(TrainPreset {
        name: "custom",
        conclusion: "",
        runs,
    })
}

fn data_source(args: &TrainArgs) -> String {
    args.data
        .as_ref()
        .map_or_else(String::new, |p| p.display().to_string())
}

/// The classes of labels when the file decides the model's outputs: 0 to the largest label,
/// each of which occurs. A gap (labels 0 to 3 and one 100) is far more often a mistake in the
/// data than 97 classes without a sample; `--width` asks for such outputs explicitly.
fn classes_of(labels: &[u32], source: &str) -> anyhow::Result<usize> {
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut seen = vec![false; classes];
    for &l in labels {
        seen[l as usize] = true;
    }
    let present = seen.iter().filter(|&&s| s).count();
    if present < classes {
        // The data's problem, not the command line's: exit 1, as for any malformed input.
        return Err(gradstab::Error::File {
            path: source.to_string(),
            problem: format!(
                "the labels run from 0 to {} but only {present} of those {classes} classes \
                 occur; relabel them 0 to {}, or give --width with {classes} outputs to train \
                 {classes} classes anyway",
                classes - 1,
                present.max(1) - 1
            ),
            source: None,
        }
        .into());
    }
    Ok(classes)
}

/// Where the outputs go, checked before anything runs: writable, SVG where a plot, none the
/// same file as another or as an input.
pub(crate) fn check_destinations(args: &TrainArgs) -> anyhow::Result<()> {
    let inputs = super::args::given([("--weights", &args.weights), ("--data", &args.data)]);
    let mut outputs = super::args::given([
        ("--out", &args.out),
        ("--plot", &args.plot),
        ("--heatmap", &args.heatmap),
        ("--save-weights", &args.save_weights),
    ]);
    // Without --out the report goes to standard output, which no other output may share.
    if args.out.is_none() {
        outputs.insert(0, ("the report (without --out)", std::path::Path::new("-")));
    }
    gradstab::output::check_outputs(&inputs, &outputs, |flag| match flag {
        "--plot" | "--heatmap" => Some("svg"),
        "--save-weights" => Some("safetensors"),
        _ => None,
    })?;
    Ok(())
}

fn train_all<B: Backend>(
    backend: &B,
    preset: &TrainPreset,
    args: &TrainArgs,
) -> anyhow::Result<(Vec<train::TrainRun>, Option<train::FinalWeights>)> {
    // Every run is checked before the first starts.
    for (_, config) in &preset.runs {
        train::check(backend, config)?;
    }
    let total: usize = preset.runs.iter().map(|(_, c)| c.steps).sum();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        )
    };
    let mut runs = Vec::new();
    let mut weights = None;
    let mut done = 0;
    for (label, config) in &preset.runs {
        bar.set_message(label.clone());
        let outcome = train::run_training(
            backend,
            config,
            label,
            args.save_weights.is_some(),
            &mut |step| bar.set_position((done + step) as u64),
        )?;
        done += config.steps;
        weights = outcome.weights;
        runs.push(outcome.run);
    }
    bar.finish_and_clear();
    Ok((runs, weights))
}

pub(crate) fn train_command(args: &TrainArgs, preset: TrainPreset) -> anyhow::Result<ExitCode> {
    let gpu = gpu_or_cpu_notice(&args.adapter, args.backend)?;
    let ((runs, weights), device) = match &gpu {
        Some(gpu) => (train_all(gpu, &preset, args)?, gpu.info()),
        None => (train_all(&Cpu, &preset, args)?, Cpu.info()),
    };
    let report = TrainReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        preset: args.preset.clone(),
        conclusion: (!preset.conclusion.is_empty()).then(|| preset.conclusion.to_string()),
        claims: presets::verify(preset.name, &runs),
        device,
        runs,
    };
    let render = |out: &mut dyn Write| -> std::io::Result<()> {
        match args.format {
            StatsFormat::Table => gradstab::report::train::table(&mut &mut *out, &report),
            StatsFormat::Csv => {
                gradstab::report::train::csv(&mut &mut *out, &report).map_err(std::io::Error::other)
            }
            StatsFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?
            ),
        }
    };
    // Files first, the report last: a reader of standard output that goes away (`| head -1`)
    // ends the process at its next write, and must not take the trained model with it.
    if let Some(path) = &args.plot {
        gradstab::report::train_plot::loss_curves(&report, path)?;
    }
    if let Some(path) = &args.heatmap {
        gradstab::report::train_plot::update_heat_map(&report, path)?;
    }
    let mut refused_weights = None;
    if let (Some(path), Some(weights)) = (&args.save_weights, &weights) {
        // A diverged model is not written: its weights are inf or NaN, and a file of them
        // would only carry the failure on to whoever loads it. The report still says what
        // happened, and the exit code says the model was not saved.
        match report.runs.last().and_then(|r| r.summary.diverged_at) {
            Some(step) => refused_weights = Some((path, step)),
            None => train::weights::save(weights, path)?,
        }
    }
    super::args::write_output(args.out.as_deref(), render)?;
    if let Some((path, step)) = refused_weights {
        anyhow::bail!(
            "--save-weights {}: not written, the run diverged (loss inf or NaN) at step {step}",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
