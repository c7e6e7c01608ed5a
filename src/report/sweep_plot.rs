//! A sweep drawn as a phase diagram: one outcome coloured over two axes, one cell per point,
//! with the theory's curves on top (the order-to-chaos boundary χ₁ = 1, the depth 6 ξ_c).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{chart, Axis};
use super::heat::{diverging, draw_colour_bar, ramp};
use super::legend::{Legend, Swatch};
use super::plot::plot_error;
use super::style::Dash;
use crate::error::{Error, Result};
use crate::sweep::PointResult;

/// A point without a finite value (a diverged run, an onset that never came).
const NO_VALUE: RGBColor = RGBColor(200, 200, 200);
/// The theory's lines: red on the blue-to-yellow ramp, black on the diverging scale (whose
/// ends are blue and red).
const THEORY_ON_RAMP: RGBColor = RGBColor(220, 30, 30);
const THEORY_ON_DIVERGING: RGBColor = RGBColor(0, 0, 0);

/// How a diagram colours its values.
#[derive(Clone, Copy)]
struct Scale {
    range: (f64, f64),
    colour: fn(f64) -> RGBColor,
    theory: RGBColor,
}

impl Scale {
    /// A log10 whose values take both signs is coloured on the diverging scale, symmetric
    /// about 0 (white): its sign is the finding (a gradient that grows or shrinks). Anything
    /// else is on the ramp from its least to its largest value.
    fn of(value: &str, finite: &[f64]) -> Option<Scale> {
        let lo = finite.iter().copied().reduce(f64::min)?;
        let hi = finite.iter().copied().reduce(f64::max)?;
        if value.starts_with("log10") && lo < 0.0 && hi > 0.0 {
            let m = lo.abs().max(hi);
            return Some(Scale {
                range: (-m, m),
                colour: diverging,
                theory: THEORY_ON_DIVERGING,
            });
        }
        let range = if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        };
        Some(Scale {
            range,
            colour: ramp,
            theory: THEORY_ON_RAMP,
        })
    }

    fn colour_of(&self, v: f64) -> RGBColor {
        let (lo, hi) = self.range;
        (self.colour)(((v - lo) / (hi - lo)).clamp(0.0, 1.0))
    }
}
const PLOT_SIZE: (u32, u32) = (760, 560);
const SIDE_WIDTH: u32 = 300;

/// The theory drawn over a diagram, in the diagram's own units.
#[derive(Clone, Debug, Default)]
pub struct TheoryOverlay {
    /// x of the boundary χ₁ = 1.
    pub boundary: Option<f64>,
    /// (x, y) of the curve y = 6 ξ_c.
    pub depth_curve: Vec<(f64, f64)>,
    /// What the lines are for (the activation and σ_b²), in the legend.
    pub about: String,
}

/// What to draw: the outcome `value` over axes `x` and `y`, of the points whose other axes
/// take the values in `fixed` (every other axis must be fixed or take one value).
pub struct Diagram<'a> {
    pub x: &'a str,
    pub y: &'a str,
    pub value: &'a str,
    pub fixed: &'a [(String, String)],
}

/// An axis value of a point as a number; `None` for text.
fn coordinate(r: &PointResult, axis: &str) -> Option<f64> {
    r.point.get(axis).and_then(|v| v.as_f64())
}

/// The outcome's value as a number: numbers, true as 1 and false as 0; `None` for null.
fn outcome(r: &PointResult, value: &str) -> Option<f64> {
    match r.outcome.get(value)? {
        serde_json::Value::Bool(b) => Some(*b as u8 as f64),
        v => v.as_f64(),
    }
}

