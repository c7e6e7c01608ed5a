//! `train`: a deep MLP trained step by step, every step and layer recorded.
//!
//! `TrainOptions` says what to change from the defaults (the constants below) or which preset
//! to run; `TrainOptions::runs` applies the defaults and refuses what cannot run;
//! `train_runs` trains them and assembles the report; `TrainOutcome::save_weights` writes the
//! trained model, unless it diverged.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::network::given::LayerNames;
use crate::network::{self, Clip, NetworkConfig};
use crate::ops::activation::Activation;
use crate::ops::optimizer::{OptimizerConfig, OptimizerKind};
use crate::precision::Precision;
use crate::train::checkpoint::Checkpointing;
use crate::train::data::{load_train_data, Targets, Task};
use crate::train::eval::{self, Evaluation, Validation};
use crate::train::presets::{self, TrainPreset};
use crate::train::record::{TrainReport, TrainRun};
use crate::train::run::{run_training_with, FinalWeights};
use crate::train::scaler::{DynamicScaling, LossScale};
use crate::train::schedule::LrSchedule;
use crate::train::{config, weights, TrainConfig};

use super::checks;
use super::device::{on_device, Device};
use super::given;
use super::progress::Progress;

/// The layers of the default model.
pub const DEFAULT_DEPTH: usize = 8;
/// The width of every layer of the default model (its output width too).
pub const DEFAULT_WIDTH: usize = 64;
/// Optimizer steps.
pub const DEFAULT_STEPS: usize = 100;
/// Samples in a built-in task's data set.
pub const DEFAULT_SAMPLES: usize = 256;
/// The depth of the built-in task's teacher (its width defaults to the model's middle width).
pub const DEFAULT_TEACHER_DEPTH: usize = 2;
/// Full statistics at the first and last step only.
pub const DEFAULT_RECORD_EVERY: usize = 0;
pub const DEFAULT_SEED: u64 = 0;
pub const DEFAULT_OPTIMIZER: OptimizerKind = OptimizerKind::Sgd;
/// SGD's learning rate.
pub const DEFAULT_SGD_LR: f64 = 0.01;
/// Adam's and AdamW's learning rate.
pub const DEFAULT_ADAM_LR: f64 = 0.001;
pub const DEFAULT_PRECISION: Precision = Precision::F32;
pub const DEFAULT_LOSS_SCALE: LossScale = LossScale::None;

/// The built-in task trained without a data file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskKind {
    /// MSE against a random teacher MLP's outputs.
    #[default]
    Teacher,
    /// Cross-entropy on the teacher's argmax.
    Classify,
}

impl FromStr for TaskKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "teacher" => Ok(TaskKind::Teacher),
            "classify" => Ok(TaskKind::Classify),
            _ => Err(Error::Parse {
                what: "task",
                value: s.to_string(),
                expected: "teacher or classify",
            }),
        }
    }
}

