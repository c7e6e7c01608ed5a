//! Host code of shaders/reduce.wgsl: four dispatches in one submission, and one small record
//! per segment read back.

use super::CHUNK;
use crate::error::{Error, Result};
use crate::gpu::kernels::{Dispatch, KernelSpec};
use crate::gpu::{Gpu, GpuTensor};
use crate::precision::DType;
use crate::stats::{CastCounts, CastReport, ExponentHistogram, StatsRecord};

pub(crate) const ENTRY_POINTS: [&str; 4] = [
    "extrema_pass",
    "extrema_combine",
    "moments_pass",
    "moments_combine",
];

/// u32 words of one `Record` in the shader: 20 scalars and 256 histogram bins.
const RECORD_WORDS: usize = 20 + 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    segments: u32,
    chunks: u32,
    groups_x: u32,
}

/// The record of each of `segments` consecutive runs of `len` elements of `x`.
pub(crate) fn segment_stats(
    gpu: &Gpu,
    x: &GpuTensor,
    segments: usize,
    len: usize,
) -> Result<Vec<StatsRecord>> {
    let chunks = len.div_ceil(CHUNK);
    let passes = (segments * chunks) as u64;
    let pass_grid = gpu.grid(passes, "statistics")?;
    let combine_grid = gpu.grid(segments as u64, "statistics")?;
    let record_bytes = (RECORD_WORDS * 4) as u64;
    let partial_bytes = passes * record_bytes;
    let limit = gpu.limits.max_storage_buffer_binding_size;
    if partial_bytes > limit {
        return Err(Error::TooLarge {
            what: format!("statistics of {segments} × {len} values ({passes} partial records)"),
            bytes: partial_bytes,
            limit,
            adapter: gpu.adapter_name(),
        });
    }
    let storage = |size: u64, label: &str| {
        gpu.checked(label, || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })
    };
    let partials = storage(partial_bytes, "statistics partials")?;
    let records = storage(segments as u64 * record_bytes, "statistics records")?;
    let params = |grid: (u32, u32)| {
        gpu.uniform(&Params {
            len: len as u32,
            segments: segments as u32,
            chunks: chunks as u32,
            groups_x: grid.0,
        })
    };
    let (pass_params, combine_params) = (params(pass_grid), params(combine_grid));
    let pipelines = ENTRY_POINTS
        .map(|entry| gpu.pipeline(KernelSpec::reduce(x.dtype(), entry)))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let pass_bindings = [
        (0, &x.buffer),
        (1, &partials),
        (2, &records),
        (3, &pass_params),
    ];
    // extrema_pass writes no records; the others read or write both.
    let extrema_bindings = [(0, &x.buffer), (1, &partials), (3, &pass_params)];
    let combine_bindings = [(1, &partials), (2, &records), (3, &combine_params)];
    gpu.dispatch_all(
        &[
            Dispatch {
                pipeline: &pipelines[0],
                buffers: &extrema_bindings,
                grid: pass_grid,
            },
            Dispatch {
                pipeline: &pipelines[1],
                buffers: &combine_bindings,
                grid: combine_grid,
            },
            Dispatch {
                pipeline: &pipelines[2],
                buffers: &pass_bindings,
                grid: pass_grid,
            },
            Dispatch {
                pipeline: &pipelines[3],
                buffers: &combine_bindings,
                grid: combine_grid,
            },
        ],
        "statistics",
    )?;
    let bytes = gpu.read_buffer(&records, segments as u64 * record_bytes)?;
    let words: &[u32] = bytemuck::cast_slice(&bytes);
    Ok(words
        .chunks(RECORD_WORDS)
        .map(|w| record_from_words(w, x.dtype(), len))
        .collect())
}

/// Turns the shader's record into a `StatsRecord`, undoing the scale and the shift in f64.
fn record_from_words(w: &[u32], dtype: DType, len: usize) -> StatsRecord {
    let f = |i: usize| f32::from_bits(w[i]) as f64;
    let finite = w[5] as u64;
    let mut histogram = ExponentHistogram::empty(dtype);
    // Bin b of the shader counts biased exponent b; normal exponents start at 1.
    for (i, bin) in histogram.normal.iter_mut().enumerate() {
        *bin = w[20 + 1 + i] as u64;
    }
    histogram.zero = w[3] as u64;
    histogram.subnormal = w[4] as u64;
    histogram.inf = w[1] as u64 + w[2] as u64;
    histogram.nan = w[0] as u64;
    let (mean, variance, min, max, abs_max, l2_norm) = if finite == 0 {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    } else {
        let scale = 2f64.powi(w[15] as i32);
        let shift = f(16);
        let (mean_shifted, m2) = (f(18), f(19));
        let n = finite as f64;
        let mean_scaled = shift + mean_shifted;
        let sum_squares_scaled = (m2 + n * mean_scaled * mean_scaled).max(0.0);
        (
            mean_scaled * scale,
            (m2 / n).max(0.0) * scale * scale,
            f(12),
            f(13),
            f(14),
            sum_squares_scaled.sqrt() * scale,
        )
    };
    StatsRecord {
        count: len as u64,
        mean,
        variance,
        min,
        max,
        abs_max,
        l2_norm,
        nan: w[0] as u64,
        pos_inf: w[1] as u64,
        neg_inf: w[2] as u64,
        zero: w[3] as u64,
        subnormal: w[4] as u64,
        histogram,
        cast: CastReport {
            f16: CastCounts {
                overflow: w[6] as u64,
                subnormal: w[7] as u64,
                zero: w[8] as u64,
            },
            bf16: CastCounts {
                overflow: w[9] as u64,
                subnormal: w[10] as u64,
                zero: w[11] as u64,
            },
        },
    }
}
