//! CPU reference of shaders/elementwise.wgsl: one rounding per operation in the arithmetic
//! type, one more to storage.

use rayon::prelude::*;

use super::{scalar_as, ElementwiseOp};
use crate::error::Result;
use crate::precision::{Arith, Precision};
use crate::tensor::HostTensor;

/// `op` on `x` (and `y`, for hadamard and axpy) with scalar `s`, on operands already checked
/// to match each other and `precision`.
pub(crate) fn run(
    op: ElementwiseOp,
    x: &HostTensor,
    y: Option<&HostTensor>,
    s: f32,
    precision: Precision,
) -> Result<HostTensor> {
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
