//! `run --loss cross-entropy`: the gradient at the logits against the exact f64 value of
//! (softmax(z) − onehot)/N, on the CPU and the GPU; `--output-activation` and its default;
//! and the command line's refusals of missing or out-of-range labels.

mod common;

use std::path::{Path, PathBuf};

use gradstab::api::RunOptions;
use gradstab::network::{trace, GivenData, GivenParameters, Loss, NetworkConfig};
use gradstab::{Backend, Cpu, HostTensor, Precision};

const U32: f64 = 1.0 / (1u64 << 24) as f64;

/// A 3-layer classifier 5 → 7 → 6 → 4 of N(0, 1/fan_in) weights with biases, a batch of 12
/// inputs of scale 3 (logits spread over several units, so softmax is far from uniform), and
/// labels covering every class.
fn classifier(seed: u64) -> NetworkConfig {
    let widths = [5, 7, 6, 4];
    let mut rng = common::rng(seed);
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for w in widths.windows(2) {
        let std = 1.5 / (w[0] as f32).sqrt();
        let weight = common::normal_tensor(&mut rng, gradstab::DType::F32, w[1], w[0], std);
        weights.push(weight);
        biases.push(Some(common::normal_tensor(
            &mut rng,
            gradstab::DType::F32,
            1,
            w[1],
            0.5,
        )));
    }
    let batch = 12;
    let x = common::normal_tensor(&mut rng, gradstab::DType::F32, batch, widths[0], 3.0);
    let labels: Vec<u32> = (0..batch as u32).map(|r| (r * 7 + 3) % 4).collect();
    NetworkConfig {
        loss: Loss::CrossEntropy,
        output_activation: false,
        ..NetworkConfig::new(1, 1, 1)
    }
    .with_given_parameters(GivenParameters::sequential("model", weights, biases))
    .with_given_data(GivenData {
        source: "data".into(),
        x,
        y: None,
        labels: Some(labels),
        y_ignored: false,
    })
}

/// Every element of the gradient at the logits against (softmax(z) − onehot)/N in f64, z the
/// logits the backend itself computed (so only the loss step is measured). The kernel works in
/// f32: with exp's relative error E, the C exponentials' sum and the division add (C + 1)u, so
/// |p̃ − p| ≤ p(2E + (C + 1)u); the one-hot subtraction, the rounded 1/N factor and the
/// product add u each on a value ≤ p + 1, and the store rounds once more in the storage's u_s:
/// |g̃ − g| ≤ (p(2E + (C + 1)u) + 3u(p + 1))/N + u_s|g̃|, plus half a subnormal spacing of the
/// storage where the store lands below its normal range (f16's starts at 6e-5).
fn check_logit_gradient<B: Backend>(backend: &B, name: &str, precision: Precision, exp_ulps: f64) {
    let config = classifier(3);
    config.validate().unwrap();
    let tr = trace(backend, &config, precision).unwrap();
    let d = config.depth;
    let z = tr.pre_activation[d].as_ref().unwrap();
    // A linear head: H^d is Z^d itself.
    assert_eq!(tr.activation[d].to_f64_vec(), z.to_f64_vec(), "{name}");
    let (rows, classes) = (z.shape().rows, z.shape().cols);
    let z = z.to_f64_vec();
    let got = tr.grad_activation[d].to_f64_vec();
    let labels = config.given_data.as_ref().unwrap().labels.clone().unwrap();
    let u_s = precision.storage().unit_roundoff();
    let mut max_p_off_label: f64 = 0.0;
    for r in 0..rows {
        let row = &z[r * classes..(r + 1) * classes];
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let spread = row.iter().map(|v| (v - m).abs()).fold(0.0, f64::max);
        // WGSL's exp: 3 + 2|x| ULP; the CPU's: 1 ULP (an ULP of f32 is at most 2u relative).
        let e = exp_ulps.max(3.0 + 2.0 * spread * f64::from(exp_ulps > 1.0)) * 2.0 * U32;
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for j in 0..classes {
            let p = (row[j] - m).exp() / sum;
            if j != labels[r] as usize {
                max_p_off_label = max_p_off_label.max(p);
            }
            let want = (p - f64::from(j == labels[r] as usize)) / rows as f64;
            let g = got[r * classes + j];
            let bound = (p * (2.0 * e + (classes as f64 + 1.0) * U32) + 3.0 * U32 * (p + 1.0))
                / rows as f64
                + u_s * g.abs()
                + precision.storage().subnormal_half_spacing();
            assert!(
                (g - want).abs() <= bound,
                "{name} {precision}: ∂l/∂z[{r}][{j}] = {g:e}, exact {want:e}, bound {bound:e}"
            );
        }
    }
    // Softmax far from one-hot and from uniform: a wrong label or normaliser shows.
    assert!(max_p_off_label > 0.3, "{name}: {max_p_off_label}");
}

