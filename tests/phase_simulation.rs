//! An independent check of the phase-diagram theory (src/theory/phase.rs): wide random tanh
//! networks in plain f64, weights N(0, σ_w²/n) and biases N(0, σ_b²) drawn afresh for every
//! layer, carry inputs whose correlation starts near the fixed point c*. Theory says their
//! distance from c* shrinks by χ_c = e^{−1/ξ_c} per layer, in the chaotic phase (c* < 1) and
//! in the ordered one (c* = 1, χ_c = χ₁).
//!
//! What a finite width n adds: each layer's empirical correlation is a mean over n rows, so it
//! scatters around the map's value by about (1 − c²)/√n, independently from layer to layer
//! (fresh weights). Each test estimates the per-layer factor from many layers and networks,
//! with the standard error that this scatter gives its estimator, and allows 5 of those plus
//! the map's own nonlinearity over the distances used (theory, computed alongside).

use gradstab::ops::activation::Activation;
use gradstab::theory::phase::{correlation_map, phase_point, PhasePoint};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution, StandardNormal};

/// Width and depth of the nets; how many independent nets each test averages.
const WIDTH: usize = 1000;
const DEPTH: usize = 20;
const ORDERED_DEPTH: usize = 40;
const NETWORKS: u64 = 4;
const CHAOTIC_NETWORKS: u64 = 16;
const SIGMA_B2: f64 = 0.05;

fn normal(rng: &mut ChaCha12Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

/// 1 − correlation, without losing digits near 1.
fn decorrelation(a: &[f64], b: &[f64]) -> f64 {
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    (norms - dot(a, b)) / norms
}

/// z ← W·tanh(z) + b for both vectors, one fresh layer of the given width.
fn layer(rng: &mut ChaCha12Rng, pair: &mut [Vec<f64>; 2], sigma_w2: f64) {
    let n = pair[0].len();
    let h = pair
        .clone()
        .map(|z| z.iter().map(|x| x.tanh()).collect::<Vec<f64>>());
    let scale = (sigma_w2 / n as f64).sqrt();
    let mut row = vec![0.0; n];
    for i in 0..n {
        for w in row.iter_mut() {
            *w = scale * normal(rng);
        }
        let b = SIGMA_B2.sqrt() * normal(rng);
        for (z, h) in pair.iter_mut().zip(&h) {
            z[i] = dot(&row, h) + b;
        }
    }
}

/// Two pre-activation vectors of second moment exactly q and correlation exactly c:
/// √q·e1 and √q·(c·e1 + √(1 − c²)·e2) for orthogonal e1, e2 with ‖e‖² = n.
fn inputs(rng: &mut ChaCha12Rng, n: usize, q: f64, c: f64) -> [Vec<f64>; 2] {
    let mut e1: Vec<f64> = (0..n).map(|_| normal(rng)).collect();
    let mut e2: Vec<f64> = (0..n).map(|_| normal(rng)).collect();
    let norm = |e: &mut Vec<f64>| {
        let s = (n as f64 / dot(e, e)).sqrt();
        e.iter_mut().for_each(|x| *x *= s);
    };
    norm(&mut e1);
    let along = dot(&e1, &e2) / dot(&e1, &e1);
    e2.iter_mut().zip(&e1).for_each(|(x, y)| *x -= along * y);
    norm(&mut e2);
    let s = (1.0 - c * c).sqrt();
    let second = e1.iter().zip(&e2).map(|(a, b)| q.sqrt() * (c * a + s * b));
    let first = e1.iter().map(|a| q.sqrt() * a);
    [first.collect(), second.collect()]
}

/// `measure` of the pair after each of `depth` layers (index 0: the inputs), one network.
fn trajectory(
    p: &PhasePoint,
    width: usize,
    c0: f64,
    depth: usize,
    seed: u64,
    measure: fn(&[f64], &[f64]) -> f64,
) -> Vec<f64> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut pair = inputs(&mut rng, width, p.q_star, c0);
    let mut out = vec![measure(&pair[0], &pair[1])];
    for _ in 0..depth {
        layer(&mut rng, &mut pair, p.sigma_w2);
        out.push(measure(&pair[0], &pair[1]));
    }
    out
}

