//! CPU reference of shaders/optimizer.wgsl, operation for operation: f32 arithmetic with a
//! rounding to the master type where the shader has `rm`. Elements are independent, so the
//! tensor is split into pieces updated on all cores, in one pass that reads each weight, its
//! state and its gradient once and writes the weight and the state; f32 weights and state
//! are updated where they lie. ΔW is either written out or, in training, only counted into
//! its census (with the new weights') as it is computed: the records' ‖ΔW‖/‖W‖ without a
//! tensor of ΔW or a second pass over the weights.

use rayon::prelude::*;

use super::{OptimizerKind, Params, StepTensors, CLIP_VALUE, FIRST_STEP, NESTEROV, WRITE_MODEL};
use crate::error::Result;
use crate::ops::reduce::census::{self, Partial, PieceCensus};
use crate::precision::{Arith, DType};
use crate::stats::Census;
use crate::tensor::HostTensor;

/// Elements per piece of the parallel update: the census's pieces, so that the censuses taken
/// during the update sum in the order of the stored tensors' (a piece is a quarter of a
/// megabyte of weights; a 256 × 256 layer is one piece, on one core).
const PIECE: usize = census::PIECE;
/// Elements per block of a piece: ΔW's block stays in L1 between the update and the census.
const BLOCK: usize = 1024;

/// One element's state: the weight, and the moments its rule keeps.
struct Element<'a> {
    w: &'a mut f32,
    first: Option<&'a mut f32>,
    second: Option<&'a mut f32>,
}

/// One element's step; returns W_new − W_old.
#[inline(always)]
fn update(kind: OptimizerKind, p: &Params, rm: impl Fn(f32) -> f32, grad: f32, e: Element) -> f32 {
    let mut g = grad;
    if p.grad_scale != 1.0 {
        g = rm(g * p.grad_scale);
    }
    if p.has(CLIP_VALUE) {
        g = g.clamp(-p.clip_value, p.clip_value);
    }
    if p.clip_coefficient != 1.0 {
        g = rm(g * p.clip_coefficient);
    }
    let w_old = *e.w;
    let w_new = match kind {
        OptimizerKind::Sgd => {
            if p.weight_decay != 0.0 {
                g = rm(g + p.weight_decay * w_old);
            }
            if p.momentum != 0.0 {
                let state = e.first.expect("SGD with momentum has a buffer");
                let buf = if p.has(FIRST_STEP) {
                    g
                } else {
                    rm(rm(*state * p.momentum) + g)
                };
                *state = rm(buf);
                g = if p.has(NESTEROV) {
                    rm(g + p.momentum * buf)
                } else {
                    buf
                };
            }
            rm(w_old - p.lr * g)
        }
        OptimizerKind::Adam | OptimizerKind::AdamW => {
            let mut w = w_old;
            if kind == OptimizerKind::AdamW {
                if p.weight_decay != 0.0 {
                    w = rm(w * p.decoupled_decay);
                }
            } else if p.weight_decay != 0.0 {
                g = rm(g + p.weight_decay * w);
            }
            let m1 = e.first.expect("Adam has exp_avg");
            let m2 = e.second.expect("Adam has exp_avg_sq");
            let weight = p.one_minus_beta1;
            let m = if weight.abs() < 0.5 {
                rm(*m1 + weight * (g - *m1))
            } else {
                rm(g - (g - *m1) * (1.0 - weight))
            };
            let v = rm(rm(*m2 * p.beta2) + p.one_minus_beta2 * g * g);
            *m1 = m;
            *m2 = v;
            let denom = rm(rm(rm(v.sqrt()) / p.bias_correction2_sqrt) + p.eps);
            rm(w + (-p.step_size) * (m / denom))
        }
    };
    *e.w = w_new;
    w_new - w_old
}

/// A piece of an optional tensor, or nothing where there is none.
fn pieces(v: &mut Option<Vec<f32>>, n: usize) -> Vec<Option<&mut [f32]>> {
    match v {
        Some(v) => v.chunks_mut(PIECE).map(Some).collect(),
        None => (0..n.div_ceil(PIECE)).map(|_| None).collect(),
    }
}

