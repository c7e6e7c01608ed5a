//! Held-out evaluation (`--val-split`, `--val-data`, `--eval-every`) against an f64 forward
//! pass of the saved weights written here, sharing no code with the library's:
//!
//! - the evaluation is of the weights after the step's update (those a save writes);
//! - it does not depend on the chunks it runs in (batch 1, 7, the whole set) beyond the
//!   rounding the reference bounds;
//! - f16acc32 evaluates in f16: the f16-rounded forward matches, an f32 one would not;
//! - `--val-data` of the rows a split held out gives the split's numbers exactly;
//! - the split is drawn from the seed, not from the minibatch order, and holds every class;
//! - a diverged run reports NaN, and bad input is refused in one line.
//!
//! Error bounds: each logit's error is carried layer by layer, |W|·e_{t−1} plus the matmul's
//! γ_k·|W|·|h| (k the fan-in plus the bias's rounding); the cross-entropy of a row moves by at
//! most 2·max|Δlogit| (its gradient softmax − onehot has ℓ1 norm ≤ 2), and its f32 evaluation
//! errs by the exp's (3 + 2|x|) ulps (WGSL's bound, which the CPU's meets), the log's 2^-21
//! and a rounding per addition.

mod common;

use std::path::Path;
use std::sync::Arc;

use half::f16;
use rand_distr::{Distribution, StandardNormal};

use gradstab::network::NetworkConfig;
use gradstab::ops::optimizer::{OptimizerConfig, OptimizerKind};
use gradstab::precision::F32_UNIT_ROUNDOFF as U;
use gradstab::train::{
    run_training, EvalRecord, Evaluation, FinalWeights, LossScale, Targets, Task, TrainConfig,
    TrainData, TrainOutcome, Validation,
};
use gradstab::{Activation, Backend, Cpu, HostTensor, Precision};

use common::{gradstab_cli as gradstab, s, stderr_of};

const INPUTS: usize = 4;
const CLASSES: usize = 3;
/// Three Gaussian blobs of unequal sizes: 97 samples, not a multiple of any batch here.
const SIZES: [usize; CLASSES] = [50, 30, 17];

/// Blobs around three centres 2.5 apart, unit variance, shuffled; labels 0, 1, 2.
fn blobs(seed: u64) -> TrainData {
    let mut rng = common::rng(seed);
    let centres = [
        [0.0, 0.0, 0.0, 0.0],
        [2.5, 0.0, 1.0, 0.0],
        [0.0, 2.5, 0.0, -1.0],
    ];
    let mut rows: Vec<(Vec<f32>, u32)> = Vec::new();
    for (c, &k) in SIZES.iter().enumerate() {
        for _ in 0..k {
            let x = (0..INPUTS)
                .map(|i| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    (centres[c][i] + z) as f32
                })
                .collect();
            rows.push((x, c as u32));
        }
    }
    // A fixed interleaving, so that no class sits in one block of rows.
    rows.sort_by_key(|(x, _)| (x[3].to_bits() as u64 * 2654435761) % 1000003);
    let n = rows.len();
    TrainData {
        x: HostTensor::from_f32(
            n,
            INPUTS,
            rows.iter().flat_map(|(x, _)| x.clone()).collect(),
        )
        .unwrap(),
        targets: Targets::Labels(rows.iter().map(|(_, l)| *l).collect()),
    }
}

/// A ReLU MLP 4 → 16 → 16 → 3 with biases and a linear head, trained by SGD on `data`.
fn config(
    data: TrainData,
    batch: usize,
    lr: f64,
    steps: usize,
    validation: Validation,
) -> TrainConfig {
    let widths = [INPUTS, 16, 16, CLASSES];
    TrainConfig {
        network: NetworkConfig {
            activation: Activation::Relu,
            output_activation: false,
            linear_bias: true,
            seed: 3,
            ..NetworkConfig::new(3, INPUTS, batch)
        }
        .with_widths(&widths)
        .unwrap(),
        task: Task::File {
            source: "blobs".into(),
            data: Arc::new(data),
        },
        samples: 0,
        shuffle: true,
        drop_last: false,
        steps,
        record_every: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        lr,
        lr_schedule: None,
        precision: Precision::F32,
        loss_scale: LossScale::None,
        evaluation: Evaluation {
            validation,
            every: None,
        },
    }
}

fn train<B: Backend>(backend: &B, config: &TrainConfig) -> TrainOutcome {
    run_training(backend, config, "eval", true, &mut |_, _| Ok(())).unwrap()
}

