//! Statistics at the very edges of each format's range, on both backends: every field of the
//! record held to an exact f64 reference computed here (independently of `ops::reduce::cpu`:
//! classes from `f32::classify` and the half crate, exponents from the f64 value, casts by the
//! half crate, sums compensated), and the backends held to each other. Counts, histogram, cast
//! report and extrema must be exact; the moments within their documented bounds; a norm of a
//! tensor holding ±inf is +inf and one holding NaN is NaN, identical on both backends and
//! `null` in both JSONs.

mod common;

use gradstab::network::steps::{clip_norm_coefficient, scale_all};
use gradstab::network::{run, Clip, GivenParameters, NetworkConfig};
use gradstab::ops::reduce::{moment_error_bounds_with, PER_THREAD, THREADS};
use gradstab::report::{record_fields, RECORD_COLUMNS};
use gradstab::stats::{CastCounts, CastReport, ExponentHistogram, StatsRecord};
use gradstab::{Activation, Backend, Cpu, DType, Gpu, GpuOptions, HostData, HostTensor, Precision};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use std::num::FpCategory;

/// The unit roundoff of f64.
const U: f64 = f64::EPSILON / 2.0;

/// The values of every chunk but the last of a tensor that spans four reduction chunks.
const LONG: usize = 3 * PER_THREAD * THREADS + 77;

/// Σ of `xs` by Neumaier's compensated summation: within 2u·|Σ| + O(n·u²)·Σ|x| of the exact
/// sum (Higham, Accuracy and Stability, §4.3), which `REFERENCE_ERROR` covers.
fn neumaier(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = s + x;
        c += if s.abs() >= x.abs() {
            (s - t) + x
        } else {
            (x - t) + s
        };
        s = t;
    }
    s + c
}

/// How far this file's reference may be from the exact value, relative to Σ|x| of its terms
/// (2u of the compensated sum, and u for n·u² with n ≤ 2^20).
const REFERENCE_ERROR: f64 = 3.0 * U;

/// A stored value: exact as an f64, and its class from the format itself.
fn stored_values(t: &HostTensor) -> Vec<(f64, FpCategory)> {
    match t.data() {
        HostData::F32(v) => v.iter().map(|x| (*x as f64, x.classify())).collect(),
        HostData::F16(v) => v.iter().map(|x| (x.to_f64(), x.classify())).collect(),
        HostData::Bf16(v) => v.iter().map(|x| (x.to_f64(), x.classify())).collect(),
        other => panic!("no exact record of {} tensors here", other.dtype()),
    }
}

