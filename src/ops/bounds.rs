//! What every error bound is built from.

/// γ_n = n·u / (1 − n·u): the classic bound on the relative error of n roundings (Higham,
/// "Accuracy and Stability of Numerical Algorithms", §3.1). Infinite where n·u ≥ 1, where no
/// bound of this form holds.
pub fn gamma(n: usize, unit_roundoff: f64) -> f64 {
    let nu = n as f64 * unit_roundoff;
    if nu >= 1.0 {
        f64::INFINITY
    } else {
        nu / (1.0 - nu)
    }
}

/// The distance between two results, treating equal non-finite values as equal and any other
/// disagreement in kind (NaN against a number, inf against a finite value) as infinite.
pub fn result_distance(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if a.is_infinite() || b.is_infinite() {
        return if a == b { 0.0 } else { f64::INFINITY };
    }
    (a - b).abs()
}
