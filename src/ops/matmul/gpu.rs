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

/// The paths a matmul kernel may take. Every path sums k in order with one fma per step, so
/// they give the same bits; the checked one is the reference the others are tested against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulPaths {
    /// Every load tested against the matrix's bounds, one element at a time.
    Checked,
    /// Interior workgroups load and store without bounds tests; an operand whose contiguous
    /// dimension is a multiple of 4 and whose format WGSL holds natively is also read four
    /// elements per load, through a vector view of its buffer.
    Fast,
}

/// The bindings of the vector views of A and B (the same buffers as bindings 0 and 1).
const LHS_VEC4_BINDING: u32 = 4;
const RHS_VEC4_BINDING: u32 = 5;

/// Which operands get a vector view: the contiguous dimension of op(A) as stored is k (or m
/// when transposed), of op(B) n (or k); a view is aligned only where that dimension is a
/// multiple of 4, and exists only for f32 and f16 storage (packed formats share u32 words).
fn vector_views(
    (lhs, rhs): (DType, DType),
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    paths: MatmulPaths,
) -> (bool, bool) {
    if paths == MatmulPaths::Checked {
        return (false, false);
    }
    let lhs_contiguous = if op.transpose_a { m } else { k };
    let rhs_contiguous = if op.transpose_b { k } else { n };
    (
        lhs.native_wgsl().is_some() && lhs_contiguous % 4 == 0,
        rhs.native_wgsl().is_some() && rhs_contiguous % 4 == 0,
    )
}

/// The pipeline-cache key of [`kernel_of`]: built and hashed on every dispatch, rendered only
/// on a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    precision: Precision,
    operands: (DType, DType),
    op: MatmulOp,
    variant: MatmulVariant,
    paths: MatmulPaths,
    /// Whether A and B are bound a second time as vector views.
    views: (bool, bool),
}

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        let paths = (self.paths, self.views);
        kernel_of(self.precision, self.operands, self.op, self.variant, paths)
    }
}

/// The kernel of one precision, transpose pair and variant, on operands in the storage format
/// (the fast paths, scalar loads).
pub fn kernel(precision: Precision, op: MatmulOp, variant: MatmulVariant) -> KernelSource {
    let storage = precision.storage();
    kernel_of(
        precision,
        (storage, storage),
        op,
        variant,
        (MatmulPaths::Fast, (false, false)),
    )
}

/// The kernel of one precision, operand formats (FP8 ones dequantise their product by the
/// uniform `out_scale`), transpose pair, variant, paths and vector views of (A, B).
pub fn kernel_of(
    precision: Precision,
    (lhs, rhs): (DType, DType),
    op: MatmulOp,
    variant: MatmulVariant,
    (paths, (vec_a, vec_b)): (MatmulPaths, (bool, bool)),
) -> KernelSource {
    KernelSource {
        file: "matmul.wgsl",
        body: include_str!("../../../shaders/matmul.wgsl"),
        header: Header::new()
            .precision(precision)
            .tensor(0, "lhs", lhs, Access::Read, "A")
            .tensor(1, "rhs", rhs, Access::Read, "A")
            .tensor(2, "out", precision.storage(), Access::ReadWrite, "A")
            .vector_view(vec_a.then_some(LHS_VEC4_BINDING), "lhs", lhs, "A")
            .vector_view(vec_b.then_some(RHS_VEC4_BINDING), "rhs", rhs, "A")
            .constant_bool(
                "DEQUANTIZE",
                checks::quantised_operands(precision, lhs, rhs),
            )
            .constant_bool("TRANSPOSE_A", op.transpose_a)
            .constant_bool("TRANSPOSE_B", op.transpose_b)
            .constant_u32("THREADS_PER_EDGE", THREADS_PER_EDGE)
            .constant_u32("REG", variant.register_block())
            .constant_bool("USE_SHARED", variant.uses_workgroup_memory())
            .constant_bool("INTERIOR_PATH", paths == MatmulPaths::Fast),
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
            let native = formats.0.native_wgsl().is_some() && formats.1.native_wgsl().is_some();
            for op in MatmulOp::ALL {
                for variant in MatmulVariant::ALL {
                    all.push(kernel_of(
                        precision,
                        formats,
                        op,
                        variant,
                        (MatmulPaths::Checked, (false, false)),
                    ));
                    all.push(kernel_of(
                        precision,
                        formats,
                        op,
                        variant,
                        (MatmulPaths::Fast, (native, native)),
                    ));
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
    matmul_with_paths(gpu, a, b, op, precision, variant, MatmulPaths::Fast)
}

/// [`matmul_with`] on chosen paths: the test that the fast paths give the checked path's bits.
pub fn matmul_with_paths(
    gpu: &Device,
    a: &GpuTensor,
    b: &GpuTensor,
    op: MatmulOp,
    precision: Precision,
    variant: MatmulVariant,
    paths: MatmulPaths,
) -> Result<GpuTensor> {
    let dims = checks::matmul(
        (a.shape(), a.dtype()),
        (b.shape(), b.dtype()),
        op,
        precision,
    )?;
    run_paths(gpu, a, b, op, dims, precision, (variant, paths), 1.0)
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
    let dims = (m, k, n);
    let variant = (variant, MatmulPaths::Fast);
    run_paths(gpu, a, b, op, dims, precision, variant, out_scale)
}

#[allow(clippy::too_many_arguments)]
fn run_paths(
    gpu: &Device,
    a: &GpuTensor,
    b: &GpuTensor,
    op: MatmulOp,
    (m, k, n): (usize, usize, usize),
    precision: Precision,
    (variant, paths): (MatmulVariant, MatmulPaths),
    out_scale: f32,
) -> Result<GpuTensor> {
    let formats = (a.dtype(), b.dtype());
    let views = vector_views(formats, op, (m, k, n), paths);
    let pipeline = gpu.pipeline(Key {
        precision,
        operands: formats,
        op,
        variant,
        paths,
        views,
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
    let mut buffers = vec![
        (0, &a.buffer),
        (1, &b.buffer),
        (2, &out.buffer),
        (3, &params),
    ];
    if views.0 {
        buffers.push((LHS_VEC4_BINDING, &a.buffer));
    }
    if views.1 {
        buffers.push((RHS_VEC4_BINDING, &b.buffer));
    }
    gpu.dispatch(&pipeline, &buffers, (groups_x, groups_y), "matmul")?;
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
