//! The phase diagram of a deep fully connected net at initialisation (Poole et al. 2016,
//! "Exponential expressivity in deep neural networks through transient chaos"; Schoenholz,
//! Gilmer, Ganguli and Sohl-Dickstein 2017, "Deep Information Propagation"), for weights
//! N(0, σ_w²/n), biases N(0, σ_b²) and an activation φ, in the limit of infinite width.
//!
//! - The pre-activations' second moment settles at q*, the fixed point of
//!   q ↦ σ_w²·E[φ(√q·z)²] + σ_b².
//! - Each layer multiplies the gradient's second moment by χ₁ = σ_w²·E[φ'(√q*·z)²]: χ₁ < 1 is
//!   the ordered phase (gradients vanish), χ₁ > 1 the chaotic one (they explode), and χ₁ = 1
//!   its boundary, the edge of chaos.
//! - Two inputs' correlation c follows c ↦ (σ_w²·E[φ(u1)φ(u2)] + σ_b²)/q*, u1 = √q*·z1,
//!   u2 = √q*·(c·z1 + √(1 − c²)·z2). Its stable fixed point c* is 1 in the ordered phase and
//!   below 1 in the chaotic one; near it c − c* shrinks by χ_c = σ_w²·E[φ'(u1)φ'(u2)] per
//!   layer, e^{−1/ξ_c} with ξ_c = −1/ln χ_c. Schoenholz et al. find that a net trains only if
//!   it is shallower than about 6·ξ_c, which diverges at the edge of chaos.
//!
//! The expectations are those of `super::bivariate`; its module comment says why they are not
//! the parent module's Gauss–Hermite rule.

use super::bivariate::{bivariate_expectation, expectation};
use crate::error::{Error, Result};
use crate::ops::activation::Activation;

/// Schoenholz et al.'s trainable depth, in correlation lengths ξ_c.
pub const TRAINABLE_DEPTHS_PER_XI: f64 = 6.0;
/// Where the search for q* starts: the limit of q ↦ F(q) from a unit-variance input.
const Q_START: f64 = 1.0;
/// Past this q the forward pass is taken to grow without bound.
/// (10⁶ in scale: at an exact boundary such as ReLU's σ_w² = 2, F(q) − q = σ_b² would lose
/// its sign to rounding long before 10¹⁵⁰.)
const Q_UNBOUNDED: f64 = 1e12;
/// Below this q* is 0: the signal dies out (no bias and φ(0) = 0).
const Q_ZERO: f64 = 1e-300;
/// The critical σ_w² is looked for in (0, this].
pub const SIGMA_W2_SEARCH_MAX: f64 = 1e4;
/// Chaos closer to 1 − c* than this is below what the quadrature resolves: c* is taken as 1.
const CHAOS_RESOLUTION: f64 = 1.0 / (1u64 << 40) as f64;

/// Why q* could not be found: the forward pass grows without bound, or F(q) is not finite.
enum Unsolved {
    Unbounded,
    NotFinite(f64),
}

fn check_variance(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{name} must be a finite variance ≥ 0, not {value}"
        )))
    }
}

/// F(q) = σ_w²·E[φ(√q·z)²] + σ_b²: the next layer's pre-activation second moment.
pub fn variance_map(activation: &Activation, sigma_w2: f64, sigma_b2: f64, q: f64) -> f64 {
    sigma_w2 * expectation(q, |u| activation.reference(u).powi(2)) + sigma_b2
}

