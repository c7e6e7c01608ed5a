//! Training a deep MLP: minibatches of a task, forward, the loss, backward, loss scaling,
//! clipping and an optimizer step, on any backend, recording the loss and every layer's
//! gradient and update at every step. `data.rs` says what it trains on, `scaler.rs` how the
//! loss is scaled, `record.rs` what a run found, `presets.rs` the experiments; the step
//! itself is `run_training` here, made of `network::steps` and the loss and optimizer ops.
//!
//! Precision: `f32`; `f16`, PyTorch's `model.half()` (weights, gradients and optimizer
//! state in f16, every op rounded to f16); `f16acc32`, mixed precision (f16 weights and
//! matmuls with f32 accumulation for forward and backward, f32 master weights and optimizer
//! state, the f16 weights rounded from the masters after each step).

pub mod data;
pub mod presets;
pub mod record;
pub mod scaler;
pub mod weights;

pub use data::{Batches, Targets, Task, TrainData};
pub use record::{LayerSnapshot, LayerStep, StepRecord, TrainReport, TrainRun, TrainSummary};
pub use scaler::{DynamicScaling, LossScale, Scaler};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::network::memory::{MemoryEstimate, MemoryLimits};
use crate::network::steps::{self, LayerGradients, Parameters};
use crate::network::{Clip, NetworkConfig};
use crate::ops::optimizer::{
    self, has_model_copy, master_dtype, OptimizerConfig, StepScalars, StepTensors,
};
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::HostTensor;

/// Everything that defines one training run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainConfig {
    /// The model: depth, widths, activation, initialiser, biases, residual connections,
    /// clipping and seed; `batch` is the minibatch size.
    pub network: NetworkConfig,
    pub task: Task,
    /// Samples in the data set of a built-in task.
    pub samples: usize,
    pub shuffle: bool,
    pub steps: usize,
    /// Keep the full statistics records every this many steps (and at the first and last);
    /// 0: at the first and last only.
    pub record_every: usize,
    pub optimizer: OptimizerConfig,
    pub lr: f64,
    #[serde(serialize_with = "precision_name")]
    pub precision: Precision,
    pub loss_scale: LossScale,
}

impl TrainConfig {
    /// Everything checked before anything is drawn or allocated.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        let net = &self.network;
        net.validate()?;
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        let samples = self.data_samples();
        if samples == 0 {
            return bad("the data set needs at least one sample".into());
        }
        if net.batch > samples {
            return bad(format!(
                "--batch {} exceeds the {samples} samples of the data set",
                net.batch
            ));
        }
        self.optimizer.validate(self.lr)?;
        match self.loss_scale {
            LossScale::Dynamic(d) => d.validate()?,
            LossScale::Static { scale } if !(scale > 0.0 && scale <= f32::MAX as f64) => {
                return bad(format!(
                    "a static loss scale must be > 0 and finite, got {scale}"
                ))
            }
            _ => {}
        }
        if self.precision == Precision::F16 && self.loss_scale != LossScale::None {
            // GradScaler refuses too ("Attempting to unscale FP16 gradients"): unscaling in
            // f16 would lose what the scale saved. Mixed precision is f16acc32.
            return bad(
                "loss scaling needs f32 master weights: use --precision f16acc32 (mixed \
                 precision); pure f16 trains without a loss scale, as PyTorch's GradScaler \
                 refuses FP16 gradients"
                    .into(),
            );
        }
        match &self.task {
            Task::Teacher { depth, width } | Task::Classify { depth, width } => {
                if *depth == 0 || *width == 0 {
                    return bad("the teacher needs a depth and width of at least 1".into());
                }
                if matches!(self.task, Task::Classify { .. }) && net.widths[net.depth] < 2 {
                    return bad("--task classify needs at least 2 outputs (classes)".into());
                }
            }
            Task::File { source, data } => {
                if data.x.shape().cols != net.widths[0] {
                    return bad(format!(
                        "x of {source} has {} columns, but the network takes {} inputs",
                        data.x.shape().cols,
                        net.widths[0]
                    ));
                }
                data.check_outputs(net.widths[net.depth], source)?;
            }
        }
        Ok(())
    }

    /// Samples in the data set.
    pub fn data_samples(&self) -> usize {
        match &self.task {
            Task::File { data, .. } => data.samples(),
            _ => self.samples,
        }
    }

    /// What a run needs at most, host and device.
    pub fn memory_estimate(&self, tensors_on_host: bool) -> MemoryEstimate {
        let net = &self.network;
        let s = self.precision.storage().size_bytes() as u128;
        let m = master_dtype(self.precision).size_bytes() as u128;
        let params: u128 = net
            .widths
            .windows(2)
            .map(|w| w[0] as u128 * w[1] as u128 + w[1] as u128)
            .sum();
        let copy = if has_model_copy(self.precision) { m } else { 0 };
        // Weights, gradients, f32 updates, masters and the state.
        let per_param = s + s + 4 + copy + self.optimizer.state_tensors() as u128 * m;
        let batch = net.batch as u128;
        let activations: u128 = net.widths.iter().map(|&n| batch * n as u128).sum::<u128>() * s * 3;
        let device = params * per_param + activations;
        let samples = self.data_samples() as u128;
        let widest = net.widths.iter().copied().max().unwrap_or(0) as u128;
        let data = samples * (net.widths[0] as u128 + net.widths[net.depth] as u128) * 4
            + samples * widest * 16;
        let records = self.steps as u128 * net.depth as u128 * 64;
        let sat = |x: u128| x.min(u64::MAX as u128) as u64;
        MemoryEstimate {
            host_bytes: sat(data + records + if tensors_on_host { device } else { 0 }),
            device_bytes: if tensors_on_host { 0 } else { sat(device) },
            largest_tensor: widest * widest.max(batch),
        }
    }
}

