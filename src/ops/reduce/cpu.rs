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

/// The exact record of a whole tensor.
pub fn reference(tensor: &HostTensor) -> StatsRecord {
    reference_of_bits(&storage_bits(tensor), &tensor.to_f64_vec(), tensor.dtype())
}

/// The record of one slice of values with their storage bits.
pub fn reference_of_bits(bits: &[u32], values: &[f64], dtype: DType) -> StatsRecord {
    let mut histogram = ExponentHistogram::empty(dtype);
    let mut cast = CastReport::default();
    let (mut nan, mut pos_inf, mut neg_inf) = (0, 0, 0);
    let mut finite = Vec::with_capacity(values.len());
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
            finite.push(x);
            if x != 0.0 {
                let f32_bits = (x as f32).to_bits();
                cast.f16.add(cast_counts(f32_bits, &F16_CAST));
                cast.bf16.add(cast_counts(f32_bits, &BF16_CAST));
            }
        }
    }
    histogram.nan = nan;
    histogram.inf = pos_inf + neg_inf;
    let n = finite.len() as f64;
    let (mean, variance, min, max, abs_max, l2_norm) = if finite.is_empty() {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    } else {
        // Two passes in f64: the mean, then the squared deviations (no cancellation).
        let mean = finite.iter().sum::<f64>() / n;
        let variance = finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let abs_max = finite.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let l2 = if abs_max == 0.0 {
            0.0
        } else {
            abs_max
                * finite
                    .iter()
                    .map(|x| (x / abs_max).powi(2))
                    .sum::<f64>()
                    .sqrt()
        };
        (mean, variance, min, max, abs_max, l2)
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
