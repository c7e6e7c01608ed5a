//! The wgpu backend: one device, its tensors, and the compiled kernels.

pub mod autotune;
mod buffer;
mod device;
pub mod kernels;
pub mod probe;

pub use buffer::GpuTensor;
pub use device::{list_adapters, AdapterSummary};

use crate::backend::{Backend, BackendInfo, MatmulOp};
use crate::error::{Error, Result};
use crate::ops::activation::Activation;
use crate::ops::elementwise::ElementwiseOp;
use crate::ops::matmul::MatmulVariant;
use crate::ops::{activation, elementwise, matmul, reduce};
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::{HostTensor, Shape};

/// The environment variable that picks an adapter by a substring of its name.
pub const ADAPTER_ENV: &str = "GRADSTAB_ADAPTER";

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
    /// Where to keep the autotune cache; `None` takes `autotune::default_cache_path()`.
    pub autotune_cache: Option<std::path::PathBuf>,
}

impl GpuOptions {
    /// The options `GRADSTAB_ADAPTER` asks for.
    pub fn from_env() -> Self {
        GpuOptions {
            adapter: std::env::var(ADAPTER_ENV)
                .ok()
                .filter(|s| !s.trim().is_empty()),
            ..GpuOptions::default()
        }
    }
}

/// A wgpu device with the kernels of this crate.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    /// Workgroups per grid dimension before a grid folds into y.
    pub(crate) grid_limit: u32,
    pub(crate) tuning: autotune::Tuning,
    shader_f16: bool,
    pipelines: kernels::PipelineCache,
}

impl Gpu {
    pub fn new(options: &GpuOptions) -> Result<Gpu> {
        let forced = match options.matmul_variant {
            Some(v) => Some(v),
            None => match std::env::var(autotune::VARIANT_ENV) {
                Ok(name) if !name.trim().is_empty() => Some(name.parse::<MatmulVariant>()?),
                _ => None,
            },
        };
        let cache_path = options
            .autotune_cache
            .clone()
            .or_else(autotune::default_cache_path);
        let instance = device::instance();
        let adapter = device::choose_adapter(&instance, options.adapter.as_deref())?;
        let info = adapter.get_info();
        let shader_f16 =
            adapter.features().contains(wgpu::Features::SHADER_F16) && !options.disable_shader_f16;
        let required_features = if shader_f16 {
            wgpu::Features::SHADER_F16
        } else {
            wgpu::Features::empty()
        };
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gradstab"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::DeviceRequest {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        // Every operation runs inside an error scope; anything that still escapes is reported
        // rather than aborting the process, which is wgpu's default.
        device.on_uncaptured_error(std::sync::Arc::new(|e: wgpu::Error| {
            eprintln!("gradstab: uncaptured GPU error: {e}");
        }));
        let grid_limit = options
            .max_workgroups_per_dimension
            .unwrap_or(u32::MAX)
            .clamp(1, limits.max_compute_workgroups_per_dimension.max(1));
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            grid_limit,
            tuning: autotune::Tuning::new(forced, cache_path),
            shader_f16,
            pipelines: Default::default(),
        })
    }

    /// Waits until every submitted kernel has finished (for timing).
    pub fn wait_idle(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu {
                adapter: self.adapter_name(),
                during: "synchronize".into(),
                message: e.to_string(),
            })
    }

    pub fn adapter_name(&self) -> String {
        self.info.name.clone()
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The most values of `dtype` one tensor can hold on this device (one storage binding).
    pub fn max_tensor_len(&self, dtype: DType) -> usize {
        let bytes = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        (bytes / dtype.size_bytes()) as usize
    }

    pub fn supports_f16(&self) -> bool {
        self.shader_f16
    }

    /// An error unless the device was opened with `SHADER_F16`.
    pub fn require_f16(&self) -> Result<()> {
        if self.shader_f16 {
            return Ok(());
        }
        Err(Error::MissingFeature {
            adapter: self.adapter_name(),
            feature: "SHADER_F16 (needed for f16 and f16acc32)",
            hint:
                "use --precision f32, --backend cpu, or an adapter with f16 (Mesa lavapipe has it)",
        })
    }

    /// An error unless the device can run `precision`.
    pub fn require_f16_for(&self, precision: Precision) -> Result<()> {
        self.require_precision(precision)
    }

    fn require_precision(&self, precision: Precision) -> Result<()> {
        if precision.needs_shader_f16() {
            self.require_f16()?;
        }
        Ok(())
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
                message: e.to_string(),
            }),
        }
    }
}

impl Backend for Gpu {
    type Tensor = GpuTensor;

    fn synchronize(&self) -> Result<()> {
        self.wait_idle()
    }

    fn info(&self) -> BackendInfo {
        BackendInfo {
            backend: format!("gpu ({:?})", self.info.backend),
            adapter: self.info.name.clone(),
            driver: format!("{} {}", self.info.driver, self.info.driver_info)
                .trim()
                .to_string(),
        }
    }

    fn upload(&self, host: &HostTensor) -> Result<GpuTensor> {
        self.upload_tensor(host)
    }

    fn download(&self, tensor: &GpuTensor) -> Result<HostTensor> {
        self.download_tensor(tensor)
    }

    fn shape(&self, tensor: &GpuTensor) -> Shape {
        tensor.shape
    }

    fn dtype(&self, tensor: &GpuTensor) -> DType {
        tensor.dtype
    }

    fn matmul(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        op: MatmulOp,
        precision: Precision,
    ) -> Result<GpuTensor> {
        self.require_precision(precision)?;
        matmul::gpu::matmul(self, a, b, op, precision)
    }

    fn activation(
        &self,
        act: Activation,
        x: &GpuTensor,
        precision: Precision,
    ) -> Result<GpuTensor> {
        self.require_precision(precision)?;
        activation::gpu::apply(self, act, x, precision, false)
    }

    fn activation_derivative(
        &self,
        act: Activation,
        z: &GpuTensor,
        precision: Precision,
    ) -> Result<GpuTensor> {
        self.require_precision(precision)?;
        activation::gpu::apply(self, act, z, precision, true)
    }

    fn hadamard(&self, x: &GpuTensor, y: &GpuTensor, precision: Precision) -> Result<GpuTensor> {
        self.require_precision(precision)?;
        elementwise::gpu::apply(self, ElementwiseOp::Hadamard, x, Some(y), 0.0, precision)
    }

    fn scale(&self, x: &GpuTensor, s: f32, precision: Precision) -> Result<GpuTensor> {
        self.require_precision(precision)?;
        elementwise::gpu::apply(self, ElementwiseOp::Scale, x, None, s, precision)
    }

    fn clamp_abs(&self, x: &GpuTensor, limit: f32, precision: Precision) -> Result<GpuTensor> {
        self.require_precision(precision)?;
        elementwise::gpu::apply(self, ElementwiseOp::Clamp, x, None, limit, precision)
    }

    fn stats(&self, x: &GpuTensor) -> Result<StatsRecord> {
        let mut records = reduce::gpu::segment_stats(self, x, 1, x.shape.len())?;
        Ok(records.remove(0))
    }

    fn row_stats(&self, x: &GpuTensor) -> Result<Vec<StatsRecord>> {
        reduce::gpu::segment_stats(self, x, x.shape.rows, x.shape.cols)
    }

    fn axpy(
        &self,
        a: f32,
        x: &GpuTensor,
        y: &GpuTensor,
        precision: Precision,
    ) -> Result<GpuTensor> {
        self.require_precision(precision)?;
        elementwise::gpu::apply(self, ElementwiseOp::Axpy, x, Some(y), a, precision)
    }
}
