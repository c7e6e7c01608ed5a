// One optimizer step of one parameter tensor, in place, with PyTorch's update rules
// (torch.optim.SGD, Adam, AdamW, single-tensor implementation), one thread per element.
//
// Template: the header (src/ops/optimizer/gpu.rs) defines `alias S` (the model's storage:
// its weights and gradients), `alias M` (the master weights and the optimizer state: f32,
// or f16 in pure f16) and `DECOUPLED_WEIGHT_DECAY` (AdamW). Every value is computed in f32
// and rounded to M where PyTorch's tensor op would store its result (`rm`): each op computes
// in f32 and rounds once, as PyTorch's half kernels do; in f32, `rm` changes nothing.
//
// The gradient arrives as backward left it: scaled by the loss scale. It is unscaled
// (times `grad_scale`), clamped (clip_grad_value_) and scaled by the clipping factor
// (clip_grad_norm_) first, as GradScaler.unscale_ and the clipping functions would do it.
// `delta` receives W_new − W_old in f32 (for ‖ΔW‖; a compiler may fold it to the update
// itself, which differs by the rounding of W_new), and `model` the new weights rounded to S
// where the master weights are f32 and the model's f16 (mixed precision).

struct Params {
    len: u32,
    groups_x: u32,
    flags: u32,
    _pad0: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    decoupled_decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    step_size: f32,
    bias_correction2_sqrt: f32,
    grad_scale: f32,
    clip_value: f32,
    clip_coefficient: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

const FIRST_STEP: u32 = 1u;
const NESTEROV: u32 = 2u;
const CLIP_VALUE: u32 = 4u;
const WRITE_MODEL: u32 = 8u;

// Bindings 0 (grad), 1 (param), 2 (first_moment), 3 (second_moment) and 4 (model) come
// from the header, as load_<name> and store_<name> in f32, and so does rm, the rounding to
// the master format.
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

fn has(flag: u32) -> bool {
    return (params.flags & flag) != 0u;
}

// The gradient unscaled and clipped, as the optimizer sees it.
fn unscaled_gradient(i: u32) -> f32 {
    var g = load_grad(i);
    if (params.grad_scale != 1.0) {
        g = rm(g * params.grad_scale);
    }
    if (has(CLIP_VALUE)) {
        g = clamp(g, -params.clip_value, params.clip_value);
    }
    if (params.clip_coefficient != 1.0) {
        g = rm(g * params.clip_coefficient);
    }
    return g;
}

fn store(i: u32, w_old: f32, w_new: f32) {
    store_param(i, w_new);
    delta[i] = w_new - w_old;
    if (has(WRITE_MODEL)) {
        store_model(i, w_new);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn sgd(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i >= params.len) {
        return;
    }
    let w = load_param(i);
    var g = unscaled_gradient(i);
    if (params.weight_decay != 0.0) {
        g = rm(g + params.weight_decay * w);
    }
    if (params.momentum != 0.0) {
        // buf = g on the first step, then buf·momentum + g (dampening 0).
        var buf = g;
        if (!has(FIRST_STEP)) {
            buf = rm(rm(load_first_moment(i) * params.momentum) + g);
        }
        store_first_moment(i, buf);
        if (has(NESTEROV)) {
            g = rm(g + params.momentum * buf);
        } else {
            g = buf;
        }
    }
    store(i, w, rm(w - params.lr * g));
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn adam(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i >= params.len) {
        return;
    }
    let w_old = load_param(i);
    var w = w_old;
    var g = unscaled_gradient(i);
    if (DECOUPLED_WEIGHT_DECAY) {
        // AdamW: param.mul_(1 − lr·weight_decay).
        if (params.weight_decay != 0.0) {
            w = rm(w * params.decoupled_decay);
        }
    } else if (params.weight_decay != 0.0) {
        g = rm(g + params.weight_decay * w);
    }
    // exp_avg.lerp_(grad, 1 − β1), with torch.lerp's two formulas.
    let m_old = load_first_moment(i);
    let weight = params.one_minus_beta1;
    var m: f32;
    if (abs(weight) < 0.5) {
        m = rm(m_old + weight * (g - m_old));
    } else {
        m = rm(g - (g - m_old) * (1.0 - weight));
    }
    // exp_avg_sq.mul_(β2).addcmul_(grad, grad, value = 1 − β2)
    let v = rm(rm(load_second_moment(i) * params.beta2) + params.one_minus_beta2 * g * g);
    store_first_moment(i, m);
    store_second_moment(i, v);
    // denom = exp_avg_sq.sqrt() / √(1 − β2^t) + eps; param.addcdiv_(exp_avg, denom, −lr/(1 − β1^t))
    let denom = rm(rm(rm(sqrt(v)) / params.bias_correction2_sqrt) + params.eps);
    store(i, w_old, rm(w + (-params.step_size) * (m / denom)));
}
