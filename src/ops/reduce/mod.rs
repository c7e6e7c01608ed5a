//! Reductions: the statistics record of a tensor, whole or per row. The CPU reference is in
//! `cpu.rs` (exact, in f64), the host code of shaders/reduce.wgsl in `gpu.rs`; this file holds
//! the error bound that ties the two together.

pub mod cpu;
pub mod gpu;

use crate::precision::F32_UNIT_ROUNDOFF;
use crate::stats::StatsRecord;

/// Elements one thread of a pass reads (PER_THREAD in the shader's header), unless the GPU is
/// told otherwise (`GpuOptions::reduction_per_thread`, which lets small tests reach the
/// combine of several partials per thread that only tensors beyond 2,097,152 values reach
/// with this default).
pub const PER_THREAD: usize = 32;
/// Threads per workgroup (THREADS in the shader's header).
pub const THREADS: usize = 256;
/// Elements one workgroup of a pass reads.
pub const CHUNK: usize = PER_THREAD * THREADS;

/// The depth of the f32 accumulation of one segment of `len` elements: a Welford chain of
/// PER_THREAD updates, a tree of log2(THREADS) combinations in the workgroup, a chain over the
/// workgroups a combining thread folds, and another tree of log2(THREADS).
pub fn accumulation_depth(len: usize, per_thread: usize) -> usize {
    let chunks = len.div_ceil(per_thread * THREADS).max(1);
    let tree = THREADS.ilog2() as usize;
    per_thread + tree + chunks.div_ceil(THREADS) + tree + 3
}

/// Bounds on |mean − exact mean| and |variance − exact variance| for the GPU's f32
/// accumulation over `len` values, given the exact record.
///
/// The kernel accumulates y = x·2^-E − K, where 2^E scales the data below 1 exactly and K is
/// the centre of [min, max]. Each Welford update or Chan combination rounds a handful of times,
/// and no value passes through more than `accumulation_depth` of them, so (Chan, Golub and
/// LeVeque, "Algorithms for computing the sample variance", 1983):
/// - the mean errs by at most 8·D·u·R, with R = (max − min)/2 the largest |x − K|;
/// - the variance errs by at most 8·D·u·σ·(σ + |mean − K|): its relative error scales with the
///   condition number √(1 + (mean − K)²/σ²) that the shift keeps near 1, where the naive
///   E\[x²\] − E\[x\]² would scale with 1 + mean²/σ².
///
/// Scaled values that fall below f32's normal range add 2^(E−120) to each bound.
pub fn moment_error_bounds(exact: &StatsRecord, len: usize) -> (f64, f64) {
    moment_error_bounds_with(exact, len, PER_THREAD)
}

/// `moment_error_bounds` for a reduction that reads `per_thread` elements per thread.
pub fn moment_error_bounds_with(exact: &StatsRecord, len: usize, per_thread: usize) -> (f64, f64) {
    if exact.finite() == 0 {
        return (0.0, 0.0);
    }
    let d = accumulation_depth(len, per_thread) as f64;
    let u = F32_UNIT_ROUNDOFF;
    let shift = 0.5 * (exact.min + exact.max);
    let half_range = 0.5 * (exact.max - exact.min);
    let sigma = exact.variance.sqrt();
    let floor = if exact.abs_max > 0.0 {
        2f64.powi(exact.abs_max.log2().ceil() as i32 - 120)
    } else {
        0.0
    };
    let mean_bound = 8.0 * d * u * half_range + floor;
    let variance_bound = 8.0 * d * u * sigma * (sigma + (exact.mean - shift).abs()) + floor;
    (mean_bound, variance_bound)
}
