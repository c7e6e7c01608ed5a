//! A number the user gives, checked in the type it becomes. The kernels compute learning
//! rates, loss scales and optimizer constants in f32: a value that is finite in f64 but inf or
//! 0 once rounded (`--lr 1e300`, `--loss-scale static:1e-50`) would otherwise train to NaN
//! and end with exit 0. Each check names the flag, so the refusal says what to change.

use crate::error::{Error, Result};

/// How a value is used, which decides the range it must stay in once it is an f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// ≥ 0 (a rate, a decay, a momentum): finite in f32, and not rounded to 0 if it was not 0.
    NonNegative,
    /// > 0 and finite in f32, not rounded to 0.
    Positive,
    /// > 0 and divided by (a loss scale): its f32 reciprocal must be finite too.
    Divisor,
}

/// `value`, for `flag`, as the f32 it becomes, or a usage error saying why it cannot be one.
pub fn f32_for(flag: &str, value: f64, usage: Use) -> Result<f32> {
    let bad = |why: String| {
        Err(Error::InvalidArgument(format!(
            "{flag} {}: {why}",
            shown(value)
        )))
    };
    let narrow = value as f32;
    match usage {
        _ if value.is_nan() => return bad("not a number".into()),
        Use::NonNegative if value < 0.0 => return bad("expected a number ≥ 0".into()),
        Use::Positive | Use::Divisor if value <= 0.0 => return bad("expected a number > 0".into()),
        _ => {}
    }
    if !narrow.is_finite() {
        return bad(format!(
            "beyond f32's largest value {:e}, the type it is computed in",
            f32::MAX
        ));
    }
    if value != 0.0 && narrow == 0.0 {
        return bad(format!(
            "rounds to 0 in f32, the type it is computed in (the smallest is {:e})",
            f32::from_bits(1)
        ));
    }
    if usage == Use::Divisor && !(1.0 / narrow).is_finite() {
        return bad(format!(
            "its reciprocal is beyond f32's range; give at least {:e}",
            1.0 / f32::MAX
        ));
    }
    Ok(narrow)
}

/// A number as a user would write it: 0.01 and 1e300, not 1000000…0.
pub fn shown(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// A factor that must stay strictly between `low` and `high` once an f32 (GradScaler's growth
/// factor above 1, its backoff factor below 1): 1.00000001 is 1 in f32, where a growth factor
/// would never grow the scale, and 1e-300 is 0, where a backoff would zero it.
pub fn f32_between(
    flag: &str,
    value: f64,
    low: f64,
    high: f64,
    inclusive_low: bool,
) -> Result<f32> {
    let narrow = value as f32;
    let above = if inclusive_low {
        narrow as f64 >= low
    } else {
        narrow as f64 > low
    };
    if value.is_nan() || !above || narrow as f64 >= high || !narrow.is_finite() {
        let open = if inclusive_low { '[' } else { '(' };
        return Err(Error::InvalidArgument(format!(
            "{flag} {}: expected a number in {open}{low}, {high}) once rounded to f32, \
             the type it is computed in (f32 makes it {narrow})",
            shown(value)
        )));
    }
    Ok(narrow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_finite_in_f64_but_not_in_f32_are_refused_naming_the_flag() {
        for (value, usage, needle) in [
            (1e300, Use::NonNegative, "largest"),
            (1e39, Use::NonNegative, "largest"),
            (1e-50, Use::NonNegative, "rounds to 0"),
            (1e-50, Use::Divisor, "rounds to 0"),
            (1e-40, Use::Divisor, "reciprocal"),
            (-1.0, Use::NonNegative, "≥ 0"),
            (0.0, Use::Positive, "> 0"),
            (f64::NAN, Use::Positive, "not a number"),
            (f64::INFINITY, Use::NonNegative, "largest"),
        ] {
            let err = f32_for("--lr", value, usage).unwrap_err().to_string();
            assert!(
                err.starts_with("--lr ") && err.contains(needle),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn values_at_the_edges_of_f32_are_kept_exactly_as_rounded() {
        assert_eq!(f32_for("--lr", 0.0, Use::NonNegative).unwrap(), 0.0);
        let max = f32::MAX as f64;
        assert_eq!(f32_for("--lr", max, Use::NonNegative).unwrap(), f32::MAX);
        let tiny = f32::from_bits(1) as f64;
        assert_eq!(
            f32_for("--lr", tiny, Use::Positive).unwrap(),
            f32::from_bits(1)
        );
        let smallest_divisor = (1.0 / f32::MAX) as f64;
        assert!(f32_for("--s", smallest_divisor * 1.0001, Use::Divisor).is_ok());
        assert!(f32_for("--s", smallest_divisor * 0.9, Use::Divisor).is_err());
    }

    #[test]
    fn numbers_are_shown_as_written() {
        assert_eq!(shown(1e300), "1e300");
        assert_eq!(shown(1e-50), "1e-50");
        assert_eq!(shown(0.01), "0.01");
        assert_eq!(shown(0.0), "0");
        assert_eq!(shown(-2.5), "-2.5");
    }

    #[test]
    fn factors_that_round_onto_their_bound_are_refused() {
        assert!(f32_between("--betas", 0.9999999999, 0.0, 1.0, true).is_err());
        assert_eq!(
            f32_between("--betas", 0.999, 0.0, 1.0, true).unwrap(),
            0.999f32
        );
        assert!(f32_between("--betas", 0.0, 0.0, 1.0, true).is_ok());
        assert!(f32_between("--backoff-factor", 1e-300, 0.0, 1.0, false).is_err());
        assert!(f32_between("--growth-factor", 1.00000001, 1.0, f64::INFINITY, false).is_err());
        assert!(f32_between("--growth-factor", 2.0, 1.0, f64::INFINITY, false).is_ok());
        assert!(f32_between("--growth-factor", 1e39, 1.0, f64::INFINITY, false).is_err());
    }
}
