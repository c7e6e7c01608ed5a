//! The number formats a tensor can be stored in, each described once as data, and the exact
//! casts to and from them, derived from that description.
//!
//! A format is a row of `SPECS`: its bit layout, its exponent bias, how it spells NaN and
//! what a cast does on overflow. Everything else (largest finite, smallest normal and
//! subnormal, unit roundoff, where a cast overflows) is computed from the row, and the casts
//! are one routine over the row, so a new format is a new row rather than new code.
//! docs/formats.md lists the numbers and the PyTorch casts they agree with.

use std::fmt;

/// A storage format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    F32,
    F16,
    Bf16,
    /// OCP FP8 E4M3FN: no infinity, one NaN per sign, range ±448; a cast saturates.
    E4m3,
    /// OCP FP8 E5M2: IEEE-style infinities and NaNs, range ±57344.
    E5m2,
}

/// How a format spells NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanEncoding {
    /// IEEE 754: the all-ones exponent with a non-zero mantissa is NaN, with a zero mantissa
    /// ±inf.
    Ieee,
    /// Only the all-ones exponent with the all-ones mantissa is NaN (S.1111.111 in E4M3FN).
    /// There is no inf: the other all-ones-exponent patterns are finite numbers.
    AllOnes,
}

/// What a cast makes of a value whose rounding lies beyond the largest finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// ±inf, as IEEE 754 round-to-nearest does.
    Infinity,
    /// NaN of the value's sign, ±inf included, as PyTorch's cast to `float8_e4m3fn` did
    /// before 2.15 (the format has no inf). No row uses it now.
    Nan,
    /// The largest finite of the value's sign, ±inf included, as PyTorch 2.15's cast to
    /// `float8_e4m3fn` does (pytorch/pytorch#178817). NaN stays NaN.
    Saturate,
}

/// The bit layout of a format: sign, then `exponent_bits`, then `mantissa_bits` (the stored
/// fraction, without the hidden bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatSpec {
    pub name: &'static str,
    pub exponent_bits: u32,
    pub mantissa_bits: u32,
    pub bias: i32,
    pub nan: NanEncoding,
    pub overflow: Overflow,
}

/// One row per [`Format`], in declaration order.
const SPECS: [FormatSpec; 5] = [
    FormatSpec {
        name: "f32",
        exponent_bits: 8,
        mantissa_bits: 23,
        bias: 127,
        nan: NanEncoding::Ieee,
        overflow: Overflow::Infinity,
    },
    FormatSpec {
        name: "f16",
        exponent_bits: 5,
        mantissa_bits: 10,
        bias: 15,
        nan: NanEncoding::Ieee,
        overflow: Overflow::Infinity,
    },
    FormatSpec {
        name: "bf16",
        exponent_bits: 8,
        mantissa_bits: 7,
        bias: 127,
        nan: NanEncoding::Ieee,
        overflow: Overflow::Infinity,
    },
    FormatSpec {
        name: "e4m3",
        exponent_bits: 4,
        mantissa_bits: 3,
        bias: 7,
        nan: NanEncoding::AllOnes,
        overflow: Overflow::Saturate,
    },
    FormatSpec {
        name: "e5m2",
        exponent_bits: 5,
        mantissa_bits: 2,
        bias: 15,
        nan: NanEncoding::Ieee,
        overflow: Overflow::Infinity,
    },
];

/// f64 itself, the target when decoding: every value of every format is one, exactly.
const F64_LAYOUT: FormatSpec = FormatSpec {
    name: "f64",
    exponent_bits: 11,
    mantissa_bits: 52,
    bias: 1023,
    nan: NanEncoding::Ieee,
    overflow: Overflow::Infinity,
};

// A row that could not be decoded exactly into an f32 (wider, or reaching further below
// zero), or that overflows to an inf it cannot spell, would make the casts below wrong.
const _: () = {
    let mut i = 0;
    while i < SPECS.len() {
        let s = &SPECS[i];
        assert!(s.total_bits() <= 32 && s.mantissa_bits >= 1 && s.exponent_bits >= 2);
        assert!(s.mantissa_bits <= 23 && s.min_exponent() - s.mantissa_bits as i32 >= -149);
        assert!(s.max_exponent() <= 127);
        assert!(s.has_inf() || !matches!(s.overflow, Overflow::Infinity));
        i += 1;
    }
};

