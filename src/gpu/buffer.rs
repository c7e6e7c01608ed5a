//! Tensors on the device: typed storage buffers, with upload and download.

use half::f16;

use super::device::Device;
use crate::error::{Error, Result};
use crate::precision::DType;
use crate::tensor::{HostData, HostTensor, Shape};

/// A 2-D tensor stored on the GPU as f32 or f16.
#[derive(Debug)]
pub struct GpuTensor {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
}

impl GpuTensor {
    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Bytes a buffer of `len` values needs: copies and bindings work in whole 4-byte words, so an
/// odd count of f16 values gets one padding value.
fn padded_bytes(len: usize, dtype: DType) -> u64 {
    (len as u64 * dtype.size_bytes()).div_ceil(4) * 4
}

impl Device {
    /// A device buffer for `shape` values of `dtype`, or an error naming the sizes when it
    /// exceeds what one binding of this adapter can address.
    pub fn alloc(&self, shape: Shape, dtype: DType, label: &str) -> Result<GpuTensor> {
        if shape.rows == 0 || shape.cols == 0 {
            return Err(Error::ZeroDimension {
                op: "tensor",
                detail: format!("shape {shape}"),
            });
        }
        let bytes = padded_bytes(shape.len(), dtype);
        let limit = self.max_binding_bytes();
        if bytes > limit {
            return Err(Error::TooLarge {
                what: format!("a {dtype} tensor of shape {shape}"),
                bytes,
                limit,
                adapter: self.adapter_name(),
            });
        }
        self.traffic.buffer();
        let buffer = self.checked(&format!("allocating {label} ({bytes} bytes)"), || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuTensor {
            buffer,
            shape,
            dtype,
        })
    }

    /// A tensor of zeros on the device (storage buffers start zeroed in wgpu).
    pub fn zeros(&self, shape: Shape, dtype: DType) -> Result<GpuTensor> {
        self.alloc(shape, dtype, "zeros")
    }

    /// Uploads values as they are stored. f16 data need no `SHADER_F16` to be held or reduced
    /// (the reductions decode raw bits); the f16 kernels check for it themselves.
    pub fn upload_tensor(&self, host: &HostTensor) -> Result<GpuTensor> {
        let tensor = self.alloc(host.shape(), host.dtype(), "tensor")?;
        let mut bytes: Vec<u8> = match host.data() {
            HostData::F32(v) => bytemuck::cast_slice(v).to_vec(),
            HostData::F16(v) => bytemuck::cast_slice(v).to_vec(),
        };
        bytes.resize(padded_bytes(host.len(), host.dtype()) as usize, 0);
        self.checked("upload", || {
            self.queue.write_buffer(&tensor.buffer, 0, &bytes);
        })?;
        Ok(tensor)
    }

    pub fn download_tensor(&self, tensor: &GpuTensor) -> Result<HostTensor> {
        let bytes = self.read_buffer(
            &tensor.buffer,
            padded_bytes(tensor.shape.len(), tensor.dtype),
        )?;
        let len = tensor.shape.len();
        let data = match tensor.dtype {
            DType::F32 => HostData::F32(bytemuck::cast_slice::<u8, f32>(&bytes)[..len].to_vec()),
            DType::F16 => HostData::F16(bytemuck::cast_slice::<u8, f16>(&bytes)[..len].to_vec()),
        };
        HostTensor::new(tensor.shape, data)
    }

    /// Copies `size` bytes of `buffer` back to the host.
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        self.traffic.host_read();
        self.traffic.buffer();
        self.traffic.submission();
        let staging = self.checked("allocating a read-back buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.checked("read-back copy", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
            self.queue.submit([encoder.finish()]);
        })?;
        let (sender, receiver) = std::sync::mpsc::channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| {
                let _ = sender.send(result);
            });
        let gpu_error = |message: String| Error::Gpu {
            adapter: self.adapter_name(),
            during: "read-back".into(),
            message,
        };
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error(e.to_string()))?;
        receiver
            .recv()
            .map_err(|e| gpu_error(e.to_string()))?
            .map_err(|e| gpu_error(e.to_string()))?;
        let bytes = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| gpu_error(e.to_string()))?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }
}
