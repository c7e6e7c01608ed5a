//! The WGSL casts that `gpu::codec` generates for the formats WGSL lacks (bf16, E4M3, E5M2),
//! run on the GPU, bit for bit against `Format::encode`, `encode_saturating` and `decode`
//! (which tests/formats.rs checks against the `half` and `float8` crates and PyTorch):
//!
//! - every f16 and every bf16 value, and every tie, near-tie and boundary of each target
//!   format (midpoints of neighbours, f32 subnormals, the overflow midpoint, ±inf, NaN), cast
//!   to bf16, E4M3 and E5M2 in both overflow modes, from f32, f16 and bf16 tensors;
//! - every FP8 pattern decoded by a kernel that loads a packed FP8 tensor (a matmul by one),
//!   and every bf16 pattern decoded and encoded again (a scale by one, a cast to bf16);
//! - tensors of every length from 1 to 9 and odd lengths, so that neighbours written by
//!   different threads share a packed word.
//!
//! The CPU backend's `cast` must give the same bits.

mod common;

use gradstab::format::Format;
use gradstab::ops::cast::Overflowing;
use gradstab::{Backend, Cpu, DType, HostData, HostTensor, MatmulOp, Precision, Shape};

const TARGETS: [Format; 3] = [Format::Bf16, Format::E4m3, Format::E5m2];
const MODES: [Overflowing; 2] = [Overflowing::AsFormat, Overflowing::Saturate];

/// The pattern the cast of `x` must give.
fn reference(format: Format, mode: Overflowing, x: f32) -> u32 {
    match mode {
        Overflowing::AsFormat => format.encode(x),
        Overflowing::Saturate => format.encode_saturating(x),
    }
}

/// `got` is `want` exactly, or, where `want` is NaN, a NaN of the same sign (a device may
/// spell NaN with any payload).
fn same_pattern(format: Format, got: u32, want: u32) -> bool {
    if format.is_nan_bits(want) {
        let sign = 1 << (format.spec().total_bits() - 1);
        format.is_nan_bits(got) && (got & sign) == (want & sign)
    } else {
        got == want
    }
}

/// Every f16 value, then every bf16 value, as f32.
fn every_f16_and_bf16() -> Vec<f32> {
    let f16s = (0..=u16::MAX).map(|b| half::f16::from_bits(b).to_f32());
    let bf16s = (0..=u16::MAX).map(|b| f32::from_bits((b as u32) << 16));
    f16s.chain(bf16s).collect()
}

fn next_up(x: f32) -> f32 {
    f32::from_bits(x.to_bits() + 1)
}

fn next_down(x: f32) -> f32 {
    f32::from_bits(x.to_bits() - 1)
}

/// Where a cast to `format` decides: the midpoint between every pair of neighbouring finite
/// values (a tie) and the f32 values on either side of it, the overflow midpoint and its
/// neighbours, and f32's own edges (subnormals, largest finite, inf, NaN), each with both
/// signs.
fn boundaries(format: Format) -> Vec<f32> {
    let spec = format.spec();
    let mut xs = Vec::new();
    for bits in 0..spec.max_finite_bits() as u32 {
        let (lo, hi) = (format.decode(bits) as f64, format.decode(bits + 1) as f64);
        // One bit more than the format's significand: exact in f32 (bf16's subnormal
        // midpoints are multiples of 2^-134, far above f32's smallest subnormal).
        let mid = ((lo + hi) / 2.0) as f32;
        assert_eq!(mid as f64, (lo + hi) / 2.0, "{format}: midpoint not exact");
        xs.extend([mid, next_up(mid)]);
        if mid > 0.0 {
            xs.push(next_down(mid));
        }
        xs.push(hi as f32);
    }
    // bf16's overflow midpoint, 2^128 − 2^119, lies beyond f32: f32's largest finite rounds
    // to bf16's.
    let midpoint = spec.overflow_midpoint();
    if midpoint <= f32::MAX as f64 {
        let m = midpoint as f32;
        assert_eq!(m as f64, midpoint);
        xs.extend([m, next_up(m), next_down(m), 2.0 * m]);
    }
    xs.extend([
        spec.max_finite() as f32,
        f32::MAX,
        next_down(f32::MAX),
        f32::INFINITY,
        f32::MIN_POSITIVE,
        next_down(f32::MIN_POSITIVE),
        f32::from_bits(1),
        f32::from_bits(2),
        f32::from_bits(3),
        f32::from_bits(0x0040_0000),
        f32::from_bits(0x0040_0001),
        1e-30,
        0.0,
        f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0x7fff_ffff),
    ]);
    let negatives: Vec<f32> = xs.iter().map(|x| -x).collect();
    xs.extend(negatives);
    xs
}

