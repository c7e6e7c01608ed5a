//! `gradstab train`: its arguments, turned into the library's `TrainOptions`, and the report.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use gradstab::api::plan::{train_plan, TrainPlan};
use gradstab::api::train::{TaskKind, TrainOptions};
use gradstab::api::BackendChoice;
use gradstab::init::Init;
use gradstab::ops::optimizer::OptimizerKind;
use gradstab::train::{LossScale, LrSchedule};
use gradstab::Activation;

use super::args::{
    at_least_one, backend_parser, depth_range, parse_bias_std, parse_positive, parse_precisions,
    parse_widths, parse_with, AdapterArg, Bar, Fp8Args, MemorySize, PrecisionList, StatsFormat,
    Widths, YesNo,
};

/// The flags a preset fixes: each is refused with --preset.
const PRESET_FIXES: [&str; 42] = [
    "depth",
    "width",
    "outputs",
    "activation",
    "init",
    "bias",
    "bias_std",
    "residual",
    "output_activation",
    "weights",
    "save_weights",
    "task",
    "data",
    "batch",
    "samples",
    "optimizer",
    "lr",
    "lr_schedule",
    "momentum",
    "weight_decay",
    "precision",
    "loss_scale",
    "clip_norm",
    "clip_value",
    "nesterov",
    "betas",
    "eps",
    "init_scale",
    "growth_factor",
    "backoff_factor",
    "growth_interval",
    "shuffle",
    "drop_last",
    "epochs",
    "teacher_depth",
    "teacher_width",
    "fp8_scaling",
    "fp8_history",
    "fp8_margin",
    "val_data",
    "val_split",
    "eval_every",
];

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// lr-sensitivity, vanishing-train, loss-scaling, remedies, bf16-stagnation or fp8-scaling;
    /// --steps, --seed and --record-every apply to it, and the model, data and optimizer flags
    /// are refused.
    #[arg(long, conflicts_with_all = PRESET_FIXES)]
    preset: Option<String>,
    /// Layers, 1 to 1,000,000 (default 8).
    #[arg(long, value_parser = depth_range(), allow_negative_numbers = true)]
    depth: Option<usize>,
    /// One width, or depth + 1 comma-separated widths, input first (default 64).
    #[arg(long, value_parser = parse_widths, allow_hyphen_values = true)]
    width: Option<Widths>,
    /// The last layer's width, the others --width's: the classes of --task classify, the
    /// targets of --task teacher (default: --width).
    #[arg(long, value_parser = at_least_one(), allow_negative_numbers = true)]
    outputs: Option<usize>,
    /// relu (default), tanh, sigmoid, scaled_sigmoid, leaky_relu[:SLOPE], linear[:A,B].
    #[arg(long, value_parser = parse_with::<Activation>)]
    activation: Option<Activation>,
    /// The weights' initialiser, as in `gradstab run` (default kaiming_normal).
    #[arg(long, value_parser = parse_with::<Init>)]
    init: Option<Init>,
    /// Biases in every layer, drawn as nn.Linear draws them: U(−1/√fan_in, 1/√fan_in).
    #[arg(long)]
    bias: bool,
    /// Biases in every layer drawn from N(0, σ_b²), σ_b this (as `gradstab run`'s); not with
    /// --bias.
    #[arg(long, value_parser = parse_bias_std, allow_negative_numbers = true, conflicts_with = "bias")]
    bias_std: Option<f64>,
    /// h^t = h^{t−1} + act(W^t h^{t−1}) (widths must match).
    #[arg(long)]
    residual: bool,
    /// Whether the activation follows the last layer too (default no: a linear head).
    #[arg(long, value_enum)]
    output_activation: Option<YesNo>,
    /// The seed of the weights, the data and the shuffling (default 0).
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Start from a PyTorch nn.Sequential state dict (safetensors); depth, widths and
    /// biases come from the file.
    #[arg(long, value_name = "FILE.safetensors",
          conflicts_with_all = ["depth", "width", "outputs", "init", "bias", "bias_std"])]
    weights: Option<PathBuf>,
    /// Write the trained weights as a state dict that model.load_state_dict takes (one
    /// learning rate and precision only).
    #[arg(long, value_name = "FILE.safetensors")]
    save_weights: Option<PathBuf>,
    /// teacher (MSE against a random teacher MLP, the default) or classify (cross-entropy on
    /// the teacher's argmax).
    #[arg(long, value_parser = parse_with::<TaskKind>)]
    task: Option<TaskKind>,
    /// The teacher's depth (default 2).
    #[arg(long, value_parser = depth_range(), allow_negative_numbers = true)]
    teacher_depth: Option<usize>,
    /// The teacher's hidden width (default: the network's).
    #[arg(long, value_parser = at_least_one(), allow_negative_numbers = true)]
    teacher_width: Option<usize>,
    /// Samples in the built-in task's data set (default 256).
    #[arg(long, value_parser = at_least_one(), allow_negative_numbers = true)]
    samples: Option<usize>,
    /// Train on x and y of a .safetensors or .npz file: y [N, outputs] floats for MSE, or
    /// [N] integer labels for cross-entropy.
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["task", "samples", "teacher_depth", "teacher_width"])]
    data: Option<PathBuf>,
    /// A validation set: x and y of a file as --data's, with the same inputs and the same
    /// kind of targets; evaluated after the last step (and every --eval-every steps).
    // Not clap's `requires = "data"`: a --resume reads the data from the path the run had,
    // and takes --val-data alone; TrainOptions refuses it without --data otherwise.
    #[arg(long, value_name = "FILE", conflicts_with = "val_split")]
    val_data: Option<PathBuf>,
    /// Hold out ceil(F·N) of the samples (0 < F < 1) as the validation set, drawn from the
    /// seed (not the shuffle) and stratified by class for integer labels; the rest trains.
    #[arg(long, value_name = "F", value_parser = parse_fraction, allow_negative_numbers = true)]
    val_split: Option<f64>,
    /// Evaluate the loss (and accuracy for labels) over the whole training set and the
    /// validation set after every K steps' update and after the last; default: after the last
    /// step only, where --val-data or --val-split gives a validation set.
    #[arg(long, value_name = "K", value_parser = at_least_one(), allow_negative_numbers = true)]
    eval_every: Option<usize>,
    /// Minibatch size; without it, the whole data set (less a --val-split) is one batch.
    #[arg(long, value_parser = at_least_one(), allow_negative_numbers = true)]
    batch: Option<usize>,
    /// A fresh order of the samples each epoch, drawn from the seed.
    #[arg(long)]
    shuffle: bool,
    /// Leave out each epoch's short last batch (DataLoader's drop_last=True); without it, an
    /// epoch ends with a batch of the remaining samples.
    #[arg(long)]
    drop_last: bool,
    /// Optimizer steps (default 100), taken epoch after epoch.
    #[arg(long, value_parser = at_least_one(), allow_negative_numbers = true)]
    steps: Option<usize>,
    /// Passes over the data, instead of --steps: each ceil(samples / batch) steps, or floor
    /// with --drop-last.
    #[arg(long, value_name = "E", value_parser = at_least_one(), allow_negative_numbers = true,
          conflicts_with = "steps")]
    epochs: Option<usize>,
    /// Keep the full statistics of every layer every K steps (and at the first and last).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    record_every: Option<usize>,
    /// sgd (default), adam or adamw, with torch.optim's update rules and defaults.
    #[arg(long, value_parser = parse_with::<OptimizerKind>)]
    optimizer: Option<OptimizerKind>,
    /// One learning rate or a comma list, one run each (default 0.01 for sgd, 0.001 for adam).
    #[arg(long, value_parser = parse_rates, allow_hyphen_values = true)]
    lr: Option<Rates>,
    /// torch.optim.lr_scheduler's rates from each --lr, stepped once per step:
    /// step:STEP_SIZE[:GAMMA] (StepLR, gamma 0.1), cosine[:T_MAX[:ETA_MIN]]
    /// (CosineAnnealingLR, T_MAX the steps it runs for, eta_min 0),
    /// linear[:START[:END[:ITERS]]] (LinearLR, 1/3, 1, 5), or a comma list, each after the
    /// first from its step @N (SequentialLR): linear:0.1:1:10,cosine@10.
    #[arg(long, value_name = "SPEC", value_parser = parse_with::<LrSchedule>)]
    lr_schedule: Option<LrSchedule>,
    /// SGD's momentum.
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f64>,
    /// SGD's Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// L2 penalty (sgd, adam) or decoupled decay (adamw; default 0.01 there).
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Adam's β1,β2 (default 0.9,0.999).
    #[arg(long, value_parser = parse_betas, allow_hyphen_values = true)]
    betas: Option<(f64, f64)>,
    /// Adam's eps (default 1e-8).
    #[arg(long, allow_negative_numbers = true)]
    eps: Option<f64>,
    /// f32, f16 (model.half()), f16acc32 (mixed precision), bf16 (model.bfloat16()),
    /// bf16acc32 (bf16 autocast) or fp8 (Transformer Engine's recipe), or a comma list.
    #[arg(long, value_parser = parse_precisions)]
    precision: Option<PrecisionList>,
    #[command(flatten)]
    fp8: Fp8Args,
    /// none (default), static:S, or dynamic (torch.amp.GradScaler).
    #[arg(long, value_parser = parse_with::<LossScale>, allow_negative_numbers = true)]
    loss_scale: Option<LossScale>,
    /// GradScaler's init_scale (default 65536).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    init_scale: Option<f64>,
    /// GradScaler's growth_factor (default 2).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    growth_factor: Option<f64>,
    /// GradScaler's backoff_factor (default 0.5).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    backoff_factor: Option<f64>,
    /// GradScaler's growth_interval (default 2000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    growth_interval: Option<u64>,
    /// clip_grad_norm_ of the unscaled gradients (weights and biases together).
    #[arg(long, value_parser = parse_positive, conflicts_with = "clip_value", allow_negative_numbers = true)]
    clip_norm: Option<f64>,
    /// clip_grad_value_ of the unscaled gradients.
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    clip_value: Option<f64>,
    /// gpu or cpu; default: the GPU, or the CPU with a notice when there is no adapter.
    #[arg(long, value_parser = backend_parser())]
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
    /// Write a checkpoint of the run to this file at its end: the weights, the optimizer's
    /// and the loss scaler's state, the data order and every step's record, from which
    /// --resume goes on bit for bit (one run only).
    #[arg(long, value_name = "FILE.safetensors")]
    checkpoint: Option<PathBuf>,
    /// Also write the checkpoint every K steps (the same file, replaced whole each time).
    #[arg(long, value_name = "K", requires = "checkpoint", value_parser = at_least_one(),
          allow_negative_numbers = true)]
    checkpoint_every: Option<usize>,
    /// Go on from a checkpoint with its configuration; --steps or --epochs give a new total,
    /// and a flag that contradicts the checkpoint is refused.
    #[arg(long, value_name = "FILE.safetensors", conflicts_with = "preset")]
    resume: Option<PathBuf>,
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

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f < 1.0 => Ok(f),
        _ => Err("expected a fraction strictly between 0 and 1, as 0.25".into()),
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

