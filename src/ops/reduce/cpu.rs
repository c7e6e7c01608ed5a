//! CPU reference of shaders/reduce.wgsl: the exact record in f64.

use rayon::prelude::*;

use crate::precision::DType;
use crate::stats::{
    cast_counts, classify_bits, CastReport, ExponentHistogram, NumericClass, StatsRecord,
    BF16_CAST, F16_CAST,
};
use crate::tensor::{HostData, HostTensor};

fn storage_bits(tensor: &HostTensor) -> Vec<u32> {
    match tensor.data() {
        HostData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        HostData::F16(v) => v.iter().map(|x| x.to_bits() as u32).collect(),
    }
}

/// Values per piece of the parallel whole-tensor reduction.
const PIECE: usize = 1 << 16;

/// The exact record of a whole tensor: pieces reduced on all cores, merged by Chan's formula in
/// f64 (each merge adds a few f64 roundings, far below any f32 bound it is compared with).
pub fn reference(tensor: &HostTensor) -> StatsRecord {
    let bits = storage_bits(tensor);
    let values = tensor.to_f64_vec();
    bits.par_chunks(PIECE)
        .zip(values.par_chunks(PIECE))
        .map(|(b, v)| reference_of_bits(b, v, tensor.dtype()))
        .reduce_with(|a, b| a.merge(&b))
        .expect("a tensor has at least one value")
}

/// The record of one slice of values with their storage bits.
pub fn reference_of_bits(bits: &[u32], values: &[f64], dtype: DType) -> StatsRecord {
    let mut histogram = ExponentHistogram::empty(dtype);
    let mut cast = CastReport::default();
    let (mut nan, mut pos_inf, mut neg_inf) = (0, 0, 0);
    let (mut n, mut sum, mut min, mut max, mut abs_max) =
        (0usize, 0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for (&b, &x) in bits.iter().zip(values) {
        match classify_bits(b, dtype) {
            NumericClass::Nan => nan += 1,
            NumericClass::PosInf => pos_inf += 1,
            NumericClass::NegInf => neg_inf += 1,
            NumericClass::Zero => histogram.zero += 1,
            NumericClass::Subnormal => histogram.subnormal += 1,
            NumericClass::Normal(e) => histogram.normal[(e - histogram.min_exponent) as usize] += 1,
        }
        if x.is_finite() {
            n += 1;
            sum += x;
            min = min.min(x);
            max = max.max(x);
            abs_max = abs_max.max(x.abs());
            if x != 0.0 {
                let f32_bits = (x as f32).to_bits();
                cast.f16.add(cast_counts(f32_bits, &F16_CAST));
                cast.bf16.add(cast_counts(f32_bits, &BF16_CAST));
            }
        }
    }
    histogram.nan = nan;
    histogram.inf = pos_inf + neg_inf;
    let (mean, variance, min, max, abs_max, l2_norm) = if n == 0 {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    } else {
        // Two passes in f64: the mean, then the squared deviations (no cancellation); the norm
        // of values scaled by abs_max cannot overflow.
        let mean = sum / n as f64;
        let (mut squared_deviations, mut scaled_squares) = (0.0f64, 0.0f64);
        for &x in values.iter().filter(|x| x.is_finite()) {
            squared_deviations += (x - mean) * (x - mean);
            if abs_max > 0.0 {
                scaled_squares += (x / abs_max) * (x / abs_max);
            }
        }
        let l2 = abs_max * scaled_squares.sqrt();
        (mean, squared_deviations / n as f64, min, max, abs_max, l2)
    };
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
        zero: histogram.zero,
        subnormal: histogram.subnormal,
        histogram,
        cast,
    }
}

/// The record of every row of `tensor`.
pub fn reference_per_row(tensor: &HostTensor) -> Vec<StatsRecord> {
    let cols = tensor.shape().cols;
    let values = tensor.to_f64_vec();
    let bits = storage_bits(tensor);
    bits.par_chunks(cols)
        .zip(values.par_chunks(cols))
        .map(|(b, v)| reference_of_bits(b, v, tensor.dtype()))
        .collect()
}
