//! How every plot tells its series apart. Series i gets a colour, a dash pattern and a marker
//! shape (`series_style`) such that no two of the first `DISTINCT` series share all three, so
//! that 14 runs are 14 different lines and not 7 colours drawn twice; and the elements that
//! draw them: a polyline with any dash pattern (plotters' own dashed line has one dash length
//! and no dash-dot), and markers a few pixels wide wherever the data put them.

use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters_backend::{BackendCoord, DrawingErrorKind};

/// Okabe and Ito's colour-blind-safe palette, without its black (kept for theory) and its
/// yellow (unreadable on white), and with a brown in its place.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(140, 86, 75),   // brown
];

/// Dash patterns, in pixels on and off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
    DashDot,
}

impl Dash {
    pub const ALL: [Dash; 4] = [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::DashDot];

    /// On, off, on, off… in pixels; empty for a solid line.
    pub fn pattern(self) -> &'static [f32] {
        match self {
            Dash::Solid => &[],
            Dash::Dashed => &[9.0, 5.0],
            Dash::Dotted => &[2.0, 4.0],
            Dash::DashDot => &[11.0, 4.0, 2.0, 4.0],
        }
    }
}

/// Marker shapes, drawn a few pixels wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    InvertedTriangle,
    /// Where a line ends because the values stopped being finite.
    Cross,
}

impl Marker {
    /// The shapes series take turns with (the cross is kept for divergence and overflow).
    pub const SERIES: [Marker; 5] = [
        Marker::Circle,
        Marker::Square,
        Marker::Triangle,
        Marker::Diamond,
        Marker::InvertedTriangle,
    ];
}

/// What a series is drawn with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesStyle {
    pub colour: RGBColor,
    pub dash: Dash,
    pub marker: Marker,
}

/// How many series `series_style` tells apart: colours × dashes × marker shapes (7 × 4 and 5
/// share no factor, so the three cycles meet again only after all of them).
pub const DISTINCT: usize = PALETTE.len() * Dash::ALL.len() * Marker::SERIES.len();

/// The style of series `i`: the colour changes with every series and the dash pattern with
/// every 7, so a sweep of 7 rates × 2 initialisations reads as 7 colours, solid for the
/// first and dashed for the second; the marker shape cycles with every series too (5 shapes,
/// prime to 7 and 28), so that lines drawn on top of each other still show two shapes. Series
/// i and j share all three only when i ≡ j modulo lcm(28, 5) = `DISTINCT`.
pub fn series_style(i: usize) -> SeriesStyle {
    let (c, d, m) = (PALETTE.len(), Dash::ALL.len(), Marker::SERIES.len());
    SeriesStyle {
        colour: PALETTE[i % c],
        dash: Dash::ALL[(i / c) % d],
        marker: Marker::SERIES[i % m],
    }
}

/// The points of `points` that carry a marker: `per_series` of them evenly spaced, shifted
/// by a fraction of the spacing that differs from series to series (the golden ratio's
/// multiples, which never repeat), so that two series that coincide still show both
/// markers. A series of one point is its marker.
pub fn marker_points<T: Copy>(points: &[T], series: usize, per_series: usize) -> Vec<T> {
    let n = points.len();
    let per = per_series.clamp(1, n.max(1));
    let spacing = n as f64 / per as f64;
    let phase = (series as f64 * 0.618_033_988_749_895).fract();
    let mut picked: Vec<usize> = (0..per)
        .map(|j| (((j as f64 + phase) * spacing) as usize).min(n.saturating_sub(1)))
        .collect();
    picked.dedup();
    picked
        .into_iter()
        .filter_map(|k| points.get(k).copied())
        .collect()
}

/// A polyline drawn with a dash pattern (on, off, on, off… pixels, empty for solid), the
/// pattern running on across the vertices.
pub struct PatternedPath<C> {
    points: Vec<C>,
    pattern: &'static [f32],
    style: ShapeStyle,
}

