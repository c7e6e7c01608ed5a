//! The library's front door (`gradstab::api`), as the command line and the Python binding
//! call it: the documented defaults, every conflict refused with its message, the presets'
//! rule, and the CPU device.

mod common;

use std::path::PathBuf;

use gradstab::api::checks::MAX_DEPTH;
use gradstab::api::run::{run_experiment, RunOptions};
use gradstab::api::train::{train_runs, TaskKind, TrainOptions};
use gradstab::api::{tensor_stats, BackendChoice, Device, Progress};
use gradstab::init::{FanMode, Gain, Init};
use gradstab::network::Fp8Scaling;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::{LossScale, Task};
use gradstab::{Activation, Backend, Cpu, Error, GpuOptions, HostTensor, Precision};

/// The message of a usage error, or a panic naming what came instead.
fn refusal<T>(result: gradstab::Result<T>) -> String {
    match result {
        Err(Error::InvalidArgument(m)) => m,
        Err(e) => panic!("expected a usage error, got {e:?}"),
        Ok(_) => panic!("expected a usage error, got a result"),
    }
}

/// A path that is never read: the conflicts are refused before any file is opened.
fn never_read(name: &str) -> Option<PathBuf> {
    Some(PathBuf::from(format!("/nonexistent/gradstab-api/{name}")))
}

#[test]
fn run_defaults_are_the_documented_network() {
    // docs/cli.md: a 20-layer ReLU net of width 256, He (kaiming_normal) weights, an N(0, 1)
    // input batch of 64, in f32, probe loss, no bias, no clipping, seed 0.
    let experiment = RunOptions::default().experiment().unwrap();
    assert_eq!(experiment.name, "custom");
    assert_eq!(experiment.precisions, vec![Precision::F32]);
    assert!(experiment.claims.is_none());
    assert_eq!(experiment.variants.len(), 1);
    let config = &experiment.variants[0].1;
    assert_eq!(config.depth, 20);
    assert_eq!(config.widths, vec![256; 21]);
    assert_eq!(config.batch, 64);
    assert_eq!(config.activation, Activation::Relu);
    assert_eq!(
        config.init,
        Init::KaimingNormal {
            mode: FanMode::FanIn,
            gain: Gain::PyTorchDefault
        }
    );
    assert_eq!(config.bias_std, 0.0);
    assert_eq!(config.clip, None);
    assert_eq!(config.seed, 0);
    assert_eq!(config.max_memory_bytes, None);
    assert_eq!(config.fp8_scaling, Fp8Scaling::default());
}

#[test]
fn run_options_apply_over_the_default_and_a_preset() {
    let experiment = RunOptions {
        depth: Some(3),
        widths: Some(vec![5]),
        batch: Some(2),
        seed: Some(9),
        precisions: Some(vec![Precision::Bf16, Precision::Fp8]),
        fp8_scaling: Some("current".into()),
        ..RunOptions::default()
    }
    .experiment()
    .unwrap();
    let config = &experiment.variants[0].1;
    assert_eq!((config.depth, config.batch, config.seed), (3, 2, 9));
    assert_eq!(config.widths, vec![5; 4]);
    assert_eq!(config.fp8_scaling, Fp8Scaling::Current);
    assert_eq!(experiment.precisions, vec![Precision::Bf16, Precision::Fp8]);
    // A preset keeps its claims unless an option changes its runs.
    let own = RunOptions {
        preset: Some("bf16-range".into()),
        ..RunOptions::default()
    };
    assert!(own.experiment().unwrap().claims.is_some());
    let changed = RunOptions {
        depth: Some(6),
        ..own
    };
    assert!(changed.experiment().unwrap().claims.is_none());
}

