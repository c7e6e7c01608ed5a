//! What a training run holds in memory, estimated before it allocates anything.

use super::config::TrainConfig;
use super::data::Task;
use super::record::{LayerStep, StepRecord};
use crate::network::memory::{MemoryEstimate, NETWORK_FLAGS};
use crate::ops::optimizer::{has_model_copy, master_dtype};
use crate::stats::StatsRecord;

impl TrainConfig {
    /// What a run needs at most, host and device: the model, its gradients, updates and
    /// optimizer state; the data set; the teacher that draws a built-in task's targets; and
    /// the records (one per layer and step, and the full statistics snapshots every
    /// `record_every` steps). Computed in saturating u128, so no flag can overflow it.
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
        let (inputs, outputs) = (net.widths[0] as u128, net.widths[net.depth] as u128);
        let widest = net.widths.iter().copied().max().unwrap_or(0) as u128;
        let data = samples * (inputs + outputs) * 4 + samples * widest * 16;
        // The teacher evaluates in f64: the inputs, two layers' outputs, one layer's weights.
        let teacher = match self.task {
            Task::Teacher { depth, width } | Task::Classify { depth, width } => {
                let width = if depth > 1 { width as u128 } else { 0 };
                let wide = width.max(inputs).max(outputs);
                samples * inputs * 12 + 2 * samples * wide * 8 + wide * wide * 8
            }
            Task::File { .. } => 0,
        };
        let depth = net.depth as u128;
        let steps = self.steps as u128;
        let snapshots = match self.record_every {
            0 => 2,
            k => steps / k as u128 + 2,
        };
        let records = steps
            * (depth * size_of::<LayerStep>() as u128 + size_of::<StepRecord>() as u128)
            + snapshots * depth * SNAPSHOT_LAYER_BYTES;
        let (_, smaller) = [
            (device, NETWORK_FLAGS),
            (data, "--samples (or the --data file) smaller"),
            (
                teacher,
                "--teacher-width, --teacher-depth or --samples smaller",
            ),
            (records, "--steps smaller or --record-every larger"),
        ]
        .into_iter()
        .max_by_key(|&(bytes, _)| bytes)
        .expect("four parts");
        let sat = |x: u128| x.min(u64::MAX as u128) as u64;
        MemoryEstimate {
            host_bytes: sat(data + teacher + records + if tensors_on_host { device } else { 0 }),
            device_bytes: if tensors_on_host { 0 } else { sat(device) },
            largest_tensor: widest * widest.max(batch),
            smaller,
        }
    }
}

/// One layer of a full statistics snapshot: four records, each with an exponent histogram of
/// up to 256 counts on the heap.
const SNAPSHOT_LAYER_BYTES: u128 = 4 * (size_of::<StatsRecord>() as u128 + 256 * 8);
