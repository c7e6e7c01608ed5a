//! An independent f64 reference of a deep MLP's forward and backward pass, sharing no code
//! with `gradstab::network`, checked against central finite differences, and every backend in
//! every precision held to it value by value.
//!
//! The reference takes the weights, biases, input and loss data exactly as a backend stores
//! them, computes every tensor in f64, and carries beside each value a bound on how far a
//! conforming backend's result may lie from it: a running forward error analysis. Each
//! operation adds its own rounding (γ_k·Σ|a||b| for a product of k terms with u the
//! accumulator's unit roundoff, u·|result| for one rounding, u_store·|result| for the f16
//! store of f16acc32, half a subnormal spacing per operation) to the propagated errors of its
//! inputs (Σ(Ea·|b| + |a|·Eb + Ea·Eb) for a product, L·E for an activation whose slope on the
//! interval of possible inputs is at most L, the whole jump where a derivative's kink lies in
//! that interval). Planting a wrong transpose, dropping act' or a bias, or losing the residual
//! path moves results far outside these bounds.

mod common;

use gradstab::init::{FanMode, Gain, Init, InputInit};
use gradstab::network::{trace, Clip, Loss, NetworkConfig, Trace};
use gradstab::ops::activation::ExpAccuracy;
use gradstab::{Activation, Backend, Cpu, DType, HostTensor, Precision};

/// A matrix of f64 values, row-major.
#[derive(Clone, Debug)]
struct Mat {
    rows: usize,
    cols: usize,
    v: Vec<f64>,
}

impl Mat {
    fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            v: vec![0.0; rows * cols],
        }
    }

    fn of(t: &HostTensor) -> Mat {
        Mat {
            rows: t.shape().rows,
            cols: t.shape().cols,
            v: t.to_f64_vec(),
        }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.v[i * self.cols + j]
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> Mat {
        Mat {
            v: self.v.iter().map(|&x| f(x)).collect(),
            ..*self
        }
    }

    fn zip(&self, o: &Mat, f: impl Fn(f64, f64) -> f64) -> Mat {
        assert_eq!((self.rows, self.cols), (o.rows, o.cols));
        Mat {
            v: self.v.iter().zip(&o.v).map(|(&a, &b)| f(a, b)).collect(),
            ..*self
        }
    }
}

/// A value and the bound on a conforming backend's distance from it, element by element.
#[derive(Clone, Debug)]
struct Bounded {
    value: Mat,
    error: Mat,
}

impl Bounded {
    fn exact(value: Mat) -> Bounded {
        let error = Mat::zeros(value.rows, value.cols);
        Bounded { value, error }
    }
}

/// What one rounding costs in a precision.
#[derive(Clone, Copy, Debug)]
struct Rounding {
    /// Unit roundoff of the arithmetic type.
    u: f64,
    /// Unit roundoff of the extra store of f16acc32 (0 where the arithmetic type is stored).
    u_store: f64,
    /// Absolute error one operation may add near zero: half a subnormal spacing, or the
    /// smallest normal where the device flushes subnormals; of the arithmetic type and of the
    /// store.
    floor: f64,
    /// How accurate the backend's `exp` is, which bounds its activations.
    exp: ExpAccuracy,
}

impl Rounding {
    fn of(precision: Precision, flushes_subnormals: bool, exp: ExpAccuracy) -> Rounding {
        let near_zero = |d: DType| {
            if flushes_subnormals {
                d.min_normal()
            } else {
                d.subnormal_half_spacing()
            }
        };
        Rounding {
            u: precision.arithmetic().unit_roundoff(),
            u_store: if precision.rounds_on_store() {
                precision.storage().unit_roundoff()
            } else {
                0.0
            },
            floor: near_zero(precision.arithmetic()) + near_zero(precision.storage()),
            exp,
        }
    }

    fn gamma(&self, k: usize) -> f64 {
        let ku = k as f64 * self.u;
        assert!(ku < 0.5, "γ_{k} is meaningless at u = {}", self.u);
        ku / (1.0 - ku)
    }

    /// The error of storing a result of magnitude at most `magnitude` once more in f16.
    fn store(&self, magnitude: f64) -> f64 {
        self.u_store * magnitude
    }
}

