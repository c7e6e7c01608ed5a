//! Precision policies and the facts of the number formats they use.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::format::{Format, FormatSpec};

/// How a tensor is stored: a row of the format table.
pub type DType = Format;

/// A precision policy: the format tensors are stored in, the format arithmetic is carried out
/// in, the format the optimizer keeps weights and state in, and, for FP8, the formats matmul
/// operands are quantised to. docs/formats.md says which PyTorch setting each one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 storage and f32 arithmetic.
    F32,
    /// f16 storage and f16 arithmetic; matmul accumulates in f16, so a dot product can
    /// overflow part way even when its final value would fit.
    F16,
    /// f16 storage, f32 arithmetic and accumulation, one rounding to f16 when a result is
    /// stored, as tensor cores and autocast do.
    F16Accumulate32,
    /// `model.bfloat16()`: bf16 storage, every op computed in f32 and rounded to bf16 once
    /// (matmul accumulates in f32, as every bf16 unit does); weights and optimizer state bf16.
    Bf16,
    /// `torch.autocast(dtype=torch.bfloat16)`: as `Bf16` in the passes, with f32 master
    /// weights and optimizer state.
    Bf16Accumulate32,
    /// Transformer Engine's hybrid FP8 recipe: tensors in f32, each matmul operand quantised
    /// with its own scale, to E4M3 forward and E5M2 for gradients, f32 accumulation.
    Fp8,
}

/// The formats the operands of each matmul are quantised to, where a precision quantises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quantised {
    /// Activations and weights.
    pub forward: Format,
    /// Gradients.
    pub gradient: Format,
}

impl Precision {
    pub const ALL: [Precision; 6] = [
        Precision::F32,
        Precision::F16,
        Precision::F16Accumulate32,
        Precision::Bf16,
        Precision::Bf16Accumulate32,
        Precision::Fp8,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::F16Accumulate32 => "f16acc32",
            Precision::Bf16 => "bf16",
            Precision::Bf16Accumulate32 => "bf16acc32",
            Precision::Fp8 => "fp8",
        }
    }

    /// The format activations and gradients are stored in.
    pub fn storage(self) -> DType {
        match self {
            Precision::F32 | Precision::Fp8 => Format::F32,
            Precision::F16 | Precision::F16Accumulate32 => Format::F16,
            Precision::Bf16 | Precision::Bf16Accumulate32 => Format::Bf16,
        }
    }

    /// The type in which arithmetic and accumulation happen.
    pub fn arithmetic(self) -> DType {
        match self {
            Precision::F16 => Format::F16,
            _ => Format::F32,
        }
    }

    /// The format the optimizer keeps weights and its state in: the storage format for
    /// `model.half()` and `model.bfloat16()`, f32 master weights otherwise.
    pub fn master(self) -> DType {
        match self {
            Precision::F16 | Precision::Bf16 => self.storage(),
            _ => Format::F32,
        }
    }

    /// Whether a result computed in the arithmetic format is rounded once more when stored.
    pub fn rounds_on_store(self) -> bool {
        self.storage() != self.arithmetic()
    }

    /// The formats matmul operands are quantised to, for FP8.
    pub fn quantised(self) -> Option<Quantised> {
        match self {
            Precision::Fp8 => Some(Quantised {
                forward: Format::E4m3,
                gradient: Format::E5m2,
            }),
            _ => None,
        }
    }

    pub fn needs_shader_f16(self) -> bool {
        self.storage() == Format::F16 || self.arithmetic() == Format::F16
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The names `Precision::from_str` takes, for messages.
const PRECISION_NAMES: &str = "f32, f16, f16acc32, bf16, bf16acc32 or fp8";

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.trim().to_ascii_lowercase();
        if name == "mixed" {
            return Ok(Precision::F16Accumulate32);
        }
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::Parse {
                what: "precision",
                value: s.to_string(),
                expected: PRECISION_NAMES,
            })
    }
}

