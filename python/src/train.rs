//! `gradstab.train`: train a deep MLP and record every step.

use pyo3::prelude::*;

use gradstab::api::{TaskKind, TrainOptions, TrainOutcome};
use gradstab::network::given::LayerNames;
use gradstab::train::LossScale;

use crate::convert::{bytes, count, items, number, parsed, precisions, whole, widths};
use crate::device::Device;
use crate::errors::{guarded, invalid};
use crate::progress::Watch;
use crate::render;

/// A finished `train`: the report `gradstab train` writes, and the last run's weights.
#[pyclass(module = "gradstab", frozen)]
pub struct TrainReport {
    outcome: TrainOutcome,
}

#[pymethods]
impl TrainReport {
    /// `gradstab train --format json`.
    fn json(&self) -> PyResult<String> {
        render::json(&self.outcome.report)
    }

    /// `gradstab train --format csv`: one row per (run, recorded step, layer).
    fn csv(&self) -> PyResult<String> {
        render::text(|out| gradstab::report::train::csv(out, &self.outcome.report))
    }

    /// `gradstab train`'s terminal table.
    fn table(&self) -> PyResult<String> {
        render::text(|out| gradstab::report::train::table(&mut &mut *out, &self.outcome.report))
    }

    /// `--plot`: the loss curves of every run, as an SVG file.
    fn plot(&self, path: std::path::PathBuf) -> PyResult<()> {
        guarded(|| gradstab::report::train_plot::loss_curves(&self.outcome.report, &path))
    }

    /// `--heatmap`: log10 ‖ΔW‖/‖W‖ per layer and step, as an SVG file.
    fn heatmap(&self, path: std::path::PathBuf) -> PyResult<()> {
        guarded(|| gradstab::report::train_plot::update_heat_map(&self.outcome.report, &path))
    }

    /// `--save-weights`: the trained model as a state dict (safetensors) that
    /// `model.load_state_dict` takes, under `names` (a (weight, bias or None) pair per layer)
    /// or the names the weights were loaded with, with the activation and output activation
    /// in the file's metadata (which `weights=` reads back); refused for a diverged run.
    #[pyo3(signature = (path, names=None))]
    fn save_weights(
        &self,
        path: std::path::PathBuf,
        names: Option<Vec<(String, Option<String>)>>,
    ) -> PyResult<()> {
        let names: Option<Vec<LayerNames>> = names.map(|n| {
            n.into_iter()
                .map(|(weight, bias)| LayerNames { weight, bias })
                .collect()
        });
        guarded(|| self.outcome.save_weights_named(&path, names.as_deref()))
    }
}

/// Learning rates: a number, a sequence of numbers, or the command line's "0.01,0.1".
fn rates(value: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    if let Ok(text) = value.extract::<String>() {
        return text
            .split(',')
            .map(|r| {
                r.trim()
                    .parse::<f64>()
                    .map_err(|_| invalid(format!("lr: expected numbers, got '{text}'")))
            })
            .collect();
    }
    items(value)
        .iter()
        .map(|r| Ok(number("lr", Some(r))?.expect("given")))
        .collect()
}

