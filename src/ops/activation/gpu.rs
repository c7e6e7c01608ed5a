//! Host code of shaders/activation.wgsl.

use super::Activation;
use crate::backend::check_dtypes;
use crate::error::Result;
use crate::gpu::kernels::{KernelSpec, ShaderFamily};
use crate::gpu::{Gpu, GpuTensor};
use crate::precision::Precision;

/// Threads per workgroup of the elementwise kernels.
pub(crate) const WORKGROUP: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    kind: u32,
    alpha: f32,
    beta: f32,
    groups_x: u32,
    _pad: [u32; 3],
}

pub(crate) fn apply(
    gpu: &Gpu,
    act: Activation,
    x: &GpuTensor,
    precision: Precision,
    derivative: bool,
) -> Result<GpuTensor> {
    check_dtypes(act.name(), precision, &[x.dtype()])?;
    let len = x.shape().len() as u64;
    let (groups_x, groups_y) = gpu.grid(len.div_ceil(WORKGROUP), act.name())?;
    let out = gpu.alloc(x.shape(), precision.storage(), "activation output")?;
    let (kind, alpha, beta) = act.kernel_code();
    let params = gpu.uniform(&Params {
        len: len as u32,
        kind,
        alpha,
        beta,
        groups_x,
        _pad: [0; 3],
    });
    let entry = if derivative { "derivative" } else { "forward" };
    let pipeline = gpu.pipeline(KernelSpec::new(ShaderFamily::Activation, precision, entry))?;
    gpu.dispatch(
        &pipeline,
        &[(0, &x.buffer), (1, &out.buffer), (2, &params)],
        (groups_x, groups_y),
        act.name(),
    )?;
    Ok(out)
}
