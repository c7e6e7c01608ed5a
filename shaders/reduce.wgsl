// Statistics of a tensor, whole or per row ("segments" of `len` elements), in two kernels
// that read the data once:
//
//   chunk_pass        each workgroup reads its chunk of PER_THREAD · THREADS values once, into
//                     registers: counts by numeric class, min, max, abs_max, exponent histogram
//                     and cast report; then, from the chunk's own extrema, a scale 2^E (the
//                     binary exponent of abs_max) and a shift K (the centre of [min, max] in that
//                     scale), and Welford's mean and M2 of x·2^-E − K over the registers, with
//                     Chan's combination across the workgroup. No square can overflow, and the
//                     shift keeps E[x²] − E[x]² out of the picture.
//   segment_combine   one record per segment: the counts and extrema of its chunks, then each
//                     chunk's moments moved to the segment's scale and shift (a power of two,
//                     exact, and one subtraction of shifts) and combined by Chan's formula.
//                     `records` is bound at the tensor's place in a block of records, so the
//                     records of many tensors gather in one buffer and come back in one read.
//
// A segment of one chunk gets exactly the two-pass result: its chunk's E and K are the
// segment's, and the combine moves nothing.
//
// Template: the header (src/ops/reduce/gpu.rs) defines
//   F16_INPUT, BF16_INPUT: bool          the data are f16, bf16 (else f32)
//   THREADS, PER_THREAD                  threads per workgroup, elements per thread
//   COUNT_SLOTS, SLOT_NAN … SLOT_FINITE   the slots of Record.counts (then three per format
//                                        of the cast report)
//   HIST_BINS                            bins of Record.hist (one per biased exponent)
//   count_casts(mag, &counts)            the cast report's counts of one |x| (as f32 bits), one
//                                        line per format, its thresholds from src/stats.rs
//   LARGEST_FINITE                       f32::MAX, exactly: where min and max start
//   LANES                                lanes of the subgroup that finishes each workgroup
//                                        tree (1: the tree runs in workgroup memory alone)
//   struct Invocation, extrema_in_subgroup, chan_in_subgroup
//                                        the subgroup path (shaders/reduce_subgroup.wgsl),
//                                        or what stands for it without subgroups
//                                        (shaders/reduce_tree.wgsl)
// The data are read as raw u32 words and classified by their bits, never through float
// comparisons, which a compiler assuming finite math may fold away; f16 values are decoded
// exactly, so no f16 shader support is needed.

struct Params {
    len: u32,           // elements per segment
    segments: u32,
    chunks: u32,        // workgroups per segment in chunk_pass
    groups_x: u32,      // grid row width (grids beyond 65535 workgroups fold into y)
}

