//! Statistics of tensors read from a file, or of one tensor in memory.

use crate::backend::Backend;
use crate::error::Result;
use crate::files::FileTensor;
use crate::report::files::TensorReport;
use crate::stats::StatsRecord;
use crate::tensor::{HostTensor, HostView};

use super::device::{on_device, Device};

/// Each tensor's report, its statistics reduced on `device` in pieces that fit it (a tensor
/// the file holds no values for is reported without statistics).
pub fn file_stats(device: &Device, tensors: &[FileTensor]) -> Result<Vec<TensorReport>> {
    tensors
        .iter()
        .map(|t| {
            let stats = match &t.values {
                Some(values) => Some(tensor_stats(device, values)?),
                None => None,
            };
            Ok(TensorReport::new(t, stats))
        })
        .collect()
}

/// The statistics of one tensor in memory, reduced on `device`.
pub fn tensor_stats(device: &Device, tensor: &HostTensor) -> Result<StatsRecord> {
    on_device!(device, b => b.stats_of_host(tensor))
}

/// The statistics of values the caller holds (a NumPy array's memory), reduced on `device`
/// without a copy on the host.
pub fn view_stats(device: &Device, view: HostView<'_>) -> Result<StatsRecord> {
    on_device!(device, b => b.stats_of_view(view))
}