/// The (training, validation) rows of a split run: the held-out rows, and the others in order.
fn split_of(outcome: &TrainOutcome, n: usize) -> (Vec<usize>, Vec<usize>) {
    let val = outcome
        .run
        .split
        .as_ref()
        .expect("a split run")
        .val_rows
        .clone();
    let train = (0..n).filter(|r| !val.contains(r)).collect();
    (train, val)
}

/// The rounding the reference forward mirrors: f32 (errors bounded) or f16acc32 (f16 storage,
/// f32 accumulation, one rounding to f16 per stored tensor).
#[derive(Clone, Copy, PartialEq)]
enum Storage {
    F32,
    F16,
}

fn to_f16(x: f64) -> f64 {
    f16::from_f64(x).to_f64()
}

/// The distance from `x` to the nearest point where its rounding to f16 changes.
fn to_f16_boundary(x: f64) -> f64 {
    let r = f16::from_f64(x);
    let b = r.to_bits();
    let neighbour = |bits: u16| f16::from_bits(bits).to_f64();
    let (up, down) = match (b & 0x8000 != 0, b & 0x7fff) {
        (_, 0) => (neighbour(1), neighbour(0x8001)),
        (false, _) => (neighbour(b + 1), neighbour(b - 1)),
        (true, _) => (neighbour(b - 1), neighbour(b + 1)),
    };
    let r = r.to_f64();
    (x - (r + down) / 2.0).abs().min(((r + up) / 2.0 - x).abs())
}

/// One f16 unit in the last place at magnitude `x`.
fn ulp16(x: f64) -> f64 {
    let x = x.abs().max(2f64.powi(-14));
    2f64.powi(x.log2().floor() as i32 - 10)
}

fn gamma(k: usize) -> f64 {
    k as f64 * U / (1.0 - k as f64 * U)
}

/// The f64 forward of `weights` on `rows` of `data`: each row's logits and a bound on how far
/// an evaluation in `storage` may be from them.
fn logits(
    weights: &FinalWeights,
    data: &TrainData,
    rows: &[usize],
    storage: Storage,
) -> Vec<(Vec<f64>, Vec<f64>)> {
    let x = data.x.to_f32_vec();
    let round = |v: f64| {
        if storage == Storage::F16 {
            to_f16(v)
        } else {
            v
        }
    };
    let layers: Vec<(usize, usize, Vec<f64>, Vec<f64>)> = weights
        .weights
        .iter()
        .zip(&weights.biases)
        .map(|(w, b)| {
            let (n_out, n_in) = (w.shape().rows, w.shape().cols);
            let w = w.to_f64_vec().into_iter().map(round).collect();
            let b = b
                .as_ref()
                .expect("biases")
                .to_f64_vec()
                .into_iter()
                .map(round)
                .collect();
            (n_out, n_in, w, b)
        })
        .collect();
    let depth = layers.len();
    rows.iter()
        .map(|&r| {
            let mut h: Vec<f64> = x[r * INPUTS..(r + 1) * INPUTS]
                .iter()
                .map(|&v| round(v as f64))
                .collect();
            let mut e = vec![0.0; INPUTS];
            for (t, (n_out, n_in, w, b)) in layers.iter().enumerate() {
                let mut z = vec![0.0; *n_out];
                let mut ez = vec![0.0; *n_out];
                for i in 0..*n_out {
                    let row = &w[i * n_in..(i + 1) * n_in];
                    let dot: f64 = row.iter().zip(&h).map(|(w, h)| w * h).sum();
                    let moved: f64 = row.iter().zip(&e).map(|(w, e)| w.abs() * e).sum();
                    let size: f64 = row
                        .iter()
                        .zip(h.iter().zip(&e))
                        .map(|(w, (h, e))| w.abs() * (h.abs() + e))
                        .sum();
                    match storage {
                        Storage::F32 => {
                            z[i] = dot + b[i];
                            // The matmul's k products and the bias's axpy: k + 1 roundings.
                            ez[i] = moved + gamma(*n_in + 1) * (size + b[i].abs());
                        }
                        Storage::F16 => {
                            // Z = fl16(H·Wᵀ accumulated in f32), then fl16(Z + b) in f32.
                            let reach = moved + gamma(*n_in) * size;
                            let stored = to_f16(dot);
                            let e1 = if reach < to_f16_boundary(dot) {
                                0.0
                            } else {
                                reach + ulp16(dot.abs() + reach)
                            };
                            let sum = (stored as f32 + b[i] as f32) as f64;
                            z[i] = to_f16(sum);
                            ez[i] = if e1 == 0.0 {
                                0.0
                            } else {
                                e1 + ulp16(sum.abs() + e1)
                            };
                        }
                    }
                }
                if t + 1 < depth {
                    // ReLU: exact, and no larger a move than its input's.
                    for v in &mut z {
                        *v = v.max(0.0);
                    }
                }
                h = z;
                e = ez;
            }
            (h, e)
        })
        .collect()
}