/// The exact record of `t`, from its definition.
fn exact_record(t: &HostTensor) -> StatsRecord {
    let (min_exp, max_exp) = match t.dtype() {
        DType::F32 => (f32::MIN_EXP, f32::MAX_EXP),
        DType::F16 => (f16::MIN_EXP, f16::MAX_EXP),
        DType::Bf16 => (bf16::MIN_EXP, bf16::MAX_EXP),
        other => panic!("no exact record of {other} tensors here"),
    };
    // Normal exponents run from MIN_EXP − 1 to MAX_EXP − 1 (Rust's MIN_EXP counts from 0.5).
    let mut histogram = ExponentHistogram {
        min_exponent: min_exp - 1,
        normal: vec![0; (max_exp - min_exp + 1) as usize],
        zero: 0,
        subnormal: 0,
        inf: 0,
        nan: 0,
    };
    let mut r = StatsRecord {
        count: t.len() as u64,
        mean: f64::NAN,
        variance: f64::NAN,
        min: f64::NAN,
        max: f64::NAN,
        abs_max: f64::NAN,
        l2_norm: f64::NAN,
        nan: 0,
        pos_inf: 0,
        neg_inf: 0,
        zero: 0,
        subnormal: 0,
        histogram: histogram.clone(),
        cast: CastReport::default(),
    };
    let values = stored_values(t);
    let mut finite = Vec::new();
    for &(x, class) in &values {
        match class {
            FpCategory::Nan => r.nan += 1,
            FpCategory::Infinite if x > 0.0 => r.pos_inf += 1,
            FpCategory::Infinite => r.neg_inf += 1,
            FpCategory::Zero => r.zero += 1,
            FpCategory::Subnormal => r.subnormal += 1,
            FpCategory::Normal => {
                // The binary exponent of |x|, read from the f64 it is exactly.
                let e = ((x.abs().to_bits() >> 52) as i32) - 1023;
                histogram.normal[(e - histogram.min_exponent) as usize] += 1;
            }
        }
        if x.is_finite() {
            finite.push(x);
            if x != 0.0 {
                let cast = |overflow: bool, category: FpCategory, zero: bool| CastCounts {
                    overflow: overflow as u64,
                    subnormal: (category == FpCategory::Subnormal) as u64,
                    zero: zero as u64,
                };
                let (h, b) = (f16::from_f64(x), bf16::from_f64(x));
                let (hc, bc) = (
                    cast(h.is_infinite(), h.classify(), h.to_f64() == 0.0),
                    cast(b.is_infinite(), b.classify(), b.to_f64() == 0.0),
                );
                let [e4, e5] =
                    common::fp8_cast_kinds(x).map(|(overflow, subnormal, zero)| CastCounts {
                        overflow: overflow as u64,
                        subnormal: subnormal as u64,
                        zero: zero as u64,
                    });
                for (sum, c) in [
                    (&mut r.cast.f16, hc),
                    (&mut r.cast.bf16, bc),
                    (&mut r.cast.e4m3, e4),
                    (&mut r.cast.e5m2, e5),
                ] {
                    sum.overflow += c.overflow;
                    sum.subnormal += c.subnormal;
                    sum.zero += c.zero;
                }
            }
        }
    }
    histogram.zero = r.zero;
    histogram.subnormal = r.subnormal;
    histogram.inf = r.pos_inf + r.neg_inf;
    histogram.nan = r.nan;
    r.histogram = histogram;
    // √Σx² as IEEE arithmetic evaluates it over every value: a NaN makes it NaN, an inf +inf
    // (a sum of finite f64 squares of f32 values cannot overflow). Compensated where finite.
    let naive: f64 = values.iter().map(|(x, _)| x * x).sum();
    r.l2_norm = if naive.is_finite() {
        neumaier(finite.iter().map(|x| x * x)).sqrt()
    } else {
        naive.sqrt()
    };
    if !finite.is_empty() {
        let n = finite.len() as f64;
        r.mean = neumaier(finite.iter().copied()) / n;
        r.variance = neumaier(finite.iter().map(|x| (x - r.mean) * (x - r.mean))) / n;
        r.min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        r.max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        r.abs_max = finite.iter().map(|x| x.abs()).fold(0.0, f64::max);
    }
    r
}

/// Bounds on |mean − exact|, |variance − exact| and |‖x‖ − exact| for one backend.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    mean: f64,
    variance: f64,
    l2: f64,
}

/// |l̂ − l| from a bound `e2` on |l̂² − l²|: it is at most e2/l and at most √e2.
fn norm_bound(e2: f64, l2: f64) -> f64 {
    if l2 > 0.0 {
        (e2 / l2).min(e2.sqrt())
    } else {
        e2.sqrt()
    }
}

/// The CPU record's bounds, from its algorithm: one piece of n ≤ 65536 values, two passes in
/// f64. Σx errs by (n − 1)·u·Σ|x| ≤ n²·u·max|x|, so the mean by δ ≤ (n + 1)·u·max|x|; each
/// (x − μ̂)² carries 3 roundings and their positive sum n − 1 more, and Σ(x − μ̂)² = nσ² + nδ²
/// exactly, so the variance errs by (n + 4)·u·(σ² + δ²) + δ²; ‖x‖² = Σ(x − μ̂)² + nμ̂² differs
/// from Σx² by 2nμ̂(μ̂ − μ) plus the same roundings. This file's reference adds its own error.
fn cpu_bounds(exact: &StatsRecord) -> Bounds {
    let n = exact.finite() as f64;
    let (amax, sigma2) = (exact.abs_max, exact.variance);
    let reference = REFERENCE_ERROR * n * amax;
    let delta = (n + 1.0) * U * amax + reference;
    let variance = (n + 4.0) * U * (sigma2 + delta * delta) + delta * delta + reference * amax;
    let squares = exact.l2_norm * exact.l2_norm;
    let e2 = (n + 4.0) * U * (squares + 2.0 * n * exact.mean.abs() * delta)
        + 2.0 * n * exact.mean.abs() * delta
        + REFERENCE_ERROR * squares;
    Bounds {
        mean: delta,
        variance,
        l2: norm_bound(e2, exact.l2_norm) + 2.0 * U * exact.l2_norm,
    }
}

