//! `gradstab run --weights --data`: a PyTorch `nn.Sequential` state dict and a data set,
//! written here in the exact layout `safetensors.torch.save_file(model.state_dict(), …)` and
//! `np.savez` produce, run by gradstab and checked against an independent f64 forward and
//! backward of the same arrays; and every malformed file refused with one clear line.

mod common;

use std::path::{Path, PathBuf};

use gradstab::network::{load_data, load_parameters, trace, Loss, NetworkConfig};
use gradstab::{Activation, Backend, Cpu, Precision};

use common::gradstab_cli as gradstab;

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradstab-given-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic values of a rows × cols matrix, scaled like a PyTorch default init.
fn matrix(rows: usize, cols: usize, seed: f64) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| ((i as f64 * 0.618 + seed).sin() / (cols as f64).sqrt()) as f32)
        .collect()
}

/// nn.Sequential(Linear(5, 7), Tanh(), Linear(7, 3, bias=False), Tanh(), Linear(3, 4), Tanh())
/// as its state dict: keys 0.*, 2.*, 4.*, f32, little-endian.
struct Model {
    layers: Vec<Layer>,
}

/// (rows, cols, weight, bias) of one nn.Linear.
type Layer = (usize, usize, Vec<f32>, Option<Vec<f32>>);

/// (name, shape, dtype, little-endian bytes) of one state-dict entry.
type Entry = (String, Vec<usize>, safetensors::Dtype, Vec<u8>);

fn model() -> Model {
    Model {
        layers: vec![
            (7, 5, matrix(7, 5, 0.1), Some(matrix(1, 7, 0.7))),
            (3, 7, matrix(3, 7, 0.2), None),
            (4, 3, matrix(4, 3, 0.3), Some(matrix(1, 4, 0.9))),
        ],
    }
}

