//! Host code of shaders/elementwise.wgsl.

use super::ElementwiseOp;
use crate::backend::{check_dtypes, check_same_shape};
use crate::error::Result;
use crate::gpu::kernels::{KernelSpec, ShaderFamily};
use crate::gpu::{Gpu, GpuTensor};
use crate::ops::activation::gpu::WORKGROUP;
use crate::precision::Precision;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    groups_x: u32,
    scalar: f32,
    _pad: u32,
}

/// `op` on `x` (and `y`, for hadamard and axpy) with scalar `s`.
pub(crate) fn apply(
    gpu: &Gpu,
    op: ElementwiseOp,
    x: &GpuTensor,
    y: Option<&GpuTensor>,
    s: f32,
    precision: Precision,
) -> Result<GpuTensor> {
    check_dtypes(op.name(), precision, &[x.dtype()])?;
    if let Some(y) = y {
        check_dtypes(op.name(), precision, &[y.dtype()])?;
        check_same_shape(op.name(), x.shape(), y.shape())?;
    }
    let len = x.shape().len() as u64;
    let (groups_x, groups_y) = gpu.grid(len.div_ceil(WORKGROUP), op.name())?;
    let out = gpu.alloc(x.shape(), precision.storage(), "elementwise output")?;
    let params = gpu.uniform(&Params {
        len: len as u32,
        groups_x,
        scalar: s,
        _pad: 0,
    });
    let pipeline = gpu.pipeline(KernelSpec::new(
        ShaderFamily::Elementwise,
        precision,
        op.entry_point(),
    ))?;
    let mut bindings = vec![(0, &x.buffer), (2, &out.buffer), (3, &params)];
    if let Some(y) = y {
        bindings.push((1, &y.buffer));
    }
    gpu.dispatch(&pipeline, &bindings, (groups_x, groups_y), op.name())?;
    Ok(out)
}
