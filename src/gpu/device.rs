//! One opened wgpu device: its queue, limits, features and compiled pipelines, and the error
//! scopes every GPU call runs in.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::adapter;
use super::bind::BindGroups;
use super::pass_timer::PassTimer;
use super::pool::BufferPool;
use crate::error::{Error, Result};
use crate::precision::{DType, Precision};

/// How to choose and open a device.
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    /// A case-insensitive substring of the adapter's name; `None` takes the best adapter.
    pub adapter: Option<String>,
    /// Open the device without `SHADER_F16` even where the adapter has it.
    pub disable_shader_f16: bool,
    /// Fold dispatch grids at this many workgroups per dimension instead of the adapter's limit.
    pub max_workgroups_per_dimension: Option<u32>,
    /// Open the device without `SUBGROUP` even where the adapter has it, so that reductions
    /// take their workgroup-memory path.
    pub disable_subgroups: bool,
}

/// Set to `1` to submit and check every dispatch on its own, so that a validation error names
/// the very kernel that raised it rather than the last one of its submission.
pub const VALIDATE_ENV: &str = "GRADSTAB_GPU_VALIDATE";

/// The pipelines compiled on a device (`kernel.rs`): a `HashMap<K, Pipeline>` for each
/// `KernelKey` type `K`, found by its `TypeId`, and how many were compiled (each pipeline's
/// number).
#[derive(Default)]
pub(crate) struct Pipelines {
    pub(crate) by_type: HashMap<TypeId, Box<dyn Any + Send>>,
    pub(crate) compiled: u64,
}

/// A wgpu device, with the pipelines compiled on it so far.
pub struct Device {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    /// Workgroups per grid dimension before a grid folds into y.
    pub(crate) grid_limit: u32,
    pub(crate) shader_f16: bool,
    /// Lanes every subgroup of a kernel has at least (a power of two ≥ 2) where the device
    /// was opened with `SUBGROUP`, so that reductions finish their trees in registers; 1
    /// without.
    pub(crate) subgroup_lanes: u32,
    pub(crate) pipelines: Mutex<Pipelines>,
    /// Bind groups by pipeline and bound buffer ranges (`bind.rs`).
    pub(crate) bind_groups: Mutex<BindGroups>,
    /// Tiny storage buffers bound where a kernel's layout has a binding that a call does not
    /// use (`Device::placeholder`).
    pub(crate) placeholders: Mutex<Vec<wgpu::Buffer>>,
    /// Whether every dispatch is submitted and checked on its own (`VALIDATE_ENV`).
    pub(crate) validate_each_dispatch: bool,
    pub(crate) traffic: TrafficCounters,
    /// Buffers of dropped tensors, for the next tensor of the same size.
    pub(crate) pool: Arc<BufferPool>,
    /// Uniform buffers by their contents: a network's layers repeat the same few parameter
    /// blocks, so each is created once.
    pub(crate) uniforms: Mutex<HashMap<Vec<u8>, wgpu::Buffer>>,
    /// The read-back buffer, kept for the next read that fits.
    pub(crate) staging: Mutex<Option<wgpu::Buffer>>,
    /// Commands recorded but not yet submitted (`batch.rs`).
    pub(crate) pending: Mutex<Pending>,
}

/// The open command encoder of `batch.rs` and what it holds.
#[derive(Default)]
pub(crate) struct Pending {
    /// The compute pass open on `encoder`, which every dispatch of the batch goes into; it is
    /// ended before a copy is recorded and before the encoder is finished. (Declared before
    /// the encoder so that it is dropped first.)
    pub(crate) pass: Option<wgpu::ComputePass<'static>>,
    pub(crate) encoder: Option<wgpu::CommandEncoder>,
    /// Dispatches and copies recorded into `encoder`.
    pub(crate) commands: usize,
    /// The label of the last command recorded, for an error found at submission.
    pub(crate) last: &'static str,
    /// The tag of the work recorded now, whose passes are timed (`timestamps.rs`).
    pub(crate) tag: Option<usize>,
    /// The timestamp queries, where the device has them.
    pub(crate) timer: Option<PassTimer>,
}