/// Chaotic, σ_w² = 2.5 (c* ≈ 0.447, χ_c ≈ 0.919, ξ_c ≈ 11.8). Half the nets start at
/// c* + 0.4, half at c* − 0.4. With g_l = c_l − c*, each layer gives g_{l+1} = S·g_l + noise,
/// fresh noise of std ≈ (1 − c²)/√n; the least-squares S = Σ g_l·g_{l+1} / Σ g_l² has standard
/// error s/√(Σ g_l²), s the residuals' std. The map's curvature over gaps of 0.4 moves S off
/// χ_c; the same estimator on the map's own trajectories, S_map, says by how much. So S must
/// be within 5 standard errors of S_map, and S_map within its curvature of χ_c.
#[test]
fn a_wide_tanh_net_forgets_correlations_at_the_rate_of_chaos() {
    let tanh = Activation::Tanh;
    let p = phase_point(&tanh, 2.5, SIGMA_B2).unwrap();
    assert!(p.is_chaotic() && p.c_star < 0.5, "{p:?}");
    let map = |c| correlation_map(&tanh, p.sigma_w2, SIGMA_B2, p.q_star, c);
    let (mut measured, mut theory) = (Vec::new(), Vec::new());
    for network in 0..CHAOTIC_NETWORKS {
        let c0 = p.c_star + if network % 2 == 0 { 0.4 } else { -0.4 };
        let c = trajectory(&p, WIDTH, c0, DEPTH, 0xc4a0 + network, correlation);
        measured.extend(c.windows(2).map(|w| (w[0] - p.c_star, w[1] - p.c_star)));
        let mut c = c0;
        for _ in 0..DEPTH {
            theory.push((c - p.c_star, map(c) - p.c_star));
            c = map(c);
        }
    }
    let slope = |pairs: &[(f64, f64)]| {
        pairs.iter().map(|(a, b)| a * b).sum::<f64>()
            / pairs.iter().map(|(a, _)| a * a).sum::<f64>()
    };
    let s = slope(&measured);
    let residual_variance = measured
        .iter()
        .map(|(a, b)| (b - s * a).powi(2))
        .sum::<f64>()
        / (measured.len() - 1) as f64;
    let standard_error =
        (residual_variance / measured.iter().map(|(a, _)| a * a).sum::<f64>()).sqrt();
    let s_map = slope(&theory);
    let tolerance = 5.0 * standard_error;
    eprintln!(
        "chaotic: per-layer factor {s:.4} ± {standard_error:.4}, χ_c = {:.4} (ξ_c = {:.2}), \
         map's own {:.4}, tolerance {tolerance:.4}; residual std {:.4} vs (1 − c*²)/√n = {:.4}",
        p.chi_c,
        p.xi_c,
        s_map,
        residual_variance.sqrt(),
        (1.0 - p.c_star * p.c_star) / (WIDTH as f64).sqrt()
    );
    // Able to tell χ_c from 1 (and from χ₁ > 1): the band around χ_c excludes 1.
    let band = tolerance + (s_map - p.chi_c).abs();
    assert!(band < 1.0 - p.chi_c, "too noisy to test");
    assert!((s - s_map).abs() <= tolerance, "{s} vs the map's {s_map}");
}

/// Ordered, σ_w² = 1.3 (c* = 1, χ_c = χ₁ ≈ 0.880, ξ_c ≈ 7.8): pairs at correlation 1 − 10⁻³.
/// Near 1 an empirical correlation's scatter shrinks with 1 − c, so each layer's ratio
/// (1 − c_{l+1})/(1 − c_l) scatters by O(1/√n) whatever the layer: the mean of their logs
/// estimates ln χ₁ with its sample standard error, biased by half their variance (Jensen)
/// and by the map's curvature at 1 − 10⁻³ (theory's secant against its slope).
#[test]
fn a_wide_tanh_net_aligns_its_inputs_at_the_rate_of_order() {
    let tanh = Activation::Tanh;
    let p = phase_point(&tanh, 1.3, SIGMA_B2).unwrap();
    assert!(!p.is_chaotic() && p.c_star == 1.0, "{p:?}");
    let delta = 1e-3;
    let secant =
        (1.0 - correlation_map(&tanh, p.sigma_w2, SIGMA_B2, p.q_star, 1.0 - delta)) / delta;
    let mut logs = Vec::new();
    for network in 0..NETWORKS {
        let g = trajectory(
            &p,
            WIDTH,
            1.0 - delta,
            ORDERED_DEPTH,
            0x0de2 + network,
            decorrelation,
        );
        logs.extend(g.windows(2).map(|w| (w[1] / w[0]).ln()));
    }
    let n = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let variance = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let standard_error = (variance / n).sqrt();
    let tolerance = 5.0 * standard_error + variance / 2.0 + (secant / p.chi_c).ln().abs();
    let expected = -1.0 / p.xi_c;
    eprintln!(
        "ordered: per-layer ln ratio {mean:.4} ± {standard_error:.4}, −1/ξ_c = {expected:.4} \
         (ξ_c = {:.2}), tolerance {tolerance:.4}",
        p.xi_c
    );
    assert!(tolerance < 0.5 * expected.abs(), "too noisy to test");
    assert!(
        (mean - expected).abs() <= tolerance,
        "{mean} vs −1/ξ_c = {expected}"
    );
}
