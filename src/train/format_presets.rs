//! The training presets about number formats, `bf16-stagnation` and `fp8-scaling`: their runs
//! and the claims checked against them. `presets.rs` lists them beside the others;
//! docs/training.md derives every threshold used here from the formats' ranges.

use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::sync::Arc;

use super::config::TrainConfig;
use super::data::{teacher_data, Task, TrainData};
use super::record::{Claim, TrainRun};
use super::scaler::LossScale;
use crate::error::Result;
use crate::format::Format;
use crate::init::{FanMode, Gain, Init};
use crate::network::fp8::{Fp8Record, Fp8Scaling, Role};
use crate::network::NetworkConfig;
use crate::ops::activation::Activation;
use crate::ops::optimizer::{OptimizerConfig, OptimizerKind};
use crate::precision::Precision;
use crate::tensor::HostTensor;

/// Samples of both presets' data sets, all in one full batch.
const SAMPLES: usize = 32;
const WIDTH: usize = 64;

/// A full-batch regression of the default teacher by a `depth`-layer MLP of width 64 with a
/// linear head and no biases, trained by plain SGD (no momentum) in f32.
fn regression(
    depth: usize,
    activation: Activation,
    init: Init,
    lr: f64,
    steps: usize,
) -> TrainConfig {
    TrainConfig {
        network: NetworkConfig {
            activation,
            init,
            output_activation: false,
            ..NetworkConfig::new(depth, WIDTH, SAMPLES)
        },
        task: Task::Teacher {
            depth: 2,
            width: WIDTH,
        },
        samples: SAMPLES,
        shuffle: false,
        drop_last: false,
        steps,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    }
}

fn with_precision(config: &TrainConfig, precision: Precision) -> TrainConfig {
    TrainConfig {
        precision,
        ..config.clone()
    }
}

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

/// The unit roundoff of a format: half the distance from 1 to the next value.
fn unit_roundoff(format: Format) -> f64 {
    format.spec().unit_roundoff()
}

// ---------------------------------------------------------------------------------------
// bf16-stagnation

pub const BF16_STAGNATION: &str = "bf16-stagnation";

/// The learning rate: f32's relative update ‖ΔW‖/‖W‖ is then about 2.2e-4 per step, 1/9 of
/// 2^-9, so for most weights lr·|g| is below half a bf16 ulp of |w| (docs/training.md).
const STAGNATION_LR: f64 = 0.01;

/// bf16 may make at most this share of f32's loss decrease to count as stalled.
const STALLED_PROGRESS: f64 = 1.0 / 3.0;

pub fn bf16_stagnation() -> (&'static str, Vec<(String, TrainConfig)>) {
    let net = regression(
        4,
        Activation::Tanh,
        Init::XavierNormal {
            gain: Gain::PyTorchDefault,
        },
        STAGNATION_LR,
        200,
    );
    let runs = vec![
        ("f32".to_string(), net.clone()),
        ("bf16".into(), with_precision(&net, Precision::Bf16)),
        (
            "bf16acc32".into(),
            with_precision(&net, Precision::Bf16Accumulate32),
        ),
    ];
    (
        "with SGD at a rate whose updates are about 2^-12 of the weights, pure bf16 weights leave most of them exactly unchanged at every step (an update below half a bf16 ulp of its weight rounds away) and the loss stalls; bf16 autocast with f32 master weights keeps every update and follows f32",
        runs,
    )
}

/// The share of weights whose update |Δ| is below c·|w|, when Δ and w are independent
/// zero-mean Gaussians with ‖Δ‖/‖w‖ = `ratio`: Δ/w is Cauchy with scale `ratio`, so
/// P(|Δ/w| < c) = (2/π)·atan(c/ratio).
fn share_below(c: f64, ratio: f64) -> f64 {
    if ratio == 0.0 {
        return 1.0;
    }
    2.0 / PI * (c / ratio).atan()
}

