//! Initialisers with PyTorch's semantics for a weight of shape (out, in): fan_in = in,
//! fan_out = out, `calculate_gain` as in `torch.nn.init`. Every draw happens on the host from a
//! seed, so every backend and precision sees the same numbers; each layer's weights come from
//! (seed, layer) alone, so the backward pass can make them again instead of keeping them.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::Error;
use crate::ops::activation::Activation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    FanIn,
    FanOut,
}

/// The gain of an initialiser that takes one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gain {
    /// What `torch.nn.init` uses when no gain is given: 1 for `xavier_*_` and `orthogonal_`,
    /// and for `kaiming_*_` its defaults `a = 0, nonlinearity = 'leaky_relu'`, a gain of √2
    /// whatever the layer's activation. A model ported from PyTorch gets the same weights.
    PyTorchDefault,
    /// `calculate_gain` of the layer's activation (`:auto` on the command line).
    OfActivation,
    /// A gain given as a number.
    Value(f64),
}

impl serde::Serialize for Gain {
    /// `"pytorch_default"`, `"of_activation"` or the number.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Gain::PyTorchDefault => s.serialize_str("pytorch_default"),
            Gain::OfActivation => s.serialize_str("of_activation"),
            Gain::Value(v) => s.serialize_f64(*v),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Gain {
    /// What `serialize` writes, read back (a checkpoint's configuration).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Name(String),
            Value(f64),
        }
        match Written::deserialize(d)? {
            Written::Value(v) => Ok(Gain::Value(v)),
            Written::Name(n) if n == "pytorch_default" => Ok(Gain::PyTorchDefault),
            Written::Name(n) if n == "of_activation" => Ok(Gain::OfActivation),
            Written::Name(n) => Err(serde::de::Error::custom(format!("no gain named '{n}'"))),
        }
    }
}

/// A weight initialiser, as `torch.nn.init`'s of the same name.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Init {
    Constant { value: f64 },
    Normal { std: f64 },
    Uniform { bound: f64 },
    XavierNormal { gain: Gain },
    XavierUniform { gain: Gain },
    KaimingNormal { mode: FanMode, gain: Gain },
    KaimingUniform { mode: FanMode, gain: Gain },
    Orthogonal { gain: Gain },
}

/// `torch.nn.init.calculate_gain` for an activation (the scaled sigmoid, which PyTorch lacks,
/// has slope 1 at 0 and takes gain 1).
pub fn calculate_gain(activation: &Activation) -> f64 {
    match *activation {
        Activation::Linear { .. } | Activation::Sigmoid | Activation::ScaledSigmoid => 1.0,
        Activation::Tanh => 5.0 / 3.0,
        Activation::Relu => 2f64.sqrt(),
        Activation::LeakyRelu { slope } => (2.0 / (1.0 + (slope as f64).powi(2))).sqrt(),
    }
}

impl Init {
    /// The gain this initialiser draws with for a layer followed by `activation` (1 for the
    /// initialisers without one).
    pub fn gain(&self, activation: &Activation) -> f64 {
        let (gain, pytorch_default) = match *self {
            Init::XavierNormal { gain }
            | Init::XavierUniform { gain }
            | Init::Orthogonal { gain } => (gain, 1.0),
            // kaiming_normal_(w, a=0, nonlinearity='leaky_relu'): sqrt(2 / (1 + a²)).
            Init::KaimingNormal { gain, .. } | Init::KaimingUniform { gain, .. } => {
                (gain, 2f64.sqrt())
            }
            Init::Constant { .. } | Init::Normal { .. } | Init::Uniform { .. } => return 1.0,
        };
        match gain {
            Gain::PyTorchDefault => pytorch_default,
            Gain::OfActivation => calculate_gain(activation),
            Gain::Value(g) => g,
        }
    }