/// The cells of the diagram: (x, y, value), checked to be one per (x, y).
pub fn cells(results: &[PointResult], d: &Diagram<'_>) -> Result<Vec<(f64, f64, Option<f64>)>> {
    let refuse = |m: String| Err(Error::InvalidArgument(m));
    let Some(first) = results.first() else {
        return refuse("plot: the results hold no points".into());
    };
    for axis in [d.x, d.y] {
        if !first.point.contains_key(axis) {
            let names: Vec<&String> = first.point.keys().collect();
            return refuse(format!(
                "plot: no axis {axis:?}; the sweep's axes are {names:?}"
            ));
        }
    }
    if !first.outcome.get(d.value).is_some() {
        let names: Vec<&String> = first
            .outcome
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        return refuse(format!(
            "plot: no outcome {:?}; the points have {names:?}",
            d.value
        ));
    }
    let kept: Vec<&PointResult> = results
        .iter()
        .filter(|r| {
            d.fixed
                .iter()
                .all(|(axis, value)| r.point.get(axis) == Some(&PointResult::json_value(value)))
        })
        .collect();
    if kept.is_empty() {
        return refuse("plot: no point has the values --where asks for".into());
    }
    // Any other axis that varies would put two points in one cell.
    for axis in first.point.keys() {
        if axis == d.x || axis == d.y || d.fixed.iter().any(|(a, _)| a == axis) {
            continue;
        }
        let mut values: Vec<&serde_json::Value> =
            kept.iter().filter_map(|r| r.point.get(axis)).collect();
        values.dedup();
        if values.iter().any(|v| *v != values[0]) {
            return refuse(format!(
                "plot: the axis {axis} varies too; pick one of its values with --where {axis}=VALUE"
            ));
        }
    }
    let mut cells = Vec::with_capacity(kept.len());
    for r in kept {
        let (Some(x), Some(y)) = (coordinate(r, d.x), coordinate(r, d.y)) else {
            return refuse(format!(
                "plot: the axes {} and {} must take numbers (point {} has {:?}, {:?})",
                d.x,
                d.y,
                r.index,
                r.point.get(d.x),
                r.point.get(d.y)
            ));
        };
        cells.push((x, y, outcome(r, d.value).filter(|v| v.is_finite())));
    }
    Ok(cells)
}

/// The edges of the cells around sorted distinct `centres`: halfway to each neighbour, and
/// as far beyond the ends.
fn edges(centres: &[f64]) -> Vec<f64> {
    let n = centres.len();
    if n == 1 {
        let half = (centres[0].abs() * 0.1).max(0.5);
        return vec![centres[0] - half, centres[0] + half];
    }
    let mut e = Vec::with_capacity(n + 1);
    e.push(centres[0] - (centres[1] - centres[0]) / 2.0);
    for w in centres.windows(2) {
        e.push((w[0] + w[1]) / 2.0);
    }
    e.push(centres[n - 1] + (centres[n - 1] - centres[n - 2]) / 2.0);
    e
}

