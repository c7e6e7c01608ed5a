// The device's own roofline: peak multiply-add throughput and copy bandwidth, measured rather
// than taken from a data sheet.
//
// Template: the header (src/gpu/kernel.rs) defines `alias S` and `alias A`, both f32 or f16.
//   fma_peak  every thread runs 4 independent chains of vec4 fma for `iterations` steps:
//             32 floating-point operations per step, enough independent work to fill the
//             pipelines; the result goes to `sink` so nothing is dead code
//   copy      dst = src in vec4<f32> words: 32 bytes moved per word

struct Params {
    iterations: u32,
    len: u32,
    groups_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read_write> sink: array<vec4<S>>;

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn fma_peak(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    // Contracting towards 1: a ← a·0.999 + 0.001 never overflows or turns subnormal.
    let x = vec4<S>(S(0.999));
    let y = vec4<S>(S(0.001));
    let seed = S(f32(i % 1024u) * 0.0009765625);
    var a0 = vec4<S>(seed);
    var a1 = vec4<S>(seed + S(0.25));
    var a2 = vec4<S>(seed + S(0.5));
    var a3 = vec4<S>(seed + S(0.75));
    for (var it = 0u; it < params.iterations; it++) {
        a0 = fma(a0, x, y);
        a1 = fma(a1, x, y);
        a2 = fma(a2, x, y);
        a3 = fma(a3, x, y);
    }
    if (i < params.len) {
        sink[i] = a0 + a1 + a2 + a3;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn copy(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        dst[i] = src[i];
    }
}
