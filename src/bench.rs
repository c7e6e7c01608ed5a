//! `gradstab bench`: a short, self-contained measurement of the chosen device. On a GPU, first
//! its own roofline (peak multiply-add throughput per precision from `shaders/roofline.wgsl`,
//! and copy bandwidth), then what each kernel achieves and its share of that measured peak. On
//! the CPU backend, the same kernels' throughput (there is no roofline kernel to share against).
//! Each figure is the best of a few runs after a warm-up, waiting for the device every time.

use std::collections::BTreeMap;

use crate::backend::cpu::Cpu;
use crate::backend::gpu::Gpu;
use crate::backend::Backend;
use crate::error::Result;
use crate::gpu::roofline::{copy_bandwidth, fma_peak};
use crate::ops::activation::Activation;
use crate::ops::matmul::gpu::matmul_with;
use crate::ops::matmul::{MatmulOp, MatmulVariant};
use crate::precision::{DType, Precision};
use crate::tensor::HostTensor;

/// How much work each measurement does.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct BenchSizes {
    pub fma_workgroups: u64,
    pub fma_iterations: u32,
    /// `vec4<f32>` words copied.
    pub copy_words: usize,
    /// Square matmul edge.
    pub matmul: usize,
    /// Elements of the elementwise kernels and the statistics.
    pub elements: usize,
    pub repeats: usize,
}

impl BenchSizes {
    /// Small on a CPU-type adapter (lavapipe), large on a GPU; tiny with `quick`.
    pub fn for_device(gpu: &Gpu, quick: bool) -> Self {
        match (quick, gpu.is_hardware()) {
            (true, _) => BenchSizes {
                fma_workgroups: 16,
                fma_iterations: 64,
                copy_words: 1 << 14,
                matmul: 64,
                elements: 1 << 14,
                repeats: 2,
            },
            (false, false) => BenchSizes {
                fma_workgroups: 256,
                fma_iterations: 1024,
                copy_words: 1 << 20,
                matmul: 256,
                elements: 1 << 22,
                repeats: 3,
            },
            (false, true) => BenchSizes {
                fma_workgroups: 65_535,
                fma_iterations: 4096,
                copy_words: 1 << 24,
                matmul: 4096,
                elements: 1 << 26,
                repeats: 5,
            },
        }
    }

    /// The CPU backend's: no roofline kernel; 512³ keeps the exact pure-f16 matmul (the
    /// slowest) to about a second.
    pub fn for_cpu(quick: bool) -> Self {
        BenchSizes {
            fma_workgroups: 0,
            fma_iterations: 0,
            copy_words: 0,
            matmul: if quick { 64 } else { 512 },
            elements: if quick { 1 << 14 } else { 1 << 22 },
            repeats: if quick { 2 } else { 3 },
        }
    }
}

/// The device's measured peaks.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Roofline {
    /// Peak multiply-add throughput, GFLOP/s (2 per fma), per arithmetic type.
    pub fma_gflops: BTreeMap<String, f64>,
    /// Copy bandwidth, GB/s (bytes read + written).
    pub copy_gbps: f64,
}

/// What one kernel achieved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelFigure {
    pub kernel: String,
    pub precision: String,
    pub size: String,
    pub seconds: f64,
    /// For compute-bound kernels.
    pub gflops: Option<f64>,
    /// For memory-bound kernels: bytes read and written per second.
    pub gbps: Option<f64>,
    /// Of the measured FMA peak (compute-bound) or copy bandwidth (memory-bound); `None` on
    /// the CPU backend, which has no measured roofline.
    pub percent_of_peak: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub quick: bool,
    pub sizes: BenchSizes,
    /// `None` on the CPU backend.
    pub roofline: Option<Roofline>,
    pub kernels: Vec<KernelFigure>,
}

/// The best of `repeats` timed runs of `f` after one warm-up, each waiting for the backend.
fn best_time<B: Backend>(
    backend: &B,
    repeats: usize,
    f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    crate::timing::best_time(repeats, f, || backend.synchronize())
}

