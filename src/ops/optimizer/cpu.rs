//! CPU reference of shaders/optimizer.wgsl, operation for operation: f32 arithmetic with a
//! rounding to the master type where the shader has `rm`.

use super::{OptimizerKind, Params, StepTensors, CLIP_VALUE, FIRST_STEP, NESTEROV, WRITE_MODEL};
use crate::error::Result;
use crate::precision::{Arith, DType};
use crate::tensor::HostTensor;

/// One step of every element; returns W_new − W_old as an f32 tensor.
pub(crate) fn run(
    kind: OptimizerKind,
    p: &Params,
    tensors: StepTensors<'_, HostTensor>,
    master: DType,
) -> Result<HostTensor> {
    let rm = |x: f32| Arith(master).r(x);
    let shape = tensors.grad.shape();
    let grad = tensors.grad.f32_values();
    let mut w = tensors.param.to_f32_vec();
    let mut m1 = tensors.first_moment.as_ref().map(|t| t.to_f32_vec());
    let mut m2 = tensors.second_moment.as_ref().map(|t| t.to_f32_vec());
    let mut delta = vec![0.0f32; w.len()];
    for i in 0..w.len() {
        let mut g = grad[i];
        if p.grad_scale != 1.0 {
            g = rm(g * p.grad_scale);
        }
        if p.has(CLIP_VALUE) {
            g = g.clamp(-p.clip_value, p.clip_value);
        }
        if p.clip_coefficient != 1.0 {
            g = rm(g * p.clip_coefficient);
        }
        let w_old = w[i];
        let w_new = match kind {
            OptimizerKind::Sgd => {
                if p.weight_decay != 0.0 {
                    g = rm(g + p.weight_decay * w_old);
                }
                if p.momentum != 0.0 {
                    let buf_state = m1.as_mut().expect("SGD with momentum has a buffer");
                    let buf = if p.has(FIRST_STEP) {
                        g
                    } else {
                        rm(rm(buf_state[i] * p.momentum) + g)
                    };
                    buf_state[i] = rm(buf);
                    g = if p.has(NESTEROV) {
                        rm(g + p.momentum * buf)
                    } else {
                        buf
                    };
                }
                rm(w_old - p.lr * g)
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                let mut wv = w_old;
                if kind == OptimizerKind::AdamW {
                    if p.weight_decay != 0.0 {
                        wv = rm(wv * p.decoupled_decay);
                    }
                } else if p.weight_decay != 0.0 {
                    g = rm(g + p.weight_decay * wv);
                }
                let m1 = m1.as_mut().expect("Adam has exp_avg");
                let m2 = m2.as_mut().expect("Adam has exp_avg_sq");
                let weight = p.one_minus_beta1;
                let m = if weight.abs() < 0.5 {
                    rm(m1[i] + weight * (g - m1[i]))
                } else {
                    rm(g - (g - m1[i]) * (1.0 - weight))
                };
                let v = rm(rm(m2[i] * p.beta2) + p.one_minus_beta2 * g * g);
                m1[i] = m;
                m2[i] = v;
                let denom = rm(rm(rm(v.sqrt()) / p.bias_correction2_sqrt) + p.eps);
                rm(wv + (-p.step_size) * (m / denom))
            }
        };
        w[i] = w_new;
        delta[i] = w_new - w_old;
    }
    let (rows, cols) = (shape.rows, shape.cols);
    if let Some(model) = tensors.model {
        if p.has(WRITE_MODEL) {
            *model = HostTensor::from_f32_as(model.dtype(), rows, cols, &w)?;
        }
    }
    if let (Some(t), Some(v)) = (tensors.first_moment, m1) {
        *t = HostTensor::from_f32_vec_as(master, rows, cols, v)?;
    }
    if let (Some(t), Some(v)) = (tensors.second_moment, m2) {
        *t = HostTensor::from_f32_vec_as(master, rows, cols, v)?;
    }
    *tensors.param = HostTensor::from_f32_vec_as(master, rows, cols, w)?;
    HostTensor::from_f32(rows, cols, delta)
}
