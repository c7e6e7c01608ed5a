//! The censuses training reads of each optimizer step, ‖ΔW‖ with ΔW's class counts and the new
//! ‖W‖, which `Backend::optimizer_step_census` returns instead of ΔW. The CPU takes them
//! inside the update's pass, never storing ΔW; they must be, bit for bit, the censuses of
//! the tensors `optimizer_step` leaves (ΔW and the new master or model), and the step must
//! leave the same weights, state and model copy. Checked for every optimizer and precision on
//! tensors of several pieces with a ragged tail, and against an f64 norm of W_new − W_old.

mod common;

use gradstab::ops::optimizer::{
    self, OptimizerConfig, OptimizerKind, Params, StepScalars, StepTensors,
};
use gradstab::ops::reduce::census::census;
use gradstab::stats::Census;
use gradstab::{Backend, Cpu, DType, HostTensor, Precision};
use rand::Rng;

/// The tensors of one parameter: gradient (storage), master or model (master dtype), state
/// (master dtype), model copy (storage) in mixed precision.
#[derive(Clone)]
struct State {
    param: HostTensor,
    first: Option<HostTensor>,
    second: Option<HostTensor>,
    model: Option<HostTensor>,
}

fn configs() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::new(OptimizerKind::Sgd),
        OptimizerConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
            ..OptimizerConfig::new(OptimizerKind::Sgd)
        },
        OptimizerConfig::new(OptimizerKind::Adam),
        OptimizerConfig::new(OptimizerKind::AdamW),
    ]
}

/// Weights of order 1 over many binades, some zero; a gradient with zeros (plain SGD leaves
/// those weights unchanged: ΔW's zero count), tiny values (ΔW rounds to zero against its
/// weight), and, where `non_finite`, an inf and a NaN.
fn tensors(
    len: usize,
    precision: Precision,
    config: &OptimizerConfig,
    seed: u64,
    non_finite: bool,
) -> (HostTensor, State) {
    let mut rng = common::rng(seed);
    let master = optimizer::master_dtype(precision);
    let storage = precision.storage();
    let w: Vec<f32> = (0..len)
        .map(|i| {
            if i % 97 == 0 {
                0.0
            } else {
                rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-8..3))
            }
        })
        .collect();
    let mut g: Vec<f32> = (0..len)
        .map(|i| match i % 13 {
            0 => 0.0,
            1 => 1e-30,
            _ => rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-6..4)),
        })
        .collect();
    if non_finite {
        g[len / 3] = f32::INFINITY;
        g[len - 2] = f32::NAN;
    }
    let (rows, cols) = (1, len);
    let t = |dtype: DType, v: Vec<f32>| HostTensor::from_f32_vec_as(dtype, rows, cols, v).unwrap();
    let zeros = || t(master, vec![0.0; len]);
    let model = optimizer::has_model_copy(precision).then(|| t(storage, w.clone()));
    let state = State {
        param: t(master, w),
        first: (config.state_tensors() >= 1).then(zeros),
        second: (config.state_tensors() >= 2).then(zeros),
        model,
    };
    (t(storage, g), state)
}

fn params(config: &OptimizerConfig, step: u64, len: usize, precision: Precision) -> Params {
    let scalars = StepScalars {
        lr: 0.01,
        step,
        grad_scale: 1.0,
        clip_value: None,
        clip_coefficient: 1.0,
    };
    Params::new(config, &scalars, len, precision)
}

fn step_tensors<'a>(grad: &'a HostTensor, s: &'a mut State) -> StepTensors<'a, HostTensor> {
    StepTensors {
        grad,
        param: &mut s.param,
        first_moment: s.first.as_mut(),
        second_moment: s.second.as_mut(),
        model: s.model.as_mut(),
    }
}

fn same_census(got: &Census, want: &Census, what: &str) {
    let counts = |c: &Census| (c.count, c.zero, c.subnormal, c.nan, c.pos_inf, c.neg_inf);
    assert_eq!(counts(got), counts(want), "{what}: counts");
    assert!(
        got.l2_norm.to_bits() == want.l2_norm.to_bits()
            || (got.l2_norm.is_nan() && want.l2_norm.is_nan()),
        "{what}: norm {:e} against {:e}",
        got.l2_norm,
        want.l2_norm
    );
}

fn same_tensor(got: &HostTensor, want: &HostTensor, what: &str) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{what} at {i}: {a:e} against {b:e}"
        );
    }
}

