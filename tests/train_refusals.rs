//! `gradstab train` held to the standard of `run`: every number checked in the type it
//! becomes, labels checked against the model, a preset's fixed flags refused, a JSON config
//! that describes the run that happened, a diverged model never saved silently, and one
//! exit-code rule (2: the command line; 1: a file or the run) across commands.

mod common;

use std::path::{Path, PathBuf};

use common::{gradstab_cli as gradstab, s, stderr_of};

fn scratch(test: &str) -> PathBuf {
    common::scratch_dir("refusals", test)
}

const CPU: [&str; 4] = ["train", "--backend", "cpu", "--quiet"];

/// One line on stderr, the exit code, and `needle` in it; never a panic.
fn assert_refused<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    code: i32,
    needle: &str,
) {
    let out = gradstab(args);
    let e = stderr_of(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{args:?}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
    assert!(e.contains(needle), "{args:?}: '{needle}' missing from {e}");
}

/// A two-step run of a small model, with `extra` flags.
fn train<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let small = [
        "--depth",
        "2",
        "--width",
        "4",
        "--samples",
        "8",
        "--steps",
        "2",
    ];
    [&CPU[..], &small[..], extra].concat()
}

#[test]
fn numbers_finite_in_f64_but_zero_or_inf_in_f32_are_usage_errors_naming_the_flag() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["--precision", "f16acc32", "--loss-scale", "static:1e-50"],
            "--loss-scale static:S 1e-50: rounds to 0 in f32",
        ),
        (
            &["--precision", "f16acc32", "--loss-scale", "static:1e-40"],
            "its reciprocal is beyond f32's range",
        ),
        (
            &["--loss-scale", "dynamic", "--init-scale", "1e-50"],
            "--init-scale 1e-50: rounds to 0",
        ),
        (
            &["--loss-scale", "dynamic", "--backoff-factor", "1e-300"],
            "--backoff-factor 1e-300: expected a number in (0, 1)",
        ),
        (
            &["--loss-scale", "dynamic", "--growth-factor", "1.00000001"],
            "--growth-factor 1.00000001: expected a number in (1, inf)",
        ),
        (&["--lr", "1e300"], "--lr 1e300: beyond f32's largest value"),
        (
            &["--weight-decay", "1e39"],
            "--weight-decay 1e39: beyond f32's",
        ),
        (&["--momentum", "1e308"], "--momentum 1e308: beyond f32's"),
    ];
    for (extra, needle) in cases {
        assert_refused(&train(extra), 2, needle);
    }
    assert_refused(
        &train(&["--lr", "1e-50"]),
        2,
        "--lr 1e-50: rounds to 0 in f32",
    );
    assert_refused(
        &train(&["--optimizer", "adam", "--eps", "1e-46"]),
        2,
        "--eps 1e-46: rounds to 0",
    );
    // What AdamW computes, 1 − lr·λ, must be an f32 too.
    assert_refused(
        &train(&[
            "--optimizer",
            "adamw",
            "--lr",
            "1e30",
            "--weight-decay",
            "1e30",
        ]),
        2,
        "their product is beyond f32's range",
    );
    // The same values one step inside the range train.
    let ok = gradstab(&train(&["--lr", "1e-30", "--momentum", "0.5"]));
    assert!(ok.status.success(), "{}", stderr_of(&ok));
}

