//! The handful of primitives a deep MLP needs, implemented by the GPU backend (`gpu.rs`) and
//! by the CPU reference (`cpu.rs`). Both keep the numeric contract of docs/design.md: the same
//! formulas, f16 rounding after every operation in pure f16, and results that differ only
//! within the bounds of `ops::*`.
//!
//! The trait's provided methods (`matmul`, `activation`, `hadamard`, …) check every operand
//! once, here, and only then call the implementation's `run_*` method, so an implementation
//! never sees operands of the wrong shape, dtype or precision. The trait also answers what a
//! backend can do (`supports`, `max_tensor_len`), so callers never probe for it.

pub mod batch;
pub mod cpu;
pub mod gpu;

use crate::error::{Error, Result};
use crate::ops::activation::Activation;
use crate::ops::cast::{self, Overflowing};
use crate::ops::checks;
use crate::ops::elementwise::ElementwiseOp;
use crate::ops::loss::{self, LossKind};
use crate::ops::matmul::MatmulOp;
use crate::ops::optimizer::{self, OptimizerKind, StepTensors};
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::{HostTensor, HostView, Shape};

/// Facts about a backend, for reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackendInfo {
    pub backend: String,
    pub adapter: String,
    pub driver: String,
    /// On a GPU: submissions, host reads and buffers created so far, so anyone can check how
    /// often a run waited for the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<crate::gpu::Traffic>,
}

/// The phases of a training step that a backend can time on its own clock (`Backend::phase`),
/// as the CPU's host clock times them (`train::record::StepTime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Forward,
    Backward,
    Optimizer,
    Records,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Forward,
        Phase::Backward,
        Phase::Optimizer,
        Phase::Records,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The censuses of one optimizer step, started (`Backend::census_later`), not yet collected.
pub struct StepCensus<P> {
    /// Of ΔW = W_new − W_old, in f32.
    pub update: P,
    /// Of the weights after the step: the master where there is one, else the model.
    pub weight: P,
}

pub trait Backend {
    type Tensor: std::fmt::Debug;

    fn info(&self) -> BackendInfo;

    /// Whether this backend can compute in `precision`.
    fn supports(&self, precision: Precision) -> bool;

    /// The most values of `dtype` one tensor can hold.
    fn max_tensor_len(&self, dtype: DType) -> usize;

    /// Whether this backend's tensors are host memory (the CPU backend).
    fn tensors_on_host(&self) -> bool {
        false
    }

    /// Whether the device's memory is the host's (a CPU adapter such as lavapipe), so that
    /// the host's available memory limits it too.
    fn device_memory_is_host(&self) -> bool {
        self.tensors_on_host()
    }

    /// The error for a precision this backend does not support: what is missing and what to
    /// do instead.
    fn unsupported(&self, precision: Precision) -> Error {
        Error::InvalidArgument(format!(
            "{} cannot compute in {precision}",
            self.info().adapter
        ))
    }

    /// Ok where `supports(precision)`, else the error of `unsupported`.
    fn require(&self, precision: Precision) -> Result<()> {
        if self.supports(precision) {
            Ok(())
        } else {
            Err(self.unsupported(precision))
        }
    }

    /// Waits until all submitted work has finished (a no-op where work is synchronous); for
    /// timing.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// Counts the work started from now on towards `phase` (`None`: towards none), for
    /// `phase_seconds`. A backend whose device runs asynchronously times it on the device's
    /// clock; the default times nothing.
    fn phase(&self, _phase: Option<Phase>) {}

    /// The device seconds of each phase (indexed by `Phase::index`) of the work started
    /// since the last call, which ends the phases (`phase(None)`); `None` where the backend
    /// cannot time its device (the CPU, whose host clock its caller reads; a GPU without
    /// timestamp queries).
    fn phase_seconds(&self) -> Result<Option<[f64; 4]>> {
        Ok(None)
    }

    fn upload(&self, host: &HostTensor) -> Result<Self::Tensor>;
    fn download(&self, tensor: &Self::Tensor) -> Result<HostTensor>;
    fn shape(&self, tensor: &Self::Tensor) -> Shape;
    fn dtype(&self, tensor: &Self::Tensor) -> DType;

    /// A statistics record started but not yet brought to the host.
    type PendingStats;

    /// Starts the statistics record of the whole tensor where the tensor lives, without
    /// waiting for it; `collect_stats` brings any number of them back at once.
    fn stats_later(&self, x: &Self::Tensor) -> Result<Self::PendingStats>;

    /// Starts the census of `x` (`stats::Census`: the class counts and ‖x‖₂, what a
    /// training step reads of every gradient and update), collected with the records by
    /// `collect_stats`. A backend may compute it alone, more cheaply, and return a record in
    /// which only the census fields mean anything (`Census::as_partial_record`): only
    /// `batch::StatsBatch::start_census` calls this, and its handles read those fields alone.
    fn census_later(&self, x: &Self::Tensor) -> Result<Self::PendingStats> {
        self.stats_later(x)
    }