#[test]
fn run_conflicts_are_refused_with_their_names() {
    let weights = || RunOptions {
        weights: never_read("w.safetensors"),
        ..RunOptions::default()
    };
    let data = || RunOptions {
        data: never_read("d.npz"),
        ..RunOptions::default()
    };
    let cases: Vec<(RunOptions, &str)> = vec![
        (
            RunOptions {
                preset: Some("bf16-range".into()),
                ..weights()
            },
            "preset cannot be used with weights, which sets it from the file",
        ),
        (
            RunOptions {
                depth: Some(3),
                ..weights()
            },
            "depth cannot be used with weights, which sets it from the file",
        ),
        (
            RunOptions {
                widths: Some(vec![4]),
                ..weights()
            },
            "widths cannot be used with weights, which sets it from the file",
        ),
        (
            RunOptions {
                init: Some(Init::Normal { std: 1.0 }),
                ..weights()
            },
            "init cannot be used with weights, which sets it from the file",
        ),
        (
            RunOptions {
                bias_std: Some(0.1),
                ..weights()
            },
            "bias_std cannot be used with weights, which sets it from the file",
        ),
        (
            RunOptions {
                preset: Some("bf16-range".into()),
                ..data()
            },
            "preset cannot be used with data, which sets it from the file",
        ),
        (
            RunOptions {
                batch: Some(4),
                ..data()
            },
            "batch cannot be used with data, which sets it from the file",
        ),
        (
            RunOptions {
                input: Some(gradstab::init::InputInit::Normal { std: 2.0 }),
                ..data()
            },
            "input cannot be used with data, which sets it from the file",
        ),
        (
            RunOptions {
                clip_norm: Some(1.0),
                clip_value: Some(1.0),
                ..RunOptions::default()
            },
            "clip_norm cannot be used with clip_value, choose one way of clipping",
        ),
        (
            RunOptions {
                fp8_margin: Some(2),
                ..RunOptions::default()
            },
            "fp8_scaling, fp8_history and fp8_margin apply to precision fp8 only",
        ),
        (
            RunOptions {
                precisions: Some(vec![Precision::Fp8]),
                fp8_scaling: Some("current".into()),
                fp8_history: Some(4),
                ..RunOptions::default()
            },
            "fp8_history and fp8_margin apply to fp8_scaling delayed only",
        ),
    ];
    for (options, expected) in cases {
        assert_eq!(refusal(options.experiment()), expected, "{options:?}");
    }
}

#[test]
fn run_values_out_of_range_are_refused() {
    let cases: Vec<(RunOptions, &str)> = vec![
        (
            RunOptions {
                depth: Some(0),
                ..RunOptions::default()
            },
            "depth 0: expected a whole number from 1 to 1000000",
        ),
        (
            RunOptions {
                depth: Some(MAX_DEPTH + 1),
                ..RunOptions::default()
            },
            "depth 1000001: expected a whole number from 1 to 1000000",
        ),
        (
            RunOptions {
                batch: Some(0),
                ..RunOptions::default()
            },
            "batch 0: expected a whole number ≥ 1",
        ),
        (
            RunOptions {
                widths: Some(vec![4, 0]),
                ..RunOptions::default()
            },
            "widths [4, 0]: expected one or more whole numbers ≥ 1",
        ),
        (
            RunOptions {
                clip_norm: Some(-1.0),
                ..RunOptions::default()
            },
            "clip_norm -1: expected a finite number > 0",
        ),
        (
            RunOptions {
                bias_std: Some(1e39),
                ..RunOptions::default()
            },
            "bias_std 1000000000000000000000000000000000000000: expected a number from 0 to 3.4e38 (biases are drawn as f32)",
        ),
    ];
    for (options, expected) in cases {
        assert_eq!(refusal(options.experiment()), expected, "{options:?}");
    }
}

