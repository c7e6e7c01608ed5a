//! Checkpoints and resume: a run stopped after a checkpoint and resumed from it gives the
//! uninterrupted run's bits, its final weights and every step's record (loss, rate, loss
//! scale, layer statistics, FP8 scales), on both backends; and `gradstab train --checkpoint`
//! and `--resume` from the outside: the file, its refusals.
//!
//! The reference is the uninterrupted run itself, which shares every line of the step with
//! the resumed one: what the test checks is that the checkpoint carries all the state a step
//! reads. Each case crosses the cut with state that would show a loss: the optimizer's
//! buffers and step count, the loss scaler's scale and growth tracker, a shuffled epoch's
//! order and position, a schedule's place, FP8's amax histories.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gradstab::network::fp8::Fp8Scaling;
use gradstab::network::NetworkConfig;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::eval::{Evaluation, Validation};
use gradstab::train::{
    run_training, run_training_with, Checkpoint, CheckpointPlan, Checkpointing, DynamicScaling,
    LossScale, LrSchedule, StepRecord, Task, TrainConfig, TrainOutcome,
};
use gradstab::{Activation, Backend, Cpu, Precision};

use common::gradstab_cli as gradstab;
use common::runs;
use common::stderr_of as stderr;

fn scratch(test: &str) -> PathBuf {
    common::scratch_dir("checkpoint", test)
}

/// A small regression run: tanh layers with nn.Linear biases, a linear head, 20 samples in
/// shuffled batches of 6 (epochs of 6, 6, 6 and a short 2).
fn base(widths: &[usize], steps: usize) -> TrainConfig {
    TrainConfig {
        network: NetworkConfig {
            activation: Activation::Tanh,
            output_activation: false,
            linear_bias: true,
            seed: 5,
            ..NetworkConfig::new(widths.len() - 1, widths[0], 6)
        }
        .with_widths(widths)
        .unwrap(),
        task: Task::Teacher { depth: 2, width: 6 },
        samples: 20,
        shuffle: true,
        drop_last: false,
        steps,
        record_every: 4,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 0.05,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Evaluation::default(),
    }
}

/// The cases, each named, with the step after which the run is cut.
fn cases() -> Vec<(&'static str, TrainConfig, usize)> {
    // SGD with Nesterov momentum and weight decay, a linear warm-up then a cosine crossing the
    // cut, three epochs of shuffled batches ending in a short one, cut inside epoch 2.
    let mut sgd = base(&[4, 8, 8, 3], 12);
    sgd.optimizer.momentum = 0.9;
    sgd.optimizer.nesterov = true;
    sgd.optimizer.weight_decay = 0.01;
    sgd.lr_schedule = Some("linear:0.1:1:4,cosine@4".parse::<LrSchedule>().unwrap());
    // A quarter held out and evaluated every 3 steps: evaluations on both sides of the cut,
    // over the split the resumed run must draw again.
    sgd.evaluation = Evaluation {
        validation: Validation::Split(0.25),
        every: Some(3),
    };

    // Adam in mixed precision with dynamic loss scaling that starts far too high (skipped
    // steps) and grows every 2 clean steps: the scale moves on both sides of the cut, which
    // falls with a growth tracker of 1. Ten layers of unequal widths ('18.weight' after
    // '2.weight' in a name sort).
    let mut adam = base(&[5, 7, 3, 9, 4, 6, 8, 5, 3, 7, 4], 10);
    adam.optimizer = OptimizerConfig::new(OptimizerKind::Adam);
    adam.lr = 1e-3;
    adam.precision = Precision::F16Accumulate32;
    adam.loss_scale = LossScale::Dynamic(DynamicScaling {
        init_scale: 2f64.powi(17),
        growth_interval: 2,
        ..DynamicScaling::default()
    });

    // AdamW in f32 under StepLR, every batch the whole set (no shuffling): the epoch counts
    // every step.
    let mut adamw = base(&[4, 6, 6, 2], 8);
    adamw.optimizer = OptimizerConfig::new(OptimizerKind::AdamW);
    adamw.lr = 3e-3;
    adamw.lr_schedule = Some("step:3:0.5".parse::<LrSchedule>().unwrap());
    adamw.shuffle = false;
    adamw.network.batch = 20;
    // The training set alone evaluated every other step.
    adamw.evaluation.every = Some(2);

    // FP8 with delayed scaling over a history of 3 steps, SGD with momentum.
    let mut fp8 = base(&[4, 8, 8, 3], 9);
    fp8.precision = Precision::Fp8;
    fp8.network.fp8_scaling = Fp8Scaling::Delayed {
        history: 3,
        margin: 0,
    };
    fp8.optimizer.momentum = 0.5;

    vec![
        ("sgd-nesterov-warmup-cosine-shuffled", sgd, 5),
        ("adam-f16acc32-dynamic-deep", adam, 5),
        ("adamw-step-full-batch", adamw, 3),
        ("fp8-delayed-momentum", fp8, 6),
    ]
}

