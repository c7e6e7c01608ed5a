//! What one training run is, and everything checked before it allocates.

use super::data::Task;
use super::scaler::LossScale;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::network::memory::{MemoryEstimate, MemoryLimits};
use crate::network::NetworkConfig;
use crate::ops::optimizer::{has_model_copy, master_dtype, OptimizerConfig};
use crate::precision::Precision;

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
