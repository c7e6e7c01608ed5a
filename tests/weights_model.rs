//! A weights file carries its model whole: `--save-weights` writes the activation and whether
//! it follows the last layer in the safetensors metadata, `--weights` runs and trains that
//! model (never a ReLU net of its weights), an explicit `--activation` the file contradicts is
//! refused, a plain state dict needs the activation given, modules other than nn.Linear are
//! refused by name, and the tables name the activation that ran.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gradstab::api::run::RunOptions;
use gradstab::api::train::{train_runs, TrainOptions};
use gradstab::api::Device;
use gradstab::network::{load_parameters, trace, Loss};
use gradstab::{Activation, Cpu, Error, Precision};

use common::{gradstab_cli as gradstab, s, scratch_dir, stderr_of};

/// Trains a small model with `activation` (and `output_activation`) for two steps and saves
/// it through the library, as `--save-weights` does; returns the file and the saved weights.
fn train_and_save(
    dir: &Path,
    name: &str,
    activation: Activation,
    output_activation: bool,
) -> (PathBuf, Vec<Vec<f32>>) {
    let path = dir.join(format!("{name}.safetensors"));
    let options = TrainOptions {
        depth: Some(2),
        widths: Some(vec![4]),
        samples: Some(8),
        steps: Some(2),
        activation: Some(activation),
        output_activation: Some(output_activation),
        save_weights: Some(path.clone()),
        ..TrainOptions::default()
    };
    let outcome = train_runs(
        &Device::cpu(),
        &options.runs().unwrap(),
        None,
        true,
        &mut |_| Ok(()),
    )
    .unwrap();
    outcome.save_weights(&path).unwrap();
    let weights = outcome.weights.as_ref().unwrap();
    let saved = weights.weights.iter().map(|w| w.to_f32_vec()).collect();
    (path, saved)
}

/// The `__metadata__` of a safetensors file, read with the safetensors crate itself.
fn metadata_of(path: &Path) -> BTreeMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// A state dict as PyTorch writes it: tensors (name, shape, dtype, bytes), no metadata.
fn write_plain(path: &Path, entries: &[(&str, Vec<usize>, safetensors::Dtype, Vec<u8>)]) {
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

fn f32_bytes(n: usize, scale: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| ((i as f32 * 0.37).sin() * scale).to_le_bytes())
        .collect()
}

/// nn.Sequential(Linear(3, 4), Tanh(), Linear(4, 2)) as `safetensors.torch.save_file` writes it.
fn plain_linear_entries() -> Vec<(&'static str, Vec<usize>, safetensors::Dtype, Vec<u8>)> {
    use safetensors::Dtype::F32;
    vec![
        ("0.weight", vec![4, 3], F32, f32_bytes(12, 0.5)),
        ("0.bias", vec![4], F32, f32_bytes(4, 0.1)),
        ("2.weight", vec![2, 4], F32, f32_bytes(8, 0.5)),
        ("2.bias", vec![2], F32, f32_bytes(2, 0.1)),
    ]
}

fn refusal<T>(result: gradstab::Result<T>) -> String {
    match result {
        Err(Error::InvalidArgument(m)) => m,
        Err(other) => panic!("expected an InvalidArgument refusal, got {other:?}"),
        Ok(_) => panic!("expected an InvalidArgument refusal, got a run"),
    }
}

