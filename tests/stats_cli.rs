//! `gradstab stats` on .npy and .safetensors files written here, and on broken ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use half::{bf16, f16};

use common::gradstab_cli as gradstab;

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradstab-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn values() -> Vec<f64> {
    let mut v: Vec<f64> = (0..3000)
        .map(|i| ((i as f64) * 0.731).sin() * 2000.0)
        .collect();
    v.extend([1e5, -7e4, 1e-6, 3e-9, 0.0, f64::NAN, f64::INFINITY]);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

#[test]
fn npy_files_of_each_dtype_give_the_reference_record() {
    let dir = temp_dir("npy");
    let v = values();
    let f32s: Vec<u8> = v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect();
    let f16s: Vec<u8> = v
        .iter()
        .flat_map(|&x| f16::from_f32(x as f32).to_le_bytes())
        .collect();
    let f64s: Vec<u8> = v.iter().flat_map(|&x| x.to_le_bytes()).collect();
    let n = v.len();
    let backends: &[&str] = if common::gpu("stats cli npy").is_some() {
        &["gpu", "cpu"]
    } else {
        &["cpu"]
    };
    for (descr, data, dtype) in [
        ("<f4", &f32s, "f32"),
        ("<f2", &f16s, "f16"),
        ("<f8", &f64s, "f64"),
    ] {
        let path = write(
            &dir,
            &format!("x_{dtype}.npy"),
            &common::npy_bytes(descr, &[n], data),
        );
        for backend in backends {
            let report = json_of(&gradstab(&[
                "stats",
                &path,
                "--format",
                "json",
                "--backend",
                backend,
            ]));
            let t = &report["tensors"][0];
            assert_eq!(t["dtype"], dtype);
            assert_eq!(t["shape"], serde_json::json!([n]));
            let s = &t["stats"];
            assert_eq!(s["count"], n);
            assert_eq!(s["nan"], 1);
            assert_eq!(
                s["pos_inf"],
                if dtype == "f16" { 2 } else { 1 },
                "{dtype}: 1e5 overflows f16"
            );
            assert_eq!(s["histogram"]["nan"], 1);
            let max = s["max"].as_f64().unwrap();
            assert_eq!(
                max,
                if dtype == "f16" { 2000.0 } else { 1e5 },
                "{dtype} {backend}"
            );
            if dtype != "f16" {
                assert_eq!(s["cast"]["f16"]["overflow"], 2, "1e5 and −7e4 overflow f16");
                assert_eq!(s["cast"]["f16"]["zero"], 1, "3e-9 becomes 0 in f16");
                assert!(
                    s["cast"]["f16"]["subnormal"].as_u64().unwrap() >= 1,
                    "1e-6 is subnormal in f16"
                );
            }
        }
    }
}

#[test]
fn safetensors_with_three_tensors_in_every_format() {
    let dir = temp_dir("safetensors");
    let weight: Vec<f32> = (0..64 * 32)
        .map(|i| ((i as f32) * 0.1).cos() * 0.02)
        .collect();
    let bias: Vec<bf16> = (0..64).map(|i| bf16::from_f32(i as f32 * 1e-7)).collect();
    let embed: Vec<f16> = (0..500)
        .map(|i| f16::from_f32((i as f32 * 0.01).sin()))
        .collect();
    let w_bytes: Vec<u8> = weight.iter().flat_map(|x| x.to_le_bytes()).collect();
    let b_bytes: Vec<u8> = bias.iter().flat_map(|x| x.to_le_bytes()).collect();
    let e_bytes: Vec<u8> = embed.iter().flat_map(|x| x.to_le_bytes()).collect();
    let views = vec![
        (
            "layer.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64, 32], &w_bytes)
                .unwrap(),
        ),
        (
            "layer.bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, vec![64], &b_bytes)
                .unwrap(),
        ),
        (
            "embed",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![5, 100], &e_bytes)
                .unwrap(),
        ),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    let path = write(&dir, "model.safetensors", &bytes);
    let report = json_of(&gradstab(&[
        "stats",
        &path,
        "--format",
        "json",
        "--backend",
        "cpu",
    ]));
    let tensors = report["tensors"].as_array().unwrap();
    let names: Vec<&str> = tensors
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["embed", "layer.bias", "layer.weight"]);
    assert_eq!(tensors[0]["dtype"], "f16");
    assert_eq!(tensors[1]["dtype"], "bf16");
    assert_eq!(tensors[2]["stats"]["count"], 64 * 32);
    // bf16 biases of 1e-7 scale are all below f16's normal range (zero excluded).
    let bias = &tensors[1]["stats"]["cast"]["f16"];
    assert_eq!(
        bias["subnormal"].as_u64().unwrap() + bias["zero"].as_u64().unwrap(),
        63
    );
    // GPU and CPU agree on the whole report where a GPU exists.
    if common::gpu("stats cli safetensors").is_some() {
        let on_gpu = json_of(&gradstab(&["stats", &path, "--format", "json"]));
        for (g, c) in on_gpu["tensors"].as_array().unwrap().iter().zip(tensors) {
            assert_eq!(g["stats"]["histogram"], c["stats"]["histogram"]);
            assert_eq!(g["stats"]["cast"], c["stats"]["cast"]);
            assert_eq!(g["stats"]["abs_max"], c["stats"]["abs_max"]);
        }
    }
    // CSV has a header and one row per tensor; the table and histogram print.
    let out = gradstab(&["stats", &path, "--format", "csv", "--backend", "cpu"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].starts_with("name,shape,dtype,count,mean,variance,min,max,abs_max,l2_norm,nan")
    );
    let out = gradstab(&["stats", &path, "--histogram", "--backend", "cpu"]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("subnormal in f16"));
}

#[test]
fn broken_files_are_clear_one_line_errors() {
    let dir = temp_dir("broken");
    let good = common::npy_bytes("<f4", &[4], &[0u8; 16]);
    let header_len = good.len() - 16;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.npy", vec![], "empty"),
        ("truncated_header.npy", good[..20].to_vec(), "header"),
        (
            "truncated_data.npy",
            good[..header_len + 6].to_vec(),
            "truncated",
        ),
        // Integers are read (as labels); complex numbers are not.
        (
            "complex.npy",
            common::npy_bytes("<c8", &[4], &[0u8; 32]),
            "unsupported dtype",
        ),
        (
            "bad.safetensors",
            b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......".to_vec(),
            "safetensors",
        ),
        ("short.safetensors", vec![1, 2, 3], "safetensors"),
        (
            "notes.txt",
            b"hello".to_vec(),
            "not a .npy, .npz or .safetensors",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = write(&dir, name, &bytes);
        let out = gradstab(&["stats", &path, "--backend", "cpu"]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("gradstab: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{name}: {stderr}");
        assert!(
            errors[0].contains(name),
            "{name}: the error names the file: {}",
            errors[0]
        );
        assert!(errors[0].contains(expected), "{name}: {}", errors[0]);
    }
    let out = gradstab(&["stats", "/no/such/file.npy"]);
    assert_eq!(out.status.code(), Some(1));
}
