//! `gradstab demo`: the ReLU chain and the tour of the lecture.

use std::process::ExitCode;

use gradstab::api::progress::ignore;
use gradstab::api::run::run_variants;
use gradstab::api::BackendChoice;
use gradstab::demo::{first_overflow_layer, relu_chain_max_abs, ChainConfig};
use gradstab::{Backend, Cpu, Precision};

use super::args::AdapterArg;

pub(crate) fn demo(
    adapter: &AdapterArg,
    backend: Option<BackendChoice>,
    seed: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let default = ChainConfig::default();
    let config = ChainConfig {
        seed: seed.unwrap_or(default.seed),
        ..default
    };
    let device = adapter.open(backend)?;
    // Each part runs on the GPU where it supports every precision, else on the CPU.
    let gpu = device.gpu();
    let run = |precision: Precision| -> anyhow::Result<(Vec<f64>, String)> {
        match gpu {
            Some(gpu) if gpu.supports(precision) => Ok((
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
    out!(
        "A {}-layer ReLU MLP, width {}, batch {}, weights N(0, 1), input N(0, 1), seed {}",
        config.depth,
        config.width,
        config.batch,
        config.seed
    )?;
    if f32_on == f16_on {
        out!("on {f32_on}")?;
    } else {
        out!("f32 on {f32_on}; f16 on {f16_on} (this adapter has no SHADER_F16)")?;
    }
    out!("{:>5}  {:>12}  {:>12}", "layer", "max|h| f32", "max|h| f16")?;
    for t in 0..config.depth {
        out!("{:>5}  {:>12.3e}  {:>12.3e}", t + 1, f32_max[t], f16_max[t])?;
    }
    let growth = (config.width as f64 * config.weight_std * config.weight_std / 2.0).sqrt();
    out!(
        "Theory: each layer multiplies E[h²] by width·σ²/2 = {}, so |h| grows about {growth:.1}× per layer.",
        config.width / 2
    )?;
    // (name, per-layer maxima, the largest finite value, how to print it)
    let describe =
        |name: &str, maxima: &[f64], largest: f64, limit: &str| match first_overflow_layer(
            maxima, largest,
        ) {
            Some(t) if maxima[t - 1].is_finite() => format!(
            "{name} first overflows at layer {t} (this device saturates at {limit} instead of inf)"
        ),
            Some(t) => format!("{name} first overflows at layer {t}"),
            None => format!(
                "{name} stays finite through layer {} (largest |h| {:.2e}, limit {limit})",
                maxima.len(),
                maxima.last().copied().unwrap_or(0.0)
            ),
        };
    out!(
        "{}; {}.",
        describe("f16", &f16_max, gradstab::precision::F16_MAX, "65504"),
        describe("f32", &f32_max, f32::MAX as f64, "3.4e38")
    )?;
    if f16_max.iter().any(|m| m.is_nan()) {
        out!(
            "After an overflow the next matmul meets inf × 0 (the zeros ReLU made), which is NaN."
        )?;
    }
    out!("\nA tour of the lecture (gradstab presets lists them; gradstab run --preset NAME shows every layer):")?;
    for experiment in gradstab::experiment::demo_tour() {
        out!("{}: {}", experiment.name, experiment.summary)?;
        let runs = match gpu {
            Some(gpu) if experiment.precisions.iter().all(|&p| gpu.supports(p)) => {
                run_variants(gpu, &experiment, &mut ignore)?
            }
            _ => run_variants(&Cpu, &experiment, &mut ignore)?,
        };
        for run in &runs {
            out!("    {}", gradstab::experiment::conclusion(run))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
