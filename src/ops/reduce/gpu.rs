//! Host code of shaders/reduce.wgsl: two dispatches per tensor, recorded without waiting, each
//! writing its records into a block of records on the device; any number of them come back in
//! one read (`collect`).

use std::sync::{Arc, Mutex};

use super::{PER_THREAD, THREADS};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::gpu::{Device, Dispatch, GpuTensor, Header, KernelKey, KernelSource};
use crate::precision::DType;
use crate::stats::{
    cast_thresholds, l2_norm_of, CastCounts, CastReport, ExponentHistogram, StatsRecord,
    CAST_FORMATS,
};

pub const ENTRY_POINTS: [&str; 2] = ["chunk_pass", "segment_combine"];

/// The most values one thread of `chunk_pass` holds in registers (one bit each of a u32).
pub const MAX_PER_THREAD: usize = 32;
const _: () = assert!(PER_THREAD <= MAX_PER_THREAD);

/// Records per block of the record queue: a depth-100 pass queues about 400.
const BLOCK_RECORDS: usize = 512;

/// The first slots of `GpuRecord::counts`, by numeric class; the shader's header names each
/// `SLOT_<NAME>`.
const CLASS_SLOTS: [&str; 6] = ["NAN", "POS_INF", "NEG_INF", "ZERO", "SUBNORMAL", "FINITE"];

/// What the cast report counts per format, in its three slots after the class slots.
const CAST_KINDS: [&str; 3] = ["OVERFLOW", "SUBNORMAL", "ZERO"];

/// Slots of `GpuRecord::counts`: the classes, then three per format of the cast report.
const COUNT_SLOTS: usize = CLASS_SLOTS.len() + CAST_KINDS.len() * CAST_FORMATS.len();

/// The name of every slot, in order (`SLOT_<NAME>` in the shader).
fn slot_names() -> Vec<String> {
    let mut names: Vec<String> = CLASS_SLOTS.iter().map(|s| s.to_string()).collect();
    for format in CAST_FORMATS {
        let f = format.name().to_ascii_uppercase();
        names.extend(CAST_KINDS.map(|kind| format!("{f}_{kind}")));
    }
    names
}

/// `count_casts(mag, &counts)`: the cast report's counts of one finite non-zero |x| (as f32
/// bits), one line per kind and format of `CAST_FORMATS`, with the thresholds of
/// `stats::cast_thresholds` that the header defines.
fn count_casts_function() -> String {
    let mut body = String::from(
        "fn count_casts(mag: u32, counts: ptr<function, array<u32, COUNT_SLOTS>>) {\n",
    );
    for format in CAST_FORMATS {
        let f = format.name().to_ascii_uppercase();
        body.push_str(&format!(
            "    (*counts)[SLOT_{f}_OVERFLOW] += select(0u, 1u, mag >= {f}_OVERFLOW);\n\
             \x20   (*counts)[SLOT_{f}_SUBNORMAL] += select(0u, 1u, mag > {f}_ZERO && mag < {f}_SUBNORMAL_BELOW);\n\
             \x20   (*counts)[SLOT_{f}_ZERO] += select(0u, 1u, mag <= {f}_ZERO);\n"
        ));
    }
    body.push_str("}\n");
    body
}

/// Histogram bins: one per biased exponent of f32 (0..=255); f16 uses the first 32. Each
/// thread of a workgroup owns one bin.
const HIST_BINS: usize = 256;
const _: () = assert!(HIST_BINS == THREADS);

/// The shader's `Record`, field for field (a test compares the two layouts through naga).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GpuRecord {
    pub counts: [u32; COUNT_SLOTS],
    pub min: f32,
    pub max: f32,
    pub abs_max: f32,
    pub scale_exp: i32,
    pub shift: f32,
    pub n: f32,
    pub mean: f32,
    pub m2: f32,
    pub hist: [u32; HIST_BINS],
    pub _pad: [u32; RECORD_PAD],
}

/// Padding words that make a record a multiple of 256 bytes, the largest storage-binding
/// offset alignment WebGPU allows: a tensor's records are then bound where they start. The
/// record's other words: the counts, eight scalars and the histogram.
const RECORD_ALIGNMENT: usize = 256;
const RECORD_PAD: usize = {
    let words = COUNT_SLOTS + 8 + HIST_BINS;
    (RECORD_ALIGNMENT / 4 - words % (RECORD_ALIGNMENT / 4)) % (RECORD_ALIGNMENT / 4)
};
const _: () = assert!(std::mem::size_of::<GpuRecord>().is_multiple_of(RECORD_ALIGNMENT));

