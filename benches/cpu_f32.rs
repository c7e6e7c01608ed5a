//! The CPU backend's f32 product (src/ops/matmul/cpu_f32.rs) at the four shapes the issue
//! measures against OpenBLAS and torch.matmul: the three products of an MLP layer at width
//! 1024, batch 256 (forward H·Wᵀ is NT, backward dZ·W is NN, the weight gradient dZᵀ·H is TN)
//! and 1024³ NN, with each kernel this CPU has, and the `gemm` crate it replaced. Run it
//! between two runs of the Python reference, so that both see the same minutes:
//!
//! ```sh
//! python3 benches/openblas_sgemm.py --shapes
//! cargo bench --bench cpu_f32
//! python3 benches/openblas_sgemm.py --shapes
//! ```
//!
//! `GRADSTAB_BENCH_GEMM=0` leaves the `gemm` crate out.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use gradstab::ops::matmul::cpu;
use gradstab::ops::matmul::cpu_f32::{self, Isa};
use gradstab::MatmulOp;

/// (name, op, (m, k, n)): the same list as benches/openblas_sgemm.py.
const SHAPES: [(&str, MatmulOp, (usize, usize, usize)); 4] = [
    (
        "NN 256x1024x1024",
        MatmulOp::new(false, false),
        (256, 1024, 1024),
    ),
    (
        "NT 256x1024x1024",
        MatmulOp::new(false, true),
        (256, 1024, 1024),
    ),
    (
        "TN 1024x256x1024",
        MatmulOp::new(true, false),
        (1024, 256, 1024),
    ),
    (
        "NN 1024x1024x1024",
        MatmulOp::new(false, false),
        (1024, 1024, 1024),
    ),
];

fn products(c: &mut Criterion) {
    let with_gemm = std::env::var("GRADSTAB_BENCH_GEMM").map_or(true, |v| v != "0");
    let mut group = c.benchmark_group("cpu_f32");
    group.sample_size(20);
    for (name, op, (m, k, n)) in SHAPES {
        let value = |i: usize| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5;
        let a: Vec<f32> = (0..m * k).map(value).collect();
        let b: Vec<f32> = (0..k * n).map(|i| value(i + 17)).collect();
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        for (isa, label) in [(Isa::Avx512, "avx512"), (Isa::Avx2, "avx2")] {
            if isa.available() {
                group.bench_function(BenchmarkId::new(label, name), |bench| {
                    bench.iter(|| cpu_f32::product(&a, &b, op, (m, k, n), isa).unwrap())
                });
            }
        }
        if with_gemm {
            group.bench_function(BenchmarkId::new("gemm crate", name), |bench| {
                bench.iter(|| cpu::matmul_f32_gemm(&a, &b, op, m, k, n))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