/// `op(A)·op(B)` with the error of a backend that sums k products in any order, from inputs
/// with errors of their own.
fn matmul(a: &Bounded, ta: bool, b: &Bounded, tb: bool, r: Rounding) -> Bounded {
    let get = |m: &Mat, t: bool, i: usize, j: usize| if t { m.at(j, i) } else { m.at(i, j) };
    let (m, k) = if ta {
        (a.value.cols, a.value.rows)
    } else {
        (a.value.rows, a.value.cols)
    };
    let n = if tb { b.value.rows } else { b.value.cols };
    let mut out = Bounded::exact(Mat::zeros(m, n));
    for i in 0..m {
        for j in 0..n {
            let (mut c, mut propagated, mut magnitude) = (0.0, 0.0, 0.0);
            for p in 0..k {
                let (x, ex) = (get(&a.value, ta, i, p), get(&a.error, ta, i, p));
                let (y, ey) = (get(&b.value, tb, p, j), get(&b.error, tb, p, j));
                c += x * y;
                propagated += ex * y.abs() + x.abs() * ey + ex * ey;
                magnitude += (x.abs() + ex) * (y.abs() + ey);
            }
            let before_store = propagated + r.gamma(k) * magnitude + 2.0 * k as f64 * r.floor;
            out.value.v[i * n + j] = c;
            out.error.v[i * n + j] = before_store + r.store(c.abs() + before_store);
        }
    }
    out
}

/// `y + a·x` computed as one product and one sum, each rounded.
fn axpy(a: f64, x: &Bounded, y: &Bounded, r: Rounding) -> Bounded {
    let value = x.value.zip(&y.value, |xv, yv| yv + a * xv);
    let mut error = x.error.zip(&y.error, |ex, ey| a.abs() * ex + ey);
    for i in 0..error.v.len() {
        let magnitude = value.v[i].abs() + error.v[i];
        let product = (a * x.value.v[i]).abs() + a.abs() * x.error.v[i];
        error.v[i] += r.u * (magnitude + product) + r.store(magnitude) + 2.0 * r.floor;
    }
    Bounded { value, error }
}

/// `x ⊙ y`, one rounding.
fn hadamard(x: &Bounded, y: &Bounded, r: Rounding) -> Bounded {
    let value = x.value.zip(&y.value, |a, b| a * b);
    let mut error = Mat::zeros(value.rows, value.cols);
    for i in 0..value.v.len() {
        let (a, ea, b, eb) = (x.value.v[i], x.error.v[i], y.value.v[i], y.error.v[i]);
        let propagated = ea * b.abs() + a.abs() * eb + ea * eb;
        let magnitude = (a.abs() + ea) * (b.abs() + eb);
        error.v[i] = propagated + r.u * magnitude + r.store(magnitude) + r.floor;
    }
    Bounded { value, error }
}

/// `s·x` where the kernel receives `s` as an f32 rounded to the arithmetic type.
fn scale(s: f64, x: &Bounded, r: Rounding) -> Bounded {
    let s_err = s.abs() * (DType::F32.unit_roundoff() + r.u);
    let value = x.value.map(|v| s * v);
    let mut error = Mat::zeros(value.rows, value.cols);
    for i in 0..value.v.len() {
        let (v, e) = (x.value.v[i], x.error.v[i]);
        let magnitude = (s.abs() + s_err) * (v.abs() + e);
        error.v[i] =
            s.abs() * e + s_err * (v.abs() + e) + r.u * magnitude + r.store(magnitude) + r.floor;
    }
    Bounded { value, error }
}

