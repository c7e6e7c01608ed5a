//! CPU reference of shaders/activation.wgsl: the same formulas, operation by operation, with
//! every intermediate rounded to the arithmetic type. Computing one f16 operation in f32 and
//! rounding once gives the correctly rounded f16 result, since 24 ≥ 2·11 + 2 (double rounding
//! is innocuous for +, −, ×, ÷ then; Figueroa 1995).

use rayon::prelude::*;

use super::{Activation, INPUT_CLAMP, TANH_COEFFICIENTS, TANH_POLYNOMIAL_BELOW};
use crate::error::Result;
use crate::precision::{Arith, Precision};
use crate::tensor::HostTensor;

const CLAMP: f32 = INPUT_CLAMP as f32;

fn sigmoid(x: f32, a: Arith) -> f32 {
    let xc = x.clamp(-CLAMP, CLAMP);
    let e = a.r((-xc.abs()).exp());
    let d = a.r(1.0 + e);
    if xc >= 0.0 {
        a.r(1.0 / d)
    } else {
        a.r(e / d)
    }
}

fn sigmoid_derivative(x: f32, a: Arith) -> f32 {
    let xc = x.clamp(-CLAMP, CLAMP);
    let e = a.r((-xc.abs()).exp());
    let d = a.r(1.0 + e);
    a.r(a.r(1.0 / d) * a.r(e / d))
}

fn tanh_small(x: f32, a: Arith) -> f32 {
    let x2 = a.r(x * x);
    let [c3, c5, c7, c9] = TANH_COEFFICIENTS.map(|c| a.c(c));
    let p = a.r(c7 + a.r(x2 * c9));
    let p = a.r(c5 + a.r(x2 * p));
    let p = a.r(c3 + a.r(x2 * p));
    a.r(x + a.r(x * a.r(x2 * p)))
}

fn tanh_stable(x: f32, a: Arith) -> f32 {
    let xc = x.clamp(-CLAMP, CLAMP);
    let abs = xc.abs();
    if abs < a.c(TANH_POLYNOMIAL_BELOW) {
        return tanh_small(xc, a);
    }
    let e = a.r((a.r(-2.0 * abs)).exp());
    let t = a.r(a.r(1.0 - e) / a.r(1.0 + e));
    if xc < 0.0 {
        -t
    } else {
        t
    }
}

fn tanh_derivative(x: f32, a: Arith) -> f32 {
    let abs = x.clamp(-CLAMP, CLAMP).abs();
    let e = a.r((a.r(-2.0 * abs)).exp());
    let d = a.r(1.0 + e);
    a.r(a.r(4.0 * e) / a.r(d * d))
}

/// act(x) with the arithmetic of `a`; the caller rounds the result to storage.
pub(crate) fn forward_value(act: Activation, x: f32, a: Arith) -> f32 {
    if x.is_nan() {
        return x;
    }
    match act {
        Activation::Linear { alpha, beta } => a.r(a.r(a.r(alpha) * x) + a.r(beta)),
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { slope } => {
            if x > 0.0 {
                x
            } else {
                a.r(a.r(slope) * x)
            }
        }
        Activation::Sigmoid => sigmoid(x, a),
        Activation::Tanh => tanh_stable(x, a),
        Activation::ScaledSigmoid => a.r(2.0 * tanh_stable(a.r(x * 0.5), a)),
    }
}

/// act'(x) with the arithmetic of `a`.
pub(crate) fn derivative_value(act: Activation, x: f32, a: Arith) -> f32 {
    if x.is_nan() {
        return x;
    }
    match act {
        Activation::Linear { alpha, .. } => a.r(alpha),
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { slope } => {
            if x > 0.0 {
                1.0
            } else {
                a.r(slope)
            }
        }
        Activation::Sigmoid => sigmoid_derivative(x, a),
        Activation::Tanh => tanh_derivative(x, a),
        Activation::ScaledSigmoid => tanh_derivative(a.r(x * 0.5), a),
    }
}

/// Applies act (or act') to every value, storing the results as `precision` stores them.
pub(crate) fn apply(
    act: Activation,
    values: &[f32],
    precision: Precision,
    derivative: bool,
) -> Vec<f32> {
    let a = Arith(precision.arithmetic());
    let store = Arith(precision.storage());
    values
        .par_iter()
        .with_min_len(4096)
        .map(|&x| {
            let y = if derivative {
                derivative_value(act, x, a)
            } else {
                forward_value(act, x, a)
            };
            store.r(y)
        })
        .collect()
}

/// act(x) or act'(x) of a tensor already checked to be stored as `precision` requires.
pub(crate) fn run(
    act: Activation,
    x: &HostTensor,
    precision: Precision,
    derivative: bool,
) -> Result<HostTensor> {
    let out = apply(act, &x.f32_values(), precision, derivative);
    HostTensor::from_f32_vec_as(precision.storage(), x.shape().rows, x.shape().cols, out)
}