/// What training changes from the defaults, or which preset to run; `None` and `false` keep
/// the default. With a preset, only `steps`, `seed`, `record_every` and `max_memory` apply.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// A preset of `train::presets::NAMES`.
    pub preset: Option<String>,
    /// Layers, 1 to `checks::MAX_DEPTH` (default `DEFAULT_DEPTH`).
    pub depth: Option<usize>,
    /// One width, or depth + 1 widths, input first (default `DEFAULT_WIDTH`).
    pub widths: Option<Vec<usize>>,
    /// The last layer's width, the others `widths`' one: the classes of the classify task,
    /// the targets of the teacher task (default: the width).
    pub outputs: Option<usize>,
    pub activation: Option<Activation>,
    pub init: Option<Init>,
    /// Biases in every layer, drawn as nn.Linear draws them; not with `bias_std`.
    pub bias: bool,
    /// Biases in every layer drawn from N(0, bias_std²) (the mean-field theory's σ_b), as
    /// `run`'s are; not with `bias`.
    pub bias_std: Option<f64>,
    pub residual: bool,
    /// Whether the activation follows the last layer too (default: a linear head).
    pub output_activation: Option<bool>,
    pub seed: Option<u64>,
    /// A safetensors state dict to start from: depth, widths and biases come from it, and
    /// the activation and output activation where the file says them (gradstab's
    /// `save_weights` files do); one that does not needs `activation` and `output_activation`.
    pub weights: Option<PathBuf>,
    /// Where the trained weights will be saved (one learning rate and precision only).
    pub save_weights: Option<PathBuf>,
    pub task: Option<TaskKind>,
    pub teacher_depth: Option<usize>,
    pub teacher_width: Option<usize>,
    pub samples: Option<usize>,
    /// x and y from a .safetensors or .npz file instead of a built-in task.
    pub data: Option<PathBuf>,
    /// The minibatch (default: the whole data set).
    pub batch: Option<usize>,
    pub shuffle: bool,
    /// Leave out each epoch's short last batch, as DataLoader's `drop_last`.
    pub drop_last: bool,
    /// Optimizer steps (default `DEFAULT_STEPS`); or `epochs`, not both.
    pub steps: Option<usize>,
    /// Passes over the data: the steps are `epochs` × the batches of an epoch.
    pub epochs: Option<usize>,
    pub record_every: Option<usize>,
    pub optimizer: Option<OptimizerKind>,
    /// One run per learning rate (default `DEFAULT_SGD_LR` or `DEFAULT_ADAM_LR`).
    pub lr: Option<Vec<f64>>,
    /// A torch.optim.lr_scheduler schedule of each run's rate, stepped once per training
    /// step (`train::schedule`; its defaults are the constants there).
    pub lr_schedule: Option<LrSchedule>,
    pub momentum: Option<f64>,
    pub nesterov: bool,
    pub weight_decay: Option<f64>,
    pub betas: Option<(f64, f64)>,
    pub eps: Option<f64>,
    /// One run per precision (default `DEFAULT_PRECISION`).
    pub precisions: Option<Vec<Precision>>,
    pub fp8_scaling: Option<String>,
    pub fp8_history: Option<usize>,
    pub fp8_margin: Option<i32>,
    pub loss_scale: Option<LossScale>,
    /// GradScaler's settings (loss_scale dynamic only; defaults `DynamicScaling::default()`).
    pub init_scale: Option<f64>,
    pub growth_factor: Option<f64>,
    pub backoff_factor: Option<f64>,
    pub growth_interval: Option<u64>,
    pub clip_norm: Option<f64>,
    pub clip_value: Option<f64>,
    /// Refuse a run that needs more host or device memory than this many bytes.
    pub max_memory: Option<u64>,
    /// Write a checkpoint of the run (`train::checkpoint`) to this file at its end, and every
    /// `checkpoint_every` steps; one run only.
    pub checkpoint: Option<PathBuf>,
    pub checkpoint_every: Option<usize>,
    /// Go on from this checkpoint: its configuration, with `steps` or `epochs` as a new total
    /// and `data` the same data; an option that contradicts it is refused.
    pub resume: Option<PathBuf>,
    /// A validation set: x and y of a file read as `data` is (same inputs, same kind of
    /// targets); needs `data`, not with `val_split`.
    pub val_data: Option<PathBuf>,
    /// Hold out ceil(F·N) samples of the data (0 < F < 1) as the validation set, drawn from
    /// the seed, stratified by class for labels (`train::eval`).
    pub val_split: Option<f64>,
    /// Evaluate every this many steps and after the last (default: after the last step only,
    /// where there is a validation set; without one, `eval_every` evaluates the training set).
    pub eval_every: Option<usize>,
}

