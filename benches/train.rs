//! Training steps at depth 20, width 1024, batch 256 and at depth 8, width 256, batch 128,
//! ReLU with He initialisation and a linear head, MSE against a teacher; f32 with plain SGD,
//! SGD with momentum 0.9 and Adam, and f16acc32 with plain SGD and dynamic loss scaling, on
//! the CPU backend. A step is everything `gradstab train` does per step: forward, the loss,
//! backward, the census of every layer's gradient, the optimizer and the norms of every
//! update, with the two reads of the records. The model, the optimizer state and the data
//! are made before the timer starts. After each benchmark it prints where a step's time went
//! (`StepRecord::time`: forward, backward, optimizer, records; medians over the steps
//! criterion ran).
//!
//! `cargo bench --bench train`; `GRADSTAB_BENCH_TRAIN=depth,width,batch` runs one size;
//! `GRADSTAB_BENCH_GPU=1` adds the GPU backend. `python benches/pytorch_train.py` measures
//! PyTorch's step on the same machine, for the comparison in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

use gradstab::network::NetworkConfig;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::record::StepTime;
use gradstab::train::run::Trainer;
use gradstab::train::{DynamicScaling, LossScale, Task, TrainConfig};
use gradstab::{Backend, Cpu, Gpu, GpuOptions, Precision};

fn sizes() -> Vec<(usize, usize, usize)> {
    std::env::var("GRADSTAB_BENCH_TRAIN")
        .ok()
        .and_then(|s| {
            let v: Vec<usize> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            (v.len() == 3).then(|| vec![(v[0], v[1], v[2])])
        })
        .unwrap_or(vec![(20, 1024, 256), (8, 256, 128)])
}

fn config(
    (depth, width, batch): (usize, usize, usize),
    precision: Precision,
    optimizer: OptimizerConfig,
    loss_scale: LossScale,
) -> TrainConfig {
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
        optimizer,
        lr: 1e-4,
        lr_schedule: None,
        precision,
        loss_scale,
        evaluation: Default::default(),
    }
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, backend: &B) {
    let mut group = c.benchmark_group(format!("train step {name}"));
    group.sample_size(10);
    let sgd = OptimizerConfig::new(OptimizerKind::Sgd);
    let momentum = OptimizerConfig {
        momentum: 0.9,
        ..OptimizerConfig::new(OptimizerKind::Sgd)
    };
    let adam = OptimizerConfig::new(OptimizerKind::Adam);
    let dynamic = LossScale::Dynamic(DynamicScaling::default());
    for size in sizes() {
        let (depth, width, batch) = size;
        let runs = [
            (
                "f32 sgd",
                config(size, Precision::F32, sgd, LossScale::None),
            ),
            (
                "f32 sgd momentum",
                config(size, Precision::F32, momentum, LossScale::None),
            ),
            (
                "f32 adam",
                config(size, Precision::F32, adam, LossScale::None),
            ),
            (
                "f16acc32 sgd dynamic",
                config(size, Precision::F16Accumulate32, sgd, dynamic),
            ),
        ];
        for (label, config) in &runs {
            let mut trainer = Trainer::new(backend, config).unwrap();
            let id = BenchmarkId::new(*label, format!("{depth}x{width}x{batch}"));
            group.bench_function(id, |b| {
                b.iter(|| assert!(trainer.step().unwrap(), "the benchmark run diverged"))
            });
            print_phases(&format!("{label} {depth}x{width}x{batch}"), &trainer);
        }
    }
    group.finish();
}

/// The median of each phase over the steps the benchmark ran (CPU only: a GPU's are null).
fn print_phases<B: Backend>(label: &str, trainer: &Trainer<'_, B>) {
    let times: Vec<StepTime> = trainer.records().iter().filter_map(|r| r.time).collect();
    if times.is_empty() {
        return;
    }
    let median = |part: fn(&StepTime) -> f64| {
        let mut v: Vec<f64> = times.iter().map(part).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e3
    };
    println!(
        "phases of {label} (median of {} steps, ms): forward {:.1}, backward {:.1}, \
         optimizer {:.1}, records {:.1}; step {:.1}",
        times.len(),
        median(|t| t.forward_s),
        median(|t| t.backward_s),
        median(|t| t.optimizer_s),
        median(|t| t.records_s),
        median(StepTime::sum),
    );
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
