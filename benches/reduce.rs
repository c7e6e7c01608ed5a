//! Statistics throughput (elements/s): the whole record of 10^7 values (moments, extrema,
//! class counts, histogram, cast report) on the CPU backend and on the best GPU adapter.
//!
//! `cargo bench --bench reduce`; `GRADSTAB_BENCH_LEN=1000000` changes the length.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;

use gradstab::verify::normal_tensor;
use gradstab::{Backend, Cpu, DType, Gpu, GpuOptions};

fn len() -> usize {
    std::env::var("GRADSTAB_BENCH_LEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000)
}

fn data(dtype: DType) -> gradstab::HostTensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    normal_tensor(&mut rng, dtype, 1, len(), 1.0).unwrap()
}

fn reduce(c: &mut Criterion) {
    let n = len();
    let mut group = c.benchmark_group("stats");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for dtype in [DType::F32, DType::F16] {
        let host = data(dtype);
        group.bench_with_input(BenchmarkId::new(format!("cpu/{dtype}"), n), &n, |b, _| {
            b.iter(|| Cpu.stats(&host).unwrap())
        });
        match Gpu::new(&GpuOptions::from_env()) {
            Ok(gpu) => {
                let x = gpu.upload(&host).unwrap();
                let id = BenchmarkId::new(format!("gpu {}/{dtype}", gpu.adapter_name()), n);
                // stats() reads back the record, so each iteration includes the full wait.
                group.bench_with_input(id, &n, |b, _| b.iter(|| gpu.stats(&x).unwrap()));
            }
            Err(e) => eprintln!("stats on the GPU skipped: {e}"),
        }
    }
    group.finish();
}

criterion_group!(benches, reduce);
criterion_main!(benches);
