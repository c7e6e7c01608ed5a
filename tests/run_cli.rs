//! `gradstab run` and `gradstab presets`: bad values exit 2 with one line, and the JSON, CSV
//! and SVG outputs have the documented shape.

mod common;

use common::gradstab_cli as gradstab;

#[test]
fn every_flag_rejects_its_bad_values_with_exit_code_2_and_one_line() {
    let cases: &[(&str, &str)] = &[
        ("--preset", "no-such-preset"),
        ("--depth", "0"),
        ("--depth", "ten"),
        ("--width", "0"),
        ("--width", "64,x"),
        ("--width", "8,8"),
        ("--batch", "-3"),
        ("--activation", "gelu"),
        ("--activation", "leaky_relu:abc"),
        ("--init", "normal"),
        ("--init", "kaiming_normal:fan_sideways"),
        ("--init", "xavier_normal:-1"),
        ("--input", "gaussian:1"),
        ("--bias-std", "-0.1"),
        ("--loss", "hinge"),
        ("--clip-norm", "0"),
        ("--clip-value", "nan"),
        ("--clip-norm", "-2"),
        ("--precision", "f64"),
        ("--precision", ","),
        ("--backend", "tpu"),
        ("--seed", "-1"),
        ("--format", "yaml"),
    ];
    for (flag, value) in cases {
        let out = gradstab(&[
            "run",
            "--backend",
            "cpu",
            "--depth",
            "2",
            "--width",
            "8",
            "--batch",
            "2",
            flag,
            value,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("gradstab:"))
            .collect();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert_eq!(lines.len(), 1, "{flag} {value}: one line, got {stderr}");
        let flag_name = flag.trim_start_matches("--");
        assert!(
            lines[0].contains(flag_name) || lines[0].contains(value),
            "{flag} {value}: the error names the flag or value: {}",
            lines[0]
        );
    }
    // Residual connections need equal widths; clipping takes one kind.
    let out = gradstab(&[
        "run",
        "--backend",
        "cpu",
        "--depth",
        "2",
        "--width",
        "8,9,8",
        "--residual",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gradstab(&["run", "--clip-norm", "1", "--clip-value", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn presets_lists_every_preset_with_one_line() {
    let out = gradstab(&["presets"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "powers",
        "matrix-product",
        "relu-explode",
        "sigmoid-vanish",
        "xavier-tanh",
        "he-relu",
        "scaled-sigmoid",
        "precision-compare",
    ] {
        assert_eq!(
            text.lines().filter(|l| l.starts_with(name)).count(),
            1,
            "{name}"
        );
    }
}

#[test]
fn json_has_the_documented_shape() {
    let dir = std::env::temp_dir().join(format!("gradstab-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("run.json");
    let svg_path = dir.join("run.svg");
    let backend = if common::gpu("run json").is_some() {
        "gpu"
    } else {
        "cpu"
    };
    let out = gradstab(&[
        "run",
        "--preset",
        "relu-explode",
        "--depth",
        "10",
        "--width",
        "32",
        "--batch",
        "4",
        "--precision",
        "f32,f16",
        "--backend",
        backend,
        "--format",
        "json",
        "--out",
        json_path.to_str().unwrap(),
        "--plot",
        svg_path.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    for field in ["version", "config", "device", "runs"] {
        assert!(!report[field].is_null(), "top-level {field}");
    }
    for field in ["backend", "adapter", "driver"] {
        assert!(report["device"][field].is_string(), "device.{field}");
    }
    assert_eq!(report["config"]["depth"], 10);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["precision"], "f16");
    let layers = runs[0]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 11);
    // Layer 0 has no pre-activation or weight gradient: null.
    assert!(layers[0]["pre_activation"].is_null() && layers[0]["grad_weight"].is_null());
    let stats_fields = [
        "count",
        "mean",
        "variance",
        "min",
        "max",
        "abs_max",
        "l2_norm",
        "nan",
        "pos_inf",
        "neg_inf",
        "zero",
        "subnormal",
    ];
    for quantity in [
        "pre_activation",
        "activation",
        "grad_activation",
        "grad_weight",
    ] {
        for field in stats_fields {
            assert!(!layers[3][quantity][field].is_null(), "{quantity}.{field}");
        }
    }
    assert!(layers[3]["theory"]["pre_activation_second_moment"].is_number());
    assert!(layers[3]["theory"]["grad_second_moment"].is_number());
    for field in [
        "first_nonfinite_forward",
        "first_nonfinite_backward",
        "first_subnormal",
        "first_all_zero_grad",
        "grad_second_moment_ratio",
    ] {
        assert!(runs[1]["summary"].get(field).is_some(), "summary.{field}");
    }
    // f16 with N(0, 1) weights at width 32: E[z²] = 32·16^(t−1), and the largest of 128 values
    // (about 2.9σ) passes 65504 near t = 8.
    assert!(runs[1]["summary"]["first_nonfinite_forward"].is_number());
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    assert!(svg.contains("f16 theory") || svg.contains("relu N(0,1) theory"));
    assert!(svg.contains("log10 second moment"));
}

#[test]
fn csv_has_a_header_and_a_row_per_precision_layer_and_quantity() {
    let out = gradstab(&[
        "run",
        "--backend",
        "cpu",
        "--depth",
        "3",
        "--width",
        "16",
        "--batch",
        "4",
        "--precision",
        "f32,f16acc32",
        "--format",
        "csv",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("variant,precision,layer,quantity,count,mean,variance,min,max,abs_max,l2_norm,nan,pos_inf,neg_inf,zero,subnormal"));
    assert!(header.ends_with("theory_second_moment"));
    // Per precision: layer 0 has activation and gradient; layers 1..3 have all four.
    assert_eq!(lines.count(), 2 * (2 + 3 * 4));
}