/// 2^e, for e in the normal range of f64.
const fn pow2(e: i32) -> f64 {
    assert!(-1022 <= e && e <= 1023);
    f64::from_bits(((e + 1023) as u64) << 52)
}

impl FormatSpec {
    pub const fn total_bits(&self) -> u32 {
        1 + self.exponent_bits + self.mantissa_bits
    }

    pub const fn has_inf(&self) -> bool {
        matches!(self.nan, NanEncoding::Ieee)
    }

    const fn mantissa_mask(&self) -> u64 {
        (1 << self.mantissa_bits) - 1
    }

    /// The all-ones exponent field.
    const fn exponent_field_max(&self) -> u64 {
        (1 << self.exponent_bits) - 1
    }

    /// The exponent of the smallest normal, 2^min_exponent.
    pub const fn min_exponent(&self) -> i32 {
        1 - self.bias
    }

    /// The exponent of the largest finite.
    pub const fn max_exponent(&self) -> i32 {
        (self.max_finite_bits() >> self.mantissa_bits) as i32 - self.bias
    }

    /// The pattern of +NaN: the all-ones exponent with the top mantissa bit (IEEE's quiet NaN),
    /// or everything set where that is the only NaN.
    pub const fn nan_bits(&self) -> u64 {
        let exponent = self.exponent_field_max() << self.mantissa_bits;
        match self.nan {
            NanEncoding::Ieee => exponent | 1 << (self.mantissa_bits - 1),
            NanEncoding::AllOnes => exponent | self.mantissa_mask(),
        }
    }

    /// The pattern of +inf, where the format has one.
    pub const fn inf_bits(&self) -> Option<u64> {
        match self.nan {
            NanEncoding::Ieee => Some(self.exponent_field_max() << self.mantissa_bits),
            NanEncoding::AllOnes => None,
        }
    }

    /// The pattern of the largest finite: the pattern below the first NaN or inf.
    pub const fn max_finite_bits(&self) -> u64 {
        match self.nan {
            NanEncoding::Ieee => (self.exponent_field_max() << self.mantissa_bits) - 1,
            NanEncoding::AllOnes => self.nan_bits() - 1,
        }
    }

    /// Whether a sign-free pattern is NaN.
    const fn is_nan_bits(&self, magnitude: u64) -> bool {
        let all_ones_exponent = magnitude >> self.mantissa_bits == self.exponent_field_max();
        let mantissa = magnitude & self.mantissa_mask();
        all_ones_exponent
            && match self.nan {
                NanEncoding::Ieee => mantissa != 0,
                NanEncoding::AllOnes => mantissa == self.mantissa_mask(),
            }
    }

    /// The value of a finite, sign-free pattern as (integer significand, exponent of its last
    /// bit): significand · 2^exponent.
    const fn significand_and_exponent(&self, magnitude: u64) -> (u64, i32) {
        let field = magnitude >> self.mantissa_bits;
        let mantissa = magnitude & self.mantissa_mask();
        let m = self.mantissa_bits as i32;
        if field == 0 {
            (mantissa, self.min_exponent() - m)
        } else {
            (mantissa | 1 << m, field as i32 - self.bias - m)
        }
    }

    const fn finite_value(&self, magnitude: u64) -> f64 {
        let (significand, exponent) = self.significand_and_exponent(magnitude);
        significand as f64 * pow2(exponent)
    }

    pub const fn max_finite(&self) -> f64 {
        self.finite_value(self.max_finite_bits())
    }

    pub const fn min_normal(&self) -> f64 {
        pow2(self.min_exponent())
    }

    pub const fn min_subnormal(&self) -> f64 {
        pow2(self.min_exponent() - self.mantissa_bits as i32)
    }

    /// Unit roundoff u = 2^-(mantissa_bits + 1): the largest relative error of one rounding to
    /// nearest in the normal range.
    pub const fn unit_roundoff(&self) -> f64 {
        pow2(-(self.mantissa_bits as i32) - 1)
    }