/// The largest |φ'| (or, for the derivative, |φ''|) on [lo, hi], and the largest jump of φ'
/// there (its kinks).
fn slope_and_jump(act: Activation, lo: f64, hi: f64, derivative: bool) -> (f64, f64) {
    let nearest_zero = if lo <= 0.0 && hi >= 0.0 {
        0.0
    } else {
        lo.abs().min(hi.abs())
    };
    let straddles = lo <= 0.0 && hi > 0.0;
    let sech2 = |x: f64| 1.0 / x.cosh().powi(2);
    // The largest |f| on [lo, hi] for a smooth f whose |f| has its maxima at ±peak only.
    let local_max = |f: &dyn Fn(f64) -> f64, peak: f64| {
        let mut m = f(lo).abs().max(f(hi).abs());
        for p in [-peak, peak] {
            if lo <= p && p <= hi {
                m = m.max(f(p).abs());
            }
        }
        m
    };
    let sigmoid = |x: f64| act.reference(x);
    // ln(2 + √3) and atanh(1/√3): where |σ''| and |tanh''| peak.
    let (sigmoid_peak, tanh_peak) = ((2.0 + 3f64.sqrt()).ln(), (1.0 / 3f64.sqrt()).atanh());
    match (act, derivative) {
        (Activation::Linear { alpha, .. }, false) => (alpha.abs() as f64, 0.0),
        (Activation::Linear { .. }, true) => (0.0, 0.0),
        (Activation::Relu, false) => (1.0, 0.0),
        (Activation::Relu, true) => (0.0, if straddles { 1.0 } else { 0.0 }),
        (Activation::LeakyRelu { slope }, false) => ((slope.abs() as f64).max(1.0), 0.0),
        (Activation::LeakyRelu { slope }, true) => (
            0.0,
            if straddles {
                (1.0 - slope as f64).abs()
            } else {
                0.0
            },
        ),
        // σ' = σ(x)σ(−x) falls with |x|; σ'' = σ'(1 − 2σ).
        (Activation::Sigmoid, false) => (act.reference_derivative(nearest_zero), 0.0),
        (Activation::Sigmoid, true) => (
            local_max(
                &|x| act.reference_derivative(x) * (1.0 - 2.0 * sigmoid(x)),
                sigmoid_peak,
            ),
            0.0,
        ),
        // tanh' = sech² falls with |x|; tanh'' = −2·tanh·sech².
        (Activation::Tanh, false) => (sech2(nearest_zero), 0.0),
        (Activation::Tanh, true) => (local_max(&|x| 2.0 * x.tanh() * sech2(x), tanh_peak), 0.0),
        // 2·tanh(x/2): slope sech²(x/2), second derivative −tanh(x/2)·sech²(x/2).
        (Activation::ScaledSigmoid, false) => (sech2(nearest_zero / 2.0), 0.0),
        (Activation::ScaledSigmoid, true) => (
            local_max(&|x| (x / 2.0).tanh() * sech2(x / 2.0), 2.0 * tanh_peak),
            0.0,
        ),
    }
}

/// φ(z) or φ'(z), with the kernel's own error (`Activation::error_bound`, checked against f64
/// in tests/activation.rs) at the worst input the interval z ± E allows, plus the propagated
/// error.
fn activation(
    act: Activation,
    z: &Bounded,
    precision: Precision,
    derivative: bool,
    r: Rounding,
) -> Bounded {
    let f = |x: f64| {
        if derivative {
            act.reference_derivative(x)
        } else {
            act.reference(x)
        }
    };
    let value = z.value.map(f);
    let mut error = Mat::zeros(value.rows, value.cols);
    for i in 0..value.v.len() {
        let (x, e) = (z.value.v[i], z.error.v[i]);
        let (lo, hi) = (x - e, x + e);
        let (slope, jump) = slope_and_jump(act, lo, hi, derivative);
        let mut candidates = vec![lo, x, hi];
        if lo < 0.0 && hi > 0.0 {
            candidates.push(0.0);
        }
        let own = candidates
            .into_iter()
            .map(|c| act.error_bound_with(c, precision, derivative, r.exp))
            .fold(0.0, f64::max);
        error.v[i] = own + slope * e + jump;
    }
    Bounded { value, error }
}

/// The data of one network as a backend stores it.
struct Stored {
    config: NetworkConfig,
    precision: Precision,
    act: Activation,
    input: Mat,
    weights: Vec<Mat>,
    biases: Vec<Option<Mat>>,
    upstream: Option<Mat>,
    targets: Option<Mat>,
}

impl Stored {
    fn of(config: &NetworkConfig, precision: Precision) -> Stored {
        let dtype = precision.storage();
        let d = config.depth;
        Stored {
            config: config.clone(),
            precision,
            act: config.activation.rounded_to(precision.arithmetic()),
            input: Mat::of(&config.input_batch(dtype).unwrap()),
            weights: (1..=d)
                .map(|t| Mat::of(&config.weight(t, dtype).unwrap()))
                .collect(),
            biases: (1..=d)
                .map(|t| config.bias(t, dtype).unwrap().map(|b| Mat::of(&b)))
                .collect(),
            upstream: config
                .upstream_gradient(dtype)
                .unwrap()
                .map(|u| Mat::of(&u)),
            targets: config.targets(dtype).unwrap().map(|y| Mat::of(&y)),
        }
    }
}

