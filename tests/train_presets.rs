//! Each training preset's claim, part by part (`presets::verify`), on the CPU backend at full
//! length and on the GPU at the length a software GPU allows in a test: parts that need the
//! full length (a 200-step "trains", the scale's backoff after ~100 steps) are checked on the
//! CPU only; every other part must hold on both.

mod common;

use gradstab::train::presets::{self, TrainPreset, TRAINS_BELOW};
use gradstab::train::{run_training, Claim, TrainRun};
use gradstab::{Backend, Cpu};

fn run_preset<B: Backend>(
    backend: &B,
    preset: &TrainPreset,
    steps: Option<usize>,
) -> Vec<TrainRun> {
    preset
        .runs
        .iter()
        .map(|(label, config)| {
            let mut config = config.clone();
            if let Some(s) = steps {
                config.steps = s;
            }
            run_training(backend, &config, label, false, &mut |_, _| Ok(()))
                .unwrap()
                .run
        })
        .collect()
}

fn assert_all_hold(name: &str, claims: &[Claim], expected: usize) {
    assert_eq!(
        claims.len(),
        expected,
        "{name}: every part of the claim was checked: {claims:#?}"
    );
    for c in claims {
        assert!(c.holds, "{name}: {} — measured {}", c.claim, c.measured);
    }
}

#[test]
fn every_preset_claim_holds_on_the_cpu() {
    let expected = [
        ("lr-sensitivity", 2),
        ("vanishing-train", 3),
        ("loss-scaling", 4),
        ("remedies", 5),
        ("bf16-stagnation", 2),
        ("fp8-scaling", 4),
    ];
    for (name, parts) in expected {
        let preset = presets::preset(name).unwrap();
        let runs = run_preset(&Cpu::new(), &preset, None);
        assert_all_hold(name, &presets::verify(name, &runs), parts);
    }
    assert_eq!(presets::NAMES.len(), expected.len());
}

/// The parts whose claim does not need the full length, at `steps` on the GPU.
fn check_on_gpu(name: &str, steps: usize, expected: usize, skip: &[&str]) {
    let Some(gpu) = common::gpu(&format!("preset {name} on the GPU")) else {
        return;
    };
    let preset = presets::preset(name).unwrap();
    let runs = run_preset(&gpu, &preset, Some(steps));
    let claims: Vec<Claim> = presets::verify(name, &runs)
        .into_iter()
        .filter(|c| !skip.iter().any(|s| c.claim.contains(s)))
        .collect();
    assert_all_hold(name, &claims, expected);
}

#[test]
fn vanishing_train_holds_on_the_gpu() {
    check_on_gpu("vanishing-train", 20, 3, &[]);
}

#[test]
fn loss_scaling_holds_on_the_gpu() {
    // The scale first overflows after ~100 steps; its backoff is checked on the CPU.
    check_on_gpu("loss-scaling", 30, 3, &["scale grows"]);
}

#[test]
fn remedies_hold_on_the_gpu() {
    // "trains" needs the full 200 steps: on the GPU only the first 20 are run.
    check_on_gpu("remedies", 20, 3, &["trains"]);
}

#[test]
fn bf16_stagnation_holds_on_the_gpu() {
    // Half of the 200 steps: the stall and the tracking show from the first steps on.
    check_on_gpu("bf16-stagnation", 100, 2, &[]);
}

#[test]
fn fp8_scaling_holds_on_the_gpu() {
    // 40 of the 100 steps: delayed scaling settles by step 3, and the bottom layers'
    // gradients flush from step 1 on.
    check_on_gpu("fp8-scaling", 40, 4, &[]);
}

#[test]
fn lr_sensitivity_holds_on_the_gpu_at_its_edges() {
    // The full grid is 14 runs of 200 steps; on a software GPU the test runs the two that
    // decide the claim's ends: a too-large rate on the too-large init diverges, and a rate
    // He trains at, where the too-large init does not train.
    let Some(gpu) = common::gpu("lr_sensitivity_holds_on_the_gpu_at_its_edges") else {
        return;
    };
    let preset = presets::preset("lr-sensitivity").unwrap();
    let pick = |label: &str| {
        let (l, c) = preset.runs.iter().find(|(l, _)| l == label).unwrap();
        run_training(&gpu, c, l, false, &mut |_, _| Ok(()))
            .unwrap()
            .run
    };
    let diverging = pick("gain 1.7 lr=1e-1");
    assert!(
        diverging.summary.diverged_at.is_some(),
        "{:?}",
        diverging.summary
    );
    let he = pick("He lr=1e-1");
    assert!(he.summary.trained_below(TRAINS_BELOW), "{:?}", he.summary);
}