fn bytes_of(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write_state_dict(path: &Path, entries: &[Entry]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = entries
        .iter()
        .map(|(name, shape, dtype, data)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn state_dict_entries(m: &Model) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, (rows, cols, w, b)) in m.layers.iter().enumerate() {
        let index = 2 * i;
        out.push((
            format!("{index}.weight"),
            vec![*rows, *cols],
            safetensors::Dtype::F32,
            bytes_of(w),
        ));
        if let Some(b) = b {
            out.push((
                format!("{index}.bias"),
                vec![*rows],
                safetensors::Dtype::F32,
                bytes_of(b),
            ));
        }
    }
    out
}

/// An .npz archive of x and y as `np.savez` writes it.
fn write_npz(path: &Path, arrays: &[(&str, usize, usize, &[f32])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    for (name, rows, cols, values) in arrays {
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let npy = common::npy_bytes("<f4", &[*rows, *cols], &bytes_of(values));
        std::io::Write::write_all(&mut zip, &npy).unwrap();
    }
    zip.finish().unwrap();
}

const BATCH: usize = 6;

fn dataset() -> (Vec<f32>, Vec<f32>) {
    (matrix(BATCH, 5, 1.5), matrix(BATCH, 4, 2.5))
}

/// The model's forward pass, loss gradient and backward in f64, written out plainly:
/// ∂l/∂W^t for MSE against y, with tanh after every layer (gradstab's `run` convention).
fn reference_weight_gradients(m: &Model, x: &[f32], y: &[f32]) -> Vec<Vec<f64>> {
    let mut hs: Vec<Vec<f64>> = vec![x.iter().map(|&v| v as f64).collect()];
    let mut zs = Vec::new();
    for (rows, cols, w, b) in &m.layers {
        let h = hs.last().unwrap();
        let mut z = vec![0.0; BATCH * rows];
        for n in 0..BATCH {
            for i in 0..*rows {
                let mut acc = b.as_ref().map_or(0.0, |b| b[i] as f64);
                for j in 0..*cols {
                    acc += h[n * cols + j] * w[i * cols + j] as f64;
                }
                z[n * rows + i] = acc;
            }
        }
        hs.push(z.iter().map(|v| v.tanh()).collect());
        zs.push(z);
    }
    let top = hs.last().unwrap();
    let count = top.len() as f64;
    let mut g: Vec<f64> = top
        .iter()
        .zip(y)
        .map(|(h, &t)| 2.0 * (h - t as f64) / count)
        .collect();
    let mut grads = vec![Vec::new(); m.layers.len()];
    for (t, (rows, cols, w, _)) in m.layers.iter().enumerate().rev() {
        let dz: Vec<f64> = g
            .iter()
            .zip(&zs[t])
            .map(|(g, z)| g * (1.0 - z.tanh().powi(2)))
            .collect();
        let h = &hs[t];
        let mut dw = vec![0.0; rows * cols];
        let mut g_prev = vec![0.0; BATCH * cols];
        for n in 0..BATCH {
            for i in 0..*rows {
                for j in 0..*cols {
                    dw[i * cols + j] += dz[n * rows + i] * h[n * cols + j];
                    g_prev[n * cols + j] += dz[n * rows + i] * w[i * cols + j] as f64;
                }
            }
        }
        grads[t] = dw;
        g = g_prev;
    }
    grads
}

fn write_files(dir: &Path) -> (PathBuf, PathBuf) {
    let m = model();
    let weights = dir.join("model.safetensors");
    write_state_dict(&weights, &state_dict_entries(&m));
    let (x, y) = dataset();
    let data = dir.join("data.npz");
    write_npz(&data, &[("x", BATCH, 5, &x), ("y", BATCH, 4, &y)]);
    (weights, data)
}

#[test]
fn a_state_dict_and_data_give_the_gradients_of_an_independent_f64_pass() {
    let dir = temp_dir("gradients");
    let (weights, data) = write_files(&dir);
    let config = NetworkConfig {
        activation: Activation::Tanh,
        loss: Loss::Mse,
        ..NetworkConfig::new(1, 1, 1)
    }
    .with_given_parameters(load_parameters(&weights).unwrap())
    .with_given_data(load_data(&data, Loss::Mse).unwrap());
    config.validate().unwrap();
    assert_eq!(config.widths, [5, 7, 3, 4]);
    assert_eq!(config.batch, BATCH);
    let m = model();
    let (x, y) = dataset();
    let exact = reference_weight_gradients(&m, &x, &y);
    let mut backends: Vec<(String, Box<dyn Fn() -> gradstab::network::Trace>)> = vec![(
        "cpu".into(),
        Box::new(|| trace(&Cpu, &config, Precision::F32).unwrap()),
    )];
    if let Some(gpu) = common::gpu("given weights") {
        let config = config.clone();
        backends.push((
            gpu.info().adapter,
            Box::new(move || trace(&gpu, &config, Precision::F32).unwrap()),
        ));
    }
    for (name, run) in backends {
        let got = run();
        for (t, want) in exact.iter().enumerate() {
            let got = got.grad_weight[t + 1].as_ref().unwrap().to_f64_vec();
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                // f32 through three layers of at most 7 terms: tests/reference.rs bounds such
                // nets' weight gradients within 2.4e-4 of their largest value in f32.
                assert!(
                    (g - w).abs() <= 2.4e-4 * scale,
                    "{name}: dW^{}[{i}] = {g}, independent f64 pass {w}",
                    t + 1
                );
            }
        }
    }
}

/// `gradstab ARGS`, which must succeed, and its JSON output.
fn json_run(args: &[&str]) -> serde_json::Value {
    let out = gradstab(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn run_reads_the_files_and_names_them_in_its_json() {
    let dir = temp_dir("cli");
    let (weights, data) = write_files(&dir);
    let report = json_run(&[
        "run",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--loss",
        "mse",
        "--activation",
        "tanh",
        "--backend",
        "cpu",
        "--format",
        "json",
        "--quiet",
    ]);
    let config = &report["config"];
    assert_eq!(config["widths"], serde_json::json!([5, 7, 3, 4]));
    assert_eq!(config["depth"], 3);
    assert_eq!(config["batch"], BATCH);
    assert_eq!(config["weights_file"], weights.to_str().unwrap());
    assert_eq!(config["data_file"], data.to_str().unwrap());
    assert_eq!(report["runs"][0]["layers"].as_array().unwrap().len(), 4);
}

#[test]
fn malformed_weights_and_data_are_one_line_errors() {
    let dir = temp_dir("errors");
    let m = model();
    let (_, data_path) = write_files(&dir);
    let mut cases: Vec<(&str, Vec<Entry>, &str)> = Vec::new();
    // A bias without its weight: a missing layer.
    let mut missing = state_dict_entries(&m);
    missing.retain(|(n, ..)| n != "4.weight");
    cases.push((
        "missing",
        missing,
        "missing layer: '4.bias' has no '4.weight'",
    ));
    // A weight whose input width does not follow the layer before.
    let mut mismatched = state_dict_entries(&m);
    mismatched[2] = (
        "2.weight".into(),
        vec![3, 6],
        safetensors::Dtype::F32,
        bytes_of(&matrix(3, 6, 0.2)),
    );
    cases.push(("mismatched", mismatched, "mismatched widths"));
    // An integer tensor.
    let mut integer = state_dict_entries(&m);
    integer[0].2 = safetensors::Dtype::I32;
    cases.push((
        "integer",
        integer,
        "is an integer tensor (i32); nn.Linear parameters are f16, bf16, f32 or f64",
    ));
    // Something other than an nn.Linear's parameters.
    let mut extra = state_dict_entries(&m);
    extra.push((
        "1.running_mean".into(),
        vec![7],
        safetensors::Dtype::F32,
        bytes_of(&[0.0; 7]),
    ));
    cases.push((
        "extra",
        extra,
        "'1.running_mean' is a BatchNorm buffer; gradstab runs nn.Linear layers",
    ));
    for (name, entries, expected) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        write_state_dict(&path, &entries);
        let out = gradstab(&[
            "run",
            "--weights",
            path.to_str().unwrap(),
            "--backend",
            "cpu",
            "--quiet",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        // A malformed input file: exit 1, as in every command.
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
    }
    // Data whose x does not fit the model, and MSE without targets.
    let weights = dir.join("good.safetensors");
    write_state_dict(&weights, &state_dict_entries(&m));
    let narrow = dir.join("narrow.npz");
    write_npz(&narrow, &[("x", BATCH, 4, &matrix(BATCH, 4, 1.0))]);
    let no_y = dir.join("no_y.npz");
    write_npz(&no_y, &[("x", BATCH, 5, &matrix(BATCH, 5, 1.0))]);
    for (data, extra, expected) in [
        (&narrow, "probe", "but the network takes 5 inputs"),
        (&no_y, "mse", "--loss mse needs targets"),
    ] {
        let out = gradstab(&[
            "run",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--loss",
            extra,
            "--activation",
            "tanh",
            "--backend",
            "cpu",
            "--quiet",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "{err}");
    }
    // A flag that the file decides is refused, not silently overridden.
    let out = gradstab(&[
        "run",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data_path.to_str().unwrap(),
        "--depth",
        "5",
        "--backend",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    // clap's conflict: a usage error, naming both flags.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "the argument '--weights <FILE.safetensors>' cannot be used with '--depth <DEPTH>'"
        ),
        "{err}"
    );
}

#[test]
fn data_alone_sets_the_input_and_output_widths_of_the_default_network() {
    let dir = temp_dir("data-only");
    let (_, data) = write_files(&dir);
    let report = json_run(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--loss",
        "mse",
        "--depth",
        "3",
        "--backend",
        "cpu",
        "--format",
        "json",
        "--quiet",
    ]);
    assert_eq!(
        report["config"]["widths"],
        serde_json::json!([5, 256, 256, 4])
    );
    assert_eq!(report["config"]["batch"], BATCH);
}
