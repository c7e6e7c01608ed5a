//! The SVG plot of a run: log10 of the second moment (the variance of a zero-mean quantity)
//! against depth, forward (pre-activations) and backward (gradients), one line per run and a
//! black theory curve per variant drawn over them, with the band where the root mean square
//! lies in f16's normal range shaded. Where a run's tensors first hold inf, a subnormal value
//! or (backward) nothing but zeros, its line carries a marker that the legend explains. Text
//! is written as SVG text (plotters without font files), so no system fonts are needed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::padded;
use super::frame::{chart, Axis, Chart};
use super::legend::{Legend, Swatch};
use super::run::RunReport;
use super::style::{
    draw_line, draw_marker, marker_points, series_style, spread_coinciding, Dash, Marker,
};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::network::{LayerRecord, RunRecord};
use crate::precision::{F16_MAX, F16_MIN_NORMAL};

pub(super) fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: format!("cannot draw the plot: {e}"),
        source: None,
    }
}

/// Pixels of one panel.
const PANEL: (u32, u32) = (540, 460);
/// The shaded band of f16's normal range.
const BAND: RGBColor = RGBColor(255, 222, 130);
const GREY: RGBColor = RGBColor(110, 110, 110);
/// Markers per measured line (besides its onsets).
const MARKERS_PER_LINE: usize = 8;

/// What a panel plots from each layer: the measured value and the theory's, where any.
type Pick = fn(&LayerRecord) -> (Option<f64>, Option<f64>);

/// The two panels: what each plots, and which way its onsets count.
struct Quantity {
    title: &'static str,
    pick: Pick,
    /// "forward" or "backward", for the legend.
    pass: &'static str,
    /// The onsets of a run in this pass, each with the layer it names.
    onsets: fn(&RunRecord) -> Vec<(Onset, usize)>,
}

/// What first went wrong at a layer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Onset {
    /// A value turned inf or NaN there; the line ends at the last finite layer before it.
    NonFinite,
    /// The first subnormal value.
    Subnormal,
    /// Every gradient value is zero there (and the line, a log, ends above it).
    AllZero,
}

impl Onset {
    fn marker(self) -> Marker {
        match self {
            Onset::NonFinite => Marker::Cross,
            Onset::Subnormal => Marker::InvertedTriangle,
            Onset::AllZero => Marker::Square,
        }
    }

    fn describe(self, layer: usize, pass: &str) -> String {
        match self {
            Onset::NonFinite => format!("inf/NaN from layer {layer} ({pass})"),
            Onset::Subnormal => format!("first subnormal at layer {layer} ({pass})"),
            Onset::AllZero => format!("gradient all zero from layer {layer} down"),
        }
    }
}

const QUANTITIES: [Quantity; 2] = [
    Quantity {
        title: "forward: log10 E[z²] (pre-activation)",
        pick: |l| {
            (
                all_finite_second_moment(&l.pre_activation),
                l.theory.pre_activation_second_moment,
            )
        },
        pass: "forward",
        onsets: |r| plotted_onsets(r, |l| &l.pre_activation, false),
    },
    Quantity {
        title: "backward: log10 E[(∂l/∂h)²]",
        pick: |l| {
            (
                all_finite_second_moment(&l.grad_activation),
                Some(l.theory.grad_second_moment),
            )
        },
        pass: "backward",
        onsets: |r| plotted_onsets(r, |l| &l.grad_activation, true),
    },
];

/// The onsets of the tensor a panel plots (z forward, ∂l/∂h backward), each at the first
/// layer in the pass's direction where it happens. The run's summary counts the activation
/// and the weight gradient too; a marker on a line must be about that line.
fn plotted_onsets(
    r: &RunRecord,
    tensor: fn(&LayerRecord) -> &Option<crate::stats::StatsRecord>,
    backward: bool,
) -> Vec<(Onset, usize)> {
    let first = |crossed: &dyn Fn(&crate::stats::StatsRecord) -> bool| {
        let hit = |l: &&LayerRecord| tensor(l).as_ref().is_some_and(crossed);
        let layer = if backward {
            r.layers.iter().rev().find(hit)
        } else {
            r.layers.iter().find(hit)
        };
        layer.map(|l| l.layer)
    };
    let mut onsets = vec![
        (Onset::Subnormal, first(&|s| s.subnormal > 0)),
        (
            Onset::NonFinite,
            first(&|s| s.nan + s.pos_inf + s.neg_inf > 0),
        ),
    ];
    if backward {
        onsets.insert(1, (Onset::AllZero, first(&|s| s.zero == s.count)));
    }
    onsets
        .into_iter()
        .filter_map(|(o, t)| t.map(|t| (o, t)))
        .collect()
}

