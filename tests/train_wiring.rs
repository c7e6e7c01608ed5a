//! The training loop's wiring around its kernels, against references that share no code with
//! it: an f64 model of the network written here (forward, backward, the losses), torch.optim's
//! and GradScaler's documented rules, closed forms. Each test runs on both backends, so a bug
//! made the same way in both is caught, which GPU-against-CPU agreement cannot do:
//!
//! - Adam counts only the steps it took, not those the loss scaler skipped;
//! - the recorded grad_norm is the unscaled gradient's, and update_ratio is ‖ΔW‖/‖W‖ with W
//!   before the step;
//! - mixed precision saves its f32 masters, every parameter of them;
//! - cross-entropy with every logit far below zero, and its maximum in the last column;
//! - a state dict of more than ten layers of unequal widths saves and loads back in order;
//! - a shuffled minibatch keeps every row's target with its row;
//! - the loss scale grows, backs off and grows again as GradScaler's `_amp_update_scale_`.

mod common;

use std::path::{Path, PathBuf};

use gradstab::network::{load_parameters, NetworkConfig};
use gradstab::ops::loss::LossKind;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::ops::reduce::moment_error_bounds;
use gradstab::precision::F32_UNIT_ROUNDOFF as U;
use gradstab::train::{
    self, run_training, weights, Batches, DynamicScaling, LossScale, Targets, Task, TrainConfig,
    TrainData, TrainOutcome,
};
use gradstab::{Activation, Backend, Cpu, DType, HostTensor, Precision};

use common::gradstab_cli as gradstab;
use common::runs;

/// A small run: tanh hidden layers, a linear head, nn.Linear biases, the whole data set one
/// batch, plain SGD with lr 0 (a model that does not move) for one step, f32 unscaled.
fn base(widths: &[usize], samples: usize) -> TrainConfig {
    let depth = widths.len() - 1;
    TrainConfig {
        network: NetworkConfig {
            activation: Activation::Tanh,
            output_activation: false,
            linear_bias: true,
            seed: 7,
            ..NetworkConfig::new(depth, widths[0], samples)
        }
        .with_widths(widths)
        .unwrap(),
        task: Task::Teacher {
            depth: 2,
            width: widths[1],
        },
        samples,
        shuffle: false,
        drop_last: false,
        steps: 1,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 0.0,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    }
}

fn train<B: Backend>(backend: &B, config: &TrainConfig) -> TrainOutcome {
    run_training(backend, config, "wiring", true, &mut |_, _| Ok(())).unwrap()
}

/// The data set `config` trains on, drawn again from its seed.
fn data_of(config: &TrainConfig) -> std::sync::Arc<TrainData> {
    let net = &config.network;
    train::data::teacher_data(
        &config.task,
        config.samples,
        net.widths[0],
        net.widths[net.depth],
        net.seed,
    )
    .unwrap()
}

/// Every parameter tensor as f64 values: the weights of layers 1..=d, then their biases.
fn parameters(weights: &[HostTensor], biases: &[Option<HostTensor>]) -> Vec<Vec<f64>> {
    weights
        .iter()
        .chain(biases.iter().flatten())
        .map(HostTensor::to_f64_vec)
        .collect()
}

/// The parameters `config` starts from, in f32 (the masters of mixed precision).
fn initial_parameters(config: &TrainConfig) -> Vec<Vec<f64>> {
    let net = &config.network;
    let w: Vec<HostTensor> = (1..=net.depth)
        .map(|t| net.weight(t, DType::F32).unwrap())
        .collect();
    let b: Vec<Option<HostTensor>> = (1..=net.depth)
        .map(|t| net.bias(t, DType::F32).unwrap())
        .collect();
    parameters(&w, &b)
}

