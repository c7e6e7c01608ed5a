//! Training steps: depth 20, width 1024, batch 256, ReLU with He initialisation and a linear
//! head, MSE against a teacher, plain SGD; f32, and f16acc32 with dynamic loss scaling, on
//! the CPU backend. A step is everything `gradstab train` does per step: forward, the loss,
//! backward, the statistics of every layer's gradient, the optimizer and the norms of every
//! update, with the two reads of the records. The model, the optimizer state and the data
//! are made before the timer starts.
//!
//! `cargo bench --bench train`; `GRADSTAB_BENCH_TRAIN=depth,width,batch` changes the size;
//! `GRADSTAB_BENCH_GPU=1` adds the GPU backend. `python benches/pytorch_train.py` measures
//! PyTorch's step on the same machine, for the comparison in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

use gradstab::network::NetworkConfig;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::run::Trainer;
use gradstab::train::{DynamicScaling, LossScale, Task, TrainConfig};
use gradstab::{Backend, Cpu, Gpu, GpuOptions, Precision};

fn size() -> (usize, usize, usize) {
    std::env::var("GRADSTAB_BENCH_TRAIN")
        .ok()
        .and_then(|s| {
            let v: Vec<usize> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .unwrap_or((20, 1024, 256))
}

fn config(precision: Precision, loss_scale: LossScale) -> TrainConfig {
    let (depth, width, batch) = size();
    TrainConfig {
        network: NetworkConfig {
            output_activation: false,
            ..NetworkConfig::new(depth, width, batch)
        },
        task: Task::Teacher { depth: 1, width },
        samples: batch,
        shuffle: false,
        drop_last: false,
        // More than criterion will take; the trainer stops only at divergence.
        steps: 1_000_000,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 1e-4,
        lr_schedule: None,
        precision,
        loss_scale,
        evaluation: Default::default(),
    }
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, backend: &B) {
    let (depth, width, batch) = size();
    let mut group = c.benchmark_group(format!("train step {name}"));
    group.sample_size(10);
    let runs = [
        ("f32 sgd", config(Precision::F32, LossScale::None)),
        (
            "f16acc32 sgd dynamic",
            config(
                Precision::F16Accumulate32,
                LossScale::Dynamic(DynamicScaling::default()),
            ),
        ),
    ];
    for (label, config) in &runs {
        let mut trainer = Trainer::new(backend, config).unwrap();
        let id = BenchmarkId::new(*label, format!("{depth}x{width}x{batch}"));
        group.bench_function(id, |b| {
            b.iter(|| assert!(trainer.step().unwrap(), "the benchmark run diverged"))
        });
    }
    group.finish();
}

fn train(c: &mut Criterion) {
    bench_backend(c, "cpu", &Cpu);
    if std::env::var("GRADSTAB_BENCH_GPU").is_ok_and(|v| v == "1") {
        match Gpu::new(&GpuOptions::from_env().unwrap()) {
            Ok(gpu) => {
                let name = format!("gpu {}", gpu.adapter_name());
                bench_backend(c, &name, &gpu);
            }
            Err(e) => eprintln!("GRADSTAB_BENCH_GPU=1 but no GPU: {e}"),
        }
    }
}

criterion_group!(benches, train);
criterion_main!(benches);