#[test]
fn negative_and_zero_counts_reach_the_range_check_of_their_own_flag() {
    let cases: [(&[&str], &str); 9] = [
        (
            &["--steps", "-1"],
            "invalid value '-1' for '--steps <STEPS>'",
        ),
        (&["--steps", "0"], "'--steps <STEPS>': 0 is not in 1.."),
        (
            &["--samples", "0"],
            "'--samples <SAMPLES>': 0 is not in 1..",
        ),
        (
            &["--teacher-width", "0"],
            "'--teacher-width <TEACHER_WIDTH>': 0 is not in 1..",
        ),
        (
            &["--record-every", "-1"],
            "invalid value '-1' for '--record-every <K>'",
        ),
        (
            &["--betas", "-1,0.5"],
            "'--betas <BETAS>': expected two numbers in [0, 1)",
        ),
        (
            &["--init-scale", "-1"],
            "'--init-scale <INIT_SCALE>': expected a finite number > 0",
        ),
        (
            &["--momentum", "-0.5"],
            "--momentum -0.5: expected a number ≥ 0",
        ),
        (
            &["--growth-interval", "-3"],
            "invalid value '-3' for '--growth-interval <GROWTH_INTERVAL>'",
        ),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = [&CPU[..], extra].concat();
        assert_refused(&args, 2, needle);
        assert!(!stderr_of(&gradstab(&args)).contains("invalid batch"));
    }
}

#[test]
fn every_flag_a_preset_fixes_is_refused_with_it() {
    let fixed: [&[&str]; 12] = [
        &["--betas", "0.9,0.99"],
        &["--eps", "1e-6"],
        &["--nesterov"],
        &["--init-scale", "1024"],
        &["--growth-factor", "4"],
        &["--backoff-factor", "0.25"],
        &["--growth-interval", "5"],
        &["--shuffle"],
        &["--teacher-depth", "3"],
        &["--teacher-width", "9"],
        &["--momentum", "0.5"],
        &["--bias"],
    ];
    for extra in fixed {
        let args: Vec<&str> = [&CPU[..], &["--preset", "remedies"], extra].concat();
        // clap's conflict, which names the flag with its value, if it takes one.
        assert_refused(
            &args,
            2,
            &format!(
                "the argument '--preset <PRESET>' cannot be used with '{}",
                extra[0]
            ),
        );
    }
}

