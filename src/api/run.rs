//! `run`: a deep MLP forward and backward, every layer recorded beside the theory.
//!
//! `RunOptions` says what to change from the default network (or a preset);
//! `RunOptions::experiment` applies the defaults and refuses what cannot run;
//! `run_experiment` runs it and assembles the report, the preset's claims checked.

use std::path::PathBuf;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::experiment::{Experiment, VariantRun};
use crate::init::{Init, InputInit};
use crate::network::{self, Clip, Loss, NetworkConfig};
use crate::ops::activation::Activation;
use crate::precision::Precision;
use crate::report::run::RunReport;

use super::checks;
use super::device::{on_device, Device};
use super::given;
use super::progress::Progress;

/// The layers of the default network.
pub const DEFAULT_DEPTH: usize = 20;
/// The width of every layer of the default network.
pub const DEFAULT_WIDTH: usize = 256;
/// The batch of the default network.
pub const DEFAULT_BATCH: usize = 64;
/// The precision of a run that names none.
pub const DEFAULT_PRECISION: Precision = Precision::F32;

/// What a run changes from a preset or from the default network (a ReLU net of
/// `DEFAULT_DEPTH` layers of `DEFAULT_WIDTH`, He-initialised, batch `DEFAULT_BATCH`, in
/// `DEFAULT_PRECISION`); `None` and `false` keep what the preset or default has.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// A preset of `experiment::presets()`; the other options override it.
    pub preset: Option<String>,
    /// Layers, 1 to `checks::MAX_DEPTH`.
    pub depth: Option<usize>,
    /// One width, or depth + 1 widths (input first).
    pub widths: Option<Vec<usize>>,
    pub batch: Option<usize>,
    pub activation: Option<Activation>,
    pub init: Option<Init>,
    pub input: Option<InputInit>,
    /// Biases drawn from N(0, bias_std²), as f32.
    pub bias_std: Option<f64>,
    /// h^t = h^{t−1} + act(W^t h^{t−1}).
    pub residual: bool,
    /// Whether the activation follows the last layer too. `None`: yes (h^t = σ(W^t h^{t−1})
    /// at every layer), except with `Loss::CrossEntropy`, whose input is logits: no.
    pub output_activation: Option<bool>,
    pub loss: Option<Loss>,
    /// Clip the weight gradients to this global norm; not with `clip_value`.
    pub clip_norm: Option<f64>,
    /// Clamp the weight gradients to ±this; not with `clip_norm`.
    pub clip_value: Option<f64>,
    pub precisions: Option<Vec<Precision>>,
    /// none, delayed or current (precision fp8 only).
    pub fp8_scaling: Option<String>,
    pub fp8_history: Option<usize>,
    pub fp8_margin: Option<i32>,
    pub seed: Option<u64>,
    /// A safetensors state dict of nn.Linear layers: depth, widths and weights come from it,
    /// and the activation where the file says it (gradstab's `--save-weights` files do); one
    /// that does not say it needs `activation`.
    pub weights: Option<PathBuf>,
    /// The input batch x (and targets y): the batch size comes from it.
    pub data: Option<PathBuf>,
    /// Refuse a run that needs more host or device memory than this many bytes.
    pub max_memory: Option<u64>,
}

impl RunOptions {
    /// The default network, in the default precision: what a run without a preset starts from.
    pub fn default_experiment() -> Experiment {
        Experiment {
            name: "custom",
            summary: "",
            variants: vec![(
                "net".into(),
                NetworkConfig::new(DEFAULT_DEPTH, DEFAULT_WIDTH, DEFAULT_BATCH),
            )],
            precisions: vec![DEFAULT_PRECISION],
            claims: None,
        }
    }

