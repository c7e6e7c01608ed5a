//! Gaussian expectations for the phase diagram: one variable, E[f(√q·z)], and two correlated
//! ones, E[f(u1, u2)] with u1 = √q·z1 and u2 = √q·(c·z1 + √(1 − c²)·z2).
//!
//! Why not the Gauss–Hermite rule of the parent module, or its 2-D product: that rule is exact
//! for ReLU's second moments only because their odd parts cancel; on ReLU's correlation
//! kernels the 96×96 product rule is off by 2·10⁻² (E[relu'(u1)·relu'(u2)] at c = 0.7,
//! against Cho and Saul's (π − θ)/2π), since the kink u2 = 0 is a slanted line the grid
//! cannot follow; and on tanh'(u)² at q = 5 it is off by 10⁻⁵, since the peak of width 1/√q
//! falls between its nodes. Here both integrals use composite Gauss–Legendre panels instead:
//! - in polar coordinates (z1, z2) = t·(cos α, sin α), u1 = √q·t·cos α and
//!   u2 = √q·t·cos(α − θ) with θ = arccos c, so the lines u1 = 0 and u2 = 0, where ReLU has its
//!   kink and every other activation here its steepest change, are the angles where cos α = 0
//!   or cos(α − θ) = 0: the angular panels end exactly there;
//! - radially the integrand t·e^{−t²/2}·f is analytic in t, and the panels are at most 1/√q
//!   wide, so that the variation of φ(√q·t·…) spans a panel of 16 nodes.
//!
//! Measured against a rule with 4× the angular and 25× the radial resolution (tanh, c in
//! {0, 0.6}): ≤ 10⁻¹⁵ for q ≤ 1, ≤ 10⁻¹² for q ≤ 3, ≤ 4·10⁻¹¹ for q ≤ 10; as c → 1 the two
//! kink angles close in and it degrades to 10⁻⁹ at q = 3, c = 1 − 10⁻⁶. For the piecewise
//! linear activations the integrand on each panel is a polynomial times a Gaussian, and the
//! result is exact to rounding.

use std::f64::consts::PI;

/// Nodes per Gauss–Legendre panel.
pub const PANEL_NODES: usize = 16;
/// |z| and t beyond this carry Gaussian mass e^{−T²/2} ≈ 2·10⁻³⁷, below f64's resolution of
/// any integrand that grows at most polynomially.
pub const TRUNCATION: f64 = 13.0;
/// Radial (and 1-D, per side) panels at most: 1/√q wide until q ≈ 25, then wider.
pub const MAX_PANELS: usize = 64;
/// Angular panels between two consecutive kink angles.
const ANGULAR_SUBPANELS: usize = 2;

/// Gauss–Legendre nodes and weights on [−1, 1]: Newton's method on the Legendre recurrence
/// from the Chebyshev-like guesses cos(π(i + 3/4)/(n + 1/2)) (Numerical Recipes §4.6).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut z = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 0.0;
        for _ in 0..100 {
            let (mut p1, mut p2) = (1.0, 0.0);
            for j in 0..n {
                let p3 = p2;
                p2 = p1;
                p1 = ((2 * j + 1) as f64 * z * p2 - j as f64 * p3) / (j + 1) as f64;
            }
            derivative = n as f64 * (z * p1 - p2) / (z * z - 1.0);
            let step = p1 / derivative;
            z -= step;
            if step.abs() <= 1e-16 {
                break;
            }
        }
        x[i] = -z;
        x[n - 1 - i] = z;
        w[i] = 2.0 / ((1.0 - z * z) * derivative * derivative);
        w[n - 1 - i] = w[i];
    }
    (x, w)
}

thread_local! {
    static LEGENDRE: (Vec<f64>, Vec<f64>) = gauss_legendre(PANEL_NODES);
}

/// Nodes and weights of `panels` equal Gauss–Legendre panels on [a, b].
fn composite(a: f64, b: f64, panels: usize) -> Vec<(f64, f64)> {
    LEGENDRE.with(|(x, w)| {
        let h = (b - a) / panels as f64;
        (0..panels)
            .flat_map(|p| {
                let mid = a + (p as f64 + 0.5) * h;
                x.iter()
                    .zip(w)
                    .map(move |(&xi, &wi)| (mid + 0.5 * h * xi, 0.5 * h * wi))
            })
            .collect()
    })
}

