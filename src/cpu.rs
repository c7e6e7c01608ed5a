//! The CPU backend: a complete backend of its own (fast f32 and mixed matmul through `gemm` on
//! all cores, exact emulation of pure f16), and the reference every GPU result is held to.

use crate::backend::{Backend, BackendInfo, MatmulOp};
use crate::error::Result;
use crate::ops::activation::Activation;
use crate::ops::elementwise::ElementwiseOp;
use crate::ops::{activation, elementwise, matmul, reduce};
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::{HostTensor, Shape};

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl Cpu {
    pub fn new() -> Self {
        Cpu
    }
}

impl Backend for Cpu {
    type Tensor = HostTensor;

    fn info(&self) -> BackendInfo {
        BackendInfo {
            backend: "cpu".into(),
            adapter: format!("CPU reference ({} threads)", rayon::current_num_threads()),
            driver: format!("gradstab {}", env!("CARGO_PKG_VERSION")),
        }
    }

    fn upload(&self, host: &HostTensor) -> Result<HostTensor> {
        Ok(host.clone())
    }

    fn download(&self, tensor: &HostTensor) -> Result<HostTensor> {
        Ok(tensor.clone())
    }

    fn shape(&self, tensor: &HostTensor) -> Shape {
        tensor.shape()
    }

    fn dtype(&self, tensor: &HostTensor) -> DType {
        tensor.dtype()
    }

    fn matmul(
        &self,
        a: &HostTensor,
        b: &HostTensor,
        op: MatmulOp,
        precision: Precision,
    ) -> Result<HostTensor> {
        matmul::cpu::matmul(a, b, op, precision)
    }

    fn activation(
        &self,
        act: Activation,
        x: &HostTensor,
        precision: Precision,
    ) -> Result<HostTensor> {
        apply_activation(act, x, precision, false)
    }

    fn activation_derivative(
        &self,
        act: Activation,
        z: &HostTensor,
        precision: Precision,
    ) -> Result<HostTensor> {
        apply_activation(act, z, precision, true)
    }

    fn hadamard(&self, x: &HostTensor, y: &HostTensor, precision: Precision) -> Result<HostTensor> {
        elementwise::cpu::apply(ElementwiseOp::Hadamard, x, Some(y), 0.0, precision)
    }

    fn scale(&self, x: &HostTensor, s: f32, precision: Precision) -> Result<HostTensor> {
        elementwise::cpu::apply(ElementwiseOp::Scale, x, None, s, precision)
    }

    fn clamp_abs(&self, x: &HostTensor, limit: f32, precision: Precision) -> Result<HostTensor> {
        elementwise::cpu::apply(ElementwiseOp::Clamp, x, None, limit, precision)
    }

    fn stats(&self, x: &HostTensor) -> Result<StatsRecord> {
        Ok(reduce::cpu::reference(x))
    }

    fn row_stats(&self, x: &HostTensor) -> Result<Vec<StatsRecord>> {
        Ok(reduce::cpu::reference_per_row(x))
    }

    fn axpy(
        &self,
        a: f32,
        x: &HostTensor,
        y: &HostTensor,
        precision: Precision,
    ) -> Result<HostTensor> {
        elementwise::cpu::apply(ElementwiseOp::Axpy, x, Some(y), a, precision)
    }
}

fn apply_activation(
    act: Activation,
    x: &HostTensor,
    precision: Precision,
    derivative: bool,
) -> Result<HostTensor> {
    crate::backend::check_dtypes(act.name(), precision, &[x.dtype()])?;
    let out = activation::cpu::apply(act, &x.f32_values(), precision, derivative);
    HostTensor::from_f32_vec_as(precision.storage(), x.shape().rows, x.shape().cols, out)
}
