//! Training experiments, each with its one-line claim; tests/train_presets.rs checks every
//! claim on both backends. Sizes are small enough for a software GPU: a preset runs in
//! seconds on lavapipe, and `--steps` makes it longer.

use super::{LossScale, Task, TrainConfig};
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

pub const NAMES: [&str; 4] = [
    "lr-sensitivity",
    "vanishing-train",
    "loss-scaling",
    "remedies",
];

fn init(s: &str) -> Init {
    s.parse().expect("a preset's initialiser parses")
}

/// A full-batch regression of a teacher by a `depth`-layer MLP of `width` with a linear head,
/// trained by plain SGD in f32.
pub fn base(depth: usize, width: usize, activation: Activation, weights: Init) -> TrainConfig {
    let batch = 64;
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
        steps: 100,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 0.01,
        precision: Precision::F32,
        loss_scale: LossScale::None,
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
            let rates = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];
            let too_large = base(12, 64, Activation::Relu, init("kaiming_normal:fan_in:2"));
            let he = base(12, 64, Activation::Relu, init("kaiming_normal"));
            let mut runs = Vec::new();
            for (name, config) in [("gain 2", &too_large), ("He", &he)] {
                for lr in rates {
                    runs.push((format!("{name} lr={lr:e}"), with_lr(config, lr)));
                }
            }
            Ok(TrainPreset {
                name: "lr-sensitivity",
                conclusion: "with weights a little too large (gain 2 instead of He's √2, 12 ReLU layers) the largest rates diverge, the smallest barely move the loss and only a narrow band trains; with He initialisation a wide band trains",
                runs,
            })
        }
        "vanishing-train" => {
            let sigmoid = base(16, 64, Activation::Sigmoid, init("xavier_normal"));
            let mut runs = Vec::new();
            for lr in [0.1, 1.0, 10.0] {
                runs.push((format!("sigmoid lr={lr:e}"), with_lr(&sigmoid, lr)));
            }
            let scaled = base(16, 64, Activation::ScaledSigmoid, init("xavier_normal"));
            runs.push(("scaled sigmoid lr=1e-1".into(), with_lr(&scaled, 0.1)));
            let he = base(16, 64, Activation::Relu, init("kaiming_normal"));
            runs.push(("He ReLU lr=1e-2".into(), with_lr(&he, 0.01)));
            Ok(TrainPreset {
                name: "vanishing-train",
                conclusion: "in a 16-layer sigmoid net the bottom layers' relative updates are orders of magnitude below the top layers' at every learning rate; the scaled sigmoid and He/ReLU move every layer alike",
                runs,
            })
        }
        "loss-scaling" => {
            let net = TrainConfig {
                steps: 100,
                optimizer: OptimizerConfig::new(OptimizerKind::Adam),
                lr: 1e-3,
                ..base(12, 64, Activation::Tanh, init("xavier_normal:0.7"))
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
                conclusion: "without loss scaling most weight-gradient values of the bottom layers underflow to zero in f16 and those layers stop learning; with dynamic scaling almost none do and the loss tracks f32",
                runs,
            })
        }
        "remedies" => {
            let relu = |weights: &str| base(20, 64, Activation::Relu, init(weights));
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
                conclusion: "in a 20-layer ReLU net N(0, 0.01²) does not learn and N(0, 1) diverges; clipping keeps N(0, 1) finite, and He initialisation and residual connections train",
                runs,
            })
        }
        other => Err(Error::InvalidArgument(format!(
            "no training preset '{other}'; the presets are {}",
            NAMES.join(", ")
        ))),
    }
}
