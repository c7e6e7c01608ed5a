//! GPU matmul against the CPU reference, in every precision and transpose combination.

mod common;

use gradstab::ops::matmul::cpu::f16_in_order_as;
use gradstab::ops::matmul::{error_bound, f16_in_order_error_bounds, sum_abs_products, F16Fma};
use gradstab::verify::compare_matmul;
use gradstab::{Backend, Cpu, DType, Gpu, HostData, HostTensor, MatmulOp, Precision};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// One GPU product against the CPU's, every element within `ops::matmul::error_bound`.
/// Returns (worst error / bound, fraction of bit-identical elements).
fn compare(
    gpu: &Gpu,
    flushes: bool,
    precision: Precision,
    op: MatmulOp,
    shape: (usize, usize, usize),
    seed: u64,
) -> (f64, f64) {
    let variant = gpu.matmul_variant(precision).unwrap();
    let cmp = compare_matmul(gpu, flushes, precision, op, variant, shape, seed).unwrap();
    assert!(cmp.passed(), "{}", cmp.first_failure.unwrap());
    assert_eq!(cmp.elements, shape.0 * shape.2);
    (cmp.worst_ratio, cmp.bit_identical_fraction())
}

#[test]
fn gpu_matches_cpu_on_random_shapes_in_every_precision_and_transpose() {
    let Some((gpu, probe)) = common::gpu_with_probe("matmul random shapes") else {
        return;
    };
    let flushes = probe.flushes_subnormals();
    // Pure f16 is held to the running error bound of its in-order sums, any k.
    let shapes = (1usize..=140, 1usize..=500, 1usize..=140);
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    for case in 0..6u64 {
        let (m, k, n) = shapes.new_tree(&mut runner).unwrap().current();
        for precision in common::precisions(&gpu, "matmul random shapes") {
            for op in MatmulOp::ALL {
                let (worst, identical) = compare(&gpu, flushes, precision, op, (m, k, n), case);
                println!(
                    "{precision:>8} {} m={m:>3} k={k:>3} n={n:>3}: worst error/bound {worst:.3}, bit-identical {:.1}%",
                    op.name(),
                    identical * 100.0
                );
            }
        }
    }
}

#[test]
fn ragged_and_tiny_shapes_match() {
    let Some((gpu, probe)) = common::gpu_with_probe("matmul ragged shapes") else {
        return;
    };
    // 1, primes, one less and one more than the 64-wide tile, k not a multiple of 16.
    for (m, k, n) in [
        (1, 1, 1),
        (1, 7, 1),
        (13, 1, 17),
        (63, 17, 65),
        (65, 33, 63),
        (2, 1031, 3),
    ] {
        for precision in common::precisions(&gpu, "matmul ragged shapes") {
            for op in MatmulOp::ALL {
                compare(
                    &gpu,
                    probe.flushes_subnormals(),
                    precision,
                    op,
                    (m, k, n),
                    11,
                );
            }
        }
    }
}

#[test]
fn pure_f16_is_bit_identical_to_the_in_order_emulation_of_the_devices_fma() {
    let Some((gpu, probe)) = common::gpu_with_probe("matmul f16 bit-identical") else {
        return;
    };
    let Some(f16) = probe.f16.as_ref() else {
        eprintln!(
            "SKIPPED pure f16 bit identity: {} has no SHADER_F16",
            probe.adapter
        );
        return;
    };
    let fused = f16.fma_builtin_fused;
    let (m, k, n) = (96, 200, 80);
    let (_, identical_to_fused) = compare(
        &gpu,
        probe.flushes_subnormals(),
        Precision::F16,
        MatmulOp::default(),
        (m, k, n),
        3,
    );
    println!(
        "pure f16: {:.2}% of results bit-identical to the fused CPU emulation (device fma fused: {fused})",
        identical_to_fused * 100.0
    );
    // Against the emulation of this device's own fma, as its probe describes it (fused or not,
    // flushing subnormal inputs or results or not), every sum in order must match exactly: any
    // other order of summation, or a dropped or doubled term, shows up in the last bits.
    let device_fma = F16Fma {
        fused,
        flush_inputs: !f16.subnormal_inputs_kept,
        flush_results: !f16.subnormal_results_kept,
    };
    for op in MatmulOp::ALL {
        let mut rng = common::rng(21);
        let (a_shape, b_shape) = op.operand_shapes(m, k, n);
        let a = common::normal_tensor(&mut rng, DType::F16, a_shape.rows, a_shape.cols, 1.0);
        let b = common::normal_tensor(&mut rng, DType::F16, b_shape.rows, b_shape.cols, 1.0);
        let (HostData::F16(av), HostData::F16(bv)) = (a.data(), b.data()) else {
            unreachable!()
        };
        let emulated = f16_in_order_as(av, bv, op, (m, k, n), device_fma);
        let got = common::matmul_on(&gpu, &a, &b, op, Precision::F16);
        let HostData::F16(got) = got.data() else {
            unreachable!()
        };
        let differing = got
            .iter()
            .zip(&emulated)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{}: {differing} of {} results differ",
            op.name(),
            m * n
        );
    }
}

