//! `gradstab.run`: a deep MLP forward and backward, every layer recorded, beside the theory.

use pyo3::prelude::*;

use gradstab::api::RunOptions;
use gradstab::network::Loss;

use crate::convert::{bytes, count, number, parsed, precisions, whole, widths};
use crate::device::Device;
use crate::errors::{guarded, to_py};
use crate::progress::Watch;
use crate::render;

/// A finished `run`: the report `gradstab run` writes.
#[pyclass(module = "gradstab", frozen)]
pub struct RunReport {
    report: gradstab::report::run::RunReport,
}

#[pymethods]
impl RunReport {
    /// `gradstab run --format json`.
    fn json(&self) -> PyResult<String> {
        render::json(&self.report)
    }

    /// `gradstab run --format csv`: one row per (variant, precision, layer, quantity).
    fn csv(&self) -> PyResult<String> {
        render::text(|out| gradstab::report::run::csv(out, &self.report))
    }

    /// `gradstab run`'s terminal table.
    fn table(&self) -> PyResult<String> {
        render::text(|out| gradstab::report::run::table(&mut &mut *out, &self.report))
    }

    /// `--plot`: log10 variance against depth, as an SVG file written whole or not at all.
    fn plot(&self, path: std::path::PathBuf) -> PyResult<()> {
        guarded(|| gradstab::report::plot::svg(&self.report, &path))
    }
}

/// Runs `gradstab run` with these options on `device`; the names and forms are the command
/// line's (`width` takes an int or a list, `precision` a name or a list).
#[pyfunction]
#[pyo3(signature = (device, *, preset=None, depth=None, width=None, batch=None,
    activation=None, init=None, input=None, bias_std=None, residual=false,
    output_activation=None, loss=None,
    clip_norm=None, clip_value=None, precision=None, fp8_scaling=None, fp8_history=None,
    fp8_margin=None, seed=None, weights=None, data=None, max_memory=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn run(
    py: Python<'_>,
    device: &Device,
    preset: Option<String>,
    depth: Option<&Bound<'_, PyAny>>,
    width: Option<&Bound<'_, PyAny>>,
    batch: Option<&Bound<'_, PyAny>>,
    activation: Option<&str>,
    init: Option<&str>,
    input: Option<&str>,
    bias_std: Option<&Bound<'_, PyAny>>,
    residual: bool,
    output_activation: Option<bool>,
    loss: Option<&str>,
    clip_norm: Option<&Bound<'_, PyAny>>,
    clip_value: Option<&Bound<'_, PyAny>>,
    precision: Option<&Bound<'_, PyAny>>,
    fp8_scaling: Option<String>,
    fp8_history: Option<&Bound<'_, PyAny>>,
    fp8_margin: Option<i32>,
    seed: Option<&Bound<'_, PyAny>>,
    weights: Option<std::path::PathBuf>,
    data: Option<std::path::PathBuf>,
    max_memory: Option<&Bound<'_, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<RunReport> {
    let options = RunOptions {
        preset: preset.clone(),
        depth: count("depth", depth, 1)?,
        widths: widths(width)?,
        batch: count("batch", batch, 1)?,
        activation: parsed(activation)?,
        init: parsed(init)?,
        input: parsed(input)?,
        bias_std: number("bias_std", bias_std)?,
        residual,
        output_activation,
        loss: parsed::<Loss>(loss)?,
        clip_norm: number("clip_norm", clip_norm)?,
        clip_value: number("clip_value", clip_value)?,
        precisions: precisions(precision)?,
        fp8_scaling,
        fp8_history: count("fp8_history", fp8_history, 1)?,
        fp8_margin,
        seed: whole("seed", seed, 0)?,
        weights,
        data,
        max_memory: bytes("max_memory", max_memory)?,
    };
    let backend = &device.inner;
    let mut watch = Watch::new(progress);
    let result = py.detach(|| {
        guarded(|| {
            let experiment = options.experiment()?;
            gradstab::api::run_experiment(backend, &experiment, preset, &mut |p| watch.tick(p))
        })
    });
    let report = watch.finish(result)?;
    Ok(RunReport { report })
}

/// The presets of `run` and `train`, as (command, name, summary).
#[pyfunction]
pub fn presets() -> PyResult<Vec<(&'static str, String, String)>> {
    let mut list: Vec<_> = gradstab::experiment::presets()
        .into_iter()
        .map(|e| ("run", e.name.to_string(), e.summary.to_string()))
        .collect();
    for name in gradstab::train::presets::NAMES {
        let preset = gradstab::train::presets::preset(name).map_err(to_py)?;
        list.push(("train", name.to_string(), preset.conclusion.to_string()));
    }
    Ok(list)
}
