//! Host code of shaders/reduce.wgsl: four dispatches in one submission, and one small record
//! per segment read back.

use super::{PER_THREAD, THREADS};
use crate::error::{Error, Result};
use crate::gpu::{Device, Dispatch, GpuTensor, Header, KernelSource};
use crate::precision::DType;
use crate::stats::{CastCounts, CastReport, ExponentHistogram, StatsRecord, BF16_CAST, F16_CAST};

pub const ENTRY_POINTS: [&str; 4] = [
    "extrema_pass",
    "extrema_combine",
    "moments_pass",
    "moments_combine",
];

/// The slots of `GpuRecord::counts`, which the shader's header names `SLOT_<NAME>`.
const COUNT_SLOTS: [&str; 12] = [
    "NAN",
    "POS_INF",
    "NEG_INF",
    "ZERO",
    "SUBNORMAL",
    "FINITE",
    "F16_OVERFLOW",
    "F16_SUBNORMAL",
    "F16_ZERO",
    "BF16_OVERFLOW",
    "BF16_SUBNORMAL",
    "BF16_ZERO",
];

/// Histogram bins: one per biased exponent of f32 (0..=255); f16 uses the first 32. Each
/// thread of a workgroup owns one bin.
const HIST_BINS: usize = 256;
const _: () = assert!(HIST_BINS == THREADS);

/// The shader's `Record`, field for field (a test compares the two layouts through naga).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GpuRecord {
    pub counts: [u32; COUNT_SLOTS.len()],
    pub min: f32,
    pub max: f32,
    pub abs_max: f32,
    pub scale_exp: i32,
    pub shift: f32,
    pub n: f32,
    pub mean: f32,
    pub m2: f32,
    pub hist: [u32; HIST_BINS],
}

impl GpuRecord {
    fn count(&self, slot: &str) -> u64 {
        let i = COUNT_SLOTS
            .iter()
            .position(|s| *s == slot)
            .expect("a slot of COUNT_SLOTS");
        self.counts[i] as u64
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    segments: u32,
    chunks: u32,
    groups_x: u32,
}

/// The kernel of one entry point over data stored as `dtype`, read as raw words (no f16
/// arithmetic, so no `SHADER_F16`), each thread of a pass reading `per_thread` elements.
pub fn kernel(dtype: DType, entry_point: &'static str, per_thread: usize) -> KernelSource {
    let mut header = Header::new()
        .constant_bool("F16_INPUT", dtype == DType::F16)
        .constant_u32("THREADS", THREADS as u32)
        .constant_u32("PER_THREAD", per_thread as u32)
        .constant_u32("HIST_BINS", HIST_BINS as u32)
        .constant_u32("COUNT_SLOTS", COUNT_SLOTS.len() as u32);
    for (i, slot) in COUNT_SLOTS.iter().enumerate() {
        header = header.constant_u32(&format!("SLOT_{slot}"), i as u32);
    }
    for (format, t) in [("F16", F16_CAST), ("BF16", BF16_CAST)] {
        header = header
            .constant_u32(&format!("{format}_OVERFLOW"), t.overflow)
            .constant_u32(&format!("{format}_ZERO"), t.zero)
            .constant_u32(&format!("{format}_SUBNORMAL_BELOW"), t.subnormal_below);
    }
    KernelSource {
        file: "reduce.wgsl",
        body: include_str!("../../../shaders/reduce.wgsl"),
        header,
        entry_point,
    }
}

/// Every reduction kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    [DType::F32, DType::F16]
        .into_iter()
        .flat_map(|d| ENTRY_POINTS.map(|e| kernel(d, e, PER_THREAD)))
        .collect()
}