    /// E\[w²\] of one weight of a `fan_out × fan_in` matrix: what the mean-field theory needs.
    pub fn second_moment(&self, fan_in: usize, fan_out: usize, activation: &Activation) -> f64 {
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        let fan = |mode: FanMode| match mode {
            FanMode::FanIn => fi,
            FanMode::FanOut => fo,
        };
        match *self {
            Init::Constant { value } => value * value,
            Init::Normal { std } => std * std,
            Init::Uniform { bound } => bound * bound / 3.0,
            Init::XavierNormal { .. } | Init::XavierUniform { .. } => {
                self.gain(activation).powi(2) * 2.0 / (fi + fo)
            }
            Init::KaimingNormal { mode, .. } | Init::KaimingUniform { mode, .. } => {
                self.gain(activation).powi(2) / fan(mode)
            }
            // ‖W‖_F² = gain²·min(in, out), spread over in·out entries.
            Init::Orthogonal { .. } => self.gain(activation).powi(2) * fi.min(fo) / (fi * fo),
        }
    }

    /// The standard deviation of a normal draw, or the bound of a uniform one.
    fn scale(&self, fan_in: usize, fan_out: usize, activation: &Activation) -> f64 {
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        match *self {
            Init::XavierNormal { .. } => self.gain(activation) * (2.0 / (fi + fo)).sqrt(),
            Init::XavierUniform { .. } => self.gain(activation) * (6.0 / (fi + fo)).sqrt(),
            Init::KaimingNormal { .. } => self.second_moment(fan_in, fan_out, activation).sqrt(),
            Init::KaimingUniform { .. } => {
                (3.0 * self.second_moment(fan_in, fan_out, activation)).sqrt()
            }
            Init::Normal { std } => std,
            Init::Uniform { bound } => bound,
            Init::Constant { value } => value,
            Init::Orthogonal { .. } => self.gain(activation),
        }
    }

    /// A `fan_out × fan_in` weight, row-major, drawn from `rng`.
    pub fn sample(
        &self,
        fan_in: usize,
        fan_out: usize,
        activation: &Activation,
        rng: &mut impl Rng,
    ) -> Vec<f32> {
        let scale = self.scale(fan_in, fan_out, activation);
        let n = fan_in * fan_out;
        match self {
            Init::Constant { .. } => vec![scale as f32; n],
            Init::Normal { .. } | Init::XavierNormal { .. } | Init::KaimingNormal { .. } => (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    (scale * z) as f32
                })
                .collect(),
            Init::Uniform { .. } | Init::XavierUniform { .. } | Init::KaimingUniform { .. } => (0
                ..n)
                .map(|_| rng.random_range(-scale..=scale) as f32)
                .collect(),
            Init::Orthogonal { .. } => orthogonal(fan_out, fan_in, scale, rng),
        }
    }
}

/// `torch.nn.init.orthogonal_`: Q of the QR decomposition of a Gaussian matrix (transposed
/// when it has fewer rows than columns), with the signs of diag(R), times the gain. The rows
/// are orthonormal when rows ≤ cols, the columns otherwise.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut impl Rng) -> Vec<f32> {
    let (m, n) = if rows < cols {
        (cols, rows)
    } else {
        (rows, cols)
    };
    // A is m × n with m ≥ n, stored by columns; modified Gram–Schmidt with one
    // re-orthogonalisation keeps Q orthonormal to a few f64 roundings.
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..m).map(|_| StandardNormal.sample(rng)).collect())
        .collect();
    for j in 0..n {
        let (done, rest) = q.split_at_mut(j);
        let qj = &mut rest[0];
        for _ in 0..2 {
            for qi in done.iter() {
                let dot: f64 = qi.iter().zip(qj.iter()).map(|(a, b)| a * b).sum();
                for (v, a) in qj.iter_mut().zip(qi) {
                    *v -= dot * a;
                }
            }
        }
        // R's diagonal is the norm, positive, so Q's column keeps the sign PyTorch gives it.
        let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        for v in &mut q[j] {
            *v /= norm;
        }
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Q is m × n; the weight is Q (rows ≥ cols) or Qᵀ (rows < cols).
            let v = if rows < cols { q[r][c] } else { q[c][r] };
            out[r * cols + c] = (gain * v) as f32;
        }
    }
    out
}