/// The GPU record's bounds: `moment_error_bounds_with`, the f32 analysis of
/// src/ops/reduce/mod.rs, and ‖x‖² = n·(σ² + μ²) from them; plus the f64 steps on the host
/// and this file's reference error.
fn gpu_bounds(exact: &StatsRecord, len: usize, per_thread: usize) -> Bounds {
    let (mean, variance) = moment_error_bounds_with(exact, len, per_thread);
    let n = exact.finite() as f64;
    let reference = REFERENCE_ERROR * n * exact.abs_max;
    let (mean, variance) = (
        mean + reference,
        variance + reference * exact.abs_max + 4.0 * U * exact.variance,
    );
    let e2 = n * (variance + 2.0 * exact.mean.abs() * mean + mean * mean);
    Bounds {
        mean,
        variance,
        l2: norm_bound(e2, exact.l2_norm) + 4.0 * U * exact.l2_norm,
    }
}

/// Whether `a` and `b` are the same value, NaN counting as equal to NaN.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Asserts every field of `got` against `exact`: exactly where the definition is exact, within
/// `bounds` for the moments and a finite norm.
fn assert_record(got: &StatsRecord, exact: &StatsRecord, bounds: Bounds, what: &str) {
    let counts = |r: &StatsRecord| (r.count, r.nan, r.pos_inf, r.neg_inf, r.zero, r.subnormal);
    assert_eq!(counts(got), counts(exact), "{what}: class counts");
    assert_eq!(got.histogram, exact.histogram, "{what}: histogram");
    assert_eq!(got.cast, exact.cast, "{what}: cast report");
    for (name, g, e) in [
        ("min", got.min, exact.min),
        ("max", got.max, exact.max),
        ("abs_max", got.abs_max, exact.abs_max),
    ] {
        assert!(same(g, e), "{what}: {name} {g:e}, exact {e:e}");
    }
    for (name, g, e, bound) in [
        ("mean", got.mean, exact.mean, bounds.mean),
        ("variance", got.variance, exact.variance, bounds.variance),
        ("l2_norm", got.l2_norm, exact.l2_norm, bounds.l2),
    ] {
        if e.is_finite() {
            assert!(
                (g - e).abs() <= bound,
                "{what}: {name} {g:e}, exact {e:e}, bound {bound:e}"
            );
        } else {
            assert!(same(g, e), "{what}: {name} {g:e}, exact {e:e}");
        }
    }
}

/// The two backends' records agree where the definition is exact, and their JSON says `null`
/// for the same fields.
fn assert_backends_agree(cpu: &StatsRecord, gpu: &StatsRecord, what: &str) {
    let (c, g) = (
        serde_json::to_value(cpu).unwrap(),
        serde_json::to_value(gpu).unwrap(),
    );
    for field in [
        "count",
        "nan",
        "pos_inf",
        "neg_inf",
        "zero",
        "subnormal",
        "histogram",
        "cast",
        "min",
        "max",
        "abs_max",
    ] {
        assert_eq!(c[field], g[field], "{what}: JSON {field}");
    }
    for field in ["mean", "variance", "l2_norm"] {
        assert_eq!(
            c[field].is_null(),
            g[field].is_null(),
            "{what}: JSON {field}"
        );
    }
    if !cpu.l2_norm.is_finite() {
        assert!(
            same(cpu.l2_norm, gpu.l2_norm),
            "{what}: norm {} and {}",
            cpu.l2_norm,
            gpu.l2_norm
        );
        // CSV writes the norm, which every tensor has, as "inf" or "NaN"; an empty field is
        // kept for the moments of a tensor without a finite value.
        let column = RECORD_COLUMNS.iter().position(|c| *c == "l2_norm").unwrap();
        let expected = if cpu.l2_norm.is_nan() { "NaN" } else { "inf" };
        assert_eq!(record_fields(cpu)[column], expected, "{what}: CSV");
        assert_eq!(record_fields(gpu)[column], expected, "{what}: CSV");
    }
}