#[test]
fn the_logits_gradient_is_softmax_minus_onehot_over_n_on_every_backend() {
    for precision in [Precision::F32, Precision::F16Accumulate32, Precision::Bf16] {
        check_logit_gradient(&Cpu, "cpu", precision, 1.0);
    }
    if let Some(gpu) = common::gpu("cross-entropy logits gradient") {
        check_logit_gradient(&gpu, "gpu", Precision::F32, 3.0);
    }
}

/// The first layer's weight gradient, dW¹ = dZ¹ᵀ·x, against an independent f64 pass of the
/// same network: the whole chain (forward, loss, backward) wired to the labels. Bound: each
/// f32 pass errs by a small multiple of u relative to the magnitudes; 1e-4 relative to the
/// largest |dW¹| is four orders above u·(depth + widths) and far below any wiring mistake.
#[test]
fn the_first_layers_weight_gradient_is_an_f64_passes() {
    let config = classifier(5);
    let tr = trace(&Cpu, &config, Precision::F32).unwrap();
    let given = config.given_parameters.as_ref().unwrap();
    let data = config.given_data.as_ref().unwrap();
    let labels = data.labels.as_ref().unwrap();
    let w: Vec<Vec<f64>> = given.weights.iter().map(HostTensor::to_f64_vec).collect();
    let b: Vec<Vec<f64>> = given
        .biases
        .iter()
        .map(|b| b.as_ref().unwrap().to_f64_vec())
        .collect();
    let widths = &config.widths;
    let n = config.batch;
    // Forward in f64: h[t] is [n, widths[t]].
    let mut h = vec![data.x.to_f64_vec()];
    let mut zs = vec![vec![]];
    for t in 1..=config.depth {
        let (n_in, n_out) = (widths[t - 1], widths[t]);
        let mut z = vec![0.0; n * n_out];
        for r in 0..n {
            for o in 0..n_out {
                z[r * n_out + o] = b[t - 1][o]
                    + (0..n_in)
                        .map(|i| h[t - 1][r * n_in + i] * w[t - 1][o * n_in + i])
                        .sum::<f64>();
            }
        }
        let a = if t == config.depth {
            z.clone()
        } else {
            z.iter().map(|v| v.max(0.0)).collect()
        };
        zs.push(z);
        h.push(a);
    }
    // ∂l/∂z at the top, then backward to dZ¹.
    let c = widths[config.depth];
    let mut g = vec![0.0; n * c];
    for r in 0..n {
        let row = &h[config.depth][r * c..(r + 1) * c];
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for j in 0..c {
            let onehot = f64::from(j == labels[r] as usize);
            g[r * c + j] = ((row[j] - m).exp() / sum - onehot) / n as f64;
        }
    }
    for t in (2..=config.depth).rev() {
        let (n_in, n_out) = (widths[t - 1], widths[t]);
        let mut prev = vec![0.0; n * n_in];
        for r in 0..n {
            for i in 0..n_in {
                let s: f64 = (0..n_out)
                    .map(|o| g[r * n_out + o] * w[t - 1][o * n_in + i])
                    .sum();
                // Through layer t − 1's ReLU.
                prev[r * n_in + i] = if zs[t - 1][r * n_in + i] > 0.0 {
                    s
                } else {
                    0.0
                };
            }
        }
        g = prev;
    }
    let (n_in, n_out) = (widths[0], widths[1]);
    let got = tr.grad_weight[1].as_ref().unwrap().to_f64_vec();
    let want: Vec<f64> = (0..n_out * n_in)
        .map(|k| {
            let (o, i) = (k / n_in, k % n_in);
            (0..n).map(|r| g[r * n_out + o] * h[0][r * n_in + i]).sum()
        })
        .collect();
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(scale > 1e-3, "a gradient worth comparing: {scale}");
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "dW¹[{k}] = {g:e}, f64 {w:e} (scale {scale:e})"
        );
    }
}

