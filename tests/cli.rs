//! The `gradstab` binary: the demo's conclusion, JSON output, and clear errors with exit codes.

mod common;

use std::process::Output;

use common::gradstab_cli as gradstab;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The demo's conclusion for seed 0. Theory places it: E[h²] grows by width/2 = 128 per layer,
/// and the standard deviation of Z^t is √256 · 11.3^(t−1); the largest of 64·256 values, about
/// 4.5 standard deviations, first passes 65504 at t = 4 (4.5 · 16 · 11.3³ ≈ 1e5, while t = 3
/// gives 9e3); f32 would need t ≈ 36.
const DEMO_CONCLUSION: &str = "f16 first overflows at layer 4; f32 stays finite through layer 20";

#[test]
fn demo_on_the_cpu_backend_finds_the_f16_overflow_layer() {
    let out = gradstab(&["demo", "--backend", "cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(DEMO_CONCLUSION), "{}", stdout(&out));
    // The tour's conclusions, as docs/theory.md states them.
    assert!(
        stdout(&out).contains("×1.5 f16: forward overflows f16 at layer 28"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("×0.8 f16: forward turns subnormal in f16 at layer 44"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn demo_on_the_gpu_agrees_with_the_cpu() {
    if common::gpu("cli demo gpu").is_none() {
        return;
    }
    let out = gradstab(&["demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("CPU backend"), "{}", stderr(&out));
    // A device that saturates f16 overflow (WGSL allows it) adds a note after the layer.
    let (f16_part, f32_part) = DEMO_CONCLUSION.split_once("; ").unwrap();
    assert!(stdout(&out).contains(f16_part), "{}", stdout(&out));
    assert!(stdout(&out).contains(f32_part), "{}", stdout(&out));
}

#[test]
fn demo_without_any_adapter_falls_back_to_the_cpu_with_a_notice() {
    // No adapter of a backend this machine does not have.
    let backend = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    let out = common::cli(["demo"]).env("WGPU_BACKEND", backend).output();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let notice: Vec<&str> = err.lines().filter(|l| l.starts_with("gradstab:")).collect();
    assert_eq!(notice.len(), 1, "{notice:?}");
    assert!(
        notice[0].contains("running on the CPU backend"),
        "{notice:?}"
    );
    assert!(stdout(&out).contains(DEMO_CONCLUSION));
}

#[test]
fn verify_quick_passes_and_its_json_has_every_row() {
    if common::gpu("cli verify").is_none() {
        return;
    }
    let out = gradstab(&["verify", "--quick", "--format", "json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    let rows = report["rows"].as_array().unwrap();
    // (4 matmul transposes × 3 variants + 6 activations × forward and derivative + 4
    // elementwise) × 6 precisions; casts to bf16, e4m3 and e5m2, saturating or not, and the
    // scaled FP8 matmuls (E4M3 or E5M2 by E4M3, 4 transposes); the statistics of f32, f16 and
    // bf16 data.
    assert_eq!(rows.len(), (12 + 6 * 2 + 4) * 6 + 3 * 2 + 2 * 4 + 3);
    for kernel in ["cast to e4m3, saturating", "matmul TN e5m2×e4m3 scaled"] {
        assert!(rows.iter().any(|r| r["kernel"] == kernel), "{kernel}");
    }
    // One row per activation, pass and precision, so a wrong function is named.
    for act in [
        "linear",
        "relu",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "scaled_sigmoid",
    ] {
        for pass in ["forward", "derivative"] {
            let named = |r: &&serde_json::Value| {
                let kernel = r["kernel"].as_str().unwrap();
                kernel.split([' ', ':']).next() == Some(act) && kernel.ends_with(pass)
            };
            assert_eq!(rows.iter().filter(named).count(), 6, "{act} {pass}");
        }
    }
    for row in rows {
        assert_eq!(row["passed"], true, "{row}");
        assert!(row["worst_ratio"].as_f64().unwrap() <= 1.0);
        assert!(row["elements"].as_u64().unwrap() > 0);
    }
    assert!(report["probe"]["f32"]["subnormal_results_kept"].is_boolean());
}

#[test]
fn probe_and_devices_print_json() {
    if common::gpu("cli probe").is_none() {
        return;
    }
    let out = gradstab(&["probe", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let probe: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for field in [
        "fma_builtin_fused",
        "overflow_result",
        "max_with_nan",
        "subnormal_inputs_kept",
    ] {
        assert!(!probe["f32"][field].is_null(), "probe lacks {field}");
    }
    let out = gradstab(&["devices", "--format", "json"]);
    assert!(out.status.success());
    let devices: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let first = &devices.as_array().unwrap()[0];
    for field in [
        "name",
        "backend",
        "device_type",
        "driver",
        "shader_f16",
        "max_storage_buffer_binding_size",
    ] {
        assert!(!first[field].is_null(), "devices lacks {field}");
    }
}

#[test]
fn bad_flags_exit_2_and_runtime_errors_exit_1_with_one_line() {
    let out = gradstab(&["demo", "--backend", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    let out = gradstab(&["verify", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = gradstab(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    let out = gradstab(&["probe", "--adapter", "no-such-adapter-xyz"]);
    assert_eq!(out.status.code(), Some(1));
    let errors: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("gradstab: error:"))
        .map(String::from)
        .collect();
    assert_eq!(errors.len(), 1, "{}", stderr(&out));
    assert!(
        errors[0].contains("no-such-adapter-xyz") || errors[0].contains("no GPU adapter"),
        "{}",
        errors[0]
    );
}

#[test]
fn bench_quick_json_has_the_roofline_and_every_kernel() {
    if common::gpu("cli bench").is_none() {
        return;
    }
    let out = gradstab(&["bench", "--quick", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    for field in ["adapter", "backend", "device_type", "driver"] {
        assert!(report[field].is_string(), "{field}");
    }
    assert_eq!(report["quick"], true);
    let peak = report["roofline"]["fma_gflops"]["f32"].as_f64().unwrap();
    assert!(peak > 0.0 && peak.is_finite());
    assert!(report["roofline"]["copy_gbps"].as_f64().unwrap() > 0.0);
    let kernels = report["kernels"].as_array().unwrap();
    for name in [
        "matmul NN",
        "tanh forward",
        "tanh derivative",
        "axpy",
        "statistics",
    ] {
        assert!(
            kernels
                .iter()
                .any(|k| k["kernel"].as_str().unwrap().starts_with(name)),
            "{name}"
        );
    }
    for k in kernels {
        assert!(k["seconds"].as_f64().unwrap() > 0.0);
        assert!(k["percent_of_peak"].as_f64().unwrap() > 0.0, "{k}");
        assert!(k["gflops"].is_number() != k["gbps"].is_number(), "{k}");
    }
}

#[test]
fn bench_on_the_cpu_backend_measures_every_kernel_in_every_precision() {
    let out = gradstab(&["bench", "--backend", "cpu", "--quick", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    assert_eq!(report["backend"], "cpu");
    assert!(
        report["roofline"].is_null(),
        "no roofline kernel on the CPU"
    );
    let kernels = report["kernels"].as_array().unwrap();
    let has = |kernel: &str, precision: &str| {
        kernels.iter().any(|k| {
            k["kernel"].as_str().unwrap().starts_with(kernel) && k["precision"] == precision
        })
    };
    for precision in ["f32", "f16", "f16acc32"] {
        for kernel in [
            "matmul NN",
            "matmul NT",
            "tanh forward",
            "tanh derivative",
            "axpy",
        ] {
            assert!(has(kernel, precision), "{kernel} {precision}");
        }
    }
    assert!(has("statistics", "f32") && has("statistics", "f16"));
    for k in kernels {
        let rate = k["gflops"].as_f64().or(k["gbps"].as_f64()).unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{k}");
        assert!(k["percent_of_peak"].is_null(), "{k}");
    }
    // The table prints the same rows.
    let out = gradstab(&["bench", "--backend", "cpu", "--quick"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("matmul NN") && stdout(&out).contains("f16acc32"));
}

#[test]
fn a_gpu_run_reports_how_often_it_talked_to_the_device() {
    if common::gpu("cli traffic").is_none() {
        return;
    }
    let counts = |depth: &str| -> serde_json::Value {
        let args = [
            "run", "--depth", depth, "--width", "16", "--batch", "4", "--quiet", "--format", "json",
        ];
        let out = gradstab(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        report["device"]["traffic"].clone()
    };
    let (shallow, deep) = (counts("6"), counts("30"));
    let get = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap();
    for report in [&shallow, &deep] {
        // Every statistics record of a pass comes back in one read at its end.
        assert_eq!(get(report, "host_reads"), 1, "{report}");
    }
    // Kernels are submitted in batches: fewer submissions than layers (one per kernel would
    // be about fifteen per layer).
    assert!(get(&deep, "submissions") < 30, "{deep}");
    // Each extra layer creates only the buffers that stay alive: its weight and its Z^t, which
    // backward needs. Everything else comes back from the pool.
    assert_eq!(
        get(&deep, "buffers_created") - get(&shallow, "buffers_created"),
        2 * (30 - 6),
        "{shallow} → {deep}"
    );
    assert!(get(&deep, "buffers_reused") > get(&shallow, "buffers_reused"));
    // The CPU backend has no device to talk to.
    let out = gradstab(&[
        "run",
        "--backend",
        "cpu",
        "--depth",
        "2",
        "--quiet",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(report["device"].get("traffic").is_none());
}
