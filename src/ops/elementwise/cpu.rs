//! CPU reference of shaders/elementwise.wgsl: one rounding per operation in the arithmetic
//! type, one more to storage.

use rayon::prelude::*;

use super::{scalar_as, ElementwiseOp};
use crate::backend::{check_dtypes, check_same_shape};
use crate::error::Result;
use crate::ops::activation::cpu::Arith;
use crate::precision::Precision;
use crate::tensor::HostTensor;

/// `op` on `x` (and `y`, for hadamard and axpy) with scalar `s`.
pub(crate) fn apply(
    op: ElementwiseOp,
    x: &HostTensor,
    y: Option<&HostTensor>,
    s: f32,
    precision: Precision,
) -> Result<HostTensor> {
    check_dtypes(op.name(), precision, &[x.dtype()])?;
    if let Some(y) = y {
        check_dtypes(op.name(), precision, &[y.dtype()])?;
        check_same_shape(op.name(), x.shape(), y.shape())?;
    }
    let a = Arith(precision.arithmetic());
    let s = scalar_as(precision.arithmetic(), s);
    let xs = x.f32_values();
    let ys = y.map(HostTensor::f32_values);
    let out: Vec<f32> = xs
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(i, &xv)| match op {
            ElementwiseOp::Hadamard => a.r(xv * ys.as_ref().expect("hadamard has y")[i]),
            ElementwiseOp::Scale => a.r(s * xv),
            ElementwiseOp::Axpy => a.r(ys.as_ref().expect("axpy has y")[i] + a.r(s * xv)),
            ElementwiseOp::Clamp => {
                if xv.is_nan() {
                    xv
                } else {
                    xv.clamp(-s, s)
                }
            }
        })
        .collect();
    HostTensor::from_f32_vec_as(precision.storage(), x.shape().rows, x.shape().cols, out)
}
