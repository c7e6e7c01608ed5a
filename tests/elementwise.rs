//! Elementwise kernels (hadamard, scale, axpy) on the GPU against the CPU reference.

mod common;

use gradstab::verify::compare_elementwise;
use gradstab::{Backend, Cpu, ElementwiseOp, HostTensor, Precision};

fn run<B: Backend>(
    backend: &B,
    op: ElementwiseOp,
    x: &HostTensor,
    y: &HostTensor,
    s: f32,
    precision: Precision,
) -> Vec<f64> {
    let (xt, yt) = (backend.upload(x).unwrap(), backend.upload(y).unwrap());
    let out = match op {
        ElementwiseOp::Hadamard => backend.hadamard(&xt, &yt, precision),
        ElementwiseOp::Scale => backend.scale(&xt, s, precision),
        ElementwiseOp::Axpy => backend.axpy(s, &xt, &yt, precision),
        ElementwiseOp::Clamp => backend.clamp_abs(&xt, s, precision),
    }
    .unwrap();
    backend.download(&out).unwrap().to_f64_vec()
}

#[test]
fn gpu_matches_cpu_across_the_whole_range() {
    let Some((gpu, probe)) = common::gpu_with_probe("elementwise") else {
        return;
    };
    // Magnitudes from 2^-30 to 2^30, so that f16 sees overflow, subnormals and zeros.
    for (len, seed) in [(1, 1), (2, 2), (3, 3), (257, 4), (10_007, 5)] {
        for op in ElementwiseOp::ALL {
            for precision in common::precisions(&gpu, "elementwise") {
                let cmp =
                    compare_elementwise(&gpu, probe.flushes_subnormals(), op, precision, len, seed)
                        .unwrap();
                assert!(cmp.passed(), "{}", cmp.first_failure.unwrap());
                assert_eq!(cmp.elements, len);
            }
        }
    }
}

#[test]
fn products_are_exact_where_they_fit() {
    // hadamard and scale are one correctly rounded operation: small integers come out exact.
    let x = HostTensor::from_f32(1, 4, vec![3.0, -5.0, 0.5, 1024.0]).unwrap();
    let y = HostTensor::from_f32(1, 4, vec![7.0, 11.0, -0.25, 64.0]).unwrap();
    let expected = [21.0, -55.0, -0.125, 65536.0];
    let got = run(&Cpu, ElementwiseOp::Hadamard, &x, &y, 0.0, Precision::F32);
    assert_eq!(got, expected);
    // In f16, 1024 · 64 = 65536 overflows to inf.
    let got = run(
        &Cpu,
        ElementwiseOp::Hadamard,
        &x.cast(gradstab::DType::F16),
        &y.cast(gradstab::DType::F16),
        0.0,
        Precision::F16,
    );
    assert_eq!(got[3], f64::INFINITY);
    if let Some(gpu) = common::gpu("elementwise exact products") {
        assert_eq!(
            run(&gpu, ElementwiseOp::Hadamard, &x, &y, 0.0, Precision::F32),
            expected
        );
        let got = run(&gpu, ElementwiseOp::Axpy, &x, &y, 2.0, Precision::F32);
        assert_eq!(got, [13.0, 1.0, 0.75, 2112.0]);
        let got = run(&gpu, ElementwiseOp::Clamp, &x, &y, 4.0, Precision::F32);
        assert_eq!(got, [3.0, -4.0, 0.5, 4.0]);
    }
}

#[test]
fn a_result_three_units_in_the_last_place_off_breaks_every_bound() {
    // A bound must be tight enough to catch a wrong result, not only loose enough to pass a
    // right one: with x = y = a = 1 (exact results 1 or 2), a result three ULPs of the storage
    // type away from the exact one exceeds each op's bound in every precision.
    for precision in Precision::ALL {
        let mantissa_bits = match precision.storage() {
            gradstab::DType::F32 => 23,
            gradstab::DType::F16 => 10,
        };
        for op in ElementwiseOp::ALL {
            let exact: f64 = if op == ElementwiseOp::Axpy { 2.0 } else { 1.0 };
            let ulp = 2f64.powi(exact.log2().floor() as i32 - mantissa_bits);
            let wrong = exact + 3.0 * ulp;
            for flushes in [false, true] {
                let bound = op.error_bound(precision, 1.0, wrong, exact, flushes);
                assert!(
                    (wrong - exact).abs() > bound,
                    "{op} {precision} (flushing {flushes}): bound {bound:e} lets 3 ULPs ({:e}) pass",
                    wrong - exact
                );
            }
        }
    }
}

#[test]
fn the_distance_every_comparison_uses_counts_a_disagreement_in_kind_as_infinite() {
    use gradstab::ops::result_distance;
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    assert_eq!(result_distance(1.0, 3.5), 2.5);
    assert_eq!(result_distance(-2.0, 2.0), 4.0);
    assert_eq!(result_distance(nan, nan), 0.0);
    assert_eq!(result_distance(inf, inf), 0.0);
    assert_eq!(result_distance(-inf, -inf), 0.0);
    for (a, b) in [
        (nan, 1.0),
        (1.0, nan),
        (inf, -inf),
        (inf, 1e300),
        (-1e300, -inf),
        (nan, inf),
    ] {
        assert_eq!(result_distance(a, b), inf, "{a} vs {b}");
    }
}
