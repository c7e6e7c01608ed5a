//! The gradient one training step applies, against central finite differences of the loss
//! of an independent f64 model: one SGD step with lr = 1 moves every parameter by exactly
//! −∂L/∂θ (up to one f32 rounding of θ), so the trained weights give the gradient back.
//! Covers the linear head, nn.Linear biases, residual connections, MSE and cross-entropy.

mod common;

use gradstab::network::NetworkConfig;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::precision::DType;
use gradstab::train::{self, LossScale, Targets, Task, TrainConfig};
use gradstab::{Activation, Backend, Cpu, Precision};

/// Weights [n_out × n_in] and biases of every layer, in f64.
struct Model {
    w: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
    widths: Vec<usize>,
}

fn forward(m: &Model, x: &[f64], residual: bool) -> Vec<f64> {
    let mut h = x.to_vec();
    let d = m.widths.len() - 1;
    for t in 0..d {
        let (n_in, n_out) = (m.widths[t], m.widths[t + 1]);
        let mut next = vec![0.0; n_out];
        for o in 0..n_out {
            let z: f64 = (0..n_in).map(|i| m.w[t][o * n_in + i] * h[i]).sum::<f64>() + m.b[t][o];
            // A linear head: no activation after the last layer.
            next[o] = if t == d - 1 { z } else { z.tanh() };
            if residual && t < d - 1 {
                next[o] += h[o];
            }
        }
        h = next;
    }
    h
}

/// Mean loss over the batch, as torch.nn.MSELoss / CrossEntropyLoss.
fn loss(m: &Model, xs: &[Vec<f64>], targets: &Targets, residual: bool) -> f64 {
    let outs: Vec<Vec<f64>> = xs.iter().map(|x| forward(m, x, residual)).collect();
    match targets {
        Targets::Values(y) => {
            let y = y.to_f64_vec();
            let n = y.len() as f64;
            outs.iter()
                .flatten()
                .zip(&y)
                .map(|(o, t)| (o - t).powi(2))
                .sum::<f64>()
                / n
        }
        Targets::Labels(labels) => {
            outs.iter()
                .zip(labels)
                .map(|(o, &l)| {
                    let m = o.iter().cloned().fold(f64::MIN, f64::max);
                    m + o.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - o[l as usize]
                })
                .sum::<f64>()
                / outs.len() as f64
        }
    }
}

fn check<B: Backend>(backend: &B, task: Task, residual: bool) {
    let widths = if residual {
        vec![4, 4, 4, 4]
    } else {
        vec![3, 5, 4, 3]
    };
    let depth = widths.len() - 1;
    let samples = 6;
    let network = NetworkConfig {
        activation: Activation::Tanh,
        output_activation: false,
        linear_bias: true,
        residual,
        seed: 3,
        ..NetworkConfig::new(depth, 4, samples)
    }
    .with_widths(&widths)
    .unwrap();
    let config = TrainConfig {
        network: network.clone(),
        task: task.clone(),
        samples,
        shuffle: false,
        drop_last: false,
        steps: 1,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 1.0,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    };
    let outcome = train::run_training(backend, &config, "fd", true, &mut |_, _| Ok(())).unwrap();
    let trained = outcome.weights.unwrap();

    let mut model = Model {
        w: (1..=depth)
            .map(|t| network.weight(t, DType::F32).unwrap().to_f64_vec())
            .collect(),
        b: (1..=depth)
            .map(|t| network.bias(t, DType::F32).unwrap().unwrap().to_f64_vec())
            .collect(),
        widths: widths.clone(),
    };
    let data =
        train::data::teacher_data(&task, samples, widths[0], widths[depth], network.seed).unwrap();
    let x = data.x.to_f64_vec();
    let xs: Vec<Vec<f64>> = x.chunks(widths[0]).map(<[f64]>::to_vec).collect();

    // The loss the run recorded is the f64 model's, to f32 accuracy.
    let l0 = loss(&model, &xs, &data.targets, residual);
    let recorded = outcome.run.steps[0].loss;
    assert!(
        (recorded - l0).abs() <= 1e-5 * l0.max(1.0),
        "loss {recorded} vs {l0}"
    );

    let h = 1e-5;
    for t in 0..depth {
        let applied_w = trained.weights[t].to_f64_vec();
        let applied_b = trained.biases[t].as_ref().unwrap().to_f64_vec();
        for (which, n) in [(0, model.w[t].len()), (1, model.b[t].len())] {
            for i in 0..n {
                let param = |m: &mut Model| -> *mut f64 {
                    if which == 0 {
                        &mut m.w[t][i]
                    } else {
                        &mut m.b[t][i]
                    }
                };
                let p = param(&mut model);
                // SAFETY: p points into `model`, which outlives every use here.
                let original = unsafe { *p };
                unsafe { *p = original + h };
                let up = loss(&model, &xs, &data.targets, residual);
                unsafe { *p = original - h };
                let down = loss(&model, &xs, &data.targets, residual);
                unsafe { *p = original };
                let fd = (up - down) / (2.0 * h);
                let after = if which == 0 {
                    applied_w[i]
                } else {
                    applied_b[i]
                };
                let applied = original - after;
                // Central differences err by O(h²)·L''' ≈ 1e-10 and by rounding ≈ 1e-16/h;
                // the step's f32 arithmetic by a few units of 2^-24 of the values involved
                // (|θ| ≤ 1, gradients ≤ 10), which 1e-5 bounds with room.
                assert!(
                    (applied - fd).abs() <= 1e-5 * fd.abs().max(0.1),
                    "residual {residual}, {task:?}: layer {} {} {i}: step applied {applied}, finite differences {fd}",
                    t + 1,
                    if which == 0 { "weight" } else { "bias" },
                );
            }
        }
    }
}

