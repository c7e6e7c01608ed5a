//! The statistics record of a tensor: moments, extrema, numeric-class counts, an exponent
//! histogram and a cast report, and its exact CPU reference in f64.
//!
//! The record never overflows itself: numeric classes come from raw bit patterns, and the
//! moments are formed from values scaled by a power of two (exact) and shifted near their
//! centre, so neither a sum of squares nor `E[x²] − E[x]²` ever appears.

use crate::format::Format;
use crate::precision::DType;

/// Counts of the finite, non-zero values that a cast to a narrower format would change in kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CastCounts {
    /// Would round beyond the format's range: to ±inf, or, in E4M3FN, which has no inf, to
    /// the ±448 it saturates to (every |x| > 464, as PyTorch 2.15's cast does).
    pub overflow: u64,
    /// Would round to a non-zero subnormal.
    pub subnormal: u64,
    /// Would round to ±0.
    pub zero: u64,
}

impl CastCounts {
    pub(crate) fn add(&mut self, other: CastCounts) {
        self.overflow += other.overflow;
        self.subnormal += other.subnormal;
        self.zero += other.zero;
    }
}

/// What storing the values in each narrower format (round to nearest even, as PyTorch's
/// `Tensor.to`) would do to them: "can these weights be stored in E4M3?".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CastReport {
    pub f16: CastCounts,
    pub bf16: CastCounts,
    pub e4m3: CastCounts,
    pub e5m2: CastCounts,
}

/// The formats of the cast report, in its order.
pub const CAST_FORMATS: [Format; 4] = [Format::F16, Format::Bf16, Format::E4m3, Format::E5m2];

impl CastReport {
    /// The counts of one of [`CAST_FORMATS`].
    pub fn of(&self, format: Format) -> &CastCounts {
        match format {
            Format::F16 => &self.f16,
            Format::Bf16 => &self.bf16,
            Format::E4m3 => &self.e4m3,
            Format::E5m2 => &self.e5m2,
            Format::F32 => panic!("f32 is not a narrower format of the cast report"),
        }
    }

    fn of_mut(&mut self, format: Format) -> &mut CastCounts {
        match format {
            Format::F16 => &mut self.f16,
            Format::Bf16 => &mut self.bf16,
            Format::E4m3 => &mut self.e4m3,
            Format::E5m2 => &mut self.e5m2,
            Format::F32 => panic!("f32 is not a narrower format of the cast report"),
        }
    }

    /// A report whose counts for each format come from `counts`.
    pub fn from_fn(mut counts: impl FnMut(Format) -> CastCounts) -> Self {
        let mut report = CastReport::default();
        for format in CAST_FORMATS {
            *report.of_mut(format) = counts(format);
        }
        report
    }

    /// Adds what casting one finite, non-zero value of f32 bits `bits` does, in every format.
    pub fn add_value(&mut self, bits: u32) {
        for format in CAST_FORMATS {
            self.of_mut(format)
                .add(cast_counts(bits, &cast_thresholds(format)));
        }
    }

    pub(crate) fn add(&mut self, other: &CastReport) {
        for format in CAST_FORMATS {
            self.of_mut(format).add(*other.of(format));
        }
    }
}

/// Counts of |x| per binary exponent of the storage type, plus the special classes.
/// The bins add up to the record's `count`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExponentHistogram {
    /// The exponent of the first bin of `normal` (−14 for f16, −126 for f32).
    pub min_exponent: i32,
    /// `normal[i]` counts the normal values with 2^(min_exponent + i) ≤ |x| < 2^(min_exponent + i + 1).
    pub normal: Vec<u64>,
    pub zero: u64,
    pub subnormal: u64,
    pub inf: u64,
    pub nan: u64,
}

impl ExponentHistogram {
    pub fn empty(dtype: DType) -> Self {
        let spec = dtype.spec();
        // One bin per biased exponent of a normal value, 1 up to the largest finite's.
        let (min_exponent, bins) = (
            spec.min_exponent(),
            (spec.max_finite_bits() >> spec.mantissa_bits) as usize,
        );
        ExponentHistogram {
            min_exponent,
            normal: vec![0; bins],
            zero: 0,
            subnormal: 0,
            inf: 0,
            nan: 0,
        }
    }

    pub fn total(&self) -> u64 {
        self.normal.iter().sum::<u64>() + self.zero + self.subnormal + self.inf + self.nan
    }
}

