// Activation functions and their derivatives, element by element.
//
// Template: the header (src/ops/activation/gpu.rs) defines
//   alias S    storage type (f32 or f16)
//   alias A    arithmetic type (f16 in pure half precision, f32 otherwise)
//   fn is_nan_bits(x: A) -> bool   NaN test on the raw bits
//   KIND_LINEAR … KIND_SCALED_SIGMOID   the kind codes of src/ops/activation/mod.rs
//   INPUT_CLAMP, TANH_POLYNOMIAL_BELOW, TANH_C3 … TANH_C9   the constants the CPU reference uses
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

// Bindings 0 (input) and 1 (output) come from the header: load_input, store_output.
@group(0) @binding(2) var<uniform> params: Params;

fn clamped(x: A) -> A {
    return clamp(x, A(-INPUT_CLAMP), A(INPUT_CLAMP));
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
    let p = A(TANH_C3) + x2 * (A(TANH_C5) + x2 * (A(TANH_C7) + x2 * A(TANH_C9)));
    return x + x * (x2 * p);
}

fn tanh_stable(x: A) -> A {
    let xc = clamped(x);
    let a = abs(xc);
    if (a < A(TANH_POLYNOMIAL_BELOW)) {
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

// act or act' of element i; a NaN input is passed through with its bits.
fn apply(i: u32, derivative: bool) {
    let x = load_input(i);
    if (is_nan_bits(x)) {
        store_output(i, x);
    } else if (derivative) {
        store_output(i, derivative_value(x));
    } else {
        store_output(i, forward_value(x));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        apply(i, false);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn derivative(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = folded_index(id, params.groups_x);
    if (i < params.len) {
        apply(i, true);
    }
}
