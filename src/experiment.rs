//! The lecture's experiments (docs/theory.md, "Experiments") as named presets. A preset is an ordinary list of
//! labelled configurations and the precisions to run them in; `gradstab run` applies its flags
//! on top of every configuration.

use crate::error::{Error, Result};
use crate::init::{FanMode, Gain, Init, InputInit};
use crate::network::fp8::{Fp8Record, Role};
use crate::network::{Crossed, Loss, NetworkConfig, RunRecord};
use crate::ops::activation::Activation;
use crate::precision::Precision;
use crate::train::Claim;

#[derive(Clone, Debug)]
pub struct Experiment {
    pub name: &'static str,
    pub summary: &'static str,
    /// (label, configuration); most presets have one.
    pub variants: Vec<(String, NetworkConfig)>,
    pub precisions: Vec<Precision>,
    /// What the runs must show, checked part by part and printed as holds/FAILS.
    pub claims: Option<ClaimCheck>,
}

/// Checks a preset's claims against its runs.
pub type ClaimCheck = fn(&[VariantRun]) -> Vec<Claim>;

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
            claims: None,
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
            claims: None,
        },
        Experiment {
            name: "relu-explode",
            summary: "a deep ReLU MLP with N(0, 1) weights: activations and gradients explode, f16 long before f32",
            variants: vec![("relu N(0,1)".into(), config(40, 256, 64, Activation::Relu, STANDARD_NORMAL))],
            precisions: vec![F32, F16],
            claims: None,
        },
        Experiment {
            name: "sigmoid-vanish",
            summary: "a deep sigmoid MLP with Xavier weights: σ' ≤ 1/4 starves the bottom layers, to exact zeros in f16",
            variants: vec![("sigmoid".into(), config(50, 256, 64, Activation::Sigmoid, XAVIER))],
            precisions: vec![F32, F16],
            claims: None,
        },
        Experiment {
            name: "xavier-tanh",
            summary: "Xavier (gain 1) with tanh over 100 layers: both passes follow mean-field theory, a slow decay (E[tanh'²] < 1 while q > 0), not a collapse",
            variants: vec![("tanh xavier".into(), config(100, 256, 64, Activation::Tanh, XAVIER))],
            precisions: vec![F32],
            claims: None,
        },
        Experiment {
            name: "he-relu",
            summary: "He (Kaiming, fan_in) with ReLU over 100 layers: forward and backward second moments stay flat, up to the finite-width random walk",
            variants: vec![("relu he".into(), config(100, 256, 64, Activation::Relu, HE))],
            precisions: vec![F32],
            claims: None,
        },
        Experiment {
            name: "scaled-sigmoid",
            summary: "4·sigmoid(x) − 2 against sigmoid under the same Xavier init: slope 1 at 0 keeps the gradient",
            variants: vec![
                ("sigmoid".into(), config(50, 256, 64, Activation::Sigmoid, XAVIER)),
                ("scaled_sigmoid".into(), config(50, 256, 64, Activation::ScaledSigmoid, XAVIER)),
            ],
            precisions: vec![F32, F16],
            claims: None,
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
            claims: None,
        },
        Experiment {
            name: "bf16-range",
            summary: "the relu-explode net in f32, f16 and bf16: bf16 has f32's exponent range, so it overflows with f32, far later than f16; what it costs is precision (u = 2^-8), not range",
            variants: vec![("relu N(0,1)".into(), config(40, 256, 64, Activation::Relu, STANDARD_NORMAL))],
            precisions: vec![F32, F16, Bf16],
            claims: Some(bf16_range_claims),
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

fn claim(claim: impl Into<String>, holds: bool, measured: impl Into<String>) -> Claim {
    Claim {
        claim: claim.into(),
        holds,
        measured: measured.into(),
    }
}

/// The layer a run first overflowed at, from its summary, in words.
fn overflow_layer(run: Option<&VariantRun>) -> (Option<usize>, String) {
    match run.and_then(|r| r.record.summary.first_nonfinite_forward) {
        Some(t) => (Some(t), format!("layer {t}")),
        None => (None, "no layer".into()),
    }
}

/// bf16-range: where each format overflows, and how far bf16's second moments stray from f32's
/// before then.
fn bf16_range_claims(runs: &[VariantRun]) -> Vec<Claim> {
    let find = |p: Precision| runs.iter().find(|r| r.record.precision == p.name());
    let (f32_run, f16_run, bf16_run) = (
        find(Precision::F32),
        find(Precision::F16),
        find(Precision::Bf16),
    );
    let (at_f32, f32_words) = overflow_layer(f32_run);
    let (at_f16, f16_words) = overflow_layer(f16_run);
    let (at_bf16, bf16_words) = overflow_layer(bf16_run);
    let mut claims = vec![
        claim(
            "f16 overflows within the first 5 layers (E[z²] grows ×128 a layer; f16 ends at 65504)",
            at_f16.is_some_and(|t| t <= 5),
            format!("f16 overflows at {f16_words}"),
        ),
        claim(
            "bf16 overflows within one layer of f32 (both end near 3.4e38)",
            matches!((at_bf16, at_f32), (Some(b), Some(f)) if b.abs_diff(f) <= 1),
            format!("bf16 at {bf16_words}, f32 at {f32_words}"),
        ),
        claim(
            "bf16 runs at least 25 layers further than f16 before overflowing",
            matches!((at_bf16, at_f16), (Some(b), Some(h)) if b >= h + 25),
            format!("bf16 at {bf16_words}, f16 at {f16_words}"),
        ),
    ];
    // Before either overflows, each layer's E[z²] in bf16 against f32's: every stored value
    // is rounded with u = 2^-8, so the two differ by about u, far more than f32's 2^-24 and
    // far less than the layer-to-layer growth.
    let u = Precision::Bf16.storage().unit_roundoff();
    let last = at_bf16
        .into_iter()
        .chain(at_f32)
        .min()
        .map_or(0, |t| t.saturating_sub(1));
    let deviation = match (f32_run, bf16_run) {
        (Some(f), Some(b)) => (1..=last)
            .filter_map(|t| {
                let (zf, zb) = (f.record.layers.get(t)?, b.record.layers.get(t)?);
                let (mf, mb) = (
                    zf.pre_activation.as_ref()?.second_moment(),
                    zb.pre_activation.as_ref()?.second_moment(),
                );
                Some((mb / mf - 1.0).abs())
            })
            .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d)))),
        _ => None,
    };
    claims.push(claim(
        "before the overflow, bf16's E[z²] departs from f32's by more than u/16 and less than 4u (u = 2^-8): its cost is precision",
        deviation.is_some_and(|d| d > u / 16.0 && d < 4.0 * u),
        match deviation {
            Some(d) => format!("largest relative difference {d:.2e} over layers 1–{last} (u = {u:.2e})"),
            None => "no layer where both are finite".into(),
        },
    ));
    claims
}

/// One configuration run in one precision.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VariantRun {
    pub variant: String,
    pub config: NetworkConfig,
    /// Host seconds of the forward and backward pass, from the first upload to the last
    /// record read back (so the device's time too), the progress callback included. Timing,
    /// not a result: it differs from one run of the same configuration to the next.
    pub wall_seconds: f64,
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
