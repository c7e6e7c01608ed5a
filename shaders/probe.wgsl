// What does this device really do at the edges of its number formats? Each output slot is one
// experiment on inputs that come from a buffer, so the compiler cannot fold them away.
//
// Template: the header (src/gpu/kernel.rs) defines `alias S` and `alias A`, both f32 or f16.
//   out[0] = in[0] * in[1]          tiny × tiny: a subnormal result, kept or flushed?
//   out[1] = in[2] * in[3]          subnormal × 1: a subnormal input, kept or flushed?
//   out[2] = fma(in[4], in[5], in[6])   the fma builtin: fused (one rounding) or not?
//   out[3] = in[4] * in[5] + in[6]      a plain a·b + c: contracted into an fma or not?
//   out[4] = in[7] * in[8]          largest finite × 2: inf, or saturated to the largest finite?
//   out[5] = max(in[9], in[10])     max(NaN, 1): does NaN survive?
//   out[6] = in[9] + in[10]         NaN + 1: does NaN survive arithmetic?

@group(0) @binding(0) var<storage, read> input: array<S>;
@group(0) @binding(1) var<storage, read_write> output: array<S>;

@compute @workgroup_size(1, 1, 1)
fn main() {
    output[0] = input[0] * input[1];
    output[1] = input[2] * input[3];
    output[2] = fma(input[4], input[5], input[6]);
    output[3] = input[4] * input[5] + input[6];
    output[4] = input[7] * input[8];
    output[5] = max(input[9], input[10]);
    output[6] = input[9] + input[10];
}