#[test]
fn train_defaults_are_the_documented_run() {
    // docs/cli.md: depth 8, width 64, a linear head, no biases, seed 0; the teacher task of
    // depth 2 and the model's middle width on 256 samples, the whole set one batch; 100 SGD
    // steps at lr 0.01 in f32 without loss scaling; full records at the first and last step.
    let preset = TrainOptions::default().runs().unwrap();
    assert_eq!(preset.name, "custom");
    assert_eq!(preset.runs.len(), 1);
    let (label, config) = &preset.runs[0];
    assert_eq!(label, "f32 sgd lr=0.01");
    let net = &config.network;
    assert_eq!(net.depth, 8);
    assert_eq!(net.widths, vec![64; 9]);
    assert_eq!(net.batch, 256);
    assert!(!net.output_activation);
    assert!(!net.linear_bias);
    assert!(!net.residual);
    assert_eq!(net.seed, 0);
    assert_eq!(net.activation, Activation::Relu);
    assert_eq!(
        config.task,
        Task::Teacher {
            depth: 2,
            width: 64
        }
    );
    assert_eq!(config.samples, 256);
    assert!(!config.shuffle);
    assert_eq!(config.steps, 100);
    assert_eq!(config.record_every, 0);
    assert_eq!(config.lr, 0.01);
    assert_eq!(config.optimizer, OptimizerConfig::new(OptimizerKind::Sgd));
    assert_eq!(config.precision, Precision::F32);
    assert_eq!(config.loss_scale, LossScale::None);
    // Adam's and AdamW's default rate is torch.optim's, 0.001.
    for kind in [OptimizerKind::Adam, OptimizerKind::AdamW] {
        let runs = TrainOptions {
            optimizer: Some(kind),
            ..TrainOptions::default()
        }
        .runs()
        .unwrap();
        assert_eq!(runs.runs[0].1.lr, 0.001);
        assert_eq!(runs.runs[0].1.optimizer, OptimizerConfig::new(kind));
    }
    // The teacher follows the model's middle width, and classification is the same teacher.
    let runs = TrainOptions {
        depth: Some(4),
        widths: Some(vec![3, 5, 7, 9, 2]),
        task: Some(TaskKind::Classify),
        ..TrainOptions::default()
    }
    .runs()
    .unwrap();
    assert_eq!(runs.runs[0].1.task, Task::Classify { depth: 2, width: 7 });
}

#[test]
fn train_runs_one_per_precision_and_rate() {
    let runs = TrainOptions {
        lr: Some(vec![0.1, 0.2]),
        precisions: Some(vec![Precision::F32, Precision::Bf16]),
        loss_scale: Some(LossScale::Static { scale: 8.0 }),
        ..TrainOptions::default()
    }
    .runs()
    .unwrap();
    let labels: Vec<&str> = runs.runs.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "f32 sgd lr=0.1 loss-scale=static:8",
            "f32 sgd lr=0.2 loss-scale=static:8",
            "bf16 sgd lr=0.1 loss-scale=static:8",
            "bf16 sgd lr=0.2 loss-scale=static:8",
        ]
    );
}

#[test]
fn train_conflicts_are_refused_with_their_names() {
    let weights = || TrainOptions {
        weights: never_read("w.safetensors"),
        ..TrainOptions::default()
    };
    let data = || TrainOptions {
        data: never_read("d.npz"),
        ..TrainOptions::default()
    };
    let from_file = |name: &str, source: &str| {
        format!("{name} cannot be used with {source}, which sets it from the file")
    };
    let cases: Vec<(TrainOptions, String)> = vec![
        (
            TrainOptions {
                depth: Some(3),
                ..weights()
            },
            from_file("depth", "weights"),
        ),
        (
            TrainOptions {
                widths: Some(vec![4]),
                ..weights()
            },
            from_file("widths", "weights"),
        ),
        (
            TrainOptions {
                init: Some(Init::Normal { std: 1.0 }),
                ..weights()
            },
            from_file("init", "weights"),
        ),
        (
            TrainOptions {
                bias: true,
                ..weights()
            },
            from_file("bias", "weights"),
        ),
        (
            TrainOptions {
                task: Some(TaskKind::Classify),
                ..data()
            },
            from_file("task", "data"),
        ),
        (
            TrainOptions {
                samples: Some(8),
                ..data()
            },
            from_file("samples", "data"),
        ),
        (
            TrainOptions {
                teacher_depth: Some(3),
                ..data()
            },
            from_file("teacher_depth", "data"),
        ),
        (
            TrainOptions {
                teacher_width: Some(3),
                ..data()
            },
            from_file("teacher_width", "data"),
        ),
        (
            TrainOptions {
                clip_norm: Some(1.0),
                clip_value: Some(1.0),
                ..TrainOptions::default()
            },
            "clip_norm cannot be used with clip_value, choose one way of clipping".into(),
        ),
        (
            TrainOptions {
                eps: Some(1e-6),
                ..TrainOptions::default()
            },
            "betas and eps are Adam's and AdamW's; sgd has momentum".into(),
        ),
        (
            TrainOptions {
                betas: Some((0.9, 0.99)),
                ..TrainOptions::default()
            },
            "betas and eps are Adam's and AdamW's; sgd has momentum".into(),
        ),
        (
            TrainOptions {
                growth_factor: Some(4.0),
                ..TrainOptions::default()
            },
            "growth_factor sets dynamic loss scaling; set loss_scale to dynamic".into(),
        ),
        (
            TrainOptions {
                lr: Some(vec![0.1, 0.2]),
                save_weights: never_read("out.safetensors"),
                ..TrainOptions::default()
            },
            "save_weights writes one model: give one lr and one precision, not 2 runs".into(),
        ),
        (
            TrainOptions {
                fp8_scaling: Some("current".into()),
                ..TrainOptions::default()
            },
            "fp8_scaling, fp8_history and fp8_margin apply to precision fp8 only".into(),
        ),
        (
            TrainOptions {
                steps: Some(0),
                ..TrainOptions::default()
            },
            "steps 0: expected a whole number ≥ 1".into(),
        ),
        (
            TrainOptions {
                lr: Some(vec![0.1, -1.0]),
                ..TrainOptions::default()
            },
            "lr [0.1, -1.0]: expected finite numbers ≥ 0".into(),
        ),
        (
            TrainOptions {
                betas: Some((0.9, 1.0)),
                optimizer: Some(OptimizerKind::Adam),
                ..TrainOptions::default()
            },
            "betas (0.9, 1): expected two numbers in [0, 1)".into(),
        ),
        (
            TrainOptions {
                growth_interval: Some(0),
                ..TrainOptions::default()
            },
            "growth_interval 0: expected a whole number ≥ 1".into(),
        ),
    ];
    for (options, expected) in cases {
        assert_eq!(refusal(options.runs()), expected, "{options:?}");
    }
}

