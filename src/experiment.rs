//! The lecture's experiments (docs/theory.md, "Experiments") as named presets. A preset is an ordinary list of
//! labelled configurations and the precisions to run them in; `gradstab run` applies its flags
//! on top of every configuration.

use crate::error::{Error, Result};
use crate::init::{FanMode, Gain, Init, InputInit};
use crate::network::fp8::{Fp8Record, Role};
use crate::network::{Crossed, Loss, NetworkConfig, RunRecord};
use crate::ops::activation::Activation;
use crate::precision::Precision;

#[derive(Clone, Debug)]
pub struct Experiment {
    pub name: &'static str,
    pub summary: &'static str,
    /// (label, configuration); most presets have one.
    pub variants: Vec<(String, NetworkConfig)>,
    pub precisions: Vec<Precision>,
}

fn config(
    depth: usize,
    width: usize,
    batch: usize,
    activation: Activation,
    init: Init,
) -> NetworkConfig {
    NetworkConfig {
        activation,
        init,
        ..NetworkConfig::new(depth, width, batch)
    }
}

const XAVIER: Init = Init::XavierNormal {
    gain: Gain::Value(1.0),
};
/// He for ReLU, gain √2 said as the activation's (PyTorch's default gives the same).
const HE: Init = Init::KaimingNormal {
    mode: FanMode::FanIn,
    gain: Gain::OfActivation,
};
const STANDARD_NORMAL: Init = Init::Normal { std: 1.0 };

/// Every preset, in the order of the lecture.
pub fn presets() -> Vec<Experiment> {
    use Precision::*;
    let powers = |c: f64| NetworkConfig {
        activation: Activation::IDENTITY,
        init: Init::Constant { value: c },
        input: InputInit::Constant { value: 1.0 },
        loss: Loss::Sum,
        ..NetworkConfig::new(100, 1, 1)
    };
    vec![
        Experiment {
            name: "powers",
            summary: "1.5^k and 0.8^k for k = 1..100 with rounding after each step: f16 overflows at k = 28, turns subnormal at k = 44",
            variants: vec![("×1.5".into(), powers(1.5)), ("×0.8".into(), powers(0.8))],
            precisions: vec![F32, F16],
        },
        Experiment {
            name: "matrix-product",
            summary: "the product of 100 random 4×4 N(0, 1) matrices (the lecture's notebook): 10^20 to 10^28 in f32, inf in f16",
            variants: vec![(
                "4×4".into(),
                NetworkConfig {
                    activation: Activation::IDENTITY,
                    init: STANDARD_NORMAL,
                    ..NetworkConfig::new(100, 4, 4)
                },
            )],
            precisions: vec![F32, F16],
        },
        Experiment {
            name: "relu-explode",
            summary: "a deep ReLU MLP with N(0, 1) weights: activations and gradients explode, f16 long before f32",
            variants: vec![("relu N(0,1)".into(), config(40, 256, 64, Activation::Relu, STANDARD_NORMAL))],
            precisions: vec![F32, F16],
        },
        Experiment {
            name: "sigmoid-vanish",
            summary: "a deep sigmoid MLP with Xavier weights: σ' ≤ 1/4 starves the bottom layers, to exact zeros in f16",
            variants: vec![("sigmoid".into(), config(50, 256, 64, Activation::Sigmoid, XAVIER))],
            precisions: vec![F32, F16],
        },
        Experiment {
            name: "xavier-tanh",
            summary: "Xavier (gain 1) with tanh over 100 layers: both passes follow mean-field theory, a slow decay (E[tanh'²] < 1 while q > 0), not a collapse",
            variants: vec![("tanh xavier".into(), config(100, 256, 64, Activation::Tanh, XAVIER))],
            precisions: vec![F32],
        },
        Experiment {
            name: "he-relu",
            summary: "He (Kaiming, fan_in) with ReLU over 100 layers: forward and backward second moments stay flat, up to the finite-width random walk",
            variants: vec![("relu he".into(), config(100, 256, 64, Activation::Relu, HE))],
            precisions: vec![F32],
        },
        Experiment {
            name: "scaled-sigmoid",
            summary: "4·sigmoid(x) − 2 against sigmoid under the same Xavier init: slope 1 at 0 keeps the gradient",
            variants: vec![
                ("sigmoid".into(), config(50, 256, 64, Activation::Sigmoid, XAVIER)),
                ("scaled_sigmoid".into(), config(50, 256, 64, Activation::ScaledSigmoid, XAVIER)),
            ],
            precisions: vec![F32, F16],
        },
        Experiment {
            name: "precision-compare",
            summary: "one He/ReLU net with an MSE loss in f32, f16 and f16acc32: gradients of 2(h − y)/N start near f16's subnormal range",
            variants: vec![(
                "relu he mse".into(),
                NetworkConfig {
                    loss: Loss::Mse,
                    ..config(50, 256, 64, Activation::Relu, HE)
                },
            )],
            precisions: vec![F32, F16, F16Accumulate32],
        },
    ]
}

