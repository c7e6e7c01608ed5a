//! CPU reference of shaders/activation.wgsl: the same formulas, operation by operation, with
//! every intermediate rounded to the arithmetic type. Computing one f16 operation in f32 and
//! rounding once gives the correctly rounded f16 result, since 24 ≥ 2·11 + 2 (double rounding
//! is innocuous for +, −, ×, ÷ then; Figueroa 1995).

use rayon::prelude::*;

use super::{Activation, INPUT_CLAMP, TANH_COEFFICIENTS, TANH_POLYNOMIAL_BELOW};
use crate::error::Result;
use crate::precision::{Arith, DType, Precision};
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

/// act(x) with the arithmetic of `a`; the caller rounds the result to storage. Inlined so
/// that `apply_f32`'s loops see the activation as a constant and vectorise.
#[inline(always)]
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

/// act'(x) with the arithmetic of `a`, inlined as `forward_value`.
#[inline(always)]
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
    if a.0 == DType::F32 && store.0 == DType::F32 {
        return apply_f32(act, values, derivative);
    }
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

/// `apply` in f32 arithmetic and storage, where every rounding is the identity: with the
/// activation and the arithmetic constants in each loop, the compiler drops the per-value
/// matches and vectorises ReLU's select (a training step spent a sixth of its time in the
/// generic loops). The same formulas, so the same bits.
fn apply_f32(act: Activation, values: &[f32], derivative: bool) -> Vec<f32> {
    const F32: Arith = Arith(DType::F32);
    match (act, derivative) {
        (Activation::Relu, false) => map_f32(values, |x| forward_value(Activation::Relu, x, F32)),
        (Activation::Relu, true) => map_f32(values, |x| derivative_value(Activation::Relu, x, F32)),
        (act, false) => map_f32(values, |x| forward_value(act, x, F32)),
        (act, true) => map_f32(values, |x| derivative_value(act, x, F32)),
    }
}

/// `f` of every value, on all cores, into a new vector.
pub(crate) fn map_f32(values: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    const CHUNK: usize = 1 << 14;
    let mut out = vec![0.0f32; values.len()];
    out.par_chunks_mut(CHUNK)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(out, values)| {
            for (o, &x) in out.iter_mut().zip(values) {
                *o = f(x);
            }
        });
    out
}

/// g ⊙ act'(z) in one pass, with the roundings of the two ops it replaces: act'(z) in the
/// arithmetic type, rounded to storage (as `apply` stores it), then the product in the
/// arithmetic type, rounded to storage (as the elementwise Hadamard product), with `g` on the
/// left as there. So the same bits on every precision, without act'(z)'s tensor.
pub(crate) fn backward_values(
    act: Activation,
    g: &[f32],
    z: &[f32],
    precision: Precision,
) -> Vec<f32> {
    let a = Arith(precision.arithmetic());
    let store = Arith(precision.storage());
    if a.0 == DType::F32 && store.0 == DType::F32 {
        return backward_f32(act, g, z);
    }
    g.par_iter()
        .zip(z.par_iter())
        .with_min_len(4096)
        .map(|(&g, &z)| store.r(a.r(g * store.r(derivative_value(act, z, a)))))
        .collect()
}

/// `backward_values` in f32 arithmetic and storage, one monomorphic loop as `apply_f32`.
fn backward_f32(act: Activation, g: &[f32], z: &[f32]) -> Vec<f32> {
    const F32: Arith = Arith(DType::F32);
    match act {
        Activation::Relu => {
            zip_map_f32(g, z, |g, z| g * derivative_value(Activation::Relu, z, F32))
        }
        act => zip_map_f32(g, z, |g, z| g * derivative_value(act, z, F32)),
    }
}

/// g ⊙ act'(z) of tensors already checked to be of one shape, stored as `precision` requires.
pub(crate) fn run_backward(
    act: Activation,
    g: &HostTensor,
    z: &HostTensor,
    precision: Precision,
) -> Result<HostTensor> {
    let out = backward_values(act, &g.f32_values(), &z.f32_values(), precision);
    HostTensor::from_f32_vec_as(precision.storage(), z.shape().rows, z.shape().cols, out)
}

/// `f` of every pair of values, on all cores, into a new vector.
pub(crate) fn zip_map_f32(xs: &[f32], ys: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    const CHUNK: usize = 1 << 14;
    let mut out = vec![0.0f32; xs.len()];
    out.par_chunks_mut(CHUNK)
        .zip(xs.par_chunks(CHUNK).zip(ys.par_chunks(CHUNK)))
        .for_each(|(out, (xs, ys))| {
            for ((o, &x), &y) in out.iter_mut().zip(xs).zip(ys) {
                *o = f(x, y);
            }
        });
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every activation and derivative of the f32 loops against the generic per-value
    /// formulas, bit for bit, over values that reach every branch: ±0, subnormals, the
    /// clamp, the tanh polynomial's edge, ±inf and NaN.
    #[test]
    fn the_f32_loops_give_the_generic_paths_bits() {
        let mut values: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.0123).collect();
        values.extend([
            0.0,
            -0.0,
            1e-40,
            -1e-40,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        let f32 = Arith(DType::F32);
        for act in [
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.01 },
            Activation::Linear {
                alpha: 0.7,
                beta: -0.3,
            },
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::ScaledSigmoid,
        ] {
            for derivative in [false, true] {
                let fast = apply(act, &values, Precision::F32, derivative);
                for (x, y) in values.iter().zip(&fast) {
                    let want = if derivative {
                        derivative_value(act, *x, f32)
                    } else {
                        forward_value(act, *x, f32)
                    };
                    let same = want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan());
                    assert!(
                        same,
                        "{act:?} derivative {derivative} at {x}: {y} not {want}"
                    );
                }
            }
        }
    }
}