/// The records bit for bit: CBOR keeps every float's value, inf and NaN included; each
/// step's timing, which differs from one run to the next, left out.
fn bits(records: &[StepRecord]) -> Vec<u8> {
    let mut records = records.to_vec();
    for r in &mut records {
        r.time = None;
    }
    let mut out = Vec::new();
    ciborium::into_writer(&records, &mut out).unwrap();
    out
}

/// The run's JSON without its timing, which differs from one run to the next.
fn json_without_timing(outcome: &TrainOutcome) -> String {
    let mut v = serde_json::to_value(&outcome.run).unwrap();
    let summary = v["summary"].as_object_mut().unwrap();
    summary.remove("wall_seconds").unwrap();
    summary.remove("seconds_per_step").unwrap();
    summary.remove("time").unwrap();
    for step in v["steps"].as_array_mut().unwrap() {
        step.as_object_mut().unwrap().remove("time").unwrap();
    }
    v.to_string()
}

fn final_bits(outcome: &TrainOutcome) -> Vec<Vec<u8>> {
    let w = outcome.weights.as_ref().unwrap();
    w.weights
        .iter()
        .chain(w.biases.iter().flatten())
        .map(|t| t.data().to_le_bytes())
        .collect()
}

/// The checkpoint's metadata, read with the safetensors crate alone.
fn metadata(path: &Path) -> BTreeMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().clone().unwrap().into_iter().collect()
}

/// Runs `config` whole, and again stopped after the checkpoint of step `cut` (as a kill
/// would stop it) and resumed from the file; returns both, and the checkpoint's path.
fn whole_and_resumed<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    cut: usize,
    dir: &Path,
) -> (TrainOutcome, TrainOutcome, PathBuf) {
    let whole = run_training(backend, config, "run", true, &mut |_, _| Ok(())).unwrap();
    let path = dir.join("run.safetensors");
    let _ = std::fs::remove_file(&path);
    let save = Checkpointing {
        resume: None,
        save: Some(CheckpointPlan {
            path: path.clone(),
            every: Some(cut),
        }),
    };
    let stopped = run_training_with(backend, config, "run", false, &save, &mut |step, _| {
        if step > cut {
            Err(gradstab::Error::InvalidArgument("stopped".into()))
        } else {
            Ok(())
        }
    });
    assert!(stopped.is_err(), "the first part stops after step {cut}");
    let checkpoint = Checkpoint::load(&path).unwrap();
    assert_eq!(checkpoint.step(), cut);
    let resumed_config = checkpoint.config(None, None).unwrap();
    let resume = Checkpointing {
        resume: Some(Arc::new(checkpoint)),
        save: None,
    };
    let resumed = run_training_with(
        backend,
        &resumed_config,
        "run",
        true,
        &resume,
        &mut |_, _| Ok(()),
    )
    .unwrap();
    (whole, resumed, path)
}

fn check_resume_is_bit_identical<B: Backend>(backend: &B, test: &str) {
    let dir = scratch(test);
    for (name, config, cut) in cases() {
        if !runs(backend, config.precision, test) {
            continue;
        }
        let (whole, resumed, path) = whole_and_resumed(backend, &config, cut, &dir);
        let steps = &whole.run.steps;
        assert_eq!(steps.len(), config.steps, "{name}: the whole run ran");
        assert!(
            whole.run.summary.diverged_at.is_none(),
            "{name}: the run must train"
        );
        assert_eq!(
            final_bits(&resumed),
            final_bits(&whole),
            "{name}: the final weights"
        );
        assert_eq!(
            bits(&resumed.run.steps),
            bits(steps),
            "{name}: every step's record"
        );
        assert_eq!(
            json_without_timing(&resumed),
            json_without_timing(&whole),
            "{name}: the report"
        );

        // Each case crosses the cut with the state it is about.
        let state: serde_json::Value =
            serde_json::from_str(&metadata(&path)["gradstab.state"]).unwrap();
        let changes = |f: fn(&StepRecord) -> f64, range: std::ops::Range<usize>| -> bool {
            steps[range].windows(2).any(|w| f(&w[0]) != f(&w[1]))
        };
        if matches!(config.loss_scale, LossScale::Dynamic(_)) {
            let scale = |r: &StepRecord| r.loss_scale;
            assert!(
                changes(scale, 0..cut),
                "{name}: the scale moves before the cut"
            );
            assert!(changes(scale, cut - 1..steps.len()), "{name}: and after it");
            assert!(steps.iter().any(|r| r.skipped), "{name}: a step is skipped");
            assert_ne!(
                state["scaler"]["growth_tracker"],
                0,
                "{name}: the cut falls inside a growth interval: {:?}",
                steps
                    .iter()
                    .map(|r| (r.loss_scale, r.skipped))
                    .collect::<Vec<_>>()
            );
        }
        if config.lr_schedule.is_some() {
            let lr = |r: &StepRecord| r.lr;
            assert!(
                changes(lr, cut - 1..cut + 1),
                "{name}: the rate moves at the cut"
            );
        }
        if config.shuffle {
            let taken = state["data"]["taken"].as_u64().unwrap() as usize;
            assert!(
                0 < taken && taken < config.samples,
                "{name}: the cut falls inside an epoch ({taken} taken)"
            );
            assert!(
                steps.iter().any(|r| r.batch < config.network.batch),
                "{name}: an epoch ends in a short batch"
            );
        }
        if config.precision == Precision::Fp8 {
            let scales: Vec<f32> = steps[cut].fp8.iter().map(|r| r.scale).collect();
            assert!(
                scales.iter().any(|&s| s != 1.0),
                "{name}: the step after the cut quantises with delayed scales"
            );
        }
    }
}

