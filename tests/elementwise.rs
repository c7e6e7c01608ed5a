//! Elementwise kernels (hadamard, scale, axpy) on the GPU against the CPU reference.

mod common;

use gradstab::verify::compare_elementwise;
use gradstab::{Backend, Cpu, ElementwiseOp, HostTensor, Precision};

fn run<B: Backend>(
    backend: &B,
    op: ElementwiseOp,
    x: &HostTensor,
    y: &HostTensor,
    s: f32,
    precision: Precision,
) -> Vec<f64> {
    let (xt, yt) = (backend.upload(x).unwrap(), backend.upload(y).unwrap());
    let out = match op {
        ElementwiseOp::Hadamard => backend.hadamard(&xt, &yt, precision),
        ElementwiseOp::Scale => backend.scale(&xt, s, precision),
        ElementwiseOp::Axpy => backend.axpy(s, &xt, &yt, precision),
        ElementwiseOp::Clamp => backend.clamp_abs(&xt, s, precision),
    }
    .unwrap();
    backend.download(&out).unwrap().to_f64_vec()
}

#[test]
fn gpu_matches_cpu_across_the_whole_range() {
    let Some((gpu, probe)) = common::gpu_with_probe("elementwise") else {
        return;
    };
    // Magnitudes from 2^-30 to 2^30, so that f16 sees overflow, subnormals and zeros.
    for (len, seed) in [(1, 1), (2, 2), (3, 3), (257, 4), (10_007, 5)] {
        for op in ElementwiseOp::ALL {
            for precision in common::precisions(&gpu, "elementwise") {
                let cmp =
                    compare_elementwise(&gpu, probe.flushes_subnormals(), op, precision, len, seed)
                        .unwrap();
                assert!(cmp.passed(), "{}", cmp.first_failure.unwrap());
                assert_eq!(cmp.elements, len);
            }
        }
    }
}

#[test]
fn each_op_is_shown_by_its_name() {
    // verify's rows and every error message name an op by its Display.
    let names: Vec<String> = ElementwiseOp::ALL.iter().map(|op| op.to_string()).collect();
    assert_eq!(names, ["hadamard", "scale", "axpy", "clamp"]);
}

#[test]
fn products_are_exact_where_they_fit() {
    // hadamard and scale are one correctly rounded operation: small integers come out exact.
    let x = HostTensor::from_f32(1, 4, vec![3.0, -5.0, 0.5, 1024.0]).unwrap();
    let y = HostTensor::from_f32(1, 4, vec![7.0, 11.0, -0.25, 64.0]).unwrap();
    let expected = [21.0, -55.0, -0.125, 65536.0];
    let got = run(&Cpu, ElementwiseOp::Hadamard, &x, &y, 0.0, Precision::F32);
    assert_eq!(got, expected);
    // In f16, 1024 · 64 = 65536 overflows to inf.
    let got = run(
        &Cpu,
        ElementwiseOp::Hadamard,
        &x.cast(gradstab::DType::F16),
        &y.cast(gradstab::DType::F16),
        0.0,
        Precision::F16,
    );
    assert_eq!(got[3], f64::INFINITY);
    if let Some(gpu) = common::gpu("elementwise exact products") {
        assert_eq!(
            run(&gpu, ElementwiseOp::Hadamard, &x, &y, 0.0, Precision::F32),
            expected
        );
        let got = run(&gpu, ElementwiseOp::Axpy, &x, &y, 2.0, Precision::F32);
        assert_eq!(got, [13.0, 1.0, 0.75, 2112.0]);
        let got = run(&gpu, ElementwiseOp::Clamp, &x, &y, 4.0, Precision::F32);
        assert_eq!(got, [3.0, -4.0, 0.5, 4.0]);
    }
}

#[test]
fn a_result_three_units_in_the_last_place_off_breaks_every_bound() {
    // A bound must be tight enough to catch a wrong result, not only loose enough to pass a
    // right one: with x = y = a = 1 (exact results 1 or 2), a result three ULPs of the storage
    // type away from the exact one exceeds each op's bound in every precision.
    for precision in Precision::ALL {
        let mantissa_bits = precision.storage().spec().mantissa_bits as i32;
        for op in ElementwiseOp::ALL {
            let exact: f64 = if op == ElementwiseOp::Axpy { 2.0 } else { 1.0 };
            let ulp = 2f64.powi(exact.log2().floor() as i32 - mantissa_bits);
            let wrong = exact + 3.0 * ulp;
            for flushes in [false, true] {
                let bound = op.error_bound(precision, 1.0, wrong, exact, flushes);
                assert!(
                    (wrong - exact).abs() > bound,
                    "{op} {precision} (flushing {flushes}): bound {bound:e} lets 3 ULPs ({:e}) pass",
                    wrong - exact
                );
            }
        }
    }
}