    /// The records of `pending`, in order: on a GPU, one read for all of them.
    fn collect_stats(&self, pending: Vec<Self::PendingStats>) -> Result<Vec<StatsRecord>>;

    /// The statistics record of the whole tensor, reduced where the tensor lives; only the
    /// record travels to the host.
    fn stats(&self, x: &Self::Tensor) -> Result<StatsRecord> {
        let pending = vec![self.stats_later(x)?];
        Ok(self
            .collect_stats(pending)?
            .pop()
            .expect("one record per pending record"))
    }

    /// ‖x‖₂ of each tensor, in one wait: the `l2_norm` of each one's statistics record, so
    /// +inf where a tensor holds ±inf and NaN where it holds a NaN, on every backend (training's
    /// ‖ΔW‖/‖W‖ and clipping by norm read these). A backend may compute the norms alone, more
    /// cheaply.
    fn norms(&self, xs: &[&Self::Tensor]) -> Result<Vec<f64>> {
        let pending = xs
            .iter()
            .map(|x| self.stats_later(x))
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .collect_stats(pending)?
            .iter()
            .map(|r| r.l2_norm)
            .collect())
    }

    /// The statistics record of every row.
    fn row_stats(&self, x: &Self::Tensor) -> Result<Vec<StatsRecord>>;

    /// `C = op(A) · op(B)` on operands checked to be `m × k` by `k × n` (`dims`) and stored as
    /// `precision` requires. Call `matmul`, which checks.
    fn run_matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        op: MatmulOp,
        dims: (usize, usize, usize),
        precision: Precision,
        out_scale: f32,
    ) -> Result<Self::Tensor>;

    /// `x` cast to a packed format, on a checked target. Call `cast`.
    fn run_cast(
        &self,
        x: &Self::Tensor,
        target: DType,
        overflowing: Overflowing,
    ) -> Result<Self::Tensor>;

    /// act(x), or act'(x) with `derivative`, on a checked operand. Call `activation` or
    /// `activation_derivative`, which check.
    fn run_activation(
        &self,
        activation: Activation,
        x: &Self::Tensor,
        precision: Precision,
        derivative: bool,
    ) -> Result<Self::Tensor>;

    /// `g ⊙ act'(z)` on checked operands. Call `activation_backward`, which checks. By
    /// default the two ops it stands for, act'(z) into a tensor and then the product; a
    /// backend may fuse them into one pass that gives the same bits.
    fn run_activation_backward(
        &self,
        activation: Activation,
        g: &Self::Tensor,
        z: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        let derivative = self.run_activation(activation, z, precision, true)?;
        self.run_elementwise(
            ElementwiseOp::Hadamard,
            g,
            Some(&derivative),
            0.0,
            precision,
        )
    }

    /// An elementwise op on checked operands (`y` for hadamard and axpy). Call `hadamard`,
    /// `scale`, `axpy` or `clamp_abs`, which check.
    fn run_elementwise(
        &self,
        op: ElementwiseOp,
        x: &Self::Tensor,
        y: Option<&Self::Tensor>,
        scalar: f32,
        precision: Precision,
    ) -> Result<Self::Tensor>;

    /// The loss of every row and the output gradient on checked operands. Call `loss`.
    fn run_loss(
        &self,
        kind: LossKind,
        output: &Self::Tensor,
        targets: &Self::Tensor,
        coefficient: f32,
        precision: Precision,
    ) -> Result<(Self::Tensor, Self::Tensor)>;

    /// One optimizer step on checked operands. Call `optimizer_step`.
    fn run_optimizer_step(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: StepTensors<'_, Self::Tensor>,
        precision: Precision,
    ) -> Result<Self::Tensor>;

    /// One optimizer step on checked operands, and the censuses a training step reads of it,
    /// started as `census_later` starts them. Call `optimizer_step_census`. By default the
    /// step returns ΔW and both censuses are started on the stored tensors; a backend may
    /// take them as the step computes the values, with the same result.
    fn run_optimizer_step_census(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: StepTensors<'_, Self::Tensor>,
        precision: Precision,
    ) -> Result<StepCensus<Self::PendingStats>> {
        let (update, param) = tensors
            .step_then_param(|tensors| self.run_optimizer_step(kind, params, tensors, precision));
        let update = update?;
        Ok(StepCensus {
            update: self.census_later(&update)?,
            weight: self.census_later(param)?,
        })
    }

    /// `kind`'s gradient of the mean loss times `coefficient`'s scale with respect to
    /// `output` (stored as `precision` stores), and every row's loss as an f32 column.
    /// `targets` are f32: values of `output`'s shape for MSE, one label per row for
    /// cross-entropy.
    fn loss(
        &self,
        kind: LossKind,
        output: &Self::Tensor,
        targets: &Self::Tensor,
        coefficient: f32,
        precision: Precision,
    ) -> Result<(Self::Tensor, Self::Tensor)> {
        self.check_unary(kind.name(), output, precision)?;
        loss::check_targets(
            kind,
            self.shape(output),
            self.shape(targets),
            self.dtype(targets),
        )?;
        self.run_loss(kind, output, targets, coefficient, precision)
    }

    /// One step of `kind` on one parameter tensor, in place; returns W_new − W_old (f32).
    /// The gradient is stored as `precision` stores; the master weights and the state as
    /// `optimizer::master_dtype`; the model copy exists exactly in mixed precision.
    fn optimizer_step(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: StepTensors<'_, Self::Tensor>,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.check_optimizer_step(kind, params, &tensors, precision)?;
        self.run_optimizer_step(kind, params, tensors, precision)
    }

    /// `optimizer_step` as training takes it: instead of ΔW, the censuses (`census_later`)
    /// of ΔW (f32) and of the weights the step leaves (the master where there is one, else
    /// the model), for the records' ‖ΔW‖/‖W‖ and unchanged fraction. The same censuses as of
    /// the tensors `optimizer_step` leaves, without ΔW's tensor where the backend can.
    fn optimizer_step_census(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: StepTensors<'_, Self::Tensor>,
        precision: Precision,
    ) -> Result<StepCensus<Self::PendingStats>> {
        self.check_optimizer_step(kind, params, &tensors, precision)?;
        self.run_optimizer_step_census(kind, params, tensors, precision)
    }

    /// The checks of `optimizer_step`: every tensor of the gradient's shape and of the
    /// dtype its role needs, and exactly the state tensors `kind` keeps.
    fn check_optimizer_step(
        &self,
        kind: OptimizerKind,
        params: &optimizer::Params,
        tensors: &StepTensors<'_, Self::Tensor>,
        precision: Precision,
    ) -> Result<()> {
        self.check_unary(kind.name(), tensors.grad, precision)?;
        let shape = self.shape(tensors.grad);
        let master = optimizer::master_dtype(precision);
        let wrong = |what: &str| {
            Error::InvalidArgument(format!(
                "{kind} step in {precision}: {what} does not match the gradient's {shape}"
            ))
        };
        let mut masters: Vec<&Self::Tensor> = vec![&*tensors.param];
        masters.extend(tensors.first_moment.as_deref());
        masters.extend(tensors.second_moment.as_deref());
        for t in masters {
            if self.shape(t) != shape || self.dtype(t) != master {
                return Err(wrong("a master or state tensor"));
            }
        }
        if let Some(model) = tensors.model.as_deref() {
            if self.shape(model) != shape || self.dtype(model) != precision.storage() {
                return Err(wrong("the model copy"));
            }
        }
        let needs_first = kind != OptimizerKind::Sgd || params.momentum != 0.0;
        let needs_second = kind != OptimizerKind::Sgd;
        if tensors.first_moment.is_some() != needs_first
            || tensors.second_moment.is_some() != needs_second
            || tensors.model.is_some() != optimizer::has_model_copy(precision)
            || params.len as usize != shape.len()
        {
            return Err(wrong("the set of state tensors"));
        }
        Ok(())
    }

    /// `C = op(A) · op(B)` in the given precision.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        op: MatmulOp,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.matmul_scaled(a, b, op, precision, 1.0)
    }

    /// `C = out_scale · (op(A) · op(B))`: the product of FP8 operands quantised with scales
    /// s_a and s_b, dequantised by out_scale = (1/s_a)·(1/s_b) as its f32 accumulator is
    /// stored, as an FP8 GEMM's epilogue does.
    fn matmul_scaled(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        op: MatmulOp,
        precision: Precision,
        out_scale: f32,
    ) -> Result<Self::Tensor> {
        self.require(precision)?;
        let (a_dtype, b_dtype) = (self.dtype(a), self.dtype(b));
        let dims = checks::matmul(
            (self.shape(a), a_dtype),
            (self.shape(b), b_dtype),
            op,
            precision,
        )?;
        checks::out_scale(precision, a_dtype, b_dtype, out_scale)?;
        self.run_matmul(a, b, op, dims, precision, out_scale)
    }

    /// `x` cast to `target` (bf16 or an FP8 format), value by value: rounded to nearest
    /// even, beyond the range as `overflowing` says.
    fn cast(
        &self,
        x: &Self::Tensor,
        target: DType,
        overflowing: Overflowing,
    ) -> Result<Self::Tensor> {
        cast::check_target(target)?;
        self.run_cast(x, target, overflowing)
    }

    /// `act(x)` element by element.
    fn activation(
        &self,
        activation: Activation,
        x: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.check_unary(activation.name(), x, precision)?;
        self.run_activation(activation, x, precision, false)
    }

    /// `act'(z)` element by element.
    fn activation_derivative(
        &self,
        activation: Activation,
        z: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.check_unary(activation.name(), z, precision)?;
        self.run_activation(activation, z, precision, true)
    }

    /// `g ⊙ act'(z)`, backward through an activation: the bits of
    /// `hadamard(g, activation_derivative(z))`, act'(z) rounded to storage before the product
    /// as there, on every backend and precision.
    fn activation_backward(
        &self,
        activation: Activation,
        g: &Self::Tensor,
        z: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.require(precision)?;
        checks::dtypes(
            activation.name(),
            precision,
            &[self.dtype(g), self.dtype(z)],
        )?;
        checks::same_shape(activation.name(), self.shape(g), self.shape(z))?;
        self.run_activation_backward(activation, g, z, precision)
    }

    /// `x ⊙ y`.
    fn hadamard(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.check_binary(ElementwiseOp::Hadamard, x, y, precision)?;
        self.run_elementwise(ElementwiseOp::Hadamard, x, Some(y), 0.0, precision)
    }

    /// `s · x`.
    fn scale(&self, x: &Self::Tensor, s: f32, precision: Precision) -> Result<Self::Tensor> {
        self.check_unary(ElementwiseOp::Scale.name(), x, precision)?;
        self.run_elementwise(ElementwiseOp::Scale, x, None, s, precision)
    }

    /// `clamp(x, −limit, limit)`, NaN kept.
    fn clamp_abs(
        &self,
        x: &Self::Tensor,
        limit: f32,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.check_unary(ElementwiseOp::Clamp.name(), x, precision)?;
        self.run_elementwise(ElementwiseOp::Clamp, x, None, limit, precision)
    }

    /// `y + a · x`, returned as a new tensor.
    fn axpy(
        &self,
        a: f32,
        x: &Self::Tensor,
        y: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor> {
        self.check_binary(ElementwiseOp::Axpy, x, y, precision)?;
        self.run_elementwise(ElementwiseOp::Axpy, x, Some(y), a, precision)
    }

    /// One operand, stored as `precision` requires, on a backend that supports it.
    fn check_unary(&self, op: &'static str, x: &Self::Tensor, precision: Precision) -> Result<()> {
        self.require(precision)?;
        checks::dtypes(op, precision, &[self.dtype(x)])
    }

    /// Two operands of one shape, both stored as `precision` requires.
    fn check_binary(
        &self,
        op: ElementwiseOp,
        x: &Self::Tensor,
        y: &Self::Tensor,
        precision: Precision,
    ) -> Result<()> {
        self.require(precision)?;
        checks::dtypes(op.name(), precision, &[self.dtype(x), self.dtype(y)])?;
        checks::same_shape(op.name(), self.shape(x), self.shape(y))
    }

    /// The record of a host tensor of any size: reduced on this backend in pieces of at most
    /// `max_tensor_len` values, merged on the host.
    fn stats_of_host(&self, host: &HostTensor) -> Result<StatsRecord> {
        self.stats_of_view(host.data().view())
    }

    /// [`stats_of_host`](Backend::stats_of_host) of values the caller holds, read where they
    /// lie: no copy on the host (a GPU copies each piece once, into its own memory).
    fn stats_of_view(&self, view: HostView<'_>) -> Result<StatsRecord> {
        self.stats_in_pieces(view, self.max_tensor_len(view.dtype()))
    }

    /// `stats_of_view` with pieces of at most `max_len` values.
    fn stats_in_pieces(&self, view: HostView<'_>, max_len: usize) -> Result<StatsRecord> {
        let len = view.len();
        if len == 0 {
            return Err(Error::ZeroDimension {
                op: "stats",
                detail: "no values".into(),
            });
        }
        let mut merged: Option<StatsRecord> = None;
        for start in (0..len).step_by(max_len.max(1)) {
            let record = self.stats_of_piece(view.slice(start, (start + max_len).min(len)))?;
            merged = Some(match merged {
                None => record,
                Some(m) => m.merge(&record),
            });
        }
        Ok(merged.expect("len ≥ 1, so at least one piece"))
    }

    /// The record of one piece that fits one tensor: uploaded and reduced where this
    /// backend's tensors live.
    fn stats_of_piece(&self, piece: HostView<'_>) -> Result<StatsRecord> {
        self.stats(&self.upload_view(piece)?)
    }

    /// Borrowed values as a 1 × len tensor of this backend.
    fn upload_view(&self, view: HostView<'_>) -> Result<Self::Tensor>;
}