    /// Refuses values out of range and options that conflict, before anything is read.
    pub fn check(&self) -> Result<()> {
        checks::depth("depth", self.depth)?;
        checks::widths("widths", self.widths.as_deref())?;
        checks::count("batch", self.batch)?;
        checks::count("fp8_history", self.fp8_history)?;
        checks::bias_std(self.bias_std)?;
        checks::positive("clip_norm", self.clip_norm)?;
        checks::positive("clip_value", self.clip_value)?;
        checks::one_clip(self.clip_norm, self.clip_value)?;
        if let Some(p) = &self.precisions {
            if p.is_empty() {
                return Err(Error::InvalidArgument(
                    "precisions: expected at least one precision".into(),
                ));
            }
        }
        // What a file brings cannot also be asked for: refuse rather than pick one.
        let from_file = "which sets it from the file";
        checks::conflicts(
            "weights",
            self.weights.is_some(),
            &[
                ("preset", self.preset.is_some()),
                ("depth", self.depth.is_some()),
                ("widths", self.widths.is_some()),
                ("init", self.init.is_some()),
                ("bias_std", self.bias_std.is_some()),
            ],
            from_file,
        )?;
        checks::conflicts(
            "data",
            self.data.is_some(),
            &[
                ("preset", self.preset.is_some()),
                ("batch", self.batch.is_some()),
                ("input", self.input.is_some()),
            ],
            from_file,
        )
    }

    /// Whether any option changes the runs of a preset (and so voids its claims).
    fn changes_runs(&self) -> bool {
        self.depth.is_some()
            || self.widths.is_some()
            || self.batch.is_some()
            || self.activation.is_some()
            || self.init.is_some()
            || self.input.is_some()
            || self.bias_std.is_some()
            || self.residual
            || self.output_activation.is_some()
            || self.loss.is_some()
            || self.clip_norm.is_some()
            || self.clip_value.is_some()
            || self.precisions.is_some()
            || self.seed.is_some()
            || self.fp8_scaling.is_some()
            || self.fp8_history.is_some()
            || self.fp8_margin.is_some()
    }

    /// The experiment these options ask for: the preset (or the default network) with every
    /// option applied to each of its configurations, each configuration validated, the
    /// weights and data files read.
    pub fn experiment(&self) -> Result<Experiment> {
        self.check()?;
        let mut experiment = match &self.preset {
            Some(name) => crate::experiment::preset(name)?,
            None => RunOptions::default_experiment(),
        };
        if let Some(p) = &self.precisions {
            experiment.precisions = p.clone();
        }
        let fp8_scaling = checks::fp8_scaling(
            self.fp8_scaling.as_deref(),
            self.fp8_history,
            self.fp8_margin,
            &experiment.precisions,
        )?;
        for (_, config) in &mut experiment.variants {
            self.apply(config, fp8_scaling)?;
        }
        // A preset's claims are about its own runs: with any of them changed, they are not
        // checked.
        if experiment.claims.is_some() && self.changes_runs() {
            log::warn!(
                "options change the preset's runs, so its claims are not checked; run it without them to check them"
            );
            experiment.claims = None;
        }
        Ok(experiment)
    }

