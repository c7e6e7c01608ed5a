//! Activation functions: definitions, parsing, the exact f64 reference and the error bound a
//! conforming backend is held to.

pub mod cpu;
pub mod gpu;

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::precision::{DType, Precision};

/// Inputs are clamped to ±INPUT_CLAMP, where every activation here is saturated in f32 and f16
/// alike, so `exp` never overflows.
pub const INPUT_CLAMP: f64 = 120.0;
/// Below this |x|, tanh is the odd polynomial x + x·x²·p(x²), which keeps relative accuracy
/// where (1 − e^−2|x|)/(1 + e^−2|x|) would cancel.
pub const TANH_POLYNOMIAL_BELOW: f64 = 0.125;
/// p(y) = c3 + y·(c5 + y·(c7 + y·c9)): the Taylor coefficients of tanh, each rounded once to
/// the arithmetic type by the shader compiler and by the CPU reference alike.
pub const TANH_COEFFICIENTS: [f64; 4] = [
    -0.33333333333,
    0.13333333333,
    -0.053968253968,
    0.021869488536,
];

/// What an implementation's arithmetic may do that the bounds must allow: how accurate its
/// `exp(t)` is (`(c, s)`: within c + s·|t| ULP of the arithmetic type, for f32 and for f16),
/// and whether it flushes subnormals to zero (`gradstab probe` says which a device does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpAccuracy {
    pub f32_ulps: (f64, f64),
    pub f16_ulps: (f64, f64),
    pub flushes_subnormals: bool,
}

impl ExpAccuracy {
    /// What WGSL allows a device: 3 + 2|t| ULP in f32 and 1 + 2|t| ULP in f16, and flushing.
    pub const WGSL: ExpAccuracy = ExpAccuracy {
        f32_ulps: (3.0, 2.0),
        f16_ulps: (1.0, 2.0),
        flushes_subnormals: true,
    };

    /// The CPU backend: Rust's f32 `exp`, within 1 ULP; in f16 that result rounded once more
    /// (half an f16 ULP, plus the f32 ULP's 2^-13 of an f16 ULP). Subnormals are kept.
    pub const CPU: ExpAccuracy = ExpAccuracy {
        f32_ulps: (1.0, 0.0),
        f16_ulps: (0.5 + 1.0 / 8192.0, 0.0),
        flushes_subnormals: false,
    };

    /// WGSL's `exp` accuracy on a device whose probe found it keeps subnormals or not.
    pub fn wgsl_device(flushes_subnormals: bool) -> ExpAccuracy {
        ExpAccuracy {
            flushes_subnormals,
            ..ExpAccuracy::WGSL
        }
    }
}

/// The activations a layer can use.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activation {
    /// `alpha·x + beta`.
    Linear {
        alpha: f32,
        beta: f32,
    },
    Relu,
    /// `x` for x > 0, `slope·x` otherwise.
    LeakyRelu {
        slope: f32,
    },
    Sigmoid,
    Tanh,
    /// `4·sigmoid(x) − 2 = 2·tanh(x/2)`: sigmoid rescaled to slope 1 at 0.
    ScaledSigmoid,
}

impl Activation {
    pub const IDENTITY: Activation = Activation::Linear {
        alpha: 1.0,
        beta: 0.0,
    };

