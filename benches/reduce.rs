//! Statistics throughput (elements/s): the whole record of 10^7 values (moments, extrema,
//! class counts, histogram, cast report) on the CPU backend and on the best GPU adapter, and
//! the CPU's lean census (class counts and norm, what a training step reads of every
//! gradient: `ops::reduce::census`) beside it. Where the adapter has subgroups, the GPU's
//! record is timed twice, one after the other: with the trees finished in a subgroup's
//! registers (the default, `gpu …`) and in workgroup memory alone (`gpu … tree`, the adapter
//! opened with `disable_subgroups`), which give the same bits.
//!
//! `cargo bench --bench reduce`; `GRADSTAB_BENCH_LEN=1000000` changes the length (default 10^7,
//! and 2^28 on a hardware GPU).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;

use gradstab::ops::reduce::census::census;
use gradstab::verify::normal_tensor;
use gradstab::{Backend, Cpu, DType, Gpu, GpuOptions};

fn len(hardware_gpu: bool) -> usize {
    std::env::var("GRADSTAB_BENCH_LEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if hardware_gpu { 1 << 28 } else { 10_000_000 })
}

fn data(dtype: DType, n: usize) -> gradstab::HostTensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    normal_tensor(&mut rng, dtype, 1, n, 1.0).unwrap()
}

fn reduce(c: &mut Criterion) {
    let gpu = Gpu::new(&GpuOptions::from_env().unwrap());
    let tree = match &gpu {
        Ok(g) if g.subgroup_lanes() > 1 => Some(
            Gpu::new(&GpuOptions {
                disable_subgroups: true,
                ..GpuOptions::from_env().unwrap()
            })
            .unwrap(),
        ),
        _ => None,
    };
    let hardware = gpu.as_ref().is_ok_and(|g| g.is_hardware());
    let n = len(hardware);
    let mut group = c.benchmark_group("stats");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for dtype in [DType::F32, DType::F16] {
        let host = data(dtype, n);
        group.bench_with_input(BenchmarkId::new(format!("cpu/{dtype}"), n), &n, |b, _| {
            b.iter(|| Cpu.stats(&host).unwrap())
        });
        let id = BenchmarkId::new(format!("cpu census/{dtype}"), n);
        group.bench_with_input(id, &n, |b, _| b.iter(|| census(host.data().view())));
        match &gpu {
            Ok(gpu) => {
                let x = gpu.upload(&host).unwrap();
                let id = BenchmarkId::new(format!("gpu {}/{dtype}", gpu.adapter_name()), n);
                // stats() reads back the record, so each iteration includes the full wait.
                group.bench_with_input(id, &n, |b, _| b.iter(|| gpu.stats(&x).unwrap()));
                if let Some(tree) = &tree {
                    let x = tree.upload(&host).unwrap();
                    let id =
                        BenchmarkId::new(format!("gpu {} tree/{dtype}", tree.adapter_name()), n);
                    group.bench_with_input(id, &n, |b, _| b.iter(|| tree.stats(&x).unwrap()));
                }
            }
            Err(e) => eprintln!("stats on the GPU skipped: {e}"),
        }
    }
    group.finish();
}

criterion_group!(benches, reduce);
criterion_main!(benches);
