//! Activations and their derivatives on the GPU and the CPU against the exact f64 reference,
//! within the bound `Activation::error_bound_with` derives from the accuracy of `exp`: what
//! WGSL allows a device, and what the CPU backend's own `exp` guarantees (much tighter in f16).

mod common;

use gradstab::ops::activation::ExpAccuracy;
use gradstab::ops::result_distance;
use gradstab::verify::{run_activation, ACTIVATION_SPECIAL_POINTS};
use gradstab::{Activation, Backend, Cpu, Gpu, Precision};

/// The special points of `verify`, and a value inside tanh's polynomial range.
fn special_points() -> Vec<f64> {
    ACTIVATION_SPECIAL_POINTS.into_iter().chain([0.5]).collect()
}

fn run<B: Backend>(
    backend: &B,
    act: Activation,
    xs: &[f64],
    precision: Precision,
    derivative: bool,
) -> (Vec<f64>, Vec<f64>) {
    run_activation(backend, act, xs, precision, derivative).unwrap()
}

/// Asserts every output is within the bound of the exact value; returns the worst ratio.
fn check(
    name: &str,
    exp_accuracy: ExpAccuracy,
    act: Activation,
    inputs: &[f64],
    outputs: &[f64],
    precision: Precision,
    derivative: bool,
) -> f64 {
    let exact_act = act.rounded_to(precision.arithmetic());
    let mut worst: f64 = 0.0;
    for (&x, &got) in inputs.iter().zip(outputs) {
        let exact = if derivative {
            exact_act.reference_derivative(x)
        } else {
            exact_act.reference(x)
        };
        // A result beyond the storage range rounds to inf: that is the exact stored answer.
        // Otherwise the bound is on the distance from the true value, not from its rounding.
        let stored = precision.storage().round(exact);
        let exact = if stored.is_infinite() { stored } else { exact };
        let bound = act.error_bound_with(x, precision, derivative, exp_accuracy);
        let err = result_distance(got, exact);
        assert!(
            err <= bound,
            "{name} {act} {precision} {}: x = {x:e}: got {got:e}, exact {exact:e}, error {err:e} > bound {bound:e}",
            if derivative { "derivative" } else { "forward" }
        );
        worst = worst.max(if bound > 0.0 { err / bound } else { 0.0 });
    }
    worst
}

fn both_backends(
    test: &str,
    xs: &[f64],
    also: impl Fn(Activation, Precision, bool, &[f64], &[f64]),
) {
    let gpu: Option<(Gpu, gradstab::gpu::probe::ProbeReport)> = common::gpu_with_probe(test);
    for act in Activation::representatives() {
        for precision in Precision::ALL {
            for derivative in [false, true] {
                let (inputs, cpu_out) = run(&Cpu, act, xs, precision, derivative);
                let w_cpu = check(
                    "cpu",
                    ExpAccuracy::CPU,
                    act,
                    &inputs,
                    &cpu_out,
                    precision,
                    derivative,
                );
                also(act, precision, derivative, &inputs, &cpu_out);
                if let Some((gpu, probe)) = gpu.as_ref().filter(|(g, _)| {
                    let ok = g.supports(precision);
                    if !ok {
                        eprintln!("SKIPPED {test} {act} on the GPU in {precision}: no SHADER_F16");
                    }
                    ok
                }) {
                    let wgsl = ExpAccuracy::wgsl_device(probe.flushes_subnormals());
                    let (_, gpu_out) = run(gpu, act, xs, precision, derivative);
                    let w_gpu = check("gpu", wgsl, act, &inputs, &gpu_out, precision, derivative);
                    also(act, precision, derivative, &inputs, &gpu_out);
                    println!(
                        "{test}: {act:>16} {precision:>8} {:>10}: worst error/bound cpu {w_cpu:.3} gpu {w_gpu:.3}",
                        if derivative { "derivative" } else { "forward" }
                    );
                }
            }
        }
    }
}

