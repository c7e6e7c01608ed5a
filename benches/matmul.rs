//! Matmul throughput (FLOP/s, reported by criterion as elements/s with 2·m·n·k elements per
//! product) on the CPU backend (which multiplies through the `gemm` crate, the outside
//! reference) and on the best GPU adapter, in every precision and the three products of an MLP
//! (NN, NT forward, TN for the weight gradient).
//!
//! `cargo bench --bench matmul`; `GRADSTAB_BENCH_SIZES=256,512` picks the square sizes. By
//! default they follow the device: 128 to 1024 on the CPU and a software GPU, up to 8192 on a
//! hardware GPU.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;

use gradstab::verify::normal_tensor;
use gradstab::{Backend, Cpu, Gpu, GpuOptions, MatmulOp, Precision};

fn sizes(hardware_gpu: bool) -> Vec<usize> {
    std::env::var("GRADSTAB_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if hardware_gpu {
                vec![1024, 4096, 8192]
            } else {
                vec![128, 256, 512, 1024]
            }
        })
}

fn operands(precision: Precision, n: usize) -> (gradstab::HostTensor, gradstab::HostTensor) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let dtype = precision.storage();
    (
        normal_tensor(&mut rng, dtype, n, n, 1.0).unwrap(),
        normal_tensor(&mut rng, dtype, n, n, 1.0).unwrap(),
    )
}

fn cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_cpu");
    group.sample_size(10);
    for precision in Precision::ALL {
        for n in sizes(false) {
            let (a, b) = operands(precision, n);
            group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
            group.bench_with_input(BenchmarkId::new(precision.name(), n), &n, |bench, _| {
                bench.iter(|| Cpu.matmul(&a, &b, MatmulOp::default(), precision).unwrap())
            });
        }
    }
    group.finish();
}

/// The exact pure-f16 product three ways: the vector kernel, fused and unfused (what the
/// backend runs, and what a device with an unfused f16 fma computes), and the scalar in-order
/// emulation it must match bit for bit. `GRADSTAB_BENCH_F16_SIZES=1024` picks the sizes.
fn cpu_f16(c: &mut Criterion) {
    use gradstab::ops::matmul::{cpu::f16_in_order, cpu_f16};
    let mut group = c.benchmark_group("matmul_cpu_f16");
    group.sample_size(10);
    let sizes: Vec<usize> = std::env::var("GRADSTAB_BENCH_F16_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![256, 1024]);
    for n in sizes {
        let (a, b) = operands(Precision::F16, n);
        let f16s = |t: &gradstab::HostTensor| match t.data() {
            gradstab::HostData::F16(v) => v.clone(),
            _ => unreachable!("f16 operands"),
        };
        let (a, b) = (f16s(&a), f16s(&b));
        let dims = (n, n, n);
        let op = MatmulOp::default();
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        if cpu_f16::available() {
            for (name, fused) in [("vector fused", true), ("vector unfused", false)] {
                group.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                    bench.iter(|| cpu_f16::matmul(&a, &b, op, dims, fused).unwrap())
                });
            }
        }
        // The scalar emulation takes seconds at 1024³: measured at the smaller sizes only.
        if n <= 256 {
            group.bench_with_input(BenchmarkId::new("scalar fused", n), &n, |bench, _| {
                bench.iter(|| f16_in_order(&a, &b, op, dims, true))
            });
        }
    }
    group.finish();
}

fn gpu(c: &mut Criterion) {
    let gpu = match Gpu::new(&GpuOptions::from_env().unwrap()) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("matmul_gpu skipped: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group(format!("matmul_gpu ({})", gpu.adapter_name()));
    eprintln!(
        "matmul variant on this device: f32 {}",
        gpu.matmul_variant(Precision::F32).unwrap()
    );
    group.sample_size(10);
    for precision in Precision::ALL {
        if !gpu.supports(precision) {
            continue;
        }
        let hardware = gpu.is_hardware();
        for n in sizes(hardware) {
            let (a, b) = operands(precision, n);
            let (a, b) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
            group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
            for op in [
                MatmulOp::new(false, false),
                MatmulOp::new(false, true),
                MatmulOp::new(true, false),
            ] {
                let id = BenchmarkId::new(format!("{}/{}", precision.name(), op.name()), n);
                group.bench_with_input(id, &n, |bench, _| {
                    bench.iter(|| {
                        let c = gpu.matmul(&a, &b, op, precision).unwrap();
                        gpu.synchronize().unwrap();
                        c
                    })
                });
            }
        }
    }
    group.finish();
}

/// The fast paths of the GPU kernel (unchecked interior workgroups, vector loads) against the
/// checked path they must match bit for bit, alternately in one run: `checked` then `fast` for
/// each precision, product, variant (the device's own, and tile64-shared, the staged one whose
/// tile loads are vectorised) and size. `cargo bench --bench matmul -- gpu_paths`; the sizes are
/// `GRADSTAB_BENCH_SIZES`, by default 256 on a software GPU and 4096 on a hardware one.
fn gpu_paths(c: &mut Criterion) {
    use gradstab::ops::matmul::gpu::{matmul_with_paths, MatmulPaths};
    use gradstab::ops::matmul::MatmulVariant;
    let Ok(gpu) = Gpu::new(&GpuOptions::from_env().unwrap()) else {
        eprintln!("matmul_gpu_paths skipped: no GPU adapter");
        return;
    };
    let mut group = c.benchmark_group(format!("matmul_gpu_paths ({})", gpu.adapter_name()));
    group
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    let hardware = gpu.is_hardware();
    let sizes = match std::env::var("GRADSTAB_BENCH_SIZES") {
        Ok(_) => sizes(hardware),
        Err(_) if hardware => vec![4096],
        Err(_) => vec![256],
    };
    for precision in [Precision::F32, Precision::F16] {
        if !gpu.supports(precision) {
            continue;
        }
        let mut variants = vec![gpu.matmul_variant(precision).unwrap()];
        if variants[0] != MatmulVariant::Tile64Shared {
            variants.push(MatmulVariant::Tile64Shared);
        }
        for &n in &sizes {
            let (a, b) = operands(precision, n);
            let (a, b) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
            group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
            for op in [MatmulOp::new(false, false), MatmulOp::new(true, false)] {
                for &variant in &variants {
                    for (name, paths) in [
                        ("checked", MatmulPaths::Checked),
                        ("fast", MatmulPaths::Fast),
                    ] {
                        let id = format!("{}/{}/{variant}/{name}", precision.name(), op.name());
                        group.bench_with_input(BenchmarkId::new(id, n), &n, |bench, _| {
                            bench.iter(|| {
                                let c =
                                    matmul_with_paths(&gpu, &a, &b, op, precision, variant, paths)
                                        .unwrap();
                                gpu.synchronize().unwrap();
                                c
                            })
                        });
                    }
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, cpu, cpu_f16, gpu, gpu_paths);
criterion_main!(benches);