// Mirrored by `GpuRecord` in src/ops/reduce/gpu.rs; a test compares the two layouts.
struct Record {
    counts: array<u32, COUNT_SLOTS>,
    min: f32,
    max: f32,
    abs_max: f32,
    scale_exp: i32,
    shift: f32,
    n: f32,
    mean: f32,
    m2: f32,
    // Normal values per biased exponent of the storage type (f16: 1..30, f32: 1..254).
    hist: array<u32, HIST_BINS>,
    // To a multiple of 256 bytes, so that a run of records can be bound at any record.
    _pad: array<u32, RECORD_PAD>,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read_write> partials: array<Record>;
@group(0) @binding(2) var<storage, read_write> records: array<Record>;
@group(0) @binding(3) var<uniform> params: Params;

const CHUNK: u32 = THREADS * PER_THREAD;
// The kind of a normal value, which the histogram counts instead of a slot.
const KIND_NORMAL: u32 = 0xffffffffu;

var<workgroup> wg_counts: array<atomic<u32>, COUNT_SLOTS>;
var<workgroup> wg_hist: array<atomic<u32>, HIST_BINS>;
var<workgroup> wg_a: array<f32, THREADS>;
var<workgroup> wg_b: array<f32, THREADS>;
var<workgroup> wg_c: array<f32, THREADS>;

// The bits of value i; a bf16 is the top half of the f32 it widens to, exactly, and is
// classified as that f32 (the two share the exponent field).
fn storage_bits(i: u32) -> u32 {
    if (F16_INPUT || BF16_INPUT) {
        let half = (data[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
        return select(half, half << 16u, BF16_INPUT);
    }
    return data[i];
}

struct Decoded {
    kind: u32,      // SLOT_NAN, SLOT_POS_INF, SLOT_NEG_INF, SLOT_ZERO, SLOT_SUBNORMAL or KIND_NORMAL
    biased_exp: u32,
    value: f32,     // exact; meaningful for finite kinds
}

fn special_kind(exponent_all_ones: bool, exponent_zero: bool, mantissa: u32, negative: bool) -> u32 {
    if (exponent_all_ones) {
        return select(select(SLOT_POS_INF, SLOT_NEG_INF, negative), SLOT_NAN, mantissa != 0u);
    }
    if (exponent_zero) {
        return select(SLOT_SUBNORMAL, SLOT_ZERO, mantissa == 0u);
    }
    return KIND_NORMAL;
}

fn decode(bits: u32) -> Decoded {
    var d: Decoded;
    if (F16_INPUT) {
        let sign = bits >> 15u;
        let e = (bits >> 10u) & 0x1fu;
        let m = bits & 0x3ffu;
        d.biased_exp = e;
        d.kind = special_kind(e == 31u, e == 0u, m, sign == 1u);
        if (e == 0u) {
            // m · 2^-24 is exact in f32 (2^-24 is a normal f32).
            let v = f32(m) * 5.9604644775390625e-8;
            d.value = select(v, -v, sign == 1u);
        } else if (e != 31u) {
            d.value = bitcast<f32>((sign << 31u) | ((e + 112u) << 23u) | (m << 13u));
        }
    } else {
        let e = (bits >> 23u) & 0xffu;
        let m = bits & 0x7fffffu;
        d.biased_exp = e;
        d.kind = special_kind(e == 255u, e == 0u, m, (bits >> 31u) == 1u);
        if (e != 255u) {
            d.value = bitcast<f32>(bits);
        }
    }
    return d;
}

fn is_finite_kind(kind: u32) -> bool {
    return kind == KIND_NORMAL || kind == SLOT_ZERO || kind == SLOT_SUBNORMAL;
}

// The linear index of a workgroup in a folded grid.
fn workgroup_index(group: vec3<u32>) -> u32 {
    return group.y * params.groups_x + group.x;
}

// Adds one thread's counts and extrema to the workgroup's, then reduces the extrema to
// wg_a[0] (min), wg_b[0] (max) and wg_c[0] (abs_max): a tree whose step of stride s combines
// elements t and t + s into t, its last log2(LANES) steps in a subgroup's registers. wg_counts
// must have been zeroed, and a barrier passed, before the call.
fn workgroup_reduce(inv: Invocation, counts: array<u32, COUNT_SLOTS>, lo: f32, hi: f32, amax: f32) {
    let t = inv.t;
    for (var i = 0u; i < COUNT_SLOTS; i++) {
        if (counts[i] != 0u) {
            atomicAdd(&wg_counts[i], counts[i]);
        }
    }
    wg_a[t] = lo;
    wg_b[t] = hi;
    wg_c[t] = amax;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride >= LANES; stride /= 2u) {
        if (t < stride) {
            wg_a[t] = min(wg_a[t], wg_a[t + stride]);
            wg_b[t] = max(wg_b[t], wg_b[t + stride]);
            wg_c[t] = max(wg_c[t], wg_c[t + stride]);
        }
        workgroupBarrier();
    }
    if (LANES > 1u) {
        extrema_in_subgroup(inv);
        workgroupBarrier();
    }
}

// The scale exponent E with |x|·2^-E < 1 for every |x| ≤ amax, and the shift K at the
// centre of [lo, hi] in that scale. A compiler may factor the common 2^-E out of a sum of
// scaled terms (lavapipe computes ldexp(lo, -E)/2 + ldexp(hi, -E)/2 as (lo + hi)·2^-E/2,
// which is inf for lo, hi ≥ 2^127), so K adds the extremes only where their signs differ,
// and otherwise halves their difference: neither sum can overflow in any grouping.
fn scale_and_shift(lo: f32, hi: f32, amax: f32) -> vec2<f32> {
    var e = 0;
    if (amax > 0.0) {
        e = frexp(amax).exp;
    }
    let lo_s = ldexp(lo, -e);
    let hi_s = ldexp(hi, -e);
    let straddles = lo <= 0.0 && hi >= 0.0;
    return vec2<f32>(f32(e), select(lo_s + 0.5 * (hi_s - lo_s), 0.5 * lo_s + 0.5 * hi_s, straddles));
}

// Chan, Golub and LeVeque: (n, mean, M2) of two disjoint sets from theirs.
fn chan(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    if (b.x == 0.0) {
        return a;
    }
    let n = a.x + b.x;
    let delta = b.y - a.y;
    return vec3<f32>(n, a.y + delta * (b.x / n), a.z + b.z + delta * delta * (a.x * (b.x / n)));
}

// Reduces the threads' (wg_a, wg_b, wg_c) = (n, mean, M2) to element 0 by a tree of chan(),
// paired as workgroup_reduce's, its last log2(LANES) steps in a subgroup's registers.
fn workgroup_chan(inv: Invocation) {
    let t = inv.t;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride >= LANES; stride /= 2u) {
        if (t < stride) {
            let r = chan(vec3<f32>(wg_a[t], wg_b[t], wg_c[t]),
                         vec3<f32>(wg_a[t + stride], wg_b[t + stride], wg_c[t + stride]));
            wg_a[t] = r.x;
            wg_b[t] = r.y;
            wg_c[t] = r.z;
        }
        workgroupBarrier();
    }
    if (LANES > 1u) {
        chan_in_subgroup(inv);
        workgroupBarrier();
    }
}

// ---------------------------------------------------------------------------------------------

@compute @workgroup_size(THREADS, 1, 1)
fn chunk_pass(@builtin(workgroup_id) group: vec3<u32>, inv: Invocation) {
    let t = inv.t;
    let wg = workgroup_index(group);
    // Every thread of a workgroup takes the same branch: the barriers below stay uniform.
    if (wg >= params.segments * params.chunks) {
        return;
    }
    let segment = wg / params.chunks;
    let chunk = wg % params.chunks;
    if (t < COUNT_SLOTS) {
        atomicStore(&wg_counts[t], 0u);
    }
    atomicStore(&wg_hist[t], 0u);
    workgroupBarrier();

    // The thread's values, read once; bit j of `finite` says whether values[j] is one.
    var values: array<f32, PER_THREAD>;
    var finite = 0u;
    var counts: array<u32, COUNT_SLOTS>;
    // ±f32::MAX are the exact identities of min and max over finite values, which are all
    // they see (a thread, chunk or segment without one keeps them, and the host reads its
    // extrema as NaN from the count of finite values). Not ±inf: WGSL forbids a constant
    // expression that evaluates to inf, and a compiler assuming finite math may fold it. Nor
    // a round number below f32::MAX: 3.0e38 once reported itself as the minimum of values
    // above it.
    var lo: f32 = LARGEST_FINITE;
    var hi: f32 = -LARGEST_FINITE;
    var amax = 0.0;
    let start = chunk * CHUNK;
    // A loop of constant length (no early exit) lets the compiler unroll it and keep
    // `values` in registers.
    for (var j = 0u; j < PER_THREAD; j++) {
        let offset = start + t + j * THREADS;
        if (offset >= params.len) {
            continue;
        }
        let d = decode(storage_bits(segment * params.len + offset));
        if (d.kind == KIND_NORMAL) {
            atomicAdd(&wg_hist[d.biased_exp], 1u);
        } else {
            counts[d.kind] += 1u;
        }
        if (is_finite_kind(d.kind)) {
            values[j] = d.value;
            finite |= 1u << j;
            counts[SLOT_FINITE] += 1u;
            lo = min(lo, d.value);
            hi = max(hi, d.value);
            amax = max(amax, abs(d.value));
            if (d.kind != SLOT_ZERO) {
                count_casts(bitcast<u32>(abs(d.value)), &counts);
            }
        }
    }
    workgroup_reduce(inv, counts, lo, hi, amax);
    let chunk_lo = wg_a[0];
    let chunk_hi = wg_b[0];
    let chunk_amax = wg_c[0];
    partials[wg].hist[t] = atomicLoad(&wg_hist[t]);
    if (t < COUNT_SLOTS) {
        partials[wg].counts[t] = atomicLoad(&wg_counts[t]);
    }
    let scaled = scale_and_shift(chunk_lo, chunk_hi, chunk_amax);
    let e = i32(scaled.x);
    let shift = scaled.y;
    // Every thread has read the extrema before any overwrites them.
    workgroupBarrier();

    // Welford within the thread, on x·2^-E − K (|·| < 2).
    var n = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        if ((finite & (1u << j)) != 0u) {
            let x = ldexp(values[j], -e) - shift;
            n += 1.0;
            let delta = x - mean;
            mean += delta / n;
            m2 += delta * (x - mean);
        }
    }
    wg_a[t] = n;
    wg_b[t] = mean;
    wg_c[t] = m2;
    workgroup_chan(inv);
    if (t == 0u) {
        partials[wg].min = chunk_lo;
        partials[wg].max = chunk_hi;
        partials[wg].abs_max = chunk_amax;
        partials[wg].scale_exp = e;
        partials[wg].shift = shift;
        partials[wg].n = wg_a[0];
        partials[wg].mean = wg_b[0];
        partials[wg].m2 = wg_c[0];
    }
}