/// The finite values at the edges of f32, and of f16 and bf16 as f32 data would cast to them.
fn f32_finite_edges() -> Vec<f32> {
    let bits = f32::from_bits;
    let below = |x: f32| bits(x.to_bits() - 1);
    let above = |x: f32| bits(x.to_bits() + 1);
    let mut v = vec![
        f32::MAX,
        below(f32::MAX),
        f32::MIN_POSITIVE,        // the smallest normal, 2^-126
        below(f32::MIN_POSITIVE), // the largest subnormal
        bits(1),                  // the smallest subnormal, 2^-149
        0.0,
        -0.0,
        1.0,
        65504.0,           // f16's largest
        below(65520.0),    // rounds to 65504 in f16
        65520.0,           // overflows f16
        bits(0x7F7F_7FFF), // rounds to bf16's largest
        bits(0x7F7F_8000), // overflows bf16
        2f32.powi(-14),    // f16's smallest normal
        below(2f32.powi(-14)),
        2f32.powi(-24), // f16's smallest subnormal
        2f32.powi(-25), // rounds to 0 in f16 (a tie to even)
        above(2f32.powi(-25)),
        bits(0x8000), // rounds to 0 in bf16
        bits(0x8001),
        1e30,
        1e-30,
    ];
    let negated: Vec<f32> = v.iter().map(|x| -x).collect();
    v.extend(negated);
    v
}

/// The finite values at the edges of f16.
fn f16_finite_edges() -> Vec<f16> {
    let bits = f16::from_bits;
    let mut v = vec![
        f16::MAX,                     // 65504
        bits(f16::MAX.to_bits() - 1), // 65472
        f16::MIN_POSITIVE,            // 2^-14
        bits(0x03FF),                 // the largest subnormal
        f16::MIN_POSITIVE_SUBNORMAL,  // 2^-24
        bits(0x0000),
        bits(0x8000), // −0
        f16::ONE,
        f16::from_f32(1e-3),
        f16::from_f32(1e3),
    ];
    let negated: Vec<f16> = v.iter().map(|x| -*x).collect();
    v.extend(negated);
    v
}

fn bf16_finite_edges() -> Vec<bf16> {
    let bits = bf16::from_bits;
    let mut v = vec![
        bf16::MAX,                     // (2 − 2^-7)·2^127
        bits(bf16::MAX.to_bits() - 1), // the one below
        bf16::MIN_POSITIVE,            // 2^-126
        bits(0x007F),                  // the largest subnormal
        bf16::MIN_POSITIVE_SUBNORMAL,  // 2^-133
        bits(0x0000),
        bits(0x8000), // −0
        bf16::ONE,
        bf16::from_f32(1e-3),
        bf16::from_f32(1e3),
    ];
    let negated: Vec<bf16> = v.iter().map(|x| -*x).collect();
    v.extend(negated);
    v
}

fn f32_non_finite() -> Vec<f32> {
    vec![
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0xFFC0_0000), // a negative NaN
        f32::from_bits(0x7F80_0001), // a signalling NaN's bits
    ]
}

fn f16_non_finite() -> Vec<f16> {
    vec![
        f16::INFINITY,
        f16::NEG_INFINITY,
        f16::NAN,
        f16::from_bits(0xFE00),
        f16::from_bits(0x7C01),
    ]
}

/// A tensor of `dtype` holding `values`, each of which that dtype holds exactly.
fn tensor(dtype: DType, values: &[f32]) -> HostTensor {
    let n = values.len();
    match dtype {
        DType::F32 => HostTensor::from_f32(1, n, values.to_vec()).unwrap(),
        DType::F16 => {
            let v: Vec<f16> = values.iter().map(|x| f16::from_f32(*x)).collect();
            for (h, x) in v.iter().zip(values) {
                assert!(same(h.to_f64(), *x as f64), "{x:e} is not an f16");
            }
            HostTensor::from_f16(1, n, v).unwrap()
        }
        DType::Bf16 => {
            let v: Vec<bf16> = values.iter().map(|x| bf16::from_f32(*x)).collect();
            for (h, x) in v.iter().zip(values) {
                assert!(same(h.to_f64(), *x as f64), "{x:e} is not a bf16");
            }
            HostTensor::new(gradstab::Shape::new(1, n), HostData::Bf16(v)).unwrap()
        }
        other => panic!("no {other} tensors here"),
    }
}