/// Every tensor of the pass, with its bound.
struct Reference {
    z: Vec<Option<Bounded>>,
    h: Vec<Bounded>,
    grad_h: Vec<Bounded>,
    grad_w: Vec<Option<Bounded>>,
}

/// Forward from H^t = `h` through layers t+1..d: the loss, for finite differences.
fn loss_from(s: &Stored, weights: &[Mat], t0: usize, h: &Mat) -> f64 {
    let mut h = h.clone();
    for t in t0 + 1..=s.config.depth {
        let w = &weights[t - 1];
        let mut z = Mat::zeros(h.rows, w.rows);
        for b in 0..h.rows {
            for i in 0..w.rows {
                let mut acc = (0..w.cols).map(|j| h.at(b, j) * w.at(i, j)).sum::<f64>();
                if let Some(bias) = &s.biases[t - 1] {
                    acc += bias.v[i];
                }
                z.v[b * w.rows + i] = acc;
            }
        }
        let a = z.map(|x| s.act.reference(x));
        h = if s.config.residual {
            a.zip(&h, |x, y| x + y)
        } else {
            a
        };
    }
    match s.config.loss {
        Loss::Probe => {
            h.v.iter()
                .zip(&s.upstream.as_ref().unwrap().v)
                .map(|(a, b)| a * b)
                .sum()
        }
        Loss::Sum => h.v.iter().sum(),
        Loss::Mse => {
            let y = s.targets.as_ref().unwrap();
            h.v.iter()
                .zip(&y.v)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                / h.v.len() as f64
        }
        Loss::CrossEntropy => unreachable!("{CROSS_ENTROPY_ELSEWHERE}"),
    }
}

/// This reference covers the losses its configurations draw; cross-entropy, which needs
/// labels from a file, has its own exact reference in tests/run_classifier.rs.
const CROSS_ENTROPY_ELSEWHERE: &str =
    "no configuration here uses cross-entropy (tests/run_classifier.rs checks it)";

