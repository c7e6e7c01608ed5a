//! The casts of `gradstab::format`, bit for bit, against references that share no code with
//! it: the `half` crate for f16 and bf16, the `float8` crate for FP8 within range, PyTorch's
//! documented rule beyond it, Rust's own f64 → f32 cast, and rounding to odd for f64 inputs.
//!
//! `float8` (0.7) is trusted only for what it gets right. Its `from_f32`/`from_f64` saturate
//! to ±448 / ±57344 (its `SatFinite` mode, although its docs say ±inf), where PyTorch's
//! `.to(torch.float8_e5m2)` gives ±inf (c10/util/Float8_e5m2.h); PyTorch 2.15's
//! `.to(torch.float8_e4m3fn)` saturates too (pytorch/pytorch#178817, where earlier versions
//! gave NaN), but the reference does not lean on `float8` for it; and its
//! `is_nan`/`is_infinite` misclassify (E4M3's 448 counts as infinite, E5M2's 57344 as
//! infinite). So the references below apply PyTorch's overflow rule themselves and classify
//! NaN by the decoded f32.

mod common;

use common::{pytorch_e4m3, pytorch_e5m2};
use float8::{F8E4M3, F8E5M2};
use gradstab::format::Format;
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FP8: [Format; 2] = [Format::E4m3, Format::E5m2];
const NARROW: [Format; 4] = [Format::F16, Format::Bf16, Format::E4m3, Format::E5m2];