/// A piece's partial censuses of ΔW and of the new weights, where taken.
type PiecePartials = (Option<Partial>, Option<Partial>);

/// What a step leaves besides the updated tensors.
pub(crate) enum Outcome {
    /// ΔW = W_new − W_old as an f32 tensor.
    Update(HostTensor),
    /// The censuses of ΔW and of the new master weights (the latter only where the master
    /// is f32, so that its values are the stored ones), taken as the values were computed.
    Census {
        update: Census,
        weight: Option<Census>,
    },
}

/// One step of every element. With `census`, ΔW is never stored: each block of it is counted
/// into the census as it is computed, with the new weights beside it, the pass the records'
/// censuses of the stored tensors would make (`reduce::census::PieceCensus`: the same bits).
/// Without, ΔW is returned.
pub(crate) fn run(
    kind: OptimizerKind,
    p: &Params,
    mut tensors: StepTensors<'_, HostTensor>,
    master: DType,
    census: bool,
) -> Result<Outcome> {
    let shape = tensors.grad.shape();
    let n = shape.len();
    let grad = tensors.grad.f32_values();
    // The weights and state move out and back where they are f32 (no copy per step); a
    // narrower master type is widened here and rounded back below.
    let mut w = tensors.param.take_f32_vec();
    let mut m1 = tensors.first_moment.as_mut().map(|t| t.take_f32_vec());
    let mut m2 = tensors.second_moment.as_mut().map(|t| t.take_f32_vec());
    let mut delta = (!census).then(|| vec![0.0f32; n]);
    let weight_census = census && master == DType::F32;
    let firsts = pieces(&mut m1, n);
    let seconds = pieces(&mut m2, n);
    let deltas = pieces(&mut delta, n);
    let pieces = w
        .par_chunks_mut(PIECE)
        .zip(grad.par_chunks(PIECE))
        .zip(deltas.into_par_iter())
        .zip(firsts.into_par_iter().zip(seconds.into_par_iter()));
    // One loop per master type, so that f32's rounding (none) compiles away. Each piece is
    // updated a block at a time into ΔW's block on the stack, which then goes where asked.
    macro_rules! each_piece {
        ($rm:expr) => {
            pieces
                .map(|(((w, grad), mut delta), (mut first, mut second))| {
                    let mut update_census = census.then(PieceCensus::new);
                    let mut w_census = weight_census.then(PieceCensus::new);
                    let mut block = [0.0f32; BLOCK];
                    for start in (0..w.len()).step_by(BLOCK) {
                        let end = (start + BLOCK).min(w.len());
                        for i in start..end {
                            let e = Element {
                                w: &mut w[i],
                                first: first.as_mut().map(|f| &mut f[i]),
                                second: second.as_mut().map(|s| &mut s[i]),
                            };
                            block[i - start] = update(kind, p, $rm, grad[i], e);
                        }
                        let block = &block[..end - start];
                        if let Some(delta) = delta.as_mut() {
                            delta[start..end].copy_from_slice(block);
                        }
                        if let Some(c) = update_census.as_mut() {
                            c.add_f32(block);
                        }
                        if let Some(c) = w_census.as_mut() {
                            c.add_f32(&w[start..end]);
                        }
                    }
                    (
                        update_census.map(PieceCensus::finish),
                        w_census.map(PieceCensus::finish),
                    )
                })
                .collect::<Vec<_>>()
        };
    }
    let partials = match master {
        DType::F32 => each_piece!(|x: f32| x),
        other => each_piece!(|x: f32| Arith(other).r(x)),
    };
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
    if let Some(delta) = delta {
        return Ok(Outcome::Update(HostTensor::from_f32(rows, cols, delta)?));
    }
    let of = |which: fn(&PiecePartials) -> Option<Partial>| {
        let found: Option<Vec<Partial>> = partials.iter().map(which).collect();
        found.map(|parts| census::of_pieces(n as u64, &parts))
    };
    Ok(Outcome::Census {
        update: of(|p| p.0).expect("counted on every piece"),
        weight: of(|p| p.1),
    })
}