/// The demo's tour of the lecture: a few presets at sizes that finish in seconds on a software
/// GPU, f16 beside f32 where the contrast is the point.
pub fn demo_tour() -> Vec<Experiment> {
    let shrink = |name: &str,
                  depth: Option<usize>,
                  width: usize,
                  batch: usize,
                  precisions: Vec<Precision>| {
        let mut e = preset(name).expect("a preset of this file");
        for (_, c) in &mut e.variants {
            if let Some(d) = depth {
                c.depth = d;
            }
            c.widths = vec![width; c.depth + 1];
            c.batch = batch;
        }
        e.precisions = precisions;
        e
    };
    use Precision::*;
    vec![
        shrink("powers", None, 1, 1, vec![F16]),
        shrink("sigmoid-vanish", Some(30), 64, 16, vec![F32, F16]),
        shrink("scaled-sigmoid", Some(30), 64, 16, vec![F32]),
        shrink("he-relu", Some(50), 128, 16, vec![F32]),
    ]
}

pub fn preset(name: &str) -> Result<Experiment> {
    let all = presets();
    let names: Vec<&str> = all.iter().map(|e| e.name).collect();
    let wanted = name.trim().to_ascii_lowercase();
    all.iter()
        .find(|e| e.name == wanted)
        .cloned()
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown preset '{name}'; presets: {}",
                names.join(", ")
            ))
        })
}

/// One configuration run in one precision.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VariantRun {
    pub variant: String,
    pub config: NetworkConfig,
    #[serde(flatten)]
    pub record: RunRecord,
}

/// Where FP8 quantisation first saturated or flushed an operand: forward operands from the
/// bottom, gradients from the top, as the passes meet them.
fn fp8_onsets(records: &[Fp8Record]) -> Vec<String> {
    let mut parts = Vec::new();
    for role in Role::ALL {
        let mut of_role: Vec<&Fp8Record> = records.iter().filter(|r| r.role == role).collect();
        if role == Role::Gradient {
            of_role.reverse();
        }
        for (what, count) in [
            (
                "saturates",
                (|r: &Fp8Record| r.saturated) as fn(&Fp8Record) -> u64,
            ),
            ("flushes to zero", |r: &Fp8Record| r.flushed),
        ] {
            if let Some(r) = of_role.iter().find(|r| count(r) > 0) {
                let crossed = Crossed {
                    count: count(r),
                    of: r.count,
                };
                parts.push(format!(
                    "{} {} {what} first at layer {} ({crossed}, scale {:e})",
                    r.format,
                    role.name(),
                    r.layer,
                    r.scale
                ));
            }
        }
    }
    parts
}

fn onset(name: &str, layer: Option<usize>, crossed: Option<Crossed>) -> Option<String> {
    layer.map(|t| match crossed {
        Some(c) => format!("{name} at layer {t} ({c})"),
        None => format!("{name} at layer {t}"),
    })
}

/// The one-line conclusion of one run: where it overflowed, turned subnormal or lost its
/// gradient, and how much gradient reached the bottom.
pub fn conclusion(run: &VariantRun) -> String {
    let s = &run.record.summary;
    let f = run.record.storage;
    let mut parts: Vec<String> = [
        onset(
            &format!("forward overflows {f}"),
            s.first_nonfinite_forward,
            s.first_nonfinite_forward_values,
        ),
        onset(
            &format!("forward turns subnormal in {f}"),
            s.first_subnormal,
            s.first_subnormal_values,
        ),
        onset(
            &format!("gradient first non-finite in {f}"),
            s.first_nonfinite_backward,
            s.first_nonfinite_backward_values,
        ),
        onset(
            &format!("gradient first subnormal in {f}"),
            s.first_subnormal_backward,
            s.first_subnormal_backward_values,
        ),
        onset("gradient first all zero", s.first_all_zero_grad, None),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.extend(fp8_onsets(&run.record.fp8));
    if parts.is_empty() {
        parts.push(format!("finite through all {} layers", run.config.depth));
    }
    if s.grad_second_moment_ratio.is_finite() {
        parts.push(format!(
            "E[g²] bottom/top = {:.2e}",
            s.grad_second_moment_ratio
        ));
    }
    format!(
        "{} {}: {}",
        run.variant,
        run.record.precision,
        parts.join(", ")
    )
}
