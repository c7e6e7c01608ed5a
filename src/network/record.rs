//! What a run records: the statistics of every layer beside the theory, and where each
//! precision first ran into trouble.

use crate::stats::StatsRecord;

/// The theory beside one layer's measurements.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TheoryPoint {
    /// q^t; `None` for layer 0.
    pub pre_activation_second_moment: Option<f64>,
    pub grad_second_moment: f64,
}

/// The records of one layer. Layer 0 is the input: its activation is the input batch and its
/// gradient the input gradient; it has no pre-activation or weight.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerRecord {
    pub layer: usize,
    pub pre_activation: Option<StatsRecord>,
    pub activation: Option<StatsRecord>,
    pub grad_activation: Option<StatsRecord>,
    pub grad_weight: Option<StatsRecord>,
    pub theory: TheoryPoint,
}

/// Where one precision first ran into trouble.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// The first layer whose pre-activation or activation holds a NaN or ±inf.
    pub first_nonfinite_forward: Option<usize>,
    /// Counting down from the top, the first layer whose gradient or weight gradient does.
    pub first_nonfinite_backward: Option<usize>,
    /// The first layer whose pre-activation or activation holds a subnormal value.
    pub first_subnormal: Option<usize>,
    /// Counting down from the top, the first layer whose gradient or weight gradient does.
    pub first_subnormal_backward: Option<usize>,
    /// Counting down from the top, the first layer whose gradient is exactly zero everywhere.
    pub first_all_zero_grad: Option<usize>,
    /// E[(∂l/∂H^0)²] / E[(∂l/∂H^d)²]: how much of the gradient reaches the bottom.
    pub grad_second_moment_ratio: f64,
}

/// One run of one precision.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunRecord {
    pub precision: String,
    pub layers: Vec<LayerRecord>,
    pub summary: Summary,
    /// ‖(dW^1, …, dW^d)‖ before clipping by norm.
    pub grad_norm_before_clip: Option<f64>,
    /// The factor clipping by norm applied (1 when the norm was within the limit).
    pub clip_coefficient: Option<f64>,
}

fn nonfinite(r: &Option<StatsRecord>) -> bool {
    r.as_ref()
        .is_some_and(|s| s.nan + s.pos_inf + s.neg_inf > 0)
}

pub(crate) fn summarise(layers: &[LayerRecord]) -> Summary {
    let d = layers.len() - 1;
    let first_nonfinite_forward = layers
        .iter()
        .find(|l| nonfinite(&l.pre_activation) || nonfinite(&l.activation))
        .map(|l| l.layer);
    let first_nonfinite_backward = layers
        .iter()
        .rev()
        .find(|l| nonfinite(&l.grad_activation) || nonfinite(&l.grad_weight))
        .map(|l| l.layer);
    let has_subnormal = |r: &Option<StatsRecord>| r.as_ref().is_some_and(|s| s.subnormal > 0);
    let first_subnormal = layers
        .iter()
        .find(|l| has_subnormal(&l.pre_activation) || has_subnormal(&l.activation))
        .map(|l| l.layer);
    let first_subnormal_backward = layers
        .iter()
        .rev()
        .find(|l| has_subnormal(&l.grad_activation) || has_subnormal(&l.grad_weight))
        .map(|l| l.layer);
    let first_all_zero_grad = layers
        .iter()
        .rev()
        .find(|l| {
            l.grad_activation
                .as_ref()
                .is_some_and(|s| s.zero == s.count)
        })
        .map(|l| l.layer);
    let moment = |t: usize| {
        layers[t].grad_activation.as_ref().map_or(f64::NAN, |s| {
            if s.finite() == s.count {
                s.second_moment()
            } else {
                f64::NAN
            }
        })
    };
    Summary {
        first_nonfinite_forward,
        first_nonfinite_backward,
        first_subnormal,
        first_subnormal_backward,
        first_all_zero_grad,
        grad_second_moment_ratio: moment(0) / moment(d),
    }
}