impl<C> PatternedPath<C> {
    pub fn new(points: Vec<C>, dash: Dash, style: ShapeStyle) -> Self {
        PatternedPath {
            points,
            pattern: dash.pattern(),
            style,
        }
    }
}

impl<'a, C: 'a> PointCollection<'a, C> for &'a PatternedPath<C> {
    type Point = &'a C;
    type IntoIter = &'a [C];
    fn point_iter(self) -> &'a [C] {
        &self.points
    }
}

impl<DB: DrawingBackend, C> Drawable<DB> for PatternedPath<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let points: Vec<(f32, f32)> = points.map(|(x, y)| (x as f32, y as f32)).collect();
        let to_i = |p: (f32, f32)| (p.0.round() as i32, p.1.round() as i32);
        if self.pattern.is_empty() {
            return backend.draw_path(points.into_iter().map(to_i), &self.style);
        }
        // Walk the line, switching between on and off each time the current piece of the
        // pattern is used up.
        let (mut piece, mut left) = (0, self.pattern[0]);
        let mut on: Vec<(i32, i32)> = points.first().map(|&p| vec![to_i(p)]).unwrap_or_default();
        for pair in points.windows(2) {
            let (mut start, end) = (pair[0], pair[1]);
            let mut d = (end.0 - start.0).hypot(end.1 - start.1);
            while d > 0.0 {
                let step = left.min(d);
                let t = step / d;
                start = (
                    start.0 + (end.0 - start.0) * t,
                    start.1 + (end.1 - start.1) * t,
                );
                d -= step;
                left -= step;
                if piece % 2 == 0 {
                    on.push(to_i(start));
                }
                if left <= 0.0 {
                    if piece % 2 == 0 {
                        backend.draw_path(on.drain(..), &self.style)?;
                    } else {
                        on.push(to_i(start));
                    }
                    piece = (piece + 1) % self.pattern.len();
                    left = self.pattern[piece];
                }
            }
        }
        if piece % 2 == 0 && on.len() > 1 {
            backend.draw_path(on, &self.style)?;
        }
        Ok(())
    }
}

/// Draws `points` as a line of `style` and `width` pixels, in its dash pattern.
pub fn draw_line<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    points: Vec<CT::From>,
    colour: RGBColor,
    dash: Dash,
    width: u32,
) -> Result<(), String>
where
    CT::From: Clone,
{
    let style = colour.stroke_width(width);
    area.draw(&PatternedPath::new(points, dash, style))
        .map_err(|e| e.to_string())
}

/// Draws `marker` centred on `at`, `size` pixels from centre to edge: a series' marker is
/// outlined in its colour and white inside, so that it stands out on the lines under it; a
/// `filled` one (an onset) is the colour inside a black edge.
pub fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    marker: Marker,
    colour: RGBColor,
    size: i32,
    filled: bool,
) -> Result<(), String>
where
    CT::From: Clone + 'static,
{
    let (fill, edge) = if filled {
        (colour.filled(), BLACK.stroke_width(1))
    } else {
        (WHITE.filled(), colour.stroke_width(2))
    };
    let s = size;
    let polygon = |corners: Vec<(i32, i32)>| -> Result<(), String> {
        let closed: Vec<(i32, i32)> = corners.iter().chain(corners.first()).copied().collect();
        area.draw(&(EmptyElement::at(at.clone()) + Polygon::new(corners, fill)))
            .and_then(|_| {
                area.draw(&(EmptyElement::at(at.clone()) + PathElement::new(closed, edge)))
            })
            .map_err(|e| e.to_string())
    };
    match marker {
        Marker::Circle => area
            .draw(&(EmptyElement::at(at.clone()) + Circle::new((0, 0), s, fill)))
            .and_then(|_| area.draw(&(EmptyElement::at(at.clone()) + Circle::new((0, 0), s, edge))))
            .map_err(|e| e.to_string()),
        Marker::Square => polygon(vec![(-s, -s), (s, -s), (s, s), (-s, s)]),
        Marker::Triangle => polygon(vec![(0, -s - 1), (s + 1, s), (-s - 1, s)]),
        Marker::InvertedTriangle => polygon(vec![(0, s + 1), (s + 1, -s), (-s - 1, -s)]),
        Marker::Diamond => polygon(vec![(0, -s - 1), (s + 1, 0), (0, s + 1), (-s - 1, 0)]),
        Marker::Cross => {
            let thick = colour.stroke_width(3);
            let s = s + 2;
            area.draw(
                &(EmptyElement::at(at.clone()) + PathElement::new(vec![(-s, -s), (s, s)], thick)),
            )
            .and_then(|_| {
                area.draw(
                    &(EmptyElement::at(at.clone())
                        + PathElement::new(vec![(-s, s), (s, -s)], thick)),
                )
            })
            .map_err(|e| e.to_string())
        }
    }
}