#[test]
fn special_points_match_the_exact_values_and_saturate_exactly() {
    both_backends(
        "special points",
        &special_points(),
        |act, precision, derivative, xs, ys| {
            for (&x, &y) in xs.iter().zip(ys) {
                if x.is_nan() {
                    assert!(
                        y.is_nan(),
                        "{act} {precision}: NaN in must give NaN out, got {y}"
                    );
                    continue;
                }
                // Saturation to the exact limits at |x| ≥ 1e4 (and ±inf).
                if x.abs() >= 1e4 {
                    let limit = match (act, derivative, x > 0.0) {
                        (Activation::Sigmoid, false, up) => Some(if up { 1.0 } else { 0.0 }),
                        (Activation::Tanh, false, up) => Some(if up { 1.0 } else { -1.0 }),
                        (Activation::ScaledSigmoid, false, up) => Some(if up { 2.0 } else { -2.0 }),
                        (
                            Activation::Sigmoid | Activation::Tanh | Activation::ScaledSigmoid,
                            true,
                            _,
                        ) => Some(0.0),
                        _ => None,
                    };
                    if let Some(limit) = limit {
                        assert_eq!(y, limit, "{act} {precision} derivative={derivative} at {x}");
                    }
                }
                if act == Activation::Relu && derivative && x == 0.0 {
                    assert_eq!(y, 0.0, "relu'(0) = 0, as in PyTorch");
                }
            }
        },
    );
}

#[test]
fn dense_grid_matches_the_exact_values() {
    let xs: Vec<f64> = (-2560..=2560).map(|i| i as f64 / 128.0).collect();
    both_backends("dense grid", &xs, |_, _, _, _, ys| {
        assert!(ys.iter().all(|y| y.is_finite()));
    });
}

#[test]
fn f16_sigmoid_has_no_nan_where_exp_would_overflow() {
    // exp(x) overflows f16 above about 11.09: a naive 1/(1 + exp(−x)) at x = −12 would see inf.
    let xs = [-17.0, -12.0, -11.5, 11.5, 12.0, 17.0];
    for act in [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::ScaledSigmoid,
    ] {
        for derivative in [false, true] {
            let (_, ys) = run(&Cpu, act, &xs, Precision::F16, derivative);
            assert!(ys.iter().all(|y| y.is_finite()), "{act}: {ys:?}");
        }
    }
}

#[test]
fn cpu_derivatives_agree_with_finite_differences() {
    // Central differences in f32: truncation h²·max|f'''|/6 ≤ h² (|f'''| ≤ 2 for all of these)
    // plus cancellation 2·u·max|f|/(2h) ≤ u·(|f| + 1)/h, with u = 2^-24 and h = 2^-7.
    let h = 2f64.powi(-7);
    let u = 2f64.powi(-24);
    for act in Activation::representatives() {
        let xs: Vec<f64> = (-400..=400).map(|i| i as f64 / 50.0 + 0.003).collect();
        let plus: Vec<f64> = xs.iter().map(|x| x + h).collect();
        let minus: Vec<f64> = xs.iter().map(|x| x - h).collect();
        let (_, f_plus) = run(&Cpu, act, &plus, Precision::F32, false);
        let (_, f_minus) = run(&Cpu, act, &minus, Precision::F32, false);
        let (inputs, deriv) = run(&Cpu, act, &xs, Precision::F32, true);
        for i in 0..xs.len() {
            if inputs[i].abs() < 2.0 * h {
                continue; // the kink of relu and leaky relu lies inside the stencil
            }
            let fd = (f_plus[i] - f_minus[i]) / (2.0 * h);
            let tol = h * h + u * (f_plus[i].abs() + 1.0) / h * 4.0;
            assert!(
                (fd - deriv[i]).abs() <= tol,
                "{act} at {}: derivative {} vs finite difference {fd} (tol {tol:e})",
                inputs[i],
                deriv[i]
            );
        }
    }
}

