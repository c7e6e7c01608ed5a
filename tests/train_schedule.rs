//! A learning-rate schedule reaches the optimizer at the step it belongs to: each step's
//! recorded `lr` is the schedule's (the schedule's own arithmetic is tested against PyTorch's
//! formulas in `train::schedule` and against torch itself in python/tests/test_schedules.py),
//! and the weights after step k are bit for bit those of an unscheduled SGD step at that
//! rate from the weights after step k − 1. Also: one scheduled run per `--lr`, and the
//! command line's flag, CSV column and refusals.

mod common;

use gradstab::api::train::TrainOptions;
use gradstab::network::given::GivenParameters;
use gradstab::network::NetworkConfig;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::{run_training, LossScale, LrSchedule, Task, TrainConfig};
use gradstab::{Activation, Backend, Cpu, HostTensor, Precision};

use common::{gradstab_cli, stderr_of};

/// A warm-up whose rate changes every step, then StepLR from its milestone: rates 0.05,
/// 0.075, 0.1, then 0.1, 0.05, 0.025 after the switch at step 3.
const SCHEDULE: &str = "linear:0.5:1:2,step:1:0.5@3";
const BASE_LR: f64 = 0.1;
const STEPS: usize = 6;

/// Plain SGD (no momentum, so one step depends on the weights and the rate only), the whole
/// data set one batch, tanh layers with biases, f32.
fn config(steps: usize, lr: f64, schedule: Option<&str>) -> TrainConfig {
    TrainConfig {
        network: NetworkConfig {
            activation: Activation::Tanh,
            output_activation: false,
            linear_bias: true,
            seed: 3,
            ..NetworkConfig::new(3, 6, 16)
        },
        task: Task::Teacher { depth: 2, width: 6 },
        samples: 16,
        shuffle: false,
        drop_last: false,
        steps,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr,
        lr_schedule: schedule.map(|s| s.parse::<LrSchedule>().unwrap()),
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    }
}

/// The trained weights and biases, and each step's recorded rate.
fn train<B: Backend>(backend: &B, config: &TrainConfig) -> (GivenParameters, Vec<f64>) {
    let outcome = run_training(backend, config, "schedule", true, &mut |_, _| Ok(())).unwrap();
    let w = outcome.weights.unwrap();
    let rates = outcome.run.steps.iter().map(|s| s.lr).collect();
    (
        GivenParameters::sequential("trained", w.weights, w.biases),
        rates,
    )
}

fn values(p: &GivenParameters) -> Vec<Vec<f32>> {
    let biases = p.biases.iter().flatten();
    p.weights
        .iter()
        .chain(biases)
        .map(HostTensor::to_f32_vec)
        .collect()
}

fn check_each_step_uses_its_rate<B: Backend>(backend: &B) {
    // The rates, written out as LinearLR and StepLR chain them (see train::schedule).
    let warm = [
        BASE_LR * 0.5,
        BASE_LR * 0.5 * (1.0 + 0.5 / (2.0 * 0.5)),
        BASE_LR * 0.5 * (1.0 + 0.5 / (2.0 * 0.5)) * (1.0 + 0.5 / (2.0 * 0.5 + 0.5)),
    ];
    let want = [
        warm[0],
        warm[1],
        warm[2],
        BASE_LR,
        BASE_LR * 0.5,
        BASE_LR * 0.25,
    ];
    let (_, recorded) = train(backend, &config(STEPS, BASE_LR, Some(SCHEDULE)));
    assert_eq!(recorded, want);

    // Step k of the scheduled run against one unscheduled step at want[k − 1], from the
    // weights the scheduled run had after step k − 1.
    let mut before: Option<GivenParameters> = None;
    for (k, &rate) in (1..=STEPS).zip(&want) {
        let (scheduled, _) = train(backend, &config(k, BASE_LR, Some(SCHEDULE)));
        let mut plain = config(1, rate, None);
        if let Some(given) = before {
            plain.network = plain.network.with_given_parameters(given);
        }
        let (stepped, plain_rates) = train(backend, &plain);
        assert_eq!(plain_rates, [rate]);
        assert_eq!(
            values(&scheduled),
            values(&stepped),
            "step {k}: the weights are not one SGD step at lr {rate}"
        );
        before = Some(scheduled);
    }
}

