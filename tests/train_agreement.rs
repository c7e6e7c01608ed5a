//! The GPU's training against the CPU reference's, step by step: 20 steps of SGD with
//! momentum and of Adam in f32, and mixed precision with dynamic loss scaling skipping the
//! same steps. Correctness of each piece is tested against closed forms and finite
//! differences elsewhere (train_steps.rs, train_gradient.rs); this is agreement.

mod common;

use gradstab::network::NetworkConfig;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::{run_training, DynamicScaling, LossScale, Task, TrainConfig};
use gradstab::{Activation, Cpu, Precision};

const STEPS: usize = 20;
const DEPTH: usize = 4;
const WIDTH: usize = 32;

fn config(optimizer: OptimizerConfig, lr: f64) -> TrainConfig {
    TrainConfig {
        network: NetworkConfig {
            activation: Activation::Tanh,
            output_activation: false,
            linear_bias: true,
            seed: 5,
            ..NetworkConfig::new(DEPTH, WIDTH, 16)
        },
        task: Task::Teacher {
            depth: 2,
            width: WIDTH,
        },
        samples: 32,
        shuffle: true,
        drop_last: false,
        steps: STEPS,
        record_every: 0,
        optimizer,
        lr,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    }
}

/// How far two conforming f32 runs may drift apart, relative, after `steps` steps.
///
/// One step's forward and backward are 3·depth matmuls of inner dimension ≤ k; each result
/// may differ between backends by γ_k = k·u/(1 − k·u) relative to Σ|a·b| (summation order),
/// and tanh, exp and a fused multiply-add by a few units of u = 2^-24. A step thus perturbs
/// the loss and the parameters by at most ε = (3·depth + 4)·γ_k relative. At these small
/// rates a step does not amplify an earlier perturbation by more than a factor 2, so after
/// n steps the runs differ by at most Σ 2^0..≤ 2·n·ε; the test takes that bound.
fn drift_bound(steps: usize) -> f64 {
    let u = 2f64.powi(-24);
    let k = WIDTH.max(16) as f64;
    let gamma = k * u / (1.0 - k * u);
    2.0 * steps as f64 * (3 * DEPTH + 4) as f64 * gamma
}

fn agree(config: &TrainConfig, what: &str) {
    let Some(gpu) = common::gpu(what) else {
        return;
    };
    let cpu = run_training(&Cpu::new(), config, what, true, &mut |_, _| Ok(())).unwrap();
    let dev = run_training(&gpu, config, what, true, &mut |_, _| Ok(())).unwrap();
    let bound = drift_bound(STEPS);

    for (c, g) in cpu.run.steps.iter().zip(&dev.run.steps) {
        let rel = (c.loss - g.loss).abs() / c.loss.abs();
        assert!(
            rel <= bound,
            "{what}: step {} loss {} (cpu) vs {} (gpu): {rel:e} > {bound:e}",
            c.step,
            c.loss,
            g.loss
        );
    }
    // The trained weights, normwise per layer.
    let (cw, gw) = (cpu.weights.unwrap(), dev.weights.unwrap());
    for (t, (c, g)) in cw.weights.iter().zip(&gw.weights).enumerate() {
        let (c, g) = (c.to_f64_vec(), g.to_f64_vec());
        let diff: f64 = c
            .iter()
            .zip(&g)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = c.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!(
            diff <= bound * norm,
            "{what}: layer {} weights differ by {:e} relative > {bound:e}",
            t + 1,
            diff / norm
        );
    }
    // And the run learned something, so agreement is not two runs standing still.
    assert!(cpu.run.summary.final_loss < 0.9 * cpu.run.summary.start_loss);
}

#[test]
fn sgd_with_momentum_agrees_over_20_steps() {
    let sgd = OptimizerConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
        ..OptimizerConfig::new(OptimizerKind::Sgd)
    };
    agree(&config(sgd, 0.05), "sgd_with_momentum_agrees_over_20_steps");
}

#[test]
fn adam_agrees_over_20_steps() {
    let adam = OptimizerConfig {
        weight_decay: 1e-3,
        ..OptimizerConfig::new(OptimizerKind::AdamW)
    };
    agree(&config(adam, 1e-3), "adam_agrees_over_20_steps (adamw)");
    agree(
        &config(OptimizerConfig::new(OptimizerKind::Adam), 1e-3),
        "adam_agrees_over_20_steps",
    );
}

#[test]
fn mixed_precision_skips_the_same_steps_on_both_backends() {
    let Some(gpu) = common::gpu("mixed_precision_skips_the_same_steps_on_both_backends") else {
        return;
    };
    // A scale of 2^30 overflows f16 at once: the first steps are skipped while it backs
    // off, then it grows every 4 steps until it overflows again.
    let config = TrainConfig {
        precision: Precision::F16Accumulate32,
        loss_scale: LossScale::Dynamic(DynamicScaling {
            init_scale: 2f64.powi(30),
            growth_interval: 4,
            ..DynamicScaling::default()
        }),
        ..config(OptimizerConfig::new(OptimizerKind::Adam), 1e-3)
    };
    let skipped = |run: &gradstab::train::TrainRun| -> Vec<usize> {
        run.steps
            .iter()
            .filter(|s| s.skipped)
            .map(|s| s.step)
            .collect()
    };
    let cpu = run_training(&Cpu::new(), &config, "cpu", false, &mut |_, _| Ok(()))
        .unwrap()
        .run;
    let dev = run_training(&gpu, &config, "gpu", false, &mut |_, _| Ok(()))
        .unwrap()
        .run;
    let (c, g) = (skipped(&cpu), skipped(&dev));
    assert!(
        c.len() >= 3 && c.len() < STEPS,
        "the case skips some steps, not all: {c:?}"
    );
    assert_eq!(c, g, "skipped steps, cpu vs gpu");
    let scales = |run: &gradstab::train::TrainRun| -> Vec<f64> {
        run.steps.iter().map(|s| s.loss_scale).collect()
    };
    assert_eq!(scales(&cpu), scales(&dev));
}