/// Each option a preset fixes, set on options that name the preset.
fn preset_with_each_fixed_option() -> Vec<(&'static str, TrainOptions)> {
    let p = || TrainOptions {
        preset: Some("remedies".into()),
        ..TrainOptions::default()
    };
    vec![
        (
            "depth",
            TrainOptions {
                depth: Some(3),
                ..p()
            },
        ),
        (
            "widths",
            TrainOptions {
                widths: Some(vec![4]),
                ..p()
            },
        ),
        (
            "activation",
            TrainOptions {
                activation: Some(Activation::Tanh),
                ..p()
            },
        ),
        (
            "init",
            TrainOptions {
                init: Some(Init::Normal { std: 1.0 }),
                ..p()
            },
        ),
        ("bias", TrainOptions { bias: true, ..p() }),
        (
            "residual",
            TrainOptions {
                residual: true,
                ..p()
            },
        ),
        (
            "output_activation",
            TrainOptions {
                output_activation: Some(true),
                ..p()
            },
        ),
        (
            "weights",
            TrainOptions {
                weights: never_read("w.safetensors"),
                ..p()
            },
        ),
        (
            "save_weights",
            TrainOptions {
                save_weights: never_read("s.safetensors"),
                ..p()
            },
        ),
        (
            "task",
            TrainOptions {
                task: Some(TaskKind::Teacher),
                ..p()
            },
        ),
        (
            "data",
            TrainOptions {
                data: never_read("d.npz"),
                ..p()
            },
        ),
        (
            "batch",
            TrainOptions {
                batch: Some(4),
                ..p()
            },
        ),
        (
            "samples",
            TrainOptions {
                samples: Some(4),
                ..p()
            },
        ),
        (
            "optimizer",
            TrainOptions {
                optimizer: Some(OptimizerKind::Adam),
                ..p()
            },
        ),
        (
            "lr",
            TrainOptions {
                lr: Some(vec![0.1]),
                ..p()
            },
        ),
        (
            "momentum",
            TrainOptions {
                momentum: Some(0.5),
                ..p()
            },
        ),
        (
            "weight_decay",
            TrainOptions {
                weight_decay: Some(0.1),
                ..p()
            },
        ),
        (
            "precisions",
            TrainOptions {
                precisions: Some(vec![Precision::F32]),
                ..p()
            },
        ),
        (
            "loss_scale",
            TrainOptions {
                loss_scale: Some(LossScale::None),
                ..p()
            },
        ),
        (
            "clip_norm",
            TrainOptions {
                clip_norm: Some(1.0),
                ..p()
            },
        ),
        (
            "clip_value",
            TrainOptions {
                clip_value: Some(1.0),
                ..p()
            },
        ),
        (
            "nesterov",
            TrainOptions {
                nesterov: true,
                ..p()
            },
        ),
        (
            "betas",
            TrainOptions {
                betas: Some((0.9, 0.99)),
                ..p()
            },
        ),
        (
            "eps",
            TrainOptions {
                eps: Some(1e-6),
                ..p()
            },
        ),
        (
            "init_scale",
            TrainOptions {
                init_scale: Some(1024.0),
                ..p()
            },
        ),
        (
            "growth_factor",
            TrainOptions {
                growth_factor: Some(4.0),
                ..p()
            },
        ),
        (
            "backoff_factor",
            TrainOptions {
                backoff_factor: Some(0.25),
                ..p()
            },
        ),
        (
            "growth_interval",
            TrainOptions {
                growth_interval: Some(5),
                ..p()
            },
        ),
        (
            "shuffle",
            TrainOptions {
                shuffle: true,
                ..p()
            },
        ),
        (
            "teacher_depth",
            TrainOptions {
                teacher_depth: Some(3),
                ..p()
            },
        ),
        (
            "teacher_width",
            TrainOptions {
                teacher_width: Some(9),
                ..p()
            },
        ),
        (
            "fp8_scaling",
            TrainOptions {
                fp8_scaling: Some("none".into()),
                ..p()
            },
        ),
        (
            "fp8_history",
            TrainOptions {
                fp8_history: Some(4),
                ..p()
            },
        ),
        (
            "fp8_margin",
            TrainOptions {
                fp8_margin: Some(1),
                ..p()
            },
        ),
    ]
}

