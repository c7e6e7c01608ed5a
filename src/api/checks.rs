//! The checks `RunOptions` and `TrainOptions` share: ranges, conflicts between options, and
//! the FP8 scaling options. Messages name options as Python spells them (`clip_norm`); the
//! command line refuses the same conflicts earlier, in clap's words.

use crate::error::{Error, Result};
use crate::network::fp8::Fp8Scaling;
use crate::precision::Precision;

/// The most layers a network may have: a million layers' records alone take gigabytes.
pub const MAX_DEPTH: usize = 1_000_000;

fn refuse<T>(message: String) -> Result<T> {
    Err(Error::InvalidArgument(message))
}

/// Refuses the first of `given` (name, whether set) when `source` is set: what a file (or a
/// preset) brings cannot also be asked for by an option.
pub fn conflicts(source: &str, set: bool, given: &[(&str, bool)], why: &str) -> Result<()> {
    match given.iter().find(|(_, g)| *g) {
        Some((name, _)) if set => refuse(format!("{name} cannot be used with {source}, {why}")),
        _ => Ok(()),
    }
}

/// A depth from 1 to `MAX_DEPTH`.
pub fn depth(name: &str, value: Option<usize>) -> Result<()> {
    match value {
        Some(d) if !(1..=MAX_DEPTH).contains(&d) => refuse(format!(
            "{name} {d}: expected a whole number from 1 to {MAX_DEPTH}"
        )),
        _ => Ok(()),
    }
}

/// A bias standard deviation: biases are drawn as f32, so from 0 to f32::MAX.
pub fn bias_std(value: Option<f64>) -> Result<()> {
    match value {
        Some(b) if !(0.0..=f32::MAX as f64).contains(&b) => refuse(format!(
            "bias_std {b}: expected a number from 0 to 3.4e38 (biases are drawn as f32)"
        )),
        _ => Ok(()),
    }
}

/// A count of at least 1 (a batch, samples, steps, a width).
pub fn count(name: &str, value: Option<usize>) -> Result<()> {
    match value {
        Some(0) => refuse(format!("{name} 0: expected a whole number ≥ 1")),
        _ => Ok(()),
    }
}

/// One width or more, each at least 1.
pub fn widths(name: &str, value: Option<&[usize]>) -> Result<()> {
    match value {
        Some(w) if w.is_empty() || w.contains(&0) => refuse(format!(
            "{name} {w:?}: expected one or more whole numbers ≥ 1"
        )),
        _ => Ok(()),
    }
}

/// A finite number > 0 (a clipping limit, a scaler constant).
pub fn positive(name: &str, value: Option<f64>) -> Result<()> {
    match value {
        Some(v) if !(v > 0.0 && v.is_finite()) => {
            refuse(format!("{name} {v}: expected a finite number > 0"))
        }
        _ => Ok(()),
    }
}

/// Gradient clipping is by norm or by value, not both.
pub fn one_clip(clip_norm: Option<f64>, clip_value: Option<f64>) -> Result<()> {
    conflicts(
        "clip_value",
        clip_value.is_some(),
        &[("clip_norm", clip_norm.is_some())],
        "choose one way of clipping",
    )
}

/// The FP8 scaling the options ask for (`None` when none was given), checked against the
/// precisions of the run: an option that nothing would read is refused, not ignored.
/// Unset values take `Fp8Scaling::default()`'s (Transformer Engine's).
pub fn fp8_scaling(
    scaling: Option<&str>,
    history: Option<usize>,
    margin: Option<i32>,
    precisions: &[Precision],
) -> Result<Option<Fp8Scaling>> {
    if scaling.is_none() && history.is_none() && margin.is_none() {
        return Ok(None);
    }
    if !precisions.iter().any(|p| p.quantised().is_some()) {
        return refuse(
            "fp8_scaling, fp8_history and fp8_margin apply to precision fp8 only".into(),
        );
    }
    let default = Fp8Scaling::default();
    let name = scaling.unwrap_or(default.name());
    if !name.trim().eq_ignore_ascii_case("delayed") && (history.is_some() || margin.is_some()) {
        return refuse("fp8_history and fp8_margin apply to fp8_scaling delayed only".into());
    }
    let (default_history, default_margin) = match default {
        Fp8Scaling::Delayed { history, margin } => (history, margin),
        _ => unreachable!("Transformer Engine's default is delayed scaling"),
    };
    Ok(Some(Fp8Scaling::parse(
        name,
        history.unwrap_or(default_history),
        margin.unwrap_or(default_margin),
    )?))
}
