//! The SVG plots of `gradstab train`: the loss curves of every run (log10 loss against step),
//! and one heat map per run of log10 ‖ΔW‖/‖W‖ by layer and step, which shows at a glance which
//! layers learn and when.
//!
//! The loss axis is set by the runs that did not diverge: a diverged run is drawn up to the
//! edge of the plot (or its last finite loss) and ends in a cross. The heat maps share one
//! colour scale, also set by the runs that did not diverge, shown in a colour bar beside the
//! meaning of the colours that are not on it.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{clip_to, padded, quantile_range, robust_range};
use super::frame::{chart, Axis};
use super::heat::{draw_colour_bar, ramp};
use super::legend::{Legend, Swatch};
use super::plot::plot_error;
use super::style::{
    draw_line, draw_marker, marker_points, series_style, spread_coinciding, Dash, Marker,
    SeriesStyle,
};
use crate::error::Result;
use crate::train::{TrainReport, TrainRun};

/// Pixels of the loss panel, and the height of the loss-scale panel under it.
const LOSS_PANEL: (u32, u32) = (780, 500);
const SCALE_PANEL: u32 = 300;
/// The height of the accuracy panel, drawn where a run evaluates a classifier.
const ACCURACY_PANEL: u32 = 300;
/// Markers per curve (besides a divergence's cross).
const MARKERS_PER_CURVE: usize = 10;
/// Two curves closer than this fraction of the axis everywhere cannot be told apart by eye.
const COINCIDE: f64 = 0.004;