/// The mean unchanged fraction over every step and layer of a run.
fn mean_unchanged(run: &TrainRun) -> f64 {
    let values: Vec<f64> = run
        .steps
        .iter()
        .flat_map(|s| s.layers.iter().map(|l| l.unchanged_fraction))
        .collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// How much of `reference`'s loss decrease `run` made, from the same start.
fn progress(run: &TrainRun, reference: &TrainRun) -> f64 {
    (reference.summary.start_loss - run.summary.final_loss)
        / (reference.summary.start_loss - reference.summary.final_loss)
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

pub fn verify_bf16_stagnation(runs: &[TrainRun]) -> Vec<Claim> {
    let mut claims = Vec::new();
    let (Some(f32_run), bf16, acc32) = (
        find(runs, "f32"),
        find(runs, "bf16"),
        find(runs, "bf16acc32"),
    ) else {
        return claims;
    };
    // A bf16 weight w in [2^e, 2^(e+1)) has ulp 2^(e−7): half an ulp lies between 2^-9·|w|
    // and 2^-8·|w|. An update below 2^-9·|w| is certainly lost, one above 2^-8·|w| certainly
    // kept; f32's update ratio says how large the updates are meant to be.
    let u = unit_roundoff(Format::Bf16);
    let ratios = &f32_run.summary.mean_update_ratio;
    let predict = |c: f64| {
        ratios.iter().map(|&r| share_below(c, r)).sum::<f64>() / ratios.len().max(1) as f64
    };
    let (lost_at_least, lost_at_most) = (predict(u / 2.0), predict(u));
    if let (Some(bf16), Some(acc32)) = (bf16, acc32) {
        let (b, a, f) = (
            mean_unchanged(bf16),
            mean_unchanged(acc32),
            mean_unchanged(f32_run),
        );
        claims.push(claim(
            "bf16 leaves at least the share of weights unchanged per step that the half-ulp rule predicts from f32's update ratio; bf16acc32 and f32 leave under 1% unchanged",
            b >= lost_at_least && a < 0.01 && f < 0.01,
            format!(
                "mean unchanged fraction: bf16 {b:.3} (predicted between {lost_at_least:.3} and {lost_at_most:.3} for f32's update ratios {}), bf16acc32 {a:.4}, f32 {f:.4}",
                ratios
                    .iter()
                    .map(|r| format!("{r:.1e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let (Some(bf16), Some(acc32)) = (bf16, acc32) {
        let (pb, pa) = (progress(bf16, f32_run), progress(acc32, f32_run));
        let off = relative(acc32.summary.final_loss, f32_run.summary.final_loss);
        claims.push(claim(
            format!(
                "bf16 makes under {STALLED_PROGRESS:.2} of f32's loss decrease; bf16acc32's final loss is within bf16's unit roundoff 2^-8 of f32's"
            ),
            pb < STALLED_PROGRESS && off <= u,
            format!(
                "final loss f32 {:.4}, bf16acc32 {:.4} ({:.1e} relative), bf16 {:.4}, from {:.4}: bf16 made {:.0}% of f32's decrease, bf16acc32 {:.1}%",
                f32_run.summary.final_loss,
                acc32.summary.final_loss,
                off,
                bf16.summary.final_loss,
                f32_run.summary.start_loss,
                100.0 * pb,
                100.0 * pa
            ),
        ));
    }
    claims
}

// ---------------------------------------------------------------------------------------
// fp8-scaling

pub const FP8_SCALING: &str = "fp8-scaling";

/// The inputs are the teacher's N(0, 1) inputs times 2^8, as unnormalised features.
pub const INPUT_SCALE: f32 = 256.0;

/// Depth of the fp8 net: with Kaiming gain 1/√2 each ReLU layer halves the activations'
/// scale, so 8 layers bring inputs of scale 2^8 back to outputs of scale 1.
const FP8_DEPTH: usize = 8;

/// The step from which delayed scaling uses only amaxes measured in passes that saturated
/// nothing: step 1 quantises with scale 1 (TE's rule), and step 2 with the amaxes of step
/// 1, where layer 2's input had been computed from layer 1's saturated input.
pub const DELAYED_CLEAN_FROM: usize = 3;

/// "~0": a saturated or flushed share below 2^-8, a few stray values of a tensor's 2048 or
/// 4096, which per-tensor scaling leaves (a weight within 2^-19 of the amax flushes; an amax
/// that grows past its history by more than 464/448 saturates one value).
pub const STRAY: f64 = 1.0 / 256.0;

fn fp8(config: &TrainConfig, scaling: Fp8Scaling) -> TrainConfig {
    let mut config = with_precision(config, Precision::Fp8);
    config.network.fp8_scaling = scaling;
    config
}

/// The default teacher's data set (seed 0) with its inputs multiplied by `INPUT_SCALE`.
fn scaled_inputs() -> Result<Task> {
    let teacher = Task::Teacher {
        depth: 2,
        width: WIDTH,
    };
    let data = teacher_data(&teacher, SAMPLES, WIDTH, WIDTH, 0)?;
    let x: Vec<f32> = data
        .x
        .to_f32_vec()
        .iter()
        .map(|v| v * INPUT_SCALE)
        .collect();
    Ok(Task::File {
        source: format!("the teacher's data, inputs ×{INPUT_SCALE}"),
        data: Arc::new(TrainData {
            x: HostTensor::from_f32(SAMPLES, WIDTH, x)?,
            targets: data.targets.clone(),
        }),
    })
}

pub fn fp8_scaling() -> Result<(&'static str, Vec<(String, TrainConfig)>)> {
    let init = Init::KaimingNormal {
        mode: FanMode::FanIn,
        gain: Gain::Value(FRAC_1_SQRT_2),
    };
    let net = TrainConfig {
        task: scaled_inputs()?,
        ..regression(FP8_DEPTH, Activation::Relu, init, 0.01, 100)
    };
    let runs = vec![
        (
            "bf16acc32".to_string(),
            with_precision(&net, Precision::Bf16Accumulate32),
        ),
        ("fp8, no scaling".into(), fp8(&net, Fp8Scaling::None)),
        (
            "fp8, delayed scaling".into(),
            fp8(&net, Fp8Scaling::default()),
        ),
        (
            "fp8, current scaling".into(),
            fp8(&net, Fp8Scaling::Current),
        ),
    ];
    Ok((
        "with inputs of scale 2^8 and layers that halve them, FP8 without scaling saturates 7% of layer 1's inputs at E4M3's 448 and flushes up to half of the bottom layers' E5M2 gradient values to zero; Transformer Engine's delayed scaling removes both from step 3 on (step 1 quantises with scale 1), current scaling from step 1, and either trains like bf16 autocast; at this size the loss without scaling ends close too, since SGD's steps scale with the gradient and E5M2 flushes only the smallest values",
        runs,
    ))
}

/// Saturated and flushed values of one role in one layer, as shares of the tensor, at each
/// step of `run`.
fn shares(run: &TrainRun, layer: usize, role: Role) -> Vec<(f64, f64)> {
    run.steps
        .iter()
        .filter_map(|s| s.fp8.iter().find(|r| r.layer == layer && r.role == role))
        .map(|r| {
            let n = r.count.max(1) as f64;
            (r.saturated as f64 / n, r.flushed as f64 / n)
        })
        .collect()
}

/// The largest saturated and flushed shares of any operand from step `from` on, with where.
fn worst_from(run: &TrainRun, from: usize) -> ((f64, String), (f64, String)) {
    let mut saturated = (0.0, "none".to_string());
    let mut flushed = (0.0, "none".to_string());
    for s in run.steps.iter().filter(|s| s.step >= from) {
        for r in &s.fp8 {
            let n = r.count.max(1) as f64;
            let at = || format!("layer {} {} at step {}", r.layer, r.role.name(), s.step);
            if r.saturated as f64 / n > saturated.0 {
                saturated = (r.saturated as f64 / n, at());
            }
            if r.flushed as f64 / n > flushed.0 {
                flushed = (r.flushed as f64 / n, at());
            }
        }
    }
    (saturated, flushed)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

pub fn verify_fp8_scaling(runs: &[TrainRun]) -> Vec<Claim> {
    let mut claims = Vec::new();
    let (reference, none, delayed, current) = (
        find(runs, "bf16acc32"),
        find(runs, "fp8, no scaling"),
        find(runs, "fp8, delayed scaling"),
        find(runs, "fp8, current scaling"),
    );
    if let Some(none) = none {
        // Layer 1's input x·2^8 saturates where |x| > 464/256 (E4M3's overflow midpoint):
        // 2·(1 − Φ(1.8125)) = 7.0% of N(0, 1) values.
        let sat = shares(none, 1, Role::Input);
        let sat_min = sat.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
        // The gradient's scale halves at every layer down from the head's 2(o − y)/2048,
        // crossing E5M2's 2^-17 in the bottom layers.
        let flushed: Vec<f64> = (1..=FP8_DEPTH)
            .map(|t| mean(shares(none, t, Role::Gradient).iter().map(|s| s.1)))
            .collect();
        let bottom = flushed[0].min(flushed[1]);
        let top = flushed[FP8_DEPTH - 1];
        claims.push(claim(
            "without scaling, E4M3 saturates layer 1's inputs at every step (x·2^8 beyond 448), and E5M2 flushes to zero more than 10% of layers 1 and 2's gradient values, over 10 times the top layer's share",
            sat_min > STRAY && bottom > 0.1 && bottom > 10.0 * top,
            format!(
                "layer 1's input saturated: at least {:.1}% of values at every step (7.0% of N(0, 1) lie beyond 464/256); gradient values flushed, mean over steps, layer 1 to {FP8_DEPTH}: {}",
                100.0 * sat_min,
                flushed
                    .iter()
                    .map(|f| format!("{:.1}%", 100.0 * f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(delayed) = delayed {
        let step1 = notable_at(delayed, 1);
        let ((sat, sat_at), (fl, fl_at)) = worst_from(delayed, DELAYED_CLEAN_FROM);
        claims.push(claim(
            format!(
                "with delayed scaling, from step {DELAYED_CLEAN_FROM} on no operand has more than 2^-8 of its values saturated or flushed (step 1 quantises with scale 1, as Transformer Engine does)"
            ),
            sat < STRAY && fl < STRAY,
            format!(
                "from step {DELAYED_CLEAN_FROM}: at most {:.2}% saturated ({sat_at}), {:.2}% flushed ({fl_at}); at step 1 (scale 1): {step1}",
                100.0 * sat,
                100.0 * fl
            ),
        ));
    }
    if let (Some(reference), Some(delayed)) = (reference, delayed) {
        let u = unit_roundoff(Format::E5m2);
        let off = relative(delayed.summary.final_loss, reference.summary.final_loss);
        let others = [none, current]
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} {:.4} ({:+.1}%)",
                    r.label,
                    r.summary.final_loss,
                    100.0 * (r.summary.final_loss / reference.summary.final_loss - 1.0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        claims.push(claim(
            "with delayed scaling the final loss is within E5M2's unit roundoff 2^-3 of bf16acc32's",
            off <= u,
            format!(
                "final loss bf16acc32 {:.4}, fp8 delayed {:.4} ({:+.1}%); {others}",
                reference.summary.final_loss,
                delayed.summary.final_loss,
                100.0 * (delayed.summary.final_loss / reference.summary.final_loss - 1.0)
            ),
        ));
    }
    if let Some(current) = current {
        let ((sat, sat_at), (fl, fl_at)) = worst_from(current, 1);
        claims.push(claim(
            "with current scaling, no operand has more than 2^-8 of its values saturated or flushed at any step, step 1 included".to_string(),
            sat < STRAY && fl < STRAY,
            format!(
                "at most {:.2}% saturated ({sat_at}), {:.2}% flushed ({fl_at})",
                100.0 * sat,
                100.0 * fl
            ),
        ));
    }
    claims
}

/// What quantising did at step `step` of `run`, in words: the operands of which more than
/// `STRAY` saturated, and those of which more than `STRAY` flushed.
fn notable_at(run: &TrainRun, step: usize) -> String {
    let Some(s) = run.steps.iter().find(|s| s.step == step) else {
        return "not run".into();
    };
    let list = |pick: &dyn Fn(&Fp8Record) -> u64| -> String {
        let found: Vec<String> = s
            .fp8
            .iter()
            .filter_map(|r| {
                let share = pick(r) as f64 / r.count.max(1) as f64;
                (share > STRAY)
                    .then(|| format!("layer {} {} {:.1}%", r.layer, r.role.name(), 100.0 * share))
            })
            .collect();
        if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        }
    };
    format!(
        "saturated {}; flushed {}",
        list(&|r| r.saturated),
        list(&|r| r.flushed)
    )
}

#[cfg(test)]
mod tests {
    use super::share_below;

    #[test]
    fn the_cauchy_share_is_half_at_the_scale_and_grows_to_one() {
        // P(|C| < r) = 1/2 for a Cauchy variable of scale r; atan(1) = π/4.
        assert!((share_below(2.0, 2.0) - 0.5).abs() < 1e-15);
        assert_eq!(share_below(1.0, 0.0), 1.0);
        assert!(share_below(1.0, 1e-12) > 0.999_999);
    }
}
