//! The SVG plot of a run: log10 of the second moment (the variance of a zero-mean quantity)
//! against depth, forward (pre-activations) and backward (gradients), one line per run and a
//! dashed theory curve per variant, with the band where the root mean square lies in f16's
//! normal range shaded. Text is written as SVG text
//! (plotters without font files), so no system fonts are needed.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::run::RunReport;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::network::{LayerRecord, RunRecord};
use crate::precision::{F16_MAX, F16_MIN_NORMAL};

pub(super) const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

pub(super) fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: format!("cannot draw the plot: {e}"),
        source: None,
    }
}

/// What a panel plots from each layer.
type Pick = fn(&LayerRecord) -> MeasuredAndTheory;

/// Where a run's line ends because its tensors stopped being finite.
type Onset = fn(&RunRecord) -> Option<usize>;

/// Writes the plot of `report` to `path`, whole or not at all.
pub fn svg(report: &RunReport, path: &Path) -> Result<()> {
    let mut text = String::new();
    render(report, path, &mut text)?;
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
}

/// The plot of `report` as SVG text (`path` only names it in errors).
fn render(report: &RunReport, path: &Path, text: &mut String) -> Result<()> {
    let root = SVGBackend::with_string(text, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let panels = root.split_evenly((1, 2));
    let depth = report
        .runs
        .iter()
        .map(|r| r.config.depth)
        .max()
        .unwrap_or(1) as f64;
    let quantities: [(&str, Pick, Onset); 2] = [
        (
            "forward: log10 E[z²] (pre-activation)",
            |l| {
                (
                    all_finite_second_moment(&l.pre_activation),
                    l.theory.pre_activation_second_moment,
                )
            },
            |r| r.summary.first_nonfinite_forward,
        ),
        (
            "backward: log10 E[(∂l/∂h)²]",
            |l| {
                (
                    all_finite_second_moment(&l.grad_activation),
                    Some(l.theory.grad_second_moment),
                )
            },
            |r| r.summary.first_nonfinite_backward,
        ),
    ];
    let formats = storage_formats(report);
    for (panel, (title, pick, onset)) in panels.iter().zip(quantities) {
        let points = series(report, pick);
        let ends = overflow_markers(report, &points, onset);
        draw_panel(
            panel,
            title,
            points,
            ends,
            &formats,
            depth,
            report.runs.len(),
        )
        .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))
}

/// One measured line per run and one dashed theory line per variant: (layer, log10 value) of
/// the positive, finite values `pick` finds.
fn series(report: &RunReport, pick: Pick) -> Vec<Series> {
    let mut points: Vec<Series> = Vec::new();
    let mut variants: Vec<&str> = Vec::new();
    for (i, run) in report.runs.iter().enumerate() {
        let curve = |which: fn(MeasuredAndTheory) -> Option<f64>| -> Vec<(f64, f64)> {
            run.record
                .layers
                .iter()
                .filter_map(|l| {
                    which(pick(l))
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .map(|v| (l.layer as f64, v.log10()))
                })
                .collect()
        };
        let label = format!("{} {}", run.variant, run.record.precision);
        points.push((label, curve(|(measured, _)| measured), false, i));
        if !variants.contains(&run.variant.as_str()) {
            variants.push(&run.variant);
            let label = format!("{} theory", run.variant);
            points.push((label, curve(|(_, theory)| theory), true, i));
        }
    }
    points
}

/// The storage formats of the runs other than f16 (whose band is drawn), each once.
fn storage_formats(report: &RunReport) -> Vec<Format> {
    let mut formats = Vec::new();
    for run in &report.runs {
        let f = run.record.storage;
        if f != Format::F16 && !formats.contains(&f) {
            formats.push(f);
        }
    }
    formats
}

/// A cross where a run's line ends, at its last finite layer, with what happened next.
struct Marker {
    at: (f64, f64),
    label: String,
    colour_index: usize,
}

/// One marker per run whose tensors stopped being finite in this panel.
fn overflow_markers(report: &RunReport, points: &[Series], onset: Onset) -> Vec<Marker> {
    let mut markers = Vec::new();
    for (i, run) in report.runs.iter().enumerate() {
        let Some(t) = onset(&run.record) else {
            continue;
        };
        let label = format!("{} {}", run.variant, run.record.precision);
        let line = points.iter().find(|p| p.0 == label && !p.2);
        let Some(&last) = line.and_then(|p| p.1.last()) else {
            continue;
        };
        let format = run.record.storage.name();
        // Runs that end at the same layer, within a tenth of a decade, share one cross and
        // one label.
        let same = |m: &&mut Marker| m.at.0 == last.0 && (m.at.1 - last.1).abs() < 0.1;
        match markers.iter_mut().find(same) {
            Some(m) => m.label = m.label.replace(" inf at", &format!(", {format} inf at")),
            None => markers.push(Marker {
                at: last,
                label: format!("{format} inf at layer {t}"),
                colour_index: i,
            }),
        }
    }
    markers
}