#[test]
fn cross_entropy_defaults_to_a_linear_head_and_an_explicit_flag_wins() {
    let dir = common::scratch_dir("run_classifier", "default");
    let data = labelled_file(&dir, "d.safetensors", &[0, 1, 2, 1], &[4]);
    let options = |loss: Loss, output_activation: Option<bool>| RunOptions {
        depth: Some(2),
        widths: Some(vec![3, 5, 3]),
        loss: Some(loss),
        output_activation,
        data: Some(data.clone()),
        ..RunOptions::default()
    };
    let decided = |loss, flag| {
        let e = options(loss, flag).experiment().unwrap();
        e.variants[0].1.output_activation
    };
    assert!(!decided(Loss::CrossEntropy, None));
    assert!(decided(Loss::CrossEntropy, Some(true)));
    assert!(decided(Loss::Probe, None));
    assert!(!decided(Loss::Probe, Some(false)));
}

/// A safetensors file of x [n, 3] (f32) and y: int64 labels of `y_shape`.
fn labelled_file(dir: &Path, name: &str, labels: &[i64], y_shape: &[usize]) -> PathBuf {
    labelled_file_of(dir, name, labels.len(), labels, y_shape)
}

/// As `labelled_file`, with x of `n` rows whatever the labels' count.
fn labelled_file_of(
    dir: &Path,
    name: &str,
    n: usize,
    labels: &[i64],
    y_shape: &[usize],
) -> PathBuf {
    let x: Vec<u8> = (0..n * 3)
        .flat_map(|i| (i as f32 * 0.25 - 1.0).to_le_bytes())
        .collect();
    let y: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let header = format!(
        "{{\"x\":{{\"dtype\":\"F32\",\"shape\":[{n},3],\"data_offsets\":[0,{}]}},\
         \"y\":{{\"dtype\":\"I64\",\"shape\":{y_shape:?},\"data_offsets\":[{},{}]}}}}",
        x.len(),
        x.len(),
        x.len() + y.len()
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(x);
    bytes.extend(y);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A file's name, its labels, their shape, the exit code and what the one line says.
type RefusalCase = (
    &'static str,
    &'static [i64],
    &'static [usize],
    i32,
    &'static str,
);

#[test]
fn missing_or_out_of_range_labels_are_one_line_refusals() {
    let dir = common::scratch_dir("run_classifier", "refusals");
    let good = labelled_file(&dir, "good.safetensors", &[0, 1, 2, 1], &[4]);
    let run = |data: Option<&Path>, extra: &[&str]| {
        let mut cli =
            common::cli(["run", "--backend", "cpu", "--quiet", "--depth", "2"]).args(extra);
        if !extra.contains(&"--width") {
            cli = cli.args(["--width", "3,5,3"]);
        }
        if let Some(d) = data {
            cli = cli.arg("--data").arg(d);
        }
        cli.output()
    };
    let refused = |out: std::process::Output, code: i32, needle: &str| {
        let err = common::stderr_of(&out);
        assert_eq!(out.status.code(), Some(code), "{needle}: {err}");
        assert!(err.contains(needle), "'{needle}' missing from: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    };
    for alias in ["cross-entropy", "cross_entropy"] {
        let out = run(Some(&good), &["--loss", alias]);
        assert!(out.status.success(), "{}", common::stderr_of(&out));
    }
    refused(
        run(None, &["--loss", "cross-entropy"]),
        2,
        "--loss cross-entropy needs labels",
    );
    let cases: [RefusalCase; 4] = [
        (
            "high",
            &[0, 1, 3, 1],
            &[4],
            2,
            "has the label 3 (row 2), but the network has 3 outputs",
        ),
        (
            "negative",
            &[0, -1, 2, 1],
            &[4],
            1,
            "y holds the label -1; labels are ≥ 0",
        ),
        (
            "column",
            &[0, 1, 2, 1],
            &[4, 1],
            1,
            "integer y must be [N] labels",
        ),
        (
            "rows",
            &[0, 1, 2],
            &[3],
            1,
            "x has 4 rows but y has 3 labels",
        ),
    ];
    for (name, labels, shape, code, needle) in cases {
        let path = labelled_file_of(&dir, &format!("{name}.safetensors"), 4, labels, shape);
        refused(run(Some(&path), &["--loss", "cross-entropy"]), code, needle);
    }
    // One output: no classes to tell apart.
    let one = run(
        Some(&good),
        &["--loss", "cross-entropy", "--width", "3,5,1"],
    );
    refused(one, 2, "needs at least two classes");
    // The probe and the sum ignore any y, malformed or not, and say so.
    for loss in ["probe", "sum"] {
        let path = labelled_file(&dir, "column.safetensors", &[0, 1, 2, 1], &[4, 1]);
        let out = run(Some(&path), &["--loss", loss]);
        let err = common::stderr_of(&out);
        assert!(out.status.success(), "{loss}: {err}");
        assert!(
            err.contains(&format!("y of {} ignored: the {loss} loss", path.display())),
            "{err}"
        );
    }
}
