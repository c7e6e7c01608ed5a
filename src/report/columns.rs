//! The columns a statistics record contributes to every CSV output.

use crate::stats::StatsRecord;

/// The CSV columns every record contributes, after the columns that say what it is.
pub const RECORD_COLUMNS: [&str; 24] = [
    "count",
    "mean",
    "variance",
    "min",
    "max",
    "abs_max",
    "l2_norm",
    "nan",
    "pos_inf",
    "neg_inf",
    "zero",
    "subnormal",
    "f16_overflow",
    "f16_subnormal",
    "f16_zero",
    "bf16_overflow",
    "bf16_subnormal",
    "bf16_zero",
    "e4m3_overflow",
    "e4m3_subnormal",
    "e4m3_zero",
    "e5m2_overflow",
    "e5m2_subnormal",
    "e5m2_zero",
];

/// A text cell as a spreadsheet cannot run it: one that begins with `=`, `+`, `-`, `@`, a
/// tab or a carriage return is a formula to Excel and LibreOffice, so, as OWASP recommends
/// against CSV injection, it gets a leading `'`, which they show as text. Tensor names and
/// notes come from files a user may not have made.
pub fn text_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// The values of `RECORD_COLUMNS` for one record.
pub fn record_fields(s: &StatsRecord) -> Vec<String> {
    let mut row = vec![s.count.to_string()];
    // Over the finite values: an empty field, not "NaN", where there are none.
    row.extend([s.mean, s.variance, s.min, s.max, s.abs_max].map(|v| {
        if v.is_nan() {
            String::new()
        } else {
            format!("{v:e}")
        }
    }));
    // Over every value, so always defined: "inf" or "NaN" where the tensor holds one.
    row.push(format!("{:e}", s.l2_norm));
    row.extend([s.nan, s.pos_inf, s.neg_inf, s.zero, s.subnormal].map(|v| v.to_string()));
    for format in crate::stats::CAST_FORMATS {
        let c = s.cast.of(format);
        row.extend([c.overflow, c.subnormal, c.zero].map(|v| v.to_string()));
    }
    row
}

#[cfg(test)]
mod tests {
    use super::{text_cell, RECORD_COLUMNS};

    #[test]
    fn the_cast_columns_are_the_cast_reports_formats_in_order() {
        // A format added to the cast report must be added to the CSV header too.
        let named: Vec<String> = crate::stats::CAST_FORMATS
            .iter()
            .flat_map(|f| ["overflow", "subnormal", "zero"].map(|k| format!("{f}_{k}")))
            .collect();
        assert_eq!(RECORD_COLUMNS[12..], named);
    }

    #[test]
    fn cells_a_spreadsheet_would_run_are_escaped_and_no_other() {
        for formula in ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(text_cell(formula), format!("'{formula}"));
        }
        for plain in ["0.weight", "x", "f32 sgd lr=0.01", "", "a=b"] {
            assert_eq!(text_cell(plain), plain);
        }
    }
}