#[test]
fn a_preset_refuses_every_option_it_fixes_and_takes_steps_seed_and_record_every() {
    for (name, options) in preset_with_each_fixed_option() {
        assert_eq!(
            refusal(options.runs()),
            format!(
                "{name} cannot be used with preset, whose runs fix it; steps, seed and \
                 record_every apply to a preset"
            ),
        );
    }
    // Without options, the preset's own runs.
    let own = TrainOptions {
        preset: Some("remedies".into()),
        ..TrainOptions::default()
    };
    let expected = gradstab::train::presets::preset("remedies").unwrap();
    let runs = own.runs().unwrap();
    assert_eq!(runs.name, "remedies");
    assert_eq!(runs.runs, expected.runs);
    // Steps, seed and record_every apply to each of its runs, and nothing else changes.
    let runs = TrainOptions {
        steps: Some(7),
        seed: Some(5),
        record_every: Some(2),
        ..own
    }
    .runs()
    .unwrap();
    assert_eq!(runs.runs.len(), expected.runs.len());
    for ((label, config), (want_label, want)) in runs.runs.iter().zip(&expected.runs) {
        assert_eq!(label, want_label);
        assert_eq!(
            (config.steps, config.network.seed, config.record_every),
            (7, 5, 2)
        );
        let mut undone = config.clone();
        undone.steps = want.steps;
        undone.network.seed = want.network.seed;
        undone.record_every = want.record_every;
        assert_eq!(&undone, want, "{label}");
    }
}

#[test]
fn backend_choices_parse_and_the_cpu_opens() {
    assert_eq!(BackendChoice::default(), BackendChoice::Auto);
    for (name, choice) in [
        ("auto", BackendChoice::Auto),
        ("GPU", BackendChoice::Gpu),
        (" cpu ", BackendChoice::Cpu),
    ] {
        assert_eq!(name.parse::<BackendChoice>().unwrap(), choice);
    }
    assert!(matches!(
        "tpu".parse::<BackendChoice>(),
        Err(Error::Parse { .. })
    ));
    // The CPU is opened without looking for an adapter, even one named that does not exist.
    let options = GpuOptions {
        adapter: Some("no adapter has this name".into()),
        ..GpuOptions::default()
    };
    let device = Device::open(BackendChoice::Cpu, &options, true).unwrap();
    assert!(matches!(device, Device::Cpu(_)));
    assert_eq!(device.info().adapter, Cpu.info().adapter);
    assert!(device.gpu().is_none());
    // A GPU named and not found is refused on every choice that looks for one, never
    // replaced by the CPU.
    for choice in [BackendChoice::Auto, BackendChoice::Gpu] {
        assert!(Device::open(choice, &options, true).is_err(), "{choice:?}");
    }
}