    /// The distance from 1 to the next value, 2u.
    pub const fn epsilon(&self) -> f64 {
        pow2(-(self.mantissa_bits as i32))
    }

    /// Half the spacing of the subnormals: the largest absolute error of one rounding below
    /// the normal range.
    pub const fn subnormal_half_spacing(&self) -> f64 {
        pow2(self.min_exponent() - self.mantissa_bits as i32 - 1)
    }

    /// The midpoint between the largest finite and the value the next pattern would have with
    /// an unbounded exponent. Beyond it every value overflows; at it, the tie goes to the even
    /// one of the two ([`Self::overflows_at_midpoint`]).
    pub const fn overflow_midpoint(&self) -> f64 {
        let half_spacing = pow2(self.max_exponent() - self.mantissa_bits as i32 - 1);
        self.max_finite() + half_spacing
    }

    /// Whether the midpoint itself overflows: it does when the largest finite's last bit is
    /// odd (IEEE formats, all-ones mantissa), not when it is even (E4M3FN's S.1111.110).
    pub const fn overflows_at_midpoint(&self) -> bool {
        self.max_finite_bits() & 1 == 1
    }

    /// The pattern of ±(significand · 2^exponent) rounded to nearest, ties to even, with
    /// subnormals, and with the overflow rule of the format. Integer operations only.
    const fn round_to_bits(&self, negative: bool, significand: u64, exponent: i32) -> u64 {
        let sign = (negative as u64) << (self.exponent_bits + self.mantissa_bits);
        if significand == 0 {
            return sign;
        }
        let m = self.mantissa_bits as i32;
        // The value lies in [2^top, 2^(top+1)); below the normal range the spacing stays that
        // of the smallest normals.
        let top = exponent + 63 - significand.leading_zeros() as i32;
        let binade = if top > self.min_exponent() {
            top
        } else {
            self.min_exponent()
        };
        let shift = binade - m - exponent;
        // The value in units of the spacing at `binade`, rounded to an integer.
        let units = if shift <= 0 {
            significand << -shift
        } else if shift > 64 {
            // significand < 2^64 units of 2^exponent, less than half a unit of 2^(exponent+shift).
            0
        } else {
            let wide = significand as u128;
            let kept = wide >> shift;
            let rest = wide & ((1 << shift) - 1);
            let half = 1 << (shift - 1);
            let up = rest > half || (rest == half && kept & 1 == 1);
            (kept + up as u128) as u64
        };
        // A normal result has the hidden bit in `units` (2^m ≤ units ≤ 2^(m+1)); adding it to
        // the exponent field (binade − min_exponent) gives the biased exponent, and a carry
        // out of the mantissa moves up a binade by itself. A subnormal result has units < 2^m
        // and a zero exponent field; rounding up to 2^m makes it the smallest normal.
        let magnitude = (((binade - self.min_exponent()) as u64) << m) + units;
        if magnitude <= self.max_finite_bits() {
            return sign | magnitude;
        }
        sign | self.overflow_bits()
    }

    /// The sign-free pattern a cast gives where the rounding lies beyond the largest finite,
    /// by [`Self::overflow`]: inf, NaN, or the largest finite.
    pub const fn overflow_bits(&self) -> u64 {
        match (self.overflow, self.inf_bits()) {
            (Overflow::Infinity, Some(inf)) => inf,
            (Overflow::Saturate, _) => self.max_finite_bits(),
            // Overflow::Nan, or Infinity without an inf, which the rows may not have.
            _ => self.nan_bits(),
        }
    }

    /// The sign-free pattern ±inf is cast to: inf itself where the format has one and does
    /// not saturate, otherwise what an overflow gives (the largest finite, or NaN where the
    /// format has no inf).
    pub const fn inf_cast_bits(&self) -> u64 {
        match (self.overflow, self.inf_bits()) {
            (Overflow::Saturate, _) | (_, None) => self.overflow_bits(),
            (_, Some(inf)) => inf,
        }
    }

