//! Elementwise kernels of the backward pass: `x ⊙ y`, `s·x` and `y + a·x`, with the error
//! bound between two conforming backends.

pub mod cpu;
pub mod gpu;

use crate::precision::{DType, Precision};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementwiseOp {
    /// `x ⊙ y`.
    Hadamard,
    /// `s·x`.
    Scale,
    /// `y + a·x`.
    Axpy,
    /// `clamp(x, −a, a)`: clipping by value.
    Clamp,
}

impl ElementwiseOp {
    pub const ALL: [ElementwiseOp; 4] = [
        ElementwiseOp::Hadamard,
        ElementwiseOp::Scale,
        ElementwiseOp::Axpy,
        ElementwiseOp::Clamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ElementwiseOp::Hadamard => "hadamard",
            ElementwiseOp::Scale => "scale",
            ElementwiseOp::Axpy => "axpy",
            ElementwiseOp::Clamp => "clamp",
        }
    }

    pub(crate) fn entry_point(self) -> &'static str {
        match self {
            ElementwiseOp::Clamp => "clamp_abs",
            other => other.name(),
        }
    }

    /// The largest difference allowed between two conforming results `c1`, `c2` of this op on
    /// one element, where `product` is the exact |a·x| (or |x·y|):
    /// - clamping returns an input or the bound, exactly;
    /// - one product is one correctly rounded operation: both results are the same unless the
    ///   device flushes a subnormal;
    /// - `y + a·x` rounds the product and the sum; a device may fuse the two, which changes the
    ///   result by at most the product's rounding, u·|a·x|, plus one rounding of the sum, u·|c|,
    ///   on each side;
    /// - in `f16acc32` the f32 result is rounded to f16 once on store, adding u16·|c| per side.
    pub fn error_bound(
        self,
        precision: Precision,
        product: f64,
        c1: f64,
        c2: f64,
        flushes_subnormals: bool,
    ) -> f64 {
        let u = precision.arithmetic().unit_roundoff();
        let magnitude = finite_or_zero(c1).abs() + finite_or_zero(c2).abs();
        let arithmetic = match self {
            ElementwiseOp::Hadamard | ElementwiseOp::Scale | ElementwiseOp::Clamp => 0.0,
            ElementwiseOp::Axpy => 2.0 * u * finite_or_zero(product) + u * magnitude,
        };
        let store = if precision.rounds_on_store() {
            precision.storage().unit_roundoff() * magnitude
        } else {
            0.0
        };
        let subnormal = if flushes_subnormals {
            precision.arithmetic().min_normal() + precision.storage().min_normal()
        } else {
            precision.arithmetic().subnormal_half_spacing()
                + precision.storage().subnormal_half_spacing()
        };
        arithmetic + store + 2.0 * subnormal
    }
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

impl std::fmt::Display for ElementwiseOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rounds a scalar to the arithmetic type, as the kernel does when it reads it.
pub(crate) fn scalar_as(dtype: DType, s: f32) -> f32 {
    dtype.round(s as f64) as f32
}