#[test]
fn a_gpu_asked_for_is_opened() {
    if common::gpu("a_gpu_asked_for_is_opened").is_none() {
        return;
    }
    let device = Device::open(BackendChoice::Gpu, &GpuOptions::from_env().unwrap(), true).unwrap();
    assert!(matches!(device, Device::Gpu(_)));
    assert_eq!(device.info().adapter, device.gpu().unwrap().adapter_name());
}

#[test]
fn tensor_stats_on_the_cpu_are_exact_on_small_integers() {
    let values = [1.0f32, 2.0, 3.0, 4.0, 0.0, -0.0];
    let tensor = HostTensor::from_f32(2, 3, values.to_vec()).unwrap();
    let stats = tensor_stats(&Device::cpu(), &tensor).unwrap();
    // Sums of small integers and their squares are exact in f64: mean 10/6, population
    // variance 30/6 − (10/6)², within a few roundings of each.
    let mean = 10.0 / 6.0;
    let variance = 30.0 / 6.0 - mean * mean;
    assert_eq!(stats.count, 6);
    assert_eq!(stats.zero, 2);
    assert_eq!((stats.min, stats.max, stats.abs_max), (0.0, 4.0, 4.0));
    assert!(
        (stats.mean - mean).abs() <= 4.0 * f64::EPSILON * mean,
        "{}",
        stats.mean
    );
    assert!(
        (stats.variance - variance).abs() <= 16.0 * f64::EPSILON * 5.0,
        "{}",
        stats.variance
    );
    assert!((stats.l2_norm - 30f64.sqrt()).abs() <= 4.0 * f64::EPSILON * 30f64.sqrt());
}

#[test]
fn run_experiment_reports_every_run_and_its_progress() {
    let experiment = RunOptions {
        depth: Some(3),
        widths: Some(vec![4]),
        batch: Some(2),
        precisions: Some(vec![Precision::F32, Precision::Bf16]),
        ..RunOptions::default()
    }
    .experiment()
    .unwrap();
    let mut seen: Vec<(usize, usize, String)> = Vec::new();
    let report = run_experiment(&Device::cpu(), &experiment, None, &mut |p: Progress| {
        seen.push((p.done, p.total, p.label.to_string()));
        Ok(())
    })
    .unwrap();
    assert_eq!(report.runs.len(), 2);
    assert_eq!(report.device.adapter, Cpu.info().adapter);
    assert!(report.claims.is_empty());
    // Forward and backward of 3 layers, in each of 2 precisions.
    assert!(seen.iter().all(|(_, total, _)| *total == 2 * 3 * 2));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(seen.last().unwrap().0, 12);
    assert!(seen.iter().any(|(_, _, l)| l == "net bf16"));
}

/// The run of tests/train_refusals.rs that diverges: lr 10 on a linear net.
fn diverging() -> TrainOptions {
    TrainOptions {
        depth: Some(3),
        widths: Some(vec![8]),
        samples: Some(16),
        steps: Some(30),
        lr: Some(vec![10.0]),
        activation: Some(Activation::Linear {
            alpha: 1.0,
            beta: 0.0,
        }),
        ..TrainOptions::default()
    }
}

