//! Training experiments, each with its one-line claim; tests/train_presets.rs checks every
//! claim on both backends. Sizes are small enough for a software GPU: a preset runs in
//! seconds on lavapipe, and `--steps` makes it longer.

use super::format_presets;
use super::{Claim, LossScale, Task, TrainConfig, TrainRun};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::network::{Clip, NetworkConfig};
use crate::ops::activation::Activation;
use crate::ops::optimizer::{OptimizerConfig, OptimizerKind};
use crate::precision::Precision;

/// A named set of runs and what they show.
pub struct TrainPreset {
    pub name: &'static str,
    pub conclusion: &'static str,
    pub runs: Vec<(String, TrainConfig)>,
}

/// The learning rates of `lr-sensitivity`.
pub const LR_GRID: [f64; 7] = [1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1];

pub const NAMES: [&str; 6] = [
    "lr-sensitivity",
    "vanishing-train",
    "loss-scaling",
    "remedies",
    format_presets::BF16_STAGNATION,
    format_presets::FP8_SCALING,
];

fn init(s: &str) -> Init {
    s.parse().expect("a preset's initialiser parses")
}

/// A full-batch regression of a teacher by a `depth`-layer MLP of `width` with a linear head,
/// trained by SGD with momentum 0.9 in f32 for 200 steps: 32 samples, which a good rate fits
/// well within those steps.
pub fn base(depth: usize, width: usize, activation: Activation, weights: Init) -> TrainConfig {
    let batch = 32;
    TrainConfig {
        network: NetworkConfig {
            activation,
            init: weights,
            output_activation: false,
            ..NetworkConfig::new(depth, width, batch)
        },
        task: Task::Teacher { depth: 2, width },
        samples: batch,
        shuffle: false,
        drop_last: false,
        steps: 200,
        record_every: 0,
        optimizer: OptimizerConfig {
            momentum: 0.9,
            ..OptimizerConfig::new(OptimizerKind::Sgd)
        },
        lr: 0.01,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    }
}

fn with_lr(config: &TrainConfig, lr: f64) -> TrainConfig {
    TrainConfig {
        lr,
        ..config.clone()
    }
}