    /// One of each kind, with typical parameters: what tests and `verify` sweep over.
    pub fn representatives() -> [Activation; 6] {
        [
            Activation::Linear {
                alpha: 1.5,
                beta: -0.25,
            },
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.01 },
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::ScaledSigmoid,
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Activation::Linear { .. } => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::ScaledSigmoid => "scaled_sigmoid",
        }
    }

    /// The kinds, in the order of their codes: the shader switches on `KIND_<NAME>`, which
    /// its header defines from this list.
    pub const KINDS: [&'static str; 6] = [
        "linear",
        "relu",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "scaled_sigmoid",
    ];

    /// The kind code and the two parameters the kernel reads.
    pub(crate) fn kernel_code(&self) -> (u32, f32, f32) {
        let code = Activation::KINDS
            .iter()
            .position(|k| *k == self.name())
            .expect("every kind is listed") as u32;
        match *self {
            Activation::Linear { alpha, beta } => (code, alpha, beta),
            Activation::LeakyRelu { slope } => (code, slope, 0.0),
            _ => (code, 0.0, 0.0),
        }
    }

    /// The same activation with its parameters rounded to `dtype`, as the kernel sees them.
    pub fn rounded_to(&self, dtype: DType) -> Activation {
        let r = |v: f32| dtype.round(v as f64) as f32;
        match *self {
            Activation::Linear { alpha, beta } => Activation::Linear {
                alpha: r(alpha),
                beta: r(beta),
            },
            Activation::LeakyRelu { slope } => Activation::LeakyRelu { slope: r(slope) },
            other => other,
        }
    }

    /// The exact value act(x), in f64.
    pub fn reference(&self, x: f64) -> f64 {
        if x.is_nan() {
            return x;
        }
        match *self {
            Activation::Linear { alpha, beta } => alpha as f64 * x + beta as f64,
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu { slope } => {
                if x > 0.0 {
                    x
                } else {
                    slope as f64 * x
                }
            }
            Activation::Sigmoid => sigmoid_f64(x),
            Activation::Tanh => x.tanh(),
            Activation::ScaledSigmoid => 2.0 * (x / 2.0).tanh(),
        }
    }

    /// The exact derivative act'(x), in f64 (relu'(0) = 0, as in PyTorch).
    pub fn reference_derivative(&self, x: f64) -> f64 {
        if x.is_nan() {
            return x;
        }
        match *self {
            Activation::Linear { alpha, .. } => alpha as f64,
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu { slope } => {
                if x > 0.0 {
                    1.0
                } else {
                    slope as f64
                }
            }
            Activation::Sigmoid => sigmoid_f64(x) * sigmoid_f64(-x),
            Activation::Tanh => sech_squared(x),
            Activation::ScaledSigmoid => sech_squared(x / 2.0),
        }
    }

    /// The largest error |computed − exact| allowed at input `x` for a backend that evaluates
    /// this activation (or its derivative) in `precision` with the formulas of
    /// shaders/activation.wgsl, given WGSL's accuracy of `exp` (`ExpAccuracy::WGSL`). Below
    /// the normal range each operation may add the smallest normal (a flushed subnormal), or
    /// half a subnormal spacing where `error_bound_with` is told subnormals are kept.
    pub fn error_bound(&self, x: f64, precision: Precision, derivative: bool) -> f64 {
        self.error_bound_with(x, precision, derivative, ExpAccuracy::WGSL)
    }

    /// `error_bound` for an implementation whose `exp` has the given accuracy, such as the CPU
    /// backend's (`ExpAccuracy::CPU`).
    pub fn error_bound_with(
        &self,
        x: f64,
        precision: Precision,
        derivative: bool,
        exp_accuracy: ExpAccuracy,
    ) -> f64 {
        let arith = precision.arithmetic();
        let u = arith.unit_roundoff();
        // The storage rounding of a mixed-precision result, on top of the arithmetic.
        let u_store = if precision.rounds_on_store() {
            precision.storage().unit_roundoff()
        } else {
            0.0
        };
        let exact = if derivative {
            self.reference_derivative(x)
        } else {
            self.reference(x)
        };
        if !exact.is_finite() {
            // An infinite or NaN answer must be reproduced exactly.
            return 0.0;
        }
        let xc = x.clamp(-INPUT_CLAMP, INPUT_CLAMP).abs();
        // Relative error of exp(−t) for t ≥ 0: (c + s·t) ULP, and one ULP is at most 2u
        // relative.
        let (c, slope) = match arith {
            DType::F16 => exp_accuracy.f16_ulps,
            _ => exp_accuracy.f32_ulps,
        };
        let exp_rel = |t: f64| (c + slope * t) * 2.0 * u;
        let tanh_rel = |a: f64| {
            if a < TANH_POLYNOMIAL_BELOW {
                // x + t with |t| = |x·x²·p| ≤ |x|/192: the final sum's rounding (u), plus the
                // four roundings inside t (4u·|t|/|x| ≤ u/48), plus the truncated series
                // (0.0089·x^11, below 10^-11 relative) and the decimal coefficients (below
                // 10^-11): under 1.03u, so 2u leaves room and still catches a wrong coefficient.
                2.0 * u
            } else {
                4.0 * exp_rel(2.0 * a) + 10.0 * u
            }
        };
        let relative = match (*self, derivative) {
            (Activation::Linear { alpha, beta }, false) => {
                let terms = (alpha as f64 * x).abs() + (beta as f64).abs();
                return 2.0 * u * terms
                    + u_store * exact.abs()
                    + floor(precision, 3, exp_accuracy.flushes_subnormals);
            }
            (Activation::Relu, _) | (Activation::Linear { .. }, true) => 0.0,
            (Activation::LeakyRelu { .. }, d) => {
                if d {
                    0.0
                } else {
                    u
                }
            }
            (Activation::Sigmoid, false) => 2.0 * exp_rel(xc) + 4.0 * u,
            (Activation::Sigmoid, true) => 4.0 * exp_rel(xc) + 9.0 * u,
            (Activation::Tanh, false) => tanh_rel(xc),
            (Activation::Tanh, true) => 2.0 * exp_rel(2.0 * xc) + 5.0 * u,
            (Activation::ScaledSigmoid, false) => tanh_rel(xc / 2.0) + 2.0 * u,
            (Activation::ScaledSigmoid, true) => 2.0 * exp_rel(xc) + 6.0 * u,
        };
        (relative + u_store) * exact.abs() + floor(precision, 6, exp_accuracy.flushes_subnormals)
    }
}