/// The record of each of `segments` consecutive runs of `len` elements of `x`, each thread of
/// a pass reading `per_thread` elements.
pub(crate) fn segment_stats(
    gpu: &Device,
    x: &GpuTensor,
    segments: usize,
    len: usize,
    per_thread: usize,
) -> Result<Vec<StatsRecord>> {
    let chunks = len.div_ceil(per_thread * THREADS);
    let passes = (segments * chunks) as u64;
    let pass_grid = gpu.grid(passes, "statistics")?;
    let combine_grid = gpu.grid(segments as u64, "statistics")?;
    let record_bytes = std::mem::size_of::<GpuRecord>() as u64;
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
        gpu.traffic.buffer();
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
        .map(|entry| gpu.pipeline(&kernel(x.dtype(), entry, per_thread)))
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
    let dispatch = |i: usize, buffers, grid| Dispatch {
        pipeline: &pipelines[i],
        buffers,
        grid,
    };
    gpu.dispatch_all(
        &[
            dispatch(0, &extrema_bindings, pass_grid),
            dispatch(1, &combine_bindings, combine_grid),
            dispatch(2, &pass_bindings, pass_grid),
            dispatch(3, &combine_bindings, combine_grid),
        ],
        "statistics",
    )?;
    let bytes = gpu.read_buffer(&records, segments as u64 * record_bytes)?;
    let read: &[GpuRecord] = bytemuck::cast_slice(&bytes);
    Ok(read
        .iter()
        .map(|r| stats_record(r, x.dtype(), len))
        .collect())
}

/// Turns the shader's record into a `StatsRecord`, undoing the scale and the shift in f64.
fn stats_record(r: &GpuRecord, dtype: DType, len: usize) -> StatsRecord {
    let finite = r.count("FINITE");
    let mut histogram = ExponentHistogram::empty(dtype);
    // Bin b of the shader counts biased exponent b; normal exponents start at 1.
    for (i, bin) in histogram.normal.iter_mut().enumerate() {
        *bin = r.hist[1 + i] as u64;
    }
    histogram.zero = r.count("ZERO");
    histogram.subnormal = r.count("SUBNORMAL");
    histogram.inf = r.count("POS_INF") + r.count("NEG_INF");
    histogram.nan = r.count("NAN");
    let (mean, variance, min, max, abs_max, l2_norm) = if finite == 0 {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    } else {
        let scale = 2f64.powi(r.scale_exp);
        let n = finite as f64;
        let mean_scaled = r.shift as f64 + r.mean as f64;
        let m2 = r.m2 as f64;
        let sum_squares_scaled = (m2 + n * mean_scaled * mean_scaled).max(0.0);
        (
            mean_scaled * scale,
            (m2 / n).max(0.0) * scale * scale,
            r.min as f64,
            r.max as f64,
            r.abs_max as f64,
            sum_squares_scaled.sqrt() * scale,
        )
    };
    let cast = |format: &str| CastCounts {
        overflow: r.count(&format!("{format}_OVERFLOW")),
        subnormal: r.count(&format!("{format}_SUBNORMAL")),
        zero: r.count(&format!("{format}_ZERO")),
    };
    StatsRecord {
        count: len as u64,
        mean,
        variance,
        min,
        max,
        abs_max,
        l2_norm,
        nan: r.count("NAN"),
        pos_inf: r.count("POS_INF"),
        neg_inf: r.count("NEG_INF"),
        zero: r.count("ZERO"),
        subnormal: r.count("SUBNORMAL"),
        histogram,
        cast: CastReport {
            f16: cast("F16"),
            bf16: cast("BF16"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::assert_mirrors;
    use std::mem::{offset_of, size_of};

    #[test]
    fn the_host_structs_mirror_the_shader_structs() {
        let kernel = kernel(DType::F32, "extrema_pass", PER_THREAD);
        assert_mirrors(
            &kernel,
            "Record",
            &[
                ("counts", offset_of!(GpuRecord, counts)),
                ("min", offset_of!(GpuRecord, min)),
                ("max", offset_of!(GpuRecord, max)),
                ("abs_max", offset_of!(GpuRecord, abs_max)),
                ("scale_exp", offset_of!(GpuRecord, scale_exp)),
                ("shift", offset_of!(GpuRecord, shift)),
                ("n", offset_of!(GpuRecord, n)),
                ("mean", offset_of!(GpuRecord, mean)),
                ("m2", offset_of!(GpuRecord, m2)),
                ("hist", offset_of!(GpuRecord, hist)),
            ],
            size_of::<GpuRecord>(),
        );
        assert_mirrors(
            &kernel,
            "Params",
            &[
                ("len", offset_of!(Params, len)),
                ("segments", offset_of!(Params, segments)),
                ("chunks", offset_of!(Params, chunks)),
                ("groups_x", offset_of!(Params, groups_x)),
            ],
            size_of::<Params>(),
        );
    }
}