/// Measures every kernel of the CPU backend in every precision: matmul (f32, the exact
/// pure-f16 emulation, f16acc32), an activation and its derivative, axpy and the statistics.
pub fn bench_cpu(quick: bool, mut progress: impl FnMut(&str)) -> Result<BenchReport> {
    let cpu = Cpu;
    let sizes = BenchSizes::for_cpu(quick);
    let n = sizes.matmul;
    let values = matmul_values(n);
    let mut kernels = Vec::new();
    for precision in Precision::ALL {
        let host = HostTensor::from_f32_as(precision.storage(), n, n, &values)?;
        let (a, b) = (cpu.upload(&host)?, cpu.upload(&host)?);
        for op in [MatmulOp::default(), MatmulOp::new(false, true)] {
            progress(&format!("matmul {} {precision}", op.name()));
            let seconds = best_time(&cpu, sizes.repeats, || {
                cpu.matmul(&a, &b, op, precision).map(drop)
            })?;
            kernels.push(KernelFigure {
                kernel: format!("matmul {}", op.name()),
                precision: precision.name().into(),
                size: format!("{n}³"),
                seconds,
                gflops: Some(2.0 * (n * n * n) as f64 / seconds / 1e9),
                gbps: None,
                percent_of_peak: None,
            });
        }
    }
    memory_bound_figures(
        &cpu,
        &sizes,
        &Precision::ALL,
        None,
        &mut kernels,
        &mut progress,
    )?;
    Ok(BenchReport {
        adapter: cpu.info().adapter,
        backend: "cpu".into(),
        device_type: "Cpu".into(),
        driver: cpu_features(),
        quick,
        sizes,
        roofline: None,
        kernels,
    })
}

/// The vector instruction sets this CPU offers, which decide the CPU backend's speed.
fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut found = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            found.push("AVX-512");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            found.push("AVX2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            found.push("FMA");
        }
        if std::arch::is_x86_feature_detected!("f16c") {
            found.push("F16C");
        }
        format!("x86_64 {}", found.join(" "))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

