//! One full experiment: depth × (forward, backward) with the statistics record of every layer's
//! pre-activation, activation, gradient and weight gradient; ReLU with He initialisation. The
//! weights and the input are drawn and uploaded before the timer starts, as in the PyTorch
//! measurement this is compared with.
//!
//! `cargo bench --bench network` runs depth 100, width 1024, batch 256 on the CPU backend in
//! f32, f16acc32, bf16 and fp8; `GRADSTAB_BENCH_NETWORK=depth,width,batch` changes the size,
//! `GRADSTAB_BENCH_PRECISIONS=f16,bf16,fp8` the precisions, and `GRADSTAB_BENCH_GPU=1` adds
//! the GPU backend (slow on a software rasteriser), where f16 runs too.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use gradstab::network::{prepare, run_prepared, NetworkConfig};
use gradstab::{Backend, Cpu, Gpu, GpuOptions, Precision};

fn size() -> (usize, usize, usize) {
    std::env::var("GRADSTAB_BENCH_NETWORK")
        .ok()
        .and_then(|s| {
            let v: Vec<usize> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .unwrap_or((100, 1024, 256))
}

/// The precisions to run: `GRADSTAB_BENCH_PRECISIONS`, or `default`.
fn precisions(default: &[Precision]) -> Vec<Precision> {
    match std::env::var("GRADSTAB_BENCH_PRECISIONS") {
        Ok(list) => gradstab::precision::parse_precision_list(&list).unwrap(),
        Err(_) => default.to_vec(),
    }
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, backend: &B, precisions: &[Precision]) {
    let (depth, width, batch) = size();
    let config = NetworkConfig::new(depth, width, batch);
    let mut group = c.benchmark_group(format!("network {name}"));
    group.sample_size(10);
    // Forward 2·b·n² per layer, backward twice that: 6·d·b·n² multiply-adds counted as FLOPs.
    group.throughput(Throughput::Elements(
        (6 * depth * batch * width * width) as u64,
    ));
    for &precision in precisions {
        let prepared = prepare(backend, &config, precision).unwrap();
        let id = BenchmarkId::new(precision.name(), format!("{depth}x{width}x{batch}"));
        group.bench_with_input(id, &precision, |b, &p| {
            b.iter(|| run_prepared(backend, &config, p, &prepared, &mut |_, _| Ok(())).unwrap())
        });
    }
    group.finish();
}

fn network(c: &mut Criterion) {
    bench_backend(
        c,
        "cpu",
        &Cpu,
        &precisions(&[
            Precision::F32,
            Precision::F16Accumulate32,
            Precision::Bf16,
            Precision::Fp8,
        ]),
    );
    if std::env::var("GRADSTAB_BENCH_GPU").is_ok_and(|v| v == "1") {
        match Gpu::new(&GpuOptions::from_env().unwrap()) {
            Ok(gpu) => {
                let name = format!("gpu {}", gpu.adapter_name());
                bench_backend(
                    c,
                    &name,
                    &gpu,
                    &precisions(&[
                        Precision::F32,
                        Precision::F16Accumulate32,
                        Precision::F16,
                        Precision::Bf16,
                        Precision::Fp8,
                    ]),
                );
            }
            Err(e) => eprintln!("network on the GPU skipped: {e}"),
        }
    }
}

criterion_group!(benches, network);
criterion_main!(benches);
