//! Host code of shaders/loss.wgsl.

use super::LossKind;
use crate::error::Result;
use crate::gpu::{Access, Device, GpuTensor, Header, KernelKey, KernelSource};
use crate::precision::{DType, Precision};
use crate::tensor::Shape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    groups_x: u32,
    coefficient: f32,
}

/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(LossKind, Precision);

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.0, self.1)
    }
}

pub fn kernel(kind: LossKind, precision: Precision) -> KernelSource {
    KernelSource {
        file: "loss.wgsl",
        body: include_str!("../../../shaders/loss.wgsl"),
        header: Header::new()
            .precision(precision)
            .tensor(0, "output", precision.storage(), Access::Read, "A")
            .tensor(2, "grad", precision.storage(), Access::ReadWrite, "A"),
        entry_point: kind.name(),
    }
}

/// Every loss kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    Precision::ALL
        .into_iter()
        .flat_map(|p| LossKind::ALL.map(|k| kernel(k, p)))
        .collect()
}

/// The output gradient and every row's loss, on operands already checked.
pub(crate) fn run(
    gpu: &Device,
    kind: LossKind,
    output: &GpuTensor,
    targets: &GpuTensor,
    coefficient: f32,
    precision: Precision,
) -> Result<(GpuTensor, GpuTensor)> {
    let pipeline = gpu.pipeline(Key(kind, precision))?;
    let shape = output.shape();
    let (groups_x, groups_y) = gpu.element_grid(shape.rows, kind.name())?;
    let grad = gpu.alloc(shape, precision.storage(), "loss gradient")?;
    let row_loss = gpu.alloc(Shape::new(shape.rows, 1), DType::F32, "row losses")?;
    let params = gpu.uniform(&Params {
        rows: shape.rows as u32,
        cols: shape.cols as u32,
        groups_x,
        coefficient,
    });
    gpu.dispatch(
        &pipeline,
        &[
            (0, &output.buffer),
            (1, &targets.buffer),
            (2, &grad.buffer),
            (3, &row_loss.buffer),
            (4, &params),
        ],
        (groups_x, groups_y),
        kind.name(),
    )?;
    Ok((grad, row_loss))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::assert_mirrors;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shader() {
        assert_mirrors(
            &kernel(LossKind::Mse, Precision::F32),
            "Params",
            &[
                ("rows", offset_of!(Params, rows)),
                ("cols", offset_of!(Params, cols)),
                ("groups_x", offset_of!(Params, groups_x)),
                ("coefficient", offset_of!(Params, coefficient)),
            ],
            size_of::<Params>(),
        );
    }
}