fn distinct(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Draws the diagram to an SVG file at `path` (written whole or not at all).
pub fn svg(
    results: &[PointResult],
    diagram: &Diagram<'_>,
    theory: Option<&TheoryOverlay>,
    path: &Path,
) -> Result<()> {
    let cells = cells(results, diagram)?;
    let mut text = String::new();
    {
        let size = (PLOT_SIZE.0 + SIDE_WIDTH, PLOT_SIZE.1);
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let (plot, side) = root.split_horizontally(PLOT_SIZE.0);
        let finite: Vec<f64> = cells.iter().filter_map(|c| c.2).collect();
        let scale = Scale::of(diagram.value, &finite);
        draw(&plot, &cells, diagram, scale, theory).map_err(|e| plot_error(path, e))?;
        let (bar, below) = side.split_vertically(330);
        if let Some(scale) = scale {
            draw_colour_bar(&bar, scale.range, diagram.value, scale.colour)
                .map_err(|e| plot_error(path, e))?;
        }
        let lines = scale.map_or(THEORY_ON_RAMP, |s| s.theory);
        key(&cells, theory, lines)
            .draw(&below.margin(8, 0, 8, 0))
            .map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
}

/// The legend: the colour of a point without a value, and the theory's lines.
fn key(
    cells: &[(f64, f64, Option<f64>)],
    theory: Option<&TheoryOverlay>,
    lines: RGBColor,
) -> Legend {
    let mut key = Legend::default();
    if cells.iter().any(|c| c.2.is_none()) {
        key.push(Swatch::Fill(NO_VALUE), "no finite value");
    }
    if let Some(t) = theory {
        if t.boundary.is_some() {
            key.push(
                line(lines, Dash::Dashed),
                "χ₁ = 1: order (left), chaos (right)",
            );
        }
        if !t.depth_curve.is_empty() {
            key.push(line(lines, Dash::Solid), "depth 6 ξ_c");
        }
        if !t.about.is_empty() {
            key.heading = Some(format!("theory: {}", t.about));
        }
    }
    key
}

fn line(colour: RGBColor, dash: Dash) -> Swatch {
    Swatch::Line {
        colour,
        dash,
        width: 3,
        marker: None,
    }
}

/// The heat map and the theory.
fn draw(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    cells: &[(f64, f64, Option<f64>)],
    d: &Diagram<'_>,
    scale: Option<Scale>,
    theory: Option<&TheoryOverlay>,
) -> std::result::Result<(), String> {
    let xs = distinct(cells.iter().map(|c| c.0).collect());
    let ys = distinct(cells.iter().map(|c| c.1).collect());
    let (xe, ye) = (edges(&xs), edges(&ys));
    let caption = format!("{} over {} and {}", d.value, d.x, d.y);
    let (x0, x1) = (xe[0], xe[xe.len() - 1]);
    let (y0, y1) = (ye[0], ye[ye.len() - 1]);
    let x = Axis {
        range: (x0, x1),
        title: d.x,
        counts: false,
    };
    let y = Axis {
        range: (y0, y1),
        title: d.y,
        counts: false,
    };
    let chart = chart(area, &caption, x, y, false)?;
    let at = |v: f64, centres: &[f64]| centres.iter().position(|&c| c == v).unwrap_or(0);
    let plotting = chart.plotting_area();
    for &(x, y, value) in cells {
        let (i, j) = (at(x, &xs), at(y, &ys));
        let colour = match (value, scale) {
            (Some(v), Some(scale)) => scale.colour_of(v),
            _ => NO_VALUE,
        };
        plotting
            .draw(&Rectangle::new(
                [(xe[i], ye[j]), (xe[i + 1], ye[j + 1])],
                colour.filled(),
            ))
            .map_err(|e| e.to_string())?;
    }
    let Some(t) = theory else { return Ok(()) };
    let lines = scale.map_or(THEORY_ON_RAMP, |s| s.theory);
    if let Some(b) = t.boundary.filter(|b| (x0..=x1).contains(b)) {
        super::style::draw_line(plotting, vec![(b, y0), (b, y1)], lines, Dash::Dashed, 3)?;
    }
    for piece in clipped(&t.depth_curve, (x0, x1), (y0, y1)) {
        super::style::draw_line(plotting, piece, lines, Dash::Solid, 3)?;
    }
    Ok(())
}

/// The pieces of a curve inside the box: each segment that leaves it (near χ₁ = 1, where
/// ξ_c → ∞, the curve leaves through the top) ends where it crosses the edge.
fn clipped(
    curve: &[(f64, f64)],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Vec<Vec<(f64, f64)>> {
    let inside = |(x, y): (f64, f64)| (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut piece: Vec<(f64, f64)> = Vec::new();
    for w in curve.windows(2) {
        let (a, b) = (w[0], w[1]);
        if !(a.1.is_finite() && b.1.is_finite()) {
            pieces.push(std::mem::take(&mut piece));
            continue;
        }
        // Where the segment a→b crosses y = edge, by linear interpolation.
        let cross = |edge: f64| {
            let t = (edge - a.1) / (b.1 - a.1);
            (a.0 + t * (b.0 - a.0), edge)
        };
        let edge_of = |p: (f64, f64)| if p.1 > y1 { y1 } else { y0 };
        match (inside(a), inside(b)) {
            (true, true) => {
                if piece.is_empty() {
                    piece.push(a);
                }
                piece.push(b);
            }
            (true, false) => {
                if piece.is_empty() {
                    piece.push(a);
                }
                if (y0..=y1).contains(&b.1) {
                    piece.push(b);
                } else {
                    piece.push(cross(edge_of(b)));
                }
                pieces.push(std::mem::take(&mut piece));
            }
            (false, true) => {
                piece.push(if (y0..=y1).contains(&a.1) {
                    a
                } else {
                    cross(edge_of(a))
                });
                piece.push(b);
            }
            (false, false) => {}
        }
    }
    pieces.push(piece);
    pieces.retain(|p| p.len() > 1);
    pieces
}
