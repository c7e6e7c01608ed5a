//! The GPU backend: the wgpu runtime's device (`src/gpu/`) with each op family's kernels
//! (`src/ops/*/gpu.rs`), and the matmul variant the autotuner chose for this device.

use std::path::PathBuf;

use super::{Backend, BackendInfo, Phase};
use crate::error::{Error, Result};
use crate::gpu::{Device, DeviceOptions, GpuTensor, ADAPTER_ENV};
use crate::ops::activation::{self, Activation};
use crate::ops::cast::{self, Overflowing};
use crate::ops::elementwise::{self, ElementwiseOp};
use crate::ops::loss::{self, LossKind};
use crate::ops::matmul::autotune::{self, Tuning, VariantTiming};
use crate::ops::matmul::{self, MatmulOp, MatmulVariant};
use crate::ops::optimizer::{self, OptimizerKind, StepTensors};
use crate::ops::reduce;
use crate::ops::reduce::gpu::{PendingRecords, RecordQueue, REDUCED_ON_DEVICE};
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::{HostTensor, HostView, Shape};

/// How to choose and open a device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// A case-insensitive substring of the adapter's name; `None` takes the best adapter.
    pub adapter: Option<String>,
    /// Open the device without `SHADER_F16` even where the adapter has it (to see how the
    /// library behaves on an adapter without f16).
    pub disable_shader_f16: bool,
    /// Fold dispatch grids at this many workgroups per dimension instead of the adapter's
    /// limit (65535 on most): the folded path is then exercised by small shapes.
    pub max_workgroups_per_dimension: Option<u32>,
    /// Use this matmul variant instead of the autotuned one (also `GRADSTAB_MATMUL_VARIANT`).
    pub matmul_variant: Option<MatmulVariant>,
    /// Where to keep the autotune cache; `None` tunes in memory only (`from_env` names the
    /// machine's cache).
    pub autotune_cache: Option<PathBuf>,
    /// Elements each thread of a statistics pass reads (default `reduce::PER_THREAD`); a small
    /// value lets small tensors exercise the combine of many partial records.
    pub reduction_per_thread: Option<usize>,
    /// Open the device without `SUBGROUP` even where the adapter has it: reductions then
    /// finish their trees in workgroup memory, as on an adapter without subgroups (the two
    /// paths give the same bits).
    pub disable_subgroups: bool,
}

impl GpuOptions {
    /// The options the environment asks for: the adapter of `GRADSTAB_ADAPTER`, the matmul
    /// variant of `GRADSTAB_MATMUL_VARIANT` and the autotune cache under `GRADSTAB_CACHE_DIR`
    /// (or `$XDG_CACHE_HOME/gradstab`, `~/.cache/gradstab`). The library reads the environment
    /// nowhere else: `GpuOptions::default()` depends on nothing but its caller.
    pub fn from_env() -> Result<Self> {
        Ok(GpuOptions {
            adapter: std::env::var(ADAPTER_ENV)
                .ok()
                .filter(|s| !s.trim().is_empty()),
            matmul_variant: autotune::variant_from_env()?,
            autotune_cache: autotune::cache_path_from_env(),
            ..GpuOptions::default()
        })
    }
}

/// A wgpu device with the kernels of this crate. It dereferences to the runtime's `Device`
/// (adapter facts, limits, buffers).
pub struct Gpu {
    device: Device,
    tuning: Tuning,
    reduction_per_thread: usize,
    /// Where statistics records wait on the device until they are collected.
    records: RecordQueue,
}

impl std::ops::Deref for Gpu {
    type Target = Device;

    fn deref(&self) -> &Device {
        &self.device
    }
}

impl Gpu {
    pub fn new(options: &GpuOptions) -> Result<Gpu> {
        let tuning = Tuning::new(options.matmul_variant, options.autotune_cache.clone())?;
        let reduction_per_thread = options.reduction_per_thread.unwrap_or(reduce::PER_THREAD);
        if !(1..=reduce::gpu::MAX_PER_THREAD).contains(&reduction_per_thread) {
            return Err(Error::InvalidArgument(format!(
                "reduction_per_thread must be 1 to {}, not {reduction_per_thread}",
                reduce::gpu::MAX_PER_THREAD
            )));
        }
        let device = Device::open(&DeviceOptions {
            adapter: options.adapter.clone(),
            disable_shader_f16: options.disable_shader_f16,
            max_workgroups_per_dimension: options.max_workgroups_per_dimension,
            disable_subgroups: options.disable_subgroups,
        })?;
        Ok(Gpu {
            device,
            tuning,
            reduction_per_thread,
            records: RecordQueue::default(),
        })
    }

    /// The variant matmul uses in `precision`: the forced one, else the one tuned for this
    /// device (from memory, the disk cache, or a fresh tuning run).
    pub fn matmul_variant(&self, precision: Precision) -> Result<MatmulVariant> {
        self.tuning.variant(&self.device, precision)
    }

    /// Times every matmul variant in `precision` and returns the fastest with all timings.
    pub fn autotune(&self, precision: Precision) -> Result<(MatmulVariant, Vec<VariantTiming>)> {
        autotune::autotune(&self.device, precision)
    }

    /// Warnings the autotune cache gave so far (also printed on stderr).
    pub fn autotune_warnings(&self) -> Vec<String> {
        self.tuning.warnings()
    }
}

/// A statistics record on its way: computed on the device and read back with the others, or,
/// for the FP8 formats the reduction kernels do not read, computed on the host at once.
#[derive(Debug)]
pub enum PendingStats {
    Device(PendingRecords),
    Host(Box<StatsRecord>),
}

