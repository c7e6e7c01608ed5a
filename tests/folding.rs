//! Dispatch grids beyond the 65535-workgroup limit of one dimension fold into a second one.

mod common;

use gradstab::ops::matmul::error_bound;
use gradstab::ops::result_distance;
use gradstab::{Backend, Cpu, DType, HostTensor, MatmulOp, Precision};

#[test]
fn elementwise_grid_folds_beyond_65535_workgroups() {
    let Some(gpu) = common::gpu("elementwise folding") else {
        return;
    };
    // 65535 · 256 + 1000 elements need 65539 workgroups of 256.
    let len = 65535 * 256 + 1000;
    let x: Vec<f32> = (0..len).map(|i| (i % 1000) as f32).collect();
    let y: Vec<f32> = (0..len).map(|i| (i / 1000) as f32).collect();
    let xt = HostTensor::from_f32(1, len, x).unwrap();
    let yt = HostTensor::from_f32(1, len, y).unwrap();
    let out = gpu
        .download(
            &gpu.axpy(
                2.0,
                &gpu.upload(&xt).unwrap(),
                &gpu.upload(&yt).unwrap(),
                Precision::F32,
            )
            .unwrap(),
        )
        .unwrap()
        .to_f32_vec();
    // Small integers: exact in f32, so every element, the last ones included, must be exact.
    for i in (0..len).step_by(997).chain(len - 300..len) {
        assert_eq!(
            out[i],
            (i / 1000) as f32 + 2.0 * (i % 1000) as f32,
            "element {i}"
        );
    }
}

#[test]
fn matmul_grid_folds_beyond_65535_tiles() {
    let Some((gpu, probe)) = common::gpu_with_probe("matmul folding") else {
        return;
    };
    // 1 × 2 by 2 × (64·65536 + 5): 65537 column tiles.
    let (m, k, n) = (1, 2, 64 * 65536 + 5);
    let mut rng = common::rng(5);
    let a = common::normal_tensor(&mut rng, DType::F32, m, k, 1.0);
    let b = common::normal_tensor(&mut rng, DType::F32, k, n, 1.0);
    let op = MatmulOp::default();
    let got = common::matmul_on(&gpu, &a, &b, op, Precision::F32).to_f64_vec();
    let expected = Cpu.matmul(&a, &b, op, Precision::F32).unwrap().to_f64_vec();
    let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
    for j in 0..n {
        let sum = (av[0] * bv[j]).abs() + (av[1] * bv[n + j]).abs();
        let bound = error_bound(
            Precision::F32,
            k,
            sum,
            got[j],
            expected[j],
            probe.flushes_subnormals(),
        );
        assert!(result_distance(got[j], expected[j]) <= bound, "column {j}");
    }
}
