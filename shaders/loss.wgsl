// The training losses, one thread per row of the network's output: the row's loss and the
// gradient of the mean loss (times the loss scale) with respect to that row.
//
// - `mse`: torch.nn.MSELoss (mean). d = out − y in the arithmetic type A, its square rounded
//   to A as PyTorch rounds each elementwise op, summed in f32; grad = d·coefficient with
//   coefficient = (2/numel)·scale, as MSELoss's backward computes it.
// - `cross_entropy`: torch.nn.CrossEntropyLoss (mean) on logits with integer labels, in f32
//   whatever the storage (PyTorch's log_softmax accumulates half in float too). The row's
//   maximum is subtracted before exp, so no exp overflows, in f16 storage or not; the loss
//   is log Σ exp(o − m) + m − o_label and the gradient (softmax − one-hot)·coefficient with
//   coefficient = scale/rows.
//
// Template: the header (src/ops/loss/gpu.rs) defines `alias S` (storage) and `alias A`
// (arithmetic). Targets are f32: values for MSE, labels (exact integers) for cross-entropy.

struct Params {
    rows: u32,
    cols: u32,
    groups_x: u32,
    coefficient: f32,
}

// Bindings 0 (output) and 2 (grad) come from the header: load_output, store_grad.
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn mse(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = folded_index(id, params.groups_x);
    if (r >= params.rows) {
        return;
    }
    let start = r * params.cols;
    var sum = 0.0;
    for (var j = 0u; j < params.cols; j = j + 1u) {
        let d = load_output(start + j) - A(targets[start + j]);
        let square = d * d;
        sum = sum + f32(square);
        store_grad(start + j, d * A(params.coefficient));
    }
    row_loss[r] = sum;
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn cross_entropy(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = folded_index(id, params.groups_x);
    if (r >= params.rows) {
        return;
    }
    let start = r * params.cols;
    let label = u32(targets[r]);
    var m = f32(load_output(start));
    for (var j = 1u; j < params.cols; j = j + 1u) {
        m = max(m, f32(load_output(start + j)));
    }
    var sum = 0.0;
    for (var j = 0u; j < params.cols; j = j + 1u) {
        sum = sum + exp(f32(load_output(start + j)) - m);
    }
    row_loss[r] = log(sum) + m - f32(load_output(start + label));
    for (var j = 0u; j < params.cols; j = j + 1u) {
        var p = exp(f32(load_output(start + j)) - m) / sum;
        if (j == label) {
            p = p - 1.0;
        }
        store_grad(start + j, A(p * params.coefficient));
    }
}
