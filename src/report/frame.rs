//! The frame of every chart: caption, axes, tick labels and axis titles, with label areas
//! sized from the labels they hold so that a title never sits on a tick label, and a right
//! margin that keeps the last tick label inside the figure.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{count_label, value_label, VALUE_LABELS};
use super::legend::text_width;

/// Font size of tick labels and axis titles, as plotters takes it.
pub const TICK_FONT: f64 = 13.0;
/// Font size of a chart's caption.
pub const CAPTION_FONT: f64 = 16.0;

/// One axis: its range, its title and whether it counts (steps, layers: integer ticks).
pub struct Axis<'a> {
    pub range: (f64, f64),
    pub title: &'a str,
    pub counts: bool,
}

impl Axis<'_> {
    fn label(&self, v: f64) -> String {
        if self.counts {
            count_label(v)
        } else {
            value_label(v, self.range.1 - self.range.0)
        }
    }

    /// How many labels to ask plotters for: on a counting axis no more than the integers in
    /// its range, so that no tick falls between two of them.
    fn labels(&self) -> usize {
        if self.counts {
            ((self.range.1 - self.range.0).floor() as usize).clamp(2, 10)
        } else {
            VALUE_LABELS
        }
    }
}

pub type Chart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart on `area` with its caption, axes, tick labels and light grid drawn.
pub fn chart<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    x: Axis<'_>,
    y: Axis<'_>,
    grid: bool,
) -> Result<Chart<'a, 'b>, String> {
    // The widest tick label the y-axis can get: the ends of its range, and a middle value
    // that may need more decimals.
    let (lo, hi) = y.range;
    let widest = [lo, hi, (lo + hi) / 2.0, lo + (hi - lo) / 3.0]
        .iter()
        .map(|&v| text_width(&y.label(v), TICK_FONT))
        .fold(0.0, f64::max);
    let font_px = TICK_FONT / 1.24;
    // Title, a gap, the labels, and the tick with its gap (plotters puts labels 10 px off).
    let y_area = (font_px + 8.0 + widest + 14.0).ceil() as u32;
    let x_area = (2.0 * font_px + 22.0).ceil() as u32;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", CAPTION_FONT))
        .margin_top(8)
        .margin_left(6)
        .margin_bottom(4)
        .margin_right(28)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x.range.0..x.range.1, y.range.0..y.range.1)
        .map_err(|e| e.to_string())?;
    let (x_labels, y_labels) = (x.labels(), y.labels());
    let x_format = |v: &f64| x.label(*v);
    let y_format = |v: &f64| y.label(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x.title)
        .y_desc(y.title)
        .x_labels(x_labels)
        .y_labels(y_labels)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .label_style(("sans-serif", TICK_FONT))
        .axis_desc_style(("sans-serif", TICK_FONT))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04));
    if !grid {
        mesh.disable_mesh();
    }
    mesh.draw().map_err(|e| e.to_string())?;
    Ok(chart)
}
