//! Training's pieces against closed forms: each optimizer's first two steps by hand, the
//! losses against f64, GradScaler's skip, backoff and growth, and the whole first step's
//! gradient against central finite differences of an f64 model.

mod common;

use gradstab::ops::loss::LossKind;
use gradstab::ops::optimizer::{
    self, OptimizerConfig, OptimizerKind, Params, StepScalars, StepTensors,
};
use gradstab::train::{DynamicScaling, LossScale, Scaler};
use gradstab::{Backend, Cpu, HostTensor, Precision};

fn row(v: &[f32]) -> HostTensor {
    HostTensor::from_f32(1, v.len(), v.to_vec()).unwrap()
}

/// Two steps of `config` on w with gradients g1 then g2, on `backend` in f32; returns w
/// after each step.
fn two_steps<B: Backend>(
    backend: &B,
    config: OptimizerConfig,
    lr: f64,
    w: &[f32],
    g1: &[f32],
    g2: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let p = Precision::F32;
    let mut param = backend.upload(&row(w)).unwrap();
    let zeros = vec![0.0; w.len()];
    let mut first = (config.state_tensors() >= 1).then(|| backend.upload(&row(&zeros)).unwrap());
    let mut second = (config.state_tensors() >= 2).then(|| backend.upload(&row(&zeros)).unwrap());
    let mut after = Vec::new();
    for (step, g) in [g1, g2].into_iter().enumerate() {
        let grad = backend.upload(&row(g)).unwrap();
        let scalars = StepScalars {
            lr,
            step: step as u64 + 1,
            grad_scale: 1.0,
            clip_value: None,
            clip_coefficient: 1.0,
        };
        let params = Params::new(&config, &scalars, w.len(), p);
        let before = backend.download(&param).unwrap().to_f32_vec();
        let delta = backend
            .optimizer_step(
                config.kind,
                &params,
                StepTensors {
                    grad: &grad,
                    param: &mut param,
                    first_moment: first.as_mut(),
                    second_moment: second.as_mut(),
                    model: None,
                },
                p,
            )
            .unwrap();
        let now = backend.download(&param).unwrap().to_f32_vec();
        // The step hands back W_new − W_old (for ‖ΔW‖): exactly on the CPU; a shader
        // compiler may fold (w − lr·g) − w to −lr·g, which differs by the rounding of w − lr·g,
        // half a unit of the larger weight.
        let delta = backend.download(&delta).unwrap().to_f32_vec();
        for i in 0..w.len() {
            let exact = now[i] as f64 - before[i] as f64;
            let rounding = 2f64.powi(-24) * now[i].abs().max(before[i].abs()) as f64;
            assert!(
                (delta[i] as f64 - exact).abs() <= rounding,
                "ΔW of element {i}: {} against {exact}",
                delta[i]
            );
        }
        after.push(now);
    }
    (after[0].clone(), after[1].clone())
}

