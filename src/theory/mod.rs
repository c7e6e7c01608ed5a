//! What theory predicts for every layer: the mean-field recursion of docs/theory.md (Poole et
//! al. 2016, Schoenholz et al. 2017), for any activation, bias and initialiser.
//!
//! Forward, the pre-activation's second moment is q^t = n_{t−1}·E\[w²\]·m^{t−1} + σ_b², where
//! m^{t−1} = E[φ(z)²] with z ~ N(0, q^{t−1}) is the second moment of the layer's input (the
//! input batch's own for t = 1). Backward, each layer multiplies the gradient's second moment
//! by n_t·E\[w²\]·E\[φ'(z)²\]. With residual connections h^t = h^{t−1} + φ(z^t), both add to the
//! identity path instead. The one-dimensional Gaussian expectations use Gauss–Hermite
//! quadrature; with an even number of nodes there is no node at 0, so the kink of ReLU splits
//! the symmetric nodes exactly in half and its integrals are exact too.

pub mod bivariate;
pub mod phase;

use crate::ops::activation::Activation;

/// Nodes of the quadrature. Enough for the smooth activations to f64 precision over the
/// variances that occur (the integrands are analytic and bounded).
pub const QUADRATURE_NODES: usize = 96;

/// Gauss–Hermite nodes and weights for ∫ e^{−x²} f(x) dx (Golub–Welsch would need an eigen
/// solver; Newton's method on the Hermite recurrence from the asymptotic guesses of Numerical
/// Recipes §4.6 converges to full precision in a few steps).
pub fn gauss_hermite(n: usize) -> (Vec<f64>, Vec<f64>) {
    let pi_quarter = std::f64::consts::PI.powf(-0.25);
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    let m = n.div_ceil(2);
    let mut z = 0.0f64;
    for i in 0..m {
        z = match i {
            0 => (2.0 * n as f64 + 1.0).sqrt() - 1.85575 * (2.0 * n as f64 + 1.0).powf(-1.0 / 6.0),
            1 => z - 1.14 * (n as f64).powf(0.426) / z,
            2 => 1.86 * z - 0.86 * x[0],
            3 => 1.91 * z - 0.91 * x[1],
            _ => 2.0 * z - x[i - 2],
        };
        let mut pp = 0.0;
        for _ in 0..100 {
            // Orthonormal Hermite recurrence for p_n(z) and its derivative.
            let mut p1 = pi_quarter;
            let mut p2 = 0.0;
            for j in 0..n {
                let p3 = p2;
                p2 = p1;
                p1 = z * (2.0 / (j as f64 + 1.0)).sqrt() * p2
                    - (j as f64 / (j as f64 + 1.0)).sqrt() * p3;
            }
            pp = (2.0 * n as f64).sqrt() * p2;
            let step = p1 / pp;
            z -= step;
            if step.abs() <= 1e-15 * z.abs().max(1.0) {
                break;
            }
        }
        x[i] = z;
        x[n - 1 - i] = -z;
        w[i] = 2.0 / (pp * pp);
        w[n - 1 - i] = w[i];
    }
    (x, w)
}

/// E[f(z)] for z ~ N(0, q).
pub fn gaussian_expectation(q: f64, f: impl Fn(f64) -> f64) -> f64 {
    thread_local! {
        static RULE: (Vec<f64>, Vec<f64>) = gauss_hermite(QUADRATURE_NODES);
    }
    RULE.with(|(x, w)| {
        let scale = (2.0 * q.max(0.0)).sqrt();
        let sum: f64 = x.iter().zip(w).map(|(&xi, &wi)| wi * f(scale * xi)).sum();
        sum / std::f64::consts::PI.sqrt()
    })
}

/// E[φ(z)²] for z ~ N(0, q).
pub fn activation_second_moment(activation: &Activation, q: f64) -> f64 {
    gaussian_expectation(q, |z| activation.reference(z).powi(2))
}