/// The reference pass, as PyTorch's autograd would compute it, with bounds.
fn reference(s: &Stored, r: Rounding) -> Reference {
    let d = s.config.depth;
    let p = s.precision;
    let mut z: Vec<Option<Bounded>> = vec![None];
    let mut h = vec![Bounded::exact(s.input.clone())];
    for t in 1..=d {
        let w = Bounded::exact(s.weights[t - 1].clone());
        let mut zt = matmul(&h[t - 1], false, &w, true, r);
        if let Some(b) = &s.biases[t - 1] {
            let broadcast = Mat {
                rows: zt.value.rows,
                cols: zt.value.cols,
                v: (0..zt.value.v.len()).map(|i| b.v[i % b.cols]).collect(),
            };
            zt = axpy(1.0, &Bounded::exact(broadcast), &zt, r);
        }
        let a = activation(s.act, &zt, p, false, r);
        let ht = if s.config.residual {
            axpy(1.0, &a, &h[t - 1], r)
        } else {
            a
        };
        z.push(Some(zt));
        h.push(ht);
    }
    let top = &h[d];
    let n = top.value.v.len() as f64;
    let g_top = match s.config.loss {
        Loss::Probe => Bounded::exact(s.upstream.clone().unwrap()),
        Loss::Sum => Bounded::exact(s.upstream.clone().unwrap()),
        Loss::Mse => {
            let y = Bounded::exact(s.targets.clone().unwrap());
            let diff = axpy(-1.0, &y, top, r);
            scale(2.0 / n, &diff, r)
        }
        Loss::CrossEntropy => unreachable!("{CROSS_ENTROPY_ELSEWHERE}"),
    };
    let mut grad_h: Vec<Option<Bounded>> = vec![None; d + 1];
    let mut grad_w: Vec<Option<Bounded>> = vec![None; d + 1];
    grad_h[d] = Some(g_top);
    for t in (1..=d).rev() {
        let g = grad_h[t].clone().unwrap();
        let derivative = activation(s.act, z[t].as_ref().unwrap(), p, true, r);
        let dz = hadamard(&g, &derivative, r);
        let w = Bounded::exact(s.weights[t - 1].clone());
        let mut dw = matmul(&dz, true, &h[t - 1], false, r);
        let mut g_prev = matmul(&dz, false, &w, false, r);
        if s.config.residual {
            g_prev = axpy(1.0, &g, &g_prev, r);
        }
        if let Some(Clip::Value(limit)) = s.config.clip {
            // The limit reaches the kernel as an f32 rounded to the arithmetic type, and a
            // clamped result is stored (once more in f16 for f16acc32).
            let limit_err = limit * (DType::F32.unit_roundoff() + r.u) + r.store(limit);
            let error = dw.value.zip(&dw.error, |v, e| {
                if v.abs() - e >= limit {
                    limit_err // clamped, whatever the error: only the limit's rounding is left
                } else {
                    e + limit_err
                }
            });
            let clamped = dw.value.v.iter().filter(|v| v.abs() > limit).count();
            assert!(
                0 < clamped && clamped < dw.value.v.len(),
                "dW^{t}: {clamped} of {} values clamped; the test should clamp some",
                dw.value.v.len()
            );
            dw = Bounded {
                value: dw.value.map(|v| v.clamp(-limit, limit)),
                error,
            };
        }
        grad_w[t] = Some(dw);
        grad_h[t - 1] = Some(g_prev);
    }
    if let Some(Clip::Norm(max_norm)) = s.config.clip {
        let norm_of = |m: &Mat| m.v.iter().map(|v| v * v).sum::<f64>();
        let norm = (1..=d)
            .map(|t| norm_of(&grad_w[t].as_ref().unwrap().value))
            .sum::<f64>()
            .sqrt();
        let error_norm = (1..=d)
            .map(|t| norm_of(&grad_w[t].as_ref().unwrap().error))
            .sum::<f64>()
            .sqrt();
        let coefficient = (max_norm / (norm + 1e-6)).min(1.0);
        assert!(
            coefficient < 0.9,
            "the test should clip clearly: {coefficient}"
        );
        // The backend's norm comes from its own values (within error_norm) through an f32
        // reduction (a few hundred roundings at most here), and its factor is rounded to f32.
        let relative = (error_norm + 512.0 * DType::F32.unit_roundoff() * norm) / norm;
        let coefficient_err =
            coefficient * (relative / (1.0 - relative) + DType::F32.unit_roundoff());
        for slot in grad_w.iter_mut().skip(1) {
            let dw = slot.take().unwrap();
            let scaled = scale(coefficient, &dw, r);
            let error = scaled
                .error
                .zip(&dw.value, |e, v| e + coefficient_err * v.abs())
                .zip(&dw.error, |e, ev| e + coefficient_err * ev);
            *slot = Some(Bounded {
                value: scaled.value,
                error,
            });
        }
    }
    Reference {
        z,
        h,
        grad_h: grad_h.into_iter().map(Option::unwrap).collect(),
        grad_w,
    }
}

/// The configurations the reference is checked on: non-square and square nets, every
/// activation, with and without bias, residual connections, each loss and both clippings.
fn configurations() -> Vec<(String, NetworkConfig)> {
    let base = |act: Activation, widths: &[usize]| NetworkConfig {
        activation: act,
        init: Init::XavierNormal {
            gain: Gain::OfActivation,
        },
        input: InputInit::Normal { std: 1.0 },
        seed: 11,
        ..NetworkConfig::new(widths.len() - 1, widths[0], 6)
            .with_widths(widths)
            .unwrap()
    };
    let odd = [5, 7, 3, 4];
    let square = [6, 6, 6, 6];
    let mut out = Vec::new();
    for act in Activation::representatives() {
        out.push((format!("{act} 5-7-3-4 probe"), base(act, &odd)));
    }
    out.push((
        "relu he 5-7-3-4 bias mse".into(),
        NetworkConfig {
            init: Init::KaimingNormal {
                mode: FanMode::FanIn,
                gain: Gain::PyTorchDefault,
            },
            bias_std: 0.5,
            loss: Loss::Mse,
            ..base(Activation::Relu, &odd)
        },
    ));
    out.push((
        "tanh 5-7-3-4 bias sum".into(),
        NetworkConfig {
            bias_std: 0.3,
            loss: Loss::Sum,
            ..base(Activation::Tanh, &odd)
        },
    ));
    out.push(("tanh 6-6-6-6 probe".into(), base(Activation::Tanh, &square)));
    out.push((
        "relu 6-6-6-6 residual mse".into(),
        NetworkConfig {
            residual: true,
            loss: Loss::Mse,
            ..base(Activation::Relu, &square)
        },
    ));
    out.push((
        "sigmoid 6-6-6-6 residual bias probe".into(),
        NetworkConfig {
            residual: true,
            bias_std: 0.2,
            ..base(Activation::Sigmoid, &square)
        },
    ));
    out.push((
        "tanh 5-7-3-4 clip value".into(),
        NetworkConfig {
            clip: Some(Clip::Value(1.0)),
            ..base(Activation::Tanh, &odd)
        },
    ));
    out.push((
        "scaled_sigmoid 5-7-3-4 clip norm".into(),
        NetworkConfig {
            clip: Some(Clip::Norm(0.1)),
            ..base(Activation::ScaledSigmoid, &odd)
        },
    ));
    out
}