#[test]
fn f16_overflows_inside_a_dot_product_that_f16acc32_gets_exactly() {
    let Some(gpu) = common::gpu("matmul f16 overflow") else {
        return;
    };
    // 200·200 + 200·200 = 80000 passes 65504 part way; the final 40000 fits in f16 exactly.
    let a = HostTensor::from_f32_as(DType::F16, 1, 3, &[200.0, 200.0, 200.0]).unwrap();
    let b = HostTensor::from_f32_as(DType::F16, 3, 1, &[200.0, 200.0, -200.0]).unwrap();
    let run = |backend_is_gpu: bool, precision| -> f32 {
        let out = if backend_is_gpu {
            common::matmul_on(&gpu, &a, &b, MatmulOp::default(), precision)
        } else {
            common::matmul_on(&Cpu, &a, &b, MatmulOp::default(), precision)
        };
        out.to_f32_vec()[0]
    };
    let report = gradstab::gpu::probe::probe(&gpu).unwrap();
    let Some(f16) = report.f16 else {
        eprintln!(
            "SKIPPED f16 overflow on the GPU: {} has no SHADER_F16",
            report.adapter
        );
        return;
    };
    assert_eq!(
        run(false, Precision::F16),
        f32::INFINITY,
        "CPU emulation overflows"
    );
    let gpu_f16 = run(true, Precision::F16);
    if f16.overflow_result == "inf" {
        assert_eq!(gpu_f16, f32::INFINITY, "GPU pure f16 overflows to inf");
    } else {
        // WGSL allows a device to saturate instead; the probe says this one does.
        println!(
            "device saturates f16 overflow ({}); pure f16 gave {gpu_f16}",
            f16.overflow_result
        );
        assert!(gpu_f16 != 40000.0);
    }
    assert_eq!(run(false, Precision::F16Accumulate32), 40000.0);
    assert_eq!(run(true, Precision::F16Accumulate32), 40000.0);
}

#[test]
fn every_variant_gives_the_same_bits_within_the_bound() {
    let Some((gpu, probe)) = common::gpu_with_probe("matmul variants") else {
        return;
    };
    use gradstab::ops::matmul::gpu::matmul_with;
    use gradstab::ops::matmul::MatmulVariant;
    // Ragged shapes around both tile sizes (32 and 64), k not a multiple of 16.
    for (m, k, n) in [(1, 1, 1), (31, 17, 33), (65, 40, 63), (3, 300, 97)] {
        for precision in common::precisions(&gpu, "matmul variants") {
            for op in MatmulOp::ALL {
                let mut rng = common::rng(31);
                let (a_shape, b_shape) = op.operand_shapes(m, k, n);
                let a = common::normal_tensor(
                    &mut rng,
                    precision.storage(),
                    a_shape.rows,
                    a_shape.cols,
                    1.0,
                );
                let b = common::normal_tensor(
                    &mut rng,
                    precision.storage(),
                    b_shape.rows,
                    b_shape.cols,
                    1.0,
                );
                let (ga, gb) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
                let results: Vec<HostTensor> = MatmulVariant::ALL
                    .iter()
                    .map(|&v| {
                        gpu.download(&matmul_with(&gpu, &ga, &gb, op, precision, v).unwrap())
                            .unwrap()
                    })
                    .collect();
                for (v, r) in MatmulVariant::ALL.iter().zip(&results) {
                    // Same order of summation, same fma: the same bits as every other variant.
                    assert_eq!(r, &results[0], "{v} {precision} {} {m}×{k}×{n}", op.name());
                    let cmp = compare_matmul(
                        &gpu,
                        probe.flushes_subnormals(),
                        precision,
                        op,
                        *v,
                        (m, k, n),
                        31,
                    )
                    .unwrap();
                    assert!(cmp.passed(), "{}", cmp.first_failure.unwrap());
                }
            }
        }
    }
}