    /// The pattern x is cast to.
    pub const fn encode_f64(&self, x: f64) -> u64 {
        let bits = x.to_bits();
        let negative = bits >> 63 == 1;
        let sign = (negative as u64) << (self.exponent_bits + self.mantissa_bits);
        let magnitude = bits & !(1 << 63);
        if F64_LAYOUT.is_nan_bits(magnitude) {
            return sign | self.nan_bits();
        }
        if magnitude == F64_LAYOUT.exponent_field_max() << 52 {
            return sign | self.inf_cast_bits();
        }
        let (significand, exponent) = F64_LAYOUT.significand_and_exponent(magnitude);
        self.round_to_bits(negative, significand, exponent)
    }

    /// The value of a pattern; bits above `total_bits` are ignored.
    pub const fn decode_f64(&self, bits: u64) -> f64 {
        let width = self.exponent_bits + self.mantissa_bits;
        let negative = (bits >> width) & 1 == 1;
        let magnitude = bits & ((1 << width) - 1);
        let sign = (negative as u64) << 63;
        if self.is_nan_bits(magnitude) {
            return f64::from_bits(sign | F64_LAYOUT.nan_bits());
        }
        if let Some(inf) = self.inf_bits() {
            if magnitude == inf {
                return f64::from_bits(sign | F64_LAYOUT.exponent_field_max() << 52);
            }
        }
        let (significand, exponent) = self.significand_and_exponent(magnitude);
        // Exact: f64 holds every value of every format.
        f64::from_bits(F64_LAYOUT.round_to_bits(negative, significand, exponent))
    }
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::F32,
        Format::F16,
        Format::Bf16,
        Format::E4m3,
        Format::E5m2,
    ];

    pub const fn spec(self) -> &'static FormatSpec {
        &SPECS[self as usize]
    }

    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// The bit pattern (in the low `total_bits`) that x is cast to: round to nearest, ties to
    /// even, subnormals kept, overflow per [`FormatSpec::overflow`], NaN to the format's NaN
    /// of the same sign.
    pub const fn encode(self, x: f32) -> u32 {
        // Widening to f64 is exact, so this is one rounding.
        self.spec().encode_f64(x as f64) as u32
    }

    /// As [`Format::encode`], rounding the f64 once (f64 → f32 → format would round twice).
    pub const fn encode_f64(self, x: f64) -> u32 {
        self.spec().encode_f64(x) as u32
    }

    /// The value of a bit pattern; bits above `total_bits` are ignored.
    pub const fn decode(self, bits: u32) -> f32 {
        // Exact: every value of every format is an f32 (checked for each row above).
        self.spec().decode_f64(bits as u64) as f32
    }

    /// As [`Format::encode`], but a value beyond the range (inf included) becomes the largest
    /// finite of its sign, as FP8 quantisation does (CUDA's `__NV_SATFINITE`, which Transformer
    /// Engine's casts use); NaN stays NaN. The format's row with [`Overflow::Saturate`], so
    /// for a row that already saturates (E4M3) it is [`Format::encode`] itself.
    pub const fn encode_saturating(self, x: f32) -> u32 {
        let saturating = FormatSpec {
            overflow: Overflow::Saturate,
            ..*self.spec()
        };
        saturating.encode_f64(x as f64) as u32
    }

    /// Whether a pattern (in the low `total_bits`) is NaN.
    pub const fn is_nan_bits(self, bits: u32) -> bool {
        let spec = self.spec();
        spec.is_nan_bits(bits as u64 & ((1 << (spec.exponent_bits + spec.mantissa_bits)) - 1))
    }

    /// Bytes per stored value.
    pub const fn size_bytes(self) -> u64 {
        self.spec().total_bits() as u64 / 8
    }

    /// Values per 32-bit word where the format is stored packed.
    pub const fn per_word(self) -> u32 {
        32 / self.spec().total_bits()
    }

    /// The WGSL type that holds the format natively (f32, f16), or `None` where WGSL has no
    /// such type and a tensor is stored packed in `u32` words (bf16, FP8).
    pub const fn native_wgsl(self) -> Option<&'static str> {
        match self {
            Format::F32 => Some("f32"),
            Format::F16 => Some("f16"),
            Format::Bf16 | Format::E4m3 | Format::E5m2 => None,
        }
    }

    /// Unit roundoff u = 2^-p of round to nearest (p significand bits, the hidden one included).
    pub const fn unit_roundoff(self) -> f64 {
        self.spec().unit_roundoff()
    }

    pub const fn min_normal(self) -> f64 {
        self.spec().min_normal()
    }

    /// Half the spacing of the subnormals: the largest absolute error of one rounding that
    /// lands below the normal range, when the device keeps subnormals.
    pub const fn subnormal_half_spacing(self) -> f64 {
        self.spec().subnormal_half_spacing()
    }

    /// x rounded once to the format (an alias of [`Format::round_f64`]).
    pub const fn round(self, x: f64) -> f64 {
        self.round_f64(x)
    }

    /// The value x takes when cast to the format and back.
    pub const fn round_f32(self, x: f32) -> f32 {
        self.decode(self.encode(x))
    }

    /// The value x takes when cast to the format and back, rounded once.
    pub const fn round_f64(self, x: f64) -> f64 {
        self.spec().decode_f64(self.encode_f64(x) as u64)
    }
}

