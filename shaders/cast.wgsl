// A cast to a packed format (bf16, FP8), value by value.
//
// Template: the header (src/ops/cast/gpu.rs) defines bindings 0 (input, read through
// load_input as f32) and 1 (output, written through store_output_bits), and
// `cast_bits(x: f32) -> u32`, the generated encoder of the target format (round to nearest
// even; the format's overflow rule, or saturating for FP8 quantisation).

struct Params {
    len: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn cast_values(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        store_output_bits(i, cast_bits(load_input(i)));
    }
}
