//! The CPU backend: a complete backend of its own (fast f32 and mixed matmul through `gemm` on
//! all cores, exact emulation of pure f16), and the reference every GPU result is held to.

use super::{Backend, BackendInfo, StepCensus};
use crate::error::Result;
use crate::ops::activation::{self, Activation};
use crate::ops::cast::{self, Overflowing};
use crate::ops::elementwise::{self, ElementwiseOp};
use crate::ops::loss::{self, LossKind};
use crate::ops::matmul::{self, MatmulOp};
use crate::ops::optimizer::{self, OptimizerKind, StepTensors};
use crate::ops::reduce;
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::{HostTensor, HostView, Shape};

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
            traffic: None,
        }
    }

    /// Every precision: f16 is emulated exactly.
    fn supports(&self, _precision: Precision) -> bool {
        true
    }

    /// Host memory is the limit; a `Vec` holds up to `isize::MAX` bytes.
    fn tensors_on_host(&self) -> bool {
        true
    }

    fn max_tensor_len(&self, dtype: DType) -> usize {
        isize::MAX as usize / dtype.size_bytes() as usize
    }

    fn upload(&self, host: &HostTensor) -> Result<HostTensor> {
        Ok(host.clone())
    }

    fn download(&self, tensor: &HostTensor) -> Result<HostTensor> {
        Ok(tensor.clone())
    }

    fn upload_view(&self, view: HostView<'_>) -> Result<HostTensor> {
        view.to_tensor()
    }

    /// Reduced where the values lie: the CPU backend's tensors are host memory already.
    fn stats_of_piece(&self, piece: HostView<'_>) -> Result<StatsRecord> {
        Ok(reduce::cpu::reference_of_view(piece))
    }

    fn shape(&self, tensor: &HostTensor) -> Shape {
        tensor.shape()
    }

    fn dtype(&self, tensor: &HostTensor) -> DType {
        tensor.dtype()
    }

    /// The CPU has nothing to wait for: the record is computed at once.
    type PendingStats = StatsRecord;

    fn stats_later(&self, x: &HostTensor) -> Result<StatsRecord> {
        Ok(reduce::cpu::reference(x))
    }

    fn collect_stats(&self, pending: Vec<StatsRecord>) -> Result<Vec<StatsRecord>> {
        Ok(pending)
    }

    /// The lean pass alone: the counts and the norm, without moments or histogram.
    fn census_later(&self, x: &HostTensor) -> Result<StatsRecord> {
        Ok(reduce::census::census(x.data().view()).as_partial_record(x.dtype()))
    }

    fn norms(&self, xs: &[&HostTensor]) -> Result<Vec<f64>> {
        Ok(xs
            .iter()
            .map(|x| reduce::census::census(x.data().view()).l2_norm)
            .collect())
    }

    fn row_stats(&self, x: &HostTensor) -> Result<Vec<StatsRecord>> {
        Ok(reduce::cpu::reference_per_row(x))
    }

    fn run_matmul(
        &self,
        a: &HostTensor,
        b: &HostTensor,
        op: MatmulOp,
        dims: (usize, usize, usize),
        precision: Precision,
        out_scale: f32,
    ) -> Result<HostTensor> {
        matmul::cpu::run(a, b, op, dims, precision, out_scale)
    }

    fn run_cast(
        &self,
        x: &HostTensor,
        target: DType,
        overflowing: Overflowing,
    ) -> Result<HostTensor> {
        cast::cpu::run(x, target, overflowing)
    }

    fn run_activation(
        &self,
        act: Activation,
        x: &HostTensor,
        precision: Precision,
        derivative: bool,
    ) -> Result<HostTensor> {
        activation::cpu::run(act, x, precision, derivative)
    }

    /// One pass instead of act'(z) into a tensor and then the product.
    fn run_activation_backward(
        &self,
        act: Activation,
        g: &HostTensor,
        z: &HostTensor,
        precision: Precision,
    ) -> Result<HostTensor> {
        activation::cpu::run_backward(act, g, z, precision)
    }

    fn run_elementwise(
        &self,
        op: ElementwiseOp,
        x: &HostTensor,
        y: Option<&HostTensor>,
        scalar: f32,
        precision: Precision,
    ) -> Result<HostTensor> {
        elementwise::cpu::run(op, x, y, scalar, precision)
    }

    fn run_loss(
        &self,
        kind: LossKind,
        output: &HostTensor,
        targets: &HostTensor,
        coefficient: f32,
        precision: Precision,
    ) -> Result<(HostTensor, HostTensor)> {
        loss::cpu::run(kind, output, targets, coefficient, precision)
    }

    fn run_optimizer_step(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: StepTensors<'_, HostTensor>,
        precision: Precision,
    ) -> Result<HostTensor> {
        let master = optimizer::master_dtype(precision);
        match optimizer::cpu::run(kind, params, tensors, master, false)? {
            optimizer::cpu::Outcome::Update(delta) => Ok(delta),
            optimizer::cpu::Outcome::Census { .. } => unreachable!("ΔW was asked for"),
        }
    }

    /// ΔW's census and the new f32 master's taken in the update's pass: no tensor of ΔW,
    /// no second read of the weights. A narrower master (pure f16, bf16) is counted as stored.
    fn run_optimizer_step_census(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: StepTensors<'_, HostTensor>,
        precision: Precision,
    ) -> Result<StepCensus<StatsRecord>> {
        let master = optimizer::master_dtype(precision);
        let (outcome, param) = tensors
            .step_then_param(|tensors| optimizer::cpu::run(kind, params, tensors, master, true));
        let (update, weight) = match outcome? {
            optimizer::cpu::Outcome::Census { update, weight } => (update, weight),
            optimizer::cpu::Outcome::Update(_) => unreachable!("the census was asked for"),
        };
        let weight = match weight {
            Some(census) => census.as_partial_record(master),
            None => self.census_later(param)?,
        };
        Ok(StepCensus {
            update: update.as_partial_record(DType::F32),
            weight,
        })
    }
}