impl TrainOptions {
    /// Refuses values out of range, before anything is read.
    pub(super) fn check_ranges(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        checks::depth("depth", self.depth)?;
        checks::depth("teacher_depth", self.teacher_depth)?;
        checks::widths("widths", self.widths.as_deref())?;
        checks::count("outputs", self.outputs)?;
        if let (Some(o), Some(w)) = (self.outputs, &self.widths) {
            if w.len() > 1 {
                return bad(format!(
                    "outputs {o} with {} widths: the list gives the last width already",
                    w.len()
                ));
            }
        }
        checks::bias_std(self.bias_std)?;
        checks::conflicts(
            "bias",
            self.bias,
            &[("bias_std", self.bias_std.is_some())],
            "which draws the biases as nn.Linear does",
        )?;
        checks::count("teacher_width", self.teacher_width)?;
        checks::count("samples", self.samples)?;
        checks::count("batch", self.batch)?;
        checks::count("steps", self.steps)?;
        checks::count("epochs", self.epochs)?;
        checks::conflicts(
            "epochs",
            self.epochs.is_some(),
            &[("steps", self.steps.is_some())],
            "which sets the steps from the data and the batch",
        )?;
        checks::count("fp8_history", self.fp8_history)?;
        checks::count("checkpoint_every", self.checkpoint_every)?;
        checks::count("eval_every", self.eval_every)?;
        if let Some(f) = self.val_split {
            eval::check_fraction(f)?;
        }
        // A resumed run's data are the checkpoint's: read again from the path it had.
        if self.val_data.is_some() && self.data.is_none() && self.resume.is_none() {
            return bad(
                "val_data needs data (--val-data needs --data): a built-in task's targets come \
                 from a teacher drawn from the seed, which no file holds; hold out part of its \
                 samples with val_split"
                    .into(),
            );
        }
        checks::conflicts(
            "val_split",
            self.val_split.is_some(),
            &[("val_data", self.val_data.is_some())],
            "which holds out part of data instead",
        )?;
        if self.growth_interval == Some(0) {
            return bad("growth_interval 0: expected a whole number ≥ 1".into());
        }
        for (name, value) in [
            ("init_scale", self.init_scale),
            ("growth_factor", self.growth_factor),
            ("backoff_factor", self.backoff_factor),
            ("clip_norm", self.clip_norm),
            ("clip_value", self.clip_value),
        ] {
            checks::positive(name, value)?;
        }
        checks::one_clip(self.clip_norm, self.clip_value)?;
        if let Some(rates) = &self.lr {
            if rates.is_empty() || !rates.iter().all(|r| *r >= 0.0 && r.is_finite()) {
                return bad(format!("lr {rates:?}: expected finite numbers ≥ 0"));
            }
        }
        if let Some((b1, b2)) = self.betas {
            if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
                return bad(format!(
                    "betas ({b1}, {b2}): expected two numbers in [0, 1)"
                ));
            }
        }
        if self.precisions.as_ref().is_some_and(Vec::is_empty) {
            return bad("precisions: expected at least one precision".into());
        }
        Ok(())
    }

    /// The options a preset fixes, with whether each was given.
    fn model_options(&self) -> [(&'static str, bool); 42] {
        [
            ("depth", self.depth.is_some()),
            ("widths", self.widths.is_some()),
            ("outputs", self.outputs.is_some()),
            ("activation", self.activation.is_some()),
            ("init", self.init.is_some()),
            ("bias", self.bias),
            ("bias_std", self.bias_std.is_some()),
            ("residual", self.residual),
            ("output_activation", self.output_activation.is_some()),
            ("weights", self.weights.is_some()),
            ("save_weights", self.save_weights.is_some()),
            ("task", self.task.is_some()),
            ("data", self.data.is_some()),
            ("batch", self.batch.is_some()),
            ("samples", self.samples.is_some()),
            ("optimizer", self.optimizer.is_some()),
            ("lr", self.lr.is_some()),
            ("lr_schedule", self.lr_schedule.is_some()),
            ("momentum", self.momentum.is_some()),
            ("weight_decay", self.weight_decay.is_some()),
            ("precisions", self.precisions.is_some()),
            ("loss_scale", self.loss_scale.is_some()),
            ("clip_norm", self.clip_norm.is_some()),
            ("clip_value", self.clip_value.is_some()),
            ("nesterov", self.nesterov),
            ("betas", self.betas.is_some()),
            ("eps", self.eps.is_some()),
            ("init_scale", self.init_scale.is_some()),
            ("growth_factor", self.growth_factor.is_some()),
            ("backoff_factor", self.backoff_factor.is_some()),
            ("growth_interval", self.growth_interval.is_some()),
            ("shuffle", self.shuffle),
            ("drop_last", self.drop_last),
            ("epochs", self.epochs.is_some()),
            ("teacher_depth", self.teacher_depth.is_some()),
            ("teacher_width", self.teacher_width.is_some()),
            ("fp8_scaling", self.fp8_scaling.is_some()),
            ("fp8_margin", self.fp8_margin.is_some()),
            ("fp8_history", self.fp8_history.is_some()),
            ("val_data", self.val_data.is_some()),
            ("val_split", self.val_split.is_some()),
            ("eval_every", self.eval_every.is_some()),
        ]
    }

    /// The runs these options ask for: a preset's (only `steps`, `seed`, `record_every` and
    /// `max_memory` apply to it), or one per learning rate and precision, each validated.
    /// Checkpoints need [`plan`](Self::plan), which carries them.
    pub fn runs(&self) -> Result<TrainPreset> {
        if self.checkpoint.is_some() || self.resume.is_some() {
            return Err(Error::InvalidArgument(
                "checkpoint and resume need TrainOptions::plan and train_plan, which carry them \
                 (the runs alone would start from the beginning and save nothing)"
                    .into(),
            ));
        }
        self.check_ranges()?;
        self.preset_or_own_runs()
    }

    pub(super) fn preset_or_own_runs(&self) -> Result<TrainPreset> {
        match &self.preset {
            Some(name) => self.preset_runs(name),
            None => self.own_runs(),
        }
    }

    fn preset_runs(&self, name: &str) -> Result<TrainPreset> {
        checks::conflicts(
            "preset",
            true,
            &self.model_options(),
            "whose runs fix it; steps, seed and record_every apply to a preset",
        )?;
        let mut preset = presets::preset(name)?;
        for (_, config) in &mut preset.runs {
            if let Some(steps) = self.steps {
                config.steps = steps;
            }
            if let Some(seed) = self.seed {
                config.network.seed = seed;
            }
            if let Some(k) = self.record_every {
                config.record_every = k;
            }
            config.network.max_memory_bytes = self.max_memory;
            config.validate()?;
        }
        Ok(preset)
    }

    fn own_runs(&self) -> Result<TrainPreset> {
        let from_file = "which sets it from the file";
        checks::conflicts(
            "weights",
            self.weights.is_some(),
            &[
                ("depth", self.depth.is_some()),
                ("widths", self.widths.is_some()),
                ("outputs", self.outputs.is_some()),
                ("init", self.init.is_some()),
                ("bias", self.bias),
                ("bias_std", self.bias_std.is_some()),
            ],
            from_file,
        )?;
        checks::conflicts(
            "data",
            self.data.is_some(),
            &[
                ("task", self.task.is_some()),
                ("samples", self.samples.is_some()),
                ("teacher_depth", self.teacher_depth.is_some()),
                ("teacher_width", self.teacher_width.is_some()),
            ],
            from_file,
        )?;
        let kind = self.optimizer.unwrap_or(DEFAULT_OPTIMIZER);
        if kind == OptimizerKind::Sgd && (self.betas.is_some() || self.eps.is_some()) {
            return Err(Error::InvalidArgument(
                "betas and eps are Adam's and AdamW's; sgd has momentum".into(),
            ));
        }
        let rates = match &self.lr {
            Some(r) => r.clone(),
            None if kind == OptimizerKind::Sgd => vec![DEFAULT_SGD_LR],
            None => vec![DEFAULT_ADAM_LR],
        };
        let precisions = self
            .precisions
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_PRECISION]);
        if self.save_weights.is_some() && rates.len() * precisions.len() > 1 {
            return Err(Error::InvalidArgument(format!(
                "save_weights writes one model: give one lr and one precision, not {} runs",
                rates.len() * precisions.len()
            )));
        }
        let loss_scale = self.loss_scale()?;
        let mut network = self.network()?;
        if let Some(scaling) = checks::fp8_scaling(
            self.fp8_scaling.as_deref(),
            self.fp8_history,
            self.fp8_margin,
            &precisions,
        )? {
            network.fp8_scaling = scaling;
        }
        let data = self
            .data
            .as_deref()
            .map(load_train_data)
            .transpose()?
            .map(Arc::new);
        if let Some(path) = &self.weights {
            let given = network::load_parameters(path)?;
            (network.activation, network.output_activation) =
                given::train_activations(&given, self.activation, self.output_activation)?;
            network = network.with_given_parameters(given);
        } else if let (Some(data), Some(path), None) = (&data, &self.data, &self.widths) {
            // Without weights or widths, the file decides the input and output widths.
            let depth = network.depth;
            network.widths[0] = data.x.shape().cols;
            network.widths[depth] = match (&data.targets, self.outputs) {
                (_, Some(outputs)) => outputs,
                (Targets::Values(y), None) => y.shape().cols,
                (Targets::Labels(l), None) => classes_of(l, path)?,
            };
        }
        let task = match (&data, &self.data) {
            (Some(data), Some(path)) => Task::File {
                source: path.display().to_string(),
                data: Arc::clone(data),
            },
            _ => {
                let depth = self.teacher_depth.unwrap_or(DEFAULT_TEACHER_DEPTH);
                let width = self
                    .teacher_width
                    .unwrap_or(network.widths[network.depth / 2]);
                match self.task.unwrap_or_default() {
                    TaskKind::Classify => Task::Classify { depth, width },
                    TaskKind::Teacher => Task::Teacher { depth, width },
                }
            }
        };
        let samples = data
            .as_ref()
            .map_or(self.samples.unwrap_or(DEFAULT_SAMPLES), |d| d.samples());
        let evaluation = self.evaluation()?;
        // The default batch is the whole training set: what a split leaves.
        let train_samples = samples - evaluation.held_out(samples).min(samples);
        network.batch = self.batch.unwrap_or(train_samples.max(1));
        let optimizer = self.optimizer_config(kind);
        let mut runs = Vec::new();
        for &precision in &precisions {
            for &lr in &rates {
                let mut config = TrainConfig {
                    network: network.clone(),
                    task: task.clone(),
                    samples,
                    shuffle: self.shuffle,
                    drop_last: self.drop_last,
                    steps: self.steps.unwrap_or(DEFAULT_STEPS),
                    record_every: self.record_every.unwrap_or(DEFAULT_RECORD_EVERY),
                    optimizer,
                    lr,
                    lr_schedule: self.lr_schedule.clone(),
                    precision,
                    loss_scale,
                    evaluation: evaluation.clone(),
                };
                if let Some(epochs) = self.epochs {
                    // Refused before the product: a batch the data cannot give has no epoch.
                    config.steps = 1;
                    config.validate()?;
                    config.steps =
                        epochs
                            .checked_mul(config.steps_per_epoch())
                            .ok_or_else(|| {
                                Error::InvalidArgument(format!("epochs {epochs}: too many steps"))
                            })?;
                }
                config.validate()?;
                // Every label names what its run does differently, the loss scale included.
                let scaled = match loss_scale {
                    LossScale::None => String::new(),
                    scale => format!(" loss-scale={scale}"),
                };
                let scheduled = match &config.lr_schedule {
                    Some(schedule) => format!(" schedule={}", schedule.resolved(config.steps)),
                    None => String::new(),
                };
                runs.push((
                    format!("{precision} {kind} lr={lr}{scheduled}{scaled}"),
                    config,
                ));
            }
        }
        Ok(TrainPreset {
            name: "custom",
            conclusion: "",
            runs,
        })
    }

    /// The validation set (its file read) and when to evaluate.
    fn evaluation(&self) -> Result<Evaluation> {
        let validation = match (&self.val_data, self.val_split) {
            (Some(path), _) => Validation::Data {
                source: path.display().to_string(),
                data: Arc::new(load_train_data(path)?),
            },
            (None, Some(fraction)) => Validation::Split(fraction),
            (None, None) => Validation::None,
        };
        Ok(Evaluation {
            validation,
            every: self.eval_every,
        })
    }

    /// The model before any file is read: the defaults with the options over them.
    fn network(&self) -> Result<NetworkConfig> {
        let depth = self.depth.unwrap_or(DEFAULT_DEPTH);
        let mut network = NetworkConfig {
            output_activation: self.output_activation.unwrap_or(false),
            linear_bias: self.bias,
            bias_std: self.bias_std.unwrap_or(0.0),
            residual: self.residual,
            seed: self.seed.unwrap_or(DEFAULT_SEED),
            max_memory_bytes: self.max_memory,
            // The batch is the data's, set once the data are known.
            ..NetworkConfig::new(depth, DEFAULT_WIDTH, 1)
        };
        if let Some(w) = &self.widths {
            network = network.with_widths(w)?;
        }
        if let Some(o) = self.outputs {
            network.widths[depth] = o;
        }
        if let Some(a) = self.activation {
            network.activation = a;
        }
        if let Some(i) = self.init {
            network.init = i;
        }
        network.clip = match (self.clip_norm, self.clip_value) {
            (Some(n), _) => Some(Clip::Norm(n)),
            (_, Some(v)) => Some(Clip::Value(v)),
            _ => None,
        };
        Ok(network)
    }

    /// torch.optim's defaults for `kind`, with the options over them.
    fn optimizer_config(&self, kind: OptimizerKind) -> OptimizerConfig {
        let mut optimizer = OptimizerConfig::new(kind);
        if let Some(m) = self.momentum {
            optimizer.momentum = m;
        }
        optimizer.nesterov = self.nesterov;
        if let Some(w) = self.weight_decay {
            optimizer.weight_decay = w;
        }
        if let Some(b) = self.betas {
            optimizer.betas = b;
        }
        if let Some(e) = self.eps {
            optimizer.eps = e;
        }
        optimizer
    }

    /// The loss scaling asked for; GradScaler's settings only with dynamic scaling.
    fn loss_scale(&self) -> Result<LossScale> {
        let scaler_options = [
            ("init_scale", self.init_scale.is_some()),
            ("growth_factor", self.growth_factor.is_some()),
            ("backoff_factor", self.backoff_factor.is_some()),
            ("growth_interval", self.growth_interval.is_some()),
        ];
        match self.loss_scale.unwrap_or(DEFAULT_LOSS_SCALE) {
            LossScale::Dynamic(d) => Ok(LossScale::Dynamic(DynamicScaling {
                init_scale: self.init_scale.unwrap_or(d.init_scale),
                growth_factor: self.growth_factor.unwrap_or(d.growth_factor),
                backoff_factor: self.backoff_factor.unwrap_or(d.backoff_factor),
                growth_interval: self.growth_interval.unwrap_or(d.growth_interval),
            })),
            other => match scaler_options.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(Error::InvalidArgument(format!(
                    "{name} sets dynamic loss scaling; set loss_scale to dynamic"
                ))),
                None => Ok(other),
            },
        }
    }
}

