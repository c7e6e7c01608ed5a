//! Host code of shaders/matmul.wgsl.

use super::{MatmulOp, MatmulVariant, THREADS_PER_EDGE};
use crate::error::Result;
use crate::gpu::{Access, Device, GpuTensor, Header, KernelKey, KernelSource};
use crate::ops::checks;
use crate::precision::{DType, Precision};
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    groups_x: u32,
    out_scale: f32,
    _pad: [u32; 3],
}

/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    precision: Precision,
    operands: (DType, DType),
    op: MatmulOp,
    variant: MatmulVariant,
}

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel_of(self.precision, self.operands, self.op, self.variant)
    }
}

/// The kernel of one precision, transpose pair and variant, on operands in the storage format.
pub fn kernel(precision: Precision, op: MatmulOp, variant: MatmulVariant) -> KernelSource {
    let storage = precision.storage();
    kernel_of(precision, (storage, storage), op, variant)
}

/// The kernel of one precision, operand formats (FP8 ones dequantise their product by the
/// uniform `out_scale`), transpose pair and variant.
pub fn kernel_of(
    precision: Precision,
    (lhs, rhs): (DType, DType),
    op: MatmulOp,
    variant: MatmulVariant,
) -> KernelSource {
    KernelSource {
        file: "matmul.wgsl",
        body: include_str!("../../../shaders/matmul.wgsl"),
        header: Header::new()
            .precision(precision)
            .tensor(0, "lhs", lhs, Access::Read, "A")
            .tensor(1, "rhs", rhs, Access::Read, "A")
            .tensor(2, "out", precision.storage(), Access::ReadWrite, "A")
            .constant_bool(
                "DEQUANTIZE",
                checks::quantised_operands(precision, lhs, rhs),
            )
            .constant_bool("TRANSPOSE_A", op.transpose_a)
            .constant_bool("TRANSPOSE_B", op.transpose_b)
            .constant_u32("THREADS_PER_EDGE", THREADS_PER_EDGE)
            .constant_u32("REG", variant.register_block())
            .constant_bool("USE_SHARED", variant.uses_workgroup_memory()),
        entry_point: "main",
    }
}

/// Every matmul kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    let mut all = Vec::new();
    for precision in Precision::ALL {
        let mut operands = vec![(precision.storage(), precision.storage())];
        if let Some(q) = precision.quantised() {
            // Forward: activations by weights; backward: gradients by weights and by
            // activations.
            operands.extend([(q.forward, q.forward), (q.gradient, q.forward)]);
        }
        for &formats in &operands {
            for op in MatmulOp::ALL {
                for variant in MatmulVariant::ALL {
                    all.push(kernel_of(precision, formats, op, variant));
                }
            }
        }
    }
    all
}

/// `op(A)·op(B)` with a given variant, for callers outside a backend (the autotuner, `verify`,
/// `bench`): the operands are checked here.
pub fn matmul_with(
    gpu: &Device,
    a: &GpuTensor,
    b: &GpuTensor,
    op: MatmulOp,
    precision: Precision,
    variant: MatmulVariant,
) -> Result<GpuTensor> {
    let dims = checks::matmul(
        (a.shape(), a.dtype()),
        (b.shape(), b.dtype()),
        op,
        precision,
    )?;
    run(gpu, a, b, op, dims, precision, variant, 1.0)
}

/// The dispatch itself, on operands already checked to be `m × k` by `k × n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    gpu: &Device,
    a: &GpuTensor,
    b: &GpuTensor,
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    precision: Precision,
    variant: MatmulVariant,
    out_scale: f32,
) -> Result<GpuTensor> {
    let pipeline = gpu.pipeline(Key {
        precision,
        operands: (a.dtype(), b.dtype()),
        op,
        variant,
    })?;
    let tile = variant.tile();
    let tiles = (m.div_ceil(tile) * n.div_ceil(tile)) as u64;
    let (groups_x, groups_y) = gpu.grid(tiles, "matmul")?;
    let out = gpu.alloc(Shape::new(m, n), precision.storage(), "matmul output")?;
    let params = gpu.uniform(&Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        groups_x,
        out_scale,
        _pad: [0; 3],
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::assert_mirrors;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shader() {
        assert_mirrors(
            &kernel(
                Precision::F32,
                MatmulOp::default(),
                MatmulVariant::Tile64Shared,
            ),
            "Params",
            &[
                ("m", offset_of!(Params, m)),
                ("n", offset_of!(Params, n)),
                ("k", offset_of!(Params, k)),
                ("groups_x", offset_of!(Params, groups_x)),
                ("out_scale", offset_of!(Params, out_scale)),
            ],
            size_of::<Params>(),
        );
    }
}