fn precision_name<S: serde::Serializer>(
    p: &Precision,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// Checks `config` against `backend` and memory, allocating nothing.
pub fn check<B: Backend>(backend: &B, config: &TrainConfig) -> Result<()> {
    config.validate()?;
    backend.require(config.precision)?;
    MemoryLimits::new(
        backend.max_tensor_len(config.precision.storage()),
        backend.device_memory_is_host(),
        config.network.max_memory_bytes,
    )
    .check(&config.memory_estimate(backend.tensors_on_host()))
}

/// The optimizer's tensors for one parameter.
struct Slot<T> {
    /// The f32 master in mixed precision (the model's f16 copy lives in `Parameters`).
    master: Option<T>,
    first: Option<T>,
    second: Option<T>,
}

fn zeros_like(dtype: DType, rows: usize, cols: usize) -> Result<HostTensor> {
    HostTensor::from_f32_as(dtype, rows, cols, &vec![0.0; rows * cols])
}

impl<T> Slot<T> {
    fn new<B: Backend<Tensor = T>>(
        backend: &B,
        config: &TrainConfig,
        initial: &HostTensor,
    ) -> Result<Self> {
        let master = master_dtype(config.precision);
        let (rows, cols) = (initial.shape().rows, initial.shape().cols);
        let state = |used: bool| -> Result<Option<T>> {
            if used {
                Ok(Some(backend.upload(&zeros_like(master, rows, cols)?)?))
            } else {
                Ok(None)
            }
        };
        let n = config.optimizer.state_tensors();
        Ok(Slot {
            master: if has_model_copy(config.precision) {
                Some(backend.upload(&initial.cast(DType::F32))?)
            } else {
                None
            },
            first: state(n >= 1)?,
            second: state(n >= 2)?,
        })
    }
}

/// The trained weights, as the state dict `--save-weights` writes.
pub struct FinalWeights {
    pub weights: Vec<HostTensor>,
    pub biases: Vec<Option<HostTensor>>,
}

/// A run's record, and its final weights where asked for.
pub struct TrainOutcome {
    pub run: TrainRun,
    pub weights: Option<FinalWeights>,
}

/// Trains `config` on `backend`, telling `progress` each finished step.
pub fn run_training<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    label: &str,
    want_weights: bool,
    progress: &mut dyn FnMut(usize),
) -> Result<TrainOutcome> {
    check(backend, config)?;
    let net = &config.network;
    let p = config.precision;
    let storage = p.storage();
    let d = net.depth;
    let kind = config.task.loss();
    let data = data::teacher_data(
        &config.task,
        config.samples,
        net.widths[0],
        net.widths[d],
        net.seed,
    )?;
    let mut batches = Batches::new(data.samples(), net.batch, config.shuffle, net.seed);

    // The model in its storage type, and the optimizer's tensors beside it.
    let mut weights = Vec::with_capacity(d);
    let mut biases = vec![None];
    let mut weight_slots = Vec::with_capacity(d);
    let mut bias_slots: Vec<Option<Slot<B::Tensor>>> = vec![None];
    for t in 1..=d {
        let w = net.weight(t, DType::F32)?;
        weights.push(backend.upload(&w.cast(storage))?);
        weight_slots.push(Slot::new(backend, config, &w)?);
        match net.bias(t, DType::F32)? {
            Some(b) => {
                biases.push(Some(backend.upload(&b.cast(storage))?));
                bias_slots.push(Some(Slot::new(backend, config, &b)?));
            }
            None => {
                biases.push(None);
                bias_slots.push(None);
            }
        }
    }
    let ones = if net.has_biases() {
        Some(backend.upload(&HostTensor::from_f32_as(
            storage,
            net.batch,
            1,
            &vec![1.0; net.batch],
        )?)?)
    } else {
        None
    };
    let mut params = Parameters::from_parts(weights, biases, ones);

    // ‖W^t‖ before the first step.
    let mut pending = Vec::with_capacity(d);
    for t in 1..=d {
        let master = match &weight_slots[t - 1].master {
            Some(m) => m,
            None => params.weight_mut(t).expect("kept"),
        };
        pending.push(backend.stats_later(master)?);
    }
    let mut weight_norms: Vec<f64> = backend
        .collect_stats(pending)?
        .iter()
        .map(|r| r.l2_norm)
        .collect();

    let mut scaler = Scaler::new(config.loss_scale);
    let mut optimizer_steps = 0u64;
    let mut records: Vec<StepRecord> = Vec::with_capacity(config.steps);
    let mut diverged_at = None;
    let mut fixed_batch: Option<(B::Tensor, B::Tensor)> = None;
    for step in 1..=config.steps {
        let snapshot_now = step == 1
            || step == config.steps
            || (config.record_every > 0 && step % config.record_every == 0);
        if fixed_batch.is_none() || !batches.is_fixed() {
            let (x, y) = data.gather(&batches.next_rows())?;
            fixed_batch = Some((backend.upload(&x.cast(storage))?, backend.upload(&y)?));
        }
        let (x, y) = fixed_batch.as_ref().expect("just uploaded");

        // Forward, the loss, backward: every record started, none waited for.
        let mut forward_pending = Vec::new();
        let (pass, output) = steps::forward(backend, net, p, &params, x, &mut |_, z, h| {
            if snapshot_now {
                forward_pending.push(backend.stats_later(z)?);
                forward_pending.push(backend.stats_later(h)?);
            }
            Ok(())
        })?;
        let output_shape = backend.shape(&output);
        let coefficient = kind.gradient_coefficient(output_shape, scaler.scale() as f64);
        let (grad_output, row_loss) = backend.loss(kind, &output, y, coefficient, p)?;
        drop(output);
        let loss_pending = backend.stats_later(&row_loss)?;
        let mut grad_h_pending = Vec::new();
        if snapshot_now {
            grad_h_pending.push(backend.stats_later(&grad_output)?);
        }
        let mut grads: Vec<Option<LayerGradients<B::Tensor>>> = (0..=d).map(|_| None).collect();
        let mut weight_grad_pending = Vec::with_capacity(d);
        let mut bias_grad_pending = Vec::new();
        steps::backward(
            backend,
            net,
            p,
            &params,
            x,
            pass,
            grad_output,
            &mut |t, g, g_prev| {
                weight_grad_pending.push(backend.stats_later(&g.weight)?);
                if let Some(b) = &g.bias {
                    bias_grad_pending.push(backend.stats_later(b)?);
                }
                if snapshot_now && t > 1 {
                    grad_h_pending.push(backend.stats_later(g_prev)?);
                }
                grads[t] = Some(g);
                Ok(())
            },
        )?;
        let (n_forward, n_grad_h) = (forward_pending.len(), grad_h_pending.len());
        let n_bias = bias_grad_pending.len();
        let mut all = vec![loss_pending];
        all.extend(weight_grad_pending); // layers d, d − 1, …, 1
        all.extend(bias_grad_pending);
        all.extend(forward_pending);
        all.extend(grad_h_pending);
        let mut found = backend.collect_stats(all)?.into_iter();
        let loss_record = found.next().expect("the loss record");
        let mut weight_grads: Vec<StatsRecord> = found.by_ref().take(d).collect();
        weight_grads.reverse(); // layer 1 first
        let bias_grads: Vec<StatsRecord> = found.by_ref().take(n_bias).collect();
        let forward_records: Vec<StatsRecord> = found.by_ref().take(n_forward).collect();
        let grad_h_records: Vec<StatsRecord> = found.by_ref().take(n_grad_h).collect();

        let loss = mean_loss(kind, &loss_record, output_shape);
        let inv_scale = scaler.inv_scale() as f64;
        let found_inf = weight_grads
            .iter()
            .chain(&bias_grads)
            .any(|r| r.finite() != r.count);
        let snapshot = snapshot_now.then(|| {
            (1..=d)
                .map(|t| LayerSnapshot {
                    layer: t,
                    pre_activation: forward_records[2 * (t - 1)].clone(),
                    activation: forward_records[2 * (t - 1) + 1].clone(),
                    // grad_h_records holds ∂l/∂H^d first, then ∂l/∂H^{d−1}, …, ∂l/∂H^1.
                    grad_activation: grad_h_records[d - t].clone(),
                    grad_weight: weight_grads[t - 1].clone(),
                })
                .collect()
        });
        let layer_steps = |norms: &[f64], ratios: &[f64]| -> Vec<LayerStep> {
            (1..=d)
                .map(|t| {
                    let g = &weight_grads[t - 1];
                    let n = g.count.max(1) as f64;
                    LayerStep {
                        layer: t,
                        grad_norm: g.l2_norm * inv_scale,
                        weight_norm: norms[t - 1],
                        update_ratio: ratios[t - 1],
                        grad_zero_fraction: g.zero as f64 / n,
                        grad_subnormal_fraction: g.subnormal as f64 / n,
                        grad_non_finite_fraction: (g.count - g.finite()) as f64 / n,
                    }
                })
                .collect()
        };
        let loss_scale = scaler.scale() as f64;

        if !loss.is_finite() {
            diverged_at = Some(step);
            records.push(StepRecord {
                step,
                loss,
                loss_scale,
                skipped: true,
                layers: layer_steps(&weight_norms, &vec![0.0; d]),
                snapshot,
            });
            progress(step);
            break;
        }
        if found_inf && scaler.skips_non_finite() {
            scaler.update(true);
            records.push(StepRecord {
                step,
                loss,
                loss_scale,
                skipped: true,
                layers: layer_steps(&weight_norms, &vec![0.0; d]),
                snapshot,
            });
            progress(step);
            continue;
        }

        // Unscale, clip, step: one kernel per parameter tensor.
        let clip_coefficient = match net.clip {
            Some(Clip::Norm(max_norm)) => {
                let squares: f64 = weight_grads
                    .iter()
                    .chain(&bias_grads)
                    .map(|r| r.l2_norm * r.l2_norm)
                    .sum();
                steps::clip_norm_coefficient(squares.sqrt() * inv_scale, max_norm)
            }
            _ => 1.0,
        };
        let clip_value = match net.clip {
            Some(Clip::Value(limit)) => Some(limit),
            _ => None,
        };
        optimizer_steps += 1;
        let scalars = StepScalars {
            lr: config.lr,
            step: optimizer_steps,
            grad_scale: scaler.inv_scale() as f64,
            clip_value,
            clip_coefficient,
        };
        let mut update_pending = Vec::with_capacity(2 * d);
        for t in 1..=d {
            let g = grads[t].take().expect("backward handed every layer");
            let slot = &mut weight_slots[t - 1];
            let model = params.weight_mut(t).expect("training keeps its weights");
            let delta = step_one(backend, config, &scalars, &g.weight, slot, model)?;
            update_pending.push(backend.stats_later(&delta)?);
            let master = match &slot.master {
                Some(m) => m,
                None => &*model,
            };
            update_pending.push(backend.stats_later(master)?);
            if let (Some(db), Some(slot)) = (&g.bias, bias_slots[t].as_mut()) {
                let model = params.bias_mut(t).expect("a bias slot has a bias");
                step_one(backend, config, &scalars, db, slot, model)?;
            }
        }
        let updates = backend.collect_stats(update_pending)?;
        let mut ratios = vec![0.0; d];
        for t in 1..=d {
            let (delta, w) = (&updates[2 * (t - 1)], &updates[2 * (t - 1) + 1]);
            ratios[t - 1] = delta.l2_norm / weight_norms[t - 1];
            weight_norms[t - 1] = w.l2_norm;
        }
        scaler.update(found_inf);
        records.push(StepRecord {
            step,
            loss,
            loss_scale,
            skipped: false,
            layers: layer_steps(&weight_norms, &ratios),
            snapshot,
        });
        progress(step);
    }

    let weights = if want_weights {
        let mut w = Vec::with_capacity(d);
        let mut b = vec![];
        for t in 1..=d {
            let master = match &weight_slots[t - 1].master {
                Some(m) => backend.download(m)?,
                None => backend.download(params.weight_mut(t).expect("kept"))?,
            };
            w.push(master);
            b.push(match (&bias_slots[t], params.bias_mut(t)) {
                (
                    Some(Slot {
                        master: Some(m), ..
                    }),
                    _,
                ) => Some(backend.download(m)?),
                (_, Some(model)) => Some(backend.download(model)?),
                _ => None,
            });
        }
        Some(FinalWeights {
            weights: w,
            biases: b,
        })
    } else {
        None
    };
    Ok(TrainOutcome {
        run: TrainRun {
            label: label.to_string(),
            config: config.clone(),
            summary: summarize(&records, diverged_at, scaler.scale() as f64, d),
            steps: records,
        },
        weights,
    })
}