/// Markers closer than this fraction of each axis hide each other.
const SAME_SPOT: f64 = 0.012;
/// How far apart, as a fraction of the x-axis, markers that would hide each other are drawn.
const SPREAD: f64 = 0.018;

/// `points` with those that would hide each other (within `SAME_SPOT` of both axes of an
/// earlier one) spread side by side along x, centred on where they were and kept inside the
/// x-range; a reader then sees one marker per onset, not the last one drawn.
pub fn spread_coinciding(
    points: &[(f64, f64)],
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
) -> Vec<(f64, f64)> {
    let (w, h) = ((x_hi - x_lo).abs(), (y_hi - y_lo).abs());
    let same = |a: (f64, f64), b: (f64, f64)| {
        (a.0 - b.0).abs() <= SAME_SPOT * w && (a.1 - b.1).abs() <= SAME_SPOT * h
    };
    // Each point joins the group of the first earlier point it coincides with.
    let mut group_of: Vec<usize> = Vec::with_capacity(points.len());
    for (i, &p) in points.iter().enumerate() {
        let leader = (0..i).find(|&j| group_of[j] == j && same(points[j], p));
        group_of.push(leader.unwrap_or(i));
    }
    let mut out = points.to_vec();
    for leader in 0..points.len() {
        let members: Vec<usize> = (0..points.len())
            .filter(|&i| group_of[i] == leader)
            .collect();
        let n = members.len();
        if n < 2 {
            continue;
        }
        let width = SPREAD * w * (n - 1) as f64;
        // Centred on the leader, shifted back inside the axis where it would leave it.
        let start = (points[leader].0 - width / 2.0).clamp(x_lo, (x_hi - width).max(x_lo));
        for (k, &i) in members.iter().enumerate() {
            out[i].0 = start + SPREAD * w * k as f64;
        }
    }
    out
}

#[cfg(test)]
mod spread_tests {
    use super::*;

    #[test]
    fn coinciding_markers_are_spread_apart_and_kept_inside_the_axis() {
        let points = [(40.0, 0.0), (40.0, 0.1), (10.0, 5.0), (40.0, 0.0)];
        let out = spread_coinciding(&points, (0.0, 40.0), (-10.0, 90.0));
        // The lone point stays; the three at the right edge become three, inside the axis,
        // SPREAD·40 apart, at their own heights.
        assert_eq!(out[2], (10.0, 5.0));
        let mut xs: Vec<f64> = [0, 1, 3].iter().map(|&i| out[i].0).collect();
        xs.sort_by(f64::total_cmp);
        assert!(xs[2] <= 40.0 && xs[0] >= 0.0, "{xs:?}");
        for pair in xs.windows(2) {
            assert!((pair[1] - pair[0] - SPREAD * 40.0).abs() < 1e-9, "{xs:?}");
        }
        assert_eq!([out[0].1, out[1].1, out[3].1], [0.0, 0.1, 0.0]);
    }
}