#[test]
fn each_step_uses_its_rate_on_the_cpu() {
    check_each_step_uses_its_rate(&Cpu::new());
}

#[test]
fn each_step_uses_its_rate_on_the_gpu() {
    if let Some(gpu) = common::gpu("each_step_uses_its_rate_on_the_gpu") {
        check_each_step_uses_its_rate(&gpu);
    }
}

/// A list of rates gives one run per rate, each scheduled from its own base rate, and the
/// label and the config's JSON say so with every argument written out.
#[test]
fn every_base_rate_gets_its_own_scheduled_run() {
    let options = TrainOptions {
        depth: Some(2),
        widths: Some(vec![4]),
        samples: Some(8),
        steps: Some(20),
        lr: Some(vec![0.1, 0.02]),
        lr_schedule: Some("linear:0.1:1:4,cosine@4".parse().unwrap()),
        ..TrainOptions::default()
    };
    let runs = options.runs().unwrap();
    assert_eq!(runs.runs.len(), 2);
    for ((label, config), base) in runs.runs.iter().zip([0.1, 0.02]) {
        assert_eq!(config.lr, base);
        assert_eq!(
            label,
            &format!("f32 sgd lr={base} schedule=linear:0.1:1:4,cosine:16:0@4")
        );
        let json = serde_json::to_value(config).unwrap();
        assert_eq!(json["lr_schedule"], "linear:0.1:1:4,cosine:16:0@4");
        let rates = config.rates();
        assert_eq!(rates.len(), 20);
        assert_eq!(rates[0], base * 0.1);
        // The cosine's first rate: its closed form at 0, the base rate.
        assert_eq!(rates[4], base);
        let (_, recorded) = train(&Cpu::new(), config);
        assert_eq!(recorded, rates);
    }
    // A preset fixes its rates.
    let Err(e) = TrainOptions {
        preset: Some("lr-sensitivity".into()),
        lr_schedule: Some("cosine".parse().unwrap()),
        ..TrainOptions::default()
    }
    .runs() else {
        panic!("a preset took a schedule");
    };
    assert!(e.to_string().contains("lr_schedule"), "{e}");
}

/// A schedule that grows the rate past f32's range is refused before anything runs.
#[test]
fn a_rate_beyond_f32_is_refused() {
    let e = config(400, 1.0, Some("step:1:2")).validate().unwrap_err();
    assert!(e.to_string().contains("beyond f32's range"), "{e}");
    config(100, 1.0, Some("step:1:2")).validate().unwrap();
}

/// `--lr-schedule` on the command line: each step's rate in the CSV's lr column, and a bad
/// spec refused with exit code 2 in one line.
#[test]
fn the_command_line_schedules_and_refuses() {
    let out = gradstab_cli(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--depth",
        "2",
        "--width",
        "4",
        "--samples",
        "8",
        "--steps",
        "5",
        "--lr",
        "0.4",
        "--lr-schedule",
        "step:2:0.5",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (lr, step) = (
        header.iter().position(|h| *h == "lr").unwrap(),
        header.iter().position(|h| *h == "step").unwrap(),
    );
    let mut seen = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let pair = (cells[step].to_string(), cells[lr].to_string());
        if !seen.contains(&pair) {
            seen.push(pair);
        }
    }
    let want: Vec<(String, String)> = [0.4, 0.4, 0.2, 0.2, 0.1]
        .iter()
        .enumerate()
        .map(|(i, r)| ((i + 1).to_string(), r.to_string()))
        .collect();
    assert_eq!(seen, want);

    for bad in ["cosine:0", "warmup", "linear,cosine"] {
        let out = gradstab_cli(&["train", "--backend", "cpu", "--lr-schedule", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = stderr_of(&out);
        assert!(err.contains("--lr-schedule"), "{bad}: {err}");
    }
}