#[test]
fn the_distance_every_comparison_uses_counts_a_disagreement_in_kind_as_infinite() {
    use gradstab::ops::result_distance;
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    assert_eq!(result_distance(1.0, 3.5), 2.5);
    assert_eq!(result_distance(-2.0, 2.0), 4.0);
    assert_eq!(result_distance(nan, nan), 0.0);
    assert_eq!(result_distance(inf, inf), 0.0);
    assert_eq!(result_distance(-inf, -inf), 0.0);
    for (a, b) in [
        (nan, 1.0),
        (1.0, nan),
        (inf, -inf),
        (inf, 1e300),
        (-1e300, -inf),
        (nan, inf),
    ] {
        assert_eq!(result_distance(a, b), inf, "{a} vs {b}");
    }
}

/// One element of `y + a·x` (or `a·x`) as a conforming device may compute it: with the product
/// rounded or fused into the sum, keeping or flushing subnormals. Emulated in f64, independent
/// of the CPU backend's code.
#[derive(Clone, Copy, Debug)]
struct Form {
    fused: bool,
    flushes: bool,
}

/// Correct rounding of `y + p` to f64 *to odd*: a later rounding to f32 or f16 (to nearest) is
/// then a single correct rounding of the exact sum, since f64 has more than 24 + 2 bits.
fn sum_rounded_to_odd(y: f64, p: f64) -> f64 {
    let s = y + p;
    // Knuth's TwoSum: s + e == y + p exactly.
    let yy = s - p;
    let pp = s - yy;
    let e = (y - yy) + (p - pp);
    if e == 0.0 || !s.is_finite() || s.to_bits() & 1 == 1 {
        return s;
    }
    // s is even and inexact: step one unit towards the exact value, which makes it odd.
    let toward = if (e > 0.0) == (s > 0.0) { 1 } else { -1i64 };
    f64::from_bits((s.to_bits() as i64 + toward) as u64)
}

fn round_to(dtype: gradstab::DType, x: f64) -> f64 {
    match dtype {
        gradstab::DType::F32 => x as f32 as f64,
        gradstab::DType::F16 => gradstab::precision::f16_from_f64(x).to_f64(),
        // The format table's own rounding, checked exhaustively in tests/formats.rs.
        other => other.round_f64(x),
    }
}

fn flush(dtype: gradstab::DType, x: f64, flushes: bool) -> f64 {
    if flushes && x.abs() < dtype.min_normal() {
        0.0f64.copysign(x)
    } else {
        x
    }
}

/// `y + a·x` (or `a·x` when `y` is None) under `form`, stored in `precision`'s storage type.
fn emulate(precision: Precision, form: Form, a: f64, x: f64, y: Option<f64>) -> f64 {
    let arith = precision.arithmetic();
    let r = |v: f64| flush(arith, round_to(arith, v), form.flushes);
    let exact_product = a * x; // exact: 24 + 24 bits fit in f64
    let c = match y {
        None => r(exact_product),
        Some(y) if form.fused => r(sum_rounded_to_odd(y, exact_product)),
        Some(y) => r(sum_rounded_to_odd(y, r(exact_product))),
    };
    flush(
        precision.storage(),
        round_to(precision.storage(), c),
        form.flushes,
    )
}

/// A random value of `dtype` with a random exponent in `[lo, hi)` (powers of two).
fn draw(rng: &mut impl rand::Rng, dtype: gradstab::DType, lo: i32, hi: i32) -> f64 {
    let v = (1.0 + rng.random::<f64>()) * 2f64.powi(rng.random_range(lo..hi));
    let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
    round_to(dtype, sign * v)
}

/// The spacing of `dtype`'s numbers around the normal value `v`.
fn ulp(dtype: gradstab::DType, v: f64) -> f64 {
    2.0 * dtype.unit_roundoff() * 2f64.powi(v.abs().log2().floor() as i32)
}

fn max_finite(dtype: gradstab::DType) -> f64 {
    dtype.spec().max_finite()
}