/// The mean cross-entropy and accuracy of the reference logits over `rows`, and a bound on
/// how far an evaluation's mean loss may be; panics where a row's top two logits are closer
/// than its error allows, which would leave the accuracy uncertain.
fn reference(
    weights: &FinalWeights,
    data: &TrainData,
    rows: &[usize],
    storage: Storage,
) -> (f64, f64, f64) {
    let Targets::Labels(labels) = &data.targets else {
        panic!("labels")
    };
    let (mut loss, mut bound, mut correct) = (0.0, 0.0, 0);
    for (&r, (z, e)) in rows.iter().zip(logits(weights, data, rows, storage)) {
        let label = labels[r] as usize;
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
        let row_loss = s.ln() + m - z[label];
        loss += row_loss;
        let moved = e.iter().cloned().fold(0.0, f64::max);
        let exps: f64 = z
            .iter()
            .map(|v| (v - m).exp() * (4.0 + 2.0 * (v - m).abs()))
            .sum::<f64>()
            * U
            / s;
        bound += 2.0 * moved
            + exps
            + 2f64.powi(-21)
            + 4.0 * U * (s.ln().abs() + m.abs() + z[label].abs());
        let best = (0..z.len()).fold(0, |b, j| if z[j] > z[b] { j } else { b });
        let runner_up = (0..z.len())
            .filter(|&j| j != best)
            .map(|j| z[j])
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            moved == 0.0 || z[best] - runner_up > 2.0 * moved,
            "row {r}: logits {z:?} within {moved} of a tie; pick other data"
        );
        if best == label {
            correct += 1;
        }
    }
    let n = rows.len() as f64;
    (loss / n, correct as f64 / n, bound / n)
}

/// Checks an evaluation against the reference of the run's saved weights on its split.
fn check_against_reference(
    outcome: &TrainOutcome,
    data: &TrainData,
    storage: Storage,
    case: &str,
) -> EvalRecord {
    let e = outcome
        .run
        .summary
        .final_eval
        .clone()
        .expect("an evaluation after the last step");
    let weights = outcome.weights.as_ref().unwrap();
    let (train_rows, val_rows) = split_of(outcome, data.samples());
    for (part, rows, loss, accuracy) in [
        ("train", &train_rows, e.train_loss, e.train_accuracy),
        ("val", &val_rows, e.val_loss.unwrap(), e.val_accuracy),
    ] {
        let (want_loss, want_accuracy, bound) = reference(weights, data, rows, storage);
        assert!(
            (loss - want_loss).abs() <= bound,
            "{case} {part}: loss {loss} vs f64 {want_loss}, bound {bound:e}"
        );
        assert_eq!(accuracy, Some(want_accuracy), "{case} {part}: accuracy");
    }
    e
}

/// The model does not move (lr 0), so batches of 1, 7 and the whole training set evaluate the
/// same weights in chunks of those sizes.
fn check_chunking<B: Backend>(backend: &B) {
    let data = blobs(1);
    let mut seen: Vec<EvalRecord> = Vec::new();
    for batch in [1, 7, 72] {
        let config = config(data.clone(), batch, 0.0, 1, Validation::Split(0.25));
        let outcome = train(backend, &config);
        assert_eq!(outcome.run.split.as_ref().unwrap().train_samples, 72);
        let e = check_against_reference(&outcome, &data, Storage::F32, &format!("batch {batch}"));
        if let Some(first) = seen.first() {
            assert_eq!(e.train_accuracy, first.train_accuracy);
            assert_eq!(e.val_accuracy, first.val_accuracy);
        }
        seen.push(e);
    }
}

#[test]
fn evaluation_does_not_depend_on_its_chunks_cpu() {
    check_chunking(&Cpu);
}

#[test]
fn evaluation_does_not_depend_on_its_chunks_gpu() {
    if let Some(gpu) = common::gpu("evaluation_does_not_depend_on_its_chunks_gpu") {
        check_chunking(&gpu);
    }
}

