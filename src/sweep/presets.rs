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

/// The claims of a preset, checked on a complete result.
pub type Claims = fn(&[PointResult]) -> Vec<Claim>;

/// A sweep preset: its grid, what it shows, and the claims checked on a complete result.
pub struct SweepPreset {
    pub name: &'static str,
    pub summary: &'static str,
    pub grid: Grid,
    pub claims: Claims,
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
            summary: "tanh, σ_b² = 0.05, trained 300 Adam steps on a 4-class task with a held-out quarter: where over σ_w² and depth it trains, against 6 ξ_c",
            grid: Grid::new(
                SweepCommand::Train,
                flags(&[
                    "--activation", "tanh", "--width", "32", "--outputs", "4", "--task",
                    "classify", "--samples", "512", "--val-split", "0.25", "--batch", "64",
                    "--shuffle", "--steps", "300", "--optimizer", "adam", "--lr", "0.002",
                ]),
                vec![
                    axis("sigma-b2", SIGMA_B2)?,
                    axis("sigma-w2", "1,1.25,1.5,1.75,2,2.5,3,4")?,
                    axis("depth", "8,16,24,32,48")?,
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
        .and_then(|r| critical_sigma_w2(&theory::activation(r)?, theory::sigma_b2(r)?).ok());
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

/// Training accuracy at which a point counts as trained: the classes' majority is near 1/3,
/// and every network of depth 8 reaches 1.
pub const TRAINED_ACCURACY: f64 = 0.9;

/// How far past 6 ξ_c a trained point may lie before it contradicts the theory: the grid's
/// depths are 8 apart where 6 ξ_c is smallest (22 at σ_w² = 1).
const BEYOND_TRAINABLE: f64 = 1.25;

/// The trained diagram's claims: no network trains much deeper than 6 ξ_c; the trainable
/// region is widest near χ₁ = 1; shallow networks train everywhere (the task is learnable).
fn trained_claims(results: &[PointResult]) -> Vec<Claim> {
    let accuracy = |r: &PointResult| number(r, "train_accuracy");
    let depth = |r: &PointResult| r.point.get("depth").and_then(|d| d.as_f64());
    let mut claims = Vec::new();
    // 1. Every trained point lies within the theory's trainable depth.
    let mut beyond = Vec::new();
    let mut trained = 0;
    for r in results {
        let (Some(a), Some(d), Some(p)) = (accuracy(r), depth(r), theory::at(r)) else {
            continue;
        };
        if a >= TRAINED_ACCURACY {
            trained += 1;
            if d > BEYOND_TRAINABLE * p.trainable_depth() {
                beyond.push(format!(
                    "σ_w² = {}, depth {d} (6 ξ_c = {:.0})",
                    p.sigma_w2,
                    p.trainable_depth()
                ));
            }
        }
    }
    claims.push(Claim {
        claim: format!(
            "no network deeper than {BEYOND_TRAINABLE} × 6 ξ_c trains (training accuracy ≥ {TRAINED_ACCURACY})"
        ),
        holds: trained > 0 && beyond.is_empty(),
        measured: if beyond.is_empty() {
            format!("{trained} points trained, all within it")
        } else {
            format!("trained beyond it: {}", beyond.join("; "))
        },
    });
    // 2. The trainable region widens toward χ₁ = 1: the mean training accuracy over the depths
    // is higher at the σ_w² nearest the boundary than at either end of the grid.
    let mut by_sigma: Vec<(f64, f64, f64)> = Vec::new(); // (σ_w², Σ accuracy, count)
    for r in results {
        let (Some(s), Some(a)) = (theory::sigma_w2(r), accuracy(r)) else {
            continue;
        };
        match by_sigma.iter_mut().find(|(x, _, _)| *x == s) {
            Some(e) => {
                e.1 += a;
                e.2 += 1.0;
            }
            None => by_sigma.push((s, a, 1.0)),
        }
    }
    by_sigma.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mean = |e: &(f64, f64, f64)| e.1 / e.2;
    let boundary = results
        .first()
        .and_then(|r| critical_sigma_w2(&theory::activation(r)?, theory::sigma_b2(r)?).ok());
    let nearest = boundary.and_then(|b| {
        by_sigma
            .iter()
            .min_by(|x, y| (x.0 - b).abs().total_cmp(&(y.0 - b).abs()))
    });
    let widest = match (nearest, by_sigma.first(), by_sigma.last()) {
        (Some(n), Some(lo), Some(hi)) if by_sigma.len() >= 3 => Some((n, lo, hi)),
        _ => None,
    };
    claims.push(Claim {
        claim: "the trainable region widens toward χ₁ = 1: the mean training accuracy over depth \
                is higher at the σ_w² nearest the boundary than at the grid's smallest and largest"
            .into(),
        holds: widest.is_some_and(|(n, lo, hi)| mean(n) > mean(lo) && mean(n) > mean(hi)),
        measured: match widest {
            Some((n, lo, hi)) => format!(
                "{:.3} at σ_w² = {} against {:.3} at {} and {:.3} at {}",
                mean(n),
                n.0,
                mean(lo),
                lo.0,
                mean(hi),
                hi.0
            ),
            None => "fewer than three values of σ_w²".into(),
        },
    });
    // 3. The task is learnable: the shallowest networks train at every σ_w².
    let shallowest = results
        .iter()
        .filter_map(depth)
        .fold(f64::INFINITY, f64::min);
    let shallow: Vec<f64> = results
        .iter()
        .filter(|r| depth(r) == Some(shallowest))
        .filter_map(accuracy)
        .collect();
    let least = shallow.iter().copied().fold(f64::INFINITY, f64::min);
    claims.push(Claim {
        claim: format!("at depth {shallowest} every σ_w² trains: the task is learnable"),
        holds: !shallow.is_empty() && least >= TRAINED_ACCURACY,
        measured: format!(
            "lowest training accuracy {least:.3} over {} points",
            shallow.len()
        ),
    });
    claims
}