/// A format in JSON is its name.
impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A format's name read back (a checkpoint's records).
impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Format::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("no number format named '{name}'")))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived numbers against the published constants of each format.
    #[test]
    fn each_derived_quantity_matches_the_known_constant() {
        let p = |e: i32| 2f64.powi(e);
        // (format, largest finite, smallest normal, smallest subnormal, u)
        let known = [
            (Format::F32, f32::MAX as f64, p(-126), p(-149), p(-24)),
            (
                Format::F16,
                65504.0,
                6.103515625e-5,
                5.960464477539063e-8,
                p(-11),
            ),
            (Format::Bf16, 3.3895313892515355e38, p(-126), p(-133), p(-8)),
            (Format::E4m3, 448.0, p(-6), p(-9), p(-4)),
            (Format::E5m2, 57344.0, p(-14), p(-16), p(-3)),
        ];
        for (format, max, min_normal, min_subnormal, u) in known {
            let s = format.spec();
            assert_eq!(s.max_finite(), max, "{format}");
            assert_eq!(s.min_normal(), min_normal, "{format}");
            assert_eq!(s.min_subnormal(), min_subnormal, "{format}");
            assert_eq!(s.unit_roundoff(), u, "{format}");
            assert_eq!(s.epsilon(), 2.0 * u, "{format}");
            assert_eq!(s.subnormal_half_spacing(), min_subnormal / 2.0, "{format}");
        }
        assert_eq!(f32::MIN_POSITIVE as f64, Format::F32.spec().min_normal());
        assert_eq!(f32::EPSILON as f64, Format::F32.spec().epsilon());
    }

    #[test]
    fn each_format_spells_nan_inf_and_its_largest_finite_as_published() {
        // (format, total bits, +NaN, +inf, largest finite, overflow midpoint, overflows there)
        let known = [
            (
                Format::F32,
                32,
                0x7fc0_0000,
                Some(0x7f80_0000),
                0x7f7f_ffff,
                None,
                true,
            ),
            (
                Format::F16,
                16,
                0x7e00,
                Some(0x7c00),
                0x7bff,
                Some(65520.0),
                true,
            ),
            (Format::Bf16, 16, 0x7fc0, Some(0x7f80), 0x7f7f, None, true),
            (Format::E4m3, 8, 0x7f, None, 0x7e, Some(464.0), false),
            (Format::E5m2, 8, 0x7e, Some(0x7c), 0x7b, Some(61440.0), true),
        ];
        for (format, bits, nan, inf, max, midpoint, overflows) in known {
            let s = format.spec();
            assert_eq!(s.total_bits(), bits, "{format}");
            assert_eq!(s.nan_bits(), nan, "{format}");
            assert_eq!(s.inf_bits(), inf, "{format}");
            assert_eq!(s.has_inf(), inf.is_some(), "{format}");
            assert_eq!(s.max_finite_bits(), max, "{format}");
            if let Some(midpoint) = midpoint {
                assert_eq!(s.overflow_midpoint(), midpoint, "{format}");
            }
            assert_eq!(s.overflows_at_midpoint(), overflows, "{format}");
        }
        // f32's midpoint, 2^128 − 2^103, lies beyond f32 itself.
        let f32_midpoint = 2f64.powi(128) - 2f64.powi(103);
        assert_eq!(Format::F32.spec().overflow_midpoint(), f32_midpoint);
    }

    #[test]
    fn overflow_and_inf_cast_as_the_row_says_and_saturating_casts_clamp() {
        // (format, +overflow pattern, +inf cast to, the first f32 that overflows)
        let known = [
            (Format::F32, 0x7f80_0000, 0x7f80_0000, None),
            (Format::F16, 0x7c00, 0x7c00, Some(65520.0)),
            (
                Format::Bf16,
                0x7f80,
                0x7f80,
                Some(f32::from_bits(0x7f7f_8000)),
            ),
            // PyTorch 2.15: 464 ties down to 448, everything above it saturates.
            (Format::E4m3, 0x7e, 0x7e, Some(464f32.next_up())),
            (Format::E5m2, 0x7c, 0x7c, Some(61440.0)),
        ];
        for (format, overflow, inf, first) in known {
            let s = format.spec();
            let sign = 1 << (s.total_bits() - 1);
            let max = s.max_finite_bits() as u32;
            assert_eq!(s.overflow_bits() as u32, overflow, "{format}");
            assert_eq!(s.inf_cast_bits() as u32, inf, "{format}");
            assert_eq!(format.encode(f32::INFINITY), inf, "{format}");
            assert_eq!(format.encode(f32::NEG_INFINITY), sign | inf, "{format}");
            assert_eq!(format.encode_saturating(f32::INFINITY), max, "{format}");
            let neg_inf = format.encode_saturating(f32::NEG_INFINITY);
            assert_eq!(neg_inf, sign | max, "{format}");
            for x in [f32::NAN, -f32::NAN] {
                let nan = s.nan_bits() as u32 | if x.is_sign_negative() { sign } else { 0 };
                assert_eq!(format.encode(x), nan, "{format}");
                assert_eq!(format.encode_saturating(x), nan, "{format}");
            }
            let Some(first) = first else { continue };
            for x in [first, first.next_up(), first * 2.0, f32::MAX] {
                assert_eq!(format.encode(x), overflow, "{format}: {x:e}");
                assert_eq!(format.encode(-x), sign | overflow, "{format}: {x:e}");
                assert_eq!(format.encode_saturating(x), max, "{format}: {x:e}");
                assert_eq!(format.encode_saturating(-x), sign | max, "{format}: {x:e}");
            }
            let below = first.next_down();
            assert_eq!(format.encode(below), max, "{format}: {below:e}");
            assert_eq!(format.encode_saturating(below), max, "{format}: {below:e}");
        }
        // A row that saturates is its own saturating cast, everywhere.
        let e4m3 = Format::E4m3;
        for bits in (0..=u32::MAX).step_by(251) {
            let x = f32::from_bits(bits);
            assert_eq!(e4m3.encode_saturating(x), e4m3.encode(x), "{x:e}");
        }
    }

    #[test]
    fn one_and_its_neighbours_cast_to_the_textbook_patterns() {
        // 1.0, and 1 + ε/2 (a tie that goes down to even) in each format.
        for (format, one) in [
            (Format::F32, 0x3f80_0000),
            (Format::F16, 0x3c00),
            (Format::Bf16, 0x3f80),
            (Format::E4m3, 0x38),
            (Format::E5m2, 0x3c),
        ] {
            let s = format.spec();
            assert_eq!(format.encode(1.0), one, "{format}");
            assert_eq!(
                format.encode(-1.0),
                one | 1 << (s.total_bits() - 1),
                "{format}"
            );
            assert_eq!(format.decode(one), 1.0, "{format}");
            assert_eq!(format.round_f64(1.0 + s.unit_roundoff()), 1.0, "{format}");
            assert_eq!(
                format.round_f64(1.0 + 3.0 * s.unit_roundoff()),
                1.0 + 4.0 * s.unit_roundoff(),
                "{format}: the tie between 1 + ε and 1 + 2ε goes up to even"
            );
        }
    }
}