    fn apply(
        &self,
        config: &mut NetworkConfig,
        fp8_scaling: Option<network::Fp8Scaling>,
    ) -> Result<()> {
        if let Some(scaling) = fp8_scaling {
            config.fp8_scaling = scaling;
        }
        if let Some(depth) = self.depth {
            config.depth = depth;
            let width = config.widths[0];
            config.widths = vec![width; depth + 1];
        }
        if let Some(w) = &self.widths {
            *config = config.clone().with_widths(w)?;
        }
        if let Some(b) = self.batch {
            config.batch = b;
        }
        if let Some(a) = self.activation {
            config.activation = a;
        }
        if let Some(i) = self.init {
            config.init = i;
        }
        if let Some(i) = self.input {
            config.input = i;
        }
        if let Some(b) = self.bias_std {
            config.bias_std = b;
        }
        config.residual |= self.residual;
        if let Some(l) = self.loss {
            config.loss = l;
        }
        let default_output = default_output_activation(config.loss, config.output_activation);
        config.output_activation = self.output_activation.unwrap_or(default_output);
        if let Some(c) = self.clip_norm {
            config.clip = Some(Clip::Norm(c));
        }
        if let Some(c) = self.clip_value {
            config.clip = Some(Clip::Value(c));
        }
        if let Some(s) = self.seed {
            config.seed = s;
        }
        config.max_memory_bytes = self.max_memory;
        if let Some(path) = &self.weights {
            let given = network::load_parameters(path)?;
            (config.activation, config.output_activation) = given::run_activations(
                &given,
                self.activation,
                self.output_activation,
                default_output,
            )?;
            *config = config.clone().with_given_parameters(given);
        }
        if let Some(path) = &self.data {
            let data = network::load_data(path, config.loss)?;
            if data.y_ignored {
                log::warn!(
                    "y of {} ignored: the {} loss takes no targets",
                    data.source,
                    config.loss
                );
            }
            // Without weights or widths, the data decide the input width (and, for MSE, the
            // output width) of the network.
            if self.weights.is_none() && self.widths.is_none() {
                config.widths[0] = data.x.shape().cols;
                if let (Loss::Mse, Some(y)) = (config.loss, &data.y) {
                    config.widths[config.depth] = y.shape().cols;
                }
            }
            *config = config.clone().with_given_data(data);
        }
        config.validate()
    }
}

/// Whether the activation follows the last layer where no option says: as the preset or
/// default network has it (yes), except for cross-entropy, whose input is the logits of a
/// linear head, as in a PyTorch classifier.
fn default_output_activation(loss: Loss, preset: bool) -> bool {
    match loss {
        Loss::CrossEntropy => false,
        _ => preset,
    }
}

/// Runs every variant of `experiment` in every precision on `backend`, telling `progress`
/// each layer done (forward and backward: 2·depth per run).
pub fn run_variants<B: Backend>(
    backend: &B,
    experiment: &Experiment,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<Vec<VariantRun>> {
    let total: usize = experiment
        .variants
        .iter()
        .map(|(_, c)| 2 * c.depth)
        .sum::<usize>()
        * experiment.precisions.len();
    let mut runs = Vec::new();
    let mut done = 0;
    for (label, config) in &experiment.variants {
        for &precision in &experiment.precisions {
            let label_now = format!("{label} {precision}");
            let started = std::time::Instant::now();
            let record = network::run(backend, config, precision, &mut |step, _| {
                progress(Progress {
                    done: done + step,
                    total,
                    label: &label_now,
                    loss: None,
                })
            })?;
            done += 2 * config.depth;
            runs.push(VariantRun {
                variant: label.clone(),
                config: config.clone(),
                // `network::run` returns once every record is read back from the device.
                wall_seconds: started.elapsed().as_secs_f64(),
                record,
            });
        }
    }
    Ok(runs)
}

/// Runs `experiment` on `device` and reports it: everything is checked before any of it
/// runs (each precision on this device, whether each configuration fits in memory), and a
/// preset's claims are checked against the runs. `preset` is the name the report carries.
pub fn run_experiment(
    device: &Device,
    experiment: &Experiment,
    preset: Option<String>,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<RunReport> {
    let config = match experiment.variants.first() {
        Some((_, config)) => config.clone(),
        None => return Err(Error::InvalidArgument("an experiment without runs".into())),
    };
    let runs = on_device!(device, backend => {
        for &precision in &experiment.precisions {
            for (_, config) in &experiment.variants {
                network::check(backend, config, precision)?;
            }
        }
        run_variants(backend, experiment, progress)?
    });
    Ok(RunReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        preset,
        config,
        device: device.info(),
        claims: experiment
            .claims
            .map(|check| check(&runs))
            .unwrap_or_default(),
        runs,
    })
}
