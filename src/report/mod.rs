//! Rendering results for people and for scripts: `files` for `gradstab stats`, `run` for the
//! table, CSV and JSON of `gradstab run`, `plot` for its SVG.

pub mod files;
pub mod plot;
pub mod run;

pub use files::{histogram_bars, stats_csv, stats_table, TensorReport};

use crate::stats::StatsRecord;

/// The CSV columns every record contributes, after the columns that say what it is.
pub const RECORD_COLUMNS: [&str; 18] = [
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
];

/// The values of `RECORD_COLUMNS` for one record.
pub fn record_fields(s: &StatsRecord) -> Vec<String> {
    let mut row = vec![s.count.to_string()];
    row.extend([s.mean, s.variance, s.min, s.max, s.abs_max, s.l2_norm].map(|v| format!("{v:e}")));
    row.extend(
        [
            s.nan,
            s.pos_inf,
            s.neg_inf,
            s.zero,
            s.subnormal,
            s.cast.f16.overflow,
            s.cast.f16.subnormal,
            s.cast.f16.zero,
            s.cast.bf16.overflow,
            s.cast.bf16.subnormal,
            s.cast.bf16.zero,
        ]
        .map(|v| v.to_string()),
    );
    row
}