#[test]
fn the_reference_gradients_agree_with_central_finite_differences() {
    for (name, config) in configurations() {
        if config.clip.is_some() {
            continue; // clipping changes the update, not the gradient of the loss
        }
        let s = Stored::of(&config, Precision::F32);
        let r = reference(&s, Rounding::of(Precision::F32, false, ExpAccuracy::CPU));
        // A kink of ReLU within reach of the step would make the difference meaningless;
        // such an element is skipped, and there must be few of them.
        let step = 1e-6;
        let mut checked = 0;
        let d = config.depth;
        for t in 1..=d {
            let exact = &r.grad_w[t].as_ref().unwrap().value;
            let scale = exact.v.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for idx in 0..exact.v.len() {
                let loss_at = |delta: f64| {
                    let mut weights = s.weights.clone();
                    weights[t - 1].v[idx] += delta;
                    loss_from(&s, &weights, 0, &s.input)
                };
                let fd = (loss_at(step) - loss_at(-step)) / (2.0 * step);
                let kink = r.z[t..=d]
                    .iter()
                    .flatten()
                    .flat_map(|z| z.value.v.iter())
                    .any(|z| z.abs() < 1e-3);
                if kink
                    && matches!(
                        config.activation,
                        Activation::Relu | Activation::LeakyRelu { .. }
                    )
                {
                    continue;
                }
                checked += 1;
                assert!(
                    (fd - exact.v[idx]).abs() <= 1e-6 * scale.max(1e-3),
                    "{name}: dW^{t}[{idx}] = {} but finite differences give {fd}",
                    exact.v[idx]
                );
            }
        }
        for t in 0..=d {
            let exact = &r.grad_h[t].value;
            let scale = exact.v.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for idx in 0..exact.v.len() {
                let loss_at = |delta: f64| {
                    let mut h = r.h[t].value.clone();
                    h.v[idx] += delta;
                    loss_from(&s, &s.weights, t, &h)
                };
                let fd = (loss_at(step) - loss_at(-step)) / (2.0 * step);
                checked += 1;
                assert!(
                    (fd - exact.v[idx]).abs() <= 1e-6 * scale.max(1e-3),
                    "{name}: dH^{t}[{idx}] = {} but finite differences give {fd}",
                    exact.v[idx]
                );
            }
        }
        assert!(checked > 50, "{name}: only {checked} elements checked");
    }
}

/// Compares one backend's trace with the reference, value by value.
fn compare(name: &str, got: &Trace, r: &Reference) {
    let check = |what: String, got: &HostTensor, want: &Bounded| {
        let got = got.to_f64_vec();
        assert_eq!(got.len(), want.value.v.len(), "{name} {what}: size");
        let want = want.value.v.iter().zip(&want.error.v);
        for (i, (g, (&v, &e))) in got.iter().zip(want).enumerate() {
            // The reference's own f64 rounding, far below any bound it is compared with.
            let bound = e + 1e-12 * (v.abs() + e);
            assert!(
                (g - v).abs() <= bound,
                "{name} {what}[{i}]: got {g:e}, reference {v:e} ± {e:e}"
            );
        }
    };
    let d = r.h.len() - 1;
    for t in 1..=d {
        check(
            format!("Z^{t}"),
            got.pre_activation[t].as_ref().unwrap(),
            r.z[t].as_ref().unwrap(),
        );
        check(format!("H^{t}"), &got.activation[t], &r.h[t]);
        check(
            format!("dW^{t}"),
            got.grad_weight[t].as_ref().unwrap(),
            r.grad_w[t].as_ref().unwrap(),
        );
    }
    for t in 0..=d {
        check(format!("dH^{t}"), &got.grad_activation[t], &r.grad_h[t]);
    }
}