impl TrainArgs {
    /// The library's options: the flags as given, with no default filled in.
    pub(crate) fn options(&self) -> TrainOptions {
        TrainOptions {
            preset: self.preset.clone(),
            depth: self.depth,
            widths: self.width.clone().map(|Widths(w)| w),
            outputs: self.outputs,
            activation: self.activation,
            init: self.init,
            bias: self.bias,
            bias_std: self.bias_std,
            residual: self.residual,
            output_activation: self.output_activation.map(|y| y == YesNo::Yes),
            seed: self.seed,
            weights: self.weights.clone(),
            save_weights: self.save_weights.clone(),
            task: self.task,
            teacher_depth: self.teacher_depth,
            teacher_width: self.teacher_width,
            samples: self.samples,
            data: self.data.clone(),
            batch: self.batch,
            shuffle: self.shuffle,
            drop_last: self.drop_last,
            steps: self.steps,
            epochs: self.epochs,
            record_every: self.record_every,
            optimizer: self.optimizer,
            lr: self.lr.clone().map(|Rates(r)| r),
            lr_schedule: self.lr_schedule.clone(),
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            betas: self.betas,
            eps: self.eps,
            precisions: self.precision.clone().map(|PrecisionList(p)| p),
            fp8_scaling: self.fp8.fp8_scaling.clone(),
            fp8_history: self.fp8.fp8_history,
            fp8_margin: self.fp8.fp8_margin,
            loss_scale: self.loss_scale,
            init_scale: self.init_scale,
            growth_factor: self.growth_factor,
            backoff_factor: self.backoff_factor,
            growth_interval: self.growth_interval,
            clip_norm: self.clip_norm,
            clip_value: self.clip_value,
            max_memory: self.max_memory.map(|MemorySize(b)| b),
            checkpoint: self.checkpoint.clone(),
            checkpoint_every: self.checkpoint_every,
            resume: self.resume.clone(),
            val_data: self.val_data.clone(),
            val_split: self.val_split,
            eval_every: self.eval_every,
        }
    }