/// How the input batch is drawn.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputInit {
    Normal { std: f64 },
    Uniform { bound: f64 },
    Constant { value: f64 },
}

impl InputInit {
    pub fn second_moment(&self) -> f64 {
        match *self {
            InputInit::Normal { std } => std * std,
            InputInit::Uniform { bound } => bound * bound / 3.0,
            InputInit::Constant { value } => value * value,
        }
    }

    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        match *self {
            InputInit::Normal { std } => (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    (std * z) as f32
                })
                .collect(),
            InputInit::Uniform { bound } => (0..n)
                .map(|_| rng.random_range(-bound..=bound) as f32)
                .collect(),
            InputInit::Constant { value } => vec![value as f32; n],
        }
    }
}

/// The random stream of one purpose and layer: independent of every other, so layer t's
/// weights can be drawn again without drawing layers 1..t−1. ChaCha12, the generator rand 0.9's
/// `StdRng` happens to be today, named so that its output cannot change under an upgrade.
pub fn stream(seed: u64, purpose: u64, layer: usize) -> Stream {
    // SplitMix64 of the three, so that nearby seeds give unrelated streams.
    let mut z = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (layer as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Stream::seed_from_u64(z ^ (z >> 31))
}

/// The generator of every seeded stream.
pub type Stream = rand_chacha::ChaCha12Rng;

/// Stream purposes.
pub const WEIGHTS: u64 = 1;
pub const BIASES: u64 = 2;
pub const INPUT: u64 = 3;
pub const UPSTREAM: u64 = 4;
pub const TARGETS: u64 = 5;

fn parse_number(what: &'static str, s: &str, expected: &'static str) -> Result<f64, Error> {
    let bad = || Error::Parse {
        what,
        value: s.to_string(),
        expected,
    };
    let v: f64 = s.trim().parse().map_err(|_| bad())?;
    // Weights and inputs are drawn as f32: a larger scale would only draw infinities, and a
    // uniform range wider than f64 holds cannot be drawn at all.
    if v.is_finite() && v.abs() <= f32::MAX as f64 {
        Ok(v)
    } else {
        Err(bad())
    }
}

const INIT_FORMS: &str = "constant:C, normal:STD, uniform:A, xavier_normal[:GAIN|auto], xavier_uniform[:GAIN|auto], kaiming_normal[:fan_in|fan_out][:GAIN|auto], kaiming_uniform[:fan_in|fan_out][:GAIN|auto], orthogonal[:GAIN|auto], with numbers within f32 (|x| ≤ 3.4e38)";

impl FromStr for Init {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Parse {
            what: "init",
            value: s.to_string(),
            expected: INIT_FORMS,
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |p: &str| parse_number("init", p, INIT_FORMS).map_err(|_| bad());
        let gain = |p: Option<&str>| -> Result<Gain, Error> {
            match p {
                None => Ok(Gain::PyTorchDefault),
                Some(p) if p.trim().eq_ignore_ascii_case("auto") => Ok(Gain::OfActivation),
                Some(p) => {
                    let g = num(p)?;
                    if g > 0.0 {
                        Ok(Gain::Value(g))
                    } else {
                        Err(bad())
                    }
                }
            }
        };
        // kaiming_*[:MODE][:GAIN]: the mode may be left out before a gain.
        let kaiming = |rest: &[&str]| -> Result<(FanMode, Gain), Error> {
            let mode = match rest.first().map(|m| m.trim().to_ascii_lowercase()) {
                Some(m) if m == "fan_in" => Some(FanMode::FanIn),
                Some(m) if m == "fan_out" => Some(FanMode::FanOut),
                _ => None,
            };
            let gains = if mode.is_some() { &rest[1..] } else { rest };
            if gains.len() > 1 {
                return Err(bad());
            }
            Ok((
                mode.unwrap_or(FanMode::FanIn),
                gain(gains.first().copied())?,
            ))
        };
        let positive = |p: &str| -> Result<f64, Error> {
            let v = num(p)?;
            if v >= 0.0 {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        match (parts[0].to_ascii_lowercase().as_str(), parts.len()) {
            ("constant", 2) => Ok(Init::Constant {
                value: num(parts[1])?,
            }),
            ("normal", 2) => Ok(Init::Normal {
                std: positive(parts[1])?,
            }),
            ("uniform", 2) => Ok(Init::Uniform {
                bound: positive(parts[1])?,
            }),
            ("xavier_normal", 1 | 2) => Ok(Init::XavierNormal {
                gain: gain(parts.get(1).copied())?,
            }),
            ("xavier_uniform", 1 | 2) => Ok(Init::XavierUniform {
                gain: gain(parts.get(1).copied())?,
            }),
            ("kaiming_normal" | "he_normal", 1..=3) => {
                let (mode, gain) = kaiming(&parts[1..])?;
                Ok(Init::KaimingNormal { mode, gain })
            }
            ("kaiming_uniform" | "he_uniform", 1..=3) => {
                let (mode, gain) = kaiming(&parts[1..])?;
                Ok(Init::KaimingUniform { mode, gain })
            }
            ("orthogonal", 1 | 2) => Ok(Init::Orthogonal {
                gain: gain(parts.get(1).copied())?,
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gain = |g: &Gain| match g {
            Gain::PyTorchDefault => String::new(),
            Gain::OfActivation => ":auto".to_string(),
            Gain::Value(g) => format!(":{g}"),
        };
        let mode = |m: &FanMode| match m {
            FanMode::FanIn => "fan_in",
            FanMode::FanOut => "fan_out",
        };
        match self {
            Init::Constant { value } => write!(f, "constant:{value}"),
            Init::Normal { std } => write!(f, "normal:{std}"),
            Init::Uniform { bound } => write!(f, "uniform:{bound}"),
            Init::XavierNormal { gain: g } => write!(f, "xavier_normal{}", gain(g)),
            Init::XavierUniform { gain: g } => write!(f, "xavier_uniform{}", gain(g)),
            Init::KaimingNormal { mode: m, gain: g } => {
                write!(f, "kaiming_normal:{}{}", mode(m), gain(g))
            }
            Init::KaimingUniform { mode: m, gain: g } => {
                write!(f, "kaiming_uniform:{}{}", mode(m), gain(g))
            }
            Init::Orthogonal { gain: g } => write!(f, "orthogonal{}", gain(g)),
        }
    }
}

const INPUT_FORMS: &str =
    "normal:STD, uniform:A, constant:C, with numbers within f32 (|x| ≤ 3.4e38)";

impl FromStr for InputInit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Parse {
            what: "input",
            value: s.to_string(),
            expected: INPUT_FORMS,
        };
        let (kind, value) = s.trim().split_once(':').ok_or_else(bad)?;
        let v = parse_number("input", value, INPUT_FORMS).map_err(|_| bad())?;
        match kind.to_ascii_lowercase().as_str() {
            "normal" if v >= 0.0 => Ok(InputInit::Normal { std: v }),
            "uniform" if v >= 0.0 => Ok(InputInit::Uniform { bound: v }),
            "constant" => Ok(InputInit::Constant { value: v }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for InputInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputInit::Normal { std } => write!(f, "normal:{std}"),
            InputInit::Uniform { bound } => write!(f, "uniform:{bound}"),
            InputInit::Constant { value } => write!(f, "constant:{value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn a_stream_draws_what_it_always_drew() {
        // The first words of stream(0, WEIGHTS, 1), as ChaCha12 (and rand 0.9's StdRng, which
        // is ChaCha12 today) gave them: a change of generator would move every seeded number,
        // and every claim pinned to one.
        let mut s = stream(0, WEIGHTS, 1);
        let want = [
            0x0596_e788_1fd1_0b6e,
            0xf68d_3b43_ef58_7a9d,
            0x2464_2363_1724_e789,
            0xd587_1a0d_f0b5_73c1,
        ];
        for w in want {
            assert_eq!(s.next_u64(), w);
        }
    }
}
