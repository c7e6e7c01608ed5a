//! Host code of shaders/cast.wgsl.

use super::Overflowing;
use crate::error::Result;
use crate::format::Format;
use crate::gpu::{codec, Access, Device, GpuTensor, Header, KernelKey, KernelSource};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    groups_x: u32,
    _pad: [u32; 2],
}

/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    input: Format,
    target: Format,
    overflowing: Overflowing,
}

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.input, self.target, self.overflowing)
    }
}

/// The kernel that casts `input` values to `target` (a packed format).
pub fn kernel(input: Format, target: Format, overflowing: Overflowing) -> KernelSource {
    let encoder = codec::encoder(target, overflowing == Overflowing::Saturate);
    KernelSource {
        file: "cast.wgsl",
        body: include_str!("../../../shaders/cast.wgsl"),
        header: Header::new()
            .tensor(0, "input", input, Access::Read, "f32")
            .tensor(1, "output", target, Access::ReadWrite, "f32")
            .function_alias("cast_bits", &encoder, "f32", "u32"),
        entry_point: "cast_values",
    }
}

/// The inputs and targets the kernels are compiled for: the storage formats of the
/// precisions, to bf16 and to each FP8 format.
pub fn kernels() -> Vec<KernelSource> {
    let mut all = Vec::new();
    for input in [Format::F32, Format::F16, Format::Bf16] {
        for target in [Format::Bf16, Format::E4m3, Format::E5m2] {
            for overflowing in [Overflowing::AsFormat, Overflowing::Saturate] {
                all.push(kernel(input, target, overflowing));
            }
        }
    }
    all
}

/// `x` cast to `target`, on an operand already checked.
pub(crate) fn run(
    gpu: &Device,
    x: &GpuTensor,
    target: Format,
    overflowing: Overflowing,
) -> Result<GpuTensor> {
    let pipeline = gpu.pipeline(Key {
        input: x.dtype(),
        target,
        overflowing,
    })?;
    let len = x.shape().len();
    let grid = gpu.element_grid(len, "cast")?;
    let out = gpu.alloc(x.shape(), target, "cast output")?;
    let params = gpu.uniform(&Params {
        len: len as u32,
        groups_x: grid.0,
        _pad: [0; 2],
    });
    gpu.dispatch(
        &pipeline,
        &[(0, &x.buffer), (1, &out.buffer), (2, &params)],
        grid,
        "cast",
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
            &kernel(Format::F32, Format::E4m3, Overflowing::Saturate),
            "Params",
            &[
                ("len", offset_of!(Params, len)),
                ("groups_x", offset_of!(Params, groups_x)),
            ],
            size_of::<Params>(),
        );
    }
}
