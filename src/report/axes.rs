//! What the axes of every plot show: a value range that the runs which diverged do not
//! decide, lines cut where they leave it, and tick labels a reader takes in at once
//! ("20", not "20.0"; "0", not "-0.0"; no "2.5" on an axis of layers).

/// The label of a tick on an axis that counts (steps, layers): the integer, and nothing
/// where a tick falls between two integers.
pub fn count_label(v: f64) -> String {
    let r = v.round();
    if (v - r).abs() < 1e-6 {
        format!("{}", r as i64)
    } else {
        String::new()
    }
}

/// How many tick labels the value axes ask plotters for.
pub const VALUE_LABELS: usize = 8;

/// The label of a tick on a value axis spanning `span` with about `VALUE_LABELS` ticks: as
/// few decimals as tell its ticks apart, no trailing zeros, and zero never "-0".
pub fn value_label(v: f64, span: f64) -> String {
    let step = span.abs() / VALUE_LABELS as f64;
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10()).ceil().clamp(0.0, 8.0) as usize
    } else {
        2
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

/// The range of the y-values of the series that did not diverge (`series` pairs each
/// series' points with whether it diverged), or of every series where all did: a run that
/// shot up to 10^19 before it turned inf must not flatten the runs that trained. `None`
/// where no value is finite.
pub fn robust_range(series: &[(&[(f64, f64)], bool)]) -> Option<(f64, f64)> {
    let range = |keep: &dyn Fn(bool) -> bool| {
        series
            .iter()
            .filter(|(_, diverged)| keep(*diverged))
            .flat_map(|(points, _)| points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(None, |r: Option<(f64, f64)>, v| match r {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
    };
    range(&|diverged| !diverged).or_else(|| range(&|_| true))
}

/// The range from the `tail` quantile to the `1 − tail` quantile of the finite `values`
/// (the nearest ranks), so that a few outliers do not take the whole of a colour scale:
/// values beyond it take the colour of its end. `None` where none is finite.
pub fn quantile_range(values: &[f64], tail: f64) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    Some((at(tail), at(1.0 - tail)))
}

/// `(lo, hi)` widened by `fraction` of its span on each side, or by `fraction` itself where
/// the span is zero, so that no line runs along the frame.
pub fn padded((lo, hi): (f64, f64), fraction: f64) -> (f64, f64) {
    let pad = if hi > lo {
        (hi - lo) * fraction
    } else {
        fraction.max(lo.abs() * fraction)
    };
    (lo - pad, hi + pad)
}

/// `points` up to where the line first leaves `lo..=hi`, ending at the crossing of the edge,
/// and whether it left: a diverged run is drawn up to the edge of the plot and no further.
pub fn clip_to(points: &[(f64, f64)], (lo, hi): (f64, f64)) -> (Vec<(f64, f64)>, bool) {
    let inside = |y: f64| (lo..=hi).contains(&y);
    let mut kept: Vec<(f64, f64)> = Vec::new();
    for &(x, y) in points {
        if inside(y) {
            kept.push((x, y));
            continue;
        }
        let edge = if y > hi { hi } else { lo };
        match kept.last() {
            Some(&(x0, y0)) => {
                let t = (edge - y0) / (y - y0);
                kept.push((x0 + t * (x - x0), edge));
            }
            None => kept.push((x, edge)),
        }
        return (kept, true);
    }
    (kept, false)
}