/// The classes of labels when the file decides the model's outputs: 0 to the largest label,
/// each of which occurs. A gap (labels 0 to 3 and one 100) is far more often a mistake in the
/// data than 97 classes without a sample; `widths` asks for such outputs explicitly.
fn classes_of(labels: &[u32], source: &Path) -> Result<usize> {
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut seen = vec![false; classes];
    for &l in labels {
        seen[l as usize] = true;
    }
    let present = seen.iter().filter(|&&s| s).count();
    if present < classes {
        // The data's problem, not the options': a malformed input.
        return Err(Error::File {
            path: source.display().to_string(),
            problem: format!(
                "the labels run from 0 to {} but only {present} of those {classes} classes \
                 occur; relabel them 0 to {}, or give --width with {classes} outputs to train \
                 {classes} classes anyway",
                classes - 1,
                present.max(1) - 1
            ),
            source: None,
        });
    }
    Ok(classes)
}

/// What `train_runs` found: the report and, where asked for, the last run's trained weights.
pub struct TrainOutcome {
    pub report: TrainReport,
    pub weights: Option<FinalWeights>,
}

impl TrainOutcome {
    /// Writes the trained weights as a state dict that model.load_state_dict takes, the
    /// activation and output activation in its metadata (which `weights` reads back). A diverged
    /// model is not written: its weights are inf or NaN, and a file of them would only carry
    /// the failure on to whoever loads it.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        self.save_weights_named(path, None)
    }

    /// [`save_weights`](Self::save_weights) under `names` (one per layer), such as those of
    /// the PyTorch model the weights came from; `None`: the names they were loaded with.
    pub fn save_weights_named(&self, path: &Path, names: Option<&[LayerNames]>) -> Result<()> {
        let Some(weights) = &self.weights else {
            return Err(Error::InvalidArgument(
                "no trained weights to save: train_runs was asked not to keep them".into(),
            ));
        };
        match self.report.runs.last().and_then(|r| r.summary.diverged_at) {
            Some(step) => Err(Error::File {
                path: path.display().to_string(),
                problem: format!(
                    "the weights were not written: the run diverged (loss inf or NaN) at step {step}"
                ),
                source: None,
            }),
            None => match names {
                Some(names) => weights::save_named(weights, Some(names), path),
                None => weights::save(weights, path),
            },
        }
    }
}

