// Elementwise kernels of the backward pass: the Hadamard product (dZ = dH ⊙ act'(Z)),
// scaling (y = s·x), the update y += a·x, and clamping to [−s, s] (gradient clipping by value).
//
// Template: the header (src/ops/elementwise/gpu.rs) defines `alias S` (storage) and `alias A`
// (arithmetic). Values are converted S → A on load and A → S once on store.

struct Params {
    len: u32,
    groups_x: u32,
    scalar: f32,
    _pad: u32,
}

// Bindings 0 (x), 1 (y) and 2 (out) come from the header: load_x, load_y, store_out.
@group(0) @binding(3) var<uniform> params: Params;

// out = x ⊙ y
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn hadamard(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        store_out(i, load_x(i) * load_y(i));
    }
}

// out = scalar · x
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn scale(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        store_out(i, A(params.scalar) * load_x(i));
    }
}

// out = y + scalar · x (the product is rounded before the sum; a device may fuse the two,
// which the error bound of src/ops/elementwise/mod.rs allows).
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn axpy(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        let product = A(params.scalar) * load_x(i);
        store_out(i, load_y(i) + product);
    }
}

// out = clamp(x, −scalar, scalar); NaN stays NaN, as torch.clamp keeps it.
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn clamp_abs(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        let v = load_x(i);
        if (is_nan_bits(v)) {
            store_out(i, v);
        } else {
            store_out(i, clamp(v, -A(params.scalar), A(params.scalar)));
        }
    }
}