#[test]
fn a_resumed_run_is_the_uninterrupted_run_bit_for_bit_on_the_cpu() {
    check_resume_is_bit_identical(&Cpu::new(), "cpu");
}

#[test]
fn a_resumed_run_is_the_uninterrupted_run_bit_for_bit_on_the_gpu() {
    let Some(gpu) = common::gpu("a_resumed_run_is_the_uninterrupted_run_bit_for_bit_on_the_gpu")
    else {
        return;
    };
    check_resume_is_bit_identical(&gpu, "gpu");
}

/// Where the whole data set is one batch, each step is a pass over it: epochs 1, 2, 3.
#[test]
fn a_full_batch_run_counts_an_epoch_each_step() {
    let mut config = base(&[4, 6, 2], 3);
    config.shuffle = false;
    config.network.batch = config.samples;
    let outcome = run_training(&Cpu::new(), &config, "full", false, &mut |_, _| Ok(())).unwrap();
    let epochs: Vec<usize> = outcome.run.steps.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, [1, 2, 3]);
    assert_eq!(outcome.run.epochs.len(), 3);
}

/// The file: the model under its state-dict names behind `model.`, the masters, torch.optim's
/// state names, the data order, the metadata.
#[test]
fn the_checkpoint_holds_the_state_under_pytorchs_names() {
    let dir = scratch("layout");
    let (_, config, cut) = cases().swap_remove(1);
    let (_, _, path) = whole_and_resumed(&Cpu::new(), &config, cut, &dir);
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = file.names().into_iter().map(String::from).collect();
    let has = |n: &str| names.iter().any(|m| m == n);
    // Ten layers: parameters 0..19 of model.parameters(), weight then bias.
    for (i, layer) in (0..10).enumerate() {
        let index = 2 * layer;
        for (j, kind) in ["weight", "bias"].iter().enumerate() {
            let p = format!("{index}.{kind}");
            assert!(has(&format!("model.{p}")), "model.{p} in {names:?}");
            assert_eq!(
                file.tensor(&format!("model.{p}")).unwrap().dtype(),
                safetensors::Dtype::F16
            );
            assert!(has(&format!("master.{p}")));
            for state in ["exp_avg", "exp_avg_sq", "step"] {
                let key = format!("optimizer.state.{}.{state}", 2 * i + j);
                assert!(has(&key), "{key}");
            }
        }
    }
    let weight = file.tensor("model.18.weight").unwrap();
    assert_eq!(weight.shape(), [4, 7]);
    assert_eq!(file.tensor("model.18.bias").unwrap().shape(), [4]);
    let order = file.tensor("data.order").unwrap();
    assert_eq!(order.dtype(), safetensors::Dtype::I64);
    let mut order: Vec<i64> = order
        .data()
        .chunks(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    order.sort();
    assert_eq!(order, (0..20).collect::<Vec<i64>>(), "a permutation");
    let meta = metadata(&path);
    assert_eq!(meta["gradstab.checkpoint"], "1");
    let state: serde_json::Value = serde_json::from_str(&meta["gradstab.state"]).unwrap();
    assert_eq!(state["step"], cut);
    let config_json: serde_json::Value = serde_json::from_str(&meta["gradstab.config"]).unwrap();
    assert_eq!(config_json, serde_json::to_value(&config).unwrap());
}

const SMALL: [&str; 14] = [
    "train",
    "--backend",
    "cpu",
    "--depth",
    "3",
    "--width",
    "6",
    "--samples",
    "12",
    "--batch",
    "5",
    "--shuffle",
    "--quiet",
    "--optimizer",
];

/// `--steps 5 --checkpoint` then `--resume --steps 10` reports what `--steps 10` reports.
#[test]
fn the_command_line_resumes_a_finished_run_into_the_longer_one() {
    let dir = scratch("cli");
    let ck = dir.join("c.safetensors");
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut args: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
        args.extend(["adam", "--record-every", "5", "--format", "json"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = gradstab(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    run(&["--steps", "10", "--out", &p("whole.json")]);
    run(&[
        "--steps",
        "5",
        "--checkpoint-every",
        "2",
        "--checkpoint",
        &p("c.safetensors"),
    ]);
    assert_eq!(
        Checkpoint::load(&ck).unwrap().step(),
        5,
        "the end's checkpoint"
    );
    let out = gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--resume",
        ck.to_str().unwrap(),
        "--steps",
        "10",
        "--format",
        "json",
        "--out",
        &p("resumed.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |f: &str| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();
        for run in v["runs"].as_array_mut().unwrap() {
            let s = run["summary"].as_object_mut().unwrap();
            s.remove("wall_seconds");
            s.remove("seconds_per_step");
            s.remove("time");
            for step in run["steps"].as_array_mut().unwrap() {
                step.as_object_mut().unwrap().remove("time");
            }
        }
        v
    };
    assert_eq!(read("resumed.json"), read("whole.json"));
}

#[test]
fn the_command_line_refuses_what_it_cannot_resume_or_write() {
    let dir = scratch("refusals");
    let ck = dir.join("c.safetensors");
    let mut args: Vec<&str> = SMALL.to_vec();
    args.extend(["sgd", "--steps", "3", "--checkpoint", ck.to_str().unwrap()]);
    let out = gradstab(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let resume = |extra: &[&str]| {
        let mut a = vec!["train", "--backend", "cpu", "--quiet", "--resume"];
        a.extend(extra);
        gradstab(&a)
    };

    // A flag that contradicts the checkpoint: named, with both values.
    let out = resume(&[ck.to_str().unwrap(), "--lr", "0.5"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("lr 0.5 contradicts the checkpoint's lr 0.01"),
        "{e}"
    );
    let out = resume(&[ck.to_str().unwrap(), "--precision", "f16acc32"]);
    assert!(
        stderr(&out).contains("precisions f16acc32 contradicts the checkpoint's precisions f32")
    );
    // One that agrees is taken; a total before the step reached is not.
    let out = resume(&[ck.to_str().unwrap(), "--optimizer", "sgd", "--steps", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = resume(&[ck.to_str().unwrap(), "--steps", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("steps 2 ends before the checkpoint's step 3"));

    // A run that diverges: its report comes, and the exit code says the checkpoint asked
    // for at its end was not written (as --save-weights does).
    let diverging = dir.join("diverged.safetensors");
    let out = gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--depth",
        "8",
        "--width",
        "16",
        "--init",
        "normal:1",
        "--samples",
        "12",
        "--lr",
        "10",
        "--steps",
        "6",
        "--format",
        "json",
        "--checkpoint",
        diverging.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("diverged at step"),
        "{}",
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["runs"][0]["summary"]["diverged_at"].is_u64());
    assert!(!diverging.exists());

    // A directory as the checkpoint to write.
    let mut args: Vec<&str> = SMALL.to_vec();
    args.extend(["sgd", "--steps", "2", "--checkpoint", dir.to_str().unwrap()]);
    let out = gradstab(&args);
    assert!(!out.status.success());
    assert!(!stderr(&out).is_empty());
    assert!(dir.is_dir(), "left as it was");
    // --checkpoint-every without --checkpoint.
    let mut args: Vec<&str> = SMALL.to_vec();
    args.extend(["sgd", "--steps", "2", "--checkpoint-every", "1"]);
    assert_eq!(gradstab(&args).status.code(), Some(2));
    // Several runs.
    let mut args: Vec<&str> = SMALL.to_vec();
    args.extend([
        "sgd",
        "--lr",
        "0.1,0.2",
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    let out = gradstab(&args);
    assert!(stderr(&out).contains("checkpoint saves one run, but these options make 2"));

    // A truncated file, a state dict, a directory to resume from.
    let bytes = std::fs::read(&ck).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = resume(&[cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a valid safetensors file"),
        "{}",
        stderr(&out)
    );
    let weights = dir.join("w.safetensors");
    let mut args: Vec<&str> = SMALL.to_vec();
    args.extend([
        "sgd",
        "--steps",
        "1",
        "--save-weights",
        weights.to_str().unwrap(),
    ]);
    assert!(gradstab(&args).status.success());
    let out = resume(&[weights.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("not a gradstab checkpoint"),
        "{}",
        stderr(&out)
    );
    let out = resume(&[dir.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
}