/// Parses a comma-separated list such as `f32,f16,f16acc32`.
pub fn parse_precision_list(s: &str) -> Result<Vec<Precision>, Error> {
    let list: Vec<Precision> = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // A precision named twice would print two identical, unlabelled columns.
    let repeated = list.iter().enumerate().any(|(i, p)| list[..i].contains(p));
    if list.is_empty() || repeated {
        return Err(Error::Parse {
            what: "precision list",
            value: s.to_string(),
            expected: "a comma-separated list of f32, f16, f16acc32, bf16, bf16acc32, fp8, each at most once",
        });
    }
    Ok(list)
}

/// Rounds an f64 to the nearest f16 (ties to even), correctly.
///
/// `half::f16::from_f64` rounds twice, through f32 (1 + 2^-11 + 2^-40 comes out as 1, and
/// 65519.99 as inf), which breaks the exact emulation of f16 arithmetic. Rounding to f32 *to
/// odd* first and then to f16 to nearest is a single correct rounding, since f32 has more than
/// 11 + 2 significant bits (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums:
/// proved algorithms using rounding to odd", 2008).
pub fn f16_from_f64(x: f64) -> half::f16 {
    let nearest = x as f32;
    if nearest as f64 == x || x.is_nan() {
        return half::f16::from_f32(nearest);
    }
    // Truncate toward zero, then set the last bit: the sticky information survives in it.
    let mut bits = nearest.to_bits();
    if (nearest as f64).abs() > x.abs() {
        bits -= 1;
    }
    half::f16::from_f32(f32::from_bits(bits | 1))
}

/// f16's row of the format table (src/format.rs), which the facts below are read off.
const F16: &FormatSpec = Format::F16.spec();

pub const F32_UNIT_ROUNDOFF: f64 = Format::F32.spec().unit_roundoff(); // 2^-24
pub const F16_UNIT_ROUNDOFF: f64 = F16.unit_roundoff(); // 2^-11

/// Largest finite f16, 65504.
pub const F16_MAX: f64 = F16.max_finite();
/// Every value of magnitude at or above this rounds to inf in f16, 65520.
pub const F16_OVERFLOW_THRESHOLD: f64 = F16.overflow_midpoint();
// "At or above": the midpoint itself is a tie that goes to inf.
const _: () = assert!(F16.overflows_at_midpoint());
/// Smallest positive normal f16, 2^-14.
pub const F16_MIN_NORMAL: f64 = F16.min_normal();
/// Smallest positive subnormal f16, 2^-24.
pub const F16_MIN_SUBNORMAL: f64 = F16.min_subnormal();
/// Distance from 1 to the next f16, 2^-10.
pub const F16_EPSILON: f64 = F16.epsilon();

/// Rounds each intermediate to the arithmetic type of a precision.
#[derive(Clone, Copy)]
pub struct Arith(pub DType);

impl Arith {
    #[inline]
    pub fn r(self, x: f32) -> f32 {
        match self.0 {
            Format::F32 => x,
            Format::F16 => half::f16::from_f32(x).to_f32(),
            other => other.round_f32(x),
        }
    }

    /// A literal constant as the shader compiler would round it.
    #[inline]
    pub fn c(self, x: f64) -> f32 {
        self.0.round(x) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn rounding_to_f16_keeps_the_sticky_bit_when_the_truncation_is_already_odd() {
        // 1 + 2^-11 + 2^-23 + 2^-40: its f32 truncation 1 + 2^-11 + 2^-23 is odd and must stay
        // so; clearing that bit would leave the tie 1 + 2^-11, which rounds down to even.
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-23) + 2f64.powi(-40);
        assert_eq!(f16_from_f64(x).to_f64(), 1.0 + 2f64.powi(-10));
        let below = 1.0 + 2f64.powi(-11) - 2f64.powi(-40);
        assert_eq!(f16_from_f64(below).to_f64(), 1.0);
        assert_eq!(f16_from_f64(-x).to_f64(), -(1.0 + 2f64.powi(-10)));
    }

