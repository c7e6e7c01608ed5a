//! What a training run holds in memory, estimated before it allocates anything.

use super::config::TrainConfig;
use super::data::Task;
use super::record::{LayerStep, StepRecord};
use crate::network::memory::{counted, saturate, MemoryEstimate, NETWORK_FLAGS};
use crate::ops::optimizer::{has_model_copy, master_dtype};
use crate::stats::StatsRecord;

impl TrainConfig {
    /// What a run needs at most, host and device: the model, its gradients, updates and
    /// optimizer state; the data set; the teacher that draws a built-in task's targets; and
    /// the records (one per layer and step, and the full statistics snapshots every
    /// `record_every` steps). Computed in u128 over counts capped at 2^48 (`counted`), so no flag
    /// can overflow it.
    pub fn memory_estimate(&self, tensors_on_host: bool) -> MemoryEstimate {
        let net = &self.network;
        let s = self.precision.storage().size_bytes() as u128;
        let m = master_dtype(self.precision).size_bytes() as u128;
        let params: u128 = net
            .widths
            .windows(2)
            .map(|w| counted(w[0]) * counted(w[1]) + counted(w[1]))
            .sum();
        let copy = if has_model_copy(self.precision) { m } else { 0 };
        // Weights, gradients, f32 updates, masters and the state.
        let per_param = s + s + 4 + copy + self.optimizer.state_tensors() as u128 * m;
        let batch = counted(net.batch);
        let activations: u128 =
            net.widths.iter().map(|&n| batch * counted(n)).sum::<u128>() * s * 3;
        let widest = counted(net.widths.iter().copied().max().unwrap_or(0));
        // FP8: a matmul's quantised operands and the scaled copy of the largest (as `run`).
        let quantised = match self.precision.quantised() {
            Some(_) => (widest * widest + 2 * batch * widest) + widest * widest.max(batch) * s,
            None => 0,
        };
        let device = params * per_param + activations + quantised;
        let samples = counted(self.data_samples());
        let (inputs, outputs) = (counted(net.widths[0]), counted(net.widths[net.depth]));
        let data = samples * (inputs + outputs) * 4 + samples * widest * 16;
        // The teacher evaluates in f64: the inputs, two layers' outputs, one layer's weights.
        let teacher = match self.task {
            Task::Teacher { depth, width } | Task::Classify { depth, width } => {
                let width = if depth > 1 { counted(width) } else { 0 };
                let wide = width.max(inputs).max(outputs);
                samples * inputs * 12 + 2 * samples * wide * 8 + wide * wide * 8
            }
            Task::File { .. } => 0,
        };
        let depth = counted(net.depth);
        let steps = counted(self.steps);
        let snapshots = match self.record_every {
            0 => 2,
            k => steps / counted(k) + 2,
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
        MemoryEstimate {
            host_bytes: saturate(
                data + teacher + records + if tensors_on_host { device } else { 0 },
            ),
            device_bytes: if tensors_on_host { 0 } else { saturate(device) },
            largest_tensor: widest * widest.max(batch),
            smaller,
        }
    }
}

/// One layer of a full statistics snapshot: four records, each with an exponent histogram of
/// up to 256 counts on the heap.
const SNAPSHOT_LAYER_BYTES: u128 = 4 * (size_of::<StatsRecord>() as u128 + 256 * 8);