impl Backend for Gpu {
    type Tensor = GpuTensor;

    fn info(&self) -> BackendInfo {
        let info = self.adapter_info();
        BackendInfo {
            backend: format!("gpu ({:?})", info.backend),
            adapter: info.name.clone(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            traffic: Some(self.traffic()),
        }
    }

    fn supports(&self, precision: Precision) -> bool {
        self.device.supports(precision)
    }

    fn device_memory_is_host(&self) -> bool {
        !self.device.is_hardware()
    }

    fn max_tensor_len(&self, dtype: DType) -> usize {
        self.device.max_tensor_len(dtype)
    }

    fn unsupported(&self, _precision: Precision) -> Error {
        self.device.missing_f16()
    }

    fn synchronize(&self) -> Result<()> {
        self.wait_idle()
    }

    fn phase(&self, phase: Option<Phase>) {
        self.time_passes_as(phase.map(Phase::index));
    }

    fn phase_seconds(&self) -> Result<Option<[f64; 4]>> {
        Ok(self.timed_seconds()?.map(|by_tag| {
            let mut seconds = [0.0; 4];
            for (phase, s) in seconds.iter_mut().zip(by_tag) {
                *phase = s;
            }
            seconds
        }))
    }

    fn upload(&self, host: &HostTensor) -> Result<GpuTensor> {
        self.upload_tensor(host)
    }

    fn download(&self, tensor: &GpuTensor) -> Result<HostTensor> {
        self.download_tensor(tensor)
    }

    fn upload_view(&self, view: HostView<'_>) -> Result<GpuTensor> {
        self.upload_view_tensor(view)
    }

    fn shape(&self, tensor: &GpuTensor) -> Shape {
        tensor.shape()
    }

    fn dtype(&self, tensor: &GpuTensor) -> DType {
        tensor.dtype()
    }

    type PendingStats = PendingStats;

    fn stats_later(&self, x: &GpuTensor) -> Result<PendingStats> {
        if !REDUCED_ON_DEVICE.contains(&x.dtype()) {
            let host = self.download_tensor(x)?;
            return Ok(PendingStats::Host(Box::new(reduce::cpu::reference(&host))));
        }
        let len = x.shape().len();
        let per_thread = self.reduction_per_thread;
        let pending = reduce::gpu::start(&self.device, &self.records, x, 1, len, per_thread)?;
        Ok(PendingStats::Device(pending))
    }

    fn collect_stats(&self, pending: Vec<PendingStats>) -> Result<Vec<StatsRecord>> {
        // Host records keep their place; the device's come back in one read.
        let mut on_device = Vec::new();
        let mut records: Vec<Option<StatsRecord>> = Vec::with_capacity(pending.len());
        for p in pending {
            match p {
                PendingStats::Device(d) => {
                    on_device.push(d);
                    records.push(None);
                }
                PendingStats::Host(record) => records.push(Some(*record)),
            }
        }
        let mut from_device = reduce::gpu::collect(&self.device, &on_device)?.into_iter();
        Ok(records
            .into_iter()
            .map(|r| r.unwrap_or_else(|| from_device.next().expect("one record each")))
            .collect())
    }

    fn row_stats(&self, x: &GpuTensor) -> Result<Vec<StatsRecord>> {
        if !REDUCED_ON_DEVICE.contains(&x.dtype()) {
            return Ok(reduce::cpu::reference_per_row(&self.download_tensor(x)?));
        }
        let (rows, cols) = (x.shape().rows, x.shape().cols);
        let per_thread = self.reduction_per_thread;
        let pending = reduce::gpu::start(&self.device, &self.records, x, rows, cols, per_thread)?;
        reduce::gpu::collect(&self.device, &[pending])
    }

    fn run_matmul(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        op: MatmulOp,
        dims: (usize, usize, usize),
        precision: Precision,
        out_scale: f32,
    ) -> Result<GpuTensor> {
        let variant = self.matmul_variant(precision)?;
        matmul::gpu::run(&self.device, a, b, op, dims, precision, variant, out_scale)
    }

    fn run_cast(
        &self,
        x: &GpuTensor,
        target: DType,
        overflowing: Overflowing,
    ) -> Result<GpuTensor> {
        cast::gpu::run(&self.device, x, target, overflowing)
    }

    fn run_activation(
        &self,
        act: Activation,
        x: &GpuTensor,
        precision: Precision,
        derivative: bool,
    ) -> Result<GpuTensor> {
        activation::gpu::run(&self.device, act, x, precision, derivative)
    }

    fn run_elementwise(
        &self,
        op: ElementwiseOp,
        x: &GpuTensor,
        y: Option<&GpuTensor>,
        scalar: f32,
        precision: Precision,
    ) -> Result<GpuTensor> {
        elementwise::gpu::run(&self.device, op, x, y, scalar, precision)
    }

    fn run_loss(
        &self,
        kind: LossKind,
        output: &GpuTensor,
        targets: &GpuTensor,
        coefficient: f32,
        precision: Precision,
    ) -> Result<(GpuTensor, GpuTensor)> {
        loss::gpu::run(&self.device, kind, output, targets, coefficient, precision)
    }

    fn run_optimizer_step(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: StepTensors<'_, GpuTensor>,
        precision: Precision,
    ) -> Result<GpuTensor> {
        optimizer::gpu::run(&self.device, kind, params, tensors, precision)
    }
}