    #[test]
    fn only_f16_storage_needs_shader_f16_and_each_type_shows_its_name() {
        // What `Gpu::supports` asks of an adapter without SHADER_F16.
        assert!(!Precision::F32.needs_shader_f16());
        assert!(Precision::F16.needs_shader_f16());
        assert!(Precision::F16Accumulate32.needs_shader_f16());
        assert_eq!(format!("{} {}", DType::F32, DType::F16), "f32 f16");
        let shown: Vec<String> = Precision::ALL.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            ["f32", "f16", "f16acc32", "bf16", "bf16acc32", "fp8"]
        );
    }

    #[test]
    fn f16_facts_match_the_half_crate() {
        assert_eq!(F16_MAX, f16::MAX.to_f64());
        assert_eq!(F16_MIN_NORMAL, f16::MIN_POSITIVE.to_f64());
        assert_eq!(F16_MIN_SUBNORMAL, f16::from_bits(1).to_f64());
        assert_eq!(F16_EPSILON, f16::EPSILON.to_f64());
        assert!(f16_from_f64(F16_OVERFLOW_THRESHOLD).is_infinite());
        assert_eq!(
            f16_from_f64(F16_OVERFLOW_THRESHOLD - 1e-3).to_f64(),
            F16_MAX
        );
        assert_eq!(F32_UNIT_ROUNDOFF, 2f64.powi(-24));
        assert_eq!(F16_UNIT_ROUNDOFF, 2f64.powi(-11));
    }

    /// The exact rounding of `x` to f16, by search over every finite f16.
    fn nearest_f16_by_search(x: f64) -> f64 {
        if x.abs() >= F16_OVERFLOW_THRESHOLD {
            return f64::INFINITY.copysign(x);
        }
        let mut best = f16::ZERO;
        for bits in 0u16..0x7c00 {
            let candidate = f16::from_bits(bits);
            let (d, d_best) = (
                (candidate.to_f64() - x.abs()).abs(),
                (best.to_f64() - x.abs()).abs(),
            );
            if d < d_best || (d == d_best && bits % 2 == 0) {
                best = candidate;
            }
        }
        best.to_f64().copysign(x)
    }

    #[test]
    fn f64_to_f16_rounds_once_and_correctly() {
        // Just above a tie: must round up, not to even (half::f16::from_f64 gives 1).
        assert_eq!(
            f16_from_f64(1.0 + 2f64.powi(-11) + 2f64.powi(-40)).to_f64(),
            1.0 + 2f64.powi(-10)
        );
        assert_eq!(f16_from_f64(1.0 + 2f64.powi(-11)).to_f64(), 1.0);
        assert_eq!(
            f16_from_f64(-(1.0 + 2f64.powi(-11) + 2f64.powi(-40))).to_f64(),
            -(1.0 + 2f64.powi(-10))
        );
        assert!(f16_from_f64(f64::NAN).is_nan());
        assert_eq!(f16_from_f64(1e300).to_f64(), f64::INFINITY);
        assert_eq!(
            f16_from_f64(-1e-300).to_bits(),
            0x8000,
            "tiny negatives round to −0"
        );
        // Every tie and near-tie between neighbouring f16 values, normal and subnormal.
        let mut checked = 0;
        for bits in (0u16..0x7bff).step_by(97).chain(0..64) {
            let lo = f16::from_bits(bits).to_f64();
            let hi = f16::from_bits(bits + 1).to_f64();
            let mid = (lo + hi) / 2.0;
            let nudge = (hi - lo) * 2f64.powi(-35);
            for x in [mid - nudge, mid, mid + nudge, lo + nudge, hi - nudge] {
                assert_eq!(
                    f16_from_f64(x).to_f64(),
                    nearest_f16_by_search(x),
                    "x = {x:e}"
                );
                checked += 1;
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn precision_names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert!("f64".parse::<Precision>().is_err());
        assert_eq!(
            parse_precision_list("f32,f16acc32").unwrap(),
            vec![Precision::F32, Precision::F16Accumulate32]
        );
        assert!(parse_precision_list(",").is_err());
    }
}
