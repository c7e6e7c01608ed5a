//! WGSL for the formats WGSL lacks (bf16, FP8), generated from their rows of the format
//! table: exact casts on the bits, and tensor bindings that store them packed in `u32` words.
//!
//! A kernel names each tensor it touches with [`Header::tensor`](super::kernel::Header): the
//! header declares the binding and writes `load_<name>(i)` and `store_<name>(i, v)`, so one
//! shader body serves every format. Natively held formats (f32, f16) are plain arrays. Packed
//! formats read through a word and a shift; since neighbouring values share a word, which
//! neighbouring threads may write at once, a store clears and sets its own bits with two
//! atomic operations on disjoint bits, which commute.

use crate::format::{Format, NanEncoding};

/// Whether a binding is only read, or also written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

/// The function names of a packed format's casts: `decode_<name>`, `encode_<name>`,
/// `encode_<name>_saturating`.
pub(crate) fn suffix(format: Format) -> String {
    format.name().to_ascii_lowercase()
}

/// The name of the generated encoder of `format`: `encode_<f>`, or `encode_<f>_saturating`.
pub fn encoder(format: Format, saturating: bool) -> String {
    let f = suffix(format);
    if saturating {
        format!("encode_{f}_saturating")
    } else {
        format!("encode_{f}")
    }
}

/// `decode_<f>(bits) -> f32` (exact), `encode_<f>(x: f32) -> u32` (round to nearest even,
/// overflow and inf as the table says: `FormatSpec::overflow_bits`) and `encode_<f>_saturating(x: f32) -> u32` (overflow and inf to
/// the largest finite), for a format WGSL lacks. The same integer steps as
/// `FormatSpec::round_to_bits`, specialised to an f32 input.
pub fn casts(format: Format) -> String {
    let spec = format.spec();
    let f = suffix(format);
    let m = spec.mantissa_bits;
    let sign_shift = spec.exponent_bits + spec.mantissa_bits;
    let magnitude_mask = (1u32 << sign_shift) - 1;
    let min_exponent = spec.min_exponent();
    // Exact: the midpoint has one bit more than the format's significand.
    let overflow_bits = (spec.overflow_midpoint() as f32).to_bits();
    let max_finite = spec.max_finite_bits() as u32;
    let nan = spec.nan_bits() as u32;
    // Inf (0x7f800000) is above the finite midpoint, so the overflow branch below casts it
    // too: that is right where the row sends ±inf where it sends an overflow (inf to inf,
    // inf to NaN without an inf, inf to the largest finite when saturating).
    assert!(overflow_bits < 0x7f80_0000 && spec.inf_cast_bits() == spec.overflow_bits());
    let overflow_result = spec.overflow_bits() as u32;
    let is_nan = match spec.nan {
        NanEncoding::Ieee => format!(
            "(mag >> {m}u) == {}u && (mag & {}u) != 0u",
            (1u32 << spec.exponent_bits) - 1,
            (1u32 << m) - 1
        ),
        NanEncoding::AllOnes => format!("mag == {nan}u"),
    };
    let inf_check = match spec.inf_bits() {
        Some(inf) => format!(
            "    if (mag == {inf}u) {{\n        return bitcast<f32>(sign | 0x7f800000u);\n    }}\n"
        ),
        None => String::new(),
    };
    // A subnormal: with f32's exponent range (bf16) the bits carry over; otherwise the
    // mantissa times the smallest subnormal, a normal f32, exactly.
    let subnormal = if spec.bias == 127 {
        format!("bitcast<f32>(sign | (mant << {}u))", 23 - m)
    } else {
        format!(
            "bitcast<f32>(sign | bitcast<u32>(f32(mant) * {:?}))",
            spec.min_subnormal()
        )
    };
    let encode = |name: &str, overflow: u32| {
        format!(
            "fn {name}(x: f32) -> u32 {{
    let b = bitcast<u32>(x);
    let sign = (b >> 31u) << {sign_shift}u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) {{
        return sign | {nan}u;
    }}
    if (a > {overflow_bits}u || (a == {overflow_bits}u && {at_midpoint})) {{
        return sign | {overflow}u;
    }}
    let field = a >> 23u;
    let e = i32(max(field, 1u)) - 127;
    let mant = (a & 0x7fffffu) | select(0x800000u, 0u, field == 0u);
    let below = u32(max({min_exponent} - e, 0));
    let units = round_shift(mant, {shift}u + below);
    return sign | ((u32(max(e - {min_exponent}, 0)) << {m}u) + units);
}}
",
            at_midpoint = spec.overflows_at_midpoint(),
            shift = 23 - m,
        )
    };
    format!(
        "// {name}: {e} exponent bits, {m} mantissa bits, bias {bias} (src/format.rs).
fn decode_{f}(bits: u32) -> f32 {{
    let sign = ((bits >> {sign_shift}u) & 1u) << 31u;
    let mag = bits & {magnitude_mask}u;
    if ({is_nan}) {{
        return bitcast<f32>(sign | 0x7fc00000u);
    }}
{inf_check}    let field = mag >> {m}u;
    let mant = mag & {mantissa_mask}u;
    if (field == 0u) {{
        return {subnormal};
    }}
    return bitcast<f32>(sign | ((field + {rebias}u) << 23u) | (mant << {mshift}u));
}}
{encode_plain}{encode_saturating}",
        name = spec.name,
        e = spec.exponent_bits,
        bias = spec.bias,
        mantissa_mask = (1u32 << m) - 1,
        rebias = 127 - spec.bias,
        mshift = 23 - m,
        encode_plain = encode(&encoder(format, false), overflow_result),
        encode_saturating = encode(&encoder(format, true), max_finite),
    )
}