impl GpuRecord {
    /// The count of a class slot (`CLASS_SLOTS`).
    fn count(&self, slot: &str) -> u64 {
        let i = CLASS_SLOTS
            .iter()
            .position(|s| *s == slot)
            .expect("a slot of CLASS_SLOTS");
        self.counts[i] as u64
    }

    /// The cast report's counts of the `index`th format of `CAST_FORMATS`.
    fn cast_counts(&self, index: usize) -> CastCounts {
        let at =
            |kind: usize| self.counts[CLASS_SLOTS.len() + CAST_KINDS.len() * index + kind] as u64;
        CastCounts {
            overflow: at(0),
            subnormal: at(1),
            zero: at(2),
        }
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

/// The formats the kernels read; the GPU backend reduces FP8 tensors (a quantised operand) on
/// the host (`backend::gpu::PendingStats::Host`).
pub const REDUCED_ON_DEVICE: [DType; 3] = [DType::F32, DType::F16, DType::Bf16];

/// The kernel of one entry point over data stored as `dtype`, read as raw words (no f16
/// arithmetic, so no `SHADER_F16`), each thread of a pass reading `per_thread` elements.
/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    dtype: DType,
    entry_point: &'static str,
    per_thread: usize,
    lanes: u32,
}

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.dtype, self.entry_point, self.per_thread, self.lanes)
    }
}

/// The subgroup lanes a kernel's trees are finished with (`LANES`, `Device::subgroup_lanes`),
/// in the naga test: none (workgroup memory alone), and the smallest subgroups of lavapipe,
/// Intel and NVIDIA / AMD.
pub const TESTED_LANES: [u32; 4] = [1, 8, 16, 32];

/// With `lanes` > 1, each workgroup tree's last log2(lanes) steps run in one subgroup's
/// registers (shaders/reduce_subgroup.wgsl), which needs `SUBGROUP`; with 1, the whole tree
/// runs in workgroup memory (shaders/reduce_tree.wgsl declares what the body names). Both
/// pair the same values in the same order, so they give the same bits.
pub fn kernel(
    dtype: DType,
    entry_point: &'static str,
    per_thread: usize,
    lanes: u32,
) -> KernelSource {
    assert!(
        lanes.is_power_of_two() && lanes as usize <= THREADS,
        "{lanes} lanes"
    );
    let mut header = Header::new()
        .constant_bool("F16_INPUT", dtype == DType::F16)
        .constant_bool("BF16_INPUT", dtype == DType::Bf16)
        .constant_u32("THREADS", THREADS as u32)
        .constant_u32("PER_THREAD", per_thread as u32)
        .constant_u32("HIST_BINS", HIST_BINS as u32)
        .constant_u32("RECORD_PAD", RECORD_PAD as u32)
        .constant_u32("COUNT_SLOTS", COUNT_SLOTS as u32)
        // f32::MAX is exactly an f64, so the shader's constant is exactly f32::MAX.
        .constant_float("LARGEST_FINITE", f32::MAX as f64);
    for (i, slot) in slot_names().iter().enumerate() {
        header = header.constant_u32(&format!("SLOT_{slot}"), i as u32);
    }
    for format in CAST_FORMATS {
        let (t, format) = (cast_thresholds(format), format.name().to_ascii_uppercase());
        header = header
            .constant_u32(&format!("{format}_OVERFLOW"), t.overflow)
            .constant_u32(&format!("{format}_ZERO"), t.zero)
            .constant_u32(&format!("{format}_SUBNORMAL_BELOW"), t.subnormal_below);
    }
    header = header
        .constant_u32("LANES", lanes)
        .function(&count_casts_function())
        .function(if lanes > 1 {
            include_str!("../../../shaders/reduce_subgroup.wgsl")
        } else {
            include_str!("../../../shaders/reduce_tree.wgsl")
        });
    KernelSource {
        file: "reduce.wgsl",
        body: include_str!("../../../shaders/reduce.wgsl"),
        header,
        entry_point,
    }
}