#[test]
fn the_running_f16_bound_holds_and_bites_where_gamma_k_guarantees_nothing() {
    // N(0, 1) operands: |c| grows like √k while Σ|a||b| grows like k, so γ_k·Σ|a||b| exceeds
    // |c| from k ≈ 200 on and an all-zero result would pass it; the running bound follows the
    // partial sums instead.
    let (m, n) = (24, 24);
    for k in [211, 365, 1031] {
        let mut rng = common::rng(k as u64);
        let a = common::normal_tensor(&mut rng, DType::F16, m, k, 1.0);
        let b = common::normal_tensor(&mut rng, DType::F16, k, n, 1.0);
        let (a64, b64) = (a.to_f64_vec(), b.to_f64_vec());
        let op = MatmulOp::default();
        let exact: Vec<f64> = (0..m * n)
            .map(|idx| {
                (0..k)
                    .map(|p| a64[(idx / n) * k + p] * b64[p * n + idx % n])
                    .sum()
            })
            .collect();
        let bounds = f16_in_order_error_bounds(&a64, &b64, op, (m, k, n));
        let sums = sum_abs_products(&a64, &b64, op, m, k, n);
        let (HostData::F16(av), HostData::F16(bv)) = (a.data(), b.data()) else {
            unreachable!()
        };
        // Sound for every form a device may compute: fused or not, flushing or not.
        for fused in [true, false] {
            for flush in [false, true] {
                let fma = F16Fma {
                    fused,
                    flush_inputs: flush,
                    flush_results: flush,
                };
                let got = f16_in_order_as(av, bv, op, (m, k, n), fma);
                for i in 0..m * n {
                    let err = (got[i].to_f64() - exact[i]).abs();
                    assert!(
                        err <= bounds[i],
                        "k={k} {fma:?} element {i}: error {err:e} > bound {:e}",
                        bounds[i]
                    );
                }
            }
        }
        // It bites: an all-zero result is caught for three elements in four or more (80% at
        // k = 1031, 98% at k = 211), where the a-priori bound
        // (for one result against the exact value, half of error_bound) lets nearly all pass.
        let zero_caught = (0..m * n).filter(|&i| exact[i].abs() > bounds[i]).count();
        let zero_passes_gamma = (0..m * n)
            .filter(|&i| {
                exact[i].abs() <= error_bound(Precision::F16, k, sums[i], 0.0, 0.0, false) / 2.0
            })
            .count();
        println!(
            "k={k}: running bound catches an all-zero result in {zero_caught} of {} elements; γ_k lets it pass in {zero_passes_gamma}",
            m * n
        );
        assert!(
            zero_caught * 4 >= m * n * 3,
            "k={k}: the running bound catches a zero result in only {zero_caught} of {}",
            m * n
        );
    }
}