/// `x` rounded to `dtype`, as an f32.
fn rounded(dtype: DType, x: f32) -> f32 {
    match dtype {
        DType::F32 => x,
        DType::F16 => f16::from_f32(x).to_f32(),
        other => other.round_f32(x),
    }
}

/// Every case of one dtype: (what, tensor).
fn cases(dtype: DType) -> Vec<(String, HostTensor)> {
    let (finite, largest): (Vec<f32>, f32) = match dtype {
        DType::F32 => (f32_finite_edges(), f32::MAX),
        DType::F16 => (
            f16_finite_edges().iter().map(|x| x.to_f32()).collect(),
            f16::MAX.to_f32(),
        ),
        DType::Bf16 => (
            bf16_finite_edges().iter().map(|x| x.to_f32()).collect(),
            bf16::MAX.to_f32(),
        ),
        other => panic!("no {other} cases"),
    };
    let mut rng = common::rng(41);
    let ordinary: Vec<f32> = common::normal_tensor(&mut rng, dtype, 1, LONG, 3.0).to_f32_vec();
    let mut out = Vec::new();
    let mut add = |what: String, values: &[f32]| out.push((what, tensor(dtype, values)));

    let mut mixed = finite.clone();
    mixed.extend(&ordinary[..100]);
    add("finite edges and ordinary values".into(), &mixed);
    add(
        "edges with ±inf".into(),
        &[&mixed[..], &[f32::INFINITY, f32::NEG_INFINITY]].concat(),
    );
    add(
        "edges with inf and NaN".into(),
        &[&mixed[..], &[f32::INFINITY, f32::NAN]].concat(),
    );
    add("finite edges alone".into(), &finite);
    for &x in &finite {
        add(format!("{x:e} alone"), &[x]);
    }
    add("only ±inf".into(), &[f32::INFINITY, f32::NEG_INFINITY]);
    add(
        "only NaN and inf".into(),
        &[f32::NAN, f32::INFINITY, f32::NAN],
    );
    add("only −inf".into(), &[f32::NEG_INFINITY; 3]);

    // Four chunks, the extremes in the last one.
    let mut long = ordinary.clone();
    long[LONG - 5] = largest;
    long[LONG - 3] = -largest;
    add("long, ±largest in the last chunk".into(), &long);
    let mut smallest = vec![0.0; LONG];
    smallest[LONG - 2] = match dtype {
        DType::F32 => f32::from_bits(1),
        DType::F16 => f16::MIN_POSITIVE_SUBNORMAL.to_f32(),
        DType::Bf16 => bf16::MIN_POSITIVE_SUBNORMAL.to_f32(),
        other => panic!("no {other} cases"),
    };
    add("long zeros, the smallest subnormal last".into(), &smallest);
    let mut inf_last = long.clone();
    inf_last[LONG - 2] = f32::NEG_INFINITY;
    add("long, −inf in the last chunk".into(), &inf_last);
    let mut nan_last = inf_last;
    nan_last[LONG - 1] = f32::NAN;
    add("long, −inf and NaN in the last chunk".into(), &nan_last);
    // Every value within 10% of the largest, so that in f32 every chunk's minimum lies above
    // 3e38; the extremes in the last chunk.
    for sign in [1.0f32, -1.0] {
        let mut big: Vec<f32> = ordinary
            .iter()
            .map(|z| rounded(dtype, sign * largest * (0.95 + 0.05 * (z / 10.0).tanh())))
            .collect();
        big[LONG - 7] = sign * largest;
        big[LONG - 6] = rounded(dtype, sign * largest * 0.9);
        add(format!("long, all near {:e}", sign * largest), &big);
    }
    // Only one chunk holds finite values: the others' partial records hold none.
    let mut first_only = vec![f32::INFINITY; LONG];
    first_only[..100].copy_from_slice(&ordinary[..100]);
    add(
        "long, finite values in the first chunk only".into(),
        &first_only,
    );
    let mut last_only = vec![f32::NEG_INFINITY; LONG];
    last_only[LONG - 1] = -largest;
    add("long, one finite value, last".into(), &last_only);
    // Norms whose squares leave the storage format's range, every value finite.
    let (huge, tiny) = match dtype {
        DType::F32 => (1e30f32, 1e-25f32),
        DType::F16 => (6e4, f16::MIN_POSITIVE_SUBNORMAL.to_f32()),
        DType::Bf16 => (1e30f32, 1e-25f32),
        other => panic!("no {other} cases"),
    };
    let scaled = |unit: f32, f: &dyn Fn(f32) -> f32| -> Vec<f32> {
        ordinary
            .iter()
            .map(|z| rounded(dtype, unit * f(*z)))
            .collect()
    };
    add(
        "long, values whose squares overflow".into(),
        &scaled(huge, &|z| (1.0 + z.abs()).min(1.09)),
    );
    add(
        "long, values whose squares underflow".into(),
        &scaled(tiny, &|z| 1.0 + z.abs().floor()),
    );
    // Non-finite values from their own bits (an f16 NaN's payload does not survive f32).
    match dtype {
        DType::F32 => {
            for x in f32_non_finite() {
                out.push((
                    format!("bits {:#x} alone", x.to_bits()),
                    tensor(dtype, &[x]),
                ));
            }
        }
        DType::F16 => {
            for x in f16_non_finite() {
                let t = HostTensor::from_f16(1, 1, vec![x]).unwrap();
                out.push((format!("bits {:#x} alone", x.to_bits()), t));
            }
        }
        _ => {
            for bits in [0x7F80u16, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81] {
                let data = HostData::Bf16(vec![bf16::from_bits(bits)]);
                let t = HostTensor::new(gradstab::Shape::new(1, 1), data).unwrap();
                out.push((format!("bits {bits:#x} alone"), t));
            }
        }
    }
    out
}