/// One curve of a run on the loss panel: what it measures and its (step, value) points.
pub struct Curve {
    pub name: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// The curves of a run on the loss panel, each log10 of a loss against the step, up to the
/// last finite value. A curve added here (a validation loss) gets its own style, legend
/// entry and clipping.
fn run_curves(run: &TrainRun) -> Vec<Curve> {
    let loss = run.steps.iter().map(|s| (s.step, s.loss));
    let mut curves = vec![Curve {
        name: "train",
        points: log10_until_nonfinite(loss),
    }];
    let val: Vec<(usize, f64)> = run
        .steps
        .iter()
        .filter_map(|s| Some((s.step, s.eval.as_ref()?.val_loss?)))
        .collect();
    if !val.is_empty() {
        curves.push(Curve {
            name: "val",
            points: log10_until_nonfinite(val.into_iter()),
        });
    }
    curves
}

/// A run's accuracies at its evaluations, on the training set and the validation set, up to
/// the first NaN; empty for regression.
fn accuracy_curves(run: &TrainRun) -> [Vec<(f64, f64)>; 2] {
    let evals = || {
        run.steps
            .iter()
            .filter_map(|s| Some((s.step, s.eval.as_ref()?)))
    };
    let points = |pick: fn(&crate::train::eval::EvalRecord) -> Option<f64>| {
        evals()
            .map_while(|(step, e)| Some((step as f64, pick(e)?)))
            .take_while(|(_, a)| a.is_finite())
            .collect()
    };
    [points(|e| e.train_accuracy), points(|e| e.val_accuracy)]
}

/// (step, log10 value) of `values` up to the first that is inf or NaN, leaving out zeros.
fn log10_until_nonfinite(values: impl Iterator<Item = (usize, f64)>) -> Vec<(f64, f64)> {
    values
        .take_while(|(_, v)| v.is_finite())
        .filter(|(_, v)| *v > 0.0)
        .map(|(step, v)| (step as f64, v.log10()))
        .collect()
}

/// A curve of the figure: which run, its label, points, style and divergence.
struct Series {
    run: usize,
    /// Which of the run's curves: "train" or "val".
    curve: &'static str,
    label: String,
    points: Vec<(f64, f64)>,
    style: SeriesStyle,
    diverged_at: Option<usize>,
}

/// Every run's curves, styled by their place in the figure.
fn all_series(report: &TrainReport) -> Vec<Series> {
    let mut series = Vec::new();
    for (r, run) in report.runs.iter().enumerate() {
        let curves = run_curves(run);
        let single = curves.len() == 1;
        for c in curves {
            let label = if single {
                run.label.clone()
            } else {
                format!("{}: {}", run.label, c.name)
            };
            series.push(Series {
                run: r,
                curve: c.name,
                label,
                points: c.points,
                style: curve_style(r, c.name),
                diverged_at: run.summary.diverged_at,
            });
        }
    }
    series
}

/// Run `run`'s style for its training curve; its validation curve keeps the colour and
/// marker, dotted, so that a run's two curves read as a pair.
fn curve_style(run: usize, curve: &str) -> SeriesStyle {
    let train = series_style(run);
    match curve {
        "val" => SeriesStyle {
            dash: if train.dash == Dash::Dotted {
                Dash::DashDot
            } else {
                Dash::Dotted
            },
            ..train
        },
        _ => train,
    }
}

/// The last step of the longest run.
fn last_step(report: &TrainReport) -> f64 {
    report
        .runs
        .iter()
        .map(|r| r.steps.last().map_or(0, |s| s.step).max(r.config.steps))
        .max()
        .unwrap_or(1)
        .max(2) as f64
}

/// log10 of the loss against the step, one line per run; where a run scales its loss, a
/// second panel shows log2 of each scaled run's loss scale, step by step.
pub fn loss_curves(report: &TrainReport, path: &Path) -> Result<()> {
    let mut text = String::new();
    {
        let series = all_series(report);
        let scaled = report
            .runs
            .iter()
            .any(|r| r.steps.iter().any(|s| s.loss_scale != 1.0));
        let legend = loss_legend(&series);
        let (legend_w, legend_h) = legend.size();
        let accuracy = report
            .runs
            .iter()
            .any(|r| accuracy_curves(r).iter().any(|c| !c.is_empty()));
        let plots_h = LOSS_PANEL.1
            + if scaled { SCALE_PANEL } else { 0 }
            + if accuracy { ACCURACY_PANEL } else { 0 };
        let size = (LOSS_PANEL.0 + legend_w + 16, plots_h.max(legend_h + 40));
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let (plots, key) = root.split_horizontally(LOSS_PANEL.0);
        let (top, mut rest) = plots.split_vertically(LOSS_PANEL.1);
        draw_losses(&top, report, &series).map_err(|e| plot_error(path, e))?;
        if accuracy {
            let (panel, below) = rest.split_vertically(ACCURACY_PANEL);
            draw_accuracies(&panel, report, &series).map_err(|e| plot_error(path, e))?;
            rest = below;
        }
        if scaled {
            draw_scales(&rest, report, &series).map_err(|e| plot_error(path, e))?;
        }
        legend
            .draw(&key.margin(36, 0, 0, 0))
            .map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
}

/// The y-range of the loss panel: that of the curves of runs that did not diverge.
fn loss_range(series: &[Series]) -> (f64, f64) {
    let all: Vec<(&[(f64, f64)], bool)> = series
        .iter()
        .map(|s| (&s.points[..], s.diverged_at.is_some()))
        .collect();
    robust_range(&all)
        .map(|r| padded(r, 0.05))
        .unwrap_or((-1.0, 1.0))
}

/// For each series, the earlier series it cannot be told apart from on the plot, if any:
/// the same steps, and everywhere closer than `COINCIDE` of the axis.
fn coinciding(series: &[Series], (lo, hi): (f64, f64)) -> Vec<Option<usize>> {
    let close = |a: &Series, b: &Series| {
        a.points.len() == b.points.len()
            && a.points
                .iter()
                .zip(&b.points)
                .all(|(p, q)| p.0 == q.0 && (p.1 - q.1).abs() <= COINCIDE * (hi - lo))
    };
    series
        .iter()
        .enumerate()
        .map(|(j, b)| (0..j).find(|&i| !b.points.is_empty() && close(&series[i], b)))
        .collect()
}

fn loss_legend(series: &[Series]) -> Legend {
    let range = loss_range(series);
    let same = coinciding(series, range);
    let mut legend = Legend::default();
    for (s, same) in series.iter().zip(same) {
        let mut label = s.label.clone();
        if let Some(d) = s.diverged_at {
            label += &format!(" (diverged at step {d})");
        }
        if s.points.len() == 1 {
            label += " (one finite step)";
        }
        if let Some(i) = same {
            label += &format!(" (coincides with {})", series[i].label);
        }
        legend.push(
            Swatch::Line {
                colour: s.style.colour,
                dash: s.style.dash,
                width: 2,
                marker: Some(s.style.marker),
            },
            label,
        );
    }
    if series.iter().any(|s| s.diverged_at.is_some()) {
        legend.push(
            Swatch::Marker {
                marker: Marker::Cross,
                colour: RGBColor(60, 60, 60),
                filled: true,
            },
            "diverged: the last finite loss, or where it left the plot",
        );
    }
    legend
}

fn draw_losses(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &TrainReport,
    series: &[Series],
) -> std::result::Result<(), String> {
    let (lo, hi) = loss_range(series);
    let validated = series.iter().any(|s| s.curve == "val");
    let title = match (&report.preset, validated) {
        (Some(p), _) => format!("{p}: log10 loss"),
        (None, false) => "log10 loss".to_string(),
        (None, true) => "log10 loss (train: each minibatch; val: held-out set)".to_string(),
    };
    let x = Axis {
        range: (1.0, last_step(report)),
        title: "step",
        counts: true,
    };
    let y = Axis {
        range: (lo, hi),
        title: "log10 loss",
        counts: false,
    };
    let chart = chart(root, &title, x, y, true)?;
    let area = chart.plotting_area();
    let mut ends = Vec::new();
    for s in series {
        let (points, _) = clip_to(&s.points, (lo, hi));
        draw_line(area, points.clone(), s.style.colour, s.style.dash, 2)?;
        if s.diverged_at.is_some() {
            if let Some(&end) = points.last() {
                ends.push((end, s.style.colour));
            }
        }
    }
    for (i, s) in series.iter().enumerate() {
        let (points, _) = clip_to(&s.points, (lo, hi));
        for p in marker_points(&points, i, MARKERS_PER_CURVE) {
            draw_marker(area, p, s.style.marker, s.style.colour, 3, false)?;
        }
    }
    let at: Vec<(f64, f64)> = ends.iter().map(|e| e.0).collect();
    let x_range = (1.0, last_step(report));
    for ((_, colour), at) in ends.iter().zip(spread_coinciding(&at, x_range, (lo, hi))) {
        draw_marker(area, at, Marker::Cross, *colour, 6, true)?;
    }
    Ok(())
}

/// A curve in its style, with its markers at the phase of series `phase`.
fn draw_series<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    area: &DrawingArea<DB, CT>,
    points: &[(f64, f64)],
    style: SeriesStyle,
    phase: usize,
) -> std::result::Result<(), String> {
    draw_line(area, points.to_vec(), style.colour, style.dash, 2)?;
    for p in marker_points(points, phase, MARKERS_PER_CURVE) {
        draw_marker(area, p, style.marker, style.colour, 3, false)?;
    }
    Ok(())
}

/// The accuracy at each evaluation, on the training set in the style of the run's training
/// loss and on the validation set in that of its validation loss.
fn draw_accuracies(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &TrainReport,
    series: &[Series],
) -> std::result::Result<(), String> {
    let x = Axis {
        range: (1.0, last_step(report)),
        title: "step",
        counts: true,
    };
    let y = Axis {
        range: (-0.02, 1.02),
        title: "accuracy",
        counts: false,
    };
    let chart = chart(
        area,
        "accuracy (train: whole training set; val: held-out set)",
        x,
        y,
        true,
    )?;
    let mut i = 0;
    for (r, run) in report.runs.iter().enumerate() {
        for (curve, points) in ["train", "val"].into_iter().zip(accuracy_curves(run)) {
            let Some(style) = series
                .iter()
                .find(|s| s.run == r && s.curve == curve)
                .map(|s| s.style)
            else {
                continue;
            };
            // A run evaluated once is a marker alone; markers at different phases keep
            // coinciding accuracies apart.
            draw_series(chart.plotting_area(), &points, style, i)?;
            i += 1;
        }
    }
    Ok(())
}

fn draw_scales(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &TrainReport,
    series: &[Series],
) -> std::result::Result<(), String> {
    // Each scaled run in the style of its first curve.
    let scales: Vec<(SeriesStyle, Vec<(f64, f64)>)> = report
        .runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.steps.iter().any(|s| s.loss_scale != 1.0))
        .filter_map(|(i, r)| {
            let style = series.iter().find(|s| s.run == i)?.style;
            let points = r
                .steps
                .iter()
                .filter(|s| s.loss_scale > 0.0 && s.loss_scale.is_finite())
                .map(|s| (s.step as f64, s.loss_scale.log2()))
                .collect();
            Some((style, points))
        })
        .collect();
    let all: Vec<(&[(f64, f64)], bool)> = scales.iter().map(|(_, p)| (&p[..], false)).collect();
    let (lo, hi) = robust_range(&all).unwrap_or((0.0, 1.0));
    let x = Axis {
        range: (1.0, last_step(report)),
        title: "step",
        counts: true,
    };
    let y = Axis {
        range: (lo - 1.0, hi + 1.0),
        title: "log2 loss scale",
        counts: true,
    };
    let chart = chart(area, "loss scale (a skipped step halves it)", x, y, true)?;
    for (i, (style, points)) in scales.iter().enumerate() {
        draw_series(chart.plotting_area(), points, *style, i)?;
    }
    Ok(())
}