/// Writes a safetensors file of f32 `x` [n, cols] and i64 labels `y`.
fn labelled_data(path: &Path, labels: &[i64], cols: usize) {
    let n = labels.len();
    let x: Vec<u8> = (0..n * cols)
        .flat_map(|i| ((i % 7) as f32 * 0.25 - 0.75).to_le_bytes())
        .collect();
    let y: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let views = vec![
        ("x", TensorView::new(Dtype::F32, vec![n, cols], &x).unwrap()),
        ("y", TensorView::new(Dtype::I64, vec![n], &y).unwrap()),
    ];
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn labels_are_checked_against_the_model_and_one_class_is_refused() {
    let dir = scratch("labels");
    // Four classes and one stray 100: 101 outputs would be a mistake the file made.
    let gap = dir.join("gap.safetensors");
    labelled_data(&gap, &[0, 1, 2, 3, 0, 1, 2, 100], 3);
    let args = [&CPU[..], &["--steps", "2", "--data", s(&gap)]].concat();
    // The data's problem (exit 1), not the command line's.
    assert_refused(&args, 1, "only 5 of those 101 classes occur");
    // Asked for explicitly, 101 outputs train.
    let explicit = [&args[..], &["--depth", "2", "--width", "3,8,101"]].concat();
    let out = gradstab(&explicit);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // ... and a label the model has no output for is refused.
    let too_few = [&args[..], &["--depth", "2", "--width", "3,8,50"]].concat();
    assert_refused(
        &too_few,
        2,
        "has the label 100, but the network has 50 outputs",
    );
    // Every label 0: one class, whose cross-entropy is 0 whatever the model does.
    let single = dir.join("single.safetensors");
    labelled_data(&single, &[0; 8], 3);
    let args = [&CPU[..], &["--steps", "2", "--data", s(&single)]].concat();
    assert_refused(
        &args,
        1,
        "every label is 0: cross-entropy needs at least two classes",
    );
    let args = [&args[..], &["--depth", "2", "--width", "3,8,4"]].concat();
    assert_refused(
        &args,
        1,
        "every label is 0: cross-entropy needs at least two classes",
    );
}

#[test]
fn the_json_config_describes_the_run_that_happened() {
    let dir = scratch("config");
    let weights = dir.join("model.safetensors");
    // A model with biases, trained and saved, then loaded: the file decides biases and init.
    let out = gradstab(
        &[
            &CPU[..],
            &["--depth", "2", "--width", "3,5,2", "--bias", "--steps", "1"],
            &["--save-weights", s(&weights)],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = gradstab(
        &[
            &CPU[..],
            &["--weights", s(&weights), "--steps", "1", "--format", "json"],
            &["--precision", "f32,f16acc32", "--loss-scale", "dynamic"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for run in report["runs"].as_array().unwrap() {
        let config = &run["config"];
        let network = &config["network"];
        assert_eq!(network["linear_bias"], true, "{network}");
        assert_eq!(network["init"], serde_json::Value::Null, "{network}");
        assert_eq!(network["weights_file"], s(&weights));
        assert!(
            network.get("loss").is_none(),
            "run's probe loss in train: {network}"
        );
        assert_eq!(config["loss"], "mse");
        // The loss scale is in every label it applies to, f32's included.
        let label = run["label"].as_str().unwrap();
        assert!(label.ends_with("loss-scale=dynamic"), "{label}");
    }
}

#[test]
fn a_diverged_model_is_not_saved_and_the_exit_says_so() {
    let dir = scratch("diverged");
    let (weights, report) = (dir.join("w.safetensors"), dir.join("report.json"));
    let out = gradstab(
        &[
            &CPU[..],
            &[
                "--depth",
                "3",
                "--width",
                "8",
                "--samples",
                "16",
                "--steps",
                "30",
            ],
            &["--lr", "10", "--activation", "linear", "--format", "json"],
            &["--out", s(&report)],
            &["--save-weights", s(&weights)],
        ]
        .concat(),
    );
    let e = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("w.safetensors: the weights were not written") && e.contains("diverged"),
        "{e}"
    );
    assert!(!weights.exists(), "NaN weights were written");
    // The report of what happened is still written, and says where it diverged.
    let text = std::fs::read_to_string(&report).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let at = &json["runs"][0]["summary"]["diverged_at"];
    assert!(at.as_u64().is_some_and(|s| s >= 1), "{at}");
}

#[test]
fn everything_a_run_holds_is_in_its_memory_estimate() {
    let max = u64::MAX.to_string();
    let start = std::time::Instant::now();
    assert_refused(
        &[&CPU[..], &["--teacher-width", &max]].concat(),
        1,
        "make --teacher-width, --teacher-depth or --samples smaller",
    );
    assert_refused(
        &[
            &CPU[..],
            &[
                "--steps",
                "100000000",
                "--record-every",
                "1",
                "--max-memory",
                "1G",
            ],
        ]
        .concat(),
        1,
        "make --steps smaller or --record-every larger",
    );
    // Snapshots at every step of a deep net are what does not fit here; at the end only, the
    // same run fits the budget.
    let deep = [
        "--depth",
        "200",
        "--width",
        "4",
        "--samples",
        "4",
        "--steps",
        "20000",
    ];
    assert_refused(
        &[
            &CPU[..],
            &deep[..],
            &["--record-every", "1", "--max-memory", "300M"],
        ]
        .concat(),
        1,
        "--record-every larger",
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_missing_input_file_is_exit_1_in_every_command() {
    let missing = "/nonexistent/gradstab/data.npz";
    for args in [
        vec!["stats", missing],
        vec!["run", "--backend", "cpu", "--data", missing],
        vec!["train", "--backend", "cpu", "--data", missing],
        vec!["train", "--backend", "cpu", "--weights", missing],
    ] {
        assert_refused(&args, 1, missing);
    }
}

#[test]
fn tensor_names_a_spreadsheet_would_run_are_escaped_in_csv() {
    let dir = scratch("csv");
    let path = dir.join("evil.safetensors");
    let values: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    use safetensors::tensor::TensorView;
    let views = vec![
        (
            "=HYPERLINK(\"x\")",
            TensorView::new(safetensors::Dtype::F32, vec![2], &values).unwrap(),
        ),
        (
            "-2+3",
            TensorView::new(safetensors::Dtype::F32, vec![2], &values).unwrap(),
        ),
    ];
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let out = gradstab(&["stats", "--backend", "cpu", "--format", "csv", s(&path)]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let first_cells: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(
        first_cells,
        ["'-2+3", "\"'=HYPERLINK(\"\"x\"\")\""],
        "{csv}"
    );
    // JSON keeps the names as they are.
    let out = gradstab(&["stats", "--backend", "cpu", "--format", "json", s(&path)]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = json.to_string();
    assert!(
        text.contains("=HYPERLINK(\\\"x\\\")") && text.contains("\"-2+3\""),
        "{text}"
    );
}

#[test]
fn outputs_and_bias_std_shape_the_model_they_name() {
    let dir = scratch("outputs");
    let json = dir.join("r.json");
    let saved = dir.join("m.safetensors");
    // Four classes on a 12-wide model of 11 layers, biases N(0, 0.3²).
    let args = [
        &CPU[..],
        &[
            "--depth",
            "11",
            "--width",
            "12",
            "--outputs",
            "4",
            "--task",
            "classify",
        ],
        &[
            "--bias-std",
            "0.3",
            "--steps",
            "1",
            "--lr",
            "0",
            "--samples",
            "64",
        ],
        &[
            "--format",
            "json",
            "--out",
            s(&json),
            "--save-weights",
            s(&saved),
        ],
    ]
    .concat();
    let out = gradstab(&args);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let network = &report["runs"][0]["config"]["network"];
    let widths: Vec<u64> = network["widths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .collect();
    assert_eq!(widths, [12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 4]);
    assert_eq!(network["bias_std"], serde_json::Value::from(0.3));
    // ln 4: the classes are the outputs.
    let baseline = report["runs"][0]["summary"]["baseline_loss"]
        .as_f64()
        .unwrap();
    assert_eq!(baseline, 4f64.ln());
    // With lr 0 the saved biases are the drawn ones: 11·12 − 8 + 4 = 128 values whose
    // sample variance is within 4 standard errors (√(2/128)·σ²) of 0.09.
    let tensors = gradstab::files::load(&saved).unwrap();
    let biases: Vec<f64> = tensors
        .iter()
        .filter(|t| t.name.ends_with(".bias"))
        .flat_map(|t| t.values.as_ref().unwrap().to_f64_vec())
        .collect();
    assert_eq!(biases.len(), 10 * 12 + 4);
    let var = biases.iter().map(|b| b * b).sum::<f64>() / biases.len() as f64;
    let se = (2.0 / biases.len() as f64).sqrt() * 0.09;
    assert!((var - 0.09).abs() < 4.0 * se, "bias variance {var}");
    // What cannot be honoured is refused.
    assert_refused(
        &[
            &CPU[..],
            &["--width", "8,8,8", "--depth", "2", "--outputs", "3"],
        ]
        .concat(),
        2,
        "the list gives the last width",
    );
    assert_refused(&[&CPU[..], &["--outputs", "0"]].concat(), 2, "--outputs");
    assert_refused(
        &[&CPU[..], &["--bias", "--bias-std", "0.1"]].concat(),
        2,
        "--bias",
    );
    assert_refused(&[&CPU[..], &["--bias-std", "-1"]].concat(), 2, "--bias-std");
    assert_refused(
        &[&CPU[..], &["--preset", "remedies", "--outputs", "3"]].concat(),
        2,
        "--outputs",
    );
    assert_refused(
        &[&CPU[..], &["--preset", "remedies", "--bias-std", "0.1"]].concat(),
        2,
        "--bias-std",
    );
}
