//! Host code of shaders/matmul.wgsl.

use crate::backend::{check_dtypes, MatmulOp};
use crate::error::Result;
use crate::gpu::kernels::KernelSpec;
use crate::gpu::{Gpu, GpuTensor};
use crate::precision::Precision;
use crate::tensor::Shape;

/// The edge of the square block of C one workgroup computes (TILE in the shader).
pub const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    groups_x: u32,
}

pub(crate) fn matmul(
    gpu: &Gpu,
    a: &GpuTensor,
    b: &GpuTensor,
    op: MatmulOp,
    precision: Precision,
) -> Result<GpuTensor> {
    check_dtypes("matmul", precision, &[a.dtype(), b.dtype()])?;
    let (m, k, n) = op.dims(a.shape(), b.shape())?;
    let tiles = (m.div_ceil(TILE) * n.div_ceil(TILE)) as u64;
    let (groups_x, groups_y) = gpu.grid(tiles, "matmul")?;
    let out = gpu.alloc(Shape::new(m, n), precision.storage(), "matmul output")?;
    let params = gpu.uniform(&Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        groups_x,
    });
    let pipeline = gpu.pipeline(KernelSpec::matmul(precision, op))?;
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