#[test]
fn a_diverged_model_is_not_saved_and_a_finite_one_is() {
    let dir = std::env::temp_dir().join(format!("gradstab-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = diverging().runs().unwrap();
    let outcome = train_runs(&Device::cpu(), &runs, None, true, &mut |_| Ok(())).unwrap();
    let step = outcome.report.runs[0]
        .summary
        .diverged_at
        .expect("lr 10 diverges");
    let path = dir.join("diverged.safetensors");
    match outcome.save_weights(&path) {
        Err(e @ Error::File { .. }) => assert_eq!(
            e.to_string(),
            format!(
                "{}: the weights were not written: the run diverged (loss inf or NaN) at step {step}",
                path.display()
            )
        ),
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert!(!path.exists(), "NaN weights were written");
    // The same model at a small rate trains finitely, and its weights are written.
    let calm = TrainOptions {
        lr: Some(vec![1e-3]),
        steps: Some(3),
        ..diverging()
    };
    let outcome = train_runs(
        &Device::cpu(),
        &calm.runs().unwrap(),
        None,
        true,
        &mut |_| Ok(()),
    )
    .unwrap();
    assert!(outcome.report.runs[0].summary.diverged_at.is_none());
    let path = dir.join("calm.safetensors");
    outcome.save_weights(&path).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_progress_callback_that_returns_an_error_stops_the_call_there() {
    // How a caller stops a long call (Python's Ctrl-C): the callback's error ends it at the
    // next step or layer, and nothing runs after the refusal.
    let runs = TrainOptions {
        depth: Some(2),
        widths: Some(vec![4]),
        samples: Some(8),
        steps: Some(50),
        ..TrainOptions::default()
    }
    .runs()
    .unwrap();
    let mut reported = Vec::new();
    let stopped = train_runs(&Device::cpu(), &runs, None, false, &mut |p| {
        reported.push(p.done);
        if p.done >= 3 {
            Err(gradstab::Error::Interrupted)
        } else {
            Ok(())
        }
    });
    assert!(matches!(stopped, Err(gradstab::Error::Interrupted)));
    assert_eq!(
        reported,
        [1, 2, 3],
        "one report per step, none after the stop"
    );

    let experiment = RunOptions {
        depth: Some(6),
        widths: Some(vec![4]),
        batch: Some(2),
        ..RunOptions::default()
    }
    .experiment()
    .unwrap();
    let mut layers = Vec::new();
    let stopped = run_experiment(&Device::cpu(), &experiment, None, &mut |p| {
        layers.push(p.done);
        if p.done >= 2 {
            Err(gradstab::Error::Interrupted)
        } else {
            Ok(())
        }
    });
    assert!(matches!(stopped, Err(gradstab::Error::Interrupted)));
    assert_eq!(layers, [1, 2], "one report per layer, none after the stop");
}

#[test]
fn epochs_set_the_steps_from_the_samples_batch_and_drop_last() {
    // (samples, batch, drop_last, epochs, steps): ceil(N/B) per epoch, floor with drop_last
    // (DataLoader's len()); a batch that fits exactly has no remainder to drop.
    for (samples, batch, drop_last, epochs, steps) in [
        (10, 4, false, 3, 9),
        (10, 4, true, 3, 6),
        (12, 4, false, 2, 6),
        (12, 4, true, 2, 6),
        (10, 10, true, 5, 5),
        (7, 1, false, 2, 14),
    ] {
        let preset = TrainOptions {
            depth: Some(2),
            widths: Some(vec![4]),
            samples: Some(samples),
            batch: Some(batch),
            drop_last,
            epochs: Some(epochs),
            ..Default::default()
        }
        .runs()
        .unwrap();
        let config = &preset.runs[0].1;
        assert_eq!(
            config.steps, steps,
            "{samples} samples, batch {batch}, drop_last {drop_last}, {epochs} epochs"
        );
        assert_eq!(config.drop_last, drop_last);
    }
}

#[test]
fn epochs_refuse_steps_and_drop_last_refuses_a_batch_beyond_the_data() {
    let small = || TrainOptions {
        depth: Some(2),
        widths: Some(vec![4]),
        samples: Some(6),
        ..Default::default()
    };
    let e = refusal(
        TrainOptions {
            steps: Some(5),
            epochs: Some(2),
            ..small()
        }
        .runs(),
    );
    assert!(e.contains("steps cannot be used with epochs"), "{e}");
    let e = refusal(
        TrainOptions {
            epochs: Some(0),
            ..small()
        }
        .runs(),
    );
    assert!(e.contains("epochs 0"), "{e}");
    // With drop_last, a batch of 7 from 6 samples would be zero steps an epoch.
    for epochs in [None, Some(2)] {
        let e = refusal(
            TrainOptions {
                batch: Some(7),
                drop_last: true,
                epochs,
                ..small()
            }
            .runs(),
        );
        assert!(
            e.contains("--drop-last with --batch 7 larger than the 6 samples"),
            "{e}"
        );
    }
    let e = refusal(
        TrainOptions {
            preset: Some("lr-sensitivity".into()),
            epochs: Some(2),
            ..Default::default()
        }
        .runs(),
    );
    assert!(e.contains("epochs cannot be used with preset"), "{e}");
}