/// Every input the casts are checked on, with an odd length: the last packed word is shared
/// by fewer values than it holds.
fn inputs() -> Vec<f32> {
    let mut xs = every_f16_and_bf16();
    for format in TARGETS {
        xs.extend(boundaries(format));
    }
    if xs.len().is_multiple_of(2) {
        xs.push(1.0);
    }
    assert!(!xs.len().is_multiple_of(4));
    xs
}

/// `x` cast on `backend` to `target`, as patterns.
fn cast_on<B: Backend>(backend: &B, x: &HostTensor, target: Format, mode: Overflowing) -> Vec<u32> {
    let on = backend.upload(x).unwrap();
    let out = backend
        .download(&backend.cast(&on, target, mode).unwrap())
        .unwrap();
    assert_eq!(out.dtype(), target);
    assert_eq!(out.shape(), x.shape());
    (0..out.len()).map(|i| out.data().bits(i)).collect()
}

/// Casts `values` (held as `input`) on `backend` to every target in both modes and compares
/// each pattern with the reference of its f32 value.
fn check_casts<B: Backend>(backend: &B, input: DType, values: &[f32], what: &str) {
    let x = HostTensor::from_f32_as(input, 1, values.len(), values).unwrap();
    // The values the kernel sees: `values` rounded to the input format (exact for the
    // inputs this file gives each format).
    let seen = x.to_f32_vec();
    for target in TARGETS {
        for mode in MODES {
            let got = cast_on(backend, &x, target, mode);
            let mut wrong = Vec::new();
            for (i, (&g, &v)) in got.iter().zip(&seen).enumerate() {
                let want = reference(target, mode, v);
                if !same_pattern(target, g, want) {
                    wrong.push(format!(
                        "[{i}] {v:e} ({:#010x}): {g:#x}, want {want:#x}",
                        v.to_bits()
                    ));
                }
            }
            assert!(
                wrong.is_empty(),
                "{} {what}: {input} → {target} {mode:?}: {} of {} wrong, first: {:?}",
                backend.info().adapter,
                wrong.len(),
                got.len(),
                &wrong[..wrong.len().min(8)]
            );
        }
    }
}

fn check_every_cast<B: Backend>(backend: &B) {
    let xs = inputs();
    check_casts(
        backend,
        DType::F32,
        &xs,
        "every f16, bf16 and boundary value",
    );

    // From bf16 storage: every pattern, through the generated decode_bf16 and load_input.
    let bf16s: Vec<f32> = (0..=u16::MAX)
        .map(|b| f32::from_bits((b as u32) << 16))
        .chain([1.0])
        .collect();
    check_casts(
        backend,
        DType::Bf16,
        &bf16s,
        "every bf16 pattern, stored as bf16",
    );

    // From f16 storage, where the device has it.
    if backend.supports(Precision::F16) {
        let f16s: Vec<f32> = (0..=u16::MAX)
            .map(|b| half::f16::from_bits(b).to_f32())
            .chain([1.0])
            .collect();
        check_casts(
            backend,
            DType::F16,
            &f16s,
            "every f16 pattern, stored as f16",
        );
    } else {
        eprintln!(
            "SKIPPED casts from f16 storage: {}",
            backend.unsupported(Precision::F16)
        );
    }

    // Every short length: the values of one word written by one, two, three or four threads,
    // and a last word partly filled.
    for len in 1..=9 {
        let values: Vec<f32> = (0..len).map(|i| -(i as f32) * 37.25 - 0.3).collect();
        check_casts(backend, DType::F32, &values, &format!("length {len}"));
    }
}

#[test]
fn every_cast_on_the_gpu_is_the_reference_bit_for_bit() {
    if let Some(gpu) = common::gpu("every_cast_on_the_gpu_is_the_reference_bit_for_bit") {
        check_every_cast(&gpu);
    }
}

#[test]
fn every_cast_on_the_cpu_is_the_reference_bit_for_bit() {
    check_every_cast(&Cpu::new());
}