#[test]
fn statistics_at_the_edges_of_each_format_agree_with_the_exact_record_on_both_backends() {
    let Some(gpu) = common::gpu("stats at the edges") else {
        return;
    };
    // One element per thread as well: chunks of 256 values, so that even short tensors reach
    // the combine of several partial records.
    let one_per_thread = Gpu::new(&GpuOptions {
        reduction_per_thread: Some(1),
        ..GpuOptions::from_env().unwrap()
    })
    .unwrap();
    for dtype in [DType::F32, DType::F16, DType::Bf16] {
        for (what, t) in cases(dtype) {
            let what = format!("{dtype} {what}");
            let exact = exact_record(&t);
            let len = t.len();
            let on_cpu = Cpu.stats(&t).unwrap();
            assert_record(
                &on_cpu,
                &exact,
                cpu_bounds(&exact),
                &format!("{what} (CPU)"),
            );
            for (g, per_thread) in [(&gpu, PER_THREAD), (&one_per_thread, 1)] {
                let on_gpu = g.stats(&g.upload(&t).unwrap()).unwrap();
                let where_ = format!("{what} (GPU, {per_thread} per thread)");
                assert_record(
                    &on_gpu,
                    &exact,
                    gpu_bounds(&exact, len, per_thread),
                    &where_,
                );
                assert_backends_agree(&on_cpu, &on_gpu, &where_);
            }
        }
    }
}

