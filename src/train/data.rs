//! What a network trains on: a built-in task (a random teacher MLP's outputs to regress, or
//! its argmax to classify) or the user's file, and the minibatches a step takes from it.
//!
//! Built-in data is drawn on the host in f64 from the seed alone, so every backend and
//! precision trains on the same numbers.

use std::path::Path;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::files;
use crate::init;
use crate::network::given::{labels, matrix, problem, two_dimensional};
use crate::ops::loss::LossKind;
use crate::tensor::HostTensor;

/// Seed purposes of the data streams (next to `init`'s).
const DATA: u64 = 11;
const TEACHER: u64 = 12;
const SHUFFLE: u64 = 13;

/// Where the training data comes from.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Inputs N(0, 1), targets a random ReLU teacher MLP's outputs, scaled to unit variance;
    /// loss MSE.
    Teacher { depth: usize, width: usize },
    /// The same teacher's argmax over its outputs as labels; loss cross-entropy.
    Classify { depth: usize, width: usize },
    /// x and y from a file (`--data`).
    File {
        #[serde(rename = "data_file")]
        source: String,
        #[serde(skip)]
        data: Arc<TrainData>,
    },
}

impl Task {
    pub fn loss(&self) -> LossKind {
        match self {
            Task::Teacher { .. } => LossKind::Mse,
            Task::Classify { .. } => LossKind::CrossEntropy,
            Task::File { data, .. } => match data.targets {
                Targets::Values(_) => LossKind::Mse,
                Targets::Labels(_) => LossKind::CrossEntropy,
            },
        }
    }
}

/// Targets: values for MSE, class labels for cross-entropy.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    Values(HostTensor),
    Labels(Vec<u32>),
}

/// A data set held on the host: inputs x [N, inputs] (f32) and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainData {
    pub x: HostTensor,
    pub targets: Targets,
}

impl TrainData {
    pub fn samples(&self) -> usize {
        self.x.shape().rows
    }