    /// Where the outputs go, checked before anything runs: writable, SVG where a plot, none
    /// the same file as another or as an input.
    pub(crate) fn check_destinations(&self) -> anyhow::Result<()> {
        let inputs = super::args::given([
            ("--weights", &self.weights),
            ("--data", &self.data),
            ("--val-data", &self.val_data),
        ]);
        let mut outputs = super::args::given([
            ("--out", &self.out),
            ("--plot", &self.plot),
            ("--heatmap", &self.heatmap),
            ("--save-weights", &self.save_weights),
        ]);
        // Without --out the report goes to standard output, which no other output may share.
        if self.out.is_none() {
            outputs.insert(0, ("the report (without --out)", std::path::Path::new("-")));
        }
        let extension = |flag: &str| match flag {
            "--plot" | "--heatmap" => Some("svg"),
            "--save-weights" | "--checkpoint" => Some("safetensors"),
            _ => None,
        };
        // The checkpoint resumed from is read whole before anything is written, so the run's
        // own checkpoints may go on in that file; no other output may replace it.
        let mut with_resume = inputs.clone();
        with_resume.extend(super::args::given([("--resume", &self.resume)]));
        gradstab::output::check_outputs(&with_resume, &outputs, extension)?;
        outputs.extend(super::args::given([("--checkpoint", &self.checkpoint)]));
        gradstab::output::check_outputs(&inputs, &outputs, extension)?;
        Ok(())
    }
}

