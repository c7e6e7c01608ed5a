//! GPU statistics against the exact f64 reference: counts and extrema exactly, moments within
//! the bound `ops::reduce::moment_error_bounds` derives for f32 accumulation.

mod common;

use gradstab::ops::reduce::cpu::{reference, reference_per_row};
use gradstab::ops::reduce::{moment_error_bounds, moment_error_bounds_with};
use gradstab::stats::StatsRecord;
use gradstab::{Backend, DType, Gpu, GpuOptions, HostTensor};
use half::{bf16, f16};

/// Asserts `got` is the record of `exact` up to the derived moment bounds; exact elsewhere.
fn assert_matches(got: &StatsRecord, exact: &StatsRecord, len: usize, what: &str) {
    assert_matches_with(got, exact, len, gradstab::ops::reduce::PER_THREAD, what)
}

/// `assert_matches` for a reduction reading `per_thread` elements per thread.
fn assert_matches_with(
    got: &StatsRecord,
    exact: &StatsRecord,
    len: usize,
    per_thread: usize,
    what: &str,
) {
    assert_eq!(got.count, exact.count, "{what}: count");
    assert_eq!(
        (got.nan, got.pos_inf, got.neg_inf, got.zero, got.subnormal),
        (
            exact.nan,
            exact.pos_inf,
            exact.neg_inf,
            exact.zero,
            exact.subnormal
        ),
        "{what}: class counts"
    );
    assert_eq!(got.histogram, exact.histogram, "{what}: histogram");
    assert_eq!(
        got.histogram.total(),
        got.count,
        "{what}: histogram bins add up to count"
    );
    assert_eq!(got.cast, exact.cast, "{what}: cast report");
    // The norm counts every value: inf or NaN exactly where the reference's is.
    if !exact.l2_norm.is_finite() {
        assert!(
            got.l2_norm == exact.l2_norm || (got.l2_norm.is_nan() && exact.l2_norm.is_nan()),
            "{what}: l2 {} where the tensor holds inf or NaN: {}",
            got.l2_norm,
            exact.l2_norm
        );
    }
    if exact.finite() == 0 {
        assert!(
            got.mean.is_nan()
                && got.variance.is_nan()
                && got.min.is_nan()
                && got.max.is_nan()
                && got.abs_max.is_nan(),
            "{what}"
        );
        return;
    }
    // Extrema are values of the data: exact.
    assert_eq!(
        (got.min, got.max, got.abs_max),
        (exact.min, exact.max, exact.abs_max),
        "{what}"
    );
    let (mean_bound, var_bound) = moment_error_bounds_with(exact, len, per_thread);
    assert!(
        (got.mean - exact.mean).abs() <= mean_bound,
        "{what}: mean {} vs exact {} (bound {mean_bound:e})",
        got.mean,
        exact.mean
    );
    assert!(
        (got.variance - exact.variance).abs() <= var_bound,
        "{what}: variance {} vs exact {} (bound {var_bound:e})",
        got.variance,
        exact.variance
    );
    if !exact.l2_norm.is_finite() {
        return;
    }
    // ‖x‖² = n·(σ² + μ²): its error follows from those of σ² and μ.
    let n = exact.finite() as f64;
    let l2_sq_bound =
        n * (var_bound + 2.0 * exact.mean.abs() * mean_bound + mean_bound * mean_bound);
    let l2_bound = l2_sq_bound / exact.l2_norm.max(f64::MIN_POSITIVE) + 1e-300;
    assert!(
        (got.l2_norm - exact.l2_norm).abs() <= l2_bound.max(l2_sq_bound.sqrt()),
        "{what}: l2 {} vs exact {}",
        got.l2_norm,
        exact.l2_norm
    );
}

fn gpu_stats(gpu: &Gpu, t: &HostTensor) -> StatsRecord {
    gpu.stats(&gpu.upload(t).unwrap()).unwrap()
}