#[test]
fn one_sgd_step_applies_the_finite_difference_gradient_on_the_cpu() {
    for residual in [false, true] {
        check(&Cpu::new(), Task::Teacher { depth: 2, width: 4 }, residual);
        check(&Cpu::new(), Task::Classify { depth: 2, width: 4 }, residual);
    }
}

#[test]
fn one_sgd_step_applies_the_finite_difference_gradient_on_the_gpu() {
    if let Some(gpu) = common::gpu("one_sgd_step_applies_the_finite_difference_gradient_on_the_gpu")
    {
        check(&gpu, Task::Teacher { depth: 2, width: 4 }, false);
        check(&gpu, Task::Classify { depth: 2, width: 4 }, true);
    }
}

/// Clipping acts on the unscaled gradients: with a power-of-two loss scale every product and
/// sum of an f32 step is scaled exactly, so a run with static:1024 must give the very weights
/// of a run without scaling, clipping or not; and the clipped update is the clipping rule's.
fn check_clipping<B: Backend>(backend: &B) {
    use gradstab::network::Clip;
    let base = |clip: Option<Clip>, loss_scale: LossScale| TrainConfig {
        network: NetworkConfig {
            activation: Activation::Tanh,
            output_activation: false,
            linear_bias: true,
            seed: 4,
            clip,
            ..NetworkConfig::new(3, 8, 8)
        },
        task: Task::Teacher { depth: 2, width: 8 },
        samples: 8,
        shuffle: false,
        drop_last: false,
        steps: 1,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 1.0,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale,
        evaluation: Default::default(),
    };
    let weights = |c: &TrainConfig| {
        let w = train::run_training(backend, c, "clip", true, &mut |_, _| Ok(()))
            .unwrap()
            .weights
            .unwrap();
        (w.weights, w.biases)
    };
    let max_norm = 1e-2;
    let mut unclipped: Vec<f64> = Vec::new();
    for clip in [None, Some(Clip::Norm(max_norm)), Some(Clip::Value(1e-3))] {
        let plain = weights(&base(clip, LossScale::None));
        let scaled = weights(&base(clip, LossScale::Static { scale: 1024.0 }));
        assert_eq!(
            plain, scaled,
            "{clip:?}: a loss scale of 1024 changed the step"
        );
        // The update, all parameters together, against the rule.
        let initial = NetworkConfig {
            clip,
            ..base(clip, LossScale::None).network
        };
        let mut squares = 0.0;
        let mut largest: f64 = 0.0;
        let mut largest_weight: f64 = 0.0;
        let mut deltas = Vec::new();
        for t in 1..=3 {
            let w = initial.weight(t, DType::F32).unwrap().to_f64_vec();
            let b = initial.bias(t, DType::F32).unwrap().unwrap().to_f64_vec();
            let (wn, bn) = (
                plain.0[t - 1].to_f64_vec(),
                plain.1[t - 1].as_ref().unwrap().to_f64_vec(),
            );
            for (a, z) in w.iter().chain(&b).zip(wn.iter().chain(&bn)) {
                largest_weight = largest_weight.max(a.abs());
                squares += (a - z) * (a - z);
                largest = largest.max((a - z).abs());
                deltas.push(a - z);
            }
        }
        match clip {
            Some(Clip::Norm(_)) => {
                // ‖Δθ‖ = lr·‖g‖·max_norm/(‖g‖ + 1e-6) ≈ max_norm, the gradient being ≫ 1e-6.
                let norm = squares.sqrt();
                assert!(
                    (norm - max_norm).abs() <= 1e-4 * max_norm,
                    "clip-norm: update norm {norm}"
                );
            }
            Some(Clip::Value(limit)) => {
                // Each element moves by the unclipped step clamped to ±lr·limit (as f32),
                // up to the rounding of w − lr·g to f32 in each run: half a unit of the
                // largest weight, twice.
                let limit = (limit as f32) as f64;
                let rounding = 2.0 * 2f64.powi(-24) * largest_weight;
                for (i, (d, u)) in deltas.iter().zip(&unclipped).enumerate() {
                    let want = u.clamp(-limit, limit);
                    assert!(
                        (d - want).abs() <= rounding,
                        "clip-value: element {i} moved {d}, the clamped step is {want}"
                    );
                }
                assert!(
                    largest >= limit * (1.0 - 1e-3),
                    "clip-value never bit: {largest}"
                );
            }
            None => {
                assert!(
                    squares.sqrt() > 10.0 * max_norm,
                    "the gradient is large enough to clip"
                );
                unclipped = deltas;
            }
        }
    }
}

#[test]
fn clipping_acts_on_unscaled_gradients_on_the_cpu() {
    check_clipping(&Cpu::new());
}

#[test]
fn clipping_acts_on_unscaled_gradients_on_the_gpu() {
    if let Some(gpu) = common::gpu("clipping_acts_on_unscaled_gradients_on_the_gpu") {
        check_clipping(&gpu);
    }
}
