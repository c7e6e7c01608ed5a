//! CPU reference of shaders/reduce.wgsl: the exact record in f64.

use rayon::prelude::*;

use crate::format::Format;
use crate::precision::DType;
use crate::stats::{
    classify_bits, l2_norm_of, CastReport, ExponentHistogram, NumericClass, StatsRecord,
};
use crate::tensor::{HostData, HostTensor, HostView};

/// Values per piece of the parallel reductions.
const PIECE: usize = 1 << 16;

/// The exact record of a whole tensor: pieces reduced on all cores straight from the stored
/// values, merged by Chan's formula in f64 (each merge adds a few f64 roundings, far below any
/// f32 bound it is compared with).
pub fn reference(tensor: &HostTensor) -> StatsRecord {
    reference_of_view(tensor.data().view())
}

/// [`reference()`] of borrowed values, read where they lie.
pub fn reference_of_view(view: HostView<'_>) -> StatsRecord {
    match view {
        HostView::F32(v) => reduce_slice(v, DType::F32),
        HostView::F16(v) => reduce_slice(v, DType::F16),
        HostView::Bf16(v) => reduce_slice(v, DType::Bf16),
        HostView::Fp8 { format, bits } => reduce_slice(&fp8_values(format, bits), format),
    }
}

/// FP8 patterns with their format, so that they can be read as values.
fn fp8_values(format: Format, bits: &[u8]) -> Vec<Fp8Value> {
    bits.iter().map(|&bits| Fp8Value { bits, format }).collect()
}

/// The record of every row of `tensor`.
pub fn reference_per_row(tensor: &HostTensor) -> Vec<StatsRecord> {
    let cols = tensor.shape().cols;
    match tensor.data() {
        HostData::F32(v) => v
            .par_chunks(cols)
            .map(|row| reduce_slice(row, DType::F32))
            .collect(),
        HostData::F16(v) => v
            .par_chunks(cols)
            .map(|row| reduce_slice(row, DType::F16))
            .collect(),
        HostData::Bf16(v) => v
            .par_chunks(cols)
            .map(|row| reduce_slice(row, DType::Bf16))
            .collect(),
        HostData::Fp8 { format, bits } => fp8_values(*format, bits)
            .par_chunks(cols)
            .map(|row| reduce_slice(row, *format))
            .collect(),
    }
}

/// A stored value: its raw bits and its exact value.
trait Stored: Copy + Send + Sync {
    fn bits(self) -> u32;
    fn value(self) -> f64;
}

impl Stored for f32 {
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn value(self) -> f64 {
        self as f64
    }
}

impl Stored for half::f16 {
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
    fn value(self) -> f64 {
        self.to_f64()
    }
}

impl Stored for half::bf16 {
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
    fn value(self) -> f64 {
        self.to_f64()
    }
}

#[derive(Clone, Copy)]
struct Fp8Value {
    bits: u8,
    format: Format,
}

impl Stored for Fp8Value {
    fn bits(self) -> u32 {
        self.bits as u32
    }
    fn value(self) -> f64 {
        self.format.decode(self.bits as u32) as f64
    }
}

fn reduce_slice<T: Stored>(values: &[T], dtype: DType) -> StatsRecord {
    if values.len() <= PIECE {
        return piece_record(values, dtype);
    }
    values
        .par_chunks(PIECE)
        .map(|piece| piece_record(piece, dtype))
        .reduce_with(|a, b| a.merge(&b))
        .expect("at least one piece")
}

/// The exact record of one piece, in two passes: classes, extrema and the sum, then the
/// squared deviations from the mean.
fn piece_record<T: Stored>(values: &[T], dtype: DType) -> StatsRecord {
    let mut histogram = ExponentHistogram::empty(dtype);
    let (mut nan, mut pos_inf, mut neg_inf, mut zero, mut subnormal) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut cast = CastReport::default();
    let (mut n, mut sum, mut min, mut max, mut abs_max) =
        (0usize, 0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &stored in values {
        let class = classify_bits(stored.bits(), dtype);
        match class {
            NumericClass::Nan => nan += 1,
            NumericClass::PosInf => pos_inf += 1,
            NumericClass::NegInf => neg_inf += 1,
            NumericClass::Zero | NumericClass::Subnormal | NumericClass::Normal(_) => {
                let x = stored.value();
                n += 1;
                sum += x;
                min = min.min(x);
                max = max.max(x);
                abs_max = abs_max.max(x.abs());
                match class {
                    NumericClass::Zero => zero += 1,
                    NumericClass::Subnormal => subnormal += 1,
                    NumericClass::Normal(e) => {
                        histogram.normal[(e - histogram.min_exponent) as usize] += 1
                    }
                    _ => unreachable!("finite classes only"),
                }
                if class != NumericClass::Zero {
                    // What a cast of this finite, non-zero value to each format would do.
                    cast.add_value((x as f32).to_bits());
                }
            }
        }
    }
    histogram.zero = zero;
    histogram.subnormal = subnormal;
    histogram.nan = nan;
    histogram.inf = pos_inf + neg_inf;
    let (mean, variance, min, max, abs_max, finite_norm) = if n == 0 {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, 0.0)
    } else {
        // Two passes in f64: the mean, then the squared deviations (no cancellation). f64 holds
        // the squares of any f32 (up to 1.2e77), so ‖x‖² = Σ(x − μ)² + n·μ² cannot overflow.
        let mean = sum / n as f64;
        let squared_deviations: f64 = values
            .iter()
            .map(|v| v.value())
            .filter(|x| x.is_finite())
            .map(|x| (x - mean) * (x - mean))
            .sum();
        let l2 = (squared_deviations + n as f64 * mean * mean).sqrt();
        (mean, squared_deviations / n as f64, min, max, abs_max, l2)
    };
    let l2_norm = l2_norm_of(finite_norm, nan, pos_inf + neg_inf);
    StatsRecord {
        count: values.len() as u64,
        mean,
        variance,
        min,
        max,
        abs_max,
        l2_norm,
        nan,
        pos_inf,
        neg_inf,
        zero,
        subnormal,
        histogram,
        cast,
    }
}