/// Two steps (the second takes momentum's and Adam's later-step paths) of each optimizer in
/// `precision` on `len` values, through `optimizer_step` and `optimizer_step_census` from the
/// same state.
fn check(len: usize, precision: Precision, non_finite: bool) {
    let cpu = Cpu::new();
    for config in configs() {
        let what = format!("{} {precision} len {len}", config.kind);
        let (grad, start) = tensors(len, precision, &config, len as u64, non_finite);
        let (mut plain, mut fused) = (start.clone(), start);
        for step in 1..=2 {
            let what = format!("{what} step {step}");
            let p = params(&config, step, len, precision);
            let before = plain.param.to_f32_vec();
            let delta = cpu
                .optimizer_step(config.kind, &p, step_tensors(&grad, &mut plain), precision)
                .unwrap();
            let got = cpu
                .optimizer_step_census(config.kind, &p, step_tensors(&grad, &mut fused), precision)
                .unwrap();
            // The step itself: the same tensors either way.
            same_tensor(&fused.param, &plain.param, &format!("{what}: weights"));
            for (f, q, name) in [
                (&fused.first, &plain.first, "first moment"),
                (&fused.second, &plain.second, "second moment"),
                (&fused.model, &plain.model, "model copy"),
            ] {
                if let (Some(f), Some(q)) = (f, q) {
                    same_tensor(f, q, &format!("{what}: {name}"));
                }
            }
            // The censuses: those of the stored ΔW and of the weights the step left.
            let update = Census::of(&got.update);
            same_census(
                &update,
                &census(delta.data().view()),
                &format!("{what}: ΔW"),
            );
            same_census(
                &Census::of(&got.weight),
                &census(plain.param.data().view()),
                &format!("{what}: W"),
            );
            // And ‖ΔW‖ against W_new − W_old in f64 (each difference is f32's, exactly as
            // the step forms it): within the census's (n + 1)/2·u₆₄ and a few u₆₄ more.
            let after = plain.param.to_f32_vec();
            let squares: f64 = before
                .iter()
                .zip(&after)
                .map(|(b, a)| ((a - b) as f64).powi(2))
                .sum();
            if update.nan == 0 && update.pos_inf + update.neg_inf == 0 {
                let bound = ((len as f64 + 1.0) / 2.0 + 4.0) * f64::EPSILON * squares.sqrt();
                assert!(
                    (update.l2_norm - squares.sqrt()).abs() <= bound,
                    "{what}: ‖ΔW‖ {:e} against {:e}",
                    update.l2_norm,
                    squares.sqrt()
                );
                // Plain SGD leaves a weight unchanged where its gradient is 0 or too small
                // to move it: at least every thirteenth.
                if config == OptimizerConfig::new(OptimizerKind::Sgd) {
                    assert!(update.zero >= len as u64 / 13, "{what}: {update:?}");
                }
            } else {
                // Pure f16's Adam rounds eps = 1e-8 to 0, so a zero gradient's update is
                // 0/0 = NaN, as under PyTorch's model.half(); otherwise only a non-finite
                // gradient makes a non-finite update.
                let eps_underflows =
                    precision == Precision::F16 && config.kind != OptimizerKind::Sgd;
                assert!(
                    non_finite || eps_underflows,
                    "{what}: a non-finite ΔW from finite gradients"
                );
            }
        }
    }
}

/// Three census pieces (2^16 values each) and a tail that is not a whole group of 16; a
/// tensor smaller than one group; one of exactly one piece.
#[test]
fn the_fused_censuses_are_those_of_the_stored_update_and_weights() {
    for precision in Precision::ALL {
        for len in [2 * 65_536 + 1_000 + 9, 13, 65_536] {
            check(len, precision, false);
        }
    }
}

/// An inf and a NaN gradient: ΔW's NaN count and its norm (NaN) as stored.
#[test]
fn non_finite_updates_are_counted_as_stored() {
    for precision in [Precision::F32, Precision::F16Accumulate32, Precision::Bf16] {
        check(65_536 + 33, precision, true);
    }
}

/// The GPU takes the default path (ΔW stored, both censuses started on the device); its
/// norms against the f64 norms of the tensors it leaves.
#[test]
fn gpu_step_census_matches_its_tensors() {
    let Some(gpu) = common::gpu("gpu_step_census_matches_its_tensors") else {
        return;
    };
    let precision = Precision::F32;
    let len = 1_000 + 9;
    for config in configs() {
        let (grad, start) = tensors(len, precision, &config, 5, false);
        let up = |t: &HostTensor| gpu.upload(t).unwrap();
        let (grad, mut param) = (up(&grad), up(&start.param));
        let mut first = start.first.as_ref().map(up);
        let mut second = start.second.as_ref().map(up);
        let p = params(&config, 1, len, precision);
        let got = gpu
            .optimizer_step_census(
                config.kind,
                &p,
                StepTensors {
                    grad: &grad,
                    param: &mut param,
                    first_moment: first.as_mut(),
                    second_moment: second.as_mut(),
                    model: None,
                },
                precision,
            )
            .unwrap();
        let records = gpu.collect_stats(vec![got.update, got.weight]).unwrap();
        let before = start.param.to_f32_vec();
        let after = gpu.download(&param).unwrap().to_f32_vec();
        let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| (x as f64).powi(2)).sum::<f64>();
        let delta = norm(&mut before.iter().zip(&after).map(|(b, a)| a - b)).sqrt();
        let weight = norm(&mut after.iter().copied()).sqrt();
        // The device's reduction sums f32 squares in f32 pairs: a generous 1e-5 relative.
        // ΔW on a GPU may differ by w − lr·g's rounding (train_steps.rs), far inside it.
        for (got, want, what) in [
            (records[0].l2_norm, delta, "ΔW"),
            (records[1].l2_norm, weight, "W"),
        ] {
            assert!(
                (got - want).abs() <= 1e-5 * want,
                "{} {what}: {got:e} against {want:e}",
                config.kind
            );
        }
        assert_eq!(records[0].count, len as u64);
    }
}