#[test]
fn whole_tensor_statistics_match_the_reference_for_every_length() {
    let Some(gpu) = common::gpu("stats lengths") else {
        return;
    };
    let mut rng = common::rng(1);
    // 1, 2, 3, primes, one chunk (8192) and one more, 10^6.
    for len in [1, 2, 3, 7, 101, 8191, 8192, 8209, 65_537, 1_000_000] {
        for dtype in [DType::F32, DType::F16, DType::Bf16] {
            let t = common::normal_tensor(&mut rng, dtype, 1, len, 3.0);
            assert_matches(
                &gpu_stats(&gpu, &t),
                &reference(&t),
                len,
                &format!("{dtype} len {len}"),
            );
        }
    }
}

#[test]
fn per_row_statistics_match_with_folded_grids() {
    if common::gpu("stats per row").is_none() {
        return;
    }
    // Grids fold at 20 workgroups per dimension here, so that 300 rows need a folded grid in
    // every kernel without the 140 000 workgroups (13 s on lavapipe) of the real 65535 limit;
    // tests/folding.rs covers that limit itself.
    let gpu = Gpu::new(&GpuOptions {
        max_workgroups_per_dimension: Some(20),
        ..GpuOptions::from_env().unwrap()
    })
    .unwrap();
    let mut rng = common::rng(2);
    for (rows, cols, dtype) in [
        (300, 3, DType::F32),
        (5, 10_007, DType::F16),
        (64, 256, DType::F32),
        (1, 1, DType::F16),
    ] {
        let t = common::normal_tensor(&mut rng, dtype, rows, cols, 1.0);
        let got = gpu.row_stats(&gpu.upload(&t).unwrap()).unwrap();
        let exact = reference_per_row(&t);
        assert_eq!(got.len(), rows);
        for (r, (g, e)) in got.iter().zip(&exact).enumerate() {
            assert_matches(g, e, cols, &format!("{dtype} row {r} of {rows}×{cols}"));
        }
    }
}

#[test]
fn large_mean_small_spread_does_not_cancel() {
    let Some(gpu) = common::gpu("stats cancellation") else {
        return;
    };
    // f32 data with mean 10^4 and standard deviation 1.
    let mut rng = common::rng(3);
    let n = 1_000_000;
    let noise = common::normal_tensor(&mut rng, DType::F32, 1, n, 1.0).to_f32_vec();
    let values: Vec<f32> = noise.iter().map(|z| 1e4 + z).collect();
    let t = HostTensor::from_f32(1, n, values.clone()).unwrap();
    let exact = reference(&t);
    let got = gpu_stats(&gpu, &t);
    assert_matches(&got, &exact, n, "mean 1e4, std 1");
    let (_, var_bound) = moment_error_bounds(&exact, n);
    assert!(
        var_bound < 1e-3 * exact.variance,
        "the derived bound is tight: {var_bound:e}"
    );
    // The naive one-pass formula in f32 accumulation is far outside that bound.
    let (mut sum, mut sum_sq) = (0f32, 0f32);
    for &x in &values {
        sum += x;
        sum_sq += x * x;
    }
    let naive = sum_sq / n as f32 - (sum / n as f32).powi(2);
    assert!(
        (naive as f64 - exact.variance).abs() > 100.0 * var_bound,
        "naive E[x²] − E[x]² = {naive} should be badly wrong here (exact {})",
        exact.variance
    );

    // f16 data whose plain f16 sum would overflow 65504 many times over.
    let values: Vec<f32> = noise
        .iter()
        .take(10_000)
        .map(|z| 30_000.0 + 500.0 * z)
        .collect();
    let t = HostTensor::from_f32_as(DType::F16, 1, values.len(), &values).unwrap();
    let exact = reference(&t);
    assert!(exact.mean * exact.count as f64 > 65504.0 * 1000.0);
    assert_matches(&gpu_stats(&gpu, &t), &exact, values.len(), "f16 mean 3e4");
}

/// NaN, ±inf, ±0, subnormals and normals interleaved.
fn special_values(dtype: DType) -> Vec<f32> {
    let tiny = match dtype {
        DType::F16 => 3e-6,
        // A subnormal of f32, and of bf16, which shares its exponent range.
        _ => 1e-40f32,
    };
    let mut v = Vec::new();
    for i in 0..5000 {
        v.push(match i % 9 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => 0.0,
            4 => -0.0,
            5 => tiny * (1 + i % 5) as f32,
            6 => -tiny,
            _ => (i as f32 * 0.37).sin() * 100.0,
        });
    }
    v
}

