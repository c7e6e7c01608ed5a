//! CPU f32 matmul candidates side by side at 1024³ (or `GRADSTAB_BENCH_SIZES`) and on the
//! three products of an MLP layer: the backend's product (`cpu_f32`'s own kernels since they
//! replaced the `gemm` crate; benches/cpu_f32.rs compares the two), `faer`'s matmul and
//! `matrixmultiply`, all on every core of the machine. Run it between two runs of `benches/openblas_sgemm.py` to compare with OpenBLAS in
//! the same minutes:
//!
//! ```sh
//! python3 benches/openblas_sgemm.py
//! cargo bench --features compare-matmul --bench cpu_f32_candidates
//! python3 benches/openblas_sgemm.py
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use gradstab::ops::matmul::cpu::matmul_f32;
use gradstab::MatmulOp;

/// op(A)·op(B) through `faer`, transposes as views.
fn faer_matmul(a: &[f32], b: &[f32], op: MatmulOp, m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    let lhs = if op.transpose_a {
        faer::MatRef::from_row_major_slice(a, k, m).transpose()
    } else {
        faer::MatRef::from_row_major_slice(a, m, k)
    };
    let rhs = if op.transpose_b {
        faer::MatRef::from_row_major_slice(b, n, k).transpose()
    } else {
        faer::MatRef::from_row_major_slice(b, k, n)
    };
    let dst = faer::MatMut::from_row_major_slice_mut(&mut c, m, n);
    faer::linalg::matmul::matmul(
        dst,
        faer::Accum::Replace,
        lhs,
        rhs,
        1.0f32,
        faer::Par::rayon(0),
    );
    c
}

fn operands(n: usize) -> (Vec<f32>, Vec<f32>) {
    let value = |i: usize| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5;
    (
        (0..n * n).map(value).collect(),
        (0..n * n).map(|i| value(i + 17)).collect(),
    )
}

fn candidates(c: &mut Criterion) {
    let sizes: Vec<usize> = std::env::var("GRADSTAB_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1024]);
    let mut group = c.benchmark_group("cpu_f32_matmul");
    group.sample_size(20);
    for n in sizes {
        let (a, b) = operands(n);
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        group.bench_with_input(BenchmarkId::new("gemm (the backend)", n), &n, |bench, _| {
            bench.iter(|| matmul_f32(&a, &b, MatmulOp::default(), n, n, n))
        });
        group.bench_with_input(BenchmarkId::new("faer", n), &n, |bench, _| {
            bench.iter(|| faer_matmul(&a, &b, MatmulOp::default(), n, n, n))
        });
        group.bench_with_input(BenchmarkId::new("matrixmultiply", n), &n, |bench, _| {
            let mut out = vec![0f32; n * n];
            bench.iter(|| {
                // SAFETY: a, b and out are n × n row-major, as the strides say.
                unsafe {
                    matrixmultiply::sgemm(
                        n,
                        n,
                        n,
                        1.0,
                        a.as_ptr(),
                        n as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
    }
    group.finish();
}

/// The three products of an MLP layer at width 1024, batch 256: forward H·Wᵀ (NT), backward
/// dZ·W (NN), and the weight gradient dZᵀ·H (TN).
fn mlp_products(c: &mut Criterion) {
    let (batch, width) = (256, 1024);
    let mut group = c.benchmark_group("cpu_f32_mlp_products");
    group.sample_size(20);
    for (name, op, (m, k, n)) in [
        (
            "NT forward",
            MatmulOp::new(false, true),
            (batch, width, width),
        ),
        ("NN backward", MatmulOp::default(), (batch, width, width)),
        (
            "TN weight gradient",
            MatmulOp::new(true, false),
            (width, batch, width),
        ),
    ] {
        let value = |i: usize| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5;
        let a: Vec<f32> = (0..m * k).map(value).collect();
        let b: Vec<f32> = (0..k * n).map(|i| value(i + 17)).collect();
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        group.bench_function(BenchmarkId::new("gemm (the backend)", name), |bench| {
            bench.iter(|| matmul_f32(&a, &b, op, m, k, n))
        });
        group.bench_function(BenchmarkId::new("faer", name), |bench| {
            bench.iter(|| faer_matmul(&a, &b, op, m, k, n))
        });
    }
    group.finish();
}

criterion_group!(benches, candidates, mlp_products);
criterion_main!(benches);
