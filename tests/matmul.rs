//! GPU matmul against the CPU reference, in every precision and transpose combination.

mod common;

use gradstab::ops::matmul::cpu::f16_in_order;
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
    // k stays below 2^11 / 4 so that the f16 bound γ_k is meaningful (k·u16 ≤ 1/4).
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
        for precision in Precision::ALL {
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
        for precision in Precision::ALL {
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
    let fused = probe.f16.as_ref().expect("f16 probed").fma_builtin_fused;
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
    if probe.flushes_subnormals() {
        return; // flushing changes some sums; the bound above still holds
    }
    // Against the emulation of this device's own fma, every sum in order must match exactly:
    // any other order of summation, or a dropped or doubled term, shows up in the last bits.
    for op in MatmulOp::ALL {
        let mut rng = common::rng(21);
        let (a_shape, b_shape) = op.operand_shapes(m, k, n);
        let a = common::normal_tensor(&mut rng, DType::F16, a_shape.rows, a_shape.cols, 1.0);
        let b = common::normal_tensor(&mut rng, DType::F16, b_shape.rows, b_shape.cols, 1.0);
        let (HostData::F16(av), HostData::F16(bv)) = (a.data(), b.data()) else {
            unreachable!()
        };
        let emulated = f16_in_order(av, bv, op, (m, k, n), fused);
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
    let f16 = report.f16.expect("device has f16");
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
        for precision in Precision::ALL {
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
