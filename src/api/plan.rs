//! `TrainOptions::plan` → `TrainPlan` → `train_plan`: the runs with the checkpoint a run goes on
//! from and those it writes. A resumed run is the checkpoint's. Its configuration is the checkpoint's; an
//! option that says otherwise is refused, naming the option and both values; `steps` or
//! `epochs` give a new total (at least the step reached); the data must be those the run
//! trained on (a file's are read again from `data`, or from the path the run had).

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::network::fp8::Fp8Scaling;
use crate::network::Clip;
use crate::train::checkpoint::{Checkpoint, CheckpointPlan, Checkpointing};
use crate::train::data::{load_train_data, Task};
use crate::train::presets::TrainPreset;
use crate::train::scaler::LossScale;
use crate::train::TrainConfig;

use super::device::Device;
use super::progress::Progress;
use super::train::{train_with, TrainOptions, TrainOutcome};

/// What to train and how it starts and saves: the runs, and the checkpoint a run resumes
/// from and those it writes.
pub struct TrainPlan {
    pub runs: TrainPreset,
    pub checkpoints: Checkpointing,
}

impl TrainOptions {
    /// The runs, with the checkpoint to resume from and where checkpoints go: a resumed run
    /// is the checkpoint's (`api::resume`).
    pub fn plan(&self) -> Result<TrainPlan> {
        self.check_ranges()?;
        if self.checkpoint_every.is_some() && self.checkpoint.is_none() {
            return Err(Error::InvalidArgument(
                "checkpoint_every needs checkpoint, the file to write".into(),
            ));
        }
        let save = self.checkpoint.clone().map(|path| CheckpointPlan {
            path,
            every: self.checkpoint_every,
        });
        if let Some(plan) = &save {
            plan.check()?;
            let given = [
                ("data", &self.data),
                ("val_data", &self.val_data),
                ("weights", &self.weights),
            ];
            let inputs: Vec<(&str, &Path)> = given
                .iter()
                .filter_map(|(name, path)| path.as_deref().map(|p| (*name, p)))
                .collect();
            not_an_input(plan, &inputs)?;
        }
        if let Some(path) = &self.resume {
            return resumed(self, path, save);
        }
        let runs = self.preset_or_own_runs()?;
        if save.is_some() && runs.runs.len() > 1 {
            return Err(Error::InvalidArgument(format!(
                "checkpoint saves one run, but these options make {} (a preset, or several lr \
                 or precisions): give one lr and one precision",
                runs.runs.len()
            )));
        }
        Ok(TrainPlan {
            runs,
            checkpoints: Checkpointing { resume: None, save },
        })
    }
}