fn close(got: &[f32], want: &[f64], what: &str) {
    for (g, w) in got.iter().zip(want) {
        // A handful of f32 roundings, each ≤ 2^-24 relative, on values of order 1.
        assert!(
            (*g as f64 - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{what}: got {g}, want {w}"
        );
    }
}

/// Each optimizer's two steps by hand (torch.optim's documented update rules).
fn check_closed_forms<B: Backend>(backend: &B) {
    let w = [1.0f32, -2.0];
    let g1 = [0.5f32, 0.25];
    let g2 = [-1.0f32, 2.0];
    let (lr, mu, wd) = (0.1, 0.9, 0.01);

    // SGD, momentum μ, weight decay λ: d = g + λw; b1 = d1, b2 = μ b1 + d2; w −= lr·b.
    let sgd = OptimizerConfig {
        momentum: mu,
        weight_decay: wd,
        ..OptimizerConfig::new(OptimizerKind::Sgd)
    };
    let (s1, s2) = two_steps(backend, sgd, lr, &w, &g1, &g2);
    let mut want1 = [0.0; 2];
    let mut want2 = [0.0; 2];
    for i in 0..2 {
        let d1 = g1[i] as f64 + wd * w[i] as f64;
        let w1 = w[i] as f64 - lr * d1;
        let d2 = g2[i] as f64 + wd * w1;
        let b2 = mu * d1 + d2;
        want1[i] = w1;
        want2[i] = w1 - lr * b2;
    }
    close(&s1, &want1, "sgd step 1");
    close(&s2, &want2, "sgd step 2");

    // Nesterov: the step uses d + μ b.
    let nesterov = OptimizerConfig {
        nesterov: true,
        ..sgd
    };
    let (_, n2) = two_steps(backend, nesterov, lr, &w, &g1, &g2);
    for i in 0..2 {
        let d1 = g1[i] as f64 + wd * w[i] as f64;
        let w1 = w[i] as f64 - lr * (d1 + mu * d1);
        let d2 = g2[i] as f64 + wd * w1;
        let b2 = mu * d1 + d2;
        want2[i] = w1 - lr * (d2 + mu * b2);
    }
    close(&n2, &want2, "nesterov step 2");

    // Adam and AdamW: m, v with bias corrections; AdamW decays w by (1 − lr·λ) first. β1 =
    // 0.3 takes torch.lerp's second formula (weight 1 − β1 ≥ 0.5).
    let cases = [OptimizerKind::Adam, OptimizerKind::AdamW]
        .into_iter()
        .flat_map(|k| {
            [
                (k, (0.9, 0.999), 1e-8),
                (k, (0.3, 0.99), 1e-8),
                (k, (0.9, 0.999), 0.5),
            ]
        });
    // eps = 0.5 is as large as √v̂ here, so where it is added shows.
    for (kind, betas, eps) in cases {
        let config = OptimizerConfig {
            weight_decay: wd,
            betas,
            eps,
            ..OptimizerConfig::new(kind)
        };
        let (b1, b2) = config.betas;
        let (a1, a2) = two_steps(backend, config, lr, &w, &g1, &g2);
        for i in 0..2 {
            let (mut m, mut v, mut x) = (0.0, 0.0, w[i] as f64);
            for (t, g) in [g1[i] as f64, g2[i] as f64].into_iter().enumerate() {
                let t = t as i32 + 1;
                let g = if kind == OptimizerKind::Adam {
                    g + wd * x
                } else {
                    x *= 1.0 - lr * wd;
                    g
                };
                m = b1 * m + (1.0 - b1) * g;
                v = b2 * v + (1.0 - b2) * g * g;
                let m_hat = m / (1.0 - b1.powi(t));
                let v_hat = v / (1.0 - b2.powi(t));
                // PyTorch adds eps to √v / √(1 − β2^t), i.e. to √v̂.
                x -= lr * m_hat / (v_hat.sqrt() + eps);
                if t == 1 {
                    want1[i] = x;
                } else {
                    want2[i] = x;
                }
            }
        }
        close(&a1, &want1, &format!("{kind} {betas:?} eps {eps} step 1"));
        close(&a2, &want2, &format!("{kind} {betas:?} eps {eps} step 2"));
    }
}

#[test]
fn optimizers_match_their_closed_forms_on_the_cpu() {
    check_closed_forms(&Cpu::new());
}

#[test]
fn optimizers_match_their_closed_forms_on_the_gpu() {
    if let Some(gpu) = common::gpu("optimizers_match_their_closed_forms_on_the_gpu") {
        check_closed_forms(&gpu);
    }
}

#[test]
fn grad_scaler_skips_backs_off_and_grows_as_pytorch() {
    let d = DynamicScaling {
        growth_interval: 3,
        ..DynamicScaling::default()
    };
    let mut s = Scaler::new(LossScale::Dynamic(d));
    assert_eq!(s.scale(), 65536.0);
    assert!(s.skips_non_finite());
    s.update(true);
    assert_eq!(s.scale(), 32768.0, "backoff 0.5 on inf");
    s.update(false);
    s.update(false);
    assert_eq!(
        s.scale(),
        32768.0,
        "two good steps of an interval of 3: no growth yet"
    );
    s.update(true);
    s.update(false);
    s.update(false);
    assert_eq!(s.scale(), 16384.0, "an inf resets the count of good steps");
    s.update(false);
    assert_eq!(
        s.scale(),
        32768.0,
        "the third good step in a row doubles it"
    );
    assert_eq!(s.inv_scale(), 1.0 / 32768.0);
    // GradScaler's defaults.
    assert_eq!(DynamicScaling::default().growth_interval, 2000);
    let mut none = Scaler::new(LossScale::None);
    none.update(true);
    assert_eq!(none.scale(), 1.0);
    assert!(!none.skips_non_finite());
    let mut fixed = Scaler::new(LossScale::Static { scale: 1024.0 });
    fixed.update(true);
    assert_eq!(fixed.scale(), 1024.0);
}

/// The losses and their gradients against f64 closed forms.
fn check_losses<B: Backend>(backend: &B) {
    let out = [0.5f32, -1.0, 2.0, 0.0, 1.5, -0.5];
    let output = backend
        .upload(&HostTensor::from_f32(2, 3, out.to_vec()).unwrap())
        .unwrap();
    let y = [1.0f32, 0.0, 2.0, -1.0, 1.0, 0.5];
    let targets = backend
        .upload(&HostTensor::from_f32(2, 3, y.to_vec()).unwrap())
        .unwrap();
    let scale = 8.0;
    let shape = backend.shape(&output);
    let c = LossKind::Mse.gradient_coefficient(shape, scale);
    let (grad, rows) = backend
        .loss(LossKind::Mse, &output, &targets, c, Precision::F32)
        .unwrap();
    let grad = backend.download(&grad).unwrap().to_f32_vec();
    let rows = backend.download(&rows).unwrap().to_f32_vec();
    let loss = LossKind::Mse.mean_loss(rows.iter().map(|&r| r as f64).sum(), shape);
    let want: f64 = out
        .iter()
        .zip(&y)
        .map(|(o, t)| ((o - t) as f64).powi(2))
        .sum::<f64>()
        / 6.0;
    assert!((loss - want).abs() < 1e-6, "mse {loss} vs {want}");
    for i in 0..6 {
        let want = scale * 2.0 * (out[i] - y[i]) as f64 / 6.0;
        assert!((grad[i] as f64 - want).abs() < 1e-6, "mse grad {i}");
    }

    // Cross-entropy with logits large enough that a naive exp overflows f32.
    let logits = [1000.0f32, 999.0, 990.0, -3.0, 0.0, 4.0];
    let labels = [1.0f32, 2.0];
    let output = backend
        .upload(&HostTensor::from_f32(2, 3, logits.to_vec()).unwrap())
        .unwrap();
    let targets = backend
        .upload(&HostTensor::from_f32(2, 1, labels.to_vec()).unwrap())
        .unwrap();
    let scale = 4.0;
    let c = LossKind::CrossEntropy.gradient_coefficient(shape, scale);
    let (grad, rows) = backend
        .loss(LossKind::CrossEntropy, &output, &targets, c, Precision::F32)
        .unwrap();
    let grad = backend.download(&grad).unwrap().to_f32_vec();
    let rows = backend.download(&rows).unwrap().to_f32_vec();
    for r in 0..2 {
        let o: Vec<f64> = logits[3 * r..3 * r + 3].iter().map(|&v| v as f64).collect();
        let m = o.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + o.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        let label = labels[r] as usize;
        let want = lse - o[label];
        assert!(
            (rows[r] as f64 - want).abs() < 1e-4 * want.max(1.0),
            "ce row {r}: {} vs {want}",
            rows[r]
        );
        for j in 0..3 {
            let p = (o[j] - lse).exp() - if j == label { 1.0 } else { 0.0 };
            let want = scale * p / 2.0;
            assert!(
                (grad[3 * r + j] as f64 - want).abs() < 1e-6 * scale,
                "ce grad {r},{j}"
            );
        }
    }
}

#[test]
fn loss_targets_of_the_wrong_shape_or_type_are_refused() {
    let cpu = Cpu::new();
    let output = HostTensor::from_f32(2, 3, vec![0.0; 6]).unwrap();
    let values = HostTensor::from_f32(2, 3, vec![0.0; 6]).unwrap();
    let labels = HostTensor::from_f32(2, 1, vec![0.0; 2]).unwrap();
    let p = Precision::F32;
    assert!(cpu.loss(LossKind::Mse, &output, &labels, 1.0, p).is_err());
    assert!(cpu
        .loss(LossKind::CrossEntropy, &output, &values, 1.0, p)
        .is_err());
    let half = values.cast(gradstab::DType::F16);
    let err = cpu.loss(LossKind::Mse, &output, &half, 1.0, p).unwrap_err();
    assert!(err.to_string().contains("loss targets are f32"), "{err}");
    assert!(cpu.loss(LossKind::Mse, &output, &values, 1.0, p).is_ok());
    assert!(cpu
        .loss(LossKind::CrossEntropy, &output, &labels, 1.0, p)
        .is_ok());
}

#[test]
fn losses_match_f64_on_the_cpu() {
    check_losses(&Cpu::new());
}

#[test]
fn losses_match_f64_on_the_gpu() {
    if let Some(gpu) = common::gpu("losses_match_f64_on_the_gpu") {
        check_losses(&gpu);
    }
}

#[test]
fn optimizer_refuses_wrong_state() {
    let cpu = Cpu::new();
    let config = OptimizerConfig::new(OptimizerKind::Adam);
    let scalars = StepScalars {
        lr: 0.1,
        step: 1,
        grad_scale: 1.0,
        clip_value: None,
        clip_coefficient: 1.0,
    };
    let params = Params::new(&config, &scalars, 2, Precision::F32);
    let grad = row(&[1.0, 2.0]);
    let mut param = row(&[1.0, 2.0]);
    let err = cpu
        .optimizer_step(
            OptimizerKind::Adam,
            &params,
            StepTensors {
                grad: &grad,
                param: &mut param,
                first_moment: None,
                second_moment: None,
                model: None,
            },
            Precision::F32,
        )
        .unwrap_err();
    assert!(err.to_string().contains("state tensors"), "{err}");
    let _ = optimizer::master_dtype(Precision::F16);
}