#[test]
fn special_values_are_counted_exactly_and_kept_out_of_the_moments() {
    let Some(gpu) = common::gpu("stats special values") else {
        return;
    };
    for dtype in [DType::F32, DType::F16, DType::Bf16] {
        let v = special_values(dtype);
        let t = HostTensor::from_f32_as(dtype, 1, v.len(), &v).unwrap();
        let exact = reference(&t);
        // 5000 = 9·555 + 5: residues 0–4 occur 556 times, 5–8 occur 555 times.
        assert_eq!(exact.nan, 556);
        assert_eq!(exact.pos_inf, 556);
        assert_eq!(exact.neg_inf, 556);
        assert_eq!(exact.zero, 2 * 556);
        assert_eq!(exact.subnormal, 2 * 555);
        assert!(exact.mean.is_finite() && exact.variance.is_finite());
        assert_matches(
            &gpu_stats(&gpu, &t),
            &exact,
            v.len(),
            &format!("{dtype} specials"),
        );
    }
    // Nothing finite at all: the moments are NaN, the counts still exact.
    let t = HostTensor::from_f32(1, 3, vec![f32::NAN, f32::INFINITY, f32::NAN]).unwrap();
    assert_matches(&gpu_stats(&gpu, &t), &reference(&t), 3, "no finite values");
}

#[test]
fn cast_report_matches_half_value_by_value_around_every_threshold() {
    let Some(gpu) = common::gpu("stats cast report") else {
        return;
    };
    // Every f32 within 40 ulps of each threshold of f16 and bf16, both signs, plus a log grid.
    let mut v = Vec::new();
    // And the same for E4M3FN and E5M2: 448, the tie 464, 480; 57344, the tie 61440; each
    // one's smallest normal, the midpoint under it, and half its smallest subnormal.
    for t in [
        65520.0f32,
        2f32.powi(-25),
        2f32.powi(-14) * 2047.0 / 2048.0,
        2f32.powi(-14),
        65504.0,
        448.0,
        464.0,
        480.0,
        2f32.powi(-6),
        2f32.powi(-6) * 15.0 / 16.0,
        2f32.powi(-10),
        57344.0,
        61440.0,
        2f32.powi(-14) * 7.0 / 8.0,
        2f32.powi(-17),
    ] {
        for d in -40i32..=40 {
            let x = f32::from_bits((t.to_bits() as i32 + d) as u32);
            v.push(x);
            v.push(-x);
        }
    }
    for bits in [0x7F7F_8000u32, 0x0000_8000, 0x007F_8000, 0x0080_0000] {
        for d in -40i32..=40 {
            v.push(f32::from_bits((bits as i32 + d) as u32));
        }
    }
    for e in -150..128 {
        v.push(1.37 * 2f32.powi(e));
    }
    let t = HostTensor::from_f32(1, v.len(), v.clone()).unwrap();
    let got = gpu_stats(&gpu, &t);
    let count = |f: &dyn Fn(f32) -> bool| {
        v.iter()
            .filter(|&&x| x.is_finite() && x != 0.0 && f(x))
            .count() as u64
    };
    assert_eq!(
        got.cast.f16.overflow,
        count(&|x| f16::from_f32(x).is_infinite())
    );
    assert_eq!(
        got.cast.f16.subnormal,
        count(&|x| f16::from_f32(x).classify() == std::num::FpCategory::Subnormal)
    );
    assert_eq!(
        got.cast.f16.zero,
        count(&|x| f16::from_f32(x).to_f32() == 0.0)
    );
    assert_eq!(
        got.cast.bf16.overflow,
        count(&|x| bf16::from_f32(x).is_infinite())
    );
    assert_eq!(
        got.cast.bf16.subnormal,
        count(&|x| bf16::from_f32(x).classify() == std::num::FpCategory::Subnormal)
    );
    assert_eq!(
        got.cast.bf16.zero,
        count(&|x| bf16::from_f32(x).to_f32() == 0.0)
    );
    assert!(got.cast.f16.overflow > 0 && got.cast.f16.subnormal > 0 && got.cast.f16.zero > 0);
    assert!(got.cast.bf16.overflow > 0 && got.cast.bf16.subnormal > 0 && got.cast.bf16.zero > 0);
    // FP8, against PyTorch's casts (float8 within range, PyTorch's overflow rule beyond: ±inf
    // in E5M2, saturation to ±448 in E4M3, read through x/2), on both backends.
    let cpu = gradstab::Cpu.stats_of_host(&t).unwrap();
    for (i, (name, counts, on_cpu)) in [
        ("e4m3", got.cast.e4m3, cpu.cast.e4m3),
        ("e5m2", got.cast.e5m2, cpu.cast.e5m2),
    ]
    .into_iter()
    .enumerate()
    {
        let kind = |which: usize| {
            count(&|x| {
                let k = common::fp8_cast_kinds(x as f64)[i];
                [k.0, k.1, k.2][which]
            })
        };
        let want = gradstab::stats::CastCounts {
            overflow: kind(0),
            subnormal: kind(1),
            zero: kind(2),
        };
        assert_eq!(counts, want, "{name} on the GPU");
        assert_eq!(on_cpu, want, "{name} on the CPU");
        assert!(
            want.overflow > 0 && want.subnormal > 0 && want.zero > 0,
            "{name}"
        );
    }
}