/// Trains every run of `runs` on `backend`, telling `progress` each optimizer step; every run
/// is checked before the first starts. `keep_weights`: keep the last run's final weights.
pub fn train_all<B: Backend>(
    backend: &B,
    runs: &TrainPreset,
    keep_weights: bool,
    checkpoints: &Checkpointing,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<(Vec<TrainRun>, Option<FinalWeights>)> {
    for (_, config) in &runs.runs {
        config::check(backend, config)?;
    }
    let total: usize = runs.runs.iter().map(|(_, c)| c.steps).sum();
    let mut done_runs = Vec::new();
    let mut weights = None;
    let mut done = 0;
    for (label, config) in &runs.runs {
        let outcome = run_training_with(
            backend,
            config,
            label,
            keep_weights,
            checkpoints,
            &mut |step, loss| {
                progress(Progress {
                    done: done + step,
                    total,
                    label,
                    loss,
                })
            },
        )?;
        done += config.steps;
        weights = outcome.weights;
        done_runs.push(outcome.run);
    }
    Ok((done_runs, weights))
}

/// Trains `runs` on `device` and reports them, a preset's claims checked. `preset` is the name
/// the report carries.
pub fn train_runs(
    device: &Device,
    runs: &TrainPreset,
    preset: Option<String>,
    keep_weights: bool,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<TrainOutcome> {
    let none = Checkpointing::default();
    train_with(device, runs, &none, preset, keep_weights, progress)
}

pub(super) fn train_with(
    device: &Device,
    runs: &TrainPreset,
    checkpoints: &Checkpointing,
    preset: Option<String>,
    keep_weights: bool,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<TrainOutcome> {
    let (done, weights) = on_device!(device, backend => train_all(backend, runs, keep_weights, checkpoints, progress)?);
    let report = TrainReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        preset,
        conclusion: (!runs.conclusion.is_empty()).then(|| runs.conclusion.to_string()),
        claims: presets::verify(runs.name, &done),
        device: device.info(),
        runs: done,
    };
    Ok(TrainOutcome { report, weights })
}