/// Runs `gradstab train` with these options on `device`; the names and forms are the command
/// line's (`lr` takes a number or a list, `precision` a name or a list, `betas` a pair).
#[pyfunction]
#[pyo3(signature = (device, *, preset=None, depth=None, width=None, outputs=None, activation=None,
    init=None, bias=false, bias_std=None, residual=false, output_activation=None, seed=None, weights=None,
    keep_weights=false, task=None, teacher_depth=None, teacher_width=None, samples=None,
    data=None, batch=None, shuffle=false, drop_last=false, steps=None, epochs=None,
    record_every=None, optimizer=None,
    lr=None, lr_schedule=None, momentum=None, nesterov=false, weight_decay=None, betas=None,
    eps=None, precision=None, fp8_scaling=None, fp8_history=None, fp8_margin=None,
    loss_scale=None, init_scale=None, growth_factor=None, backoff_factor=None,
    growth_interval=None, clip_norm=None, clip_value=None, max_memory=None, checkpoint=None,
    checkpoint_every=None, resume=None, val_data=None, val_split=None, eval_every=None,
    progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    device: &Device,
    preset: Option<String>,
    depth: Option<&Bound<'_, PyAny>>,
    width: Option<&Bound<'_, PyAny>>,
    outputs: Option<&Bound<'_, PyAny>>,
    activation: Option<&str>,
    init: Option<&str>,
    bias: bool,
    bias_std: Option<&Bound<'_, PyAny>>,
    residual: bool,
    output_activation: Option<bool>,
    seed: Option<&Bound<'_, PyAny>>,
    weights: Option<std::path::PathBuf>,
    keep_weights: bool,
    task: Option<&str>,
    teacher_depth: Option<&Bound<'_, PyAny>>,
    teacher_width: Option<&Bound<'_, PyAny>>,
    samples: Option<&Bound<'_, PyAny>>,
    data: Option<std::path::PathBuf>,
    batch: Option<&Bound<'_, PyAny>>,
    shuffle: bool,
    drop_last: bool,
    steps: Option<&Bound<'_, PyAny>>,
    epochs: Option<&Bound<'_, PyAny>>,
    record_every: Option<&Bound<'_, PyAny>>,
    optimizer: Option<&str>,
    lr: Option<&Bound<'_, PyAny>>,
    lr_schedule: Option<&str>,
    momentum: Option<&Bound<'_, PyAny>>,
    nesterov: bool,
    weight_decay: Option<&Bound<'_, PyAny>>,
    betas: Option<&Bound<'_, PyAny>>,
    eps: Option<&Bound<'_, PyAny>>,
    precision: Option<&Bound<'_, PyAny>>,
    fp8_scaling: Option<String>,
    fp8_history: Option<&Bound<'_, PyAny>>,
    fp8_margin: Option<i32>,
    loss_scale: Option<&Bound<'_, PyAny>>,
    init_scale: Option<&Bound<'_, PyAny>>,
    growth_factor: Option<&Bound<'_, PyAny>>,
    backoff_factor: Option<&Bound<'_, PyAny>>,
    growth_interval: Option<&Bound<'_, PyAny>>,
    clip_norm: Option<&Bound<'_, PyAny>>,
    clip_value: Option<&Bound<'_, PyAny>>,
    max_memory: Option<&Bound<'_, PyAny>>,
    checkpoint: Option<std::path::PathBuf>,
    checkpoint_every: Option<&Bound<'_, PyAny>>,
    resume: Option<std::path::PathBuf>,
    val_data: Option<std::path::PathBuf>,
    val_split: Option<&Bound<'_, PyAny>>,
    eval_every: Option<&Bound<'_, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<TrainReport> {
    let lr = lr.map(rates).transpose()?;
    let betas = betas
        .map(|b| {
            let pair = items(b);
            match pair.as_slice() {
                [b1, b2] => Ok((
                    number("betas", Some(b1))?.expect("given"),
                    number("betas", Some(b2))?.expect("given"),
                )),
                _ => Err(invalid(format!("betas: expected a pair (β1, β2), got {b}"))),
            }
        })
        .transpose()?;
    // A loss scale is a name ("none", "dynamic", "static:1024") or a number (a static scale).
    let loss_scale: Option<LossScale> = match loss_scale {
        None => None,
        Some(v) => match v.extract::<String>() {
            Ok(text) => parsed(Some(&text))?,
            Err(_) => {
                let s = number("loss_scale", Some(v))?.expect("given");
                parsed(Some(&format!("static:{s}")))?
            }
        },
    };
    let options = TrainOptions {
        preset: preset.clone(),
        depth: count("depth", depth, 1)?,
        widths: widths(width)?,
        outputs: count("outputs", outputs, 1)?,
        activation: parsed(activation)?,
        init: parsed(init)?,
        bias,
        bias_std: number("bias_std", bias_std)?,
        residual,
        output_activation,
        seed: whole("seed", seed, 0)?,
        weights,
        save_weights: None,
        task: parsed::<TaskKind>(task)?,
        teacher_depth: count("teacher_depth", teacher_depth, 1)?,
        teacher_width: count("teacher_width", teacher_width, 1)?,
        samples: count("samples", samples, 1)?,
        data,
        batch: count("batch", batch, 1)?,
        shuffle,
        drop_last,
        steps: count("steps", steps, 1)?,
        epochs: count("epochs", epochs, 1)?,
        record_every: count("record_every", record_every, 0)?,
        optimizer: parsed(optimizer)?,
        lr,
        lr_schedule: parsed(lr_schedule)?,
        momentum: number("momentum", momentum)?,
        nesterov,
        weight_decay: number("weight_decay", weight_decay)?,
        betas,
        eps: number("eps", eps)?,
        precisions: precisions(precision)?,
        fp8_scaling,
        fp8_history: count("fp8_history", fp8_history, 1)?,
        fp8_margin,
        loss_scale,
        init_scale: number("init_scale", init_scale)?,
        growth_factor: number("growth_factor", growth_factor)?,
        backoff_factor: number("backoff_factor", backoff_factor)?,
        growth_interval: whole("growth_interval", growth_interval, 1)?,
        clip_norm: number("clip_norm", clip_norm)?,
        clip_value: number("clip_value", clip_value)?,
        max_memory: bytes("max_memory", max_memory)?,
        checkpoint,
        checkpoint_every: count("checkpoint_every", checkpoint_every, 1)?,
        resume,
        val_data,
        val_split: number("val_split", val_split)?,
        eval_every: count("eval_every", eval_every, 1)?,
    };
    let backend = &device.inner;
    let mut watch = Watch::new(progress);
    let result = py.detach(|| {
        guarded(|| {
            let plan = options.plan()?;
            if keep_weights && plan.runs.runs.len() > 1 {
                return Err(gradstab::Error::InvalidArgument(format!(
                    "keep_weights keeps one model: give one lr and one precision, not {} runs",
                    plan.runs.runs.len()
                )));
            }
            gradstab::api::train_plan(backend, &plan, preset, keep_weights, &mut |p| watch.tick(p))
        })
    });
    let outcome = watch.finish(result)?;
    Ok(TrainReport { outcome })
}