#[test]
fn fused_and_unfused_flushing_and_not_stay_within_each_others_bound() {
    // `error_bound` is what two conforming devices may differ by. Emulating every form a
    // device may take (product rounded or fused into the sum; subnormals kept or flushed) and
    // holding each pair to it tests the bound without depending on what this machine's device
    // happens to do. The counts at the end check that the cases which need each term of the
    // bound actually occur.
    use gradstab::DType;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let forms = [false, true].map(|fused| [false, true].map(|flushes| Form { fused, flushes }));
    let forms: Vec<Form> = forms.into_iter().flatten().collect();
    let mut rng = StdRng::seed_from_u64(9);
    for precision in Precision::ALL {
        let (arith, storage) = (precision.arithmetic(), precision.storage());
        // Exponents that reach the subnormals of the storage type from above.
        let (lo, hi) = match storage {
            DType::F16 => (-14, 7),
            // bf16 shares f32's exponent range.
            _ => (-75, 20),
        };
        let sign = |rng: &mut StdRng| if rng.random::<bool>() { 1.0 } else { -1.0 };
        let (mut fused_differs, mut flushing_differs, mut beyond_one_unit) = (0, 0, 0);
        for case in 0..40_000 {
            let x = draw(&mut rng, storage, lo, hi);
            let y = draw(&mut rng, storage, lo, hi);
            // The scalar is rounded to the arithmetic type (f32 in f16acc32), as the kernels do.
            let a_toward = |target: f64| round_to(arith, (target - y) / x);
            let a = match case % 4 {
                // Anything.
                0 => draw(&mut rng, arith, lo, hi),
                // Cancellation: a·x close to −y, where the product's rounding is all that is left.
                1 => a_toward(0.0) * (1.0 + rng.random_range(-1e-3..1e-3)),
                // y + a·x near a midpoint of the arithmetic type: one rounding and two disagree.
                2 => {
                    let units = rng.random_range(0..4) as f64 + 0.5;
                    a_toward(y + sign(&mut rng) * units * ulp(arith, y))
                }
                // Near a midpoint of the arithmetic type next to a midpoint of the storage type:
                // two arithmetic results one unit apart round to different stored values.
                _ => {
                    let m = y + sign(&mut rng) * ulp(storage, y) / 2.0;
                    a_toward(m + sign(&mut rng) * ulp(arith, m) / 2.0)
                }
            };
            let a = round_to(arith, a);
            let p = a * x;
            if !(a.is_finite() && (y.abs() + p.abs()) < max_finite(storage) / 2.0) {
                continue;
            }
            for op in [ElementwiseOp::Axpy, ElementwiseOp::Scale] {
                let y = (op == ElementwiseOp::Axpy).then_some(y);
                let results: Vec<f64> = forms
                    .iter()
                    .map(|&f| emulate(precision, f, a, x, y))
                    .collect();
                for (i, &fi) in forms.iter().enumerate() {
                    for (j, &fj) in forms.iter().enumerate().skip(i + 1) {
                        let (ci, cj) = (results[i], results[j]);
                        let flushes = fi.flushes || fj.flushes;
                        let bound = op.error_bound(precision, p.abs(), ci, cj, flushes);
                        assert!(
                            (ci - cj).abs() <= bound,
                            "{op} {precision}: a = {a:e}, x = {x:e}, y = {y:?}: {fi:?} gives \
                             {ci:e}, {fj:?} gives {cj:e}, {:e} apart, beyond the bound {bound:e}",
                            (ci - cj).abs()
                        );
                        if ci == cj {
                            continue;
                        }
                        if !fi.flushes && !fj.flushes {
                            fused_differs += 1;
                            // Larger than one unit of the arithmetic type: the store made it.
                            if (ci - cj).abs() > ulp(arith, ci.abs().max(cj.abs())) {
                                beyond_one_unit += 1;
                            }
                        }
                        if fi.fused == fj.fused {
                            flushing_differs += 1;
                        }
                    }
                }
            }
        }
        let store_matters = precision == Precision::F16Accumulate32;
        assert!(
            fused_differs > 100
                && flushing_differs > 100
                && (!store_matters || beyond_one_unit > 10),
            "{precision}: only {fused_differs} fused/unfused, {flushing_differs} flushing and \
             {beyond_one_unit} beyond one arithmetic unit: the cases do not reach what the bound is for"
        );
        println!(
            "{precision}: {fused_differs} fused/unfused, {flushing_differs} flushing, \
             {beyond_one_unit} beyond one arithmetic unit"
        );
    }
}
