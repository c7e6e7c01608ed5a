//! The SVG plots of `gradstab train`: the loss curves of every run (log10 loss against step),
//! and one heat map per run of log10 ‖ΔW‖/‖W‖ by layer and step, which shows at a glance which
//! layers learn and when.

use std::path::Path;

use plotters::prelude::*;

use super::plot::{draw_legend, plot_error, text, COLOURS};
use crate::error::Result;
use crate::train::{TrainReport, TrainRun};

/// log10 of the loss against the step, one line per run; a line ends where the loss turns
/// inf or NaN (the run diverged there). Where a run scales its loss, a second panel shows
/// log2 of each scaled run's loss scale, step by step.
pub fn loss_curves(report: &TrainReport, path: &Path) -> Result<()> {
    let mut text = String::new();
    {
        let scaled = report
            .runs
            .iter()
            .any(|r| r.steps.iter().any(|s| s.loss_scale != 1.0));
        let height = if scaled { 820 } else { 520 };
        let root = SVGBackend::with_string(&mut text, (900, height)).into_drawing_area();
        if scaled {
            let (top, bottom) = root.split_vertically(520);
            draw_losses(&top, report).map_err(|e| plot_error(path, e))?;
            draw_scales(&bottom, report).map_err(|e| plot_error(path, e))?;
        } else {
            draw_losses(&root, report).map_err(|e| plot_error(path, e))?;
        }
        root.present().map_err(|e| plot_error(path, e))?;
    }
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
}

fn series(run: &TrainRun) -> Vec<(f64, f64)> {
    run.steps
        .iter()
        .take_while(|s| s.loss.is_finite())
        .filter(|s| s.loss > 0.0)
        .map(|s| (s.step as f64, s.loss.log10()))
        .collect()
}

fn draw_losses(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &TrainReport,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(text)?;
    let all: Vec<Vec<(f64, f64)>> = report.runs.iter().map(series).collect();
    let steps = report
        .runs
        .iter()
        .map(|r| r.config.steps)
        .max()
        .unwrap_or(1) as f64;
    let (lo, hi) = all
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let (lo, hi) = if lo.is_finite() {
        (lo - 0.2, hi + 0.2)
    } else {
        (-1.0, 1.0)
    };
    let title = match &report.preset {
        Some(p) => format!("{p}: log10 loss"),
        None => "log10 loss".to_string(),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..steps.max(2.0), lo..hi)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("log10 loss")
        .draw()
        .map_err(text)?;
    for (i, (run, points)) in report.runs.iter().zip(all).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = colour.stroke_width(2);
        let label = match run.summary.diverged_at {
            Some(d) => format!("{} (diverged at step {d})", run.label),
            None => run.label.clone(),
        };
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(text)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn draw_scales(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &TrainReport,
) -> std::result::Result<(), String> {
    area.fill(&WHITE).map_err(text)?;
    let series: Vec<(usize, Vec<(f64, f64)>)> = report
        .runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.steps.iter().any(|s| s.loss_scale != 1.0))
        .map(|(i, r)| {
            let points = r
                .steps
                .iter()
                .filter(|s| s.loss_scale > 0.0)
                .map(|s| (s.step as f64, s.loss_scale.log2()))
                .collect();
            (i, points)
        })
        .collect();
    let (lo, hi) = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let steps = report
        .runs
        .iter()
        .map(|r| r.config.steps)
        .max()
        .unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "log2 loss scale (skipped steps back it off)",
            ("sans-serif", 14),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..steps.max(2.0), (lo - 1.0)..(hi + 1.0))
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("log2 scale")
        .draw()
        .map_err(text)?;
    for (i, points) in series {
        let style = COLOURS[i % COLOURS.len()].stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(text)?
            .label(report.runs[i].label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// One panel per run: layer (rows, layer 1 at the bottom) by step (columns), coloured by
/// log10 ‖ΔW‖/‖W‖ on one scale for all runs; skipped steps are grey.
pub fn update_heat_map(report: &TrainReport, path: &Path) -> Result<()> {
    let mut text = String::new();
    {
        let panels = report.runs.len().max(1);
        let root =
            SVGBackend::with_string(&mut text, (900, (220 * panels) as u32)).into_drawing_area();
        draw_heat_maps(&root, report).map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    crate::output::write_atomically(path, |out| out.write_all(text.as_bytes()))
}

fn draw_heat_maps(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &TrainReport,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(text)?;
    let logs = report.runs.iter().flat_map(|r| {
        r.steps
            .iter()
            .filter(|s| !s.skipped)
            .flat_map(|s| s.layers.iter().map(|l| l.update_ratio))
            .filter(|v| *v > 0.0 && v.is_finite())
            .map(f64::log10)
    });
    let (lo, hi) = logs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (-8.0, 0.0)
    };
    let panels = root.split_evenly((report.runs.len().max(1), 1));
    for (run, panel) in report.runs.iter().zip(panels.iter()) {
        let depth = run.config.network.depth as f64;
        let steps = run.config.steps.max(1) as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{}: log10 ‖ΔW‖/‖W‖ from {lo:.1} (dark) to {hi:.1} (bright)",
                    run.label
                ),
                ("sans-serif", 13),
            )
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(40)
            .build_cartesian_2d(0.5..steps + 0.5, 0.5..depth + 0.5)
            .map_err(text)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("step")
            .y_desc("layer")
            .draw()
            .map_err(text)?;
        let cells = run.steps.iter().flat_map(|s| {
            s.layers.iter().map(move |l| {
                let (x, y) = (s.step as f64, l.layer as f64);
                let colour = if s.skipped {
                    RGBColor(190, 190, 190)
                } else if l.update_ratio > 0.0 && l.update_ratio.is_finite() {
                    let f = ((l.update_ratio.log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
                    ramp(f)
                } else {
                    RGBColor(0, 0, 0)
                };
                Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], colour.filled())
            })
        });
        chart.draw_series(cells).map_err(text)?;
    }
    Ok(())
}

/// Dark blue (0) through teal to yellow (1).
fn ramp(f: f64) -> RGBColor {
    let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    if f < 0.5 {
        let t = f * 2.0;
        RGBColor(
            lerp(40.0, 33.0, t),
            lerp(20.0, 145.0, t),
            lerp(90.0, 140.0, t),
        )
    } else {
        let t = (f - 0.5) * 2.0;
        RGBColor(
            lerp(33.0, 253.0, t),
            lerp(145.0, 231.0, t),
            lerp(140.0, 37.0, t),
        )
    }
}
