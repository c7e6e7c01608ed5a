//! Tensors on the device: typed storage buffers, with upload and download. A tensor's buffer
//! comes from the device's pool where one of its size is free, and goes back there when the
//! tensor is dropped (`pool.rs`).

use std::sync::Arc;

use super::device::Device;
use super::pool::{BufferPool, StorageBuffer, STORAGE_USAGE};
use crate::error::{Error, Result, Source};
use crate::precision::DType;
use crate::tensor::{HostData, HostTensor, HostView, Shape};

/// A 2-D tensor stored on the GPU as f32 or f16.
#[derive(Debug)]
pub struct GpuTensor {
    pub(crate) buffer: wgpu::Buffer,
    /// The buffer's creation number, for the pool.
    number: u64,
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    pool: Arc<BufferPool>,
}

impl Drop for GpuTensor {
    fn drop(&mut self) {
        self.pool.give_back(StorageBuffer {
            buffer: self.buffer.clone(),
            number: self.number,
        });
    }
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
        let StorageBuffer { buffer, number } = self.storage_buffer(bytes, label)?;
        Ok(GpuTensor {
            buffer,
            number,
            shape,
            dtype,
            pool: self.pool.clone(),
        })
    }

    /// A storage buffer of `bytes` bytes with undefined contents: a kept one of that size, or
    /// a new one. Only a tensor gives it back to the pool; scratch is given back by its user.
    pub(crate) fn storage_buffer(&self, bytes: u64, label: &str) -> Result<StorageBuffer> {
        if let Some(buffer) = self.pool.take(bytes) {
            return Ok(buffer);
        }
        self.traffic.buffer();
        let buffer = self.checked(&format!("allocating {label} ({bytes} bytes)"), || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: STORAGE_USAGE,
                mapped_at_creation: false,
            })
        })?;
        Ok(StorageBuffer {
            buffer,
            number: self.pool.number_new(),
        })
    }

    /// A tiny storage buffer to bind where a kernel's layout has a binding that this call does
    /// not use (the shader never touches it then): one per `slot`, created once per device, so
    /// that two unused bindings of one dispatch never alias each other.
    pub(crate) fn placeholder(&self, slot: usize) -> Result<wgpu::Buffer> {
        let mut kept = self.placeholders.lock().unwrap_or_else(|p| p.into_inner());
        while kept.len() <= slot {
            self.traffic.buffer();
            let buffer = self.checked("allocating a placeholder binding", || {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("unused binding"),
                    // One 16-byte word of any element type (4-byte words for packed formats).
                    size: 16,
                    usage: STORAGE_USAGE,
                    mapped_at_creation: false,
                })
            })?;
            kept.push(buffer);
        }
        Ok(kept[slot].clone())
    }

    /// A tensor of zeros on the device (a reused buffer is cleared first).
    pub fn zeros(&self, shape: Shape, dtype: DType) -> Result<GpuTensor> {
        let tensor = self.alloc(shape, dtype, "zeros")?;
        self.encode("clearing a tensor", 1, |encoder| {
            encoder.clear_buffer(&tensor.buffer, 0, None)
        })?;
        Ok(tensor)
    }

    /// Uploads values as they are stored. f16 data need no `SHADER_F16` to be held or reduced
    /// (the reductions decode raw bits); the f16 kernels check for it themselves.
    pub fn upload_tensor(&self, host: &HostTensor) -> Result<GpuTensor> {
        self.upload_values(host.shape(), host.data().view())
    }

    /// Borrowed values as a 1 × len tensor.
    pub fn upload_view_tensor(&self, view: HostView<'_>) -> Result<GpuTensor> {
        self.upload_values(Shape::new(1, view.len()), view)
    }

    /// `values` (as many as `shape` holds) into a new tensor, straight from the caller's
    /// memory: only a last partial word is copied, to pad it to the 4 bytes a write takes.
    fn upload_values(&self, shape: Shape, values: HostView<'_>) -> Result<GpuTensor> {
        let tensor = self.alloc(shape, values.dtype(), "tensor")?;
        let bytes = values.le_bytes();
        let whole = bytes.len() / 4 * 4;
        let mut tail = bytes[whole..].to_vec();
        tail.resize(
            padded_bytes(values.len(), values.dtype()) as usize - whole,
            0,
        );
        // A write takes effect before the next submission's commands: those recorded so far
        // must go first, since one of them may still read this (reused) buffer.
        self.flush()?;
        self.checked("upload", || {
            if whole > 0 {
                self.queue.write_buffer(&tensor.buffer, 0, &bytes[..whole]);
            }
            if !tail.is_empty() {
                self.queue.write_buffer(&tensor.buffer, whole as u64, &tail);
            }
        })?;
        Ok(tensor)
    }

    pub fn download_tensor(&self, tensor: &GpuTensor) -> Result<HostTensor> {
        let bytes = self.read_buffer(
            &tensor.buffer,
            padded_bytes(tensor.shape.len(), tensor.dtype),
        )?;
        let len = tensor.shape.len();
        let data = HostData::from_le_bytes(tensor.dtype, len, &bytes);
        HostTensor::new(tensor.shape, data)
    }

    /// Copies `size` bytes of `buffer` back to the host.
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        self.read_ranges(&[(buffer, 0, size)])
    }

    /// Copies each `(buffer, offset, size)` range back to the host, one after the other, in
    /// one read: the copies are recorded after every pending command, all of it is submitted
    /// at once, and the host waits once. Offsets and sizes are multiples of 4 bytes.
    pub fn read_ranges(&self, ranges: &[(&wgpu::Buffer, u64, u64)]) -> Result<Vec<u8>> {
        let size: u64 = ranges.iter().map(|r| r.2).sum();
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut kept = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let staging = match kept.take() {
            Some(staging) if staging.size() >= size => staging,
            _ => {
                self.traffic.buffer();
                self.checked("allocating a read-back buffer", || {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("read-back"),
                        size: size.next_power_of_two().max(1 << 16),
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })?
            }
        };
        self.traffic.host_read();
        self.encode("read-back copy", 1, |encoder| {
            let mut at = 0;
            for &(buffer, offset, len) in ranges {
                encoder.copy_buffer_to_buffer(buffer, offset, &staging, at, len);
                at += len;
            }
        })?;
        self.flush()?;
        let (sender, receiver) = std::sync::mpsc::channel();
        staging
            .slice(..size)
            .map_async(wgpu::MapMode::Read, move |result| {
                let _ = sender.send(result);
            });
        let gpu_error = |source: Source| Error::Gpu {
            adapter: self.adapter_name(),
            during: "read-back".into(),
            source,
        };
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error(e.into()))?;
        receiver
            .recv()
            .map_err(|e| gpu_error(e.into()))?
            .map_err(|e| gpu_error(e.into()))?;
        let bytes = staging
            .slice(..size)
            .get_mapped_range()
            .map_err(|e| gpu_error(e.into()))?
            .to_vec();
        staging.unmap();
        *kept = Some(staging);
        Ok(bytes)
    }
}