#[test]
fn the_running_f16_bound_is_nearly_reached_where_every_step_rounds_the_same_way() {
    // 2048 + 1 + 1 + … in f16: 2048 + 1 is a tie that rounds to the even 2048, every time, so
    // all 300 ones are lost. The running bound (u·Σ|s_p| ≈ 2^-11·301·2200 ≈ 323, compounded by
    // (1 − u)^-k ≈ 1.16) must hold that error without being even 1.5 times too wide.
    let k = 301;
    let mut first = vec![1.0; k];
    first[0] = 2048.0;
    let ones = HostTensor::from_f32_as(DType::F16, 1, k, &first).unwrap();
    let column = HostTensor::from_f32_as(DType::F16, k, 1, &vec![1.0; k]).unwrap();
    let (HostData::F16(av), HostData::F16(bv)) = (ones.data(), column.data()) else {
        unreachable!()
    };
    let op = MatmulOp::default();
    let bound =
        f16_in_order_error_bounds(&ones.to_f64_vec(), &column.to_f64_vec(), op, (1, k, 1))[0];
    for fused in [true, false] {
        let fma = F16Fma {
            fused,
            ..F16Fma::FUSED
        };
        let got = f16_in_order_as(av, bv, op, (1, k, 1), fma)[0].to_f64();
        assert_eq!(got, 2048.0);
        let err = (2048 + k - 1) as f64 - got;
        assert!(err <= bound, "error {err} > bound {bound}");
        assert!(
            1.5 * err >= bound,
            "bound {bound} is over 1.5 times the error {err}"
        );
    }
    let cpu = common::matmul_on(&Cpu, &ones, &column, op, Precision::F16);
    assert_eq!(cpu.to_f64_vec()[0], 2048.0);
}

#[test]
fn the_emulation_flushes_as_a_flushing_device_would() {
    use half::f16;
    let sub = f16::from_f64(2f64.powi(-20)); // a subnormal f16
    let one = f16::from_f64(1.0);
    let a = [sub, one];
    let b = [one, f16::from_f64(0.0)];
    let dims = (1, 2, 1);
    let op = MatmulOp::default();
    let keep = f16_in_order_as(&a, &b, op, dims, F16Fma::FUSED);
    assert_eq!(keep[0].to_f64(), 2f64.powi(-20));
    let flush_inputs = F16Fma {
        flush_inputs: true,
        ..F16Fma::FUSED
    };
    assert_eq!(
        f16_in_order_as(&a, &b, op, dims, flush_inputs)[0].to_f64(),
        0.0
    );
    // 2^-9 · 2^-9 = 2^-18 is a subnormal result.
    let small = f16::from_f64(2f64.powi(-9));
    let flush_results = F16Fma {
        flush_results: true,
        ..F16Fma::FUSED
    };
    let c = f16_in_order_as(&[small], &[small], op, (1, 1, 1), flush_results);
    assert_eq!(c[0].to_f64(), 0.0);
    let c = f16_in_order_as(&[small], &[small], op, (1, 1, 1), F16Fma::FUSED);
    assert_eq!(c[0].to_f64(), 2f64.powi(-18));
}

#[test]
fn a_non_finite_value_stays_in_its_own_row_and_column() {
    // C = A·B with A[1][0] = inf: only row 1 of C may be non-finite. A kernel that reads one
    // element past k would meet A[1][0] as A[0][k] and multiply it by a zero read past B's end:
    // inf·0 = NaN in row 0 too.
    let Some(gpu) = common::gpu("matmul non-finite isolation") else {
        return;
    };
    use gradstab::ops::matmul::gpu::matmul_with;
    use gradstab::ops::matmul::MatmulVariant;
    let (m, k, n) = (3, 4, 2);
    for precision in common::precisions(&gpu, "matmul non-finite isolation") {
        for op in MatmulOp::ALL {
            let (a_shape, b_shape) = op.operand_shapes(m, k, n);
            // op(A)[i][p] = i + p + 1, except op(A)[1][0] = inf; op(B)[p][j] = 1.
            let mut a = vec![0.0f32; m * k];
            for i in 0..m {
                for p in 0..k {
                    let v = if (i, p) == (1, 0) {
                        f32::INFINITY
                    } else {
                        (i + p + 1) as f32
                    };
                    let idx = if op.transpose_a { p * m + i } else { i * k + p };
                    a[idx] = v;
                }
            }
            let a = HostTensor::from_f32_as(precision.storage(), a_shape.rows, a_shape.cols, &a)
                .unwrap();
            let b = HostTensor::from_f32_as(
                precision.storage(),
                b_shape.rows,
                b_shape.cols,
                &vec![1.0; k * n],
            )
            .unwrap();
            let (ga, gb) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
            for variant in MatmulVariant::ALL {
                let c = gpu
                    .download(&matmul_with(&gpu, &ga, &gb, op, precision, variant).unwrap())
                    .unwrap()
                    .to_f64_vec();
                for i in [0, 2] {
                    let exact = (0..k).map(|p| (i + p + 1) as f64).sum::<f64>();
                    for j in 0..n {
                        assert_eq!(
                            c[i * n + j],
                            exact,
                            "{variant} {precision} {}: C[{i}][{j}]",
                            op.name()
                        );
                    }
                }
                assert!(c[n..2 * n].iter().all(|v| !v.is_finite()), "row 1: {c:?}");
            }
        }
    }
}