/// [`train_runs`](super::train::train_runs) of a plan: from its checkpoint where it resumes one, writing its
/// checkpoints where it asks for them.
pub fn train_plan(
    device: &Device,
    plan: &TrainPlan,
    preset: Option<String>,
    keep_weights: bool,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<TrainOutcome> {
    train_with(
        device,
        &plan.runs,
        &plan.checkpoints,
        preset,
        keep_weights,
        progress,
    )
}

/// The plan of a resumed run: the checkpoint's configuration and state, the new total of
/// steps, and where its own checkpoints go.
fn resumed(options: &TrainOptions, path: &Path, save: Option<CheckpointPlan>) -> Result<TrainPlan> {
    if options.preset.is_some() {
        return Err(Error::InvalidArgument(
            "resume cannot be used with preset: a checkpoint holds one run, whose configuration \
             it keeps"
                .into(),
        ));
    }
    let checkpoint = Checkpoint::load(path)?;
    if let Some(plan) = &save {
        // The files the run had, read again where no option names them.
        let (data, val_data) = (checkpoint.data_file(), checkpoint.val_data_file());
        let had = [("the checkpoint's data", data), ("its val_data", val_data)];
        let inputs: Vec<(&str, &Path)> = had
            .iter()
            .filter_map(|(name, file)| file.as_deref().map(|f| (*name, Path::new(f))))
            .collect();
        not_an_input(plan, &inputs)?;
    }
    let data = match (&options.data, checkpoint.data_file()) {
        (Some(given), Some(_)) => Some(load_train_data(given)?),
        (Some(given), None) => {
            return Err(Error::InvalidArgument(format!(
                "data {}: the checkpoint's run trained on its built-in task, not a file",
                given.display()
            )))
        }
        (None, Some(file)) => Some(load_train_data(Path::new(&file)).map_err(|e| {
            Error::InvalidArgument(format!(
                "the checkpoint's run trained on {file}, which does not read now ({e}); give \
                 its data with data (--data)"
            ))
        })?),
        (None, None) => None,
    };
    // The validation file is read again as the data are; the rebuilt configuration then
    // checks that it holds as many samples as the one the run evaluated on.
    let val_data = match (&options.val_data, checkpoint.val_data_file()) {
        (Some(given), Some(_)) => Some(load_train_data(given)?),
        (Some(given), None) => {
            return Err(Error::InvalidArgument(format!(
                "val_data {}: the checkpoint's run had no validation file, and a resumed run \
                 keeps the evaluation it was checkpointed with",
                given.display()
            )))
        }
        (None, Some(file)) => Some(load_train_data(Path::new(&file)).map_err(|e| {
            Error::InvalidArgument(format!(
                "the checkpoint's run evaluated on {file}, which does not read now ({e}); give \
                 it with val_data (--val-data)"
            ))
        })?),
        (None, None) => None,
    };
    let mut config = checkpoint.config(data.map(Arc::new), val_data.map(Arc::new))?;
    contradictions(options, &config)?;
    if let Some(steps) = options.steps {
        config.steps = steps;
    }
    if let Some(epochs) = options.epochs {
        config.steps = epochs
            .checked_mul(config.steps_per_epoch())
            .ok_or_else(|| Error::InvalidArgument(format!("epochs {epochs}: too many steps")))?;
    }
    if config.steps < checkpoint.step() {
        let asked = match options.epochs {
            Some(e) => format!("epochs {e} ({} steps)", config.steps),
            None => format!("steps {}", config.steps),
        };
        return Err(Error::InvalidArgument(format!(
            "{asked} ends before the checkpoint's step {}: a resumed run goes on from it",
            checkpoint.step()
        )));
    }
    config.network.max_memory_bytes = options.max_memory;
    config.validate()?;
    let label = checkpoint.label().to_string();
    Ok(TrainPlan {
        runs: TrainPreset {
            name: "custom",
            conclusion: "",
            runs: vec![(label, config)],
        },
        checkpoints: Checkpointing {
            resume: Some(Arc::new(checkpoint)),
            save,
        },
    })
}

/// Refuses a checkpoint that would replace one of the run's input files (the command line
/// checks its own outputs too; this guards every caller of the library).
fn not_an_input(plan: &CheckpointPlan, inputs: &[(&str, &Path)]) -> Result<()> {
    crate::output::check_outputs(inputs, &[("checkpoint", &plan.path)], |_| None)
}

/// Refuses `given` where it is not `had`: an option that would change the resumed run.
fn same(option: &str, given: Option<String>, had: String) -> Result<()> {
    match given {
        Some(g) if g != had => Err(Error::InvalidArgument(format!(
            "{option} {g} contradicts the checkpoint's {option} {had}: a resumed run keeps the \
             configuration it was checkpointed with (steps or epochs may give a new total)"
        ))),
        _ => Ok(()),
    }
}

fn list<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Every option that defines the run, against the checkpoint's configuration.
fn contradictions(o: &TrainOptions, c: &TrainConfig) -> Result<()> {
    let net = &c.network;
    let none = || "none".to_string();
    let flag = |set: bool| set.then(|| "true".to_string());
    same(
        "depth",
        o.depth.map(|d| d.to_string()),
        net.depth.to_string(),
    )?;
    let widths = o.widths.as_ref().map(|w| match w[..] {
        [one] => list(&vec![one; net.depth + 1]),
        _ => list(w),
    });
    same("widths", widths, list(&net.widths))?;
    same(
        "activation",
        o.activation.map(|a| a.to_string()),
        net.activation.to_string(),
    )?;
    let file = net.given_parameters.as_ref().map(|g| g.source.clone());
    let init = match &file {
        Some(f) => format!("(the weights of {f})"),
        None => net.init.to_string(),
    };
    same("init", o.init.map(|i| i.to_string()), init)?;
    same("bias", flag(o.bias), net.has_biases().to_string())?;
    same("residual", flag(o.residual), net.residual.to_string())?;
    same(
        "output_activation",
        o.output_activation.map(|b| b.to_string()),
        net.output_activation.to_string(),
    )?;
    same("seed", o.seed.map(|s| s.to_string()), net.seed.to_string())?;
    same(
        "weights",
        o.weights.as_ref().map(|w| w.display().to_string()),
        file.unwrap_or_else(none),
    )?;
    let (kind, teacher) = match &c.task {
        Task::Teacher { depth, width } => ("teacher", Some((depth, width))),
        Task::Classify { depth, width } => ("classify", Some((depth, width))),
        Task::File { .. } => ("file", None),
    };
    let task = o.task.map(|t| match t {
        super::train::TaskKind::Teacher => "teacher".to_string(),
        super::train::TaskKind::Classify => "classify".to_string(),
    });
    same("task", task, kind.to_string())?;
    same(
        "teacher_depth",
        o.teacher_depth.map(|d| d.to_string()),
        teacher.map_or_else(none, |(d, _)| d.to_string()),
    )?;
    same(
        "teacher_width",
        o.teacher_width.map(|w| w.to_string()),
        teacher.map_or_else(none, |(_, w)| w.to_string()),
    )?;
    same(
        "samples",
        o.samples.map(|s| s.to_string()),
        c.samples.to_string(),
    )?;
    same(
        "batch",
        o.batch.map(|b| b.to_string()),
        net.batch.to_string(),
    )?;
    same("shuffle", flag(o.shuffle), c.shuffle.to_string())?;
    let evaluation = &c.evaluation;
    same(
        "val_split",
        o.val_split.map(|f| f.to_string()),
        match evaluation.validation {
            crate::train::eval::Validation::Split(f) => f.to_string(),
            _ => none(),
        },
    )?;
    same(
        "eval_every",
        o.eval_every.map(|k| k.to_string()),
        evaluation.every.map_or_else(none, |k| k.to_string()),
    )?;
    same("drop_last", flag(o.drop_last), c.drop_last.to_string())?;
    same(
        "record_every",
        o.record_every.map(|k| k.to_string()),
        c.record_every.to_string(),
    )?;
    let opt = &c.optimizer;
    same(
        "optimizer",
        o.optimizer.map(|k| k.to_string()),
        opt.kind.to_string(),
    )?;
    same("lr", o.lr.as_deref().map(list), c.lr.to_string())?;
    // The checkpoint's schedule is resolved (a cosine's T_MAX written out) over the steps the
    // run was first given; the one given now is resolved over the same.
    let resolved = |s: &crate::train::LrSchedule| s.resolved(c.steps).to_string();
    same(
        "lr_schedule",
        o.lr_schedule.as_ref().map(resolved),
        c.lr_schedule.as_ref().map_or_else(none, resolved),
    )?;
    same(
        "momentum",
        o.momentum.map(|m| m.to_string()),
        opt.momentum.to_string(),
    )?;
    same("nesterov", flag(o.nesterov), opt.nesterov.to_string())?;
    same(
        "weight_decay",
        o.weight_decay.map(|w| w.to_string()),
        opt.weight_decay.to_string(),
    )?;
    let pair = |(a, b): (f64, f64)| format!("{a},{b}");
    same("betas", o.betas.map(pair), pair(opt.betas))?;
    same("eps", o.eps.map(|e| e.to_string()), opt.eps.to_string())?;
    same(
        "precisions",
        o.precisions.as_deref().map(list),
        c.precision.to_string(),
    )?;
    same(
        "fp8_scaling",
        o.fp8_scaling
            .as_ref()
            .map(|s| s.trim().to_ascii_lowercase()),
        net.fp8_scaling.name().to_string(),
    )?;
    let (history, margin) = match net.fp8_scaling {
        Fp8Scaling::Delayed { history, margin } => (history.to_string(), margin.to_string()),
        _ => (none(), none()),
    };
    same("fp8_history", o.fp8_history.map(|h| h.to_string()), history)?;
    same("fp8_margin", o.fp8_margin.map(|m| m.to_string()), margin)?;
    same(
        "loss_scale",
        o.loss_scale.map(|s| s.to_string()),
        c.loss_scale.to_string(),
    )?;
    let dynamic = match c.loss_scale {
        LossScale::Dynamic(d) => Some(d),
        _ => None,
    };
    let of_dynamic =
        |f: fn(&crate::train::DynamicScaling) -> String| dynamic.as_ref().map_or_else(none, f);
    same(
        "init_scale",
        o.init_scale.map(|v| v.to_string()),
        of_dynamic(|d| d.init_scale.to_string()),
    )?;
    same(
        "growth_factor",
        o.growth_factor.map(|v| v.to_string()),
        of_dynamic(|d| d.growth_factor.to_string()),
    )?;
    same(
        "backoff_factor",
        o.backoff_factor.map(|v| v.to_string()),
        of_dynamic(|d| d.backoff_factor.to_string()),
    )?;
    same(
        "growth_interval",
        o.growth_interval.map(|v| v.to_string()),
        of_dynamic(|d| d.growth_interval.to_string()),
    )?;
    let (clip_norm, clip_value) = match net.clip {
        Some(Clip::Norm(n)) => (n.to_string(), none()),
        Some(Clip::Value(v)) => (none(), v.to_string()),
        None => (none(), none()),
    };
    same("clip_norm", o.clip_norm.map(|v| v.to_string()), clip_norm)?;
    same(
        "clip_value",
        o.clip_value.map(|v| v.to_string()),
        clip_value,
    )?;
    Ok(())
}
