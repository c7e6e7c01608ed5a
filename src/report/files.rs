//! Rendering statistics for people and for scripts: the `gradstab stats` table, CSV, JSON and
//! the text histogram.

use std::io::Write;

use crate::files::{printable, FileTensor};
use crate::stats::{CastCounts, StatsRecord};

/// One analysed tensor of a file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub note: Option<String>,
    /// `None` for a tensor with no elements.
    pub stats: Option<StatsRecord>,
}

impl TensorReport {
    pub fn new(tensor: &FileTensor, stats: Option<StatsRecord>) -> Self {
        TensorReport {
            name: tensor.name.clone(),
            shape: tensor.shape.clone(),
            dtype: tensor.dtype.name().to_string(),
            note: tensor.note.clone(),
            stats,
        }
    }
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 || part == 0 {
        "0".into()
    } else {
        let p = 100.0 * part as f64 / whole as f64;
        if p < 0.01 {
            "<0.01".into()
        } else {
            format!("{p:.2}")
        }
    }
}

fn under(c: &CastCounts) -> u64 {
    c.subnormal + c.zero
}

/// The terminal table: one row per tensor.
pub fn stats_table(
    out: &mut impl Write,
    reports: &[TensorReport],
    histogram: bool,
) -> std::io::Result<()> {
    let name_width = reports
        .iter()
        .map(|r| printable(r.name.as_str()).chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    writeln!(
        out,
        "{:<nw$} {:<16} {:<5} {:>11} {:>10} {:>10} {:>6} {:>6} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9}",
        "name",
        "shape",
        "dtype",
        "mean",
        "std",
        "abs_max",
        "nan",
        "±inf",
        "f16 over%",
        "f16 undr%",
        "bf16 ovr%",
        "bf16 und%",
        "e4m3 ovr%",
        "e4m3 und%",
        "e5m2 ovr%",
        "e5m2 und%",
        nw = name_width
    )?;
    for r in reports {
        let Some(s) = &r.stats else {
            writeln!(
                out,
                "{:<nw$} {:<16} {:<5} (no elements)",
                printable(r.name.as_str()),
                shape_text(&r.shape),
                r.dtype,
                nw = name_width
            )?;
            continue;
        };
        // The moments and the largest magnitude are over the finite values; with none there is
        // nothing to show, which is not the same as a NaN.
        let finite = s.count - s.nan - s.pos_inf - s.neg_inf;
        let moment = |v: f64, precision: usize| {
            if finite == 0 {
                "n/a".to_string()
            } else {
                format!("{v:.precision$e}")
            }
        };
        writeln!(
            out,
            "{:<nw$} {:<16} {:<5} {:>11} {:>10} {:>10} {:>6} {:>6} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9}",
            printable(r.name.as_str()),
            shape_text(&r.shape),
            r.dtype,
            moment(s.mean, 4),
            moment(s.std(), 3),
            moment(s.abs_max, 3),
            s.nan,
            s.pos_inf + s.neg_inf,
            percent(s.cast.f16.overflow, s.count),
            percent(under(&s.cast.f16), s.count),
            percent(s.cast.bf16.overflow, s.count),
            percent(under(&s.cast.bf16), s.count),
            percent(s.cast.e4m3.overflow, s.count),
            percent(under(&s.cast.e4m3), s.count),
            percent(s.cast.e5m2.overflow, s.count),
            percent(under(&s.cast.e5m2), s.count),
            nw = name_width
        )?;
        if let Some(note) = &r.note {
            writeln!(out, "    note: {note}")?;
        }
        if finite == 0 {
            writeln!(
                out,
                "    note: no finite values, so no mean, std or abs_max"
            )?;
        }
        if histogram {
            histogram_bars(out, s)?;
        }
    }
    writeln!(
        out,
        "mean, std and abs_max are over the finite values. over% = share of values that would round beyond the format's range (to ±inf; in e4m3, which has no inf, |x| > 464 saturates to ±448); undr% = share that would become subnormal or 0 (non-zero values only)."
    )?;
    Ok(())
}

/// The exponent histogram as text bars, with where each bin falls in f16.
pub fn histogram_bars(out: &mut impl Write, s: &StatsRecord) -> std::io::Result<()> {
    let h = &s.histogram;
    let widest = h
        .normal
        .iter()
        .copied()
        .chain([h.zero, h.subnormal, h.inf, h.nan])
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = |n: u64| "█".repeat(((n as f64 / widest as f64) * 40.0).ceil() as usize);
    let mut line = |label: String, n: u64, remark: &str| -> std::io::Result<()> {
        if n > 0 {
            writeln!(
                out,
                "    {label:>10} {:>9} {:>7}% {:<40} {remark}",
                n,
                percent(n, s.count),
                bar(n)
            )?;
        }
        Ok(())
    };
    line("NaN".into(), h.nan, "")?;
    line("±inf".into(), h.inf, "")?;
    for (i, &n) in h.normal.iter().enumerate().rev() {
        let e = h.min_exponent + i as i32;
        let remark = if e >= 16 {
            "inf in f16"
        } else if e < -24 {
            "0 in f16"
        } else if e < -14 {
            "subnormal in f16"
        } else {
            ""
        };
        line(format!("2^{e}"), n, remark)?;
    }
    line("subnormal".into(), h.subnormal, "")?;
    line("zero".into(), h.zero, "")?;
    Ok(())
}

/// CSV: one row per tensor with every scalar field of the record.
pub fn stats_csv(out: impl Write, reports: &[TensorReport]) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["name", "shape", "dtype"];
    header.extend(super::columns::RECORD_COLUMNS);
    header.push("note");
    w.write_record(&header)?;
    for r in reports {
        let shape = r
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        let mut row = vec![
            super::columns::text_cell(&printable(r.name.as_str())),
            shape,
            r.dtype.clone(),
        ];
        match &r.stats {
            Some(s) => row.extend(super::columns::record_fields(s)),
            // A tensor without elements: a count of 0 and empty fields.
            None => {
                row.push("0".into());
                row.extend(std::iter::repeat_n(
                    String::new(),
                    super::columns::RECORD_COLUMNS.len() - 1,
                ));
            }
        }
        row.push(super::columns::text_cell(
            r.note.as_deref().unwrap_or_default(),
        ));
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}