/// Every FP8 pattern decoded on `backend`: a packed [len, 1] (or, transposed, [1, len])
/// tensor of the patterns times E4M3's 1, out_scale 1, in fp8. The product of the decoded
/// value and 1 is the value itself, except that a zero's sign depends on whether the sum
/// starts from +0 (the shader's accumulator does, the CPU's gemm need not), and NaN is any NaN.
fn check_fp8_decoding<B: Backend>(backend: &B) {
    let one = Format::E4m3.encode(1.0) as u8;
    // 256 patterns and three more, so that the length is odd.
    let patterns: Vec<u8> = (0..259).map(|i| (i % 256) as u8).collect();
    let len = patterns.len();
    let fp8 = |format, shape, bits: Vec<u8>| {
        let host = HostTensor::new(shape, HostData::Fp8 { format, bits }).unwrap();
        backend.upload(&host).unwrap()
    };
    for format in [Format::E4m3, Format::E5m2] {
        let unit = fp8(Format::E4m3, Shape::new(1, 1), vec![one]);
        // The patterns as the left operand (a column, and a row read transposed) and as the
        // right one (a row).
        let cases = [
            ("lhs", Shape::new(len, 1), MatmulOp::new(false, false), true),
            (
                "lhs transposed",
                Shape::new(1, len),
                MatmulOp::new(true, false),
                true,
            ),
            (
                "rhs",
                Shape::new(1, len),
                MatmulOp::new(false, false),
                false,
            ),
        ];
        for (what, shape, op, left) in cases {
            let x = fp8(format, shape, patterns.clone());
            let c = if left {
                backend.matmul_scaled(&x, &unit, op, Precision::Fp8, 1.0)
            } else {
                backend.matmul_scaled(&unit, &x, op, Precision::Fp8, 1.0)
            };
            let got = backend.download(&c.unwrap()).unwrap().to_f32_vec();
            assert_eq!(got.len(), len);
            for (i, (&bits, &g)) in patterns.iter().zip(&got).enumerate() {
                let want = format.decode(bits as u32);
                let ok = if want.is_nan() { g.is_nan() } else { g == want };
                assert!(
                    ok,
                    "{} {format} {what} [{i}]: pattern {bits:#04x} decoded as {g:e}, want {want:e}",
                    backend.info().adapter
                );
            }
        }
    }
}

#[test]
fn every_fp8_pattern_decodes_on_the_gpu() {
    if let Some(gpu) = common::gpu("every_fp8_pattern_decodes_on_the_gpu") {
        check_fp8_decoding(&gpu);
    }
}

#[test]
fn every_fp8_pattern_decodes_on_the_cpu() {
    check_fp8_decoding(&Cpu::new());
}

/// Every bf16 pattern loaded (decode_bf16), multiplied by 1 in f32 and stored (encode_bf16):
/// the same pattern, or NaN of the same sign. Where the device flushes f32 subnormals in
/// arithmetic, bf16's subnormals (f32's) may come back as a zero of their sign.
fn check_bf16_round_trip<B: Backend>(backend: &B, flushes: bool) {
    let len = 65536 + 3;
    let patterns: Vec<half::bf16> = (0..len)
        .map(|i| half::bf16::from_bits((i % 65536) as u16))
        .collect();
    let host = HostTensor::new(Shape::new(1, len), HostData::Bf16(patterns.clone())).unwrap();
    let x = backend.upload(&host).unwrap();
    let y = backend.scale(&x, 1.0, Precision::Bf16).unwrap();
    let got = backend.download(&y).unwrap();
    for (i, p) in patterns.iter().enumerate() {
        let (want, g) = (p.to_bits() as u32, got.data().bits(i));
        let subnormal = (want & 0x7f80) == 0 && (want & 0x7f) != 0;
        let ok =
            same_pattern(Format::Bf16, g, want) || (flushes && subnormal && g == (want & 0x8000));
        assert!(
            ok,
            "{} [{i}]: bf16 {want:#06x} came back as {g:#06x}",
            backend.info().adapter
        );
    }
}

#[test]
fn every_bf16_pattern_survives_a_load_and_store_on_the_gpu() {
    if let Some((gpu, probe)) =
        common::gpu_with_probe("every_bf16_pattern_survives_a_load_and_store_on_the_gpu")
    {
        check_bf16_round_trip(&gpu, probe.flushes_subnormals());
    }
}

#[test]
fn every_bf16_pattern_survives_a_load_and_store_on_the_cpu() {
    check_bf16_round_trip(&Cpu::new(), false);
}