#[test]
fn a_saved_model_comes_back_with_its_activation() {
    let dir = scratch_dir("weights_model", "round_trip");
    // Forms whose text carries numbers, as well as a plain name, and both output settings.
    for (name, activation, output, written) in [
        (
            "leaky",
            Activation::LeakyRelu { slope: 0.25 },
            true,
            "leaky_relu:0.25",
        ),
        ("tanh", Activation::Tanh, false, "tanh"),
        (
            "linear",
            Activation::Linear {
                alpha: 0.5,
                beta: 0.125,
            },
            false,
            "linear:0.5,0.125",
        ),
    ] {
        let (path, saved) = train_and_save(&dir, name, activation, output);
        assert_eq!(
            metadata_of(&path),
            BTreeMap::from([
                ("gradstab.activation".to_string(), written.to_string()),
                ("gradstab.output_activation".into(), output.to_string()),
                ("gradstab.version".into(), env!("CARGO_PKG_VERSION").into()),
            ]),
            "{name}"
        );
        let given = load_parameters(&path).unwrap();
        assert_eq!(given.activation, Some(activation), "{name}");
        assert_eq!(given.output_activation, Some(output), "{name}");
        let loaded: Vec<Vec<f32>> = given.weights.iter().map(|w| w.to_f32_vec()).collect();
        assert_eq!(loaded, saved, "{name}: the weights come back bit for bit");
        // Training from the file, with neither option given, trains the file's model.
        let runs = TrainOptions {
            weights: Some(path.clone()),
            steps: Some(1),
            ..TrainOptions::default()
        }
        .runs()
        .unwrap();
        let network = &runs.runs[0].1.network;
        assert_eq!(network.activation, activation, "{name}");
        assert_eq!(network.output_activation, output, "{name}");
        // Asking for what the file says is honoured.
        TrainOptions {
            weights: Some(path.clone()),
            activation: Some(activation),
            output_activation: Some(output),
            ..TrainOptions::default()
        }
        .runs()
        .unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_weights_runs_the_files_activation_in_the_forward_pass() {
    let dir = scratch_dir("weights_model", "forward");
    let (path, saved) = train_and_save(&dir, "tanh_net", Activation::Tanh, true);
    let experiment = RunOptions {
        weights: Some(path),
        batch: Some(5),
        loss: Some(Loss::Sum),
        ..RunOptions::default()
    }
    .experiment()
    .unwrap();
    let config = &experiment.variants[0].1;
    assert_eq!(config.activation, Activation::Tanh);
    let t = trace(&Cpu, config, Precision::F32).unwrap();
    // An independent f64 forward of the file's weights (no biases: train's default) from the
    // same input, with tanh between the layers: Z^2 = W^2 · tanh(W^1 · x).
    let x = t.activation[0].to_f64_vec();
    let widths = [4usize, 4, 4];
    let mut h = x.clone();
    let mut z = Vec::new();
    for (layer, w) in saved.iter().enumerate() {
        let (n_in, n_out) = (widths[layer], widths[layer + 1]);
        z = vec![0.0f64; 5 * n_out];
        for n in 0..5 {
            for i in 0..n_out {
                z[n * n_out + i] = (0..n_in)
                    .map(|j| h[n * n_in + j] * w[i * n_in + j] as f64)
                    .sum();
            }
        }
        h = z.iter().map(|v| v.tanh()).collect();
    }
    let got = t.pre_activation[2].as_ref().unwrap().to_f64_vec();
    let scale = z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, want)) in got.iter().zip(&z).enumerate() {
        // f32 through two layers of 4 terms: within tests/reference.rs's bound of 2.4e-4 of
        // the largest value for such nets (relu instead of tanh misses it by far).
        assert!(
            (g - want).abs() <= 2.4e-4 * scale,
            "Z^2[{i}] = {g}, f64 forward with tanh {want}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_activation_the_file_contradicts_is_refused_not_replaced() {
    let dir = scratch_dir("weights_model", "contradicts");
    let (tanh_head, _) = train_and_save(&dir, "tanh_head", Activation::Tanh, false);
    let (tanh_all, _) = train_and_save(&dir, "tanh_all", Activation::Tanh, true);
    let mismatch = format!(
        "--activation relu refused: {} was saved with activation tanh, and an explicit \
         --activation is honoured or refused, never replaced; leave out --activation \
         (activation=) to use the file's",
        tanh_all.display()
    );
    // The library: run and train.
    assert_eq!(
        refusal(
            RunOptions {
                weights: Some(tanh_all.clone()),
                activation: Some(Activation::Relu),
                ..RunOptions::default()
            }
            .experiment()
        ),
        mismatch
    );
    assert_eq!(
        refusal(
            TrainOptions {
                weights: Some(tanh_all.clone()),
                activation: Some(Activation::Relu),
                ..TrainOptions::default()
            }
            .runs()
        ),
        mismatch
    );
    let output_mismatch = format!(
        "--output-activation yes refused: {} was saved with output activation no, and an \
         explicit --output-activation is honoured or refused, never replaced; leave out \
         --output-activation (output_activation=) to use the file's",
        tanh_head.display()
    );
    assert_eq!(
        refusal(
            TrainOptions {
                weights: Some(tanh_head.clone()),
                output_activation: Some(true),
                ..TrainOptions::default()
            }
            .runs()
        ),
        output_mismatch
    );
    // run takes the file's linear head as it is, and refuses an --output-activation that
    // contradicts it.
    let experiment = RunOptions {
        weights: Some(tanh_head.clone()),
        ..RunOptions::default()
    }
    .experiment()
    .unwrap();
    let config = &experiment.variants[0].1;
    assert_eq!(
        (config.activation, config.output_activation),
        (Activation::Tanh, false)
    );
    assert_eq!(
        refusal(
            RunOptions {
                weights: Some(tanh_head.clone()),
                output_activation: Some(true),
                ..RunOptions::default()
            }
            .experiment()
        ),
        output_mismatch
    );
    // The command line: a usage error (exit 2), the same message on one line.
    for (args, expected) in [
        (
            vec!["run", "--weights", s(&tanh_all), "--activation", "relu"],
            &mismatch,
        ),
        (
            vec![
                "train",
                "--weights",
                s(&tanh_all),
                "--activation",
                "relu",
                "--steps",
                "1",
            ],
            &mismatch,
        ),
        (
            vec![
                "train",
                "--weights",
                s(&tanh_head),
                "--output-activation",
                "yes",
                "--steps",
                "1",
            ],
            &output_mismatch,
        ),
        (
            vec![
                "run",
                "--weights",
                s(&tanh_head),
                "--output-activation",
                "yes",
            ],
            &output_mismatch,
        ),
    ] {
        let mut args = args;
        args.extend(["--backend", "cpu"]);
        let out = gradstab(&args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim(),
            format!("gradstab: error: {expected}"),
            "{args:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_state_dict_without_activations_needs_them_given() {
    let dir = scratch_dir("weights_model", "plain");
    let plain = dir.join("plain.safetensors");
    write_plain(&plain, &plain_linear_entries());
    let given = load_parameters(&plain).unwrap();
    assert_eq!((given.activation, given.output_activation), (None, None));
    let p = plain.display();
    let no_activation = format!(
        "{p} does not say its activation (a PyTorch state dict holds none): give it, e.g. \
         --activation tanh (Python: activation=\"tanh\")"
    );
    let neither = format!(
        "{p} does not say its activation or whether it follows the last layer (a PyTorch \
         state dict holds neither): give them, e.g. --activation tanh --output-activation no \
         (Python: activation=\"tanh\", output_activation=False)"
    );
    let no_output = format!(
        "{p} does not say whether the activation follows its last layer: give \
         --output-activation yes or no (Python: output_activation=True or False)"
    );
    let train = |activation, output_activation| {
        TrainOptions {
            weights: Some(plain.clone()),
            activation,
            output_activation,
            ..TrainOptions::default()
        }
        .runs()
    };
    assert_eq!(
        refusal(
            RunOptions {
                weights: Some(plain.clone()),
                ..RunOptions::default()
            }
            .experiment()
        ),
        no_activation
    );
    assert_eq!(refusal(train(None, None)), neither);
    assert_eq!(refusal(train(None, Some(false))), no_activation);
    assert_eq!(refusal(train(Some(Activation::Tanh), None)), no_output);
    // Given, they are what runs.
    let runs = train(Some(Activation::Tanh), Some(false)).unwrap();
    assert_eq!(runs.runs[0].1.network.activation, Activation::Tanh);
    assert!(!runs.runs[0].1.network.output_activation);
    let experiment = RunOptions {
        weights: Some(plain.clone()),
        activation: Some(Activation::Sigmoid),
        ..RunOptions::default()
    }
    .experiment()
    .unwrap();
    assert_eq!(experiment.variants[0].1.activation, Activation::Sigmoid);
    // The command line: exit 2 and the message on one line; with the flags, it runs.
    for (args, expected) in [
        (vec!["run", "--weights", s(&plain)], &no_activation),
        (
            vec!["train", "--weights", s(&plain), "--steps", "1"],
            &neither,
        ),
    ] {
        let mut args = args;
        args.extend(["--backend", "cpu"]);
        let out = gradstab(&args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim(),
            format!("gradstab: error: {expected}"),
            "{args:?}"
        );
    }
    let out = gradstab(&[
        "train",
        "--weights",
        s(&plain),
        "--activation",
        "tanh",
        "--output-activation",
        "no",
        "--steps",
        "1",
        "--backend",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn modules_other_than_linear_are_refused_by_name() {
    use safetensors::Dtype::{F32, I64};
    let dir = scratch_dir("weights_model", "modules");
    let runs_linear = "gradstab runs nn.Linear layers with activations between them";
    let linear = plain_linear_entries();
    // Linear(3, 4), BatchNorm1d(4), Linear(4, 2): the norm's affine pair and its buffers.
    let mut batch_norm = linear.clone();
    batch_norm.extend([
        ("1.weight", vec![4], F32, f32_bytes(4, 1.0)),
        ("1.bias", vec![4], F32, f32_bytes(4, 0.1)),
        ("1.running_mean", vec![4], F32, f32_bytes(4, 0.1)),
        ("1.running_var", vec![4], F32, f32_bytes(4, 1.0)),
        (
            "1.num_batches_tracked",
            vec![],
            I64,
            7i64.to_le_bytes().to_vec(),
        ),
    ]);
    // Linear(3, 4), LayerNorm(4), Linear(4, 2): only the 1-D affine pair.
    let mut layer_norm = linear.clone();
    layer_norm.extend([
        ("1.weight", vec![4], F32, f32_bytes(4, 1.0)),
        ("1.bias", vec![4], F32, f32_bytes(4, 0.1)),
    ]);
    // Something else that is not a Linear's weight or bias.
    let mut attention = linear.clone();
    attention.push(("1.in_proj_weight", vec![12, 4], F32, f32_bytes(48, 0.5)));
    let cases = [
        (
            "batch_norm",
            batch_norm,
            "'1.num_batches_tracked' is a BatchNorm buffer; ",
        ),
        (
            "layer_norm",
            layer_norm,
            "'1.weight' has shape [4]: a 1-D weight is a normalisation layer's (LayerNorm, \
             BatchNorm), not an nn.Linear's [outputs, inputs]; ",
        ),
        (
            "attention",
            attention,
            "'1.in_proj_weight' is not a parameter of an nn.Linear layer; ",
        ),
    ];
    for (name, entries, what) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        write_plain(&path, &entries);
        let expected = format!(
            "{}: {what}{runs_linear} (the state dict of an nn.Sequential: '0.weight', \
             '0.bias', '2.weight', …)",
            path.display()
        );
        match load_parameters(&path) {
            Err(e @ Error::File { .. }) => assert_eq!(e.to_string(), expected, "{name}"),
            other => panic!("{name}: expected the refusal, got {other:?}"),
        }
        // Refused before the activation is asked about: the module is the problem.
        let out = gradstab(&[
            "run",
            "--weights",
            s(&path),
            "--activation",
            "tanh",
            "--backend",
            "cpu",
        ]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.trim(), format!("gradstab: error: {expected}"), "{name}");
    }
    // A state dict with only the running statistics (BatchNorm without affine) too.
    let mut stats_only = linear.clone();
    stats_only.push(("1.running_var", vec![4], F32, f32_bytes(4, 1.0)));
    let path = dir.join("stats_only.safetensors");
    write_plain(&path, &stats_only);
    let err = load_parameters(&path).unwrap_err().to_string();
    assert!(
        err.contains("'1.running_var' is a BatchNorm buffer; gradstab runs nn.Linear"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_tables_name_the_activation_that_ran() {
    let dir = scratch_dir("weights_model", "tables");
    let (tanh_head, _) = train_and_save(&dir, "tanh_head", Activation::Tanh, false);
    let (leaky_all, _) = train_and_save(
        &dir,
        "leaky_all",
        Activation::LeakyRelu { slope: 0.25 },
        true,
    );
    for (args, line) in [
        (
            vec!["train", "--weights", s(&tanh_head), "--steps", "1"],
            "model: activation tanh, output activation no",
        ),
        (
            vec!["train", "--weights", s(&leaky_all), "--steps", "1"],
            "model: activation leaky_relu:0.25, output activation yes",
        ),
        (
            vec!["run", "--weights", s(&leaky_all), "--batch", "4"],
            "model: activation leaky_relu:0.25, output activation yes",
        ),
        (
            vec![
                "run",
                "--depth",
                "2",
                "--width",
                "4",
                "--batch",
                "4",
                "--activation",
                "sigmoid",
            ],
            "model: activation sigmoid, output activation yes",
        ),
    ] {
        let mut args = args;
        args.extend(["--backend", "cpu", "--quiet"]);
        let out = gradstab(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        let table = String::from_utf8_lossy(&out.stdout);
        // Among the lines before the first row of numbers.
        let header: Vec<&str> = table.lines().take(3).collect();
        assert!(header.contains(&line), "{args:?}: {table}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