/// After five steps of a large rate (each moving the loss far beyond the bound), the final
/// evaluation is of the weights the run saves: those after the last update. Every
/// `--eval-every` evaluation is kept in its step, the last one in the summary.
fn check_after_update<B: Backend>(backend: &B, precision: Precision, storage: Storage) {
    let data = blobs(2);
    let mut config = config(data.clone(), 7, 0.3, 5, Validation::Split(0.25));
    config.precision = precision;
    config.evaluation.every = Some(2);
    let outcome = train(backend, &config);
    let steps: Vec<usize> = outcome
        .run
        .steps
        .iter()
        .filter_map(|s| s.eval.as_ref().map(|e| e.step))
        .collect();
    assert_eq!(steps, [2, 4, 5]);
    let e = check_against_reference(&outcome, &data, storage, &format!("{precision}"));
    assert_eq!(outcome.run.steps[4].eval.as_ref(), Some(&e));
    // The evaluations moved with training: each one is of its own step's weights.
    let losses: Vec<f64> = outcome
        .run
        .steps
        .iter()
        .filter_map(|s| s.eval.as_ref().map(|e| e.train_loss))
        .collect();
    assert!(
        losses[0] != losses[1] && losses[1] != losses[2],
        "{losses:?}"
    );
}

#[test]
fn the_evaluation_is_of_the_weights_after_the_update_cpu() {
    check_after_update(&Cpu, Precision::F32, Storage::F32);
}

#[test]
fn the_evaluation_is_of_the_weights_after_the_update_gpu() {
    if let Some(gpu) = common::gpu("the_evaluation_is_of_the_weights_after_the_update_gpu") {
        check_after_update(&gpu, Precision::F32, Storage::F32);
    }
}

/// f16acc32 evaluates the f16 model copy in f16 storage: within the f16-rounded forward's
/// bound, and outside the bound that any f32 evaluation of the f32 master weights meets. The
/// second needs inputs that f16 rounds visibly: the blobs moved to 300 in their first
/// feature, where f16's spacing is 0.25.
fn check_mixed_precision<B: Backend>(backend: &B) {
    check_after_update(backend, Precision::F16Accumulate32, Storage::F16);
    let mut data = blobs(2);
    let mut x = data.x.to_f32_vec();
    for row in x.chunks_mut(INPUTS) {
        row[0] += 300.0;
    }
    data.x = HostTensor::from_f32(data.samples(), INPUTS, x).unwrap();
    let mut config = config(data.clone(), 7, 1e-4, 2, Validation::Split(0.25));
    config.precision = Precision::F16Accumulate32;
    let outcome = train(backend, &config);
    check_against_reference(&outcome, &data, Storage::F16, "f16acc32, inputs near 300");
    let loss = outcome.run.summary.final_eval.as_ref().unwrap().train_loss;
    let (train_rows, _) = split_of(&outcome, data.samples());
    let weights = outcome.weights.as_ref().unwrap();
    let (f32_loss, _, f32_bound) = reference(weights, &data, &train_rows, Storage::F32);
    assert!(
        (loss - f32_loss).abs() > f32_bound,
        "f16acc32's evaluation {loss} is within {f32_bound:e} of the f32 masters' {f32_loss}"
    );
}

#[test]
fn mixed_precision_evaluates_in_f16_cpu() {
    check_mixed_precision(&Cpu);
}

#[test]
fn mixed_precision_evaluates_in_f16_gpu() {
    if let Some(gpu) = common::gpu("mixed_precision_evaluates_in_f16_gpu") {
        check_mixed_precision(&gpu);
    }
}

/// The rows a split held out, given as `--val-data` beside a `--data` of the others in order,
/// train and evaluate exactly as the split did.
#[test]
fn val_data_of_the_held_out_rows_gives_the_splits_numbers() {
    let data = blobs(4);
    let mut split = config(data.clone(), 7, 0.3, 9, Validation::Split(0.25));
    split.evaluation.every = Some(3);
    let a = train(&Cpu, &split);
    let (train_rows, val_rows) = split_of(&a, data.samples());
    let mut given = config(
        data.subset(&train_rows).unwrap(),
        7,
        0.3,
        9,
        Validation::Data {
            source: "val".into(),
            data: Arc::new(data.subset(&val_rows).unwrap()),
        },
    );
    given.evaluation.every = Some(3);
    let b = train(&Cpu, &given);
    let evals = |o: &TrainOutcome| -> Vec<EvalRecord> {
        o.run.steps.iter().filter_map(|s| s.eval.clone()).collect()
    };
    assert_eq!(evals(&a).len(), 3);
    assert_eq!(evals(&a), evals(&b));
    assert!(b.run.split.is_none());
}