/// Every reduction kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    REDUCED_ON_DEVICE
        .into_iter()
        .flat_map(|d| {
            TESTED_LANES
                .into_iter()
                .flat_map(move |lanes| ENTRY_POINTS.map(|e| kernel(d, e, PER_THREAD, lanes)))
        })
        .collect()
}

/// A device buffer of records that statistics kernels write into.
#[derive(Debug)]
pub struct Block {
    buffer: wgpu::Buffer,
    capacity: usize,
}

/// Where queued records go: blocks of `BLOCK_RECORDS` records, filled in order. A block is
/// filled again from its start once no pending record refers to it, so a run that collects
/// its records after every pass uses the same block pass after pass.
#[derive(Debug, Default)]
pub struct RecordQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    current: Option<Arc<Block>>,
    used: usize,
    spare: Vec<Arc<Block>>,
}

impl RecordQueue {
    /// `segments` consecutive records in one block: `(block, first record)`.
    fn reserve(&self, gpu: &Device, segments: usize) -> Result<(Arc<Block>, usize)> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        if let Some(block) = &state.current {
            // Only the queue holds the block: every record in it was collected or dropped.
            if Arc::strong_count(block) == 1 {
                state.used = 0;
            }
            if state.used + segments <= block.capacity {
                let first = state.used;
                state.used += segments;
                return Ok((block.clone(), first));
            }
        }
        let free = state
            .spare
            .iter()
            .position(|b| Arc::strong_count(b) == 1 && b.capacity >= segments);
        let block = match free {
            Some(i) => state.spare.swap_remove(i),
            None => {
                let capacity = segments.max(BLOCK_RECORDS);
                let bytes = (capacity * std::mem::size_of::<GpuRecord>()) as u64;
                Arc::new(Block {
                    buffer: gpu.storage_buffer(bytes, "statistics records")?.buffer,
                    capacity,
                })
            }
        };
        if let Some(previous) = state.current.replace(block.clone()) {
            state.spare.push(previous);
        }
        state.used = segments;
        Ok((block, 0))
    }
}

/// The records of one tensor's segments, computed or being computed on the device.
#[derive(Debug)]
pub struct PendingRecords {
    block: Arc<Block>,
    first: usize,
    segments: usize,
    dtype: DType,
    len: usize,
}

/// Records the statistics of each of `segments` consecutive runs of `len` elements of `x`,
/// each thread of a pass reading `per_thread` elements, into records reserved in `queue`.
/// Nothing waits: the records come back with `collect`.
pub(crate) fn start(
    gpu: &Device,
    queue: &RecordQueue,
    x: &GpuTensor,
    segments: usize,
    len: usize,
    per_thread: usize,
) -> Result<PendingRecords> {
    if per_thread == 0 || per_thread > MAX_PER_THREAD {
        return Err(Error::InvalidArgument(format!(
            "a statistics thread reads 1 to {MAX_PER_THREAD} values, not {per_thread}"
        )));
    }
    if !REDUCED_ON_DEVICE.contains(&x.dtype) {
        return Err(Error::InvalidArgument(format!(
            "statistics of {} tensors are computed on the host",
            x.dtype
        )));
    }
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
    let pipeline = |entry_point| {
        gpu.pipeline(Key {
            dtype: x.dtype(),
            entry_point,
            per_thread,
            lanes: gpu.subgroup_lanes(),
        })
    };
    let pipelines = [pipeline(ENTRY_POINTS[0])?, pipeline(ENTRY_POINTS[1])?];
    let (block, first) = queue.reserve(gpu, segments)?;
    let partials = gpu.storage_buffer(partial_bytes, "statistics partials")?;
    let params = |grid: (u32, u32)| {
        gpu.uniform(&Params {
            len: len as u32,
            segments: segments as u32,
            chunks: chunks as u32,
            groups_x: grid.0,
        })
    };
    let (pass_params, combine_params) = (params(pass_grid), params(combine_grid));
    fn whole(b: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
        b.as_entire_buffer_binding()
    }
    let records = wgpu::BufferBinding {
        buffer: &block.buffer,
        offset: first as u64 * record_bytes,
        size: std::num::NonZeroU64::new(segments as u64 * record_bytes),
    };
    let recorded = gpu.dispatch_all(
        &[
            Dispatch {
                pipeline: &pipelines[0],
                buffers: &[
                    (0, whole(&x.buffer)),
                    (1, whole(&partials.buffer)),
                    (3, whole(&pass_params)),
                ],
                grid: pass_grid,
            },
            Dispatch {
                pipeline: &pipelines[1],
                buffers: &[
                    (1, whole(&partials.buffer)),
                    (2, records),
                    (3, whole(&combine_params)),
                ],
                grid: combine_grid,
            },
        ],
        "statistics",
    );
    // The scratch is free for any later command: they run after these two.
    gpu.pool.give_back(partials);
    recorded?;
    Ok(PendingRecords {
        block,
        first,
        segments,
        dtype: x.dtype(),
        len,
    })
}

