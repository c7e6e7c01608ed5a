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

/// The operands of `op(A)·op(B)` conform and are stored as `precision` requires; returns
/// `(m, k, n)`.
pub fn matmul(
    (a, a_dtype): (Shape, DType),
    (b, b_dtype): (Shape, DType),
    op: MatmulOp,
    precision: Precision,
) -> Result<(usize, usize, usize)> {
    dtypes("matmul", precision, &[a_dtype, b_dtype])?;
    op.dims(a, b)
}