#[test]
fn a_result_one_part_in_ten_thousand_off_breaks_the_f32_and_mixed_bounds() {
    // A dot product of 100 ones is exactly 100: γ_100·Σ|a||b| (with u = 2^-24) allows about
    // 1.2e-3 between two f32 results, and the f16 store of f16acc32 adds u16·200 ≈ 0.1. A
    // result 1e-2 (f32) or 1 (f16acc32) away must fail; γ_k itself is Higham's n·u/(1 − n·u).
    let u = gradstab::DType::F32.unit_roundoff();
    assert_eq!(gradstab::ops::gamma(0, u), 0.0);
    assert_eq!(gradstab::ops::gamma(100, u), 100.0 * u / (1.0 - 100.0 * u));
    assert!(gradstab::ops::gamma(1 << 24, u).is_infinite());
    for (precision, off) in [(Precision::F32, 1e-2), (Precision::F16Accumulate32, 1.0)] {
        for flushes in [false, true] {
            let bound = error_bound(precision, 100, 100.0, 100.0 + off, 100.0, flushes);
            assert!(
                off > bound,
                "{precision}: bound {bound:e} lets {off:e} pass"
            );
        }
    }
}

#[test]
fn two_summation_orders_of_f16acc32_stay_within_the_bound_the_store_term_gives() {
    // Two conforming backends may sum k in different orders in f32 and then round to f16 once:
    // the f32 results differ by a few f32 units, and where they straddle an f16 midpoint the
    // stored results differ by a whole f16 unit. The bound must allow that (its store term),
    // independently of whether this machine's device happens to sum like the CPU.
    use gradstab::ops::matmul::cpu::matmul_f32;
    use gradstab::precision::f16_from_f64;
    use rand::{Rng, SeedableRng};
    let (m, k, n) = (128, 96, 128);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let to_f16 = |v: f64| f16_from_f64(v).to_f64();
    let a: Vec<f64> = (0..m * k)
        .map(|_| to_f16(rng.random_range(-2.0..2.0)))
        .collect();
    let b: Vec<f64> = (0..k * n)
        .map(|_| to_f16(rng.random_range(-2.0..2.0)))
        .collect();
    let op = MatmulOp::default();
    let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
    // Order 1: the CPU backend's blocked f32 product. Order 2: each dot product from p = k − 1
    // down to 0.
    let blocked = matmul_f32(&a32, &b32, op, m, k, n);
    let sums = sum_abs_products(&a, &b, op, m, k, n);
    let mut straddled = 0;
    for i in 0..m {
        for j in 0..n {
            let reversed = (0..k)
                .rev()
                .fold(0f32, |acc, p| acc + a32[i * k + p] * b32[p * n + j]);
            let c1 = to_f16(blocked[i * n + j] as f64);
            let c2 = to_f16(reversed as f64);
            let bound = error_bound(
                Precision::F16Accumulate32,
                k,
                sums[i * n + j],
                c1,
                c2,
                false,
            );
            assert!(
                (c1 - c2).abs() <= bound,
                "({i}, {j}): {c1} and {c2}, bound {bound:e}"
            );
            if c1 != c2 {
                straddled += 1;
            }
        }
    }
    assert!(
        straddled > 0,
        "no f16 midpoint was straddled: the store term went untested"
    );
}

#[test]
fn each_product_is_named_as_blas_names_it() {
    let names: Vec<&str> = MatmulOp::ALL.iter().map(|op| op.name()).collect();
    assert_eq!(names, ["NN", "NT", "TN", "TT"]);
}