/// Deterministic operands in [−0.5, 0.5).
fn matmul_values(n: usize) -> Vec<f32> {
    (0..n * n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// Measures the roofline and every kernel on `gpu`, telling `progress` what it is doing.
pub fn bench(gpu: &Gpu, quick: bool, mut progress: impl FnMut(&str)) -> Result<BenchReport> {
    let sizes = BenchSizes::for_device(gpu, quick);
    let precisions: Vec<Precision> = Precision::ALL
        .into_iter()
        .filter(|&p| gpu.supports(p))
        .collect();
    let roofline = measure_roofline(gpu, &sizes, &mut progress)?;
    let mut kernels = Vec::new();
    progress("matmul");
    matmul_figures(
        gpu,
        &sizes,
        &precisions,
        &roofline,
        quick,
        &mut kernels,
        &mut progress,
    )?;
    memory_bound_figures(
        gpu,
        &sizes,
        &precisions,
        Some(&roofline),
        &mut kernels,
        &mut progress,
    )?;
    let info = gpu.adapter_info();
    Ok(BenchReport {
        adapter: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        quick,
        sizes,
        roofline: Some(roofline),
        kernels,
    })
}

/// The device's peak FMA throughput per arithmetic type and its copy bandwidth.
fn measure_roofline(
    gpu: &Gpu,
    sizes: &BenchSizes,
    progress: &mut dyn FnMut(&str),
) -> Result<Roofline> {
    progress("roofline");
    let mut fma_gflops = BTreeMap::new();
    let peak = |dtype| {
        fma_peak(
            gpu,
            dtype,
            sizes.fma_workgroups,
            sizes.fma_iterations,
            sizes.repeats,
        )
    };
    fma_gflops.insert("f32".to_string(), peak(DType::F32)?);
    if gpu.supports(Precision::F16) {
        fma_gflops.insert("f16".to_string(), peak(DType::F16)?);
    }
    Ok(Roofline {
        fma_gflops,
        copy_gbps: copy_bandwidth(gpu, sizes.copy_words, sizes.repeats)?,
    })
}

/// Every matmul variant (only the autotuned one with `quick`), NN and NT, in each precision.
fn matmul_figures(
    gpu: &Gpu,
    sizes: &BenchSizes,
    precisions: &[Precision],
    roofline: &Roofline,
    quick: bool,
    kernels: &mut Vec<KernelFigure>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let n = sizes.matmul;
    let values = matmul_values(n);
    for &precision in precisions {
        let host = HostTensor::from_f32_as(precision.storage(), n, n, &values)?;
        let (a, b) = (gpu.upload(&host)?, gpu.upload(&host)?);
        let peak = roofline.fma_gflops[precision.arithmetic().name()];
        let chosen = gpu.matmul_variant(precision)?;
        let variants: Vec<MatmulVariant> = if quick {
            vec![chosen]
        } else {
            MatmulVariant::ALL.to_vec()
        };
        for variant in variants {
            for op in [MatmulOp::default(), MatmulOp::new(false, true)] {
                progress(&format!("matmul {} {variant} {precision}", op.name()));
                let seconds = best_time(gpu, sizes.repeats, || {
                    matmul_with(gpu, &a, &b, op, precision, variant).map(drop)
                })?;
                let gflops = 2.0 * (n * n * n) as f64 / seconds / 1e9;
                let mark = if variant == chosen {
                    " (autotuned)"
                } else {
                    ""
                };
                kernels.push(KernelFigure {
                    kernel: format!("matmul {} {variant}{mark}", op.name()),
                    precision: precision.name().into(),
                    size: format!("{n}³"),
                    seconds,
                    gflops: Some(gflops),
                    gbps: None,
                    percent_of_peak: Some(100.0 * gflops / peak),
                });
            }
        }
    }
    Ok(())
}

/// The memory-bound kernels: an activation, its derivative, axpy and the statistics, each
/// against the copy bandwidth where a roofline was measured.
fn memory_bound_figures<B: Backend>(
    gpu: &B,
    sizes: &BenchSizes,
    precisions: &[Precision],
    roofline: Option<&Roofline>,
    kernels: &mut Vec<KernelFigure>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let len = sizes.elements;
    let values: Vec<f32> = (0..len)
        .map(|i| ((i * 7919) % 2000) as f32 / 500.0 - 2.0)
        .collect();
    for &precision in precisions {
        let host = HostTensor::from_f32_as(precision.storage(), 1, len, &values)?;
        let (x, y) = (gpu.upload(&host)?, gpu.upload(&host)?);
        let bytes = precision.storage().size_bytes() as f64 * len as f64;
        let mut memory_bound =
            |kernel: &str, traffic: f64, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
                progress(&format!("{kernel} {precision}"));
                let seconds = best_time(gpu, sizes.repeats, f)?;
                let gbps = traffic / seconds / 1e9;
                kernels.push(KernelFigure {
                    kernel: kernel.into(),
                    precision: precision.name().into(),
                    size: format!("{len}"),
                    seconds,
                    gflops: None,
                    gbps: Some(gbps),
                    percent_of_peak: roofline.map(|r| 100.0 * gbps / r.copy_gbps),
                });
                Ok(())
            };
        memory_bound("tanh forward", 2.0 * bytes, &mut || {
            gpu.activation(Activation::Tanh, &x, precision).map(drop)
        })?;
        memory_bound("tanh derivative", 2.0 * bytes, &mut || {
            gpu.activation_derivative(Activation::Tanh, &x, precision)
                .map(drop)
        })?;
        memory_bound("axpy", 3.0 * bytes, &mut || {
            gpu.axpy(0.5, &x, &y, precision).map(drop)
        })?;
        // Statistics depend on the storage type alone: once for f32 data, once for f16. The
        // record is read back, so this includes the wait and a small copy; the data are read
        // once.
        if precision != Precision::F16Accumulate32 {
            memory_bound("statistics", bytes, &mut || gpu.stats(&x).map(drop))?;
        }
    }
    Ok(())
}