/// E[φ'(z)²] for z ~ N(0, q).
pub fn derivative_second_moment(activation: &Activation, q: f64) -> f64 {
    gaussian_expectation(q, |z| activation.reference_derivative(z).powi(2))
}

/// The predicted second moments of one network, layer by layer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    /// q^t = E[(z^t)²] for t = 1..=depth (index 0 unused, NaN).
    pub pre_activation_second_moment: Vec<f64>,
    /// E[(h^t)²] for t = 0..=depth.
    pub activation_second_moment: Vec<f64>,
    /// E[(∂l/∂h^t)²] for t = 0..=depth.
    pub grad_second_moment: Vec<f64>,
}

/// Where backward starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TopGradient {
    /// E[(∂l/∂h^d)²] = 1 (an N(0, 1) probe, or l = Σ h^d).
    Unit,
    /// l = mean((h^d − y)²) over `elements` values, with targets y ~ N(0, 1).
    MseAgainstStandardNormal { elements: f64 },
    /// Mean cross-entropy of `rows` rows of `classes` logits: ∂l/∂z = (softmax(z) − onehot)/rows.
    /// Its second moment is taken at equal logits, (C − 1)/(C²·rows²): for labels independent
    /// of the logits, E[Σ_j (p_j − onehot_j)²] = E[Σ p²] − 2/C + 1 ≥ (C − 1)/C, so it is a
    /// lower bound that holds while the logits are small (at initialisation).
    CrossEntropy { rows: f64, classes: f64 },
}

/// What the recursion needs to know about a network, as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct MeanFieldNetwork {
    /// n_0 (the input width), n_1, …, n_d.
    pub widths: Vec<usize>,
    pub activation: Activation,
    /// E\[w²\] of layer t's weights at index t − 1, as the initialiser draws them.
    pub weight_second_moments: Vec<f64>,
    /// E\[x²\] of the input.
    pub input_second_moment: f64,
    /// σ_b² of layer t at index t − 1 (the second moment of its biases); 0 without.
    pub bias_variances: Vec<f64>,
    /// h^t = h^{t−1} + φ(z^t).
    pub residual: bool,
    /// Whether φ follows the last layer too; without it h^d = z^d (a linear head, which
    /// takes no residual connection).
    pub output_activation: bool,
    pub top_gradient: TopGradient,
}