/// The fixed point q* = F(q*) that the iteration q ↦ F(q) from q = 1 reaches, F being
/// increasing for every activation here: a bracket [lo, hi] with F − q ≥ 0 at lo and ≤ 0 at
/// hi, then bisection. Plain iteration would crawl near the edge of chaos (at tanh's σ_w² = 1,
/// σ_b² = 0, q shrinks like 1/(2t)). Returns 0 where the signal dies out.
fn solve_q_star(
    activation: &Activation,
    sigma_w2: f64,
    sigma_b2: f64,
) -> std::result::Result<f64, Unsolved> {
    let excess = |q: f64| {
        let e = variance_map(activation, sigma_w2, sigma_b2, q) - q;
        if e.is_finite() {
            Ok(e)
        } else {
            Err(Unsolved::NotFinite(q))
        }
    };
    let start = excess(Q_START)?;
    if start == 0.0 {
        return Ok(Q_START);
    }
    // F(0) − 0 = σ_w²·φ(0)² + σ_b² ≥ 0, so below Q_START the bracket is [0, Q_START].
    let (mut lo, mut hi) = (0.0, Q_START);
    if start > 0.0 {
        lo = Q_START;
        hi = 2.0 * Q_START;
        while excess(hi)? > 0.0 {
            lo = hi;
            hi *= 2.0;
            if hi > Q_UNBOUNDED {
                return Err(Unsolved::Unbounded);
            }
        }
    }
    while hi - lo > 1e-15 * hi {
        if hi < Q_ZERO {
            return Ok(0.0);
        }
        // From lo = 0 halve hi: the root may be 0, or many octaves below Q_START.
        let mid = if lo == 0.0 { 0.5 * hi } else { 0.5 * (lo + hi) };
        if excess(mid)? >= 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// The fixed point q* of q ↦ σ_w²·E[φ(√q·z)²] + σ_b², as the iteration from q = 1 reaches it
/// (0 where the signal dies out: no bias and φ(0) = 0 in the ordered phase). An error for a
/// negative or non-finite variance, and where there is no fixed point (q grows without bound,
/// as for ReLU with σ_w² > 2).
pub fn q_star(activation: &Activation, sigma_w2: f64, sigma_b2: f64) -> Result<f64> {
    check_variance("σ_w²", sigma_w2)?;
    check_variance("σ_b²", sigma_b2)?;
    solve_q_star(activation, sigma_w2, sigma_b2).map_err(|e| match e {
        Unsolved::Unbounded => Error::InvalidArgument(format!(
            "{} with σ_w² = {sigma_w2}, σ_b² = {sigma_b2} has no fixed point q*: the \
             pre-activations' second moment grows past {Q_UNBOUNDED:e} layer after layer",
            activation.name()
        )),
        Unsolved::NotFinite(q) => Error::InvalidArgument(format!(
            "{} with σ_w² = {sigma_w2}, σ_b² = {sigma_b2}: σ_w²·E[φ²] + σ_b² is not finite at \
             q = {q}",
            activation.name()
        )),
    })
}

/// q for an expectation at q*: at q* = 0 the limit q → 0⁺ (for ReLU E[φ'²] = 1/2 there, not
/// φ'(0)² = 0), which the smallest positive q gives, its nodes keeping their signs.
fn limit_q(q_star: f64) -> f64 {
    q_star.max(f64::MIN_POSITIVE)
}

/// χ₁ = σ_w²·E[φ'(√q*·z)²]: the factor by which each layer multiplies the gradient's second
/// moment at the fixed point.
pub fn chi_1(activation: &Activation, sigma_w2: f64, q_star: f64) -> f64 {
    sigma_w2
        * expectation(limit_q(q_star), |u| {
            activation.reference_derivative(u).powi(2)
        })
}

/// The correlation map c ↦ (σ_w²·E[φ(u1)φ(u2)] + σ_b²)/q* with u1 = √q*·z1 and
/// u2 = √q*·(c·z1 + √(1 − c²)·z2). NaN at q* = 0, where there is no signal to correlate.
pub fn correlation_map(
    activation: &Activation,
    sigma_w2: f64,
    sigma_b2: f64,
    q_star: f64,
    c: f64,
) -> f64 {
    if q_star <= 0.0 {
        return f64::NAN;
    }
    let joint = bivariate_expectation(q_star, c, |u1, u2| {
        activation.reference(u1) * activation.reference(u2)
    });
    (sigma_w2 * joint + sigma_b2) / q_star
}

/// χ_c = σ_w²·E[φ'(u1)φ'(u2)] at correlation c: the slope of the correlation map there.
pub fn chi_c(activation: &Activation, sigma_w2: f64, q_star: f64, c: f64) -> f64 {
    sigma_w2
        * bivariate_expectation(limit_q(q_star), c, |u1, u2| {
            activation.reference_derivative(u1) * activation.reference_derivative(u2)
        })
}

/// The stable fixed point c* of the correlation map: 1 in the ordered phase (χ₁ ≤ 1, or
/// q* = 0), else the smallest root of map(c) − c in [0, 1), which the iteration from c = 0
/// reaches since the map is increasing (χ_c ≥ 0 for a monotone φ) and map(0) = (σ_w²·E[φ]² +
/// σ_b²)/q* ≥ 0. The search steps 1 − c down by halves until map(c) < c, then bisects; chaos
/// weaker than 1 − c* ≈ 10⁻¹² gives 1.
pub fn c_star(activation: &Activation, sigma_w2: f64, sigma_b2: f64, q_star: f64) -> f64 {
    if q_star <= 0.0 || chi_1(activation, sigma_w2, q_star) <= 1.0 {
        return 1.0;
    }
    let gap = |c: f64| correlation_map(activation, sigma_w2, sigma_b2, q_star, c) - c;
    let mut lo = 0.0;
    let mut distance = 1.0;
    let mut hi = loop {
        let c = 1.0 - distance;
        if gap(c) < 0.0 {
            break c;
        }
        lo = c;
        distance *= 0.5;
        if distance < CHAOS_RESOLUTION {
            return 1.0;
        }
    };
    while hi - lo > 1e-15 {
        let mid = 0.5 * (lo + hi);
        if gap(mid) >= 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi = 0.5 * (lo + hi);
    hi
}

/// ξ_c = −1/ln χ_c: the depth over which a correlation's distance from c* shrinks by e.
/// Infinite for χ_c ≥ 1 (at the edge of chaos).
pub fn correlation_depth(chi_c: f64) -> f64 {
    if chi_c < 1.0 {
        -1.0 / chi_c.ln()
    } else {
        f64::INFINITY
    }
}

/// Everything mean-field theory says about one (φ, σ_w², σ_b²).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PhasePoint {
    pub sigma_w2: f64,
    pub sigma_b2: f64,
    /// The pre-activations' second moment at the fixed point.
    pub q_star: f64,
    /// The gradient's second moment's factor per layer.
    pub chi_1: f64,
    /// The stable fixed point of the correlation map.
    pub c_star: f64,
    /// The correlation map's slope at c*; χ₁ in the ordered phase, where c* = 1.
    pub chi_c: f64,
    /// −1/ln χ_c; infinite at the edge of chaos.
    pub xi_c: f64,
}

impl PhasePoint {
    /// Schoenholz et al.'s trainable depth, 6·ξ_c.
    pub fn trainable_depth(&self) -> f64 {
        TRAINABLE_DEPTHS_PER_XI * self.xi_c
    }

    /// log10 of the gradient's predicted second-moment ratio across `depth` layers at the
    /// fixed point, χ₁^depth: below 0 vanishing, above 0 exploding.
    pub fn log10_gradient_ratio(&self, depth: usize) -> f64 {
        depth as f64 * self.chi_1.log10()
    }

    pub fn is_chaotic(&self) -> bool {
        self.chi_1 > 1.0
    }
}

/// The phase point of (φ, σ_w², σ_b²); errors as `q_star`'s.
pub fn phase_point(activation: &Activation, sigma_w2: f64, sigma_b2: f64) -> Result<PhasePoint> {
    let q = q_star(activation, sigma_w2, sigma_b2)?;
    let chi_1 = chi_1(activation, sigma_w2, q);
    let c = c_star(activation, sigma_w2, sigma_b2, q);
    // At c* = 1, u1 = u2 and χ_c is χ₁ itself.
    let chi_c = if c == 1.0 {
        chi_1
    } else {
        chi_c(activation, sigma_w2, q, c)
    };
    Ok(PhasePoint {
        sigma_w2,
        sigma_b2,
        q_star: q,
        chi_1,
        c_star: c,
        chi_c,
        xi_c: correlation_depth(chi_c),
    })
}

/// The σ_w² where χ₁ = 1 for this activation and σ_b², by bisection on (0, SIGMA_W2_SEARCH_MAX]
/// to a relative 10⁻¹⁴. Where q* does not exist (the forward pass grows without bound) the
/// net counts as past the boundary. An error where χ₁ stays below 1 over the whole range.
pub fn critical_sigma_w2(activation: &Activation, sigma_b2: f64) -> Result<f64> {
    check_variance("σ_b²", sigma_b2)?;
    let chaotic = |sigma_w2: f64| -> Result<bool> {
        match solve_q_star(activation, sigma_w2, sigma_b2) {
            Ok(q) => Ok(chi_1(activation, sigma_w2, q) > 1.0),
            Err(Unsolved::Unbounded) => Ok(true),
            Err(Unsolved::NotFinite(_)) => q_star(activation, sigma_w2, sigma_b2).map(|_| true),
        }
    };
    // χ₁ = 0 at σ_w² = 0.
    let (mut lo, mut hi) = (0.0, 1.0);
    while !chaotic(hi)? {
        lo = hi;
        hi *= 2.0;
        if hi > SIGMA_W2_SEARCH_MAX {
            return Err(Error::InvalidArgument(format!(
                "{} with σ_b² = {sigma_b2} has no edge of chaos: χ₁ stays below 1 for σ_w² up \
                 to {SIGMA_W2_SEARCH_MAX:e}",
                activation.name()
            )));
        }
    }
    while hi - lo > 1e-14 * hi {
        let mid = 0.5 * (lo + hi);
        if chaotic(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// What a (σ_w², depth) phase diagram draws for one activation and σ_b².
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PhaseCurves {
    pub sigma_b2: f64,
    /// The χ₁ = 1 boundary; None where there is none below SIGMA_W2_SEARCH_MAX.
    pub critical_sigma_w2: Option<f64>,
    /// Evenly spaced in σ_w²; those where q* does not exist are left out.
    pub points: Vec<PhasePoint>,
}

impl PhaseCurves {
    /// (σ_w², 6·ξ_c) along the samples: Schoenholz et al.'s trainable-depth curve.
    pub fn trainable_depth(&self) -> Vec<(f64, f64)> {
        self.points
            .iter()
            .map(|p| (p.sigma_w2, p.trainable_depth()))
            .collect()
    }
}

/// The curves over σ_w² in [min, max], `samples` ≥ 2 points. Each point's c* search costs up to
/// ~100 two-dimensional quadratures, a few milliseconds each.
pub fn phase_curves(
    activation: &Activation,
    sigma_b2: f64,
    sigma_w2_range: (f64, f64),
    samples: usize,
) -> Result<PhaseCurves> {
    check_variance("σ_b²", sigma_b2)?;
    let (min, max) = sigma_w2_range;
    check_variance("the smallest σ_w²", min)?;
    check_variance("the largest σ_w²", max)?;
    if max <= min || samples < 2 {
        return Err(Error::InvalidArgument(format!(
            "a phase diagram needs σ_w² from min to max > min over ≥ 2 samples, not \
             [{min}, {max}] over {samples}"
        )));
    }
    let critical_sigma_w2 = match critical_sigma_w2(activation, sigma_b2) {
        Ok(s) => Some(s),
        Err(_) => None,
    };
    let mut points = Vec::with_capacity(samples);
    for i in 0..samples {
        let sigma_w2 = min + (max - min) * i as f64 / (samples - 1) as f64;
        match solve_q_star(activation, sigma_w2, sigma_b2) {
            Err(Unsolved::Unbounded) => continue,
            _ => points.push(phase_point(activation, sigma_w2, sigma_b2)?),
        }
    }
    Ok(PhaseCurves {
        sigma_b2,
        critical_sigma_w2,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn assert_rel(got: f64, want: f64, tolerance: f64, what: &str) {
        assert!(
            (got - want).abs() <= tolerance * want.abs().max(f64::MIN_POSITIVE),
            "{what}: {got} vs {want} (relative tolerance {tolerance:e})"
        );
    }

    /// φ(x) = αx + β: E[φ(√q z)²] = α²q + β², so q* = (σ_w²β² + σ_b²)/(1 − σ_w²α²), χ₁ = σ_w²α²,
    /// E[φ(u1)φ(u2)] = α²qc + β² makes the map χ₁·c + (1 − χ₁), whose slope χ_c = χ₁ at every
    /// c and whose only fixed point is c* = 1; the edge of chaos is σ_w² = 1/α².
    /// Tolerances: the rules integrate these polynomials to rounding (≤ 10⁻¹⁵ of their scale,
    /// bivariate's moment test); bisection stops q* at a relative 10⁻¹⁵, and an error δ in
    /// F(q) − q moves the root by δ/(1 − F'), F' = χ₁: 10⁻¹⁴/(1 − χ₁).
    #[test]
    fn the_linear_activation_has_closed_form_phase_quantities() {
        let phi = Activation::Linear {
            alpha: 1.5,
            beta: -0.25,
        };
        let a2 = 2.25;
        for (sigma_w2, sigma_b2) in [(0.2, 0.0), (0.3, 0.05), (0.4, 1.0)] {
            let chi = sigma_w2 * a2;
            let q = (sigma_w2 * 0.0625 + sigma_b2) / (1.0 - chi);
            let p = phase_point(&phi, sigma_w2, sigma_b2).unwrap();
            assert_rel(p.q_star, q, 1e-14 / (1.0 - chi), "q*");
            assert_rel(p.chi_1, chi, 1e-14, "χ₁");
            assert_eq!(p.c_star, 1.0);
            assert_rel(p.xi_c, -1.0 / chi.ln(), 1e-14, "ξ_c");
            for c in [-0.8, 0.0, 0.5, 0.99] {
                let map = correlation_map(&phi, sigma_w2, sigma_b2, p.q_star, c);
                assert!(
                    (map - (chi * c + 1.0 - chi)).abs() <= 1e-14 / (1.0 - chi),
                    "map({c}) = {map}"
                );
                assert_rel(chi_c(&phi, sigma_w2, p.q_star, c), chi, 1e-14, "χ_c");
            }
        }
        // A q* past Q_UNBOUNDED = 10¹² counts as unbounded, which ends the search where
        // 1 − χ₁ ≈ 2(σ_w²β² + σ_b²)/10¹²: 1.1·10⁻¹³/α² in σ_w², 2.6·10⁻¹³ relative.
        let critical = critical_sigma_w2(&phi, 0.1).unwrap();
        assert_rel(critical, 1.0 / a2, 1e-12, "critical σ_w²");
    }

    /// ReLU: q* = σ_b²/(1 − σ_w²/2), χ₁ = σ_w²/2, and Cho and Saul's arc-cosine kernels,
    /// θ = arccos c: E[relu(u1)relu(u2)] = q/(2π)·(sin θ + (π − θ)·c) and
    /// E[relu'(u1)relu'(u2)] = (π − θ)/(2π). Each panel's integrand is a polynomial in t times
    /// e^{−t²/2} and a trigonometric polynomial in α, entire functions that 16-node panels at
    /// most 1 wide integrate to below 10⁻¹⁶; what remains is the rounding of ~3·10⁴ terms,
    /// √(3·10⁴)·2⁻⁵³ ≈ 2·10⁻¹⁴: tolerance 10⁻¹³.
    #[test]
    fn relu_follows_the_arc_cosine_kernel() {
        let relu = Activation::Relu;
        for (sigma_w2, sigma_b2) in [(1.0, 0.1), (1.9, 0.05), (1.5, 2.0)] {
            let q = sigma_b2 / (1.0 - sigma_w2 / 2.0);
            let p = phase_point(&relu, sigma_w2, sigma_b2).unwrap();
            assert_rel(p.q_star, q, 1e-14 / (1.0 - sigma_w2 / 2.0), "q*");
            assert_rel(p.chi_1, sigma_w2 / 2.0, 1e-14, "χ₁");
            assert_eq!(p.c_star, 1.0, "ReLU with finite q* is ordered");
            for c in [-0.95, -0.3, 0.0, 0.4, 0.8, 0.999] {
                let theta = f64::acos(c);
                let kernel = q / (2.0 * PI) * (theta.sin() + (PI - theta) * c);
                let map = (sigma_w2 * kernel + sigma_b2) / q;
                let got = correlation_map(&relu, sigma_w2, sigma_b2, p.q_star, c);
                assert!((got - map).abs() <= 1e-13, "map({c}): {got} vs {map}");
                let slope = sigma_w2 * (PI - theta) / (2.0 * PI);
                assert_rel(chi_c(&relu, sigma_w2, p.q_star, c), slope, 1e-13, "χ_c");
            }
        }
        // Past σ_w² = 2 the second moment grows without bound; the boundary is σ_w² = 2.
        assert!(matches!(
            q_star(&relu, 2.5, 0.1),
            Err(Error::InvalidArgument(m)) if m.contains("no fixed point")
        ));
        // Short of it by up to 2σ_b²/10¹² in 1 − σ_w²/2 (the cut at Q_UNBOUNDED): 2·10⁻¹³.
        assert_rel(
            critical_sigma_w2(&relu, 0.1).unwrap(),
            2.0,
            1e-12,
            "critical",
        );
    }

    /// Without bias, tanh's signal dies (q* = 0, χ₁ = σ_w²) up to σ_w² = 1, and beyond it
    /// χ₁ − 1 ≈ ε²/3 for σ_w² = 1 + ε (expanding tanh to u⁵: q* ≈ ε/2 and χ₁ ≈ 1 + 4q*²/3).
    /// A computed χ₁ wrong by δ ≈ 10⁻¹⁴ therefore moves the boundary by at most √(3δ) ≈
    /// 1.7·10⁻⁷ above 1, and by δ below it.
    #[test]
    fn tanh_without_bias_has_its_edge_of_chaos_at_one() {
        let tanh = Activation::Tanh;
        let critical = critical_sigma_w2(&tanh, 0.0).unwrap();
        assert!(
            (critical - 1.0).abs() <= (3.0f64 * 1e-14).sqrt(),
            "{critical}"
        );
        let below = phase_point(&tanh, 0.8, 0.0).unwrap();
        assert_eq!(below.q_star, 0.0);
        assert_rel(below.chi_1, 0.8, 1e-15, "χ₁ = σ_w² where the signal dies");
        // Chaotic and odd: the map is odd, so c* = 0.
        let above = phase_point(&tanh, 2.0, 0.0).unwrap();
        assert!(
            above.is_chaotic() && above.c_star.abs() <= 1e-15,
            "{above:?}"
        );
    }

    /// Tanh with σ_b² = 0.05, Schoenholz et al.'s Fig. 1, against an independent computation
    /// (NumPy, run once: a trapezoid rule with step 10⁻³ on [−14, 14] in 1-D and step 10⁻²
    /// on [−10, 10]² in 2-D, spectrally accurate for these analytic integrands; plain
    /// fixed-point iteration for q*; bisection for the boundary and c*):
    /// - boundary σ_w² = 1.760954639606744 (their figure: ≈ 1.76);
    /// - σ_w² = 1.3: q* = 0.315316477485291, χ₁ = 0.880163509883217 (ordered);
    /// - σ_w² = 2.5: q* = 1.063958377416812, χ₁ = 1.133515698704272,
    ///   c* = 0.446804232344267, χ_c = 0.918716774913773;
    /// - σ_w² = 4.0: q* = 2.195493928034488, χ₁ = 1.342402414445192,
    ///   c* = 0.165064962022310, χ_c = 0.866527995597264.
    ///
    /// Tolerances: the NumPy bisections stop at 2⁻⁵⁰ ≈ 10⁻¹⁵ in c* and 2⁻⁴⁶ in σ_w²; our
    /// quadrature is good to 10⁻¹² for q ≤ 3 (bivariate's comment), which moves c* by
    /// 10⁻¹²/(1 − χ_c) ≤ 1.3·10⁻¹¹ and χ_c by as much times its slope in c (< 1); χ₁'s slope in
    /// σ_w² is ≈ 0.2, so 10⁻¹² in χ₁ is 5·10⁻¹² in the boundary. Hence 10⁻¹⁰ on c*, χ_c and
    /// the boundary, and 10⁻¹² relative on q*, χ₁ (printed to 15 digits).
    #[test]
    fn tanh_with_bias_matches_an_independent_computation() {
        let tanh = Activation::Tanh;
        let critical = critical_sigma_w2(&tanh, 0.05).unwrap();
        assert!((critical - 1.760954639606744).abs() <= 1e-10, "{critical}");
        let ordered = phase_point(&tanh, 1.3, 0.05).unwrap();
        assert_rel(ordered.q_star, 0.315316477485291, 1e-12, "q*");
        assert_rel(ordered.chi_1, 0.880163509883217, 1e-12, "χ₁");
        assert_eq!((ordered.c_star, ordered.chi_c), (1.0, ordered.chi_1));
        for (sigma_w2, q, chi_1, c, chi_c) in [
            (
                2.5,
                1.063958377416812,
                1.133515698704272,
                0.446804232344267,
                0.918716774913773,
            ),
            (
                4.0,
                2.195493928034488,
                1.342402414445192,
                0.165064962022310,
                0.866527995597264,
            ),
        ] {
            let p = phase_point(&tanh, sigma_w2, 0.05).unwrap();
            assert_rel(p.q_star, q, 1e-12, "q*");
            assert_rel(p.chi_1, chi_1, 1e-12, "χ₁");
            assert!((p.c_star - c).abs() <= 1e-10, "c* {} vs {c}", p.c_star);
            assert!(
                (p.chi_c - chi_c).abs() <= 1e-10,
                "χ_c {} vs {chi_c}",
                p.chi_c
            );
            assert_rel(p.xi_c, -1.0 / chi_c.ln(), 1e-9, "ξ_c");
        }
    }

    /// Whatever the activation, c* is a fixed point of the map and χ_c its slope there (a
    /// central difference with step h = 10⁻⁴ is off by the third derivative times h²/6, under
    /// 10⁻⁸ here, plus 10⁻¹²/h of quadrature error); and the iterated map's distance to c*
    /// shrinks by χ_c per layer once it is small.
    #[test]
    fn c_star_is_the_maps_fixed_point_and_chi_c_its_slope() {
        for (phi, sigma_w2, sigma_b2) in [
            (Activation::Tanh, 3.0, 0.2),
            (Activation::ScaledSigmoid, 2.5, 0.1),
            (Activation::Tanh, 1.9, 0.05),
        ] {
            let p = phase_point(&phi, sigma_w2, sigma_b2).unwrap();
            assert!(p.is_chaotic() && p.c_star < 1.0, "{phi:?}: {p:?}");
            let map = |c: f64| correlation_map(&phi, sigma_w2, sigma_b2, p.q_star, c);
            assert!((map(p.c_star) - p.c_star).abs() <= 1e-12, "{phi:?}");
            let h = 1e-4;
            let slope = (map(p.c_star + h) - map(p.c_star - h)) / (2.0 * h);
            assert!(
                (slope - p.chi_c).abs() <= 1e-7,
                "{phi:?}: {slope} vs {}",
                p.chi_c
            );
            let mut c = p.c_star + 1e-3;
            for _ in 0..5 {
                let next = map(c);
                let ratio = (next - p.c_star) / (c - p.c_star);
                // The map's curvature adds O(c − c*) = O(10⁻³) to the ratio.
                assert!((ratio - p.chi_c).abs() <= 1e-2, "{phi:?}: {ratio}");
                c = next;
            }
        }
    }

    #[test]
    fn bad_arguments_and_missing_boundaries_are_errors() {
        let tanh = Activation::Tanh;
        for (w, b) in [
            (-1.0, 0.0),
            (1.0, -0.1),
            (f64::NAN, 0.0),
            (1.0, f64::INFINITY),
        ] {
            assert!(matches!(
                q_star(&tanh, w, b),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(critical_sigma_w2(&tanh, -1.0).is_err());
        // φ' = 0 everywhere: χ₁ = 0 for every σ_w².
        let flat = Activation::Linear {
            alpha: 0.0,
            beta: 1.0,
        };
        let e = critical_sigma_w2(&flat, 0.1).unwrap_err().to_string();
        assert!(e.contains("no edge of chaos"), "{e}");
        assert!(phase_curves(&tanh, 0.05, (2.0, 1.0), 10).is_err());
        assert!(phase_curves(&tanh, 0.05, (1.0, 2.0), 1).is_err());
    }

    /// The curves: ξ_c grows toward the boundary from both sides, and ReLU's samples past
    /// σ_w² = 2 (no fixed point) are left out.
    #[test]
    fn phase_curves_peak_at_the_boundary() {
        let curves = phase_curves(&Activation::Tanh, 0.05, (1.0, 3.0), 9).unwrap();
        let critical = curves.critical_sigma_w2.unwrap();
        let depth = curves.trainable_depth();
        assert_eq!(depth.len(), 9);
        for pair in depth.windows(2) {
            let ((w0, d0), (w1, d1)) = (pair[0], pair[1]);
            if w1 < critical {
                assert!(d1 > d0, "rising below the boundary: {depth:?}");
            } else if w0 > critical {
                assert!(d1 < d0, "falling above it: {depth:?}");
            }
        }
        for p in &curves.points {
            assert_eq!(p.is_chaotic(), p.sigma_w2 > critical);
            assert_rel(
                p.log10_gradient_ratio(10),
                10.0 * p.chi_1.log10(),
                1e-15,
                "ratio",
            );
        }
        let relu = phase_curves(&Activation::Relu, 0.1, (1.0, 3.0), 5).unwrap();
        let kept: Vec<f64> = relu.points.iter().map(|p| p.sigma_w2).collect();
        assert_eq!(kept, [1.0, 1.5]);
    }
}
