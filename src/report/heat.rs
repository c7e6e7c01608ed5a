//! The colour scales of heat maps (the training plot's updates, a sweep's phase diagram): a
//! ramp from dark blue to yellow for magnitudes, a diverging one (blue, white at its middle,
//! red) for quantities whose sign is the finding, and a bar with ticks for either.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{Axis, TICK_FONT};

/// The scale of the heat maps' colours, with its ticks.
pub fn draw_colour_bar(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    (lo, hi): (f64, f64),
    title: &str,
    scale: fn(f64) -> RGBColor,
) -> std::result::Result<(), String> {
    let area = area.margin(8, 8, 16, 40);
    let y = Axis {
        range: (lo, hi),
        title,
        counts: false,
    };
    let x = Axis {
        range: (0.0, 1.0),
        title: "",
        counts: false,
    };
    let mut chart = ChartBuilder::on(&area)
        .caption("colour scale", ("sans-serif", TICK_FONT))
        .y_label_area_size(64)
        .build_cartesian_2d(x.range.0..x.range.1, y.range.0..y.range.1)
        .map_err(|e| e.to_string())?;
    let span = hi - lo;
    let format = |v: &f64| super::axes::value_label(*v, span);
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(y.title)
        .y_labels(super::axes::VALUE_LABELS)
        .y_label_formatter(&format)
        .label_style(("sans-serif", TICK_FONT))
        .axis_desc_style(("sans-serif", TICK_FONT))
        .draw()
        .map_err(|e| e.to_string())?;
    let steps = 96;
    let strips = (0..steps).map(|k| {
        let (a, b) = (k as f64 / steps as f64, (k + 1) as f64 / steps as f64);
        // Each strip overlaps the next by half its height, which covers the seam between them.
        let top = (b + 0.5 / steps as f64).min(1.0);
        Rectangle::new(
            [(0.0, lo + a * span), (1.0, lo + top * span)],
            scale((a + b) / 2.0).filled(),
        )
    });
    chart.draw_series(strips).map_err(|e| e.to_string())?;
    Ok(())
}

/// Dark blue (0) through teal to yellow (1).
pub fn ramp(f: f64) -> RGBColor {
    let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    if f < 0.5 {
        let t = f * 2.0;
        RGBColor(
            lerp(68.0, 33.0, t),
            lerp(30.0, 145.0, t),
            lerp(120.0, 140.0, t),
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

/// Blue (0) through white (½) to red (1): a log ratio's sign at a glance, 0 white.
pub fn diverging(f: f64) -> RGBColor {
    let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    if f < 0.5 {
        let t = f * 2.0;
        RGBColor(
            lerp(33.0, 247.0, t),
            lerp(102.0, 247.0, t),
            lerp(172.0, 247.0, t),
        )
    } else {
        let t = (f - 0.5) * 2.0;
        RGBColor(
            lerp(247.0, 178.0, t),
            lerp(247.0, 24.0, t),
            lerp(247.0, 43.0, t),
        )
    }
}
