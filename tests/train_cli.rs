//! `gradstab train` from the outside: its outputs, saved weights that load back exactly and
//! continue training where they stopped, training on a user's data file, and one-line
//! errors with exit code 2 for requests it cannot honour.

mod common;

use std::path::{Path, PathBuf};

use gradstab::network::{load_parameters, NetworkConfig};
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::train::{run_training, weights, LossScale, Task, TrainConfig};
use gradstab::{Cpu, Precision};

use common::gradstab_cli as gradstab;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradstab-train-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn small(steps: usize) -> TrainConfig {
    TrainConfig {
        network: NetworkConfig {
            output_activation: false,
            linear_bias: true,
            seed: 9,
            ..NetworkConfig::new(3, 8, 16)
        },
        task: Task::Teacher { depth: 2, width: 8 },
        samples: 16,
        shuffle: false,
        drop_last: false,
        steps,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr: 0.05,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Default::default(),
    }
}

#[test]
fn saved_weights_load_back_exactly_and_continue_where_training_stopped() {
    let dir = scratch("roundtrip");
    let path = dir.join("trained.safetensors");
    let first = run_training(&Cpu::new(), &small(3), "a", true, &mut |_, _| Ok(())).unwrap();
    let trained = first.weights.unwrap();
    weights::save(&trained, &path).unwrap();
    let loaded = load_parameters(&path).unwrap();
    assert_eq!(loaded.weights, trained.weights);
    assert_eq!(loaded.biases, trained.biases);

    // Plain SGD keeps no state: 3 steps, then 1 from the saved weights, is 4 steps.
    let four = run_training(&Cpu::new(), &small(4), "b", false, &mut |_, _| Ok(()))
        .unwrap()
        .run;
    let mut resumed = small(1);
    resumed.network = resumed.network.with_given_parameters(loaded);
    let resumed = run_training(&Cpu::new(), &resumed, "c", false, &mut |_, _| Ok(()))
        .unwrap()
        .run;
    assert_eq!(resumed.steps[0].loss, four.steps[3].loss);

    // And from the command line, with a pure f16 model saved as f16.
    let f16 = dir.join("f16.safetensors");
    let out = gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--depth",
        "2",
        "--width",
        "8",
        "--bias",
        "--steps",
        "2",
        "--precision",
        "f16",
        "--save-weights",
        s(&f16),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loaded = load_parameters(&f16).unwrap();
    assert_eq!(loaded.widths(), vec![8, 8, 8]);
    assert!(loaded.biases.iter().all(Option::is_some));
    let out = gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--weights",
        s(&f16),
        "--steps",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tensor of a safetensors file: name, shape, dtype, bytes.
type Entry = (&'static str, Vec<usize>, safetensors::Dtype, Vec<u8>);

fn write(path: &Path, entries: &[Entry]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = entries
        .iter()
        .map(|(name, shape, dtype, data)| {
            (
                name.to_string(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn f32s(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
        .collect()
}

/// A usage error: exit 2 and one line.
fn assert_refused(args: &[&str], expected: &str) {
    assert_refused_with(args, 2, expected)
}

/// Refused with `code` (1 for a file or the run, 2 for the command line) and one line.
fn assert_refused_with(args: &[&str], code: i32, expected: &str) {
    let out = gradstab(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(expected), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
}

#[test]
fn bad_weight_files_are_one_line_errors() {
    let dir = scratch("bad-weights");
    use safetensors::Dtype::{F32, I64};
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "missing",
            vec![
                ("0.weight", vec![4, 3], F32, f32s(12)),
                ("2.bias", vec![2], F32, f32s(2)),
            ],
            "missing layer: '2.bias' has no '2.weight'",
        ),
        (
            "widths",
            vec![
                ("0.weight", vec![4, 3], F32, f32s(12)),
                ("2.weight", vec![2, 5], F32, f32s(10)),
            ],
            "mismatched widths",
        ),
        (
            "integer",
            vec![("0.weight", vec![4, 3], I64, vec![0u8; 96])],
            "is an integer tensor (i64)",
        ),
    ];
    for (name, entries, expected) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        write(&path, &entries);
        // A bad input file is a file problem (exit 1), as in `stats` and `run`.
        assert_refused_with(
            &[
                "train",
                "--backend",
                "cpu",
                "--quiet",
                "--weights",
                s(&path),
            ],
            1,
            expected,
        );
    }
}

#[test]
fn trains_on_a_data_file_with_integer_labels() {
    let dir = scratch("data");
    let path = dir.join("data.safetensors");
    let (n, inputs) = (12, 3);
    let labels: Vec<u8> = (0..n as i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
    write(
        &path,
        &[
            (
                "x",
                vec![n, inputs],
                safetensors::Dtype::F32,
                f32s(n * inputs),
            ),
            ("y", vec![n], safetensors::Dtype::I64, labels),
        ],
    );
    let out = gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--data",
        s(&path),
        "--depth",
        "2",
        "--steps",
        "3",
        "--batch",
        "4",
        "--shuffle",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &report["runs"][0];
    // Three classes from the labels; cross-entropy starts near ln 3.
    assert_eq!(
        run["config"]["network"]["widths"],
        serde_json::json!([3, 64, 3])
    );
    assert!((run["summary"]["baseline_loss"].as_f64().unwrap() - 3f64.ln()).abs() < 1e-12);
    assert_eq!(run["steps"].as_array().unwrap().len(), 3);
    // A label beyond the outputs is refused.
    assert_refused(
        &[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--data",
            s(&path),
            "--depth",
            "2",
            "--width",
            "3,8,2",
        ],
        "has the label 2, but the network has 2 outputs",
    );
}

#[test]
fn outputs_json_csv_and_plots() {
    let dir = scratch("outputs");
    let (plot, heat, csv) = (
        dir.join("loss.svg"),
        dir.join("heat.svg"),
        dir.join("steps.csv"),
    );
    let common = [
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--depth",
        "3",
        "--width",
        "8",
        "--steps",
        "4",
        "--record-every",
        "2",
        "--lr",
        "0.01,0.1",
    ];
    let out = gradstab(&[&common[..], &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["runs"].as_array().unwrap().len(),
        2,
        "one run per rate"
    );
    let steps = report["runs"][1]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    for key in ["loss", "loss_scale", "skipped", "layers"] {
        assert!(steps[0].get(key).is_some(), "{key}");
    }
    let layer = &steps[0]["layers"][0];
    for key in [
        "grad_norm",
        "weight_norm",
        "update_ratio",
        "grad_zero_fraction",
        "grad_subnormal_fraction",
        "grad_non_finite_fraction",
    ] {
        assert!(layer[key].is_number(), "{key}: {layer}");
    }
    // Full records at steps 1, 2, 4 (first, every 2nd, last), not at 3.
    let with: Vec<u64> = steps
        .iter()
        .filter(|s| s.get("snapshot").is_some())
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(with, vec![1, 2, 4]);
    assert!(steps[1]["snapshot"][2]["grad_weight"]["l2_norm"].is_number());

    let out = gradstab(
        &[
            &common[..],
            &[
                "--format",
                "csv",
                "--out",
                s(&csv),
                "--plot",
                s(&plot),
                "--heatmap",
                s(&heat),
            ],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text
        .starts_with("run,precision,lr,step,epoch,batch,loss,loss_scale,skipped,layer,grad_norm"));
    assert_eq!(
        text.lines().count(),
        1 + 2 * 4 * 3,
        "a row per run, step and layer"
    );
    for svg in [&plot, &heat] {
        assert!(std::fs::read_to_string(svg).unwrap().starts_with("<svg"));
    }
}

#[test]
fn requests_it_cannot_honour_are_refused() {
    let cpu = ["train", "--backend", "cpu", "--quiet"];
    let cases: [(&[&str], &str); 9] = [
        (
            &["--eps", "1e-6"],
            "betas and eps are Adam's and AdamW's; sgd has momentum",
        ),
        (
            &["--precision", "f16", "--loss-scale", "dynamic"],
            "loss scaling needs f32 master weights",
        ),
        (&["--batch", "300"], "--batch 300 exceeds the 256 samples"),
        (&["--preset", "nope"], "no training preset 'nope'"),
        (
            &["--preset", "remedies", "--depth", "3"],
            "the argument '--preset <PRESET>' cannot be used with '--depth <DEPTH>'",
        ),
        (&["--lr", "-1"], "'--lr <LR>': expected finite numbers ≥ 0"),
        (
            &["--optimizer", "adam", "--momentum", "0.9"],
            "--momentum and --nesterov are SGD's",
        ),
        (
            &["--growth-interval", "5"],
            "growth_interval sets dynamic loss scaling; set loss_scale to dynamic",
        ),
        (
            &["--lr", "0.1,0.2", "--save-weights", "/tmp/x.safetensors"],
            "save_weights writes one model",
        ),
    ];
    for (extra, expected) in cases {
        assert_refused(&[&cpu[..], extra].concat(), expected);
    }
}

#[test]
fn a_run_too_large_for_memory_is_refused_before_it_allocates() {
    let start = std::time::Instant::now();
    let out = gradstab(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--depth",
        "100",
        "--width",
        "200000",
        "--samples",
        "8",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("this run needs about") || err.contains("one tensor of this run"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Refused from the estimate, not after drawing 4·10^12 weights.
    assert!(start.elapsed().as_secs() < 5);
}

#[test]
fn fp8_flags_are_honoured_or_refused() {
    // Flags nothing would read are refused, not ignored.
    assert_refused(
        &["train", "--backend", "cpu", "--fp8-scaling", "current"],
        "fp8_scaling, fp8_history and fp8_margin apply to precision fp8 only",
    );
    assert_refused(
        &[
            "train",
            "--backend",
            "cpu",
            "--precision",
            "fp8",
            "--fp8-scaling",
            "current",
            "--fp8-history",
            "4",
        ],
        "fp8_history and fp8_margin apply to fp8_scaling delayed only",
    );
    assert_refused(
        &[
            "train",
            "--backend",
            "cpu",
            "--precision",
            "fp8",
            "--fp8-scaling",
            "sometimes",
        ],
        "none, delayed or current",
    );
    assert_refused(
        &[
            "train",
            "--backend",
            "cpu",
            "--preset",
            "remedies",
            "--fp8-scaling",
            "none",
        ],
        "the argument '--preset <PRESET>' cannot be used with '--fp8-scaling <none|delayed|current>'",
    );
    assert_refused(
        &["run", "--backend", "cpu", "--fp8-margin", "2"],
        "fp8_scaling, fp8_history and fp8_margin apply to precision fp8 only",
    );
}

#[test]
fn fp8_training_records_every_operand_of_every_step_in_json_and_csv() {
    let dir = scratch("fp8-records");
    let csv = dir.join("steps.csv");
    let common = [
        "train",
        "--backend",
        "cpu",
        "--depth",
        "3",
        "--width",
        "8",
        "--steps",
        "3",
        "--precision",
        "f32,fp8",
        "--fp8-scaling",
        "delayed",
        "--fp8-history",
        "2",
        "--fp8-margin",
        "1",
        "--quiet",
    ];
    let out = gradstab(&[&common[..], &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert!(
        runs[0]["steps"][0].get("fp8").is_none(),
        "f32 quantises nothing"
    );
    let fp8 = &runs[1];
    assert_eq!(fp8["config"]["precision"], "fp8");
    assert_eq!(fp8["config"]["network"]["fp8_scaling"]["rule"], "delayed");
    assert_eq!(fp8["config"]["network"]["fp8_scaling"]["history"], 2);
    assert_eq!(fp8["config"]["network"]["fp8_scaling"]["margin"], 1);
    for (i, step) in fp8["steps"].as_array().unwrap().iter().enumerate() {
        let records = step["fp8"].as_array().unwrap();
        assert_eq!(records.len(), 3 * 3, "three operands of three layers");
        for r in records {
            let scale = r["scale"].as_f64().unwrap();
            if i == 0 {
                assert_eq!(scale, 1.0, "delayed scaling's first step: {r}");
            } else {
                // 448·2^-1 / amax, or 57344·2^-1 / amax, of the earlier steps.
                assert!(scale != 1.0 && scale.is_finite(), "{r}");
            }
            let format = r["format"].as_str().unwrap();
            let role = r["role"].as_str().unwrap();
            assert_eq!(format, if role == "gradient" { "e5m2" } else { "e4m3" });
            for key in ["amax", "saturated", "flushed", "count", "layer"] {
                assert!(r[key].is_number(), "{key}: {r}");
            }
        }
    }
    let out = gradstab(&[&common[..], &["--format", "csv", "--out", s(&csv)]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (precision, scale) = (col("precision"), col("fp8_gradient_scale"));
    let unchanged = col("unchanged_fraction");
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert!(cells[unchanged].parse::<f64>().is_ok(), "{line}");
        match cells[precision] {
            "f32" => assert_eq!(cells[scale], "", "{line}"),
            _ => assert!(cells[scale].parse::<f64>().unwrap() > 0.0, "{line}"),
        }
    }
}
