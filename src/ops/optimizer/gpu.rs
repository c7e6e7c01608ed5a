//! Host code of shaders/optimizer.wgsl.

use super::{master_dtype, OptimizerKind, Params, StepTensors};
use crate::error::Result;
use crate::gpu::{Access, Device, GpuTensor, Header, KernelKey, KernelSource};
use crate::precision::{DType, Precision};

/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(OptimizerKind, Precision);

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.0, self.1)
    }
}

pub fn kernel(kind: OptimizerKind, precision: Precision) -> KernelSource {
    KernelSource {
        file: "optimizer.wgsl",
        body: include_str!("../../../shaders/optimizer.wgsl"),
        header: Header::new()
            .precision(precision)
            .tensor(0, "grad", precision.storage(), Access::Read, "f32")
            .tensor(
                1,
                "param",
                master_dtype(precision),
                Access::ReadWrite,
                "f32",
            )
            .tensor(
                2,
                "first_moment",
                master_dtype(precision),
                Access::ReadWrite,
                "f32",
            )
            .tensor(
                3,
                "second_moment",
                master_dtype(precision),
                Access::ReadWrite,
                "f32",
            )
            .tensor(4, "model", precision.storage(), Access::ReadWrite, "f32")
            .rounding("rm", master_dtype(precision))
            .constant_bool("DECOUPLED_WEIGHT_DECAY", kind == OptimizerKind::AdamW),
        entry_point: match kind {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam | OptimizerKind::AdamW => "adam",
        },
    }
}

/// Every optimizer kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    Precision::ALL
        .into_iter()
        .flat_map(|p| OptimizerKind::ALL.map(|k| kernel(k, p)))
        .collect()
}

/// One step, in place; returns W_new − W_old (f32). Operands already checked.
pub(crate) fn run(
    gpu: &Device,
    kind: OptimizerKind,
    params: &Params,
    tensors: StepTensors<'_, GpuTensor>,
    precision: Precision,
) -> Result<GpuTensor> {
    let pipeline = gpu.pipeline(Key(kind, precision))?;
    let shape = tensors.grad.shape();
    let (groups_x, groups_y) = gpu.element_grid(shape.len(), kind.name())?;
    let delta = gpu.alloc(shape, DType::F32, "update")?;
    let uniform = gpu.uniform(&Params {
        groups_x,
        ..*params
    });
    // Bindings the rule does not use (no momentum, no separate model weights) still need a
    // buffer: the device's placeholders, one per binding, never read or written then.
    let (unused_first, unused_second, unused_model) = (
        gpu.placeholder(0)?,
        gpu.placeholder(1)?,
        gpu.placeholder(2)?,
    );
    let first = tensors.first_moment.map_or(&unused_first, |t| &t.buffer);
    let model = tensors.model.map_or(&unused_model, |t| &t.buffer);
    let mut bindings = vec![
        (0, &tensors.grad.buffer),
        (1, &tensors.param.buffer),
        (2, first),
        (4, model),
        (5, &delta.buffer),
        (6, &uniform),
    ];
    if kind != OptimizerKind::Sgd {
        let second = tensors.second_moment.map_or(&unused_second, |t| &t.buffer);
        bindings.push((3, second));
    }
    gpu.dispatch(&pipeline, &bindings, (groups_x, groups_y), kind.name())?;
    Ok(delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::assert_mirrors;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shader() {
        assert_mirrors(
            &kernel(OptimizerKind::Adam, Precision::F32),
            "Params",
            &[
                ("len", offset_of!(Params, len)),
                ("groups_x", offset_of!(Params, groups_x)),
                ("flags", offset_of!(Params, flags)),
                ("lr", offset_of!(Params, lr)),
                ("weight_decay", offset_of!(Params, weight_decay)),
                ("momentum", offset_of!(Params, momentum)),
                ("decoupled_decay", offset_of!(Params, decoupled_decay)),
                ("one_minus_beta1", offset_of!(Params, one_minus_beta1)),
                ("beta2", offset_of!(Params, beta2)),
                ("one_minus_beta2", offset_of!(Params, one_minus_beta2)),
                ("eps", offset_of!(Params, eps)),
                ("step_size", offset_of!(Params, step_size)),
                (
                    "bias_correction2_sqrt",
                    offset_of!(Params, bias_correction2_sqrt),
                ),
                ("grad_scale", offset_of!(Params, grad_scale)),
                ("clip_value", offset_of!(Params, clip_value)),
                ("clip_coefficient", offset_of!(Params, clip_coefficient)),
            ],
            size_of::<Params>(),
        );
    }
}