#[test]
fn the_bounds_are_no_looser_than_their_analysis() {
    // A bound must be tight enough to catch a wrong result. At ordinary arguments (|x| ≤ 3,
    // results far from the subnormals) the analysis of shaders/activation.wgsl gives, in units
    // of u: with an exp of c ULP, sigmoid 4c + 4, sigmoid' 8c + 9, tanh (|x| ≥ 1/8) 8c' + 10
    // with c' the exp's ULP at 2|x|, tanh' 4c' + 5, the scaled sigmoid 8c + 12 and its
    // derivative 4c + 6, and leaky relu 1. So with the CPU's exp (c = 1 in f32, just above 1/2
    // in f16) no bound exceeds 20u·|exact|, and with WGSL's (c = 3 + 2t in f32, 1 + 2t in f16)
    // none exceeds 8·(3 + 12)·u + 10u = 130u, u of the arithmetic type. Below tanh's polynomial
    // threshold the bound is 2u (4u for the scaled sigmoid below |x| = 1/4): a result 3 ULPs
    // (6u) off must fail it.
    for precision in [Precision::F32, Precision::F16] {
        let u = precision.arithmetic().unit_roundoff();
        let xs = [
            -3.0, -1.5, -0.7, -0.3, -0.2, -0.1, 0.05, 0.1, 0.2, 0.3, 0.7, 1.5, 3.0,
        ];
        for act in Activation::representatives() {
            for derivative in [false, true] {
                for &x in &xs {
                    let exact = if derivative {
                        act.reference_derivative(x)
                    } else {
                        act.reference(x)
                    };
                    // αx + β is held to its terms, |αx| + |β|, which cancellation can leave far
                    // above the result.
                    let exact = match (act, derivative) {
                        (Activation::Linear { alpha, beta }, false) => {
                            (alpha as f64 * x).abs() + (beta as f64).abs()
                        }
                        _ => exact,
                    };
                    let cpu = act.error_bound_with(x, precision, derivative, ExpAccuracy::CPU);
                    let wgsl = act.error_bound(x, precision, derivative);
                    // The subnormal floor of seven roundings (six operations and the store):
                    // kept subnormals on the CPU, flushed ones under WGSL's allowance.
                    let floor = 7.0 * precision.arithmetic().subnormal_half_spacing();
                    let flushed_floor = 7.0 * precision.arithmetic().min_normal();
                    let what = format!(
                        "{act} {} at {x} in {precision}",
                        if derivative { "'" } else { "" }
                    );
                    assert!(
                        cpu <= 20.001 * u * exact.abs() + floor,
                        "{what}: CPU bound {cpu:e}"
                    );
                    assert!(
                        wgsl <= 130.001 * u * exact.abs() + flushed_floor,
                        "{what}: WGSL bound {wgsl:e}"
                    );
                    // A worse exp never tightens a bound.
                    assert!(wgsl >= cpu, "{what}: WGSL {wgsl:e} below CPU {cpu:e}");
                    // 2·tanh(x/2) takes the polynomial below |x| = 1/4: 2u, plus 2u for the halving
                    // and doubling around it.
                    if act == Activation::ScaledSigmoid && !derivative && x.abs() < 0.25 {
                        assert!(cpu <= 4.001 * u * exact.abs() + floor, "{what}: {cpu:e}");
                    }
                    if act == Activation::Tanh && !derivative && x.abs() < 0.125 {
                        assert!(cpu <= 2.001 * u * exact.abs() + floor, "{what}: {cpu:e}");
                    }
                }
            }
        }
    }
    // The accuracy a device's probe reports is the one its bound uses.
    assert!(!ExpAccuracy::wgsl_device(false).flushes_subnormals);
    assert!(ExpAccuracy::wgsl_device(true).flushes_subnormals);
}
