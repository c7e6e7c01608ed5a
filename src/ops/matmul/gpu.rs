//! Host code of shaders/matmul.wgsl.

use super::MatmulVariant;
use crate::backend::{check_dtypes, MatmulOp};
use crate::error::Result;
use crate::gpu::kernels::KernelSpec;
use crate::gpu::{Gpu, GpuTensor};
use crate::precision::Precision;
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    groups_x: u32,
}

/// `op(A)·op(B)` with the variant the device's autotuning chose (or the one it was told to use).
pub(crate) fn matmul(
    gpu: &Gpu,
    a: &GpuTensor,
    b: &GpuTensor,
    op: MatmulOp,
    precision: Precision,
) -> Result<GpuTensor> {
    check_dtypes("matmul", precision, &[a.dtype(), b.dtype()])?;
    op.dims(a.shape(), b.shape())?;
    let variant = gpu.matmul_variant(precision)?;
    matmul_with(gpu, a, b, op, precision, variant)
}

/// `op(A)·op(B)` with a given variant.
pub fn matmul_with(
    gpu: &Gpu,
    a: &GpuTensor,
    b: &GpuTensor,
    op: MatmulOp,
    precision: Precision,
    variant: MatmulVariant,
) -> Result<GpuTensor> {
    check_dtypes("matmul", precision, &[a.dtype(), b.dtype()])?;
    let (m, k, n) = op.dims(a.shape(), b.shape())?;
    let tile = variant.tile();
    let tiles = (m.div_ceil(tile) * n.div_ceil(tile)) as u64;
    let (groups_x, groups_y) = gpu.grid(tiles, "matmul")?;
    let out = gpu.alloc(Shape::new(m, n), precision.storage(), "matmul output")?;
    let params = gpu.uniform(&Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        groups_x,
    });
    let pipeline = gpu.pipeline(KernelSpec::matmul(precision, op, variant))?;
    gpu.dispatch(
        &pipeline,
        &[
            (0, &a.buffer),
            (1, &b.buffer),
            (2, &out.buffer),
            (3, &params),
        ],
        (groups_x, groups_y),
        "matmul",
    )?;
    Ok(out)
}