/// A line of a panel: a run's measurement, or a variant's theory.
struct Line {
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    dash: Dash,
    /// The series' marker shape and index (which sets the markers' phase); none for theory.
    marker: Option<(Marker, usize)>,
}

/// An onset's marker on a run's line.
struct OnsetMark {
    at: (f64, f64),
    onset: Onset,
    colour: RGBColor,
}

/// Writes the plot of `report` to `path`, whole or not at all.
pub fn svg(report: &RunReport, path: &Path) -> Result<()> {
    let mut text = String::new();
    render(report, path, &mut text)?;
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
}

/// The theory's style for the `v`-th variant: black, over every measured line.
fn theory_dash(v: usize) -> Dash {
    [Dash::Dashed, Dash::DashDot, Dash::Dotted][v % 3]
}

/// The plot of `report` as SVG text (`path` only names it in errors).
fn render(report: &RunReport, path: &Path, text: &mut String) -> Result<()> {
    let depth = report
        .runs
        .iter()
        .map(|r| r.config.depth)
        .max()
        .unwrap_or(1) as f64;
    let variants = variants(report);
    let formats = storage_formats(report);
    let panels: Vec<(Vec<Line>, Vec<OnsetMark>)> = QUANTITIES
        .iter()
        .map(|q| lines_and_onsets(report, q, &variants))
        .collect();
    let ranges: Vec<(f64, f64)> = panels.iter().map(|(lines, _)| panel_range(lines)).collect();
    let legend = legend(report, &variants, &formats, &ranges);
    let (legend_w, legend_h) = legend.size();
    let size = (2 * PANEL.0 + legend_w, PANEL.1.max(legend_h + 16));
    let root = SVGBackend::with_string(text, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (plots, key) = root.split_horizontally(2 * PANEL.0);
    let areas = plots.split_evenly((1, 2));
    for ((q, (lines, onsets)), area) in QUANTITIES.iter().zip(panels).zip(areas.iter()) {
        draw_panel(area, q.title, &lines, &onsets, &formats, depth)
            .map_err(|e| plot_error(path, e))?;
    }
    legend
        .draw(&key.margin(20, 0, 0, 0))
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Each variant once, in the order of its first run.
fn variants(report: &RunReport) -> Vec<&str> {
    let mut variants: Vec<&str> = Vec::new();
    for run in &report.runs {
        if !variants.contains(&run.variant.as_str()) {
            variants.push(&run.variant);
        }
    }
    variants
}

/// (layer, log10 value) of the positive, finite values `which` picks.
fn curve(record: &RunRecord, pick: Pick, theory: bool) -> Vec<(f64, f64)> {
    record
        .layers
        .iter()
        .filter_map(|l| {
            let (measured, predicted) = pick(l);
            if theory { predicted } else { measured }
                .filter(|v| v.is_finite() && *v > 0.0)
                .map(|v| (l.layer as f64, v.log10()))
        })
        .collect()
}

/// The lines of one panel (the runs' measurements, then each variant's theory, drawn last)
/// and where each run's onsets sit on its line.
fn lines_and_onsets(
    report: &RunReport,
    q: &Quantity,
    variants: &[&str],
) -> (Vec<Line>, Vec<OnsetMark>) {
    let mut lines = Vec::new();
    let mut marks = Vec::new();
    for (i, run) in report.runs.iter().enumerate() {
        let style = series_style(i);
        let points = curve(&run.record, q.pick, false);
        for (onset, t) in (q.onsets)(&run.record) {
            if let Some(at) = onset_point(&points, onset, t, q.pass == "backward") {
                marks.push(OnsetMark {
                    at,
                    onset,
                    colour: style.colour,
                });
            }
        }
        lines.push(Line {
            points,
            colour: style.colour,
            dash: style.dash,
            marker: Some((style.marker, i)),
        });
    }
    for (v, variant) in variants.iter().enumerate() {
        let Some(run) = report.runs.iter().find(|r| r.variant == *variant) else {
            continue;
        };
        lines.push(Line {
            points: curve(&run.record, q.pick, true),
            colour: BLACK,
            dash: theory_dash(v),
            marker: None,
        });
    }
    (lines, marks)
}

/// The point of a line where an onset at layer `t` shows: the layer itself for a subnormal
/// (still finite and positive), else the last layer drawn before it in the pass's direction
/// (below `t` forward, above it backward), where the line ends.
fn onset_point(
    points: &[(f64, f64)],
    onset: Onset,
    t: usize,
    backward: bool,
) -> Option<(f64, f64)> {
    let t = t as f64;
    let at_or_before = |p: &&(f64, f64)| {
        if onset == Onset::Subnormal {
            if backward {
                p.0 >= t
            } else {
                p.0 <= t
            }
        } else if backward {
            p.0 > t
        } else {
            p.0 < t
        }
    };
    let candidates = points.iter().filter(at_or_before);
    if backward {
        candidates.min_by(|a, b| a.0.total_cmp(&b.0)).copied()
    } else {
        candidates.max_by(|a, b| a.0.total_cmp(&b.0)).copied()
    }
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

/// The dashed grey lines where the root mean square reaches each format's largest finite
/// (E[x²] = max²), one line for formats within 0.05 decades of each other (f32 and bf16).
fn format_lines(formats: &[Format]) -> Vec<(f64, Vec<&'static str>)> {
    let mut lines: Vec<(f64, Vec<&str>)> = Vec::new();
    for &format in formats {
        let y = 2.0 * format.spec().max_finite().log10();
        match lines.iter_mut().find(|(at, _)| (at - y).abs() < 0.05) {
            Some((_, names)) => names.push(format.name()),
            None => lines.push((y, vec![format.name()])),
        }
    }
    lines
}

/// The figure's legend: every run, each theory, every onset, and the band and format lines
/// where a panel (of `ranges`) shows them.
fn legend(
    report: &RunReport,
    variants: &[&str],
    formats: &[Format],
    ranges: &[(f64, f64)],
) -> Legend {
    let shown = |y: f64| ranges.iter().any(|&(lo, hi)| y > lo && y < hi);
    let mut legend = Legend::default();
    let label =
        |run: &crate::experiment::VariantRun| format!("{} {}", run.variant, run.record.precision);
    for (i, run) in report.runs.iter().enumerate() {
        let s = series_style(i);
        legend.push(
            Swatch::Line {
                colour: s.colour,
                dash: s.dash,
                width: 2,
                marker: Some(s.marker),
            },
            label(run),
        );
    }
    for (v, variant) in variants.iter().enumerate() {
        legend.push(
            Swatch::Line {
                colour: BLACK,
                dash: theory_dash(v),
                width: 2,
                marker: None,
            },
            format!("{variant} theory"),
        );
    }
    let (band_lo, band_hi) = band_range();
    if ranges.iter().any(|&(lo, hi)| band_lo < hi && band_hi > lo) {
        legend.push(Swatch::Fill(BAND), "rms within f16's normal range");
    }
    for (y, names) in format_lines(formats) {
        if !shown(y) {
            continue;
        }
        legend.push(
            Swatch::Line {
                colour: GREY,
                dash: Dash::Dashed,
                width: 1,
                marker: None,
            },
            format!("rms = largest finite {}", names.join(", ")),
        );
    }
    for q in &QUANTITIES {
        for (i, run) in report.runs.iter().enumerate() {
            for (onset, t) in (q.onsets)(&run.record) {
                legend.push(
                    Swatch::Marker {
                        marker: onset.marker(),
                        colour: series_style(i).colour,
                        filled: true,
                    },
                    format!("{}: {}", label(run), onset.describe(t, q.pass)),
                );
            }
        }
    }
    let non_finite = QUANTITIES.iter().any(|q| {
        report.runs.iter().any(|r| {
            (q.onsets)(&r.record)
                .iter()
                .any(|(o, _)| *o == Onset::NonFinite)
        })
    });
    if non_finite {
        legend.push(
            Swatch::Marker {
                marker: Marker::Cross,
                colour: GREY,
                filled: true,
            },
            "× sits on the last finite layer before the inf/NaN",
        );
    }
    legend
}

/// The fewest decades of E[x²] a panel spans: over less, the random walk of a finite-width
/// network (a few tenths of a decade) would fill the panel and read as a trend.
const MIN_DECADES: f64 = 3.0;
/// An edge of f16's normal range this close (in decades) outside a panel's data is brought
/// into view: whether the data near it cross it is the finding.
const NEAR_EDGE: f64 = 1.5;

/// The y-range of a panel: its lines', at least `MIN_DECADES` wide, reaching to an f16 edge
/// within `NEAR_EDGE` of them, padded.
fn panel_range(lines: &[Line]) -> (f64, f64) {
    let all: Vec<(&[(f64, f64)], bool)> = lines.iter().map(|l| (&l.points[..], false)).collect();
    let Some((mut lo, mut hi)) = super::axes::robust_range(&all) else {
        return (-10.0, 10.0);
    };
    let (band_lo, band_hi) = band_range();
    for edge in [band_lo, band_hi] {
        if edge < lo && lo - edge <= NEAR_EDGE {
            lo = edge;
        }
        if edge > hi && edge - hi <= NEAR_EDGE {
            hi = edge;
        }
    }
    let short = MIN_DECADES - (hi - lo);
    if short > 0.0 {
        (lo, hi) = (lo - short / 2.0, hi + short / 2.0);
    }
    padded((lo, hi), 0.05)
}

/// The f16 band's y-range: E[x²] in [min_normal², max²] ⇔ the root mean square lies in
/// f16's normal range.
fn band_range() -> (f64, f64) {
    (2.0 * F16_MIN_NORMAL.log10(), 2.0 * F16_MAX.log10())
}

/// One panel: axes, the f16 band and the overflow lines of the other formats, every
/// measured line with its markers, the theory over them, and the onsets on top.
fn draw_panel(
    panel: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    lines: &[Line],
    onsets: &[OnsetMark],
    formats: &[Format],
    depth: f64,
) -> std::result::Result<(), String> {
    let (lo, hi) = panel_range(lines);
    let x = Axis {
        range: (0.0, depth),
        title: "layer",
        counts: true,
    };
    let y = Axis {
        range: (lo, hi),
        title: "log10 second moment",
        counts: false,
    };
    let chart = chart(panel, title, x, y, true)?;
    let area = chart.plotting_area();
    let band = band_range().0.max(lo)..band_range().1.min(hi);
    if band.start < band.end {
        area.draw(&Rectangle::new(
            [(0.0, band.start), (depth, band.end)],
            BAND.mix(0.35).filled(),
        ))
        .map_err(|e| e.to_string())?;
    }
    for (y, _) in format_lines(formats) {
        if y > lo && y < hi {
            draw_line(area, vec![(0.0, y), (depth, y)], GREY, Dash::Dashed, 1)?;
        }
    }
    draw_lines(&chart, lines)?;
    let at: Vec<(f64, f64)> = onsets.iter().map(|m| m.at).collect();
    for (m, at) in onsets
        .iter()
        .zip(spread_coinciding(&at, (0.0, depth), (lo, hi)))
    {
        draw_marker(area, at, m.onset.marker(), m.colour, 6, true)?;
    }
    Ok(())
}

/// The measured lines with their markers, then the theory lines over them.
fn draw_lines(chart: &Chart<'_, '_>, lines: &[Line]) -> std::result::Result<(), String> {
    let area = chart.plotting_area();
    // Measured lines a pixel wider than the theory's, so that they show on both sides of it.
    for l in lines.iter().filter(|l| l.marker.is_some()) {
        draw_line(area, l.points.clone(), l.colour, l.dash, 3)?;
    }
    for l in lines {
        if let Some((marker, i)) = l.marker {
            for p in marker_points(&l.points, i, MARKERS_PER_LINE) {
                draw_marker(area, p, marker, l.colour, 3, false)?;
            }
        }
    }
    for l in lines.iter().filter(|l| l.marker.is_none()) {
        draw_line(area, l.points.clone(), l.colour, l.dash, 2)?;
    }
    Ok(())
}

/// E[x²] of a tensor whose values are all finite; a line ends where inf or NaN appear.
fn all_finite_second_moment(r: &Option<crate::stats::StatsRecord>) -> Option<f64> {
    r.as_ref()
        .filter(|s| s.finite() == s.count)
        .map(|s| s.second_moment())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ys: &[f64]) -> Line {
        Line {
            points: ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
            colour: BLACK,
            dash: Dash::Solid,
            marker: None,
        }
    }

    #[test]
    fn a_flat_panel_spans_at_least_its_minimum_and_a_near_f16_edge_comes_into_view() {
        // Data within 0.7 decades of each other, far from any f16 edge: centred, 3 decades.
        let (lo, hi) = panel_range(&[line(&[0.3, -0.4, 0.1])]);
        assert!(hi - lo >= MIN_DECADES, "{lo}..{hi}");
        assert!(((lo + hi) / 2.0 + 0.05).abs() < 1e-9);
        // f16's smallest normal squared (10^-8.43) a decade below the data: reached.
        let edge = band_range().0;
        let (lo, _) = panel_range(&[line(&[edge + 1.0, edge + 2.0, edge + 4.5])]);
        assert!(lo <= edge, "{lo} does not reach {edge}");
        // Two decades below: left out (the data decide the range).
        let (lo, _) = panel_range(&[line(&[edge + 2.0, edge + 6.0])]);
        assert!(lo > edge, "{lo}");
    }
}
