//! Elementwise kernels (hadamard, scale, axpy) on the GPU against the CPU reference.

mod common;

use gradstab::ops::result_distance;
use gradstab::{Backend, Cpu, ElementwiseOp, Gpu, HostTensor, Precision};

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
    }
    .unwrap();
    backend.download(&out).unwrap().to_f64_vec()
}

/// Compares GPU and CPU on `len` values whose magnitudes span 2^-30 … 2^30, so that f16 sees
/// overflow, subnormals and zeros.
fn compare(gpu: &Gpu, flushes: bool, len: usize, seed: u64) {
    let mut rng = common::rng(seed);
    for precision in Precision::ALL {
        let dtype = precision.storage();
        let spread = |t: HostTensor, shift: i32| {
            let v: Vec<f32> = t
                .to_f32_vec()
                .iter()
                .enumerate()
                .map(|(i, x)| x * 2f32.powi((i as i32 * 7 + shift) % 61 - 30))
                .collect();
            HostTensor::from_f32_as(dtype, 1, len, &v).unwrap()
        };
        let x = spread(common::normal_tensor(&mut rng, dtype, 1, len, 1.0), 0);
        let y = spread(common::normal_tensor(&mut rng, dtype, 1, len, 1.0), 13);
        let s = -0.3f32;
        for op in ElementwiseOp::ALL {
            let got = run(gpu, op, &x, &y, s, precision);
            let expected = run(&Cpu, op, &x, &y, s, precision);
            let (xs, ys) = (x.to_f64_vec(), y.to_f64_vec());
            let s_arith = precision.arithmetic().round(s as f64);
            for i in 0..len {
                let product = match op {
                    ElementwiseOp::Hadamard => (xs[i] * ys[i]).abs(),
                    _ => (s_arith * xs[i]).abs(),
                };
                let bound = op.error_bound(precision, product, got[i], expected[i], flushes);
                let err = result_distance(got[i], expected[i]);
                assert!(
                    err <= bound,
                    "{op} {precision} at {i}: x={} y={} gpu {} cpu {} error {err:e} > bound {bound:e}",
                    xs[i],
                    ys[i],
                    got[i],
                    expected[i]
                );
            }
        }
    }
}

#[test]
fn gpu_matches_cpu_across_the_whole_range() {
    let Some((gpu, probe)) = common::gpu_with_probe("elementwise") else {
        return;
    };
    for (len, seed) in [(1, 1), (2, 2), (3, 3), (257, 4), (10_007, 5)] {
        compare(&gpu, probe.flushes_subnormals(), len, seed);
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
        assert_eq!(run(&gpu, ElementwiseOp::Hadamard, &x, &y, 0.0, Precision::F32), expected);
        let got = run(&gpu, ElementwiseOp::Axpy, &x, &y, 2.0, Precision::F32);
        assert_eq!(got, [13.0, 1.0, 0.75, 2112.0]);
    }
}
