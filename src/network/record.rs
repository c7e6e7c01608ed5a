//! What a run records: the statistics of every layer beside the theory, and where each
//! precision first ran into trouble.

use super::fp8::Fp8Record;
use crate::format::Format;
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

/// How many values crossed at an onset layer, of how many: an onset that rests on one value
/// of 16,384 is not the same finding as one where half the tensor crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Crossed {
    /// Values of the onset layer's tensors that crossed (for example, that are subnormal).
    pub count: u64,
    /// Values in those tensors.
    pub of: u64,
}

impl std::fmt::Display for Crossed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.count == self.of {
            write!(f, "all {} values", thousands(self.of))
        } else {
            let (count, of) = (thousands(self.count), thousands(self.of));
            write!(f, "{count} of {of} values")
        }
    }
}

/// 16384 as "16,384".
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where one precision first ran into trouble, and how many values crossed there. The JSON
/// puts each `*_values` beside its layer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// The first layer whose pre-activation or activation holds a NaN or ±inf.
    pub first_nonfinite_forward: Option<usize>,
    pub first_nonfinite_forward_values: Option<Crossed>,
    /// Counting down from the top, the first layer whose gradient or weight gradient does.
    pub first_nonfinite_backward: Option<usize>,
    pub first_nonfinite_backward_values: Option<Crossed>,
    /// The first layer whose pre-activation or activation holds a subnormal value.
    pub first_subnormal: Option<usize>,
    pub first_subnormal_values: Option<Crossed>,
    /// Counting down from the top, the first layer whose gradient or weight gradient does.
    pub first_subnormal_backward: Option<usize>,
    pub first_subnormal_backward_values: Option<Crossed>,
    /// Counting down from the top, the first layer whose gradient is exactly zero everywhere.
    pub first_all_zero_grad: Option<usize>,
    /// E[(∂l/∂H^0)²] / E[(∂l/∂H^d)²]: how much of the gradient reaches the bottom.
    pub grad_second_moment_ratio: f64,
}

/// One run of one precision.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunRecord {
    pub precision: String,
    /// The format the run's tensors are stored in, which its onsets are crossings of.
    pub storage: Format,
    pub layers: Vec<LayerRecord>,
    pub summary: Summary,
    /// ‖(dW^1, …, dW^d)‖ before clipping by norm.
    pub grad_norm_before_clip: Option<f64>,
    /// The factor clipping by norm applied (1 when the norm was within the limit).
    pub clip_coefficient: Option<f64>,
    /// In FP8, what quantising each layer's matmul operands did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fp8: Vec<Fp8Record>,
}

/// The forward tensors of a layer, and the backward ones.
fn forward(l: &LayerRecord) -> [&Option<StatsRecord>; 2] {
    [&l.pre_activation, &l.activation]
}

fn backward(l: &LayerRecord) -> [&Option<StatsRecord>; 2] {
    [&l.grad_activation, &l.grad_weight]
}

/// The first layer (in `layers`' order) where any of `tensors` has a value `crossing` counts,
/// with how many of how many.
fn onset<'a>(
    layers: impl Iterator<Item = &'a LayerRecord>,
    tensors: fn(&LayerRecord) -> [&Option<StatsRecord>; 2],
    crossing: fn(&StatsRecord) -> u64,
) -> (Option<usize>, Option<Crossed>) {
    for l in layers {
        let present = tensors(l).into_iter().flatten();
        let crossed = Crossed {
            count: present.clone().map(crossing).sum(),
            of: present.map(|s| s.count).sum(),
        };
        if crossed.count > 0 {
            return (Some(l.layer), Some(crossed));
        }
    }
    (None, None)
}

pub(crate) fn summarise(layers: &[LayerRecord]) -> Summary {
    let d = layers.len() - 1;
    let nonfinite = |s: &StatsRecord| s.nan + s.pos_inf + s.neg_inf;
    let subnormal = |s: &StatsRecord| s.subnormal;
    let (first_nonfinite_forward, first_nonfinite_forward_values) =
        onset(layers.iter(), forward, nonfinite);
    let (first_nonfinite_backward, first_nonfinite_backward_values) =
        onset(layers.iter().rev(), backward, nonfinite);
    let (first_subnormal, first_subnormal_values) = onset(layers.iter(), forward, subnormal);
    let (first_subnormal_backward, first_subnormal_backward_values) =
        onset(layers.iter().rev(), backward, subnormal);
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
        first_nonfinite_forward_values,
        first_nonfinite_backward,
        first_nonfinite_backward_values,
        first_subnormal,
        first_subnormal_values,
        first_subnormal_backward,
        first_subnormal_backward_values,
        first_all_zero_grad,
        grad_second_moment_ratio: moment(0) / moment(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crossing_reads_as_a_count_of_a_total() {
        let c = |count, of| Crossed { count, of }.to_string();
        assert_eq!(c(1, 16384), "1 of 16,384 values");
        assert_eq!(c(1234567, 1234568), "1,234,567 of 1,234,568 values");
        assert_eq!(c(999, 999), "all 999 values");
    }
}