/// The statistics of one tensor (or one row). Moments and extrema are over the finite values;
/// with none, they are NaN (`null` in JSON). The norm is over every value (`l2_norm_of`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsRecord {
    /// Every element, finite or not.
    pub count: u64,
    pub mean: f64,
    /// Population variance.
    pub variance: f64,
    pub min: f64,
    pub max: f64,
    pub abs_max: f64,
    /// ‖x‖₂ of every value: +inf where one is ±inf, NaN where one is NaN (`l2_norm_of`; both
    /// `null` in JSON, the class counts beside it say which).
    pub l2_norm: f64,
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    /// Both signs.
    pub zero: u64,
    pub subnormal: u64,
    pub histogram: ExponentHistogram,
    pub cast: CastReport,
}

impl StatsRecord {
    pub fn finite(&self) -> u64 {
        self.count - self.nan - self.pos_inf - self.neg_inf
    }

    pub fn std(&self) -> f64 {
        self.variance.sqrt()
    }

    /// E\[x²\] over the finite values.
    pub fn second_moment(&self) -> f64 {
        self.variance + self.mean * self.mean
    }

    /// The record of the union of two disjoint sets of values of one storage type: counts add,
    /// extrema combine, and the moments combine by Chan's formula in f64.
    pub fn merge(&self, other: &StatsRecord) -> StatsRecord {
        let (na, nb) = (self.finite() as f64, other.finite() as f64);
        let pick = |a: f64, b: f64, f: fn(f64, f64) -> f64| {
            if na == 0.0 {
                b
            } else if nb == 0.0 {
                a
            } else {
                f(a, b)
            }
        };
        let n = na + nb;
        let (mean, variance) = if na == 0.0 {
            (other.mean, other.variance)
        } else if nb == 0.0 {
            (self.mean, self.variance)
        } else {
            let delta = other.mean - self.mean;
            let m2 = self.variance * na + other.variance * nb + delta * delta * na * nb / n;
            (self.mean + delta * nb / n, m2 / n)
        };
        let mut histogram = self.histogram.clone();
        for (a, b) in histogram.normal.iter_mut().zip(&other.histogram.normal) {
            *a += b;
        }
        histogram.zero += other.histogram.zero;
        histogram.subnormal += other.histogram.subnormal;
        histogram.inf += other.histogram.inf;
        histogram.nan += other.histogram.nan;
        let mut cast = self.cast;
        cast.add(&other.cast);
        StatsRecord {
            count: self.count + other.count,
            mean,
            variance,
            min: pick(self.min, other.min, f64::min),
            max: pick(self.max, other.max, f64::max),
            abs_max: pick(self.abs_max, other.abs_max, f64::max),
            // Where either part holds an inf or a NaN the counts alone decide; otherwise both
            // norms are of finite values and combine by hypot.
            l2_norm: l2_norm_of(
                self.l2_norm.hypot(other.l2_norm),
                self.nan + other.nan,
                self.pos_inf + self.neg_inf + other.pos_inf + other.neg_inf,
            ),
            nan: self.nan + other.nan,
            pos_inf: self.pos_inf + other.pos_inf,
            neg_inf: self.neg_inf + other.neg_inf,
            zero: self.zero + other.zero,
            subnormal: self.subnormal + other.subnormal,
            histogram,
            cast,
        }
    }
}

/// The lean part of a record that a training step reads of every gradient and update: the
/// counts of each numeric class and ‖x‖₂. The CPU computes it in one branch-free pass
/// (`ops::reduce::census`); any backend can take it from a full record (`Census::of`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Census {
    /// Every element, finite or not.
    pub count: u64,
    /// Both signs.
    pub zero: u64,
    pub subnormal: u64,
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    /// ‖x‖₂ of every value, as [`StatsRecord::l2_norm`] (`l2_norm_of`).
    pub l2_norm: f64,
}

impl Census {
    /// The census fields of a full record.
    pub fn of(record: &StatsRecord) -> Census {
        Census {
            count: record.count,
            zero: record.zero,
            subnormal: record.subnormal,
            nan: record.nan,
            pos_inf: record.pos_inf,
            neg_inf: record.neg_inf,
            l2_norm: record.l2_norm,
        }
    }

