//! The sweeps gradstab ships: the phase diagram of a tanh network over σ_w² and depth
//! (Schoenholz, Gilmer, Ganguli, Sohl-Dickstein, "Deep Information Propagation", ICLR 2017),
//! static (the gradient's growth through depth, no training) and trained, each with the
//! claims its results must bear out.

use crate::error::{Error, Result};
use crate::train::record::Claim;

use super::grid::{parse_values, Axis, Grid, SweepCommand};
use super::results::PointResult;

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

fn static_claims(results: &[PointResult]) -> Vec<Claim> {
    // Where theory predicts at least a tenfold change, the measured gradient changes the
    // same way: grows below the boundary's far side, shrinks on its near side.
    let decided: Vec<(f64, f64)> = results
        .iter()
        .filter_map(|r| {
            Some((
                number(r, "log10_theory_grad_ratio")?,
                number(r, "log10_grad_ratio")?,
            ))
        })
        .filter(|(theory, _)| theory.abs() >= 1.0)
        .collect();
    let agree = decided
        .iter()
        .filter(|(t, m)| t.signum() == m.signum())
        .count();
    vec![Claim {
        claim: "where the theory predicts a tenfold or larger change, the gradient grows or shrinks as it predicts".into(),
        holds: !decided.is_empty() && agree == decided.len(),
        measured: format!("{agree} of {} points", decided.len()),
    }]
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
