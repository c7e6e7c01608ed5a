//! The legend of a figure, drawn in its own column beside the plots rather than over the
//! data, sized from its labels so that no label is clipped. Text sizes are estimated as the
//! layout test estimates them (0.6 of the font size per character).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{draw_line, draw_marker, Dash, Marker};

/// Font size of legend labels, as plotters takes it (the SVG says 1/1.24 of it).
pub const FONT: f64 = 13.0;
/// Pixels from one legend row to the next.
const ROW: i32 = 18;
/// Pixels left of the labels for the sample line or swatch.
const SAMPLE: i32 = 40;

/// The width an SVG viewer gives `text` at plotters font size `size`, about.
pub fn text_width(text: &str, size: f64) -> f64 {
    0.6 * size / 1.24 * text.chars().count() as f64
}

/// What a legend row shows before its label.
#[derive(Clone, Debug)]
pub enum Swatch {
    /// A line as a series is drawn, with its marker.
    Line {
        colour: RGBColor,
        dash: Dash,
        width: u32,
        marker: Option<Marker>,
    },
    /// A marker alone (a divergence, an onset), `filled` or white inside.
    Marker {
        marker: Marker,
        colour: RGBColor,
        filled: bool,
    },
    /// A filled box (a shaded band, a special colour of a heat map).
    Fill(RGBColor),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub swatch: Swatch,
    pub label: String,
}

/// Rows of swatches and labels, with an optional heading.
#[derive(Clone, Debug, Default)]
pub struct Legend {
    pub heading: Option<String>,
    pub entries: Vec<Entry>,
}

impl Legend {
    pub fn push(&mut self, swatch: Swatch, label: impl Into<String>) {
        self.entries.push(Entry {
            swatch,
            label: label.into(),
        });
    }

    /// The pixels this legend needs: (width, height).
    pub fn size(&self) -> (u32, u32) {
        let widest = self
            .entries
            .iter()
            .map(|e| SAMPLE as f64 + text_width(&e.label, FONT))
            .chain(self.heading.iter().map(|h| text_width(h, FONT)))
            .fold(0.0, f64::max);
        let rows = self.entries.len() + self.heading.is_some() as usize;
        (widest.ceil() as u32 + 24, (rows as i32 * ROW) as u32 + 16)
    }

    /// Draws the legend from the top left of `area`.
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let font = ("sans-serif", FONT)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let (x0, mut y) = (8, 8 + ROW / 2);
        if let Some(h) = &self.heading {
            area.draw(&Text::new(h.clone(), (x0, y), font.clone()))
                .map_err(|e| e.to_string())?;
            y += ROW;
        }
        for e in &self.entries {
            match &e.swatch {
                Swatch::Line {
                    colour,
                    dash,
                    width,
                    marker,
                } => {
                    draw_line(area, vec![(x0, y), (x0 + 32, y)], *colour, *dash, *width)?;
                    if let Some(m) = marker {
                        draw_marker(area, (x0 + 16, y), *m, *colour, 3, false)?;
                    }
                }
                Swatch::Marker {
                    marker,
                    colour,
                    filled,
                } => draw_marker(area, (x0 + 16, y), *marker, *colour, 5, *filled)?,
                Swatch::Fill(colour) => area
                    .draw(&Rectangle::new(
                        [(x0 + 4, y - 6), (x0 + 28, y + 6)],
                        ShapeStyle::from(colour).filled(),
                    ))
                    .and_then(|_| {
                        area.draw(&Rectangle::new(
                            [(x0 + 4, y - 6), (x0 + 28, y + 6)],
                            BLACK.mix(0.4).stroke_width(1),
                        ))
                    })
                    .map_err(|e| e.to_string())?,
            }
            area.draw(&Text::new(e.label.clone(), (x0 + SAMPLE, y), font.clone()))
                .map_err(|e| e.to_string())?;
            y += ROW;
        }
        Ok(())
    }
}