    /// The network's output width these targets need (the classes' count for labels: one
    /// more than the largest label, at least).
    pub fn check_outputs(&self, outputs: usize, source: &str) -> Result<()> {
        match &self.targets {
            Targets::Values(y) if y.shape().cols != outputs => {
                Err(Error::InvalidArgument(format!(
                    "y of {source} has {} columns, but the network has {outputs} outputs",
                    y.shape().cols
                )))
            }
            Targets::Labels(labels) => {
                if let Some(l) = labels.iter().find(|&&l| l as usize >= outputs) {
                    return Err(Error::InvalidArgument(format!(
                        "{source} has the label {l}, but the network has {outputs} outputs (classes 0..{})",
                        outputs - 1
                    )));
                }
                // One class is no classification: its cross-entropy is 0 whatever the model.
                let first = labels.first().copied().unwrap_or(0);
                // A file of one class is the data's problem (exit 1); a one-output network
                // with several classes is the command line's (exit 2).
                if labels.iter().all(|&l| l == first) {
                    return Err(Error::File {
                        path: source.to_string(),
                        problem: format!(
                            "every label is {first}: cross-entropy needs at least two classes"
                        ),
                        source: None,
                    });
                }
                if outputs < 2 {
                    return Err(Error::InvalidArgument(format!(
                        "cross-entropy needs at least two classes, but the network has {outputs} output"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The loss of a model that ignores its input: mean(y²) for MSE (predicting zero),
    /// ln(outputs) for cross-entropy (equal logits over the network's outputs).
    pub fn baseline_loss(&self, outputs: usize) -> f64 {
        match &self.targets {
            Targets::Values(y) => {
                let v = y.to_f64_vec();
                v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64
            }
            Targets::Labels(_) => (outputs as f64).ln(),
        }
    }

    /// The inputs and f32 targets of `rows` (indices into the set).
    pub fn gather(&self, rows: &[usize]) -> Result<(HostTensor, HostTensor)> {
        let x = self.x.to_f32_vec();
        let n_in = self.x.shape().cols;
        let xs: Vec<f32> = rows
            .iter()
            .flat_map(|&r| x[r * n_in..(r + 1) * n_in].iter().copied())
            .collect();
        let targets = match &self.targets {
            Targets::Values(y) => {
                let cols = y.shape().cols;
                let y = y.to_f32_vec();
                let ys = rows
                    .iter()
                    .flat_map(|&r| y[r * cols..(r + 1) * cols].iter().copied())
                    .collect();
                HostTensor::from_f32(rows.len(), cols, ys)?
            }
            Targets::Labels(labels) => HostTensor::from_f32(
                rows.len(),
                1,
                rows.iter().map(|&r| labels[r] as f32).collect(),
            )?,
        };
        Ok((HostTensor::from_f32(rows.len(), n_in, xs)?, targets))
    }
}

impl TrainData {
    /// The samples of `rows`, in that order, with their targets as they are.
    pub fn subset(&self, rows: &[usize]) -> Result<TrainData> {
        let (x, y) = self.gather(rows)?;
        let targets = match &self.targets {
            Targets::Values(_) => Targets::Values(y),
            Targets::Labels(labels) => Targets::Labels(rows.iter().map(|&r| labels[r]).collect()),
        };
        Ok(TrainData { x, targets })
    }
}

/// The data set of a task: a file's, shared as it is, or for a built-in task `samples`
/// inputs of width `inputs` and the teacher's targets for `outputs` outputs.
pub fn teacher_data(
    task: &Task,
    samples: usize,
    inputs: usize,
    outputs: usize,
    seed: u64,
) -> Result<Arc<TrainData>> {
    let (depth, width, classify) = match *task {
        Task::Teacher { depth, width } => (depth, width, false),
        Task::Classify { depth, width } => (depth, width, true),
        Task::File { ref data, .. } => return Ok(Arc::clone(data)),
    };
    let mut rng = init::stream(seed, DATA, 0);
    let x: Vec<f64> = (0..samples * inputs)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    // The teacher: depth layers, ReLU between them, He-initialised hidden layers and an
    // N(0, 1/fan_in) head, evaluated in f64.
    let mut widths = vec![inputs];
    widths.extend(std::iter::repeat_n(width, depth.saturating_sub(1)));
    widths.push(outputs);
    let mut h = x.clone();
    for t in 1..widths.len() {
        let (n_in, n_out) = (widths[t - 1], widths[t]);
        let last = t == widths.len() - 1;
        let std = if last { 1.0 } else { 2f64.sqrt() } / (n_in as f64).sqrt();
        let mut rng = init::stream(seed, TEACHER, t);
        let w: Vec<f64> = (0..n_in * n_out)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                std * z
            })
            .collect();
        let mut next = vec![0.0; samples * n_out];
        for s in 0..samples {
            for o in 0..n_out {
                let z: f64 = (0..n_in).map(|i| w[o * n_in + i] * h[s * n_in + i]).sum();
                next[s * n_out + o] = if last { z } else { z.max(0.0) };
            }
        }
        h = next;
    }
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let x = HostTensor::from_f32(samples, inputs, x32)?;
    let targets = if classify {
        Targets::Labels(
            h.chunks(outputs)
                .map(|row| {
                    let mut best = 0;
                    for (j, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = j;
                        }
                    }
                    best as u32
                })
                .collect(),
        )
    } else {
        // Unit variance over all targets: a zero predictor starts near loss 1.
        let n = h.len() as f64;
        let mean = h.iter().sum::<f64>() / n;
        let var = h.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let scale = if var > 0.0 { 1.0 / var.sqrt() } else { 1.0 };
        let y: Vec<f32> = h.iter().map(|&v| (v * scale) as f32).collect();
        Targets::Values(HostTensor::from_f32(samples, outputs, y)?)
    };
    Ok(Arc::new(TrainData { x, targets }))
}

/// Reads x [N, inputs] and y, either [N, outputs] floats (MSE) or \[N\] integer labels
/// (cross-entropy), from a `.safetensors` or `.npz` file.
pub fn load_train_data(path: &Path) -> Result<TrainData> {
    let tensors = files::load(path)?;
    let find = |name: &str| tensors.iter().find(|t| t.name == name);
    let x = find("x").ok_or_else(|| {
        problem(
            path,
            "no tensor 'x': training reads x [N, inputs] and y ([N, outputs] floats for MSE, or [N] integer labels for cross-entropy)",
        )
    })?;
    let (n, inputs) = two_dimensional(path, x, "the inputs x")?;
    let y = find("y").ok_or_else(|| {
        problem(
            path,
            "no tensor 'y': training needs targets, [N, outputs] floats for MSE or [N] integer labels for cross-entropy",
        )
    })?;
    let targets = match (&y.shape[..], y.dtype) {
        ([_], dtype) if dtype.is_integer() => Targets::Labels(labels(path, y, n)?),
        (_, dtype) if dtype.is_integer() => {
            return Err(problem(
                path,
                format!("integer y must be [N] labels, got shape {:?}", y.shape),
            ))
        }
        _ => {
            let (rows, cols) = two_dimensional(path, y, "float targets y")?;
            if rows != n {
                return Err(problem(path, format!("x has {n} rows but y has {rows}")));
            }
            Targets::Values(matrix(path, y, rows, cols)?)
        }
    };
    Ok(TrainData {
        x: matrix(path, x, n, inputs)?,
        targets,
    })
}

/// The rows of each step's minibatch, epoch after epoch as `torch.utils.data.DataLoader`
/// gives them: each epoch the samples in order, or in a fresh permutation drawn from the seed
/// with `shuffle`, cut into batches of `batch`; the last batch of an epoch holds the
/// remainder (shorter), or with `drop_last` is left out. A batch never spans two epochs.
pub struct Batches {
    samples: usize,
    batch: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
    /// The epoch being taken, from 0 (the shuffle stream's index, as before epochs were
    /// counted, so that a seed draws the same permutations).
    epoch: usize,
    order: Vec<usize>,
    position: usize,
}

/// Batches per epoch: ceil(samples / batch), or floor with `drop_last` (DataLoader's
/// `len()`).
pub fn batches_per_epoch(samples: usize, batch: usize, drop_last: bool) -> usize {
    if drop_last {
        samples / batch
    } else {
        samples.div_ceil(batch)
    }
}

impl Batches {
    /// `batch` must be at least 1, and with `drop_last` at most `samples` (else no epoch
    /// has a batch; `TrainConfig::validate` refuses it).
    pub fn new(samples: usize, batch: usize, shuffle: bool, drop_last: bool, seed: u64) -> Self {
        assert!(
            batches_per_epoch(samples, batch, drop_last) > 0,
            "{samples} samples give no batch of {batch}"
        );
        let mut b = Batches {
            samples,
            batch,
            shuffle,
            drop_last,
            seed,
            epoch: 0,
            order: Vec::new(),
            position: 0,
        };
        b.start_epoch();
        b
    }

    fn start_epoch(&mut self) {
        self.order = (0..self.samples).collect();
        if self.shuffle {
            let mut rng = init::stream(self.seed, SHUFFLE, self.epoch);
            self.order.shuffle(&mut rng);
        }
        self.position = 0;
    }

    /// Whether every step takes the same rows (the whole set, in order).
    pub fn is_fixed(&self) -> bool {
        !self.shuffle && self.batch == self.samples
    }

    /// The epoch, from 1, of the batch `next_rows` gave last.
    pub fn epoch(&self) -> usize {
        self.epoch + 1
    }

    /// Where the batches stand: the epoch being taken (from 0, the shuffle stream's index), its
    /// order of the samples, and how many of them earlier batches took.
    pub fn position(&self) -> (usize, &[usize], usize) {
        (self.epoch, &self.order, self.position)
    }

    /// Goes on from a [`position`](Self::position) (a checkpoint's): `order` must be a
    /// permutation of the samples and `taken` at most their number; later epochs are drawn
    /// from the seed as ever.
    pub fn resume(&mut self, epoch: usize, order: Vec<usize>, taken: usize) -> Result<()> {
        let mut seen = vec![false; self.samples];
        let permutation = order.len() == self.samples
            && order
                .iter()
                .all(|&i| i < self.samples && !std::mem::replace(&mut seen[i], true));
        if !permutation || taken > self.samples {
            return Err(Error::InvalidArgument(format!(
                "the data order of {} samples with {taken} taken is no order of these {} samples",
                order.len(),
                self.samples
            )));
        }
        self.epoch = epoch;
        self.order = order;
        self.position = taken;
        Ok(())
    }

    /// The next batch's rows: `batch` of them, or fewer at the end of an epoch without
    /// `drop_last`.
    pub fn next_rows(&mut self) -> Vec<usize> {
        let left = self.samples - self.position;
        if left == 0 || (self.drop_last && left < self.batch) {
            self.epoch += 1;
            self.start_epoch();
        }
        let end = (self.position + self.batch).min(self.samples);
        let rows = self.order[self.position..end].to_vec();
        self.position = end;
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DataLoader's batches, built here from its definition: `order` cut into consecutive
    /// chunks of `batch`, the last one short, or dropped with `drop_last`.
    fn reference_epoch(order: &[usize], batch: usize, drop_last: bool) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let end = start + batch;
            if end > order.len() {
                if !drop_last {
                    out.push(order[start..].to_vec());
                }
                break;
            }
            out.push(order[start..end].to_vec());
            start = end;
        }
        out
    }

    #[test]
    fn each_epoch_is_cut_into_batches_as_a_dataloader_cuts_it() {
        // (samples, batch): a remainder of 1 and of 3, an exact fit, one whole-set batch.
        for (samples, batch) in [(5, 2), (11, 4), (6, 3), (7, 7)] {
            for shuffle in [false, true] {
                for drop_last in [false, true] {
                    let seed = 9;
                    let case = format!("{samples} samples, batch {batch}, shuffle {shuffle}, drop_last {drop_last}");
                    let mut b = Batches::new(samples, batch, shuffle, drop_last, seed);
                    let per_epoch = batches_per_epoch(samples, batch, drop_last);
                    let mut previous_order = None;
                    for epoch in 0..3 {
                        // Epoch e's order: 0..N, or the permutation of the seed's shuffle
                        // stream e, as a shuffling DataLoader draws one per epoch.
                        let mut order: Vec<usize> = (0..samples).collect();
                        if shuffle {
                            order.shuffle(&mut init::stream(seed, SHUFFLE, epoch));
                        }
                        let want = reference_epoch(&order, batch, drop_last);
                        assert_eq!(want.len(), per_epoch, "{case}");
                        let got: Vec<Vec<usize>> = (0..per_epoch).map(|_| b.next_rows()).collect();
                        assert_eq!(got, want, "{case}, epoch {epoch}");
                        assert_eq!(b.epoch(), epoch + 1, "{case}");
                        if shuffle && samples > 2 {
                            assert_ne!(
                                Some(&order),
                                previous_order.as_ref(),
                                "{case}: a fresh permutation each epoch"
                            );
                        }
                        previous_order = Some(order);
                    }
                }
            }
        }
        // Without shuffling, the indices outright: 5 samples in batches of 2.
        let mut b = Batches::new(5, 2, false, false, 0);
        let got: Vec<Vec<usize>> = (0..4).map(|_| b.next_rows()).collect();
        assert_eq!(got, vec![vec![0, 1], vec![2, 3], vec![4], vec![0, 1]]);
        let mut b = Batches::new(5, 2, false, true, 0);
        let got: Vec<Vec<usize>> = (0..3).map(|_| b.next_rows()).collect();
        assert_eq!(got, vec![vec![0, 1], vec![2, 3], vec![0, 1]]);
        assert_eq!(batches_per_epoch(5, 2, false), 3);
        assert_eq!(batches_per_epoch(5, 2, true), 2);
        assert_eq!(batches_per_epoch(4, 5, false), 1);
        assert_eq!(batches_per_epoch(4, 5, true), 0);
    }

    /// The teacher as documented, evaluated here from its definition: x [samples, inputs]
    /// drawn N(0, 1) from the seed's data stream, W^t [n_t, n_{t−1}] from layer t's teacher
    /// stream with variance 2/n_{t−1} (He) for hidden layers and 1/n_{t−1} for the head, ReLU
    /// between layers, no biases. Returns x and each sample's raw outputs.
    fn reference_teacher(
        seed: u64,
        samples: usize,
        inputs: usize,
        (depth, width): (usize, usize),
        outputs: usize,
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let mut data = init::stream(seed, DATA, 0);
        let x: Vec<Vec<f64>> = (0..samples)
            .map(|_| {
                (0..inputs)
                    .map(|_| StandardNormal.sample(&mut data))
                    .collect()
            })
            .collect();
        let mut widths = vec![inputs; depth + 1];
        widths[1..depth].fill(width);
        widths[depth] = outputs;
        let mut h = x.clone();
        for t in 1..=depth {
            let variance = if t == depth { 1.0 } else { 2.0 } / widths[t - 1] as f64;
            let mut rng = init::stream(seed, TEACHER, t);
            let w: Vec<Vec<f64>> = (0..widths[t])
                .map(|_| {
                    (0..widths[t - 1])
                        .map(|_| {
                            let z: f64 = StandardNormal.sample(&mut rng);
                            variance.sqrt() * z
                        })
                        .collect()
                })
                .collect();
            h = h
                .iter()
                .map(|row| {
                    w.iter()
                        .map(|w_o| {
                            let z: f64 = w_o.iter().zip(row).map(|(a, b)| a * b).sum();
                            if t == depth {
                                z
                            } else {
                                z.max(0.0)
                            }
                        })
                        .collect()
                })
                .collect();
        }
        (x, h)
    }

    #[test]
    fn built_in_tasks_are_the_documented_teachers_outputs() {
        // (inputs, (depth, width), outputs, samples): a deep teacher; a one-unit hidden layer,
        // whose ReLU is 0 for about half the samples, so that their outputs tie at 0 (the label
        // is then the first class, as torch.argmax gives) and the head's fan-in is 1; a single
        // linear layer; and a single target, whose variance is 0, left unscaled.
        for (inputs, teacher, outputs, samples) in [
            (5, (3, 8), 4, 32),
            (3, (2, 1), 3, 32),
            (1, (1, 6), 3, 16),
            (4, (2, 5), 1, 1),
        ] {
            let (depth, width) = teacher;
            let case = format!("{inputs} inputs, depth {depth}, width {width}, {outputs} outputs");
            let seed = 42;
            let (x, raw) = reference_teacher(seed, samples, inputs, teacher, outputs);
            let regress = teacher_data(
                &Task::Teacher { depth, width },
                samples,
                inputs,
                outputs,
                seed,
            )
            .unwrap();
            let classify = teacher_data(
                &Task::Classify { depth, width },
                samples,
                inputs,
                outputs,
                seed,
            )
            .unwrap();

            let x32: Vec<f32> = x.iter().flatten().map(|&v| v as f32).collect();
            for data in [&regress, &classify] {
                assert_eq!(
                    data.x.shape(),
                    crate::tensor::Shape::new(samples, inputs),
                    "{case}"
                );
                assert_eq!(data.x.to_f32_vec(), x32, "{case}");
            }

            // Targets: the raw outputs over their population standard deviation.
            let all: Vec<f64> = raw.iter().flatten().copied().collect();
            let n = all.len() as f64;
            let mean = all.iter().sum::<f64>() / n;
            let sd = (all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            let scale = if sd > 0.0 { 1.0 / sd } else { 1.0 };
            let Targets::Values(y) = &regress.targets else {
                panic!("{case}: a regression task has values")
            };
            assert_eq!(
                y.shape(),
                crate::tensor::Shape::new(samples, outputs),
                "{case}"
            );
            for (k, (&got, want)) in y.to_f32_vec().iter().zip(&all).enumerate() {
                let want = want * scale;
                // One rounding to f32 (half an ulp, 2^-24 relative), doubled for an f64 value
                // a few ulps of f64 from a rounding boundary; the f64 sums here and there differ
                // by ~1e-15 (the weights' scale is rounded in another order).
                let tolerance = 2f64.powi(-23) * want.abs() + 1e-12;
                assert!(
                    (got as f64 - want).abs() <= tolerance,
                    "{case}: y[{k}] = {got}, the teacher gives {want}"
                );
            }

            // Labels: the first output of each row that equals the row's maximum.
            let labels: Vec<u32> = raw
                .iter()
                .map(|row| {
                    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    row.iter().position(|&v| v == max).unwrap() as u32
                })
                .collect();
            assert_eq!(classify.targets, Targets::Labels(labels), "{case}");
        }
    }

    #[test]
    fn the_baseline_is_the_mean_square_of_the_targets_or_ln_of_the_classes() {
        let x = HostTensor::from_f32(2, 1, vec![0.0, 0.0]).unwrap();
        let values = TrainData {
            x: x.clone(),
            targets: Targets::Values(
                HostTensor::from_f32(2, 2, vec![1.0, -2.0, 3.0, 4.0]).unwrap(),
            ),
        };
        // (1 + 4 + 9 + 16) / 4, whatever the network's width.
        assert_eq!(values.baseline_loss(2), 7.5);
        assert_eq!(values.baseline_loss(7), 7.5);
        let labels = TrainData {
            x,
            targets: Targets::Labels(vec![0, 2]),
        };
        assert_eq!(labels.baseline_loss(3), 3f64.ln());
    }

    #[test]
    fn targets_must_fit_the_networks_outputs_and_two_classes_are_enough() {
        let x = HostTensor::from_f32(4, 1, vec![0.0; 4]).unwrap();
        let labelled = |labels: Vec<u32>| TrainData {
            x: x.clone(),
            targets: Targets::Labels(labels),
        };
        let refusal = |data: &TrainData, outputs| {
            data.check_outputs(outputs, "d.npz")
                .unwrap_err()
                .to_string()
        };
        // Binary classification: two classes on two outputs, or on more.
        let binary = labelled(vec![0, 1, 1, 0]);
        binary.check_outputs(2, "d.npz").unwrap();
        binary.check_outputs(5, "d.npz").unwrap();
        let e = refusal(&binary, 1);
        assert!(
            e.contains("d.npz has the label 1, but the network has 1 outputs"),
            "{e}"
        );
        let e = refusal(&labelled(vec![1; 4]), 3);
        assert!(
            e.contains("d.npz: every label is 1: cross-entropy needs at least two classes"),
            "{e}"
        );

        let values = TrainData {
            x: x.clone(),
            targets: Targets::Values(HostTensor::from_f32(4, 3, vec![0.0; 12]).unwrap()),
        };
        values.check_outputs(3, "d.npz").unwrap();
        for outputs in [2, 4] {
            let e = refusal(&values, outputs);
            assert!(
                e.contains(&format!(
                    "y of d.npz has 3 columns, but the network has {outputs} outputs"
                )),
                "{e}"
            );
        }
    }
}