    /// The values that are neither NaN nor ±inf.
    pub fn finite(&self) -> u64 {
        self.count - self.nan - self.pos_inf - self.neg_inf
    }

    /// A record that carries this census and nothing else: moments and extrema NaN, the
    /// histogram and cast report empty. Only `backend::batch`'s census handles read it, and
    /// they read the census fields alone (`Census::of`).
    pub fn as_partial_record(&self, dtype: DType) -> StatsRecord {
        StatsRecord {
            count: self.count,
            mean: f64::NAN,
            variance: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            abs_max: f64::NAN,
            l2_norm: self.l2_norm,
            nan: self.nan,
            pos_inf: self.pos_inf,
            neg_inf: self.neg_inf,
            zero: self.zero,
            subnormal: self.subnormal,
            histogram: ExponentHistogram::empty(dtype),
            cast: CastReport::default(),
        }
    }
}

/// ‖x‖₂ of values whose finite part has norm `finite_norm` (0 for none), among which `nan` are
/// NaN and `inf` are ±inf: NaN where any is NaN, +inf where any is infinite, as √Σx² itself
/// evaluates (and `torch.linalg.vector_norm`). A norm of the finite part alone would hide the
/// very values that clipping by norm (`clip_grad_norm_`) and the update ratio ‖ΔW‖/‖W‖ must
/// see; both backends state their norms through this one function.
pub fn l2_norm_of(finite_norm: f64, nan: u64, inf: u64) -> f64 {
    if nan > 0 {
        f64::NAN
    } else if inf > 0 {
        f64::INFINITY
    } else {
        finite_norm
    }
}

/// The numeric class of a stored value, from its bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumericClass {
    Nan,
    PosInf,
    NegInf,
    Zero,
    Subnormal,
    /// A normal number with this unbiased exponent.
    Normal(i32),
}

/// Classifies raw storage bits of `dtype` (an f16 uses the low 16 bits).
pub fn classify_bits(bits: u32, dtype: DType) -> NumericClass {
    let spec = dtype.spec();
    let (exp_bits, mantissa_bits) = (spec.exponent_bits, spec.mantissa_bits);
    let negative = bits >> (exp_bits + mantissa_bits) & 1 == 1;
    let magnitude = bits & ((1 << (exp_bits + mantissa_bits)) - 1);
    let exponent = magnitude >> mantissa_bits;
    if dtype.is_nan_bits(magnitude) {
        NumericClass::Nan
    } else if spec.inf_bits() == Some(magnitude as u64) {
        if negative {
            NumericClass::NegInf
        } else {
            NumericClass::PosInf
        }
    } else if magnitude == 0 {
        NumericClass::Zero
    } else if exponent == 0 {
        NumericClass::Subnormal
    } else {
        NumericClass::Normal(exponent as i32 - spec.bias)
    }
}

/// Magnitude thresholds, as f32 bit patterns, of a round-to-nearest-even cast. A finite
/// non-zero |x| overflows at or above `overflow`, becomes zero at or below `zero`, and becomes
/// subnormal strictly between `zero` and `subnormal_below`.
#[derive(Clone, Copy, Debug)]
pub struct CastThresholds {
    pub overflow: u32,
    pub zero: u32,
    pub subnormal_below: u32,
}

/// The thresholds of a cast to `format`, from its row of the format table: overflow from the
/// midpoint above the largest finite (or just above it, where the tie goes down to an even
/// largest finite, as in E4M3FN), whatever the row's overflow gives (±inf, or ±448 where
/// E4M3FN saturates); zero up to half the smallest subnormal (a tie to the even 0);
/// subnormal below the midpoint under the smallest normal.
pub const fn cast_thresholds(format: Format) -> CastThresholds {
    let spec = format.spec();
    let midpoint = (spec.overflow_midpoint() as f32).to_bits();
    let below_normal = spec.min_normal() - spec.min_subnormal() / 2.0;
    CastThresholds {
        overflow: if spec.overflows_at_midpoint() {
            midpoint
        } else {
            midpoint + 1
        },
        zero: (spec.subnormal_half_spacing() as f32).to_bits(),
        subnormal_below: (below_normal as f32).to_bits(),
    }
}

/// f16: overflow from 65520; zero up to 2^-25; subnormal below (2047/2048)·2^-14.
pub const F16_CAST: CastThresholds = cast_thresholds(Format::F16);