pub fn preset(name: &str) -> Result<TrainPreset> {
    match name {
        "lr-sensitivity" => {
            let too_large = base(8, 64, Activation::Relu, init("kaiming_normal:fan_in:1.7"));
            let he = base(8, 64, Activation::Relu, init("kaiming_normal"));
            let mut runs = Vec::new();
            for (name, config) in [("gain 1.7", &too_large), ("He", &he)] {
                for lr in LR_GRID {
                    runs.push((format!("{name} lr={lr:e}"), with_lr(config, lr)));
                }
            }
            Ok(TrainPreset {
                name: "lr-sensitivity",
                conclusion: "with weights a little too large (gain 1.7 instead of He's √2, 8 ReLU layers) the largest rates diverge, the smallest do not get below the loss of predicting zero and only a narrow band trains; with He initialisation a wide band trains",
                runs,
            })
        }
        "vanishing-train" => {
            let sigmoid = base(12, 64, Activation::Sigmoid, init("xavier_normal"));
            let mut runs = Vec::new();
            for lr in [0.01, 0.1, 1.0] {
                runs.push((format!("sigmoid lr={lr:e}"), with_lr(&sigmoid, lr)));
            }
            let scaled = base(12, 64, Activation::ScaledSigmoid, init("xavier_normal"));
            runs.push(("scaled sigmoid lr=1e-2".into(), with_lr(&scaled, 0.01)));
            let he = base(12, 64, Activation::Relu, init("kaiming_normal"));
            runs.push(("He ReLU lr=1e-2".into(), with_lr(&he, 0.01)));
            Ok(TrainPreset {
                name: "vanishing-train",
                conclusion: "in a 12-layer sigmoid net the bottom layers' relative updates are orders of magnitude below the top layers' at every learning rate; the scaled sigmoid and He/ReLU move every layer alike",
                runs,
            })
        }
        "loss-scaling" => {
            // Sigmoid layers shrink the gradient about fivefold each: the bottom layers'
            // weight gradients fall below f16's smallest subnormal while the top layers' stay
            // normal. Adam moves every layer whatever its gradient's size, as long as the
            // gradient is not zero.
            let net = TrainConfig {
                steps: 150,
                optimizer: OptimizerConfig::new(OptimizerKind::Adam),
                lr: 1e-3,
                ..base(10, 64, Activation::Sigmoid, init("xavier_normal"))
            };
            let dynamic = LossScale::Dynamic(super::DynamicScaling {
                // GradScaler's default interval is 2000 steps; 10 shows its growth and
                // backoff within a short run.
                growth_interval: 10,
                ..super::DynamicScaling::default()
            });
            let runs = vec![
                ("f32".to_string(), net.clone()),
                (
                    "f16acc32, no scaling".into(),
                    TrainConfig {
                        precision: Precision::F16Accumulate32,
                        ..net.clone()
                    },
                ),
                (
                    "f16acc32, dynamic scaling".into(),
                    TrainConfig {
                        precision: Precision::F16Accumulate32,
                        loss_scale: dynamic,
                        ..net.clone()
                    },
                ),
                (
                    "pure f16".into(),
                    TrainConfig {
                        precision: Precision::F16,
                        ..net.clone()
                    },
                ),
            ];
            Ok(TrainPreset {
                name: "loss-scaling",
                conclusion: "without loss scaling most weight-gradient values of the bottom layers underflow to zero in f16 and those layers do not learn; with dynamic scaling almost none do, every layer moves as in f32 and the loss tracks f32, the scale growing until a step overflows and backing off; pure f16 turns NaN at once, because Adam's eps = 1e-8 is 0 in f16 and a zero gradient gives 0/0",
                runs,
            })
        }
        "remedies" => {
            let relu = |weights: &str| base(16, 64, Activation::Relu, init(weights));
            let mut residual = relu("kaiming_normal:fan_in:0.3");
            residual.network.residual = true;
            let mut clipped = relu("normal:1");
            clipped.network.clip = Some(Clip::Norm(1.0));
            let runs = vec![
                ("N(0, 0.01²)".to_string(), relu("normal:0.01")),
                ("N(0, 1)".into(), relu("normal:1")),
                ("Xavier".into(), relu("xavier_normal")),
                ("He".into(), relu("kaiming_normal")),
                ("residual".into(), residual),
                ("N(0, 1), clip-norm 1".into(), clipped),
            ];
            Ok(TrainPreset {
                name: "remedies",
                conclusion: "in a 16-layer ReLU net N(0, 0.01²) does not learn and N(0, 1) diverges; clipping keeps N(0, 1) finite, and He initialisation and residual connections train",
                runs,
            })
        }
        format_presets::BF16_STAGNATION => {
            let (conclusion, runs) = format_presets::bf16_stagnation();
            Ok(TrainPreset {
                name: format_presets::BF16_STAGNATION,
                conclusion,
                runs,
            })
        }
        format_presets::FP8_SCALING => {
            let (conclusion, runs) = format_presets::fp8_scaling()?;
            Ok(TrainPreset {
                name: format_presets::FP8_SCALING,
                conclusion,
                runs,
            })
        }
        other => Err(Error::InvalidArgument(format!(
            "no training preset '{other}'; the presets are {}",
            NAMES.join(", ")
        ))),
    }
}

/// "Trains": ends finite below this fraction of the loss of a model that ignores its input.
pub const TRAINS_BELOW: f64 = 0.7;

fn claim(claim: impl Into<String>, holds: bool, measured: impl Into<String>) -> Claim {
    Claim {
        claim: claim.into(),
        holds,
        measured: measured.into(),
    }
}

fn find<'a>(runs: &'a [TrainRun], label: &str) -> Option<&'a TrainRun> {
    runs.iter().find(|r| r.label == label)
}

/// The first layer's mean update ratio over the last's.
fn bottom_over_top(run: &TrainRun) -> f64 {
    let [first, _, last] = run.summary.update_ratios_first_middle_last();
    first / last
}

