//! A deep MLP run forward and backward on any backend, with the statistics record of every
//! layer's pre-activation, activation, gradient and weight gradient beside what theory
//! predicts. `config.rs` says what the network is, `steps.rs` computes it, `record.rs` holds
//! what a run found; `run` here composes the steps and records each layer.

pub mod config;
pub mod record;
pub mod steps;

pub use config::{Clip, Loss, NetworkConfig, KEEP_WEIGHTS_BYTES};
pub use record::{LayerRecord, RunRecord, Summary, TheoryPoint};
pub use steps::{LossStart, Parameters};

use crate::backend::Backend;
use crate::error::Result;
use crate::init::{self, InputInit};
use crate::precision::Precision;
use crate::tensor::HostTensor;
use crate::theory;

/// The tensors a run needs before the timer starts: the input, where backward starts, and the
/// weights and biases.
pub struct Prepared<T> {
    input: T,
    start: LossStart<T>,
    params: Parameters<T>,
}

/// Draws and uploads everything a run of `config` in `precision` needs up front.
pub fn prepare<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
) -> Result<Prepared<B::Tensor>> {
    config.validate()?;
    backend.require(precision)?;
    let dtype = precision.storage();
    let (rows, cols) = (config.batch, config.widths[config.depth]);
    let draw = |purpose: u64, values: InputInit| -> Result<B::Tensor> {
        let mut rng = init::stream(config.seed, purpose, 0);
        let v = values.sample(rows * cols, &mut rng);
        backend.upload(&HostTensor::from_f32_as(dtype, rows, cols, &v)?)
    };
    let start = match config.loss {
        Loss::Probe => LossStart::Upstream(draw(init::UPSTREAM, InputInit::Normal { std: 1.0 })?),
        Loss::Sum => LossStart::Upstream(draw(init::UPSTREAM, InputInit::Constant { value: 1.0 })?),
        Loss::Mse => LossStart::MseTargets(draw(init::TARGETS, InputInit::Normal { std: 1.0 })?),
    };
    let params = Parameters::upload(backend, config, precision)?;
    Ok(Prepared {
        input: backend.upload(&config.input_batch(dtype)?)?,
        start,
        params,
    })
}

/// Runs `config` forward and backward in `precision`, recording every layer. `progress` is
/// told (steps done, steps in all) after every layer of either pass.
pub fn run<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RunRecord> {
    let prepared = prepare(backend, config, precision)?;
    run_prepared(backend, config, precision, &prepared, progress)
}

/// `run` with the tensors of `prepare`: the part worth timing.
pub fn run_prepared<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
    prepared: &Prepared<B::Tensor>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RunRecord> {
    let d = config.depth;
    let steps = 2 * d;
    let mut layers = empty_records(config);
    let Prepared {
        input,
        start,
        params,
    } = prepared;

    layers[0].activation = Some(backend.stats(input)?);
    let (pass, output) =
        steps::forward(backend, config, precision, params, input, &mut |t, z, h| {
            layers[t].pre_activation = Some(backend.stats(z)?);
            layers[t].activation = Some(backend.stats(h)?);
            progress(t, steps);
            Ok(())
        })?;

    let grad_output = steps::loss_gradient(backend, precision, &output, start)?;
    drop(output);
    layers[d].grad_activation = Some(backend.stats(&grad_output)?);

    // Clipping by value applies to each weight gradient as it comes; clipping by norm needs
    // their joint norm first, so it keeps them all.
    let keep_for_norm = matches!(config.clip, Some(Clip::Norm(_)));
    let mut kept: Vec<B::Tensor> = Vec::new();
    let mut norm_squared = 0.0f64;
    steps::backward(
        backend,
        config,
        precision,
        params,
        input,
        pass,
        grad_output,
        &mut |t, dw, g_prev| {
            let dw = match config.clip {
                Some(Clip::Value(limit)) => steps::clip_value(backend, &dw, limit, precision)?,
                _ => dw,
            };
            let dw_stats = backend.stats(&dw)?;
            norm_squared += dw_stats.l2_norm * dw_stats.l2_norm;
            layers[t].grad_weight = Some(dw_stats);
            if keep_for_norm {
                kept.push(dw);
            }
            layers[t - 1].grad_activation = Some(backend.stats(g_prev)?);
            progress(d + (d - t + 1), steps);
            Ok(())
        },
    )?;

    let (mut grad_norm_before_clip, mut clip_coefficient) = (None, None);
    if let Some(Clip::Norm(max_norm)) = config.clip {
        let norm = norm_squared.sqrt();
        let coefficient = steps::clip_norm_coefficient(norm, max_norm);
        grad_norm_before_clip = Some(norm);
        clip_coefficient = Some(coefficient);
        if coefficient < 1.0 {
            // `kept` runs from the top layer down.
            let clipped = steps::scale_all(backend, &kept, coefficient, precision)?;
            for (dw, t) in clipped.iter().zip((1..=d).rev()) {
                layers[t].grad_weight = Some(backend.stats(dw)?);
            }
        }
    }
    Ok(RunRecord {
        precision: precision.name().to_string(),
        summary: record::summarise(&layers),
        layers,
        grad_norm_before_clip,
        clip_coefficient,
    })
}

/// One record per layer 0..=depth, with the theory filled in and no measurements yet.
fn empty_records(config: &NetworkConfig) -> Vec<LayerRecord> {
    let prediction = theory::predict(&config.mean_field());
    (0..=config.depth)
        .map(|t| LayerRecord {
            layer: t,
            pre_activation: None,
            activation: None,
            grad_activation: None,
            grad_weight: None,
            theory: TheoryPoint {
                pre_activation_second_moment: (t > 0)
                    .then(|| prediction.pre_activation_second_moment[t]),
                grad_second_moment: prediction.grad_second_moment[t],
            },
        })
        .collect()
}