/// The bounds must say something: every weight gradient's bound stays below `limit` times its
/// largest value, so a mistake that moves results by that much cannot hide inside it.
fn assert_bounds_bite(name: &str, r: &Reference, precision: Precision, limit: f64) {
    for (t, g) in r.grad_w.iter().enumerate().skip(1) {
        let g = g.as_ref().unwrap();
        let scale = g.value.v.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let widest = g.error.v.iter().fold(0.0f64, |m, e| m.max(*e));
        assert!(
            widest <= limit * scale,
            "{name} {precision}: the bound of dW^{t} ({widest:e}) is no check against values of {scale:e}"
        );
    }
}

/// How tight the bound of a weight gradient must be, relative to its values: a tenth in f32
/// and f16acc32. Worst-case bounds grow by about Σ|w| per layer (no cancellation is assumed),
/// so in pure f16 (u = 2^-11) three layers forward and back of an exp-based activation (whose
/// `exp` WGSL lets err by 1 + 2|t| ULP), a residual path or the sum loss reach the size of the
/// values themselves: there the a-priori bound guarantees nothing, and only the comparison
/// remains. Pure f16 is held to a tenth on the piecewise-linear nets without residual paths.
/// bf16 rounds every stored result with u = 2^-8, eight times f16's: the same holds for bf16
/// and bf16acc32, and on the piecewise-linear nets they are held to a quarter.
fn bite_limit(precision: Precision, config: &NetworkConfig) -> Option<f64> {
    let piecewise_linear = matches!(
        config.activation,
        Activation::Linear { .. } | Activation::Relu | Activation::LeakyRelu { .. }
    );
    let coarse = matches!(
        precision,
        Precision::F16 | Precision::Bf16 | Precision::Bf16Accumulate32
    );
    if coarse && (!piecewise_linear || config.residual || config.loss == Loss::Sum) {
        None
    } else if precision.storage() == gradstab::DType::Bf16 {
        Some(0.25)
    } else {
        Some(0.1)
    }
}

fn check_backend<B: Backend>(backend: &B, flushes_subnormals: bool, exp: ExpAccuracy) {
    // REFERENCE_ONLY=6-6-6-6 runs only the configurations whose name contains it (for
    // planting a bug that only square nets can run).
    let only = std::env::var("REFERENCE_ONLY").unwrap_or_default();
    for (name, config) in configurations() {
        if !name.contains(&only) {
            continue;
        }
        // FP8 quantises every matmul operand, which no rounding bound of this reference
        // models; tests/fp8.rs checks it against an emulation of its own.
        for precision in Precision::ALL
            .into_iter()
            .filter(|p| p.quantised().is_none())
        {
            if !backend.supports(precision) {
                eprintln!(
                    "SKIPPED {name} {precision}: {}",
                    backend.unsupported(precision)
                );
                continue;
            }
            let s = Stored::of(&config, precision);
            let r = reference(&s, Rounding::of(precision, flushes_subnormals, exp));
            if let Some(limit) = bite_limit(precision, &config) {
                assert_bounds_bite(&name, &r, precision, limit);
            }
            let got = trace(backend, &config, precision).unwrap();
            compare(
                &format!("{} {name} {precision}", backend.info().adapter),
                &got,
                &r,
            );
        }
    }
}

#[test]
fn every_precision_on_the_cpu_matches_the_reference_value_by_value() {
    check_backend(&Cpu, ExpAccuracy::CPU.flushes_subnormals, ExpAccuracy::CPU);
}

#[test]
fn every_precision_on_the_gpu_matches_the_reference_value_by_value() {
    let Some((gpu, probe)) = common::gpu_with_probe("reference gpu") else {
        return;
    };
    check_backend(
        &gpu,
        probe.flushes_subnormals(),
        ExpAccuracy::wgsl_device(probe.flushes_subnormals()),
    );
}
