//! The columns a statistics record contributes to every CSV output.

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
