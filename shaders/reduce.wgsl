// Statistics of a tensor, whole or per row ("segments" of `len` elements), in four kernels
// that run back to back in one submission:
//
//   extrema_pass      counts by numeric class, min, max, abs_max, exponent histogram and cast
//                     report, one partial record per workgroup
//   extrema_combine   one record per segment
//   moments_pass      Welford's mean and M2 of (x·2^-E − K) per thread, Chan's combination
//                     across the workgroup; E is the binary exponent of abs_max and K the
//                     centre (min + max)/2 in the same scale, so no square can overflow and
//                     the shift keeps E[x²] − E[x]² out of the picture
//   moments_combine   Chan's combination of the workgroups of each segment
//
// Template: the host prepends `const F16_INPUT: bool`. The data are read as raw u32 words and
// classified by their bits, never through float comparisons, which a compiler assuming finite
// math may fold away; f16 values are decoded exactly, so no f16 shader support is needed.

struct Params {
    len: u32,       // elements per segment
    segments: u32,
    chunks: u32,    // workgroups per segment in the passes
    groups_x: u32,  // grid row width (grids beyond 65535 workgroups fold into y)
}

struct Record {
    nan: u32,
    pos_inf: u32,
    neg_inf: u32,
    zero: u32,
    subnormal: u32,
    finite: u32,
    f16_overflow: u32,
    f16_subnormal: u32,
    f16_zero: u32,
    bf16_overflow: u32,
    bf16_subnormal: u32,
    bf16_zero: u32,
    min: f32,
    max: f32,
    abs_max: f32,
    scale_exp: i32,
    shift: f32,
    n: f32,
    mean: f32,
    m2: f32,
    // Normal values per biased exponent of the storage type (f16: 1..30, f32: 1..254).
    hist: array<u32, 256>,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read_write> partials: array<Record>;
@group(0) @binding(2) var<storage, read_write> records: array<Record>;
@group(0) @binding(3) var<uniform> params: Params;

const THREADS: u32 = 256u;
const PER_THREAD: u32 = 32u;
const CHUNK: u32 = 8192u; // THREADS * PER_THREAD

// Cast thresholds on |x| as f32 bits (src/stats.rs derives them).
const F16_OVERFLOW: u32 = 0x477FF000u;
const F16_ZERO: u32 = 0x33000000u;
const F16_SUBNORMAL_BELOW: u32 = 0x387FE000u;
const BF16_OVERFLOW: u32 = 0x7F7F8000u;
const BF16_ZERO: u32 = 0x00008000u;
const BF16_SUBNORMAL_BELOW: u32 = 0x007F8000u;

const CLASS_NAN: u32 = 0u;
const CLASS_POS_INF: u32 = 1u;
const CLASS_NEG_INF: u32 = 2u;
const CLASS_ZERO: u32 = 3u;
const CLASS_SUBNORMAL: u32 = 4u;
const CLASS_NORMAL: u32 = 5u;

var<workgroup> wg_counts: array<atomic<u32>, 12>;
var<workgroup> wg_hist: array<atomic<u32>, 256>;
var<workgroup> wg_a: array<f32, 256>;
var<workgroup> wg_b: array<f32, 256>;
var<workgroup> wg_c: array<f32, 256>;

fn storage_bits(i: u32) -> u32 {
    if (F16_INPUT) {
        return (data[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
    }
    return data[i];
}

struct Decoded {
    kind: u32,
    biased_exp: u32,
    value: f32, // exact; meaningful for finite classes
}

fn decode(bits: u32) -> Decoded {
    var d: Decoded;
    if (F16_INPUT) {
        let sign = bits >> 15u;
        let e = (bits >> 10u) & 0x1fu;
        let m = bits & 0x3ffu;
        d.biased_exp = e;
        if (e == 31u) {
            d.kind = select(select(CLASS_POS_INF, CLASS_NEG_INF, sign == 1u), CLASS_NAN, m != 0u);
            d.value = 0.0;
        } else if (e == 0u) {
            d.kind = select(CLASS_SUBNORMAL, CLASS_ZERO, m == 0u);
            // m · 2^-24 is exact in f32 (2^-24 is a normal f32).
            let v = f32(m) * 5.9604644775390625e-8;
            d.value = select(v, -v, sign == 1u);
        } else {
            d.kind = CLASS_NORMAL;
            d.value = bitcast<f32>((sign << 31u) | ((e + 112u) << 23u) | (m << 13u));
        }
    } else {
        let e = (bits >> 23u) & 0xffu;
        let m = bits & 0x7fffffu;
        d.biased_exp = e;
        d.value = bitcast<f32>(bits);
        if (e == 255u) {
            d.kind = select(select(CLASS_POS_INF, CLASS_NEG_INF, (bits >> 31u) == 1u), CLASS_NAN, m != 0u);
            d.value = 0.0;
        } else if (e == 0u) {
            d.kind = select(CLASS_SUBNORMAL, CLASS_ZERO, m == 0u);
        } else {
            d.kind = CLASS_NORMAL;
        }
    }
    return d;
}

fn is_finite_kind(c: u32) -> bool {
    return c >= CLASS_ZERO;
}

// The linear index of a workgroup in a folded grid.
fn workgroup_index(group: vec3<u32>) -> u32 {
    return group.y * params.groups_x + group.x;
}

// ---------------------------------------------------------------------------------------------

@compute @workgroup_size(256, 1, 1)
fn extrema_pass(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let wg = workgroup_index(group);
    if (wg >= params.segments * params.chunks) {
        return;
    }
    let segment = wg / params.chunks;
    let chunk = wg % params.chunks;
    if (t < 12u) {
        atomicStore(&wg_counts[t], 0u);
    }
    atomicStore(&wg_hist[t], 0u);
    workgroupBarrier();

    var counts: array<u32, 12>;
    var lo = 3.0e38;
    var hi = -3.0e38;
    var amax = 0.0;
    let start = chunk * CHUNK;
    for (var j = 0u; j < PER_THREAD; j++) {
        let offset = start + t + j * THREADS;
        if (offset >= params.len) {
            break;
        }
        let bits = storage_bits(segment * params.len + offset);
        let d = decode(bits);
        if (d.kind == CLASS_NORMAL) {
            atomicAdd(&wg_hist[d.biased_exp], 1u);
        } else {
            counts[d.kind] += 1u;
        }
        if (is_finite_kind(d.kind)) {
            counts[5] += 1u;
            lo = min(lo, d.value);
            hi = max(hi, d.value);
            amax = max(amax, abs(d.value));
            if (d.kind != CLASS_ZERO) {
                let mag = bitcast<u32>(abs(d.value));
                counts[6] += select(0u, 1u, mag >= F16_OVERFLOW);
                counts[7] += select(0u, 1u, mag > F16_ZERO && mag < F16_SUBNORMAL_BELOW);
                counts[8] += select(0u, 1u, mag <= F16_ZERO);
                counts[9] += select(0u, 1u, mag >= BF16_OVERFLOW);
                counts[10] += select(0u, 1u, mag > BF16_ZERO && mag < BF16_SUBNORMAL_BELOW);
                counts[11] += select(0u, 1u, mag <= BF16_ZERO);
            }
        }
    }
    for (var i = 0u; i < 12u; i++) {
        if (counts[i] != 0u) {
            atomicAdd(&wg_counts[i], counts[i]);
        }
    }
    wg_a[t] = lo;
    wg_b[t] = hi;
    wg_c[t] = amax;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) {
            wg_a[t] = min(wg_a[t], wg_a[t + stride]);
            wg_b[t] = max(wg_b[t], wg_b[t + stride]);
            wg_c[t] = max(wg_c[t], wg_c[t + stride]);
        }
        workgroupBarrier();
    }
    partials[wg].hist[t] = atomicLoad(&wg_hist[t]);
    if (t == 0u) {
        partials[wg].nan = atomicLoad(&wg_counts[0]);
        partials[wg].pos_inf = atomicLoad(&wg_counts[1]);
        partials[wg].neg_inf = atomicLoad(&wg_counts[2]);
        partials[wg].zero = atomicLoad(&wg_counts[3]);
        partials[wg].subnormal = atomicLoad(&wg_counts[4]);
        partials[wg].finite = atomicLoad(&wg_counts[5]);
        partials[wg].f16_overflow = atomicLoad(&wg_counts[6]);
        partials[wg].f16_subnormal = atomicLoad(&wg_counts[7]);
        partials[wg].f16_zero = atomicLoad(&wg_counts[8]);
        partials[wg].bf16_overflow = atomicLoad(&wg_counts[9]);
        partials[wg].bf16_subnormal = atomicLoad(&wg_counts[10]);
        partials[wg].bf16_zero = atomicLoad(&wg_counts[11]);
        partials[wg].min = wg_a[0];
        partials[wg].max = wg_b[0];
        partials[wg].abs_max = wg_c[0];
    }
}

@compute @workgroup_size(256, 1, 1)
fn extrema_combine(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let segment = workgroup_index(group);
    if (segment >= params.segments) {
        return;
    }
    let first = segment * params.chunks;
    // Thread t owns histogram bin t and sums it over the segment's partials, in order.
    var bin = 0u;
    var counts: array<u32, 12>;
    var lo = 3.0e38;
    var hi = -3.0e38;
    var amax = 0.0;
    for (var c = 0u; c < params.chunks; c++) {
        bin += partials[first + c].hist[t];
    }
    for (var c = t; c < params.chunks; c += THREADS) {
        let i = first + c;
        counts[0] += partials[i].nan;
        counts[1] += partials[i].pos_inf;
        counts[2] += partials[i].neg_inf;
        counts[3] += partials[i].zero;
        counts[4] += partials[i].subnormal;
        counts[5] += partials[i].finite;
        counts[6] += partials[i].f16_overflow;
        counts[7] += partials[i].f16_subnormal;
        counts[8] += partials[i].f16_zero;
        counts[9] += partials[i].bf16_overflow;
        counts[10] += partials[i].bf16_subnormal;
        counts[11] += partials[i].bf16_zero;
        lo = min(lo, partials[i].min);
        hi = max(hi, partials[i].max);
        amax = max(amax, partials[i].abs_max);
    }
    if (t < 12u) {
        atomicStore(&wg_counts[t], 0u);
    }
    atomicStore(&wg_hist[t], bin);
    workgroupBarrier();
    for (var i = 0u; i < 12u; i++) {
        if (counts[i] != 0u) {
            atomicAdd(&wg_counts[i], counts[i]);
        }
    }
    wg_a[t] = lo;
    wg_b[t] = hi;
    wg_c[t] = amax;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) {
            wg_a[t] = min(wg_a[t], wg_a[t + stride]);
            wg_b[t] = max(wg_b[t], wg_b[t + stride]);
            wg_c[t] = max(wg_c[t], wg_c[t + stride]);
        }
        workgroupBarrier();
    }
    records[segment].hist[t] = bin;
    if (t == 0u) {
        records[segment].nan = atomicLoad(&wg_counts[0]);
        records[segment].pos_inf = atomicLoad(&wg_counts[1]);
        records[segment].neg_inf = atomicLoad(&wg_counts[2]);
        records[segment].zero = atomicLoad(&wg_counts[3]);
        records[segment].subnormal = atomicLoad(&wg_counts[4]);
        records[segment].finite = atomicLoad(&wg_counts[5]);
        records[segment].f16_overflow = atomicLoad(&wg_counts[6]);
        records[segment].f16_subnormal = atomicLoad(&wg_counts[7]);
        records[segment].f16_zero = atomicLoad(&wg_counts[8]);
        records[segment].bf16_overflow = atomicLoad(&wg_counts[9]);
        records[segment].bf16_subnormal = atomicLoad(&wg_counts[10]);
        records[segment].bf16_zero = atomicLoad(&wg_counts[11]);
        records[segment].min = wg_a[0];
        records[segment].max = wg_b[0];
        records[segment].abs_max = wg_c[0];
        // The scale 2^E with |x|·2^-E < 2 and the shift K at the centre of [min, max].
        var e = 0;
        if (wg_c[0] > 0.0) {
            e = frexp(wg_c[0]).exp;
        }
        records[segment].scale_exp = e;
        records[segment].shift = 0.5 * ldexp(wg_a[0], -e) + 0.5 * ldexp(wg_b[0], -e);
    }
}

