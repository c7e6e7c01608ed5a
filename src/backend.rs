//! The handful of primitives a deep MLP needs, implemented by the GPU backend and by the CPU
//! reference. Both keep the numeric contract of DESIGN.md: the same formulas, f16 rounding after
//! every operation in pure f16, and results that differ only within the bounds of `ops::*`.

use crate::error::{Error, Result};
use crate::ops::activation::Activation;
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::{HostTensor, Shape};

/// Which operands of a matmul are read transposed: `C = op(A) · op(B)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MatmulOp {
    pub transpose_a: bool,
    pub transpose_b: bool,
}

impl MatmulOp {
    pub const ALL: [MatmulOp; 4] = [
        MatmulOp::new(false, false),
        MatmulOp::new(false, true),
        MatmulOp::new(true, false),
        MatmulOp::new(true, true),
    ];

    pub const fn new(transpose_a: bool, transpose_b: bool) -> Self {
        MatmulOp {
            transpose_a,
            transpose_b,
        }
    }

    /// `NN`, `NT`, `TN` or `TT`, as in BLAS.
    pub fn name(self) -> &'static str {
        match (self.transpose_a, self.transpose_b) {
            (false, false) => "NN",
            (false, true) => "NT",
            (true, false) => "TN",
            (true, true) => "TT",
        }
    }

    /// The stored shapes of A and B for an `m × k` by `k × n` product.
    pub fn operand_shapes(self, m: usize, k: usize, n: usize) -> (Shape, Shape) {
        let a = if self.transpose_a {
            Shape::new(k, m)
        } else {
            Shape::new(m, k)
        };
        let b = if self.transpose_b {
            Shape::new(n, k)
        } else {
            Shape::new(k, n)
        };
        (a, b)
    }

    /// `(m, k, n)` of the product, or an error naming both shapes.
    pub fn dims(self, a: Shape, b: Shape) -> Result<(usize, usize, usize)> {
        let (m, ka) = if self.transpose_a {
            (a.cols, a.rows)
        } else {
            (a.rows, a.cols)
        };
        let (kb, n) = if self.transpose_b {
            (b.cols, b.rows)
        } else {
            (b.rows, b.cols)
        };
        if ka != kb {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                detail: format!(
                    "op(A) of A{a} is {m}×{ka} but op(B) of B{b} is {kb}×{n} ({}): inner dimensions {ka} ≠ {kb}",
                    self.name()
                ),
            });
        }
        Ok((m, ka, n))
    }
}

/// Facts about a backend, for reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackendInfo {
    pub backend: String,
    pub adapter: String,
    pub driver: String,
}

pub trait Backend {
    type Tensor: std::fmt::Debug;

    fn info(&self) -> BackendInfo;

    /// Waits until all submitted work has finished (a no-op where work is synchronous); for
    /// timing.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn upload(&self, host: &HostTensor) -> Result<Self::Tensor>;
    fn download(&self, tensor: &Self::Tensor) -> Result<HostTensor>;
    fn shape(&self, tensor: &Self::Tensor) -> Shape;
    fn dtype(&self, tensor: &Self::Tensor) -> DType;

    /// `C = op(A) · op(B)` in the given precision.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        op: MatmulOp,
        precision: Precision,
    ) -> Result<Self::Tensor>;

    /// `act(x)` element by element.
    fn activation(
        &self,
        activation: Activation,
        x: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor>;

    /// `act'(z)` element by element.
    fn activation_derivative(
        &self,
        activation: Activation,
        z: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor>;

    /// `x ⊙ y`.
    fn hadamard(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor>;

    /// `s · x`.
    fn scale(&self, x: &Self::Tensor, s: f32, precision: Precision) -> Result<Self::Tensor>;

    /// `clamp(x, −limit, limit)`, NaN kept.
    fn clamp_abs(&self, x: &Self::Tensor, limit: f32, precision: Precision)
        -> Result<Self::Tensor>;

    /// The statistics record of the whole tensor, reduced where the tensor lives; only the
    /// record travels to the host.
    fn stats(&self, x: &Self::Tensor) -> Result<StatsRecord>;

    /// The statistics record of every row.
    fn row_stats(&self, x: &Self::Tensor) -> Result<Vec<StatsRecord>>;

    /// `y + a · x`, returned as a new tensor.
    fn axpy(
        &self,
        a: f32,
        x: &Self::Tensor,
        y: &Self::Tensor,
        precision: Precision,
    ) -> Result<Self::Tensor>;
}

/// Checks that every operand is stored as the precision requires.
pub fn check_dtypes(op: &'static str, precision: Precision, dtypes: &[DType]) -> Result<()> {
    for &found in dtypes {
        if found != precision.storage() {
            return Err(Error::DTypeMismatch {
                op,
                precision: precision.name().to_string(),
                expected: precision.storage().name().to_string(),
                found: found.name().to_string(),
            });
        }
    }
    Ok(())
}

/// Checks that two operands of an elementwise op have one shape.
pub fn check_same_shape(op: &'static str, x: Shape, y: Shape) -> Result<()> {
    if x != y {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("{x} and {y} differ"),
        });
    }
    Ok(())
}

/// The record of a host tensor of any size: reduced on `backend` in pieces of at most
/// `max_len` values (the device's binding limit), merged on the host.
pub fn stats_in_pieces<B: Backend>(
    backend: &B,
    host: &HostTensor,
    max_len: usize,
) -> Result<StatsRecord> {
    let len = host.len();
    if len <= max_len {
        return backend.stats(&backend.upload(host)?);
    }
    let mut merged: Option<StatsRecord> = None;
    for start in (0..len).step_by(max_len.max(1)) {
        let piece = host.slice(start, (start + max_len).min(len))?;
        let record = backend.stats(&backend.upload(&piece)?)?;
        merged = Some(match merged {
            None => record,
            Some(m) => m.merge(&record),
        });
    }
    Ok(merged.expect("len > max_len ≥ 1, so at least one piece"))
}