fn trained_parameters(outcome: &TrainOutcome) -> Vec<Vec<f64>> {
    let w = outcome.weights.as_ref().expect("weights were asked for");
    parameters(&w.weights, &w.biases)
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// How far a backend's ‖x‖ of the f32 values `x` may be from the exact one: none on the CPU
/// (an f64 sum), and on the GPU the moment error bounds of its f32 reduction (‖x‖² =
/// n·(σ² + mean²)), whatever the backend, since the bound holds for both.
fn norm_bound(x: &[f64]) -> f64 {
    let values: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let tensor = HostTensor::from_f32(1, values.len(), values).unwrap();
    let exact = Cpu::new().stats_of_host(&tensor).unwrap();
    let (mean_bound, variance_bound) = moment_error_bounds(&exact, x.len());
    let n = x.len() as f64;
    let squares = n * (variance_bound + mean_bound * (2.0 * exact.mean.abs() + mean_bound));
    // |a − b| = |a² − b²| / (a + b) ≤ |a² − b²| / b.
    squares / norm(x).max(f64::MIN_POSITIVE)
}

// ---------------------------------------------------------------------------------------
// An independent f64 model of the networks above.

/// Weights [n_out × n_in] and biases of every layer, in f64: tanh after every layer but the
/// last, nn.Linear's z = h·Wᵀ + b.
struct Model {
    widths: Vec<usize>,
    w: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
}

/// One forward and backward pass of the f64 model on a minibatch.
struct Pass {
    /// The mean loss, as torch.nn.MSELoss or CrossEntropyLoss.
    loss: f64,
    /// ∂L/∂W^t and ∂L/∂b^t at index t − 1.
    dw: Vec<Vec<f64>>,
    db: Vec<Vec<f64>>,
    /// The same backward pass on magnitudes (|W|, |tanh'|, |∂L/∂out|): A ≥ |∂L/∂W| element
    /// by element, the scale each rounding of a computed ∂L/∂W is relative to.
    dw_magnitude: Vec<Vec<f64>>,
    /// Z^t, H^t and ∂L/∂H^t of layer t at index t − 1, [batch × n_t] row-major, each with
    /// its magnitude (the same computation on |W|, |b|, |x|, |∂L/∂out|), which bounds the
    /// rounding of a computed value as `dw_magnitude` does.
    z: Vec<Vec<f64>>,
    h: Vec<Vec<f64>>,
    dh: Vec<Vec<f64>>,
    z_magnitude: Vec<Vec<f64>>,
    dh_magnitude: Vec<Vec<f64>>,
    /// The largest |value| of every tensor backward stores on the way to the parameters'
    /// gradients: ∂L/∂out, each ∂L/∂Z^t, each ∂L/∂H^{t−1} for t ≥ 2, each ∂L/∂W^t, ∂L/∂b^t.
    largest: f64,
}

impl Model {
    /// The model `net` draws, its weights and biases rounded to `dtype` (f16: what mixed
    /// precision's forward sees).
    fn of(net: &NetworkConfig, dtype: DType) -> Model {
        let round = |t: HostTensor| t.cast(dtype).to_f64_vec();
        Model {
            widths: net.widths.clone(),
            w: (1..=net.depth)
                .map(|t| round(net.weight(t, DType::F32).unwrap()))
                .collect(),
            b: (1..=net.depth)
                .map(|t| round(net.bias(t, DType::F32).unwrap().expect("biases")))
                .collect(),
        }
    }

    /// The pass on `rows` of `data`, inputs rounded to `dtype` as the run uploads them.
    fn pass(&self, data: &TrainData, rows: &[usize], dtype: DType) -> Pass {
        let d = self.widths.len() - 1;
        let n0 = self.widths[0];
        let x = data.x.cast(dtype).to_f64_vec();
        let batch = rows.len();
        // hs[t] and zs[t] are [batch × n_t], row-major.
        let mut hs = vec![rows
            .iter()
            .flat_map(|&r| x[r * n0..(r + 1) * n0].to_vec())
            .collect::<Vec<f64>>()];
        let mut zs = vec![Vec::new()];
        let mut hs_abs = vec![hs[0].iter().map(|v| v.abs()).collect::<Vec<f64>>()];
        let mut zs_abs = vec![Vec::new()];
        for t in 1..=d {
            let (n_in, n_out) = (self.widths[t - 1], self.widths[t]);
            let mut z = vec![0.0; batch * n_out];
            let mut z_abs = vec![0.0; batch * n_out];
            for r in 0..batch {
                for o in 0..n_out {
                    let w = &self.w[t - 1][o * n_in..(o + 1) * n_in];
                    let (h, h_abs) = (&hs[t - 1][r * n_in..], &hs_abs[t - 1][r * n_in..]);
                    z[r * n_out + o] =
                        (0..n_in).map(|i| w[i] * h[i]).sum::<f64>() + self.b[t - 1][o];
                    z_abs[r * n_out + o] = (0..n_in).map(|i| (w[i] * h_abs[i]).abs()).sum::<f64>()
                        + self.b[t - 1][o].abs();
                }
            }
            // tanh is 1-Lipschitz: an error in Z moves H by no more.
            hs_abs.push(z_abs.clone());
            zs_abs.push(z_abs);
            hs.push(if t == d {
                z.clone()
            } else {
                z.iter().map(|v| v.tanh()).collect()
            });
            zs.push(z);
        }
        let out = &hs[d];
        let nd = self.widths[d];
        let (loss, mut g) = match &data.targets {
            Targets::Values(y) => {
                let y = y.to_f64_vec();
                let ys: Vec<f64> = rows
                    .iter()
                    .flat_map(|&r| y[r * nd..(r + 1) * nd].to_vec())
                    .collect();
                let numel = out.len() as f64;
                let loss = out
                    .iter()
                    .zip(&ys)
                    .map(|(o, t)| (o - t).powi(2))
                    .sum::<f64>()
                    / numel;
                let g = out
                    .iter()
                    .zip(&ys)
                    .map(|(o, t)| 2.0 * (o - t) / numel)
                    .collect();
                (loss, g)
            }
            Targets::Labels(labels) => {
                let mut loss = 0.0;
                let mut g = vec![0.0; out.len()];
                for (i, &r) in rows.iter().enumerate() {
                    let o = &out[i * nd..(i + 1) * nd];
                    let label = labels[r] as usize;
                    let lse = log_sum_exp(o);
                    loss += lse - o[label];
                    for j in 0..nd {
                        let one_hot = if j == label { 1.0 } else { 0.0 };
                        g[i * nd + j] = ((o[j] - lse).exp() - one_hot) / batch as f64;
                    }
                }
                (loss / batch as f64, g)
            }
        };
        let largest_of = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let mut largest = largest_of(&g);
        let mut g_abs: Vec<f64> = g.iter().map(|v| v.abs()).collect();
        let mut dw = vec![Vec::new(); d];
        let mut db = vec![Vec::new(); d];
        let mut dw_magnitude = vec![Vec::new(); d];
        let mut dh = vec![Vec::new(); d];
        let mut dh_magnitude = vec![Vec::new(); d];
        for t in (1..=d).rev() {
            let (n_in, n_out) = (self.widths[t - 1], self.widths[t]);
            dh[t - 1] = g.clone();
            dh_magnitude[t - 1] = g_abs.clone();
            let slope: Vec<f64> = if t == d {
                vec![1.0; batch * n_out]
            } else {
                zs[t].iter().map(|z| 1.0 - z.tanh().powi(2)).collect()
            };
            let dz: Vec<f64> = g.iter().zip(&slope).map(|(a, s)| a * s).collect();
            let dz_abs: Vec<f64> = g_abs.iter().zip(&slope).map(|(a, s)| a * s).collect();
            let h = &hs[t - 1];
            let mut w_grad = vec![0.0; n_out * n_in];
            let mut w_magnitude = vec![0.0; n_out * n_in];
            let mut b_grad = vec![0.0; n_out];
            for o in 0..n_out {
                for i in 0..n_in {
                    for r in 0..batch {
                        w_grad[o * n_in + i] += dz[r * n_out + o] * h[r * n_in + i];
                        w_magnitude[o * n_in + i] += dz_abs[r * n_out + o] * h[r * n_in + i].abs();
                    }
                }
                b_grad[o] = (0..batch).map(|r| dz[r * n_out + o]).sum();
            }
            largest = largest
                .max(largest_of(&dz))
                .max(largest_of(&w_grad))
                .max(largest_of(&b_grad));
            if t > 1 {
                let mut prev = vec![0.0; batch * n_in];
                let mut prev_abs = vec![0.0; batch * n_in];
                for r in 0..batch {
                    for i in 0..n_in {
                        for o in 0..n_out {
                            let w = self.w[t - 1][o * n_in + i];
                            prev[r * n_in + i] += dz[r * n_out + o] * w;
                            prev_abs[r * n_in + i] += dz_abs[r * n_out + o] * w.abs();
                        }
                    }
                }
                largest = largest.max(largest_of(&prev));
                g = prev;
                g_abs = prev_abs;
            }
            dw[t - 1] = w_grad;
            db[t - 1] = b_grad;
            dw_magnitude[t - 1] = w_magnitude;
        }
        Pass {
            loss,
            dw,
            db,
            dw_magnitude,
            z: zs[1..].to_vec(),
            h: hs[1..].to_vec(),
            dh,
            z_magnitude: zs_abs[1..].to_vec(),
            dh_magnitude,
            largest,
        }
    }
}

fn log_sum_exp(o: &[f64]) -> f64 {
    let m = o.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + o.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// The f64 model's backward pass is its own loss's derivative: central differences of the
/// loss, for MSE and cross-entropy, every weight and bias. The tests below trust it.
#[test]
fn the_f64_model_backward_is_the_derivative_of_its_loss() {
    for task in [
        Task::Teacher { depth: 2, width: 4 },
        Task::Classify { depth: 2, width: 4 },
    ] {
        let config = TrainConfig {
            task,
            ..base(&[3, 5, 4, 3], 6)
        };
        let data = data_of(&config);
        let rows: Vec<usize> = (0..6).collect();
        let mut model = Model::of(&config.network, DType::F32);
        let pass = model.pass(&data, &rows, DType::F32);
        let h = 1e-6;
        for t in 0..3 {
            for i in 0..model.w[t].len() + model.b[t].len() {
                let n_w = model.w[t].len();
                let at = |m: &mut Model, delta: f64| {
                    let nudge = |m: &mut Model, by: f64| {
                        if i < n_w {
                            m.w[t][i] += by;
                        } else {
                            m.b[t][i - n_w] += by;
                        }
                    };
                    nudge(m, delta);
                    let loss = m.pass(&data, &rows, DType::F32).loss;
                    nudge(m, -delta);
                    loss
                };
                let fd = (at(&mut model, h) - at(&mut model, -h)) / (2.0 * h);
                let analytic = if i < n_w {
                    pass.dw[t][i]
                } else {
                    pass.db[t][i - n_w]
                };
                // O(h²)·L''' ≈ 1e-12 and rounding ≈ 1e-16/h = 1e-10.
                assert!(
                    (fd - analytic).abs() <= 1e-8,
                    "layer {} parameter {i}: backward {analytic}, finite differences {fd}",
                    t + 1
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. Adam counts the steps it took.

/// PyTorch's GradScaler.step skips optimizer.step on a step with inf or NaN gradients, so
/// Adam's `state['step']` does not advance: the first applied step after a skipped one is
/// Adam's step 1, with bias corrections 1 − β^1, and moves every parameter by
/// −lr·g/(|g| + eps). Step 1 here overflows f16 at a scale of 2^40 and is skipped; the
/// backoff of 2^-30 makes step 2 run at 2^10.
///
/// g is the gradient of step 2, read from a twin run with SGD at lr = 2^20 (identical up to
/// the optimizer, so it skips the same step and computes the same g): W − 2^20·g in f32
/// gives g back to within u·|W|/2^20 + u·|g|.
fn check_adam_counts_only_applied_steps<B: Backend>(backend: &B) {
    let test = "adam_counts_only_applied_steps";
    let p = Precision::F16Accumulate32;
    if !runs(backend, p, test) {
        return;
    }
    let scaling = DynamicScaling {
        init_scale: 2f64.powi(40),
        backoff_factor: 2f64.powi(-30),
        ..DynamicScaling::default()
    };
    let config = |optimizer, lr| TrainConfig {
        optimizer,
        lr,
        steps: 2,
        precision: p,
        loss_scale: LossScale::Dynamic(scaling),
        ..base(&[4, 6, 5, 3], 8)
    };
    let adam_config = config(OptimizerConfig::new(OptimizerKind::Adam), 1e-3);
    let sgd_lr = 2f64.powi(20);
    let adam = train(backend, &adam_config);
    let sgd = train(
        backend,
        &config(OptimizerConfig::new(OptimizerKind::Sgd), sgd_lr),
    );
    for run in [&adam.run, &sgd.run] {
        let skipped: Vec<bool> = run.steps.iter().map(|s| s.skipped).collect();
        let scales: Vec<f64> = run.steps.iter().map(|s| s.loss_scale).collect();
        assert_eq!(skipped, [true, false], "step 1 overflows f16, step 2 not");
        assert_eq!(scales, [2f64.powi(40), 2f64.powi(10)]);
        assert_eq!(run.summary.skipped_steps, 1);
    }
    // The skipped step moved nothing and is left out of the mean update ratio. Its scaled
    // ∂L/∂out overflowed everywhere, so every ∂L/∂W value is a sum of infinities: inf or NaN.
    let skipped_step = &adam.run.steps[0];
    let initial = initial_parameters(&adam_config);
    for (t, layer) in skipped_step.layers.iter().enumerate() {
        assert_eq!(layer.grad_non_finite_fraction, 1.0);
        assert_eq!(adam.run.steps[1].layers[t].grad_non_finite_fraction, 0.0);
        assert_eq!(layer.update_ratio, 0.0);
        assert!((layer.weight_norm - norm(&initial[t])).abs() <= norm_bound(&initial[t]));
        assert_eq!(
            adam.run.summary.mean_update_ratio[t],
            adam.run.steps[1].layers[t].update_ratio
        );
    }

    let (lr, eps) = (adam_config.lr, adam_config.optimizer.eps);
    let step_one = |g: f64| -lr * g / (g.abs() + eps);
    let mut moved = 0;
    for (k, ((w0, w_adam), w_sgd)) in initial
        .iter()
        .zip(trained_parameters(&adam))
        .zip(trained_parameters(&sgd))
        .enumerate()
    {
        for i in 0..w0.len() {
            let g = (w0[i] - w_sgd[i]) / sgd_lr;
            let g_error = U * (w0[i].abs() + w_sgd[i].abs()) / sgd_lr + U * g.abs();
            // step_one is monotone in g: the interval of g gives the interval of the step.
            let (lo, hi) = (step_one(g + g_error), step_one(g - g_error));
            // Adam's f32 arithmetic (a dozen roundings of the step) and W + Δ rounded once.
            let slack = 12.0 * U * lr + U * w_adam[i].abs();
            let got = w_adam[i] - w0[i];
            assert!(
                got >= lo - slack && got <= hi + slack,
                "parameter tensor {k} element {i}: Adam moved it by {got}, the closed form of \
                 step 1 gives {} (g = {g})",
                step_one(g)
            );
            moved += usize::from(got.abs() > 0.5 * lr);
        }
    }
    // With β = (0.9, 0.999), step 2's bias corrections would move each by 0.74·lr instead.
    assert!(moved > 50, "only {moved} parameters moved by about lr");
}

on_both_backends!(
    check_adam_counts_only_applied_steps,
    adam_counts_only_applied_steps_on_the_cpu,
    adam_counts_only_applied_steps_on_the_gpu
);

// ---------------------------------------------------------------------------------------
// 2 and 3. The recorded grad_norm and update_ratio.

/// How far, relative to its magnitude (`Pass`), an f32 run's value of Z, H, ∂L/∂H or ∂L/∂W
/// may be from the f64 model's: (3d + 4)·γ_k, d layers of forward and backward matmuls of
/// depth ≤ k, the activations and the loss, as tests/train_agreement.rs counts them.
fn per_value_bound(net: &NetworkConfig) -> f64 {
    let k = net.widths.iter().copied().max().unwrap().max(net.batch) as f64;
    let gamma = k * U / (1.0 - k * U);
    (3 * net.depth + 4) as f64 * gamma
}

/// grad_norm is ‖∂L/∂W^t‖ of the unscaled gradient: with a static loss scale of 1000 (not a
/// power of two), against the f64 model's gradient.
fn check_grad_norm_is_unscaled<B: Backend>(backend: &B) {
    let config = TrainConfig {
        loss_scale: LossScale::Static { scale: 1000.0 },
        ..base(&[5, 9, 6, 4], 12)
    };
    let outcome = train(backend, &config);
    let data = data_of(&config);
    let rows: Vec<usize> = (0..config.samples).collect();
    let pass = Model::of(&config.network, DType::F32).pass(&data, &rows, DType::F32);
    // The scale and its f32 reciprocal differ from exact inverses by 2u.
    let per_value = per_value_bound(&config.network);
    for (t, layer) in outcome.run.steps[0].layers.iter().enumerate() {
        let want = norm(&pass.dw[t]);
        let bound =
            per_value * norm(&pass.dw_magnitude[t]) + 4.0 * U * want + norm_bound(&pass.dw[t]);
        assert!(
            (layer.grad_norm - want).abs() <= bound,
            "layer {}: grad_norm {} against ‖∂L/∂W‖ = {want} (bound {bound:e})",
            t + 1,
            layer.grad_norm
        );
    }
}

on_both_backends!(
    check_grad_norm_is_unscaled,
    grad_norm_is_the_unscaled_gradients_on_the_cpu,
    grad_norm_is_the_unscaled_gradients_on_the_gpu
);

/// A snapshot holds each layer's own tensors: Z^t, H^t, and ∂L/∂H^t and ∂L/∂W^t times the
/// loss scale (8 here), as backward stored them; against the f64 model, in count (the widths
/// differ, so another layer's tensor has another count) and norm, at the first step, at every
/// `record_every`-th and at the last, and nowhere else.
fn check_snapshots_hold_each_layers_tensors<B: Backend>(backend: &B) {
    let scale = 8.0;
    let config = TrainConfig {
        loss_scale: LossScale::Static { scale },
        steps: 5,
        record_every: 2,
        ..base(&[5, 9, 6, 4], 12)
    };
    let run = train(backend, &config).run;
    let with_snapshot: Vec<usize> = run
        .steps
        .iter()
        .filter(|s| s.snapshot.is_some())
        .map(|s| s.step)
        .collect();
    assert_eq!(with_snapshot, [1, 2, 4, 5]);
    let data = data_of(&config);
    let rows: Vec<usize> = (0..config.samples).collect();
    let pass = Model::of(&config.network, DType::F32).pass(&data, &rows, DType::F32);
    let per_value = per_value_bound(&config.network);
    let snapshot = run.steps[0].snapshot.as_ref().unwrap();
    assert_eq!(snapshot.len(), 3);
    for (t, layer) in snapshot.iter().enumerate() {
        assert_eq!(layer.layer, t + 1);
        let scaled = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x * scale).collect() };
        for (what, record, want, magnitude) in [
            (
                "Z",
                &layer.pre_activation,
                pass.z[t].clone(),
                &pass.z_magnitude[t],
            ),
            (
                "H",
                &layer.activation,
                pass.h[t].clone(),
                &pass.z_magnitude[t],
            ),
            (
                "∂L/∂H",
                &layer.grad_activation,
                scaled(&pass.dh[t]),
                &scaled(&pass.dh_magnitude[t]),
            ),
            (
                "∂L/∂W",
                &layer.grad_weight,
                scaled(&pass.dw[t]),
                &scaled(&pass.dw_magnitude[t]),
            ),
        ] {
            assert_eq!(record.count, want.len() as u64, "layer {} {what}", t + 1);
            let bound = per_value * norm(magnitude) + norm_bound(&want);
            assert!(
                (record.l2_norm - norm(&want)).abs() <= bound,
                "layer {} {what}: ‖·‖ {} against {} (bound {bound:e})",
                t + 1,
                record.l2_norm,
                norm(&want)
            );
        }
    }
}

on_both_backends!(
    check_snapshots_hold_each_layers_tensors,
    snapshots_hold_each_layers_tensors_on_the_cpu,
    snapshots_hold_each_layers_tensors_on_the_gpu
);

/// The recorded fractions of ∂L/∂W's values that are zero and subnormal: a data set whose
/// first input column is 0 and second 10^-39 (subnormal in f32) gives layer 1's gradient
/// ∂L/∂W = Σ_rows ∂L/∂Z·x one column of zeros and one of subnormals, 1/n_0 of its values
/// each; no other layer has either. A device that flushes subnormals makes the second column
/// zeros too, so there the two fractions are checked together.
fn check_gradient_fractions<B: Backend>(backend: &B, flushes: bool) {
    let (samples, n0) = (8, 4);
    let x: Vec<f32> = (0..samples * n0)
        .map(|i| match i % n0 {
            0 => 0.0,
            1 => 1e-39,
            _ => ((i * 7 % 11) as f32 - 5.0) / 4.0,
        })
        .collect();
    let y: Vec<f32> = (0..samples * 3).map(|i| (i % 5) as f32 - 2.0).collect();
    let data = TrainData {
        x: HostTensor::from_f32(samples, n0, x).unwrap(),
        targets: Targets::Values(HostTensor::from_f32(samples, 3, y).unwrap()),
    };
    let config = TrainConfig {
        task: Task::File {
            source: "constructed".into(),
            data: std::sync::Arc::new(data),
        },
        ..base(&[n0, 6, 5, 3], samples)
    };
    let step = &train(backend, &config).run.steps[0];
    let quarter = 1.0 / n0 as f64;
    for layer in &step.layers {
        let (zero, subnormal) = if layer.layer == 1 {
            (quarter, quarter)
        } else {
            (0.0, 0.0)
        };
        if flushes {
            assert_eq!(
                layer.grad_zero_fraction + layer.grad_subnormal_fraction,
                zero + subnormal,
                "layer {}",
                layer.layer
            );
        } else {
            assert_eq!(layer.grad_zero_fraction, zero, "layer {}", layer.layer);
            assert_eq!(
                layer.grad_subnormal_fraction, subnormal,
                "layer {}",
                layer.layer
            );
        }
        assert_eq!(layer.grad_non_finite_fraction, 0.0);
    }
}

#[test]
fn gradient_fractions_count_zeros_and_subnormals_on_the_cpu() {
    check_gradient_fractions(&Cpu::new(), false);
}

#[test]
fn gradient_fractions_count_zeros_and_subnormals_on_the_gpu() {
    if let Some((gpu, report)) =
        common::gpu_with_probe("gradient_fractions_count_zeros_and_subnormals_on_the_gpu")
    {
        let kept = report.f32.subnormal_results_kept && report.f32.subnormal_inputs_kept;
        check_gradient_fractions(&gpu, !kept);
    }
}

/// `Trainer::step` says whether another step follows: true until the last step, false at
/// the last and at one whose loss turned inf (a run with lr = 10^30, whose second loss
/// overflows), and after that it runs nothing more; `steps_done` and `records` follow.
#[test]
fn the_trainer_stops_after_the_last_step_and_after_a_diverged_one() {
    use gradstab::train::run::Trainer;
    let cpu = Cpu::new();
    let config = TrainConfig {
        steps: 3,
        lr: 0.1,
        ..base(&[4, 6, 3], 8)
    };
    let diverging = TrainConfig {
        steps: 5,
        lr: 1e30,
        ..config.clone()
    };
    for (config, answers, done) in [
        (&config, [true, true, false, false, false], 3),
        (&diverging, [true, false, false, false, false], 2),
    ] {
        let mut trainer = Trainer::new(&cpu, config).unwrap();
        for (i, &want) in answers.iter().enumerate() {
            assert_eq!(trainer.step().unwrap(), want, "step() call {}", i + 1);
            assert_eq!(trainer.steps_done(), (i + 1).min(done));
            assert_eq!(trainer.records().len(), trainer.steps_done());
        }
        let records = trainer.records().to_vec();
        let run = trainer.finish("trainer", false).unwrap().run;
        // Debug, since a diverged step's NaN norms are not equal to themselves.
        assert_eq!(format!("{records:?}"), format!("{:?}", run.steps));
        let steps: Vec<usize> = records.iter().map(|r| r.step).collect();
        assert_eq!(steps, (1..=done).collect::<Vec<_>>());
    }
    let run = run_training(&cpu, &diverging, "diverging", false, &mut |_, _| Ok(()))
        .unwrap()
        .run;
    assert!(!run.steps[1].loss.is_finite());
    assert_eq!(run.summary.diverged_at, Some(2));
    assert_eq!(
        run.summary.skipped_steps, 0,
        "a diverged step is not a skipped one"
    );
}

/// update_ratio is ‖W_after − W_before‖ / ‖W_before‖ and weight_norm is ‖W_after‖, at each of
/// two SGD steps, from the weights before and after each (runs of 1 and 2 steps).
fn check_update_ratio_divides_by_the_weights_before<B: Backend>(backend: &B) {
    let config = |steps| TrainConfig {
        steps,
        lr: 0.5,
        ..base(&[5, 9, 6, 4], 12)
    };
    let weights_of = |outcome: &TrainOutcome| -> Vec<Vec<f64>> {
        let w = outcome.weights.as_ref().unwrap();
        w.weights.iter().map(HostTensor::to_f64_vec).collect()
    };
    let two = train(backend, &config(2));
    let w0: Vec<Vec<f64>> = initial_parameters(&config(1))[..3].to_vec();
    let w1 = weights_of(&train(backend, &config(1)));
    let w2 = weights_of(&two);
    // The summary's mean over the applied steps (both, here).
    for t in 0..3 {
        let ratios = two.run.steps.iter().map(|s| s.layers[t].update_ratio);
        let mean = ratios.sum::<f64>() / 2.0;
        assert_eq!(two.run.summary.mean_update_ratio[t], mean);
    }
    for (step, before, after) in [(1, &w0, &w1), (2, &w1, &w2)] {
        for t in 0..3 {
            let delta: Vec<f64> = after[t]
                .iter()
                .zip(&before[t])
                .map(|(a, b)| a - b)
                .collect();
            let (d, b, a) = (norm(&delta), norm(&before[t]), norm(&after[t]));
            let layer = &two.run.steps[step - 1].layers[t];
            // ΔW = W_new − W_old in f32, exact or (a shader may fold it) off by u·|W| per
            // element; each norm within the reduction's bound.
            let delta_bound = U * (b + a) + norm_bound(&delta);
            let ratio_bound = delta_bound / b + (d / b) * norm_bound(&before[t]) / b;
            assert!(
                (layer.update_ratio - d / b).abs() <= ratio_bound,
                "step {step} layer {}: update_ratio {} against ‖ΔW‖/‖W_before‖ = {}",
                t + 1,
                layer.update_ratio,
                d / b
            );
            assert!(
                (layer.weight_norm - a).abs() <= norm_bound(&after[t]),
                "step {step} layer {}: weight_norm {} against ‖W_after‖ = {a}",
                t + 1,
                layer.weight_norm
            );
            // Dividing by ‖W_after‖ instead would be visible.
            assert!(
                (d / a - d / b).abs() > 10.0 * ratio_bound,
                "step {step} layer {}: ‖W‖ barely changed, the test cannot tell before from after",
                t + 1
            );
        }
    }
}

on_both_backends!(
    check_update_ratio_divides_by_the_weights_before,
    update_ratio_divides_by_the_weights_before_the_step_on_the_cpu,
    update_ratio_divides_by_the_weights_before_the_step_on_the_gpu
);

// ---------------------------------------------------------------------------------------
// 4. Mixed precision saves its masters.

/// One Adam step of lr = 1e-6 moves every f32 master by at most lr (step 1's closed form
/// −lr·g/(|g| + eps)), far less than the f16 copy is from it: the final weights must be f32,
/// within lr of the initial masters, for every weight and bias, the head's included.
fn check_mixed_precision_weights_are_the_masters<B: Backend>(backend: &B) {
    let test = "mixed_precision_weights_are_the_masters";
    let p = Precision::F16Accumulate32;
    if !runs(backend, p, test) {
        return;
    }
    let config = TrainConfig {
        optimizer: OptimizerConfig::new(OptimizerKind::Adam),
        lr: 1e-6,
        precision: p,
        loss_scale: LossScale::Static { scale: 1024.0 },
        ..base(&[5, 9, 6, 4], 12)
    };
    let outcome = train(backend, &config);
    assert!(!outcome.run.steps[0].skipped);
    let w = outcome.weights.as_ref().unwrap();
    for t in w.weights.iter().chain(w.biases.iter().flatten()) {
        assert_eq!(t.dtype(), DType::F32, "mixed precision saves f32 masters");
    }
    let initial = initial_parameters(&config);
    let trained = trained_parameters(&outcome);
    assert_eq!(trained.len(), 6, "three weights and three biases");
    for (k, (w0, w1)) in initial.iter().zip(&trained).enumerate() {
        let mut f16_copy_would_fail = false;
        for (a, b) in w0.iter().zip(w1) {
            // Adam's f32 roundings of the step and of W + Δ.
            let limit = config.lr * (1.0 + 12.0 * U) + U * b.abs();
            assert!(
                (b - a).abs() <= limit,
                "parameter tensor {k}: {a} became {b}, more than one step of lr; an f16 copy?"
            );
            let copy = HostTensor::from_f32(1, 1, vec![*b as f32])
                .unwrap()
                .cast(DType::F16)
                .to_f64_vec()[0];
            f16_copy_would_fail |= (copy - a).abs() > 10.0 * limit;
        }
        assert!(
            f16_copy_would_fail,
            "parameter tensor {k}: its f16 rounding is as close as the step"
        );
    }
}

on_both_backends!(
    check_mixed_precision_weights_are_the_masters,
    mixed_precision_saves_every_f32_master_on_the_cpu,
    mixed_precision_saves_every_f32_master_on_the_gpu
);

fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradstab-wiring-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The tensors of a safetensors file: name, dtype, shape, bytes.
fn read_safetensors(path: &Path) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// `--save-weights` in mixed precision writes f32 masters: every tensor f32, and most values
/// of each beyond what f16 can hold (an f16 copy widened to f32 would hold none).
#[test]
fn save_weights_in_mixed_precision_writes_the_f32_masters() {
    let dir = scratch("masters");
    let path = dir.join("mixed.safetensors");
    succeeded(&gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--depth",
        "3",
        "--width",
        "6,9,5,4",
        "--bias",
        "--samples",
        "16",
        "--steps",
        "2",
        "--optimizer",
        "adam",
        "--precision",
        "f16acc32",
        "--loss-scale",
        "static:1024",
        "--save-weights",
        s(&path),
    ]));
    let tensors = read_safetensors(&path);
    assert_eq!(tensors.len(), 6, "three weights and three biases");
    for (name, dtype, _, bytes) in &tensors {
        assert_eq!(*dtype, safetensors::Dtype::F32, "{name}");
        let values: Vec<f32> = bytes
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let beyond_f16 = values
            .iter()
            .filter(|&&v| half::f16::from_f32(v).to_f32() != v)
            .count();
        assert!(
            2 * beyond_f16 > values.len(),
            "{name}: {beyond_f16} of {} values need more than f16's precision",
            values.len()
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

// ---------------------------------------------------------------------------------------
// 5. Cross-entropy far below zero.

/// Rows whose logits all lie between −1000 and −199.5, with the maximum in the last column
/// (or every logit equal), against an f64 log-sum-exp. A maximum started at 0 makes every
/// exp(o − 0) underflow to 0 and the loss −inf; one that misses a column overflows exp.
fn check_cross_entropy_far_below_zero<B: Backend>(backend: &B) {
    let logits: [f32; 16] = [
        -1000.0, -999.5, -998.0, -200.0, // the maximum far above the rest, last
        -1000.0, -1000.0, -1000.0, -1000.0, // all equal
        -200.0, -201.0, -202.0, -199.5, // close together, the maximum last
        -600.0, -700.0, -800.0, -500.25, // the label is the maximum
    ];
    let labels = [0.0f32, 3.0, 2.0, 3.0];
    let test = "cross_entropy_far_below_zero";
    for p in [Precision::F32, Precision::F16Accumulate32, Precision::F16] {
        if !runs(backend, p, test) {
            continue;
        }
        // Every logit is exact in f16 (spacing 0.5 below −512, 0.25 below −256).
        let output = HostTensor::from_f32(4, 4, logits.to_vec())
            .unwrap()
            .cast(p.storage());
        assert_eq!(output.to_f32_vec(), logits.to_vec());
        let targets = HostTensor::from_f32(4, 1, labels.to_vec()).unwrap();
        let scale = 1.0;
        let c = LossKind::CrossEntropy.gradient_coefficient(output.shape(), scale);
        let (grad, rows) = backend
            .loss(
                LossKind::CrossEntropy,
                &backend.upload(&output).unwrap(),
                &backend.upload(&targets).unwrap(),
                c,
                p,
            )
            .unwrap();
        let grad = backend.download(&grad).unwrap().to_f64_vec();
        let rows = backend.download(&rows).unwrap().to_f64_vec();
        for r in 0..4 {
            let o: Vec<f64> = logits[4 * r..4 * r + 4].iter().map(|&v| v as f64).collect();
            let label = labels[r] as usize;
            let lse = log_sum_exp(&o);
            let want = lse - o[label];
            // log(sum) + m − o_label in f32: each term of magnitude ≤ 1000 rounds once, and
            // the sum of ≤ 4 exps of arguments ≤ 0 (each within 2u) errs by 4u relative.
            let m = o.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let bound = 3.0 * U * (m.abs() + o[label].abs() + want.abs()) + 8.0 * U;
            assert!(
                (rows[r] - want).abs() <= bound,
                "{p} row {r}: loss {} against {want}",
                rows[r]
            );
            for j in 0..4 {
                let one_hot = if j == label { 1.0 } else { 0.0 };
                let want = ((o[j] - lse).exp() - one_hot) * c as f64;
                // softmax within 8u, then the store to f16 (half a unit, 2^-11 relative).
                let store = if p.storage() == DType::F16 {
                    2f64.powi(-11)
                } else {
                    U
                };
                let bound = (8.0 * U + store) * c as f64;
                assert!(
                    (grad[4 * r + j] - want).abs() <= bound,
                    "{p} row {r} column {j}: gradient {} against {want}",
                    grad[4 * r + j]
                );
            }
        }
    }
}

on_both_backends!(
    check_cross_entropy_far_below_zero,
    cross_entropy_of_logits_far_below_zero_on_the_cpu,
    cross_entropy_of_logits_far_below_zero_on_the_gpu
);

// ---------------------------------------------------------------------------------------
// 7. A state dict of more than ten layers.

/// Eleven layers of unequal widths save under '0.weight' … '20.bias' with their shapes,
/// load back in numeric order (as strings, '10' sorts before '2'), and training resumed from
/// them is training continued: with plain SGD, 2 steps saved and 1 more from the file give
/// the very weights of 3 steps, through the library and through the command line.
#[test]
fn eleven_layers_of_unequal_widths_save_and_load_back_in_order() {
    const WIDTHS: [usize; 12] = [5, 7, 3, 9, 4, 6, 8, 2, 5, 7, 3, 4];
    let widths_arg = WIDTHS.map(|w| w.to_string()).join(",");
    let dir = scratch("eleven");
    let config = |steps| TrainConfig {
        steps,
        lr: 0.05,
        ..base(&WIDTHS, 16)
    };

    // The library.
    let two = train(&Cpu::new(), &config(2)).weights.unwrap();
    let saved = dir.join("library.safetensors");
    weights::save(&two, &saved).unwrap();
    let tensors = read_safetensors(&saved);
    let mut want_names = Vec::new();
    for i in 0..11 {
        for (kind, shape) in [
            ("weight", vec![WIDTHS[i + 1], WIDTHS[i]]),
            ("bias", vec![WIDTHS[i + 1]]),
        ] {
            let name = format!("{}.{kind}", 2 * i);
            let (_, _, got_shape, _) = tensors
                .iter()
                .find(|t| t.0 == name)
                .unwrap_or_else(|| panic!("no tensor {name}"));
            assert_eq!(*got_shape, shape, "{name}");
            want_names.push(name);
        }
    }
    assert_eq!(tensors.len(), want_names.len());
    let loaded = load_parameters(&saved).unwrap();
    assert_eq!(loaded.widths(), WIDTHS.to_vec());
    assert_eq!(loaded.weights, two.weights);
    assert_eq!(loaded.biases, two.biases);
    let three = train(&Cpu::new(), &config(3)).weights.unwrap();
    let mut resumed = config(1);
    resumed.network = resumed.network.with_given_parameters(loaded);
    let resumed = train(&Cpu::new(), &resumed).weights.unwrap();
    assert_eq!(resumed.weights, three.weights);
    assert_eq!(resumed.biases, three.biases);

    // The command line: the same, file to file.
    let run = |steps: &str, from: Option<&Path>, to: &Path| {
        let mut args = vec![
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--activation",
            "tanh",
            "--samples",
            "16",
            "--lr",
            "0.05",
            "--seed",
            "3",
            "--steps",
            steps,
            "--save-weights",
            s(to),
        ];
        match from {
            Some(file) => args.extend(["--weights", s(file)]),
            None => args.extend(["--depth", "11", "--width", &widths_arg, "--bias"]),
        }
        succeeded(&gradstab(&args));
    };
    let (two, three, resumed) = (
        dir.join("two.safetensors"),
        dir.join("three.safetensors"),
        dir.join("resumed.safetensors"),
    );
    run("2", None, &two);
    run("3", None, &three);
    run("1", Some(&two), &resumed);
    let names: Vec<String> = read_safetensors(&two).into_iter().map(|t| t.0).collect();
    let mut sorted_want = want_names.clone();
    sorted_want.sort();
    assert_eq!(names, sorted_want);
    assert_eq!(
        read_safetensors(&resumed),
        read_safetensors(&three),
        "1 step from the saved 2 is not the 3rd step"
    );
    std::fs::remove_dir_all(dir).ok();
}

// ---------------------------------------------------------------------------------------
// 8. Shuffled minibatches keep each row's target.

/// With --shuffle, each step's loss is the f64 model's loss on that step's rows, each with
/// its own target: the permutation is reproduced from the seed with the library's `Batches`,
/// the model held still by lr = 0. Three epochs of four minibatches, MSE and cross-entropy.
fn check_shuffled_minibatches_keep_their_targets<B: Backend>(backend: &B) {
    for task in [
        Task::Teacher { depth: 2, width: 8 },
        Task::Classify { depth: 2, width: 8 },
    ] {
        let mut config = TrainConfig {
            task: task.clone(),
            shuffle: true,
            drop_last: false,
            steps: 12,
            ..base(&[6, 8, 8, 4], 16)
        };
        config.network.batch = 4;
        let outcome = train(backend, &config);
        let data = data_of(&config);
        let model = Model::of(&config.network, DType::F32);
        let mut batches = Batches::new(16, 4, true, false, config.network.seed);
        let mut mismatch_visible = false;
        for step in &outcome.run.steps {
            let rows = batches.next_rows();
            let want = model.pass(&data, &rows, DType::F32).loss;
            // f32 forward and loss, as tests/train_gradient.rs bounds them.
            assert!(
                (step.loss - want).abs() <= 1e-5 * want.max(1.0),
                "{task:?} step {}: loss {} against {want} for rows {rows:?}",
                step.step,
                step.loss
            );
            // Targets taken by position (those of rows 0..4, 4..8, …) would give another loss.
            let position = (step.step - 1) % 4 * 4;
            let by_position = TrainData {
                x: data.x.clone(),
                targets: match &data.targets {
                    Targets::Values(y) => {
                        let cols = y.shape().cols;
                        let y = y.to_f32_vec();
                        let mut moved = y.clone();
                        for (i, &r) in rows.iter().enumerate() {
                            let from = (position + i) * cols;
                            moved[r * cols..(r + 1) * cols].copy_from_slice(&y[from..from + cols]);
                        }
                        Targets::Values(HostTensor::from_f32(16, cols, moved).unwrap())
                    }
                    Targets::Labels(l) => {
                        let mut moved = l.clone();
                        for (i, &r) in rows.iter().enumerate() {
                            moved[r] = l[position + i];
                        }
                        Targets::Labels(moved)
                    }
                },
            };
            let wrong = model.pass(&by_position, &rows, DType::F32).loss;
            mismatch_visible |= (wrong - want).abs() > 1e-3 * want.max(1.0);
        }
        assert!(
            mismatch_visible,
            "{task:?}: targets by position would give the same losses"
        );
    }
}

on_both_backends!(
    check_shuffled_minibatches_keep_their_targets,
    shuffled_minibatches_keep_their_targets_on_the_cpu,
    shuffled_minibatches_keep_their_targets_on_the_gpu
);

/// Epochs as DataLoader cuts them: 10 samples in batches of 4 are [0..4], [4..8] and a
/// short [8, 9] (or, with drop_last, only the first two), the batch never spanning two
/// epochs. Each step's loss is the f64 model's mean over that step's own rows, and its
/// ‖∂l/∂W‖ the norm of the f64 gradient of that mean: a short batch divided by the full batch
/// size, or padded from the next epoch, gives another. The model is held still by lr = 0.
fn check_epochs_end_in_a_short_batch_of_its_own_mean<B: Backend>(backend: &B) {
    for drop_last in [false, true] {
        let per_epoch: &[&[usize]] = if drop_last {
            &[&[0, 1, 2, 3], &[4, 5, 6, 7]]
        } else {
            &[&[0, 1, 2, 3], &[4, 5, 6, 7], &[8, 9]]
        };
        let mut config = TrainConfig {
            drop_last,
            steps: 2 * per_epoch.len(),
            ..base(&[6, 8, 8, 4], 10)
        };
        config.network.batch = 4;
        assert_eq!(config.steps_per_epoch(), per_epoch.len());
        let outcome = train(backend, &config);
        let data = data_of(&config);
        let model = Model::of(&config.network, DType::F32);
        assert_eq!(outcome.run.steps.len(), config.steps);
        for (k, step) in outcome.run.steps.iter().enumerate() {
            let rows = per_epoch[k % per_epoch.len()];
            let case = format!("drop_last {drop_last}, step {}", step.step);
            assert_eq!(step.epoch, k / per_epoch.len() + 1, "{case}");
            assert_eq!(step.batch, rows.len(), "{case}");
            let want = model.pass(&data, rows, DType::F32);
            // f32 forward and loss, as tests/train_gradient.rs bounds them.
            assert!(
                (step.loss - want.loss).abs() <= 1e-5 * want.loss.max(1.0),
                "{case}: loss {} against {} for rows {rows:?}",
                step.loss,
                want.loss
            );
            for (t, layer) in step.layers.iter().enumerate() {
                let exact = norm(&want.dw[t]);
                // Backward through 3 layers of inner dimension ≤ 8 in f32: each ∂l/∂W within
                // a few γ_8 ≈ 8u of its magnitude; 1e-5 relative holds that with room,
                // and is far from the factor 4/2 of a wrong divisor.
                assert!(
                    (layer.grad_norm - exact).abs() <= 1e-5 * exact + 1e-9,
                    "{case}, layer {}: ‖∂l/∂W‖ {} against {exact}",
                    layer.layer,
                    layer.grad_norm
                );
            }
        }
        // The per-epoch summary: the mean of each epoch's step losses.
        assert_eq!(outcome.run.epochs.len(), 2);
        for (e, epoch) in outcome.run.epochs.iter().enumerate() {
            let losses: Vec<f64> = outcome.run.steps
                [e * per_epoch.len()..(e + 1) * per_epoch.len()]
                .iter()
                .map(|s| s.loss)
                .collect();
            assert_eq!(epoch.epoch, e + 1);
            assert_eq!(epoch.steps, per_epoch.len());
            let mean = losses.iter().sum::<f64>() / losses.len() as f64;
            assert!((epoch.mean_loss - mean).abs() <= 1e-15 * mean, "{epoch:?}");
        }
    }
}

on_both_backends!(
    check_epochs_end_in_a_short_batch_of_its_own_mean,
    epochs_end_in_a_short_batch_of_its_own_mean_on_the_cpu,
    epochs_end_in_a_short_batch_of_its_own_mean_on_the_gpu
);

// ---------------------------------------------------------------------------------------
// 9. The loss scale over a whole run, as GradScaler.

/// torch.amp.GradScaler's `_amp_update_scale_`, transcribed: returns the scale and the growth
/// tracker after a step.
fn amp_update_scale(
    scale: f32,
    growth_tracker: u64,
    found_inf: bool,
    d: &DynamicScaling,
) -> (f32, u64) {
    if found_inf {
        return (scale * d.backoff_factor as f32, 0);
    }
    let successful = growth_tracker + 1;
    if successful == d.growth_interval {
        let grown = scale * d.growth_factor as f32;
        (if grown.is_finite() { grown } else { scale }, 0)
    } else {
        (scale, successful)
    }
}

/// Mixed precision with dynamic scaling over 40 steps of four minibatches whose gradients
/// differ in size, the model held still (lr = 0) so each minibatch's gradient is the same at
/// every visit. A step overflows f16 exactly when the scale times the largest value backward
/// stores (the f64 model's) passes 65504; from those predicted overflows, GradScaler's rule
/// gives every step's scale. The run must skip those steps and use those scales: the scale
/// grows several times, backs off on a minibatch with large gradients part-way through a
/// growth interval (the tracker's reset matters), and grows again.
fn check_loss_scale_follows_grad_scaler<B: Backend>(backend: &B) {
    let test = "loss_scale_follows_grad_scaler";
    let p = Precision::F16Accumulate32;
    if !runs(backend, p, test) {
        return;
    }
    let mut config = TrainConfig {
        steps: 40,
        precision: p,
        ..base(&[6, 10, 8, 4], 16)
    };
    config.network.batch = 4;
    // A seed whose four minibatches overflow at three different scales, none of them near
    // the threshold (the assertion below checks both).
    config.network.seed = 8;
    let data = data_of(&config);
    let model = Model::of(&config.network, DType::F16);
    let largest: Vec<f64> = (0..4)
        .map(|b| {
            let rows: Vec<usize> = (4 * b..4 * b + 4).collect();
            model.pass(&data, &rows, DType::F16).largest
        })
        .collect();
    // Start 2^5 below where the smallest overflows: five growths before the first skip.
    let smallest = largest.iter().cloned().fold(f64::INFINITY, f64::min);
    let init_scale = 2f64.powi((65504.0 / smallest).log2().floor() as i32 - 5);
    let scaling = DynamicScaling {
        init_scale,
        growth_interval: 3,
        ..DynamicScaling::default()
    };
    config.loss_scale = LossScale::Dynamic(scaling);

    let (mut scale, mut tracker) = (init_scale as f32, 0);
    let mut want = Vec::new();
    let (mut growths, mut resets, mut grew_after_backoff, mut backed_off) = (0, 0, false, false);
    for step in 0..config.steps {
        let scaled = scale as f64 * largest[step % 4];
        // Mixed precision's f16 stores err by a few units of 2^-11 each, at most 1/32 over
        // these three layers: a step within that of the threshold cannot be predicted.
        assert!(
            (scaled / 65504.0).log2().abs() > (1.0f64 + 1.0 / 32.0).log2(),
            "step {}: scale × largest = {scaled}, too close to f16's largest to predict",
            step + 1
        );
        let overflow = scaled > 65504.0;
        want.push((scale as f64, overflow));
        let (next, next_tracker) = amp_update_scale(scale, tracker, overflow, &scaling);
        if overflow {
            backed_off = true;
            resets += usize::from(tracker > 0);
        } else if next > scale {
            growths += 1;
            grew_after_backoff |= backed_off;
        }
        (scale, tracker) = (next, next_tracker);
    }
    assert!(
        growths >= 3 && resets >= 1 && grew_after_backoff,
        "the case exercises too little: {growths} growths, {resets} skips that reset a \
         running count, grew after a backoff: {grew_after_backoff}; largest {largest:?}"
    );

    let run = train(backend, &config).run;
    let got: Vec<(f64, bool)> = run
        .steps
        .iter()
        .map(|s| (s.loss_scale, s.skipped))
        .collect();
    assert_eq!(got, want, "(loss scale, skipped) of every step");
    assert_eq!(run.summary.final_loss_scale, scale as f64);
    assert_eq!(
        run.summary.skipped_steps,
        want.iter().filter(|w| w.1).count()
    );
}

on_both_backends!(
    check_loss_scale_follows_grad_scaler,
    loss_scale_follows_grad_scaler_on_the_cpu,
    loss_scale_follows_grad_scaler_on_the_gpu
);

#[test]
fn save_weights_keeps_the_names_the_weights_came_with() {
    // A state dict saved from a model that holds its Sequential as `net` (and whose last
    // layer has no bias) must load back into that model: the trained weights are written
    // under the names they were read with, not renumbered as a bare Sequential's.
    let dir = scratch("names");
    let (given, out) = (dir.join("given.safetensors"), dir.join("out.safetensors"));
    let mut rng = common::rng(5);
    let shapes: [(&str, Vec<usize>); 3] = [
        ("net.0.weight", vec![4, 3]),
        ("net.0.bias", vec![4]),
        ("net.2.weight", vec![2, 4]),
    ];
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, shape)| {
            (0..shape.iter().product::<usize>())
                .flat_map(|_| rand::Rng::random_range(&mut rng, -0.5f32..0.5).to_le_bytes())
                .collect()
        })
        .collect();
    let views: Vec<_> = shapes
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap();
            (name.to_string(), view)
        })
        .collect();
    std::fs::write(&given, safetensors::serialize(views, None).unwrap()).unwrap();
    succeeded(&gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--weights",
        s(&given),
        // A PyTorch state dict says no activation: the command line gives it.
        "--activation",
        "relu",
        "--output-activation",
        "no",
        "--samples",
        "8",
        "--steps",
        "1",
        "--save-weights",
        s(&out),
    ]));
    let names: Vec<String> = read_safetensors(&out).into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["net.0.bias", "net.0.weight", "net.2.weight"]);
    std::fs::remove_dir_all(dir).ok();
}