#[test]
fn norms_count_every_value_and_neither_overflow_nor_underflow_on_both_backends() {
    let Some(gpu) = common::gpu("norms at the edges") else {
        return;
    };
    let mut rng = common::rng(43);
    let n = 20_000;
    let noise = common::normal_tensor(&mut rng, DType::F32, 1, n, 1.0).to_f32_vec();
    let around = |unit: f32| -> Vec<f32> { noise.iter().map(|z| unit * (1.0 + z.abs())).collect() };
    let with = |mut v: Vec<f32>, at: usize, x: f32| {
        v[at] = x;
        v
    };
    let ordinary = around(1.0);
    let f16_of = |v: Vec<f32>| HostTensor::from_f32_as(DType::F16, 1, v.len(), &v).unwrap();
    let f32_of = |v: Vec<f32>| HostTensor::from_f32(1, v.len(), v).unwrap();
    let tensors = [
        // Squares beyond f32's range, and below its subnormals.
        f32_of(around(1e20)),
        f32_of(around(1e-25)),
        f32_of(vec![f32::MAX; 3]),
        f32_of(vec![f32::from_bits(1); 5]),
        f32_of(with(ordinary.clone(), n - 1, f32::INFINITY)),
        f32_of(with(ordinary.clone(), n - 1, f32::NEG_INFINITY)),
        f32_of(with(ordinary.clone(), 0, f32::NAN)),
        f32_of(with(with(ordinary.clone(), 0, f32::NAN), 1, f32::INFINITY)),
        f32_of(vec![f32::NEG_INFINITY; 2]),
        f32_of(vec![f32::NAN]),
        // Squares beyond f16's range, and below it.
        f16_of(vec![65504.0; n]),
        f16_of(vec![2f32.powi(-24); n]),
        f16_of(with(ordinary.clone(), n / 2, f32::NEG_INFINITY)),
        f16_of(with(ordinary.clone(), n / 2, f32::NAN)),
    ];
    let refs: Vec<&HostTensor> = tensors.iter().collect();
    let on_cpu = Cpu.norms(&refs).unwrap();
    let uploaded: Vec<_> = tensors.iter().map(|t| gpu.upload(t).unwrap()).collect();
    let on_gpu = gpu.norms(&uploaded.iter().collect::<Vec<_>>()).unwrap();
    for (i, t) in tensors.iter().enumerate() {
        let exact = exact_record(t);
        let (c, g, e) = (on_cpu[i], on_gpu[i], exact.l2_norm);
        let what = format!("tensor {i} ({} {} values)", t.dtype(), t.len());
        // The GPU's norm is its record's, of the f32 reduction.
        let record = gpu.stats(&uploaded[i]).unwrap();
        assert!(
            same(g, record.l2_norm),
            "{what}: {g:e} vs record {:e}",
            record.l2_norm
        );
        if e.is_finite() {
            // The CPU's sum of exact f64 squares: (n + 1)·u, and this file's reference.
            let cpu_bound = (t.len() as f64 + 4.0) * U * e;
            assert!((c - e).abs() <= cpu_bound, "{what}: CPU {c:e}, exact {e:e}");
            let gpu_bound = gpu_bounds(&exact, t.len(), PER_THREAD).l2;
            assert!((g - e).abs() <= gpu_bound, "{what}: GPU {g:e}, exact {e:e}");
            assert!(e > 0.0);
        } else {
            assert!(
                same(c, e) && same(g, e),
                "{what}: CPU {c:e}, GPU {g:e}, exact {e:e}"
            );
        }
        // JSON has no inf or NaN: both backends write null, or the same kind of number.
        let json = |v: f64| serde_json::to_value(v).unwrap();
        assert_eq!(json(c).is_null(), !e.is_finite(), "{what}");
        assert_eq!(json(g).is_null(), !e.is_finite(), "{what}");
    }
    // The exact norms are what they must be: +inf with an inf of either sign, NaN with a NaN.
    let kinds: Vec<&str> = on_cpu
        .iter()
        .map(|v| match v {
            v if v.is_nan() => "nan",
            v if v.is_infinite() => "inf",
            _ => "finite",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "finite", "finite", "finite", "finite", "inf", "inf", "nan", "nan", "inf", "nan",
            "finite", "finite", "inf", "nan"
        ]
    );
    assert!(on_cpu.iter().all(|v| v.is_nan() || *v > 0.0));
}