/// The split comes from the seed alone: shuffling, the batch and the steps leave it as it is,
/// another seed draws another; every class is in the validation set.
#[test]
fn the_split_is_drawn_from_the_seed_not_the_minibatch_order() {
    let data = blobs(5);
    let Targets::Labels(labels) = &data.targets else {
        unreachable!()
    };
    let val_rows = |shuffle: bool, batch: usize, seed: u64| {
        let mut c = config(data.clone(), batch, 0.1, 2, Validation::Split(0.1));
        c.shuffle = shuffle;
        c.network.seed = seed;
        train(&Cpu, &c).run.split.unwrap().val_rows
    };
    let first = val_rows(true, 7, 3);
    assert_eq!(first.len(), 10);
    assert_eq!(val_rows(false, 87, 3), first);
    assert_ne!(val_rows(true, 7, 4), first);
    for c in 0..CLASSES as u32 {
        let k = first.iter().filter(|&&r| labels[r] == c).count();
        let share = 10.0 * SIZES[c as usize] as f64 / 97.0;
        assert!(
            k >= 1 && (k as f64 - share).abs() < 1.0,
            "class {c}: {k} of 10"
        );
    }
}

/// Evaluating leaves the training as it was: every step's loss and norms are those of the
/// same run without evaluations, in every precision the backend runs (FP8's delayed scaling
/// state, the bias broadcast's ones column of a short last batch included).
fn check_evaluation_leaves_training_alone<B: Backend>(backend: &B) {
    for precision in [
        Precision::F32,
        Precision::F16Accumulate32,
        Precision::Bf16Accumulate32,
        Precision::Fp8,
    ] {
        if !backend.supports(precision) {
            eprintln!("SKIPPED {precision}: {}", backend.unsupported(precision));
            continue;
        }
        let mut quiet = config(blobs(7), 7, 0.1, 15, Validation::None);
        quiet.precision = precision;
        let mut evaluated = quiet.clone();
        evaluated.evaluation.every = Some(1);
        let (a, b) = (train(backend, &quiet), train(backend, &evaluated));
        assert!(a.run.summary.final_eval.is_none());
        assert!(b.run.steps.iter().all(|s| s.eval.is_some()), "{precision}");
        let strip = |o: &TrainOutcome| -> Vec<_> {
            o.run
                .steps
                .iter()
                .map(|s| (s.loss, s.layers.clone(), s.fp8.clone()))
                .collect()
        };
        assert_eq!(strip(&a), strip(&b), "{precision}");
    }
}

#[test]
fn evaluation_leaves_the_training_as_it_was_cpu() {
    check_evaluation_leaves_training_alone(&Cpu);
}

#[test]
fn evaluation_leaves_the_training_as_it_was_gpu() {
    if let Some(gpu) = common::gpu("evaluation_leaves_the_training_as_it_was_gpu") {
        check_evaluation_leaves_training_alone(&gpu);
    }
}

/// A run whose loss turns inf or NaN still evaluates its last weights, and says NaN.
#[test]
fn a_diverged_run_reports_nan_not_an_error() {
    let data = blobs(6);
    let mut c = config(data, 72, 1e30, 4, Validation::Split(0.25));
    c.evaluation.every = Some(1);
    let outcome = run_training(&Cpu, &c, "diverged", false, &mut |_, _| Ok(())).unwrap();
    let summary = &outcome.run.summary;
    assert!(summary.diverged_at.is_some(), "{summary:?}");
    let e = summary.final_eval.as_ref().unwrap();
    assert_eq!(e.step, summary.steps_run);
    assert!(
        !e.train_loss.is_finite() && !e.val_loss.unwrap().is_finite(),
        "{e:?}"
    );
    assert!(e.train_accuracy.unwrap().is_nan(), "{e:?}");
}

// --- The command line ---

fn scratch(test: &str) -> std::path::PathBuf {
    common::scratch_dir("train_eval", test)
}