// ---------------------------------------------------------------------------------------------

// Chan, Golub and LeVeque: the mean and M2 of two disjoint sets from theirs.
fn chan_combine(t: u32, other: u32) {
    let na = wg_a[t];
    let nb = wg_a[other];
    let n = na + nb;
    if (nb == 0.0) {
        return;
    }
    let delta = wg_b[other] - wg_b[t];
    wg_b[t] = wg_b[t] + delta * (nb / n);
    wg_c[t] = wg_c[t] + wg_c[other] + delta * delta * (na * (nb / n));
    wg_a[t] = n;
}

@compute @workgroup_size(256, 1, 1)
fn moments_pass(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let wg = workgroup_index(group);
    if (wg >= params.segments * params.chunks) {
        return;
    }
    let segment = wg / params.chunks;
    let chunk = wg % params.chunks;
    let e = records[segment].scale_exp;
    let shift = records[segment].shift;
    // Welford within the thread, on x·2^-E − K (|·| < 4).
    var n = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    let start = chunk * CHUNK;
    for (var j = 0u; j < PER_THREAD; j++) {
        let offset = start + t + j * THREADS;
        if (offset >= params.len) {
            break;
        }
        let d = decode(storage_bits(segment * params.len + offset));
        if (is_finite_kind(d.kind)) {
            let x = ldexp(d.value, -e) - shift;
            n += 1.0;
            let delta = x - mean;
            mean += delta / n;
            m2 += delta * (x - mean);
        }
    }
    wg_a[t] = n;
    wg_b[t] = mean;
    wg_c[t] = m2;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) {
            chan_combine(t, t + stride);
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        partials[wg].n = wg_a[0];
        partials[wg].mean = wg_b[0];
        partials[wg].m2 = wg_c[0];
    }
}

@compute @workgroup_size(256, 1, 1)
fn moments_combine(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let segment = workgroup_index(group);
    if (segment >= params.segments) {
        return;
    }
    let first = segment * params.chunks;
    wg_a[t] = 0.0;
    wg_b[t] = 0.0;
    wg_c[t] = 0.0;
    // Thread t folds partials t, t + 256, … in order, then the tree combines the threads.
    for (var c = t; c < params.chunks; c += THREADS) {
        let nb = partials[first + c].n;
        let na = wg_a[t];
        let n = na + nb;
        if (nb > 0.0) {
            let delta = partials[first + c].mean - wg_b[t];
            wg_b[t] = wg_b[t] + delta * (nb / n);
            wg_c[t] = wg_c[t] + partials[first + c].m2 + delta * delta * (na * (nb / n));
            wg_a[t] = n;
        }
    }
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) {
            chan_combine(t, t + stride);
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        records[segment].n = wg_a[0];
        records[segment].mean = wg_b[0];
        records[segment].m2 = wg_c[0];
    }
}