#[test]
fn clipping_by_an_infinite_or_nan_norm_follows_pytorch_on_both_backends() {
    // torch.nn.utils.clip_grad_norm_ (error_if_nonfinite=False) multiplies every gradient by
    // clamp(max_norm / (total_norm + 1e-6), max=1): a total norm of inf gives 0 (0·inf = NaN
    // where a gradient was inf, ±0 elsewhere), a NaN total norm gives NaN everywhere.
    let Some(gpu) = common::gpu("clipping by a non-finite norm") else {
        return;
    };
    let grads = |bad: f32| {
        [
            HostTensor::from_f32(1, 4, vec![1.5, bad, -2.0, 0.25]).unwrap(),
            HostTensor::from_f32(1, 2, vec![3.0, -1.0]).unwrap(),
        ]
    };
    fn clipped<B: Backend>(backend: &B, grads: &[HostTensor]) -> (f64, Vec<f32>) {
        let on: Vec<B::Tensor> = grads.iter().map(|g| backend.upload(g).unwrap()).collect();
        let norms = backend.norms(&on.iter().collect::<Vec<_>>()).unwrap();
        let total = norms.iter().map(|n| n * n).sum::<f64>().sqrt();
        let coefficient = clip_norm_coefficient(total, 1.0);
        let scaled = scale_all(backend, &on, coefficient, Precision::F32).unwrap();
        let values = scaled
            .iter()
            .flat_map(|s| backend.download(s).unwrap().to_f32_vec())
            .collect();
        (total, values)
    }
    for (bad, total) in [(f32::INFINITY, f64::INFINITY), (f32::NAN, f64::NAN)] {
        let g = grads(bad);
        let originals: Vec<f32> = g.iter().flat_map(|t| t.to_f32_vec()).collect();
        for (backend, (got_total, values)) in
            [("CPU", clipped(&Cpu, &g)), ("GPU", clipped(&gpu, &g))]
        {
            assert!(same(got_total, total), "{backend}: total norm {got_total}");
            for (x, y) in originals.iter().zip(&values) {
                if total.is_nan() || !x.is_finite() {
                    assert!(y.is_nan(), "{backend}: {x} clipped to {y}");
                } else {
                    assert_eq!(*y, 0.0, "{backend}: {x} clipped to {y}");
                }
            }
        }
    }
}

#[test]
fn a_run_clipped_by_a_nan_norm_makes_every_weight_gradient_nan_as_pytorch_does() {
    // One +∞ in the last layer's weight makes some of the gradients NaN and leaves the rest finite,
    // through ∞ − ∞ and 0·∞ alone, which no order of summation and no fusing of the
    // multiply-adds changes (an overflow of finite values would: a fused multiply-add gives
    // ∞ where an unfused one gives ∞ − ∞ = NaN). Their joint norm is NaN, and
    // clip_grad_norm_ then multiplies every gradient by NaN.
    let width = 16;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let weights: Vec<HostTensor> = (0..4)
        .map(|t| {
            let mut w: Vec<f32> = (0..width * width)
                .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * 0.5)
                .collect();
            if t == 3 {
                w[0] = f32::INFINITY;
            }
            HostTensor::from_f32(width, width, w).unwrap()
        })
        .collect();
    let config = NetworkConfig {
        activation: Activation::Relu,
        ..NetworkConfig::new(4, width, 8)
    }
    .with_given_parameters(GivenParameters::sequential("model", weights, vec![None; 4]));
    let clipped = NetworkConfig {
        clip: Some(Clip::Norm(1.0)),
        ..config.clone()
    };
    fn check<B: Backend>(backend: &B, config: &NetworkConfig, clipped: &NetworkConfig, what: &str) {
        let before = run(backend, config, Precision::F32, &mut |_, _| Ok(())).unwrap();
        let finite: u64 = (1..=4)
            .map(|t| before.layers[t].grad_weight.as_ref().unwrap().finite())
            .sum();
        let nan: u64 = (1..=4)
            .map(|t| before.layers[t].grad_weight.as_ref().unwrap().nan)
            .sum();
        assert!(
            finite > 0 && nan > 0,
            "{what}: {finite} finite, {nan} NaN gradients"
        );
        let after = run(backend, clipped, Precision::F32, &mut |_, _| Ok(())).unwrap();
        assert!(after.grad_norm_before_clip.unwrap().is_nan(), "{what}");
        assert!(after.clip_coefficient.unwrap().is_nan(), "{what}");
        for t in 1..=4 {
            let g = after.layers[t].grad_weight.as_ref().unwrap();
            assert_eq!(g.nan, g.count, "{what}: layer {t}");
        }
    }
    check(&Cpu, &config, &clipped, "CPU");
    if let Some(gpu) = common::gpu("a run clipped by a NaN norm") {
        check(&gpu, &config, &clipped, "GPU");
    }
}
