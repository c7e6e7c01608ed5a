//! The host's cost of one GPU dispatch: the time to record `DISPATCHES` tiny kernels (a scale
//! of 64 values, whose device time is negligible) without waiting for them, divided by their
//! number. It is what every small layer pays on a real GPU, where the kernel itself takes
//! microseconds; the device's work is waited for outside the timed region. The CPU backend is
//! the reference: the same call with no device behind it.
//!
//! Two clocks: the wall time of the recording, and the recording thread's own CPU time. On
//! lavapipe the device is two more threads on the same two cores, which run the kernels of
//! each submission while the host records the next, so the wall time counts their work too;
//! the thread's CPU time is the host work alone.
//!
//! `cargo bench --bench dispatch`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use gradstab::tensor::HostTensor;
use gradstab::{Backend, Cpu, Gpu, GpuOptions, Precision};

/// Dispatches recorded per timed batch: enough to cross several submissions.
const DISPATCHES: u64 = 2000;

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, backend: &B) {
    let mut group = c.benchmark_group(format!("dispatch {name}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(DISPATCHES));
    let host = HostTensor::from_f32_as(Precision::F32.storage(), 1, 64, &[1.0; 64]).unwrap();
    let x = backend.upload(&host).unwrap();
    for (clock, now) in [
        ("wall", wall_clock as fn() -> Duration),
        ("thread CPU", thread_cpu_clock),
    ] {
        group.bench_function(format!("scale 1x64 f32, recorded, {clock}"), |b| {
            b.iter_custom(|iters| {
                let mut recording = Duration::ZERO;
                for _ in 0..iters {
                    let start = now();
                    let outputs: Vec<B::Tensor> = (0..DISPATCHES)
                        .map(|_| backend.scale(&x, 0.5, Precision::F32).unwrap())
                        .collect();
                    recording += now() - start;
                    backend.synchronize().unwrap();
                    drop(outputs);
                }
                recording
            })
        });
    }
    group.finish();
}

/// Time since the first call, on the wall clock.
fn wall_clock() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// The CPU time this thread has used.
fn thread_cpu_clock() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; the clock id is a constant Linux knows.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
    assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn dispatch(c: &mut Criterion) {
    bench_backend(c, "cpu", &Cpu);
    match Gpu::new(&GpuOptions::from_env().unwrap()) {
        Ok(gpu) => {
            let name = format!("gpu {}", gpu.adapter_name());
            bench_backend(c, &name, &gpu);
        }
        Err(e) => eprintln!("dispatch on the GPU skipped: {e}"),
    }
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
