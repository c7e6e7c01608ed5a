//! CPU reference of shaders/loss.wgsl, operation for operation.

use rayon::prelude::*;

use super::LossKind;
use crate::error::Result;
use crate::precision::{Arith, Precision};
use crate::tensor::HostTensor;

/// The gradient (stored as `precision` stores) and the f32 loss of every row.
pub(crate) fn run(
    kind: LossKind,
    output: &HostTensor,
    targets: &HostTensor,
    coefficient: f32,
    precision: Precision,
) -> Result<(HostTensor, HostTensor)> {
    let a = Arith(precision.arithmetic());
    let storage = Arith(precision.storage());
    let shape = output.shape();
    let cols = shape.cols;
    let out = output.f32_values();
    let y = targets.f32_values();
    let rows: Vec<(Vec<f32>, f32)> = (0..shape.rows)
        .into_par_iter()
        .map(|r| {
            let o = &out[r * cols..(r + 1) * cols];
            match kind {
                LossKind::Mse => {
                    let coefficient = a.r(coefficient);
                    let mut sum = 0.0f32;
                    let grad = o
                        .iter()
                        .zip(&y[r * cols..(r + 1) * cols])
                        .map(|(&o, &t)| {
                            let d = a.r(o - a.r(t));
                            sum += a.r(d * d);
                            storage.r(a.r(d * coefficient))
                        })
                        .collect();
                    (grad, sum)
                }
                LossKind::CrossEntropy => {
                    let label = y[r] as usize;
                    let m = o[1..].iter().fold(o[0], |m, &v| m.max(v));
                    let sum: f32 = o.iter().fold(0.0, |s, &v| s + (v - m).exp());
                    let loss = sum.ln() + m - o[label];
                    let grad = o
                        .iter()
                        .enumerate()
                        .map(|(j, &v)| {
                            let mut p = (v - m).exp() / sum;
                            if j == label {
                                p -= 1.0;
                            }
                            storage.r(p * coefficient)
                        })
                        .collect();
                    (grad, loss)
                }
            }
        })
        .collect();
    let mut grad = Vec::with_capacity(shape.len());
    let mut losses = Vec::with_capacity(shape.rows);
    for (g, l) in rows {
        grad.extend(g);
        losses.push(l);
    }
    Ok((
        HostTensor::from_f32_vec_as(precision.storage(), shape.rows, cols, grad)?,
        HostTensor::from_f32(shape.rows, 1, losses)?,
    ))
}