/// bf16: overflow from (2 − 2^-8)·2^127; zero up to 2^-134; subnormal below (255/256)·2^-126.
pub const BF16_CAST: CastThresholds = cast_thresholds(Format::Bf16);

/// What a cast with these thresholds does to one finite, non-zero value of f32 bits `bits`.
pub fn cast_counts(bits: u32, t: &CastThresholds) -> CastCounts {
    let magnitude = bits & 0x7FFF_FFFF;
    CastCounts {
        overflow: (magnitude >= t.overflow) as u64,
        zero: (magnitude <= t.zero) as u64,
        subnormal: (magnitude > t.zero && magnitude < t.subnormal_below) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn cast_thresholds_from_the_format_table_are_the_known_boundaries() {
        let bits = |t: CastThresholds| [t.overflow, t.zero, t.subnormal_below];
        // The values these were written as before the table existed.
        assert_eq!(bits(F16_CAST), [0x477F_F000, 0x3300_0000, 0x387F_E000]);
        assert_eq!(bits(BF16_CAST), [0x7F7F_8000, 0x0000_8000, 0x007F_8000]);
        // E4M3FN: 464 ties down to the even 448, so overflow (saturation to ±448) starts just
        // above it; zero up to 2^-10; subnormal below (15/16)·2^-6. E5M2: 61440 ties up, past
        // 57344; zero up to 2^-17; subnormal below (7/8)·2^-14.
        let above_464 = f32::from_bits(464f32.to_bits() + 1);
        let e4m3 = [above_464, 2f32.powi(-10), 15.0 / 16.0 * 2f32.powi(-6)];
        assert_eq!(bits(cast_thresholds(Format::E4m3)), e4m3.map(f32::to_bits));
        let e5m2 = [61440.0, 2f32.powi(-17), 7.0 / 8.0 * 2f32.powi(-14)];
        assert_eq!(bits(cast_thresholds(Format::E5m2)), e5m2.map(f32::to_bits));
    }

    #[test]
    fn cast_thresholds_agree_with_the_half_crate_around_every_threshold() {
        for t in [
            F16_CAST.overflow,
            F16_CAST.zero,
            F16_CAST.subnormal_below,
            BF16_CAST.overflow,
            BF16_CAST.zero,
            BF16_CAST.subnormal_below,
        ] {
            for bits in t.saturating_sub(3)..=t.saturating_add(3) {
                for sign in [0, 0x8000_0000] {
                    let x = f32::from_bits(bits | sign);
                    if !x.is_finite() || x == 0.0 {
                        continue;
                    }
                    let h = f16::from_f32(x);
                    let expect = CastCounts {
                        overflow: h.is_infinite() as u64,
                        zero: (h.to_f32() == 0.0) as u64,
                        subnormal: (h.classify() == std::num::FpCategory::Subnormal) as u64,
                    };
                    assert_eq!(cast_counts(bits | sign, &F16_CAST), expect, "f16 of {x:e}");
                    let b = bf16::from_f32(x);
                    let expect = CastCounts {
                        overflow: b.is_infinite() as u64,
                        zero: (b.to_f32() == 0.0) as u64,
                        subnormal: (b.classify() == std::num::FpCategory::Subnormal) as u64,
                    };
                    assert_eq!(
                        cast_counts(bits | sign, &BF16_CAST),
                        expect,
                        "bf16 of {x:e}"
                    );
                }
            }
        }
    }

    #[test]
    fn classification_reads_the_bits() {
        let c = |x: f32| classify_bits(f16::from_f32(x).to_bits() as u32, DType::F16);
        assert_eq!(c(0.0), NumericClass::Zero);
        assert_eq!(c(-0.0), NumericClass::Zero);
        assert_eq!(c(1e-6), NumericClass::Subnormal);
        assert_eq!(c(1.0), NumericClass::Normal(0));
        assert_eq!(c(65504.0), NumericClass::Normal(15));
        assert_eq!(c(1e5), NumericClass::PosInf);
        assert_eq!(c(-1e5), NumericClass::NegInf);
        assert_eq!(c(f32::NAN), NumericClass::Nan);
        assert_eq!(
            classify_bits(1e-40f32.to_bits(), DType::F32),
            NumericClass::Subnormal
        );
        assert_eq!(
            classify_bits(3.0f32.to_bits(), DType::F32),
            NumericClass::Normal(1)
        );
    }
}