/// Panels on [0, TRUNCATION] for variance q: each at most 1/√q (and 1) wide.
fn panels_for(q: f64) -> usize {
    let width = 1.0f64.min(1.0 / q.sqrt());
    ((TRUNCATION / width).ceil() as usize).clamp(1, MAX_PANELS)
}

/// E[f(√q·z)] for z ~ N(0, 1), with a panel edge at z = 0.
pub fn expectation(q: f64, f: impl Fn(f64) -> f64) -> f64 {
    let root_q = q.max(0.0).sqrt();
    let density = 1.0 / (2.0 * PI).sqrt();
    composite(0.0, TRUNCATION, panels_for(q))
        .into_iter()
        .map(|(z, w)| w * density * (-0.5 * z * z).exp() * (f(root_q * z) + f(-root_q * z)))
        .sum()
}

/// E[f(u1, u2)] for u1 = √q·z1, u2 = √q·(c·z1 + √(1 − c²)·z2), z1, z2 ~ N(0, 1) independent;
/// c is clamped to [−1, 1].
pub fn bivariate_expectation(q: f64, c: f64, f: impl Fn(f64, f64) -> f64) -> f64 {
    let theta = c.clamp(-1.0, 1.0).acos();
    let root_q = q.max(0.0).sqrt();
    // The angles where u1 = 0 (cos α = 0) or u2 = 0 (cos(α − θ) = 0), around the circle once.
    let mut kinks: Vec<f64> = [0.5 * PI, 1.5 * PI, theta + 0.5 * PI, theta + 1.5 * PI]
        .iter()
        .map(|a| a.rem_euclid(2.0 * PI))
        .collect();
    kinks.sort_by(f64::total_cmp);
    kinks.dedup_by(|a, b| (*a - *b).abs() < 1e-15);
    kinks.push(kinks[0] + 2.0 * PI);
    let angles: Vec<(f64, f64, f64)> = kinks
        .windows(2)
        .flat_map(|k| composite(k[0], k[1], ANGULAR_SUBPANELS))
        .map(|(a, w)| (a.cos(), (a - theta).cos(), w / (2.0 * PI)))
        .collect();
    composite(0.0, TRUNCATION, panels_for(q))
        .into_iter()
        .map(|(t, wt)| {
            let r = root_q * t;
            let radial = wt * t * (-0.5 * t * t).exp();
            let ring: f64 = angles
                .iter()
                .map(|&(c1, c2, wa)| wa * f(r * c1, r * c2))
                .sum();
            radial * ring
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_of_degree_2n_minus_1() {
        let (x, w) = gauss_legendre(PANEL_NODES);
        for k in 0..2 * PANEL_NODES {
            let got: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(k as i32)).sum();
            let exact = if k % 2 == 1 {
                0.0
            } else {
                2.0 / (k + 1) as f64
            };
            // 16 rounded terms: 16·2⁻⁵³ relative.
            assert!((got - exact).abs() <= 4e-15, "x^{k}: {got} vs {exact}");
        }
    }

    /// Gaussian moments, one and two variables: E[z^2k] = (2k − 1)!!·q^k, and for the pair
    /// E[u1²·u2²] = q²(1 + 2c²), E[u1·u2] = q·c, E[u1³·u2] = 3q²c (Isserlis).
    #[test]
    fn the_rules_reproduce_gaussian_moments() {
        for q in [1e-6, 0.3, 1.0, 7.0, 400.0] {
            for (k, double_factorial) in [(0, 1.0), (1, 1.0), (2, 3.0), (3, 15.0)] {
                let got = expectation(q, |u| u.powi(2 * k));
                let exact = double_factorial * q.powi(k);
                assert!((got - exact).abs() <= 1e-14 * exact, "{got} vs {exact}");
            }
            for c in [-1.0, -0.6, 0.0, 0.3, 0.999, 1.0] {
                let q2 = q * q;
                for (got, exact) in [
                    (bivariate_expectation(q, c, |_, _| 1.0), 1.0),
                    (bivariate_expectation(q, c, |a, b| a * b), q * c),
                    (
                        bivariate_expectation(q, c, |a, b| a * a * b * b),
                        q2 * (1.0 + 2.0 * c * c),
                    ),
                    (
                        bivariate_expectation(q, c, |a, b| a.powi(3) * b),
                        3.0 * q2 * c,
                    ),
                ] {
                    assert!(
                        (got - exact).abs() <= 1e-14 * q2.max(1.0),
                        "q={q} c={c}: {got} vs {exact}"
                    );
                }
            }
        }
    }
}
