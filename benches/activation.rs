//! Activation forward and derivative throughput (elements/s; bytes moved are twice the
//! storage size per element) on the CPU backend and the best GPU adapter.
//!
//! `cargo bench --bench activation`; `GRADSTAB_BENCH_LEN` sets the length (default 2^22).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;

use gradstab::verify::normal_tensor;
use gradstab::{Activation, Backend, Cpu, Gpu, GpuOptions, Precision};

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, backend: &B, precisions: &[Precision]) {
    let n: usize = std::env::var("GRADSTAB_BENCH_LEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 22);
    let mut group = c.benchmark_group(format!("activation {name}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for &precision in precisions {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let x = backend
            .upload(&normal_tensor(&mut rng, precision.storage(), 1, n, 3.0).unwrap())
            .unwrap();
        for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            let id = BenchmarkId::new(format!("{}/{precision}/forward", act.name()), n);
            group.bench_with_input(id, &n, |b, _| {
                b.iter(|| {
                    let y = backend.activation(act, &x, precision).unwrap();
                    backend.synchronize().unwrap();
                    y
                })
            });
            let id = BenchmarkId::new(format!("{}/{precision}/derivative", act.name()), n);
            group.bench_with_input(id, &n, |b, _| {
                b.iter(|| {
                    let y = backend.activation_derivative(act, &x, precision).unwrap();
                    backend.synchronize().unwrap();
                    y
                })
            });
        }
    }
    group.finish();
}

fn activation(c: &mut Criterion) {
    bench_backend(c, "cpu", &Cpu, &Precision::ALL);
    match Gpu::new(&GpuOptions::from_env().unwrap()) {
        Ok(gpu) => {
            let precisions: Vec<Precision> = Precision::ALL
                .into_iter()
                .filter(|&p| gpu.supports(p))
                .collect();
            let name = format!("gpu {}", gpu.adapter_name());
            bench_backend(c, &name, &gpu, &precisions);
        }
        Err(e) => eprintln!("activation on the GPU skipped: {e}"),
    }
}

criterion_group!(benches, activation);
criterion_main!(benches);
