//! Host code of shaders/activation.wgsl.

use super::{Activation, INPUT_CLAMP, TANH_COEFFICIENTS, TANH_POLYNOMIAL_BELOW};
use crate::error::Result;
use crate::gpu::{Access, Device, GpuTensor, Header, KernelKey, KernelSource};
use crate::precision::Precision;

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

/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    precision: Precision,
    derivative: bool,
}

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.precision, self.derivative)
    }
}

/// The kernel of act (`derivative` false) or act' in one precision.
pub fn kernel(precision: Precision, derivative: bool) -> KernelSource {
    let storage = precision.storage();
    let mut header = Header::new()
        .precision(precision)
        .tensor(0, "input", storage, Access::Read, "A")
        .tensor(1, "output", storage, Access::ReadWrite, "A")
        .constant_float("INPUT_CLAMP", INPUT_CLAMP)
        .constant_float("TANH_POLYNOMIAL_BELOW", TANH_POLYNOMIAL_BELOW);
    for (name, c) in ["TANH_C3", "TANH_C5", "TANH_C7", "TANH_C9"]
        .iter()
        .zip(TANH_COEFFICIENTS)
    {
        header = header.constant_float(name, c);
    }
    for (code, kind) in Activation::KINDS.iter().enumerate() {
        header = header.constant_u32(&format!("KIND_{}", kind.to_uppercase()), code as u32);
    }
    KernelSource {
        file: "activation.wgsl",
        body: include_str!("../../../shaders/activation.wgsl"),
        header,
        entry_point: if derivative { "derivative" } else { "forward" },
    }
}

/// Every activation kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    Precision::ALL
        .into_iter()
        .flat_map(|p| [kernel(p, false), kernel(p, true)])
        .collect()
}

/// act(x) or act'(x) on an operand already checked to be stored as `precision` requires.
pub(crate) fn run(
    gpu: &Device,
    act: Activation,
    x: &GpuTensor,
    precision: Precision,
    derivative: bool,
) -> Result<GpuTensor> {
    let pipeline = gpu.pipeline(Key {
        precision,
        derivative,
    })?;
    let len = x.shape().len();
    let (groups_x, groups_y) = gpu.element_grid(len, act.name())?;
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
    gpu.dispatch(
        &pipeline,
        &[(0, &x.buffer), (1, &out.buffer), (2, &params)],
        (groups_x, groups_y),
        act.name(),
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
            &kernel(Precision::F32, false),
            "Params",
            &[
                ("len", offset_of!(Params, len)),
                ("kind", offset_of!(Params, kind)),
                ("alpha", offset_of!(Params, alpha)),
                ("beta", offset_of!(Params, beta)),
                ("groups_x", offset_of!(Params, groups_x)),
            ],
            size_of::<Params>(),
        );
    }
}