/// The nearest f32 to x rounding *to odd*: from it one rounding to nearest into any format
/// of at most 22 significant bits is the correct rounding of x (Boldo and Melquiond, 2008).
fn f32_rounded_to_odd(x: f64) -> f32 {
    let nearest = x as f32;
    if nearest as f64 == x || !x.is_finite() || nearest.is_infinite() {
        return nearest;
    }
    let mut bits = nearest.to_bits();
    if (nearest as f64).abs() > x.abs() {
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

/// The reference pattern of an f32 cast to `format`.
fn reference_f32(format: Format, x: f32) -> u32 {
    match format {
        Format::F32 => x.to_bits(),
        Format::F16 => f16::from_f32(x).to_bits() as u32,
        Format::Bf16 => bf16::from_f32(x).to_bits() as u32,
        Format::E4m3 => pytorch_e4m3(x as f64),
        Format::E5m2 => pytorch_e5m2(x as f64),
    }
}

/// The reference pattern of an f64 cast to `format`, in one rounding.
fn reference_f64(format: Format, x: f64) -> u32 {
    match format {
        Format::F32 => (x as f32).to_bits(),
        Format::F16 => gradstab::precision::f16_from_f64(x).to_bits() as u32,
        Format::Bf16 => bf16::from_f32(f32_rounded_to_odd(x)).to_bits() as u32,
        Format::E4m3 => pytorch_e4m3(x),
        Format::E5m2 => pytorch_e5m2(x),
    }
}

/// The reference value of a pattern.
fn reference_decode(format: Format, bits: u32) -> f32 {
    match format {
        Format::F32 => f32::from_bits(bits),
        Format::F16 => f16::from_bits(bits as u16).to_f32(),
        Format::Bf16 => bf16::from_bits(bits as u16).to_f32(),
        Format::E4m3 => F8E4M3::from_bits(bits as u8).to_f32(),
        Format::E5m2 => F8E5M2::from_bits(bits as u8).to_f32(),
    }
}

fn width(format: Format) -> u32 {
    match format {
        Format::F32 => 32,
        Format::F16 | Format::Bf16 => 16,
        Format::E4m3 | Format::E5m2 => 8,
    }
}

/// The same pattern, or, where the reference is NaN, a NaN of the same sign (NaN payloads
/// differ between implementations and carry nothing here).
fn assert_same(format: Format, got: u32, want: u32, input: &dyn std::fmt::Debug) {
    if reference_decode(format, want).is_nan() {
        let sign = 1 << (width(format) - 1);
        assert!(
            reference_decode(format, got).is_nan() && got & sign == want & sign,
            "{format}: {input:?} gave {got:#x}, want a NaN like {want:#x}"
        );
    } else {
        assert_eq!(got, want, "{format}: {input:?}");
    }
}

fn check_f32(format: Format, x: f32) {
    let want = reference_f32(format, x);
    assert_same(format, format.encode(x), want, &x);
    let rounded = format.round_f32(x);
    let want_value = reference_decode(format, want);
    if want_value.is_nan() {
        assert!(rounded.is_nan(), "{format}: round_f32({x:e}) = {rounded:e}");
    } else {
        assert_eq!(
            rounded.to_bits(),
            want_value.to_bits(),
            "{format}: round_f32({x:e})"
        );
    }
}

fn check_f64(format: Format, x: f64) {
    let want = reference_f64(format, x);
    assert_same(format, format.encode_f64(x), want, &x);
    let rounded = format.round_f64(x);
    let want_value = reference_decode(format, want) as f64;
    if want_value.is_nan() {
        assert!(rounded.is_nan(), "{format}: round_f64({x:e}) = {rounded:e}");
    } else {
        assert_eq!(
            rounded.to_bits(),
            want_value.to_bits(),
            "{format}: round_f64({x:e})"
        );
    }
}

/// Every pattern decodes to the reference's value and encodes back to itself.
fn check_every_pattern(format: Format) {
    for bits in 0..1u32 << width(format) {
        let want = reference_decode(format, bits);
        let got = format.decode(bits);
        if want.is_nan() {
            assert!(
                got.is_nan(),
                "{format}: {bits:#x} decodes to {got:e}, want NaN"
            );
            assert!(reference_decode(format, format.encode(got)).is_nan());
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{format}: decode({bits:#x})");
            assert_eq!(
                format.encode(got),
                bits,
                "{format}: encode(decode({bits:#x}))"
            );
            assert_eq!(
                format.round_f64(got as f64),
                got as f64,
                "{format}: {bits:#x}"
            );
        }
    }
}

#[test]
fn every_f16_and_bf16_pattern_decodes_as_half_does_and_encodes_back() {
    check_every_pattern(Format::F16);
    check_every_pattern(Format::Bf16);
}

#[test]
fn every_fp8_pattern_decodes_as_float8_does_and_encodes_back() {
    for format in FP8 {
        check_every_pattern(format);
    }
    // What float8 decodes, checked against the OCP FP8 specification's own table.
    let count =
        |format: Format, f: fn(f32) -> bool| (0..256).filter(|&b| f(format.decode(b))).count();
    assert_eq!(
        count(Format::E4m3, f32::is_nan),
        2,
        "E4M3FN: only S.1111.111"
    );
    assert_eq!(count(Format::E4m3, f32::is_infinite), 0);
    assert_eq!(count(Format::E5m2, f32::is_nan), 6);
    assert_eq!(count(Format::E5m2, f32::is_infinite), 2);
    assert_eq!(Format::E4m3.decode(0x7e), 448.0);
    assert_eq!(Format::E4m3.decode(0x01), 2f32.powi(-9));
    assert_eq!(Format::E4m3.decode(0x08), 2f32.powi(-6));
    assert_eq!(Format::E5m2.decode(0x7b), 57344.0);
    assert_eq!(Format::E5m2.decode(0x01), 2f32.powi(-16));
    assert_eq!(Format::E5m2.decode(0xfc), f32::NEG_INFINITY);
}

/// The finite positive values of a narrow format, in order, by the reference's decoding.
fn finite_values(format: Format) -> Vec<f64> {
    (0..1u32 << (width(format) - 1))
        .map(|b| reference_decode(format, b) as f64)
        .take_while(|v| v.is_finite())
        .collect()
}

#[test]
fn every_tie_between_neighbours_and_each_side_of_it_rounds_as_the_references_do() {
    let mut checked = 0;
    for format in NARROW {
        let values = finite_values(format);
        // The value the pattern after the largest finite would have with an unbounded
        // exponent: the spacing below the largest finite continues past it.
        let (max, below_max) = (values[values.len() - 1], values[values.len() - 2]);
        let beyond = max + (max - below_max);
        let mut neighbours: Vec<(f64, f64)> = values.windows(2).map(|w| (w[0], w[1])).collect();
        neighbours.push((max, beyond));
        for (lo, hi) in neighbours {
            let mid = (lo + hi) / 2.0;
            let m = mid as f32;
            assert_eq!(m as f64, mid, "{format}: a tie is an f32");
            let spacing = hi - lo;
            for sign in [1.0f32, -1.0] {
                let lo32 = lo as f32;
                let hi32 = hi as f32;
                for x in [m, m.next_up(), m.next_down(), lo32, hi32, hi32.next_up()] {
                    check_f32(format, sign * x);
                    checked += 1;
                }
                // Just off the tie by less than an f32 can say: rounding through f32 first
                // would land on the tie and go to even, wrongly half the time.
                let sign = sign as f64;
                for x in [
                    mid,
                    mid + spacing * 2f64.powi(-40),
                    mid - spacing * 2f64.powi(-40),
                ] {
                    check_f64(format, sign * x);
                    checked += 1;
                }
            }
        }
    }
    // Far beyond every range, and the specials.
    for format in Format::ALL {
        for x in [f32::MAX, f32::INFINITY, f32::NAN, 0.0, f32::from_bits(1)] {
            check_f32(format, x);
            check_f32(format, -x);
        }
        for x in [
            f64::MAX,
            1e300,
            1e-300,
            f64::from_bits(1),
            f64::INFINITY,
            f64::NAN,
        ] {
            check_f64(format, x);
            check_f64(format, -x);
        }
    }
    assert!(checked > 1_000_000, "{checked}");
}

#[test]
fn f64_ties_between_f32_neighbours_round_once() {
    // f32 as a target: ties and near-ties between neighbours across the whole range, against
    // Rust's own correctly rounded f64 → f32 cast.
    let mut checked = 0;
    for bits in (0..0x7f80_0000u32)
        .step_by(4099)
        .chain(0..64)
        .chain(0x7f7f_ff00..0x7f80_0000)
    {
        let lo = f32::from_bits(bits) as f64;
        let hi = f32::from_bits(bits + 1) as f64;
        let hi = if hi.is_infinite() {
            2.0 * lo - f32::from_bits(bits - 1) as f64
        } else {
            hi
        };
        let mid = (lo + hi) / 2.0;
        let nudge = (hi - lo) * 2f64.powi(-20);
        for x in [mid, mid + nudge, mid - nudge, lo, lo + nudge] {
            check_f64(Format::F32, x);
            check_f64(Format::F32, -x);
            checked += 2;
        }
    }
    assert!(checked > 2_000_000, "{checked}");
}

#[test]
fn pytorch_fp8_overflow_and_nan_rules() {
    // torch/headeronly/util/Float8_e4m3fn.h: fp8e4m3fn_from_fp32_value, which saturates
    // since PyTorch 2.15 (pytorch/pytorch#178817; earlier versions gave NaN beyond 464).
    let e4m3 = Format::E4m3;
    assert_eq!(e4m3.encode(448.0), 0x7e);
    assert_eq!(
        e4m3.encode(464.0),
        0x7e,
        "the tie above 448 goes to the even 448"
    );
    assert_eq!(
        e4m3.encode(464f32.next_up()),
        0x7e,
        "would round to S.1111.111 (NaN), saturates to 448"
    );
    assert_eq!(e4m3.encode(480.0), 0x7e);
    assert_eq!(e4m3.encode(-1e9), 0xfe);
    assert_eq!(e4m3.encode(f32::MAX), 0x7e);
    assert_eq!(e4m3.encode(f32::INFINITY), 0x7e, "no inf in E4M3FN: 448");
    assert_eq!(e4m3.encode(f32::NEG_INFINITY), 0xfe);
    assert_eq!(e4m3.encode_f64(f64::INFINITY), 0x7e);
    assert_eq!(e4m3.encode_f64(-1e300), 0xfe);
    assert_eq!(e4m3.round_f32(1e9), 448.0);
    assert_eq!(e4m3.round_f64(-1e9), -448.0);
    assert_eq!(e4m3.encode(f32::NAN), 0x7f, "NaN stays NaN");
    assert_eq!(e4m3.encode(-f32::NAN), 0xff);
    assert!(e4m3.round_f32(f32::NAN).is_nan());
    // For E4M3 the saturating cast of FP8 quantisation is now the plain cast.
    for x in [
        464.0,
        464f32.next_up(),
        480.0,
        -1e9,
        f32::INFINITY,
        f32::NAN,
    ] {
        assert_eq!(e4m3.encode_saturating(x), e4m3.encode(x), "{x:e}");
    }
    // c10/util/Float8_e5m2.h: fp8e5m2_from_fp32_value.
    let e5m2 = Format::E5m2;
    assert_eq!(e5m2.encode(61440f32.next_down()), 0x7b);
    assert_eq!(
        e5m2.encode(61440.0),
        0x7c,
        "the tie above 57344 goes to the even inf"
    );
    assert_eq!(e5m2.encode(-1e9), 0xfc);
    assert_eq!(e5m2.round_f32(1e9), f32::INFINITY);
    assert!(e5m2.round_f32(f32::NAN).is_nan());
    // Below half the smallest subnormal everything goes to a zero of the same sign; half
    // of it is a tie that goes to the even zero.
    for format in FP8 {
        let tiny = format.spec().min_subnormal() as f32;
        assert_eq!(format.encode(-tiny / 2.0), 0x80, "{format}");
        assert_eq!(format.encode((tiny / 2.0).next_up()), 0x01, "{format}");
        assert_eq!(
            format.encode(tiny * 1.5),
            0x02,
            "{format}: 1.5 ties to even 2"
        );
    }
}

/// A random f32 whose exponent lies in or just around the range of `format`.
fn random_in_range(format: Format, rng: &mut StdRng) -> f32 {
    let spec = format.spec();
    let lowest = spec.min_exponent() - spec.mantissa_bits as i32 - 2;
    let highest = spec.max_exponent() + 2;
    let exponent = rng.random_range(lowest..=highest.min(127));
    let significand = 1.0 + rng.random::<u32>() as f64 / 2f64.powi(32);
    let x = significand * 2f64.powi(exponent);
    let x = if rng.random() { -x } else { x };
    // Keep the low bits an f32 has: the random significand has more.
    f32::from_bits((x as f32).to_bits() ^ (rng.random::<u32>() & 0xff))
}

#[test]
fn millions_of_random_f32_cast_as_the_references_do() {
    let mut rng = StdRng::seed_from_u64(0x5eed_f0a7);
    for format in Format::ALL {
        for _ in 0..1_000_000 {
            check_f32(format, f32::from_bits(rng.random()));
            check_f32(format, random_in_range(format, &mut rng));
        }
    }
}

#[test]
fn random_f64_cast_as_the_references_do_in_one_rounding() {
    let mut rng = StdRng::seed_from_u64(0x5eed_f064);
    for format in Format::ALL {
        for _ in 0..300_000 {
            // In range, with low bits below f32's precision that decide some roundings.
            let x = random_in_range(format, &mut rng) as f64;
            let x = f64::from_bits(x.to_bits() ^ (rng.random::<u64>() & 0x1fff_ffff));
            check_f64(format, x);
            check_f64(format, f64::from_bits(rng.random()));
        }
    }
}
