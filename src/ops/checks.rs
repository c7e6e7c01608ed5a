//! Operand checks, each written once. `Backend`'s provided methods run them before any
//! implementation sees its operands, and the few kernel entry points callable from outside a
//! backend (a matmul with a chosen variant) run the same functions.

use super::matmul::MatmulOp;
use crate::error::{Error, Result};
use crate::precision::{DType, Precision};
use crate::tensor::Shape;

/// Every operand is stored as the precision requires.
pub fn dtypes(op: &'static str, precision: Precision, dtypes: &[DType]) -> Result<()> {
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

/// The two operands of an elementwise op have one shape.
pub fn same_shape(op: &'static str, x: Shape, y: Shape) -> Result<()> {
    if x != y {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("{x} and {y} differ"),
        });
    }
    Ok(())
}

/// The operands of `op(A)·op(B)` conform and are stored as `precision` requires (in FP8, both
/// in the storage format or both quantised to its FP8 formats); returns `(m, k, n)`.
pub fn matmul(
    (a, a_dtype): (Shape, DType),
    (b, b_dtype): (Shape, DType),
    op: MatmulOp,
    precision: Precision,
) -> Result<(usize, usize, usize)> {
    if !quantised_operands(precision, a_dtype, b_dtype) {
        dtypes("matmul", precision, &[a_dtype, b_dtype])?;
    }
    op.dims(a, b)
}

/// Whether both operands are quantised to the FP8 formats of `precision`.
pub fn quantised_operands(precision: Precision, a: DType, b: DType) -> bool {
    precision
        .quantised()
        .is_some_and(|q| [a, b].iter().all(|d| *d == q.forward || *d == q.gradient))
}

/// A dequantising factor is not negative (0 and inf included: (1/s_a)·(1/s_b) of extreme
/// scales rounds to them, and the product is then what Transformer Engine's GEMM gives), and
/// only FP8 operands take one other than 1.
pub fn out_scale(precision: Precision, a: DType, b: DType, out_scale: f32) -> Result<()> {
    if out_scale.is_nan() || out_scale.is_sign_negative() {
        return Err(Error::InvalidArgument(format!(
            "a matmul's output scale is at least 0, not {out_scale}"
        )));
    }
    if out_scale != 1.0 && !quantised_operands(precision, a, b) {
        return Err(Error::InvalidArgument(format!(
            "only a matmul of FP8 operands rescales its output (got {a} and {b} in {precision})"
        )));
    }
    Ok(())
}