/// One optimizer step of one parameter: the master (or the model itself) updated in place,
/// the model's f16 copy rounded from it in mixed precision. Returns W_new − W_old.
fn step_one<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    scalars: &StepScalars,
    grad: &B::Tensor,
    slot: &mut Slot<B::Tensor>,
    model: &mut B::Tensor,
) -> Result<B::Tensor> {
    let len = backend.shape(grad).len();
    let params = optimizer::Params::new(&config.optimizer, scalars, len, config.precision);
    let (param, model) = match slot.master.as_mut() {
        Some(master) => (master, Some(model)),
        None => (model, None),
    };
    backend.optimizer_step(
        config.optimizer.kind,
        &params,
        StepTensors {
            grad,
            param,
            first_moment: slot.first.as_mut(),
            second_moment: slot.second.as_mut(),
            model,
        },
        config.precision,
    )
}

/// The mean loss from the record of the row losses: NaN where a row's loss is NaN, inf
/// where one is inf.
fn mean_loss(
    kind: crate::ops::loss::LossKind,
    rows: &StatsRecord,
    output: crate::tensor::Shape,
) -> f64 {
    if rows.nan > 0 || (rows.pos_inf > 0 && rows.neg_inf > 0) {
        return f64::NAN;
    }
    if rows.pos_inf > 0 {
        return f64::INFINITY;
    }
    if rows.neg_inf > 0 {
        return f64::NEG_INFINITY;
    }
    kind.mean_loss(rows.mean * rows.count as f64, output)
}

fn summarize(
    records: &[StepRecord],
    diverged_at: Option<usize>,
    final_loss_scale: f64,
    depth: usize,
) -> TrainSummary {
    let applied: Vec<&StepRecord> = records.iter().filter(|r| !r.skipped).collect();
    let mean_update_ratio = (0..depth)
        .map(|i| {
            if applied.is_empty() {
                0.0
            } else {
                applied
                    .iter()
                    .map(|r| r.layers[i].update_ratio)
                    .sum::<f64>()
                    / applied.len() as f64
            }
        })
        .collect();
    TrainSummary {
        start_loss: records.first().map_or(f64::NAN, |r| r.loss),
        final_loss: records.last().map_or(f64::NAN, |r| r.loss),
        min_loss: records
            .iter()
            .map(|r| r.loss)
            .filter(|l| l.is_finite())
            .fold(f64::INFINITY, f64::min),
        diverged_at,
        steps_run: records.len(),
        skipped_steps: records.iter().filter(|r| r.skipped).count(),
        final_loss_scale,
        mean_update_ratio,
    }
}
