//! Host code of shaders/elementwise.wgsl.

use super::ElementwiseOp;
use crate::error::Result;
use crate::gpu::{Access, Device, GpuTensor, Header, KernelKey, KernelSource};
use crate::precision::Precision;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    groups_x: u32,
    scalar: f32,
    _pad: u32,
}

/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(ElementwiseOp, Precision);

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.0, self.1)
    }
}

/// The kernel of one op in one precision.
pub fn kernel(op: ElementwiseOp, precision: Precision) -> KernelSource {
    KernelSource {
        file: "elementwise.wgsl",
        body: include_str!("../../../shaders/elementwise.wgsl"),
        header: Header::new()
            .precision(precision)
            .tensor(0, "x", precision.storage(), Access::Read, "A")
            .tensor(1, "y", precision.storage(), Access::Read, "A")
            .tensor(2, "out", precision.storage(), Access::ReadWrite, "A"),
        entry_point: op.entry_point(),
    }
}

/// Every elementwise kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    Precision::ALL
        .into_iter()
        .flat_map(|p| ElementwiseOp::ALL.map(|op| kernel(op, p)))
        .collect()
}

/// `op` on `x` (and `y`, for hadamard and axpy) with scalar `s`, on operands already checked
/// to match each other and `precision`.
pub(crate) fn run(
    gpu: &Device,
    op: ElementwiseOp,
    x: &GpuTensor,
    y: Option<&GpuTensor>,
    s: f32,
    precision: Precision,
) -> Result<GpuTensor> {
    let pipeline = gpu.pipeline(Key(op, precision))?;
    let len = x.shape().len();
    let (groups_x, groups_y) = gpu.element_grid(len, op.name())?;
    let out = gpu.alloc(x.shape(), precision.storage(), "elementwise output")?;
    let params = gpu.uniform(&Params {
        len: len as u32,
        groups_x,
        scalar: s,
        _pad: 0,
    });
    let grid = (groups_x, groups_y);
    match y {
        Some(y) => gpu.dispatch(
            &pipeline,
            &[
                (0, &x.buffer),
                (1, &y.buffer),
                (2, &out.buffer),
                (3, &params),
            ],
            grid,
            op.name(),
        )?,
        None => gpu.dispatch(
            &pipeline,
            &[(0, &x.buffer), (2, &out.buffer), (3, &params)],
            grid,
            op.name(),
        )?,
    }
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
            &kernel(ElementwiseOp::Axpy, Precision::F32),
            "Params",
            &[
                ("len", offset_of!(Params, len)),
                ("groups_x", offset_of!(Params, groups_x)),
                ("scalar", offset_of!(Params, scalar)),
            ],
            size_of::<Params>(),
        );
    }
}