/// `round_shift(v, s)`: v / 2^s rounded to nearest, ties to even, for v < 2^24.
pub const ROUND_SHIFT: &str = "fn round_shift(v: u32, s: u32) -> u32 {
    if (s == 0u) {
        return v;
    }
    if (s > 24u) {
        return 0u;
    }
    let kept = v >> s;
    let rest = v & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    return kept + select(0u, 1u, rest > half || (rest == half && (kept & 1u) == 1u));
}
";

/// The declaration of binding `index` holding `format` values, with `load_<name>(i) -> T` and,
/// where written, `store_<name>(i, v: T)`, T being `value` (a WGSL type such as `A` or `f32`).
pub fn tensor_binding(
    index: u32,
    name: &str,
    format: Format,
    access: Access,
    value: &str,
) -> String {
    let mode = match access {
        Access::Read => "read",
        Access::ReadWrite => "read_write",
    };
    if let Some(native) = format.native_wgsl() {
        let mut text = format!(
            "@group(0) @binding({index}) var<storage, {mode}> {name}: array<{native}>;
fn load_{name}(i: u32) -> {value} {{
    return {value}({name}[i]);
}}
"
        );
        if access == Access::ReadWrite {
            text.push_str(&format!(
                "fn store_{name}(i: u32, v: {value}) {{
    {name}[i] = {native}(v);
}}
"
            ));
        }
        return text;
    }
    let f = suffix(format);
    let bits = format.spec().total_bits();
    let per_word = format.per_word();
    let mask = (1u64 << bits) as u32 - 1;
    let word = match access {
        Access::Read => format!("{name}[i / {per_word}u]"),
        Access::ReadWrite => format!("atomicLoad(&{name}[i / {per_word}u])"),
    };
    let element = match access {
        Access::Read => "u32",
        Access::ReadWrite => "atomic<u32>",
    };
    let mut text = format!(
        "@group(0) @binding({index}) var<storage, {mode}> {name}: array<{element}>;
fn load_{name}(i: u32) -> {value} {{
    let shift = (i % {per_word}u) * {bits}u;
    return {value}(decode_{f}(({word} >> shift) & {mask}u));
}}
"
    );
    if access == Access::ReadWrite {
        let encode = encoder(format, false);
        text.push_str(&format!(
            "fn store_{name}(i: u32, v: {value}) {{
    store_{name}_bits(i, {encode}(f32(v)));
}}
fn store_{name}_bits(i: u32, bits: u32) {{
    let shift = (i % {per_word}u) * {bits}u;
    atomicAnd(&{name}[i / {per_word}u], ~({mask}u << shift));
    atomicOr(&{name}[i / {per_word}u], bits << shift);
}}
"
        ));
    }
    text
}

/// `load4_<name>(i) -> vec4<T>`: elements i … i+3 of the tensor `name` (declared by
/// [`tensor_binding`]), T being `value`. With a binding `index`, one vector load through a
/// second, read-only view of the same buffer as `array<vec4<native>>`: the host binds it only
/// where every such load is aligned (i a multiple of 4, as where the tensor's contiguous
/// dimension is a multiple of 4) and the format is held natively. Without one, four scalar loads, so that a shader body can call
/// `load4_<name>` whichever the host chose.
pub fn vector_view(index: Option<u32>, name: &str, format: Format, value: &str) -> String {
    match (index, format.native_wgsl()) {
        (Some(index), Some(native)) => format!(
            "@group(0) @binding({index}) var<storage, read> {name}_vec4: array<vec4<{native}>>;
fn load4_{name}(i: u32) -> vec4<{value}> {{
    return vec4<{value}>({name}_vec4[i / 4u]);
}}
"
        ),
        (Some(_), None) => panic!("a vector view of {name} needs a natively held format"),
        (None, _) => format!(
            "fn load4_{name}(i: u32) -> vec4<{value}> {{
    return vec4<{value}>(load_{name}(i), load_{name}(i + 1u), load_{name}(i + 2u), load_{name}(i + 3u));
}}
"
        ),
    }
}