pub(crate) fn train_command(args: &TrainArgs, plan: TrainPlan) -> anyhow::Result<ExitCode> {
    let device = args.adapter.open(args.backend)?;
    let bar = Bar::new(args.quiet, "steps");
    let outcome = train_plan(
        &device,
        &plan,
        args.preset.clone(),
        args.save_weights.is_some(),
        &mut |p| bar.show(p),
    )?;
    bar.finish();
    let report = &outcome.report;
    let render = |out: &mut dyn Write| -> std::io::Result<()> {
        match args.format {
            StatsFormat::Table => gradstab::report::train::table(&mut &mut *out, report),
            StatsFormat::Csv => {
                gradstab::report::train::csv(&mut &mut *out, report).map_err(std::io::Error::other)
            }
            StatsFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(report).map_err(std::io::Error::other)?
            ),
        }
    };
    // Files first, the report last: a reader of standard output that goes away (`| head -1`)
    // ends the process at its next write, and must not take the trained model with it.
    if let Some(path) = &args.plot {
        gradstab::report::train_plot::loss_curves(report, path)?;
    }
    if let Some(path) = &args.heatmap {
        gradstab::report::train_plot::update_heat_map(report, path)?;
    }
    // A model that was not saved (a diverged run) still gets its report, which says what
    // happened; the exit code then says the model was not saved.
    let saved = args
        .save_weights
        .as_deref()
        .map_or(Ok(()), |path| outcome.save_weights(path));
    super::args::write_output(args.out.as_deref(), render)?;
    saved?;
    // So is a checkpoint asked for at the end of a run that diverged: the library kept the
    // last one written before (if any), and the exit code says the end's was not written.
    if let (Some(path), Some(step)) = (
        &args.checkpoint,
        report.runs.last().and_then(|r| r.summary.diverged_at),
    ) {
        return Err(anyhow::Error::new(gradstab::Error::File {
            path: path.display().to_string(),
            problem: format!("the run diverged at step {step}, so its end was not checkpointed"),
            source: None,
        }));
    }
    Ok(ExitCode::SUCCESS)
}