@compute @workgroup_size(THREADS, 1, 1)
fn segment_combine(@builtin(workgroup_id) group: vec3<u32>, inv: Invocation) {
    let t = inv.t;
    let segment = workgroup_index(group);
    if (segment >= params.segments) {
        return;
    }
    let first = segment * params.chunks;
    let out = segment;
    if (t < COUNT_SLOTS) {
        atomicStore(&wg_counts[t], 0u);
    }
    workgroupBarrier();
    // Thread t owns histogram bin t and sums it over the segment's partials, in order; it
    // also folds partials t, t + THREADS, … into its counts and extrema.
    var bin = 0u;
    for (var c = 0u; c < params.chunks; c++) {
        bin += partials[first + c].hist[t];
    }
    var counts: array<u32, COUNT_SLOTS>;
    var lo: f32 = LARGEST_FINITE;
    var hi: f32 = -LARGEST_FINITE;
    var amax = 0.0;
    for (var c = t; c < params.chunks; c += THREADS) {
        let i = first + c;
        for (var s = 0u; s < COUNT_SLOTS; s++) {
            counts[s] += partials[i].counts[s];
        }
        lo = min(lo, partials[i].min);
        hi = max(hi, partials[i].max);
        amax = max(amax, partials[i].abs_max);
    }
    workgroup_reduce(inv, counts, lo, hi, amax);
    let segment_lo = wg_a[0];
    let segment_hi = wg_b[0];
    let segment_amax = wg_c[0];
    records[out].hist[t] = bin;
    if (t < COUNT_SLOTS) {
        records[out].counts[t] = atomicLoad(&wg_counts[t]);
    }
    let scaled = scale_and_shift(segment_lo, segment_hi, segment_amax);
    let e = i32(scaled.x);
    let shift = scaled.y;
    workgroupBarrier();

    // Each chunk's moments in the segment's scale and shift: 2^(E_c − E) ≤ 1 is exact (short
    // of the subnormal floor), the shift moves by one rounded subtraction.
    var acc = vec3<f32>(0.0, 0.0, 0.0);
    for (var c = t; c < params.chunks; c += THREADS) {
        let i = first + c;
        let n = partials[i].n;
        if (n > 0.0) {
            let f = partials[i].scale_exp - e;
            let mean = (ldexp(partials[i].shift, f) - shift) + ldexp(partials[i].mean, f);
            acc = chan(acc, vec3<f32>(n, mean, ldexp(partials[i].m2, 2 * f)));
        }
    }
    wg_a[t] = acc.x;
    wg_b[t] = acc.y;
    wg_c[t] = acc.z;
    workgroup_chan(inv);
    if (t == 0u) {
        records[out].min = segment_lo;
        records[out].max = segment_hi;
        records[out].abs_max = segment_amax;
        records[out].scale_exp = e;
        records[out].shift = shift;
        records[out].n = wg_a[0];
        records[out].mean = wg_b[0];
        records[out].m2 = wg_c[0];
    }
}