/// What a claim about divergence measured, in words.
fn divergence(diverged_at: Option<usize>) -> String {
    match diverged_at {
        Some(step) => format!("loss inf or NaN from step {step}"),
        None => "the loss stayed finite".into(),
    }
}

/// Each part of preset `name`'s claim, checked against `runs` (all of the preset's runs, or
/// some: a part whose runs are missing is left out).
pub fn verify(name: &str, runs: &[TrainRun]) -> Vec<Claim> {
    let mut claims = Vec::new();
    match name {
        "lr-sensitivity" => {
            for init in ["gain 1.7", "He"] {
                let mine: Vec<&TrainRun> = runs
                    .iter()
                    .filter(|r| r.label.starts_with(&format!("{init} lr=")))
                    .collect();
                if mine.len() != LR_GRID.len() {
                    continue;
                }
                let rates = |pick: &dyn Fn(&TrainRun) -> bool| -> Vec<String> {
                    mine.iter()
                        .filter(|r| pick(r))
                        .map(|r| format!("{:e}", r.config.lr))
                        .collect()
                };
                let diverged = rates(&|r| r.summary.diverged_at.is_some());
                let trained = rates(&|r| r.summary.trained_below(TRAINS_BELOW));
                let smallest = &mine[0].summary;
                let measured = format!(
                    "diverged at lr {diverged:?}, trained at lr {trained:?}, smallest rate ends at {:.3} (zero-predictor loss {:.3})",
                    smallest.final_loss, smallest.baseline_loss
                );
                if init == "He" {
                    claims.push(claim(
                        "He trains over a wide band: at least 3 rates, none diverging",
                        trained.len() >= 3 && diverged.is_empty(),
                        measured,
                    ));
                } else {
                    let largest_diverges =
                        mine.last().is_some_and(|r| r.summary.diverged_at.is_some());
                    claims.push(claim(
                        "gain 1.7: the largest rates diverge, the smallest ends above the zero-predictor loss, at most 2 rates train",
                        largest_diverges
                            && smallest.final_loss >= smallest.baseline_loss
                            && !trained.is_empty()
                            && trained.len() <= 2,
                        measured,
                    ));
                }
            }
        }
        "vanishing-train" => {
            let sigmoid: Vec<&TrainRun> = runs
                .iter()
                .filter(|r| r.label.starts_with("sigmoid"))
                .collect();
            if !sigmoid.is_empty() {
                let ratios: Vec<String> = sigmoid
                    .iter()
                    .map(|r| format!("{:.1e}", bottom_over_top(r)))
                    .collect();
                claims.push(claim(
                    "sigmoid: at every rate the first layer's mean update ratio is below 1e-3 of the last layer's",
                    sigmoid.iter().all(|r| bottom_over_top(r) < 1e-3),
                    format!("first/last update ratio {ratios:?}"),
                ));
            }
            for label in ["scaled sigmoid lr=1e-2", "He ReLU lr=1e-2"] {
                if let Some(r) = find(runs, label) {
                    let ratio = bottom_over_top(r);
                    claims.push(claim(
                        format!(
                            "{label}: the first layer moves at least a tenth as much as the last"
                        ),
                        ratio > 0.1,
                        format!("first/last update ratio {ratio:.2}"),
                    ));
                }
            }
        }
        "loss-scaling" => {
            let (f32_run, plain, dynamic, pure) = (
                find(runs, "f32"),
                find(runs, "f16acc32, no scaling"),
                find(runs, "f16acc32, dynamic scaling"),
                find(runs, "pure f16"),
            );
            let first_zero = |r: &TrainRun| r.steps[0].layers[0].grad_zero_fraction;
            let first_update = |r: &TrainRun| r.summary.mean_update_ratio[0];
            if let (Some(reference), Some(plain)) = (f32_run, plain) {
                claims.push(claim(
                    "f16acc32 without scaling: most of layer 1's gradient values are zero and it moves less than 1% as much as in f32",
                    first_zero(plain) > 0.5 && first_update(plain) < 0.01 * first_update(reference),
                    format!(
                        "layer 1: {:.0}% of gradient values zero at step 1; update ratio {:.1e} against f32's {:.1e}",
                        100.0 * first_zero(plain),
                        first_update(plain),
                        first_update(reference)
                    ),
                ));
            }
            if let (Some(reference), Some(dynamic)) = (f32_run, dynamic) {
                let max_zero = dynamic
                    .steps
                    .iter()
                    .map(|s| s.layers[0].grad_zero_fraction)
                    .fold(0.0, f64::max);
                let update = first_update(dynamic) / first_update(reference);
                let loss = dynamic.summary.final_loss / reference.summary.final_loss;
                claims.push(claim(
                    "f16acc32 with dynamic scaling: under 1% of layer 1's gradient values zero at any step, layer 1 moves within 20% of f32 and the final loss within 1% of f32's",
                    max_zero < 0.01 && (update - 1.0).abs() < 0.2 && (loss - 1.0).abs() < 0.01,
                    format!(
                        "at most {:.2}% zero; update ratio {update:.3}× and final loss {loss:.4}× f32's",
                        100.0 * max_zero
                    ),
                ));
                let init = match dynamic.config.loss_scale {
                    LossScale::Dynamic(d) => d.init_scale,
                    _ => f64::NAN,
                };
                let peak = dynamic
                    .steps
                    .iter()
                    .map(|s| s.loss_scale)
                    .fold(0.0, f64::max);
                claims.push(claim(
                    "the scale grows from 2^16 until a step overflows, which is skipped and the scale halved",
                    peak > init && dynamic.summary.skipped_steps >= 1,
                    format!(
                        "scale from {init} up to {peak:e}, ending at {:e}; {} steps skipped",
                        dynamic.summary.final_loss_scale, dynamic.summary.skipped_steps
                    ),
                ));
            }
            if let Some(pure) = pure {
                claims.push(claim(
                    "pure f16 with Adam's default eps turns NaN",
                    pure.summary.diverged_at.is_some(),
                    divergence(pure.summary.diverged_at),
                ));
            }
        }
        "remedies" => {
            if let Some(r) = find(runs, "N(0, 0.01²)") {
                let max = r
                    .summary
                    .mean_update_ratio
                    .iter()
                    .cloned()
                    .fold(0.0, f64::max);
                claims.push(claim(
                    "N(0, 0.01²) does not learn: no layer's mean update ratio reaches 1e-6",
                    max < 1e-6 && r.summary.diverged_at.is_none(),
                    format!("largest mean update ratio {max:.1e}"),
                ));
            }
            if let Some(r) = find(runs, "N(0, 1)") {
                claims.push(claim(
                    "N(0, 1) diverges",
                    r.summary.diverged_at.is_some(),
                    divergence(r.summary.diverged_at),
                ));
            }
            if let Some(r) = find(runs, "N(0, 1), clip-norm 1") {
                claims.push(claim(
                    "clipping keeps N(0, 1) finite",
                    r.summary.diverged_at.is_none(),
                    format!("final loss {:.2e}", r.summary.final_loss),
                ));
            }
            for label in ["He", "residual"] {
                if let Some(r) = find(runs, label) {
                    claims.push(claim(
                        format!("{label} trains: its final loss is below {TRAINS_BELOW} of the zero-predictor loss"),
                        r.summary.trained_below(TRAINS_BELOW),
                        format!(
                            "final loss {:.3}, zero-predictor loss {:.3}",
                            r.summary.final_loss, r.summary.baseline_loss
                        ),
                    ));
                }
            }
        }
        format_presets::BF16_STAGNATION => {
            claims = format_presets::verify_bf16_stagnation(runs);
        }
        format_presets::FP8_SCALING => claims = format_presets::verify_fp8_scaling(runs),
        _ => {}
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::divergence;

    #[test]
    fn a_divergence_is_told_in_words_not_in_rust() {
        assert_eq!(divergence(Some(2)), "loss inf or NaN from step 2");
        assert_eq!(divergence(None), "the loss stayed finite");
    }
}