/// How often the host and the device talked: what decides speed on a hardware GPU, where a
/// layer's kernels take microseconds and every wait or allocation costs more than that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// Command buffers submitted to the queue.
    pub submissions: u64,
    /// Reads that waited for the device and copied a buffer back to the host.
    pub host_reads: u64,
    /// Device buffers created (tensors, read-back staging, statistics scratch, uniforms).
    pub buffers_created: u64,
    /// Requests for a buffer served by one kept from a dropped tensor instead.
    pub buffers_reused: u64,
    /// Compute pipelines compiled (once per kernel variant).
    pub pipelines_created: u64,
    /// Bind groups created (once per pipeline and set of bound buffer ranges while they live).
    pub bind_groups_created: u64,
}

#[derive(Default)]
pub(crate) struct TrafficCounters {
    submissions: std::sync::atomic::AtomicU64,
    host_reads: std::sync::atomic::AtomicU64,
    buffers_created: std::sync::atomic::AtomicU64,
    pipelines_created: std::sync::atomic::AtomicU64,
    bind_groups_created: std::sync::atomic::AtomicU64,
}

impl TrafficCounters {
    fn bump(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    pub(crate) fn submission(&self) {
        Self::bump(&self.submissions)
    }
    pub(crate) fn host_read(&self) {
        Self::bump(&self.host_reads)
    }
    pub(crate) fn buffer(&self) {
        Self::bump(&self.buffers_created)
    }
    pub(crate) fn pipeline(&self) {
        Self::bump(&self.pipelines_created)
    }
    pub(crate) fn bind_group(&self) {
        Self::bump(&self.bind_groups_created)
    }
    fn read(&self, buffers_reused: u64) -> Traffic {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Traffic {
            submissions: get(&self.submissions),
            host_reads: get(&self.host_reads),
            buffers_created: get(&self.buffers_created),
            buffers_reused,
            pipelines_created: get(&self.pipelines_created),
            bind_groups_created: get(&self.bind_groups_created),
        }
    }
}

impl Device {
    /// Opens the chosen adapter with its own limits, and with `SHADER_F16` where it has it.
    pub fn open(options: &DeviceOptions) -> Result<Device> {
        let instance = adapter::instance();
        let adapter = adapter::choose_adapter(&instance, options.adapter.as_deref())?;
        let info = adapter.get_info();
        let shader_f16 =
            adapter.features().contains(wgpu::Features::SHADER_F16) && !options.disable_shader_f16;
        // Timestamps at the beginning and end of compute passes time training's phases
        // (`timestamps.rs`); where the adapter lacks them, nothing is timed.
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let subgroup_lanes = subgroup_lanes(&adapter, options.disable_subgroups);
        let mut required_features = wgpu::Features::empty();
        required_features.set(wgpu::Features::SUBGROUP, subgroup_lanes > 1);
        required_features.set(wgpu::Features::SHADER_F16, shader_f16);
        required_features.set(wgpu::Features::TIMESTAMP_QUERY, timestamps);
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gradstab"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::DeviceRequest {
            adapter: info.name.clone(),
            source: e.into(),
        })?;
        // Every operation runs inside an error scope; anything that still escapes is reported
        // rather than aborting the process, which is wgpu's default.
        device.on_uncaptured_error(std::sync::Arc::new(|e: wgpu::Error| {
            log::error!("uncaptured GPU error: {e}");
        }));
        let grid_limit = options
            .max_workgroups_per_dimension
            .unwrap_or(u32::MAX)
            .clamp(1, limits.max_compute_workgroups_per_dimension.max(1));
        Ok(Device {
            info,
            limits,
            grid_limit,
            shader_f16,
            subgroup_lanes,
            pipelines: Mutex::new(Pipelines::default()),
            bind_groups: Mutex::new(BindGroups::default()),
            placeholders: Mutex::new(Vec::new()),
            validate_each_dispatch: std::env::var(VALIDATE_ENV).is_ok_and(|v| v == "1"),
            traffic: TrafficCounters::default(),
            pool: Arc::new(BufferPool::default()),
            uniforms: Mutex::new(HashMap::new()),
            staging: Mutex::new(None),
            pending: Mutex::new(Pending {
                timer: timestamps.then(|| PassTimer::new(&device, &queue)),
                ..Pending::default()
            }),
            device,
            queue,
        })
    }

    /// Submits what is pending and waits until every kernel has finished (for timing).
    pub fn wait_idle(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu {
                adapter: self.adapter_name(),
                during: "synchronize".into(),
                source: e.into(),
            })
    }

    pub fn adapter_name(&self) -> String {
        self.info.name.clone()
    }

    /// Submissions, host reads and buffers since the device was opened.
    pub fn traffic(&self) -> Traffic {
        self.traffic.read(self.pool.reused())
    }

    /// Bytes of free buffers the pool keeps for reuse now (at most `RETAINED_BYTES`).
    pub fn kept_bytes(&self) -> u64 {
        self.pool.retained_bytes()
    }

    /// Releases the buffers kept for reuse and the cached uniforms (device memory a later,
    /// different workload would not use).
    pub fn release_kept_buffers(&self) {
        self.pool.clear();
        // Cached bind groups hold their buffers: those go too, or nothing would be released.
        self.bind_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.uniforms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.staging.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Whether the adapter is a hardware GPU rather than a CPU implementation such as lavapipe.
    pub fn is_hardware(&self) -> bool {
        self.info.device_type != wgpu::DeviceType::Cpu
    }

    /// The most values of `dtype` one tensor can hold on this device (one storage binding).
    pub fn max_tensor_len(&self, dtype: DType) -> usize {
        (self.max_binding_bytes() / dtype.size_bytes()) as usize
    }

    /// The largest buffer one storage binding can address.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// The lanes a reduction finishes its trees with in one subgroup's registers; 1 where
    /// it uses workgroup memory alone (no `SUBGROUP`, or `DeviceOptions::disable_subgroups`).
    pub fn subgroup_lanes(&self) -> u32 {
        self.subgroup_lanes
    }

    pub fn supports_f16(&self) -> bool {
        self.shader_f16
    }

    /// Whether kernels in `precision` can run here.
    pub fn supports(&self, precision: Precision) -> bool {
        !precision.needs_shader_f16() || self.shader_f16
    }

    /// The error for a precision this device cannot run.
    pub fn missing_f16(&self) -> Error {
        Error::MissingFeature {
            adapter: self.adapter_name(),
            feature: "SHADER_F16 (needed for f16 and f16acc32)",
            hint:
                "use --precision f32, --backend cpu, or an adapter with f16 (Mesa lavapipe has it)",
        }
    }

    pub(crate) fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` inside error scopes and turns any validation, memory or internal error it
    /// raised into an `Err` that names the adapter and the step.
    pub(crate) fn checked<T>(&self, during: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(internal.pop()),
            pollster::block_on(oom.pop()),
        ];
        match errors.into_iter().flatten().next() {
            None => Ok(value),
            Some(e) => Err(Error::Gpu {
                adapter: self.adapter_name(),
                during: during.to_string(),
                source: e.into(),
            }),
        }
    }
}

/// The lanes every subgroup has at least on `adapter` (its smallest subgroup size), where it
/// has `SUBGROUP` and `disabled` is false; 1 otherwise, and where the smallest size is not a
/// power of two from 2 to the reduction's workgroup, which the trees' pairing needs.
fn subgroup_lanes(adapter: &wgpu::Adapter, disabled: bool) -> u32 {
    let lanes = adapter.get_info().subgroup_min_size;
    let usable = adapter.features().contains(wgpu::Features::SUBGROUP)
        && lanes.is_power_of_two()
        && (2..=crate::ops::reduce::THREADS as u32).contains(&lanes);
    if usable && !disabled {
        lanes
    } else {
        1
    }
}
