//! The mean-field theory of a sweep's points, for a (σ_w², depth) diagram: the activation and
//! σ_b² the points share, and the curves `theory::phase` draws for them.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ops::activation::Activation;
use crate::report::sweep_plot::TheoryOverlay;
use crate::theory::phase::{phase_curves, phase_point, PhasePoint};

use super::PointResult;

/// Samples of the 6 ξ_c curve across the diagram: enough for its steep rise near χ₁ = 1 to
/// read as a curve.
const CURVE_SAMPLES: usize = 241;

/// A point's network configuration (`run` reports it whole; `train` under `network`).
fn network(r: &PointResult) -> &Value {
    r.config.get("network").unwrap_or(&r.config)
}

/// σ_w² of a point: its sigma-w2 or sigma-w axis.
pub fn sigma_w2(r: &PointResult) -> Option<f64> {
    match (r.point.get("sigma-w2"), r.point.get("sigma-w")) {
        (Some(v), _) => v.as_f64(),
        (None, Some(s)) => s.as_f64().map(|s| s * s),
        _ => None,
    }
}

/// σ_b² of a point: its axis, or the biases' standard deviation squared.
pub fn sigma_b2(r: &PointResult) -> Option<f64> {
    match (r.point.get("sigma-b2"), r.point.get("sigma-b")) {
        (Some(v), _) => v.as_f64(),
        (None, Some(s)) => s.as_f64().map(|s| s * s),
        _ => network(r).get("bias_std")?.as_f64().map(|s| s * s),
    }
}

/// A point's activation, as its configuration names it.
pub fn activation(r: &PointResult) -> Option<Activation> {
    serde_json::from_value(network(r).get("activation")?.clone()).ok()
}

/// The theory at a point (its activation, σ_w² and σ_b²), where it has them.
pub fn at(r: &PointResult) -> Option<PhasePoint> {
    phase_point(&activation(r)?, sigma_w2(r)?, sigma_b2(r)?).ok()
}

/// The one value all `results` share, or an error naming what varies.
fn shared<T: PartialEq + std::fmt::Debug>(
    results: &[PointResult],
    what: &str,
    of: impl Fn(&PointResult) -> Option<T>,
) -> Result<T> {
    let mut values = results.iter().map(&of);
    let first = values.next().flatten().ok_or_else(|| {
        Error::InvalidArgument(format!("theory: the points do not say their {what}"))
    })?;
    if values.any(|v| v.as_ref() != Some(&first)) {
        return Err(Error::InvalidArgument(format!(
            "theory: the points' {what} varies; plot one value of it (--where)"
        )));
    }
    Ok(first)
}

/// The χ₁ = 1 boundary and the depth 6 ξ_c over the σ_w² of `results`, in the units of the
/// x axis `x` (sigma-w2, or sigma-w).
pub fn overlay(results: &[PointResult], x: &str) -> Result<TheoryOverlay> {
    let to_x: fn(f64) -> f64 = match x {
        "sigma-w2" => |v| v,
        "sigma-w" => f64::sqrt,
        _ => {
            return Err(Error::InvalidArgument(format!(
                "theory: the x axis must be sigma-w2 or sigma-w (the theory's σ_w), not {x}"
            )))
        }
    };
    let activation = shared(results, "activation", activation)?;
    let sigma_b2 = shared(results, "σ_b²", sigma_b2)?;
    let range = results
        .iter()
        .filter_map(sigma_w2)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !(range.0 < range.1) {
        return Err(Error::InvalidArgument(
            "theory: the points need at least two values of σ_w²".into(),
        ));
    }
    let curves = phase_curves(&activation, sigma_b2, range, CURVE_SAMPLES)?;
    Ok(TheoryOverlay {
        boundary: curves.critical_sigma_w2.map(to_x),
        depth_curve: curves
            .trainable_depth()
            .into_iter()
            .map(|(s, d)| (to_x(s), d))
            .collect(),
        about: format!("{}, σ_b² = {sigma_b2}", activation.name()),
    })
}
