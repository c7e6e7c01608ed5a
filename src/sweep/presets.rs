//! The sweeps gradstab ships: the phase diagram of a tanh network over σ_w² and depth
//! (Schoenholz, Gilmer, Ganguli, Sohl-Dickstein, "Deep Information Propagation", ICLR 2017),
//! static (the gradient's growth through depth, no training) and trained, each with the
//! claims its results must bear out.

use crate::error::{Error, Result};
use crate::train::record::Claim;

use crate::theory::phase::critical_sigma_w2;

use super::grid::{parse_values, Axis, Grid, SweepCommand};
use super::results::PointResult;
use super::theory;

/// The presets, as `--preset` names them.
pub const NAMES: [&str; 2] = ["phase-diagram-static", "phase-diagram"];

/// σ_b² of both diagrams: Schoenholz et al.'s Fig. 1 (its critical σ_w² is near 1.76).
pub const SIGMA_B2: &str = "0.05";

/// A sweep preset: its grid, what it shows, and the claims checked on a complete result.
pub struct SweepPreset {
    pub name: &'static str,
    pub summary: &'static str,
    pub grid: Grid,
    pub claims: fn(&[PointResult]) -> Vec<Claim>,
}

fn axis(name: &str, values: &str) -> Result<Axis> {
    Axis::new(name, parse_values(name, values)?)
}

fn flags(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The preset `name`.
pub fn preset(name: &str) -> Result<SweepPreset> {
    match name {
        "phase-diagram-static" => Ok(SweepPreset {
            name: "phase-diagram-static",
            summary: "tanh, σ_b² = 0.05: the gradient's growth from top to bottom over σ_w² and depth, against χ₁^depth",
            grid: Grid::new(
                SweepCommand::Run,
                flags(&["--activation", "tanh", "--width", "256", "--batch", "64", "--precision", "f32"]),
                vec![
                    axis("sigma-b2", SIGMA_B2)?,
                    axis("sigma-w2", "1:4:0.25")?,
                    axis("depth", "10:100:10")?,
                ],
            )?,
            claims: static_claims,
        }),
        "phase-diagram" => Ok(SweepPreset {
            name: "phase-diagram",
            summary: "tanh, σ_b² = 0.05, trained: the trainable depth over σ_w², against 6 ξ_c",
            grid: Grid::new(
                SweepCommand::Train,
                flags(&[
                    "--activation", "tanh", "--width", "64", "--task", "classify", "--samples", "512",
                    "--val-split", "0.25", "--batch", "64", "--shuffle", "--steps", "300", "--lr", "0.01",
                ]),
                vec![
                    axis("sigma-b2", SIGMA_B2)?,
                    axis("sigma-w2", "1:4:0.5")?,
                    axis("depth", "10,20,40,70,100")?,
                ],
            )?,
            claims: trained_claims,
        }),
        _ => Err(Error::InvalidArgument(format!(
            "no sweep preset {name:?}; the presets are {}",
            NAMES.join(", ")
        ))),
    }
}

fn number(result: &PointResult, field: &str) -> Option<f64> {
    result.outcome.get(field).and_then(|v| v.as_f64())
}

/// The width of a point's hidden layers (the first of them).
fn width(r: &PointResult) -> Option<f64> {
    let net = r.config.get("network").unwrap_or(&r.config);
    net.get("widths")?.get(1)?.as_f64()
}

/// The static diagram's claims: the gradient grows or shrinks through depth as χ₁ says, by
/// as much as the theory predicts, and the sign flips where χ₁ = 1.
fn static_claims(results: &[PointResult]) -> Vec<Claim> {
    let mut claims = Vec::new();
    // 1. Each point against the network's own mean-field prediction (which follows q^t from
    // the input to its fixed point): a layer multiplies the gradient's second moment by a
    // random factor whose log has variance about 2/n at width n (‖Wᵀg‖²/‖g‖² is χ²_n/n), so
    // over L layers the measured log10 ratio scatters by √(2L/n)/ln 10 around the theory's.
    let mut worst: Option<(f64, usize)> = None;
    let mut checked = 0;
    for r in results {
        let (Some(measured), Some(theory), Some(depth), Some(n)) = (
            number(r, "log10_grad_ratio"),
            number(r, "log10_theory_grad_ratio"),
            r.point.get("depth").and_then(|d| d.as_f64()),
            width(r),
        ) else {
            continue;
        };
        let sd = (2.0 * depth / n).sqrt() / std::f64::consts::LN_10;
        let z = (measured - theory).abs() / sd;
        checked += 1;
        if worst.is_none_or(|(w, _)| z > w) {
            worst = Some((z, r.index));
        }
    }
    claims.push(Claim {
        claim: "every point's gradient ratio is the theory's within 4 standard deviations of a \
                finite width's scatter, √(2·depth/width)/ln 10 decades"
            .into(),
        holds: checked == results.len() && worst.is_some_and(|(z, _)| z <= 4.0),
        measured: match worst {
            Some((z, i)) => {
                format!("{checked} points; the farthest, point {i}, at {z:.2} standard deviations")
            }
            None => "no point with a finite ratio".into(),
        },
    });
    // 2. At the deepest depth, the sign of the measured log ratio is the sign of ln χ₁ at the
    // fixed point, wherever the theory predicts at least a tenfold change.
    let deepest = results
        .iter()
        .filter_map(|r| r.point.get("depth").and_then(|d| d.as_f64()))
        .fold(0.0, f64::max);
    let mut agree = 0;
    let mut decided = 0;
    let mut disagree = Vec::new();
    for r in results
        .iter()
        .filter(|r| r.point.get("depth").and_then(|d| d.as_f64()) == Some(deepest))
    {
        let (Some(p), Some(measured)) = (theory::at(r), number(r, "log10_grad_ratio")) else {
            continue;
        };
        if (deepest * p.chi_1.log10()).abs() < 1.0 {
            continue;
        }
        decided += 1;
        if measured.signum() == p.chi_1.log10().signum() {
            agree += 1;
        } else {
            disagree.push(format!("σ_w² = {}", p.sigma_w2));
        }
    }
    let boundary = results
        .first()
        .and_then(|r| Some(critical_sigma_w2(&theory::activation(r)?, theory::sigma_b2(r)?).ok()?));
    claims.push(Claim {
        claim: format!(
            "at depth {deepest}, the gradient shrinks where χ₁ < 1 and grows where χ₁ > 1: the \
             order-to-chaos boundary is at σ_w² = {}",
            boundary.map_or("?".into(), |b| format!("{b:.3}"))
        ),
        holds: decided > 0 && agree == decided,
        measured: if disagree.is_empty() {
            format!(
                "{agree} of {decided} values of σ_w² (the others are within a factor of 10 of 1)"
            )
        } else {
            format!("{agree} of {decided}; not at {}", disagree.join(", "))
        },
    });
    claims
}

fn trained_claims(results: &[PointResult]) -> Vec<Claim> {
    let trained = results
        .iter()
        .filter(|r| number(r, "val_accuracy").is_some())
        .count();
    vec![Claim {
        claim: "every point reports a validation accuracy".into(),
        holds: trained == results.len() && !results.is_empty(),
        measured: format!("{trained} of {}", results.len()),
    }]
}