/// Text at `(x, y)` that stays inside a chart `width` wide: left of x in its right part.
fn text_x(x: f64, label: &str, width: f64) -> f64 {
    if x > 0.6 * width {
        // About 0.014 of the width per character at this size.
        x - width * (0.02 + 0.0135 * label.chars().count() as f64)
    } else {
        x + width * 0.015
    }
}

/// One panel: axes, the f16 band and the overflow lines of the other formats, every series,
/// where each line ends, and the legend in the emptiest corner.
fn draw_panel(
    panel: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    points: Vec<Series>,
    ends: Vec<Marker>,
    formats: &[Format],
    depth: f64,
    runs: usize,
) -> std::result::Result<(), String> {
    let all = points.iter().flat_map(|p| p.1.iter().map(|q| q.1));
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo - 1.0, hi + 1.0)
    } else {
        (-10.0, 10.0)
    };
    let mut chart = ChartBuilder::on(panel)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..depth, lo..hi)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("layer")
        .y_desc("log10 second moment")
        .draw()
        .map_err(text)?;
    // E[x²] in [min_normal², max²] ⇔ the root mean square lies in f16's normal range.
    let band = (2.0 * F16_MIN_NORMAL.log10()).max(lo)..(2.0 * F16_MAX.log10()).min(hi);
    if band.start < band.end {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, band.start), (depth, band.end)],
                RGBColor(255, 230, 150).mix(0.35).filled(),
            )))
            .map_err(text)?
            .label("rms within f16's normal range")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 16, y + 5)],
                    RGBColor(255, 230, 150).filled(),
                )
            });
    }
    // E[x²] = max²: where the root mean square reaches a format's largest finite, so that
    // the largest values have long overflowed.
    let mut lines: Vec<(f64, Vec<&str>)> = Vec::new();
    for &format in formats {
        let y = 2.0 * format.spec().max_finite().log10();
        // f32 and bf16 end within 0.2% of each other: one line for both.
        match lines.iter_mut().find(|(at, _)| (at - y).abs() < 0.05) {
            Some((_, names)) => names.push(format.name()),
            None => lines.push((y, vec![format.name()])),
        }
    }
    for (y, names) in lines {
        let label = format!("rms = the largest finite {}", names.join(" and "));
        if y > lo && y < hi {
            let grey = RGBColor(120, 120, 120);
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, y), (depth, y)],
                    3,
                    3,
                    grey.stroke_width(1),
                ))
                .map_err(text)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (text_x(depth, &label, depth), y + (hi - lo) * 0.035),
                    ("sans-serif", 11).into_font().color(&grey),
                )))
                .map_err(text)?;
        }
    }
    let corner = emptiest_corner(&points, (0.0, depth), (lo, hi));
    for (label, series, dashed, colour_index) in points {
        let colour = COLOURS[colour_index % COLOURS.len()];
        // Earlier runs are drawn wider, so a later run that agrees exactly stays visible
        // inside it instead of hiding it.
        let width = 1 + 2 * (runs - colour_index.min(runs - 1)) as u32;
        let style = if dashed {
            colour.mix(0.6).stroke_width(1)
        } else {
            colour.stroke_width(width)
        };
        let drawn = if dashed {
            chart.draw_series(DashedLineSeries::new(series, 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(series, style))
        };
        drawn
            .map_err(text)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    for m in ends {
        let colour = COLOURS[m.colour_index % COLOURS.len()];
        chart
            .draw_series(std::iter::once(Cross::new(m.at, 7, colour.stroke_width(3))))
            .map_err(text)?;
        chart
            .draw_series(std::iter::once(Text::new(
                m.label.clone(),
                (text_x(m.at.0, &m.label, depth), m.at.1 - (hi - lo) * 0.02),
                ("sans-serif", 12).into_font().color(&colour),
            )))
            .map_err(text)?;
    }
    draw_legend(&mut chart, corner)
}

/// The legend of every labelled series, boxed, at `position`.
pub(super) fn draw_legend<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(text)
}

pub(super) fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

type Series = (String, Vec<(f64, f64)>, bool, usize);

/// What a panel picks from a layer: the measured value and the theory's, where there are any.
type MeasuredAndTheory = (Option<f64>, Option<f64>);

/// The corner of the chart whose quarter holds the fewest points, for the legend.
fn emptiest_corner(
    points: &[Series],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let (xm, ym) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let mut counts = [0usize; 4];
    for (x, y) in points.iter().flat_map(|p| p.1.iter()) {
        counts[(*x >= xm) as usize + 2 * (*y < ym) as usize] += 1;
    }
    let corners = [
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::LowerLeft,
        SeriesLabelPosition::LowerRight,
    ];
    let best = (0..4)
        .min_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .unwrap_or(3);
    corners[best].clone()
}

/// E[x²] of a tensor whose values are all finite; a line ends where inf or NaN appear.
fn all_finite_second_moment(r: &Option<crate::stats::StatsRecord>) -> Option<f64> {
    r.as_ref()
        .filter(|s| s.finite() == s.count)
        .map(|s| s.second_moment())
}