/// The mean-field prediction for `network`.
pub fn predict(network: &MeanFieldNetwork) -> Prediction {
    let d = network.widths.len() - 1;
    let act = &network.activation;
    let mut q = vec![f64::NAN; d + 1];
    let mut m = vec![0.0; d + 1];
    m[0] = network.input_second_moment;
    for t in 1..=d {
        let n_in = network.widths[t - 1];
        q[t] = n_in as f64 * network.weight_second_moments[t - 1] * m[t - 1]
            + network.bias_variances[t - 1];
        if t == d && !network.output_activation {
            m[t] = q[t];
            continue;
        }
        let fresh = activation_second_moment(act, q[t]);
        m[t] = if network.residual {
            m[t - 1] + fresh
        } else {
            fresh
        };
    }
    let mut g = vec![0.0; d + 1];
    g[d] = match network.top_gradient {
        TopGradient::Unit => 1.0,
        // ∂/∂h of mean((h − y)²) is 2(h − y)/N, with targets y ~ N(0, 1).
        TopGradient::MseAgainstStandardNormal { elements } => {
            4.0 * (m[d] + 1.0) / (elements * elements)
        }
        TopGradient::CrossEntropy { rows, classes } => {
            (classes - 1.0) / (classes * classes * rows * rows)
        }
    };
    for t in (1..=d).rev() {
        let n_out = network.widths[t];
        let linear_head = t == d && !network.output_activation;
        let derivative = if linear_head {
            1.0
        } else {
            derivative_second_moment(act, q[t])
        };
        let chi = n_out as f64 * network.weight_second_moments[t - 1] * derivative;
        g[t - 1] = if network.residual && !linear_head {
            g[t] * (1.0 + chi)
        } else {
            g[t] * chi
        };
    }
    Prediction {
        pre_activation_second_moment: q,
        activation_second_moment: m,
        grad_second_moment: g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadrature_integrates_polynomials_exactly() {
        // E[z^2k] = (2k − 1)!! q^k for z ~ N(0, q).
        for q in [0.01, 1.0, 37.0] {
            for (k, double_factorial) in [(1, 1.0), (2, 3.0), (3, 15.0), (4, 105.0)] {
                let e = gaussian_expectation(q, |z| z.powi(2 * k));
                let exact = double_factorial * q.powi(k);
                assert!(
                    (e - exact).abs() <= 1e-12 * exact,
                    "k={k} q={q}: {e} vs {exact}"
                );
            }
        }
        let (_, w) = gauss_hermite(QUADRATURE_NODES);
        assert!((w.iter().sum::<f64>() - std::f64::consts::PI.sqrt()).abs() < 1e-13);
    }

    #[test]
    fn quadrature_reproduces_the_closed_forms_of_linear_and_relu() {
        let linear = Activation::Linear {
            alpha: 1.5,
            beta: -0.25,
        };
        for q in [1e-6, 0.3, 1.0, 250.0, 1e8] {
            // Linear: E[φ²] = α²q + β², E[φ'²] = α².
            let closed = 2.25 * q + 0.0625;
            assert!((activation_second_moment(&linear, q) - closed).abs() <= 1e-10 * closed);
            assert!((derivative_second_moment(&linear, q) - 2.25).abs() <= 1e-10);
            // ReLU: E[φ²] = q/2, E[φ'²] = 1/2.
            assert!((activation_second_moment(&Activation::Relu, q) - q / 2.0).abs() <= 1e-10 * q);
            assert!((derivative_second_moment(&Activation::Relu, q) - 0.5).abs() <= 1e-10);
            // Leaky ReLU with slope s: (1 + s²)/2 of each.
            let leaky = Activation::LeakyRelu { slope: 0.1 };
            let slope = 0.1f32 as f64; // the activation keeps its slope as f32
            let f = (1.0 + slope * slope) / 2.0;
            assert!((activation_second_moment(&leaky, q) - f * q).abs() <= 1e-10 * q * f);
        }
    }

    /// A network of unequal widths 16, 64, 8, 32 with these weight second moments.
    fn unequal(activation: Activation, weight_second_moments: Vec<f64>) -> MeanFieldNetwork {
        MeanFieldNetwork {
            widths: vec![16, 64, 8, 32],
            activation,
            weight_second_moments,
            input_second_moment: 0.7,
            bias_variances: vec![0.0; 3],
            residual: false,
            output_activation: true,
            top_gradient: TopGradient::Unit,
        }
    }

    fn assert_close(got: &[f64], want: &[f64], what: &str) {
        for (t, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-10 * w.abs(), "{what} {t}: {g} vs {w}");
        }
    }

    /// Backward multiplies by the fan-out n_t of the layer after, forward by the fan-in
    /// n_{t−1}; only unequal widths tell them apart. ReLU, E[φ²] = q/2 and E[φ'²] = 1/2:
    /// - He fan_in, E[w²] = 2/n_{t−1}: q^t = 2·m^0 at every layer, and the gradient's second
    ///   moment n_t·(2/n_{t−1})/2 per layer telescopes to g^t = n_d/n_t;
    /// - He fan_out, E[w²] = 2/n_t: the gradient keeps g^t = 1, and q^t = 2·m^0·n_0/n_t.
    #[test]
    fn the_gradient_grows_by_the_fan_out_on_unequal_widths() {
        use crate::init::{FanMode, Gain, Init};
        let w = [16.0, 64.0, 8.0, 32.0];
        let relu = Activation::Relu;
        for (mode, q, g) in [
            (FanMode::FanIn, [1.4; 3], [2.0, 0.5, 4.0, 1.0]),
            (
                FanMode::FanOut,
                [1.4 * w[0] / w[1], 1.4 * w[0] / w[2], 1.4 * w[0] / w[3]],
                [1.0; 4],
            ),
        ] {
            let init = Init::KaimingNormal {
                mode,
                gain: Gain::PyTorchDefault,
            };
            let moments = (1..=3)
                .map(|t| init.second_moment(w[t - 1] as usize, w[t] as usize, &relu))
                .collect();
            let p = predict(&unequal(relu, moments));
            assert_close(&p.pre_activation_second_moment[1..], &q, "q^t");
            assert_close(&p.grad_second_moment, &g, "∂l/∂h^t");
        }
    }

    /// A linear activation φ(z) = αz with a different E[w²] = s_t per layer: q^t =
    /// n_{t−1}·s_t·α²·q^{t−1} (q^1 = n_0·s_1·m^0) and g^{t−1} = n_t·s_t·α²·g^t, each product
    /// written out.
    #[test]
    fn a_linear_network_of_unequal_widths_has_closed_form_moments() {
        let (n0, n1, n2, n3) = (16.0, 64.0, 8.0, 32.0);
        let (s1, s2, s3) = (0.03, 0.02, 0.05);
        let a2 = 1.5f64 * 1.5;
        let linear = Activation::Linear {
            alpha: 1.5,
            beta: 0.0,
        };
        let p = predict(&unequal(linear, vec![s1, s2, s3]));
        let m0 = 0.7;
        let q1 = n0 * s1 * m0;
        let q2 = n1 * s2 * a2 * q1;
        let q3 = n2 * s3 * a2 * q2;
        assert_close(&p.pre_activation_second_moment[1..], &[q1, q2, q3], "q^t");
        let g3 = 1.0;
        let g2 = n3 * s3 * a2 * g3;
        let g1 = n2 * s2 * a2 * g2;
        let g0 = n1 * s1 * a2 * g1;
        assert_close(&p.grad_second_moment, &[g0, g1, g2, g3], "∂l/∂h^t");
    }

    /// Without the output activation the last layer is linear with α = 1, whatever φ: with
    /// ReLU's E[φ'²] = 1/2 below it, m^3 = q^3 and g^2 = n_3·s_3·g^3 (not half of it), and
    /// cross-entropy over C = 32 classes and N rows starts from (C − 1)/(C²·N²).
    #[test]
    fn a_linear_head_skips_the_activation_at_the_top_only() {
        let (n0, n1, n2, n3) = (16.0, 64.0, 8.0, 32.0);
        let (s1, s2, s3) = (0.03, 0.02, 0.05);
        let rows = 10.0;
        let p = predict(&MeanFieldNetwork {
            output_activation: false,
            top_gradient: TopGradient::CrossEntropy { rows, classes: n3 },
            ..unequal(Activation::Relu, vec![s1, s2, s3])
        });
        let q1 = n0 * s1 * 0.7;
        let q2 = n1 * s2 * q1 / 2.0;
        let q3 = n2 * s3 * q2 / 2.0;
        assert_close(&p.pre_activation_second_moment[1..], &[q1, q2, q3], "q^t");
        assert_close(&p.activation_second_moment[3..], &[q3], "m^3");
        let g3 = (n3 - 1.0) / (n3 * n3 * rows * rows);
        let g2 = n3 * s3 * g3;
        let g1 = n2 * s2 * g2 / 2.0;
        let g0 = n1 * s1 * g1 / 2.0;
        assert_close(&p.grad_second_moment, &[g0, g1, g2, g3], "∂l/∂h^t");
    }

    #[test]
    fn tanh_at_the_edge_of_chaos_keeps_the_gradient() {
        // For small q, E[tanh'(z)²] → 1: with σ_w² = 1 the gradient neither grows nor shrinks.
        let chi = derivative_second_moment(&Activation::Tanh, 1e-8);
        assert!((chi - 1.0).abs() < 1e-7);
        // Sigmoid's derivative is at most 1/4, so χ ≤ σ_w²/16.
        assert!(derivative_second_moment(&Activation::Sigmoid, 1.0) < 1.0 / 16.0);
    }
}
