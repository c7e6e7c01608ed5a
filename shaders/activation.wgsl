// Activation functions and their derivatives, element by element.
//
// Template: the host prepends a header that defines
//   alias S    storage type (f32 or f16)
//   alias A    arithmetic type (f16 in pure half precision, f32 otherwise)
//   fn is_nan_bits(x: A) -> bool   NaN test on the raw bits
// Every value is converted S → A on load and A → S once on store.
//
// The formulas are chosen so that no intermediate overflows: exp only ever sees arguments ≤ 0,
// inputs are clamped to ±120 (where every function here is saturated in f32 and f16 alike), and
// NaN is detected from its bit pattern, since WGSL lets a compiler assume finite math and fold
// away `x != x`. The CPU backend (src/ops/activation/cpu.rs) evaluates the same formulas.

struct Params {
    len: u32,
    kind: u32,
    alpha: f32,
    beta: f32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> input: array<S>;
@group(0) @binding(1) var<storage, read_write> output: array<S>;
@group(0) @binding(2) var<uniform> params: Params;

const KIND_LINEAR: u32 = 0u;
const KIND_RELU: u32 = 1u;
const KIND_LEAKY_RELU: u32 = 2u;
const KIND_SIGMOID: u32 = 3u;
const KIND_TANH: u32 = 4u;
const KIND_SCALED_SIGMOID: u32 = 5u;

const CLAMP: f32 = 120.0;

fn clamped(x: A) -> A {
    return clamp(x, A(-CLAMP), A(CLAMP));
}

// 1 / (1 + e^-|x|) and e^-|x| / (1 + e^-|x|): sigmoid on the positive and negative side.
fn sigmoid(x: A) -> A {
    let xc = clamped(x);
    let e = exp(-abs(xc));
    let d = A(1) + e;
    if (xc >= A(0)) {
        return A(1) / d;
    }
    return e / d;
}

// σ'(x) = σ(x) σ(−x), accurate in both tails (1 − σ would cancel to 0 for large x).
fn sigmoid_derivative(x: A) -> A {
    let xc = clamped(x);
    let e = exp(-abs(xc));
    let d = A(1) + e;
    return (A(1) / d) * (e / d);
}

// tanh by an odd Taylor polynomial near 0 (relative accuracy where 1 − 2/(e^2x + 1) would
// cancel) and by (1 − e^-2|x|) / (1 + e^-2|x|) elsewhere, which saturates to exactly ±1.
fn tanh_small(x: A) -> A {
    let x2 = x * x;
    let p = A(-0.33333333333) + x2 * (A(0.13333333333) + x2 * (A(-0.053968253968) + x2 * A(0.021869488536)));
    return x + x * (x2 * p);
}

fn tanh_stable(x: A) -> A {
    let xc = clamped(x);
    let a = abs(xc);
    if (a < A(0.125)) {
        return tanh_small(xc);
    }
    let e = exp(A(-2) * a);
    let t = (A(1) - e) / (A(1) + e);
    return select(t, -t, xc < A(0));
}

// tanh'(x) = 1 − tanh² = 4 e^-2|x| / (1 + e^-2|x|)², without the cancellation of 1 − t².
fn tanh_derivative(x: A) -> A {
    let a = abs(clamped(x));
    let e = exp(A(-2) * a);
    let d = A(1) + e;
    return (A(4) * e) / (d * d);
}

fn forward_value(x: A) -> A {
    switch params.kind {
        case KIND_LINEAR: {
            return A(params.alpha) * x + A(params.beta);
        }
        case KIND_RELU: {
            return select(A(0), x, x > A(0));
        }
        case KIND_LEAKY_RELU: {
            return select(A(params.alpha) * x, x, x > A(0));
        }
        case KIND_SIGMOID: {
            return sigmoid(x);
        }
        case KIND_TANH: {
            return tanh_stable(x);
        }
        case KIND_SCALED_SIGMOID: {
            // 4σ(x) − 2 = 2 tanh(x/2), evaluated in the form that keeps relative accuracy at 0.
            return A(2) * tanh_stable(x * A(0.5));
        }
        default: {
            return x;
        }
    }
}

fn derivative_value(x: A) -> A {
    switch params.kind {
        case KIND_LINEAR: {
            return A(params.alpha);
        }
        case KIND_RELU: {
            // relu'(0) = 0, as in PyTorch.
            return select(A(0), A(1), x > A(0));
        }
        case KIND_LEAKY_RELU: {
            return select(A(params.alpha), A(1), x > A(0));
        }
        case KIND_SIGMOID: {
            return sigmoid_derivative(x);
        }
        case KIND_TANH: {
            return tanh_derivative(x);
        }
        case KIND_SCALED_SIGMOID: {
            return tanh_derivative(x * A(0.5));
        }
        default: {
            return A(1);
        }
    }
}

fn element_index(id: vec3<u32>) -> u32 {
    return id.y * (params.groups_x * 256u) + id.x;
}

@compute @workgroup_size(256, 1, 1)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = element_index(id);
    if (i >= params.len) {
        return;
    }
    let x = A(input[i]);
    if (is_nan_bits(x)) {
        output[i] = input[i];
        return;
    }
    output[i] = S(forward_value(x));
}

@compute @workgroup_size(256, 1, 1)
fn derivative(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = element_index(id);
    if (i >= params.len) {
        return;
    }
    let x = A(input[i]);
    if (is_nan_bits(x)) {
        output[i] = input[i];
        return;
    }
    output[i] = S(derivative_value(x));
}