/// The records of every pending tensor, in order (`segments` records each), in one read.
pub(crate) fn collect(gpu: &Device, pending: &[PendingRecords]) -> Result<Vec<StatsRecord>> {
    let record_bytes = std::mem::size_of::<GpuRecord>() as u64;
    // Neighbouring records of one block travel as one range.
    let mut ranges: Vec<(&wgpu::Buffer, u64, u64)> = Vec::new();
    let mut last: Option<(*const Block, usize)> = None;
    for p in pending {
        let (offset, size) = (
            p.first as u64 * record_bytes,
            p.segments as u64 * record_bytes,
        );
        match (last, ranges.last_mut()) {
            (Some((block, end)), Some(range))
                if block == Arc::as_ptr(&p.block) && end == p.first =>
            {
                range.2 += size
            }
            _ => ranges.push((&p.block.buffer, offset, size)),
        }
        last = Some((Arc::as_ptr(&p.block), p.first + p.segments));
    }
    let bytes = gpu.read_ranges(&ranges)?;
    // The bytes of a Vec<u8> need not be aligned for a record: each is read unaligned.
    let mut read = bytes.chunks_exact(record_bytes as usize);
    let mut records = Vec::new();
    for p in pending {
        for r in read.by_ref().take(p.segments) {
            records.push(stats_record(
                &bytemuck::pod_read_unaligned(r),
                p.dtype,
                p.len,
            ));
        }
    }
    Ok(records)
}

/// `v`, or 0 where rounding took it below 0; a NaN stays NaN (`f64::max` would make it 0,
/// and a device fault would then pass for a norm or a variance of 0).
fn non_negative(v: f64) -> f64 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
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
    let (mean, variance, min, max, abs_max, finite_norm) = if finite == 0 {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN, 0.0)
    } else {
        let scale = 2f64.powi(r.scale_exp);
        let n = finite as f64;
        let mean_scaled = r.shift as f64 + r.mean as f64;
        let m2 = r.m2 as f64;
        let sum_squares_scaled = non_negative(m2 + n * mean_scaled * mean_scaled);
        (
            mean_scaled * scale,
            non_negative(m2 / n) * scale * scale,
            r.min as f64,
            r.max as f64,
            r.abs_max as f64,
            sum_squares_scaled.sqrt() * scale,
        )
    };
    let l2_norm = l2_norm_of(
        finite_norm,
        r.count("NAN"),
        r.count("POS_INF") + r.count("NEG_INF"),
    );
    let cast = |format: Format| {
        let index = CAST_FORMATS.iter().position(|f| *f == format);
        r.cast_counts(index.expect("the cast report's formats are CAST_FORMATS"))
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
        cast: CastReport::from_fn(cast),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::assert_mirrors;
    use std::mem::{offset_of, size_of};

    #[test]
    fn a_nan_from_the_device_stays_nan_and_a_rounding_below_zero_becomes_zero() {
        let slot = |name: &str| CLASS_SLOTS.iter().position(|s| *s == name).unwrap();
        let mut r: GpuRecord = bytemuck::Zeroable::zeroed();
        r.counts[slot("FINITE")] = 2;
        r.m2 = f32::NAN;
        let s = stats_record(&r, DType::F32, 2);
        assert!(s.variance.is_nan() && s.l2_norm.is_nan());
        // A variance rounded a little below zero is zero; the norm of two zeros is zero.
        r.m2 = -1e-30;
        let s = stats_record(&r, DType::F32, 2);
        assert_eq!((s.variance, s.l2_norm), (0.0, 0.0));
    }

    #[test]
    fn the_host_structs_mirror_the_shader_structs() {
        let kernel = kernel(DType::F32, "chunk_pass", PER_THREAD, 1);
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