/// x [n, inputs] f32 and y [n] int64 labels as an .npz.
fn write_labelled(path: &Path, x: &[f32], inputs: usize, y: &[i64]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let n = y.len();
    let arrays: [(&str, &str, Vec<usize>, Vec<u8>); 2] = [
        (
            "x",
            "<f4",
            vec![n, inputs],
            x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "y",
            "<i8",
            vec![n],
            y.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    ];
    for (name, descr, shape, bytes) in arrays {
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        std::io::Write::write_all(&mut zip, &common::npy_bytes(descr, &shape, &bytes)).unwrap();
    }
    zip.finish().unwrap();
}

/// One line on stderr, the exit code, and `needle` in it; never a panic.
fn assert_refused(args: &[&str], code: i32, needle: &str) {
    let out = gradstab(args);
    let e = stderr_of(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{args:?}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
    assert!(e.contains(needle), "{args:?}: '{needle}' missing from {e}");
}

#[test]
fn bad_evaluation_flags_are_refused_in_one_line() {
    let dir = scratch("bad_flags");
    let data = dir.join("d.npz");
    let x: Vec<f32> = (0..24).map(|i| i as f32 / 7.0).collect();
    write_labelled(&data, &x, 3, &[0, 1, 2, 0, 1, 2, 0, 1]);
    let wide = dir.join("wide.npz");
    write_labelled(&wide, &x, 4, &[0, 1, 2, 0, 1, 2]);
    let labels = dir.join("labels.npz");
    write_labelled(&labels, &x, 3, &[0, 1, 2, 0, 1, 2, 0, 3]);
    let base = [
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--depth",
        "2",
        "--steps",
        "2",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let refused = |extra: &[&str], code: i32, needle: &str| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&args, code, needle);
    };
    let d = s(&data);
    for f in ["0", "1", "NaN", "-0.5", "inf"] {
        refused(
            &["--data", d, "--val-split", f],
            2,
            "expected a fraction strictly between 0 and 1",
        );
    }
    refused(
        &["--samples", "4", "--val-split", "0.9"],
        2,
        "leaving none to train on",
    );
    // 8 samples of 3 classes: a quarter (2) cannot hold each class.
    refused(
        &["--data", d, "--val-split", "0.25"],
        2,
        "each part needs at least one sample of each of the 3 classes",
    );
    refused(&["--data", d, "--val-data", s(&wide)], 2, "x of");
    refused(
        &["--data", d, "--val-data", s(&labels)],
        2,
        "has the label 3, but the network has 3 outputs",
    );
    refused(&["--data", d, "--eval-every", "0"], 2, "--eval-every");
    refused(&["--val-data", d], 2, "--data");
    refused(
        &["--data", d, "--val-data", d, "--val-split", "0.5"],
        2,
        "cannot be used with",
    );
    refused(
        &["--preset", "remedies", "--val-split", "0.5"],
        2,
        "cannot be used with",
    );
}

/// `--val-split` on the command line: the JSON carries the split's rows and each evaluation,
/// the CSV its columns, the table its lines.
#[test]
fn the_outputs_carry_the_evaluations() {
    let dir = scratch("outputs");
    let data = dir.join("blobs.npz");
    let blobs = blobs(1);
    let Targets::Labels(labels) = &blobs.targets else {
        unreachable!()
    };
    let y: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    write_labelled(&data, &blobs.x.to_f32_vec(), INPUTS, &y);
    let args = |format: &str| -> Vec<String> {
        [
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--data",
            s(&data),
            "--depth",
            "2",
            "--width",
            "4,8,3",
            "--batch",
            "10",
            "--steps",
            "9",
            "--val-split",
            "0.25",
            "--eval-every",
            "4",
            "--format",
            format,
        ]
        .map(String::from)
        .to_vec()
    };
    let out = gradstab(&args("json"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &json["runs"][0];
    assert_eq!(run["config"]["evaluation"]["val_samples"], 25);
    assert_eq!(run["split"]["val_rows"].as_array().unwrap().len(), 25);
    let evals: Vec<u64> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.get("eval").map(|e| e["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(evals, [4, 8, 9]);
    assert_eq!(run["summary"]["final_eval"], run["steps"][8]["eval"]);
    let csv = String::from_utf8(gradstab(&args("csv")).stdout).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "val_accuracy").unwrap();
    let filled = csv
        .lines()
        .skip(1)
        .filter(|l| !l.split(',').nth(column).unwrap().is_empty())
        .count();
    // One row per layer of each of the three evaluated steps.
    assert_eq!(filled, 3 * 2);
    let table = String::from_utf8(gradstab(&args("table")).stdout).unwrap();
    assert_eq!(table.matches("eval after step").count(), 3, "{table}");
    assert!(table.contains("final eval: "), "{table}");
}