#[test]
fn f16_data_reduce_without_shader_f16() {
    if common::gpu("stats without f16").is_none() {
        return;
    }
    let gpu = Gpu::new(&GpuOptions {
        disable_shader_f16: true,
        ..GpuOptions::from_env().unwrap()
    })
    .unwrap();
    let v = special_values(DType::F16);
    let t = HostTensor::from_f32_as(DType::F16, 1, v.len(), &v).unwrap();
    assert_matches(
        &gpu_stats(&gpu, &t),
        &reference(&t),
        v.len(),
        "f16 on a device without f16",
    );
}

#[test]
fn records_of_pieces_merge_into_the_record_of_the_whole() {
    let mut rng = common::rng(9);
    let ordinary = common::normal_tensor(&mut rng, DType::F32, 1, 10_000, 4.0).to_f32_vec();
    // With a NaN and an inf, with the inf alone, and with neither: the norm is NaN, inf, and
    // the hypot of the pieces' norms.
    for (nan, inf) in [(true, true), (false, true), (false, false)] {
        let mut v = ordinary.clone();
        if nan {
            v[17] = f32::NAN;
        }
        if inf {
            v[9_000] = f32::NEG_INFINITY;
        }
        let t = HostTensor::from_f32(1, v.len(), v).unwrap();
        let whole = reference(&t);
        let merged = gradstab::Cpu.stats_in_pieces(t.data().view(), 777).unwrap();
        assert_eq!(merged.histogram, whole.histogram);
        assert_eq!(
            (merged.nan, merged.neg_inf, merged.count),
            (whole.nan, whole.neg_inf, whole.count)
        );
        assert_eq!(
            (merged.min, merged.max, merged.abs_max),
            (whole.min, whole.max, whole.abs_max)
        );
        // Chan's combination in f64 of exact pieces: relative error a few f64 roundings per
        // merge.
        for (a, b) in [(merged.mean, whole.mean), (merged.variance, whole.variance)] {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
        match (nan, inf) {
            (true, _) => assert!(merged.l2_norm.is_nan() && whole.l2_norm.is_nan()),
            (false, true) => assert_eq!(
                (merged.l2_norm, whole.l2_norm),
                (f64::INFINITY, f64::INFINITY)
            ),
            (false, false) => {
                let (a, b) = (merged.l2_norm, whole.l2_norm);
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
        if let Some(gpu) = common::gpu("stats in pieces") {
            let on_gpu = gpu.stats_in_pieces(t.data().view(), 4_099).unwrap();
            assert_matches(&on_gpu, &whole, 4_099, "gpu pieces");
        }
    }
}

#[test]
fn many_partials_per_thread_combine_exactly_enough() {
    // One element per thread makes a workgroup's chunk 256 values, so 70 000 values give 274
    // partial records (two for some combining threads) and 600 000 give 2344 (up to ten each):
    // the combine that the default size reaches only beyond 2,097,152 values.
    if common::gpu("stats many partials").is_none() {
        return;
    }
    let per_thread = 1;
    let gpu = Gpu::new(&GpuOptions {
        reduction_per_thread: Some(per_thread),
        ..GpuOptions::from_env().unwrap()
    })
    .unwrap();
    let mut rng = common::rng(17);
    for (len, dtype, offset) in [
        (70_000, DType::F32, 0.0),
        (600_000, DType::F32, 3.0),
        (600_000, DType::F16, -1.5),
    ] {
        let noise = common::normal_tensor(&mut rng, DType::F32, 1, len, 1.0).to_f32_vec();
        let values: Vec<f32> = noise.iter().map(|z| z * 2.0 + offset).collect();
        let t = HostTensor::from_f32_as(dtype, 1, len, &values).unwrap();
        let got = gpu.stats(&gpu.upload(&t).unwrap()).unwrap();
        assert_matches_with(
            &got,
            &reference(&t),
            len,
            per_thread,
            &format!("{dtype} {len}"),
        );
    }
    // Rows of 700 values: three partials per row.
    let t = common::normal_tensor(&mut rng, DType::F32, 40, 700, 1.0);
    let got = gpu.row_stats(&gpu.upload(&t).unwrap()).unwrap();
    for (r, (g, e)) in got.iter().zip(&reference_per_row(&t)).enumerate() {
        assert_matches_with(g, e, 700, per_thread, &format!("row {r}"));
    }
}

#[test]
fn three_million_values_take_the_multi_partial_path_at_the_default_size() {
    let Some(gpu) = common::gpu("stats three million") else {
        return;
    };
    let mut rng = common::rng(19);
    let len = 3_000_000; // 367 partial records of 8192 values: beyond one per combining thread
    let t = common::normal_tensor(&mut rng, DType::F32, 1, len, 0.5);
    let got = gpu.stats(&gpu.upload(&t).unwrap()).unwrap();
    assert_matches(&got, &reference(&t), len, "3 000 000 values");
}

#[test]
fn chunks_of_different_scale_and_centre_combine_within_the_bound() {
    // One pass gives each chunk of 8192 values its own scale 2^E_c and shift K_c; the combine
    // moves them to the segment's. Chunks of magnitude 1e-3, 1, 1e3 and 1e-30 with offsets of
    // their own exercise every exponent difference, a shift of each sign, and a chunk whose
    // moments fall below f32's normal range in the segment's scale (the bound's floor).
    let Some(gpu) = common::gpu("stats chunks of different scale") else {
        return;
    };
    let chunk = gradstab::ops::reduce::PER_THREAD * gradstab::ops::reduce::THREADS;
    let mut rng = common::rng(23);
    let pieces: [(f32, f32); 5] = [
        (1e-3, 5e-3),
        (1.0, -4.0),
        (1e3, 2e3),
        (1e-30, 0.0),
        (1.0, 0.5),
    ];
    for dtype in [DType::F32, DType::F16] {
        let mut values = Vec::new();
        for (scale, offset) in pieces {
            let (scale, offset) = match dtype {
                // Within f16's range: 1e3 + 2e3 stays below 65504.
                DType::F16 => (scale.max(1e-3), offset),
                _ => (scale, offset),
            };
            let noise = common::normal_tensor(&mut rng, DType::F32, 1, chunk, 1.0).to_f32_vec();
            values.extend(noise.iter().map(|z| offset + scale * z));
        }
        let len = values.len();
        let t = HostTensor::from_f32_as(dtype, 1, len, &values).unwrap();
        let got = gpu.stats(&gpu.upload(&t).unwrap()).unwrap();
        assert_matches(&got, &reference(&t), len, &format!("{dtype} chunks"));
        // The same chunks as five rows of a matrix: each row is one chunk, moved nowhere.
        let rows = HostTensor::from_f32_as(dtype, pieces.len(), chunk, &values).unwrap();
        let got = gpu.row_stats(&gpu.upload(&rows).unwrap()).unwrap();
        for (r, (g, e)) in got.iter().zip(&reference_per_row(&rows)).enumerate() {
            assert_matches(g, e, chunk, &format!("{dtype} row {r}"));
        }
    }
}

#[test]
fn records_started_together_come_back_in_order_in_one_read() {
    // 1300 records fill the queue's blocks of 512 more than twice over, with row records in
    // between; every one must come back in the order it was started, and in one read.
    let Some(gpu) = common::gpu("stats collected together") else {
        return;
    };
    let mut rng = common::rng(29);
    let tensors: Vec<HostTensor> = (0..1300)
        .map(|i| {
            let cols = 1 + i % 37;
            let mut t = common::normal_tensor(&mut rng, DType::F32, 1, cols, 1.0 + i as f32);
            if i % 5 == 0 {
                t = HostTensor::from_f32_as(DType::F16, 1, cols, &t.to_f32_vec()).unwrap();
            }
            t
        })
        .collect();
    let on_device: Vec<_> = tensors.iter().map(|t| gpu.upload(t).unwrap()).collect();
    let reads_before = gpu.traffic().host_reads;
    let pending: Vec<_> = on_device
        .iter()
        .map(|x| gpu.stats_later(x).unwrap())
        .collect();
    // Dropping the tensors before the records come back is allowed: their buffers are reused
    // only by commands that run after the statistics.
    drop(on_device);
    let got = gpu.collect_stats(pending).unwrap();
    assert_eq!(gpu.traffic().host_reads, reads_before + 1);
    assert_eq!(got.len(), tensors.len());
    for (i, (g, t)) in got.iter().zip(&tensors).enumerate() {
        assert_matches(g, &reference(t), t.len(), &format!("record {i}"));
    }
    // A second round reuses the blocks of the first.
    let created = gpu.traffic().buffers_created;
    let again: Vec<_> = tensors[..600]
        .iter()
        .map(|t| gpu.upload(t).unwrap())
        .collect();
    let pending: Vec<_> = again.iter().map(|x| gpu.stats_later(x).unwrap()).collect();
    let got = gpu.collect_stats(pending).unwrap();
    for (g, t) in got.iter().zip(&tensors) {
        assert_matches(g, &reference(t), t.len(), "second round");
    }
    // The 600 uploads reuse the first round's buffers; the statistics create nothing.
    assert_eq!(gpu.traffic().buffers_created, created);
}

#[test]
fn borrowed_values_of_every_length_reach_the_gpu_whole() {
    // A device write takes whole 4-byte words: f16, bf16 and FP8 views whose bytes end inside
    // a word are written from the caller's memory up to the last whole word, and the rest is
    // padded. A lost or misplaced tail would read the last values as zeros (or garbage), which
    // the class counts and the extrema show; every value is non-zero, and the last is the
    // largest in magnitude, so that a lost tail changes abs_max too.
    let Some(gpu) = common::gpu("stats of borrowed values") else {
        return;
    };
    for len in [1usize, 2, 3, 5, 6, 7, 9, 4_099] {
        let values: Vec<f32> = (0..len)
            .map(|i| {
                if i + 1 == len {
                    -64.0
                } else {
                    0.5 + (i % 7) as f32
                }
            })
            .collect();
        for dtype in [
            DType::F32,
            DType::F16,
            DType::Bf16,
            DType::E4m3,
            DType::E5m2,
        ] {
            let tensor = HostTensor::from_f32_as(dtype, 1, len, &values).unwrap();
            let exact = reference(&tensor);
            assert_eq!(exact.zero, 0);
            let what = format!("{dtype}, {len} values");
            let on_cpu = gradstab::Cpu.stats_of_view(tensor.data().view()).unwrap();
            assert_eq!(on_cpu, exact, "{what}: the CPU reads the view itself");
            let on_gpu = gpu.stats_of_view(tensor.data().view()).unwrap();
            assert_matches(&on_gpu, &exact, len, &what);
            assert_eq!(on_gpu.abs_max, 64.0, "{what}: the last value arrived");
        }
    }
}