/// The absolute error that flushed or rounded subnormals may add over `ops` operations and
/// the store.
fn floor(precision: Precision, ops: u32, flushes_subnormals: bool) -> f64 {
    let one = |d: DType| {
        if flushes_subnormals {
            d.min_normal()
        } else {
            d.subnormal_half_spacing()
        }
    };
    ops as f64 * one(precision.arithmetic()) + one(precision.storage())
}

fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn sech_squared(x: f64) -> f64 {
    let e = (-2.0 * x.abs()).exp();
    4.0 * e / ((1.0 + e) * (1.0 + e))
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Linear { alpha, beta } => write!(f, "linear:{alpha},{beta}"),
            Activation::LeakyRelu { slope } => write!(f, "leaky_relu:{slope}"),
            other => f.write_str(other.name()),
        }
    }
}

const ACTIVATION_FORMS: &str =
    "linear, linear:ALPHA,BETA, relu, leaky_relu, leaky_relu:SLOPE, sigmoid, tanh, scaled_sigmoid";

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Parse {
            what: "activation",
            value: s.to_string(),
            expected: ACTIVATION_FORMS,
        };
        let number = |v: &str| -> Result<f32, Error> {
            let value: f32 = v.trim().parse().map_err(|_| bad())?;
            if value.is_finite() {
                Ok(value)
            } else {
                Err(bad())
            }
        };
        let (name, args) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a)),
            None => (s.trim(), None),
        };
        match (name.to_ascii_lowercase().as_str(), args) {
            ("linear" | "identity", None) => Ok(Activation::IDENTITY),
            ("linear", Some(a)) => {
                let (alpha, beta) = match a.split_once(',') {
                    Some((x, y)) => (number(x)?, number(y)?),
                    None => (number(a)?, 0.0),
                };
                Ok(Activation::Linear { alpha, beta })
            }
            ("relu", None) => Ok(Activation::Relu),
            ("leaky_relu", None) => Ok(Activation::LeakyRelu { slope: 0.01 }),
            ("leaky_relu", Some(a)) => Ok(Activation::LeakyRelu { slope: number(a)? }),
            ("sigmoid", None) => Ok(Activation::Sigmoid),
            ("tanh", None) => Ok(Activation::Tanh),
            ("scaled_sigmoid", None) => Ok(Activation::ScaledSigmoid),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!("relu".parse::<Activation>().unwrap(), Activation::Relu);
        assert_eq!(
            "leaky_relu:0.1".parse::<Activation>().unwrap(),
            Activation::LeakyRelu { slope: 0.1 }
        );
        assert_eq!(
            "linear:2,0.5".parse::<Activation>().unwrap(),
            Activation::Linear {
                alpha: 2.0,
                beta: 0.5
            }
        );
        assert_eq!(
            "linear".parse::<Activation>().unwrap(),
            Activation::IDENTITY
        );
        // PyTorch's default negative slope.
        assert_eq!(
            "leaky_relu".parse::<Activation>().unwrap(),
            Activation::LeakyRelu { slope: 0.01 }
        );
        for (form, act) in [
            ("sigmoid", Activation::Sigmoid),
            ("tanh", Activation::Tanh),
            ("scaled_sigmoid", Activation::ScaledSigmoid),
            ("identity", Activation::IDENTITY),
        ] {
            assert_eq!(form.parse::<Activation>().unwrap(), act, "{form}");
        }
        for bad in [
            "",
            "gelu",
            "relu:1",
            "leaky_relu:x",
            "linear:nan",
            "linear:1,2,3",
        ] {
            assert!(bad.parse::<Activation>().is_err(), "{bad} parsed");
        }
        for act in Activation::representatives() {
            assert_eq!(act.to_string().parse::<Activation>().unwrap(), act);
        }
    }

    #[test]
    fn scaled_sigmoid_is_four_sigmoid_minus_two() {
        for i in -400..=400 {
            let x = i as f64 / 20.0;
            let four_sigmoid = 4.0 * sigmoid_f64(x) - 2.0;
            assert!((Activation::ScaledSigmoid.reference(x) - four_sigmoid).abs() < 1e-14);
        }
    }
}
