//! CPU reference of shaders/elementwise.wgsl: one rounding per operation in the arithmetic
//! type, one more to storage.

use rayon::prelude::*;

use super::{scalar_as, ElementwiseOp};
use crate::error::Result;
use crate::ops::activation::cpu::{map_f32, zip_map_f32};
use crate::precision::{Arith, DType, Precision};
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
    if a.0 == DType::F32 && precision.storage() == DType::F32 {
        let out = run_f32(op, &xs, ys.as_deref(), s);
        return HostTensor::from_f32(x.shape().rows, x.shape().cols, out);
    }
    let out: Vec<f32> = xs
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(i, &xv)| match op {
            ElementwiseOp::Hadamard => a.r(xv * ys.as_ref().expect("hadamard has y")[i]),
            ElementwiseOp::Scale => a.r(s * xv),
            ElementwiseOp::Axpy => a.r(ys.as_ref().expect("axpy has y")[i] + a.r(s * xv)),
            ElementwiseOp::Clamp => clamp(xv, s),
        })
        .collect();
    HostTensor::from_f32_vec_as(precision.storage(), x.shape().rows, x.shape().cols, out)
}

/// x clamped to [−s, s], NaN kept.
#[inline(always)]
fn clamp(x: f32, s: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.clamp(-s, s)
    }
}

/// `run` in f32 arithmetic and storage, where every rounding is the identity: one loop per
/// op, which the compiler vectorises, instead of a match per value. The same operations in
/// the same order, so the same bits.
fn run_f32(op: ElementwiseOp, xs: &[f32], ys: Option<&[f32]>, s: f32) -> Vec<f32> {
    let ys = || ys.expect("hadamard and axpy have y");
    match op {
        ElementwiseOp::Hadamard => zip_map_f32(xs, ys(), |x, y| x * y),
        ElementwiseOp::Axpy => zip_map_f32(xs, ys(), |x, y| y + s * x),
        ElementwiseOp::Scale => map_f32(xs, |x| s * x),
        ElementwiseOp::Clamp => map_f32(xs, |x| clamp(x, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each op's f32 loop against its formula in the generic path with f32 arithmetic
    /// (where every rounding is the identity), bit for bit.
    #[test]
    fn the_f32_loops_give_the_generic_formulas_bits() {
        let xs: Vec<f32> = (0..40_000)
            .map(|i| ((i as f32) * 0.377).sin() * 10f32.powi(i % 7 - 3))
            .chain([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-42])
            .collect();
        let ys: Vec<f32> = xs.iter().rev().map(|x| x * 1.5 - 0.25).collect();
        let x = HostTensor::from_f32(1, xs.len(), xs.clone()).unwrap();
        let y = HostTensor::from_f32(1, ys.len(), ys.clone()).unwrap();
        let s = 0.3f32;
        type Formula = fn(f32, f32, f32) -> f32;
        let formulas: [(ElementwiseOp, Formula); 4] = [
            (ElementwiseOp::Hadamard, |x, y, _| x * y),
            (ElementwiseOp::Scale, |x, _, s| s * x),
            (ElementwiseOp::Axpy, |x, y, s| y + s * x),
            (ElementwiseOp::Clamp, |x, _, s| clamp(x, s)),
        ];
        for (op, formula) in formulas {
            let out = run(op, &x, Some(&y), s, Precision::F32)
                .unwrap()
                .to_f32_vec();
            for i in 0..xs.len() {
                let want = formula(xs[i], ys[i], s);
                let same = want.to_bits() == out[i].to_bits() || (want.is_nan() && out[i].is_nan());
                assert!(same, "{op:?} at {i}: {} not {want}", out[i]);
            }
        }
    }
}
