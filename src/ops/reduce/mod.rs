//! Reductions: the statistics record of a tensor, whole or per row. The CPU reference is in
//! `cpu.rs` (exact, in f64), the CPU's lean census of counts and norm in `census.rs`, the host code of shaders/reduce.wgsl in `gpu.rs`; this file holds
//! the error bound that ties the two together.

pub mod census;
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
/// the centre of [min, max]: of the whole segment where it is one chunk (`PER_THREAD ·
/// THREADS` values), else of each chunk, whose mean the combine then moves to the segment's
/// scale (exact) and shift (one rounding, of at most u·R, the size of the rounding every
/// thread's mean already carries, and counted in the 3 steps beyond the chains and trees). Each Welford update or Chan combination rounds a handful of times,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::HostTensor;

    #[test]
    fn the_depth_counts_the_chain_the_trees_and_the_fold_over_workgroups() {
        // 32 Welford updates, two trees of log2(256) = 8, one workgroup folded, 3 more.
        assert_eq!(accumulation_depth(1, 32), 32 + 8 + 1 + 8 + 3);
        assert_eq!(accumulation_depth(8192, 32), 52);
        // 3,000,000 values in chunks of 32·256 = 8192: 367 chunks, folded 256 at a time: 2.
        assert_eq!(accumulation_depth(3_000_000, 32), 32 + 8 + 2 + 8 + 3);
        // Four values a thread: 3,000,000 / 1024 = 2930 chunks, 12 folds.
        assert_eq!(accumulation_depth(3_000_000, 4), 4 + 8 + 12 + 8 + 3);
    }

    #[test]
    fn the_moment_bounds_follow_their_formula() {
        // Values in [−1, 3]: shift K = 1, half-range R = 2; mean 0.5, σ = 1.5.
        let values = [-1.0f32, 3.0, 0.0, 0.0];
        let exact = cpu::reference(&HostTensor::from_f32(1, 4, values.to_vec()).unwrap());
        let (mean, sigma) = (0.5, exact.variance.sqrt());
        assert_eq!(exact.mean, mean);
        let d = accumulation_depth(4, PER_THREAD) as f64;
        let u = F32_UNIT_ROUNDOFF;
        let floor = 2f64.powi(2 - 120); // |x| ≤ 3 < 2^2
        let (mean_bound, variance_bound) = moment_error_bounds(&exact, 4);
        // The same operations in the same order: equal to the last bit, floor included.
        assert_eq!(mean_bound, 8.0 * d * u * 2.0 + floor);
        let expected = 8.0 * d * u * sigma * (sigma + (mean - 1.0f64).abs()) + floor;
        assert_eq!(variance_bound, expected);
        assert_eq!(
            moment_error_bounds_with(&exact, 4, PER_THREAD),
            (mean_bound, variance_bound)
        );
        // A longer chain per thread widens the bound.
        assert!(moment_error_bounds_with(&exact, 4, 64).0 > mean_bound);
        // Without a finite value there is nothing to bound.
        let inf = cpu::reference(&HostTensor::from_f32(1, 2, vec![f32::INFINITY; 2]).unwrap());
        assert_eq!(moment_error_bounds(&inf, 2), (0.0, 0.0));
        // A constant: no spread to err on, only the floor of values scaled below f32's normals.
        let constant = cpu::reference(&HostTensor::from_f32(1, 3, vec![3.0; 3]).unwrap());
        assert_eq!(moment_error_bounds(&constant, 3), (floor, floor));
        // All zeros: no floor, and no spread to err on.
        let zeros = cpu::reference(&HostTensor::from_f32(1, 3, vec![0.0; 3]).unwrap());
        assert_eq!(moment_error_bounds(&zeros, 3), (0.0, 0.0));
    }
}
