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

@group(0) @binding(0) var<storage, read> x: array<S>;
@group(0) @binding(1) var<storage, read> y: array<S>;
@group(0) @binding(2) var<storage, read_write> out: array<S>;
@group(0) @binding(3) var<uniform> params: Params;

// out = x ⊙ y
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn hadamard(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        out[i] = S(A(x[i]) * A(y[i]));
    }
}

// out = scalar · x
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn scale(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        out[i] = S(A(params.scalar) * A(x[i]));
    }
}

// out = y + scalar · x (the product is rounded before the sum; a device may fuse the two,
// which the error bound of src/ops/elementwise/mod.rs allows).
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn axpy(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        let product = A(params.scalar) * A(x[i]);
        out[i] = S(A(y[i]) + product);
    }
}

// out = clamp(x, −scalar, scalar); NaN stays NaN, as torch.clamp keeps it.
@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn clamp_abs(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        let v = A(x[i]);
        if (is_nan_bits(v)) {
            out[i] = x[i];
        } else {
            out[i] = S(clamp(v, -A(params.scalar), A(params.scalar)));
        }
    }
}