/// The colours of a heat map that are not on its scale.
const SKIPPED: RGBColor = RGBColor(190, 190, 190);
const UNCHANGED: RGBColor = RGBColor(0, 0, 0);
const NOT_FINITE: RGBColor = RGBColor(230, 0, 230);
/// Shades of the colour scale: cells of one shade side by side are drawn as one rectangle.
const SHADES: f64 = 48.0;
/// Pixels of the column beside the heat maps that holds the colour bar and its key.
const HEAT_PLOTS_WIDTH: u32 = 820;

/// One panel per run: layer (rows, layer 1 at the bottom) by step (columns), coloured by
/// log10 ‖ΔW‖/‖W‖ on one scale for all runs, with a colour bar and the special colours'
/// meaning beside them.
pub fn update_heat_map(report: &TrainReport, path: &Path) -> Result<()> {
    let mut text = String::new();
    {
        let key = heat_key(report);
        let (key_w, key_h) = key.size();
        let heights: Vec<u32> = report.runs.iter().map(panel_height).collect();
        let total: u32 = heights.iter().sum::<u32>().max(key_h + 340);
        let size = (HEAT_PLOTS_WIDTH + key_w.max(200) + 16, total);
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let (plots, side) = root.split_horizontally(HEAT_PLOTS_WIDTH);
        let range = heat_range(report);
        let mut rest = plots;
        for (run, h) in report.runs.iter().zip(&heights) {
            let (panel, below) = rest.split_vertically(*h);
            draw_heat_map(&panel, run, range, last_step(report))
                .map_err(|e| plot_error(path, e))?;
            rest = below;
        }
        let (bar, below) = side.split_vertically(320);
        draw_colour_bar(&bar, range, "log10 ‖ΔW‖/‖W‖", ramp).map_err(|e| plot_error(path, e))?;
        key.draw(&below.margin(8, 0, 8, 0))
            .map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
}

/// Pixels of one run's panel: about 12 per layer, within reason.
fn panel_height(run: &TrainRun) -> u32 {
    90 + (12 * run.config.network.depth as u32).clamp(60, 240)
}

/// The share of the cells at each end of the colour scale that may lie beyond it.
const COLOUR_TAIL: f64 = 0.02;

/// The colour scale: log10 ‖ΔW‖/‖W‖ over the applied steps of the runs that did not
/// diverge (of every run where all did), from its 2% to its 98% quantile: one run that
/// stalls at 10^-12 must not wash out the differences between all the others.
fn heat_range(report: &TrainReport) -> (f64, f64) {
    let logs = |keep: &dyn Fn(&TrainRun) -> bool| -> Vec<f64> {
        report
            .runs
            .iter()
            .filter(|r| keep(r))
            .flat_map(|r| r.steps.iter().filter(|s| !s.skipped))
            .flat_map(|s| s.layers.iter().map(|l| l.update_ratio))
            .filter(|v| *v > 0.0 && v.is_finite())
            .map(f64::log10)
            .collect()
    };
    let mut values = logs(&|r| r.summary.diverged_at.is_none());
    if values.is_empty() {
        values = logs(&|_| true);
    }
    match quantile_range(&values, COLOUR_TAIL) {
        Some((lo, hi)) if hi > lo => (lo, hi),
        Some((v, _)) => (v - 1.0, v + 1.0),
        None => (-8.0, 0.0),
    }
}

/// What the colours off the scale mean.
fn heat_key(report: &TrainReport) -> Legend {
    let mut key = Legend {
        heading: Some("colours:".to_string()),
        ..Legend::default()
    };
    key.push(
        Swatch::Fill(ramp(0.0)),
        "at or below the bottom of the scale",
    );
    key.push(Swatch::Fill(ramp(1.0)), "at or above its top");
    key.push(
        Swatch::Fill(UNCHANGED),
        "ΔW = 0: a zero gradient, or updates that round away",
    );
    key.push(Swatch::Fill(SKIPPED), "step skipped (inf/NaN gradient)");
    key.push(Swatch::Fill(NOT_FINITE), "‖ΔW‖/‖W‖ inf or NaN");
    if report.runs.iter().any(|r| r.summary.diverged_at.is_some()) {
        key.push(Swatch::Fill(WHITE), "no step: the run had diverged");
    }
    key
}

/// The colour of a cell: on the scale (clamped to its ends), or one of the special colours.
fn cell_colour(skipped: bool, ratio: f64, (lo, hi): (f64, f64)) -> RGBColor {
    if skipped {
        SKIPPED
    } else if !ratio.is_finite() {
        NOT_FINITE
    } else if ratio <= 0.0 {
        UNCHANGED
    } else {
        let f = ((ratio.log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
        ramp((f * SHADES).round() / SHADES)
    }
}

fn draw_heat_map(
    panel: &DrawingArea<SVGBackend<'_>, Shift>,
    run: &TrainRun,
    range: (f64, f64),
    steps: f64,
) -> std::result::Result<(), String> {
    let depth = run.config.network.depth as f64;
    let caption = match run.summary.diverged_at {
        Some(d) => format!(
            "{} (diverged at step {d}; its colours clamp to the scale)",
            run.label
        ),
        None => run.label.clone(),
    };
    let x = Axis {
        range: (0.5, steps + 0.5),
        title: "step",
        counts: true,
    };
    let y = Axis {
        range: (0.5, depth + 0.5),
        title: "layer",
        counts: true,
    };
    let chart = chart(panel, &caption, x, y, false)?;
    // A row of cells of one colour is one rectangle, which keeps the file small.
    let mut cells: Vec<([(f64, f64); 2], RGBColor)> = Vec::new();
    let layers = run.steps.first().map_or(0, |s| s.layers.len());
    for layer in 0..layers {
        let mut row: Option<(f64, f64, RGBColor)> = None;
        for s in &run.steps {
            let Some(l) = s.layers.get(layer) else {
                continue;
            };
            let colour = cell_colour(s.skipped, l.update_ratio, range);
            let x = s.step as f64;
            let y = l.layer as f64;
            row = match row {
                Some((from, to, c)) if c == colour && to + 1.0 == x => Some((from, x, c)),
                Some((from, to, c)) => {
                    cells.push(([(from - 0.5, y - 0.5), (to + 0.5, y + 0.5)], c));
                    Some((x, x, colour))
                }
                None => Some((x, x, colour)),
            };
        }
        if let Some((from, to, c)) = row {
            let y = run.steps[0].layers[layer].layer as f64;
            cells.push(([(from - 0.5, y - 0.5), (to + 0.5, y + 0.5)], c));
        }
    }
    // In pixels, each cell a pixel wider and taller than its place: a viewer that scales the
    // figure would otherwise show hairline seams of background between neighbouring cells.
    let area = chart.plotting_area();
    let base = area.get_base_pixel();
    let pixels = area.strip_coord_spec();
    for ([a, b], colour) in cells {
        let (p, q) = (chart.backend_coord(&a), chart.backend_coord(&b));
        let corner = |(x, y): (i32, i32)| (x - base.0, y - base.1);
        let (p, q) = (corner(p), corner(q));
        let rect = [
            (p.0.min(q.0), p.1.min(q.1)),
            (p.0.max(q.0) + 1, p.1.max(q.1) + 1),
        ];
        pixels
            .draw(&Rectangle::new(rect, colour.filled()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
