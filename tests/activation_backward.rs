//! Backward through an activation, `activation_backward(g, z)` = g ⊙ act'(z), which the CPU
//! backend computes in one fused pass: bit for bit the two ops it replaces,
//! `hadamard(g, activation_derivative(z))`, for every activation and precision, on the CPU
//! and on the GPU. Each of the two ops is held to the exact reference in activation.rs and
//! elementwise.rs; here the fused pass must round where they round (act'(z) to storage
//! before the product, which the mixed precisions make visible), so a training step's
//! gradients are those of the two-op path.

mod common;

use gradstab::{Activation, Backend, Cpu, DType, HostTensor, Precision};
use rand::Rng;

/// `len` gradients and pre-activations stored as `precision` stores: z spread over the
/// activations' whole range (so that every branch and the clamp are taken), the gradients
/// over many binades, then ±0, subnormals, ±inf and NaN in both.
fn operands(len: usize, precision: Precision, seed: u64) -> (HostTensor, HostTensor) {
    let mut rng = common::rng(seed);
    let specials = [
        0.0,
        -0.0,
        1e-40,
        -3e-39,
        6e-8,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        130.0,
        -130.0,
    ];
    let mut z: Vec<f32> = (0..len)
        .map(|_| rng.random_range(-12.0f32..12.0) * 10f32.powi(rng.random_range(-3..2)))
        .collect();
    let mut g: Vec<f32> = (0..len)
        .map(|_| rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-30..20)))
        .collect();
    for (i, &s) in specials.iter().enumerate() {
        // Each special against an ordinary value and against each other special.
        z[i] = s;
        g[specials.len() + i] = s;
        for (j, &t) in specials.iter().enumerate() {
            let at = 2 * specials.len() + i * specials.len() + j;
            z[at] = s;
            g[at] = t;
        }
    }
    let storage = precision.storage();
    let cols = 7;
    (
        HostTensor::from_f32_vec_as(storage, len / cols, cols, g).unwrap(),
        HostTensor::from_f32_vec_as(storage, len / cols, cols, z).unwrap(),
    )
}

fn same_bits(name: &str, act: Activation, precision: Precision, fused: &[f32], two_op: &[f32]) {
    assert_eq!(fused.len(), two_op.len());
    for (i, (f, t)) in fused.iter().zip(two_op).enumerate() {
        assert!(
            f.to_bits() == t.to_bits(),
            "{name} {act} {precision} at {i}: fused {f:e} ({:#x}), two ops {t:e} ({:#x})",
            f.to_bits(),
            t.to_bits()
        );
    }
}

/// The fused op against the two ops on `backend`, for every activation and every precision
/// the backend supports.
fn check<B: Backend>(name: &str, backend: &B, len: usize) {
    for precision in Precision::ALL {
        if !backend.supports(precision) {
            eprintln!("{name}: {precision} unsupported here, not compared");
            continue;
        }
        let (g, z) = operands(len, precision, 17);
        let (g, z) = (backend.upload(&g).unwrap(), backend.upload(&z).unwrap());
        for act in Activation::representatives() {
            let fused = backend.activation_backward(act, &g, &z, precision).unwrap();
            let derivative = backend.activation_derivative(act, &z, precision).unwrap();
            let two_op = backend.hadamard(&g, &derivative, precision).unwrap();
            let fused = backend.download(&fused).unwrap();
            assert_eq!(
                fused.dtype(),
                precision.storage(),
                "{name} {act} {precision}"
            );
            let two_op = backend.download(&two_op).unwrap();
            same_bits(
                name,
                act,
                precision,
                &fused.to_f32_vec(),
                &two_op.to_f32_vec(),
            );
        }
    }
}

/// Longer than the CPU's f32 chunk (2^14) and not a multiple of it, nor of a vector.
#[test]
fn cpu_fused_activation_backward_gives_the_two_ops_bits() {
    check("cpu", &Cpu, 7 * 5_003);
}

#[test]
fn gpu_activation_backward_gives_the_two_ops_bits() {
    let Some(gpu) = common::gpu("gpu_activation_backward_gives_the_two_ops_bits") else {
        return;
    };
    check("gpu", &gpu, 7 * 301);
}

/// The operands must be checked as the two ops check theirs: a wrong shape or dtype is an
/// error, not a silent product of mismatched tensors.
#[test]
fn mismatched_operands_are_refused() {
    let (g, z) = operands(7 * 40, Precision::F32, 3);
    let short = HostTensor::from_f32(39, 7, vec![0.5; 7 * 39]).unwrap();
    assert!(Cpu
        .activation_backward(Activation::Relu, &short, &z, Precision::F32)
        .is_err());
    let narrow = g.cast(DType::F16);
    assert!(Cpu
        .activation_backward(Activation::Relu, &narrow, &z, Precision::F32)
        .is_err());
    assert!(Cpu
        .activation_backward(Activation::Relu, &g, &z, Precision::F32)
        .is_ok());
}
