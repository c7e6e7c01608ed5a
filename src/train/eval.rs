//! Evaluation of the model being trained: the mean loss and, for classification, the accuracy
//! over the whole training set and a held-out validation set, after a step's update.
//!
//! The validation set is a file of its own (`--val-data`) or a part of the data held out before
//! training (`--val-split F`): ceil(F·N) samples, as scikit-learn's `test_size`, drawn from the
//! run's seed on a stream of its own (so the minibatch order does not move it), stratified by
//! class where the targets are labels so that every class is in both parts. The training rows
//! keep their order in the data set.
//!
//! An evaluation is the training forward pass alone, in the run's precision, on the run's
//! backend, with the model's weights as the forward uses them (the f16 or bf16 copy in mixed
//! precision), in chunks of at most the batch's rows; FP8 quantises with the scales the next
//! training step would use and leaves the scaling state as it was. The loss is the run's
//! (MSE over every output, cross-entropy over samples) from the loss kernel's row losses,
//! summed in f64 in row order, so a chunking changes nothing but the matmul's rounding; the
//! accuracy is the fraction of rows whose first largest logit (torch.argmax) is the label.

use std::sync::Arc;

use rand::seq::SliceRandom;

use super::data::{Targets, TrainData};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::init;
use crate::network::fp8::{Fp8Pass, Fp8State};
use crate::network::steps::{self, Parameters};
use crate::network::NetworkConfig;
use crate::ops::loss::LossKind;
use crate::precision::Precision;
use crate::tensor::{HostTensor, Shape};

/// Seed purpose of the validation split's draws (next to data.rs's).
const SPLIT: u64 = 14;

/// Where the validation set comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Validation {
    /// No validation set.
    #[default]
    None,
    /// A fraction F (0 < F < 1) of the data set held out: ceil(F·N) samples.
    Split(f64),
    /// x and y of a file of their own (`--val-data`), read as `--data` is.
    Data {
        source: String,
        data: Arc<TrainData>,
    },
}

/// What a run evaluates, and when.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub validation: Validation,
    /// Evaluate after every this many steps, and after the last; `None`: after the last step
    /// only where there is a validation set, never without one.
    pub every: Option<usize>,
}

/// The evaluation in a run's JSON config (absent without one).
#[derive(serde::Serialize)]
pub struct EvaluationJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_split: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_data_file: Option<&'a str>,
    /// Samples in the validation set (0 without one).
    pub val_samples: usize,
    /// `null`: after the last step only.
    pub eval_every: Option<usize>,
}

impl Evaluation {
    /// Whether the run evaluates at all.
    pub fn is_on(&self) -> bool {
        self.validation != Validation::None || self.every.is_some()
    }

    /// The samples a split holds out of a data set of `samples`; 0 without a split.
    pub fn held_out(&self, samples: usize) -> usize {
        match self.validation {
            Validation::Split(fraction) => val_size(samples, fraction),
            _ => 0,
        }
    }

    /// Whether to evaluate after `step`; `last`: the run stops after it.
    pub fn due(&self, step: usize, last: bool) -> bool {
        self.is_on() && (last || self.every.is_some_and(|k| step.is_multiple_of(k)))
    }

    pub fn json(&self, samples: usize) -> Option<EvaluationJson<'_>> {
        self.is_on().then(|| EvaluationJson {
            val_split: match self.validation {
                Validation::Split(f) => Some(f),
                _ => None,
            },
            val_data_file: match &self.validation {
                Validation::Data { source, .. } => Some(source.as_str()),
                _ => None,
            },
            val_samples: match &self.validation {
                Validation::None => 0,
                Validation::Split(f) => val_size(samples, *f),
                Validation::Data { data, .. } => data.samples(),
            },
            eval_every: self.every,
        })
    }

    /// Everything checkable before the data is drawn: `--eval-every` at least 1, a split's
    /// fraction and sizes, and a validation file against the model (`inputs`, `outputs`) and
    /// the training data (`training`: a file's; `None`: a built-in task, whose teacher no
    /// file can match). A file's stratified split is checked whole here, a built-in task's
    /// once its labels are drawn.
    pub fn validate(
        &self,
        samples: usize,
        inputs: usize,
        outputs: usize,
        training: Option<&TrainData>,
    ) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.every == Some(0) {
            return bad("--eval-every must be at least 1 step".into());
        }
        match &self.validation {
            Validation::None => Ok(()),
            Validation::Split(fraction) => {
                check_fraction(*fraction)?;
                let held = val_size(samples, *fraction);
                if held >= samples {
                    return bad(format!(
                        "--val-split {fraction} holds out {held} of the {samples} samples, \
                         leaving none to train on"
                    ));
                }
                match training {
                    Some(data) => split_rows(data, *fraction, 0).map(|_| ()),
                    None => Ok(()),
                }
            }
            Validation::Data { source, data } => {
                let Some(training) = training else {
                    return bad(
                        "--val-data needs --data: a built-in task's targets come from a teacher \
                         drawn from the seed, which no file holds; hold out part of its samples \
                         with --val-split"
                            .into(),
                    );
                };
                if data.x.shape().cols != inputs {
                    return bad(format!(
                        "x of {source} has {} columns, but the network takes {inputs} inputs",
                        data.x.shape().cols
                    ));
                }
                match (&training.targets, &data.targets) {
                    (Targets::Labels(_), Targets::Labels(labels)) => {
                        match labels.iter().find(|&&l| l as usize >= outputs) {
                            Some(l) => bad(format!(
                                "{source} has the label {l}, but the network has {outputs} \
                                 outputs (classes 0..{})",
                                outputs - 1
                            )),
                            None => Ok(()),
                        }
                    }
                    (Targets::Values(_), Targets::Values(y)) => {
                        if y.shape().cols != outputs {
                            return bad(format!(
                                "y of {source} has {} columns, but the network has {outputs} \
                                 outputs",
                                y.shape().cols
                            ));
                        }
                        Ok(())
                    }
                    (Targets::Labels(_), Targets::Values(_)) => bad(format!(
                        "y of {source} holds floats, but the training data's y holds integer \
                         labels: validation needs the same kind of targets"
                    )),
                    (Targets::Values(_), Targets::Labels(_)) => bad(format!(
                        "y of {source} holds integer labels, but the training data's y holds \
                         floats: validation needs the same kind of targets"
                    )),
                }
            }
        }
    }
}

/// A split's fraction: finite, strictly between 0 and 1.
pub fn check_fraction(fraction: f64) -> Result<()> {
    if fraction.is_finite() && fraction > 0.0 && fraction < 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "--val-split {fraction}: expected a fraction strictly between 0 and 1"
        )))
    }
}

/// The validation samples of a split: ceil(fraction·samples), as scikit-learn's
/// `train_test_split(test_size=fraction)` computes them (in f64).
pub fn val_size(samples: usize, fraction: f64) -> usize {
    (fraction * samples as f64).ceil() as usize
}

/// The (training, validation) rows of `data` split by `fraction` from `seed`, each in
/// ascending order. Labels: stratified, each class's share of the validation set its share of
/// the data to within one sample and at least one sample of every class in each part
/// (refused where that cannot be); values: a random ceil(fraction·N) of the rows.
pub fn split_rows(data: &TrainData, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    check_fraction(fraction)?;
    let n = data.samples();
    let held = val_size(n, fraction);
    if held >= n {
        return Err(Error::InvalidArgument(format!(
            "--val-split {fraction} holds out {held} of the {n} samples, leaving none to train on"
        )));
    }
    let mut val = match &data.targets {
        Targets::Values(_) => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut init::stream(seed, SPLIT, 0));
            order.truncate(held);
            order
        }
        Targets::Labels(labels) => {
            let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
            let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes];
            for (row, &l) in labels.iter().enumerate() {
                members[l as usize].push(row);
            }
            let present: Vec<usize> = (0..classes).filter(|&c| !members[c].is_empty()).collect();
            let counts: Vec<usize> = present.iter().map(|&c| members[c].len()).collect();
            let taken = stratify(&counts, held).map_err(|why| {
                Error::InvalidArgument(format!(
                    "--val-split {fraction} of {n} samples ({held} held out) cannot be \
                     stratified: {why}"
                ))
            })?;
            let mut val = Vec::with_capacity(held);
            for (&c, &k) in present.iter().zip(&taken) {
                let mut rows = members[c].clone();
                rows.shuffle(&mut init::stream(seed, SPLIT, c + 1));
                val.extend_from_slice(&rows[..k]);
            }
            val
        }
    };
    val.sort_unstable();
    let mut in_val = vec![false; n];
    for &r in &val {
        in_val[r] = true;
    }
    let train = (0..n).filter(|&r| !in_val[r]).collect();
    Ok((train, val))
}

/// How many of each class (`counts`, each present) go to a validation set of `held`: the
/// largest-remainder rounding of held·count/N, each between 1 and count − 1, ties to the
/// lower class. Refused, with the reason, where no such allocation exists.
pub fn stratify(counts: &[usize], held: usize) -> std::result::Result<Vec<usize>, String> {
    let n: usize = counts.iter().sum();
    let classes = counts.len();
    if let Some((c, _)) = counts.iter().enumerate().find(|(_, &k)| k < 2) {
        return Err(format!(
            "a class (the {}th present) has a single sample, which cannot be in both parts",
            c + 1
        ));
    }
    if held < classes || n - held < classes {
        return Err(format!(
            "each part needs at least one sample of each of the {classes} classes, but the \
             parts hold {} and {held}",
            n - held
        ));
    }
    let ideal: Vec<f64> = counts
        .iter()
        .map(|&k| held as f64 * k as f64 / n as f64)
        .collect();
    let mut taken: Vec<usize> = counts
        .iter()
        .zip(&ideal)
        .map(|(&k, &x)| (x.floor() as usize).clamp(1, k - 1))
        .collect();
    // Move one sample at a time where the rounding is furthest from the ideal share.
    loop {
        let total: usize = taken.iter().sum();
        let pick = |grow: bool| {
            (0..classes)
                .filter(|&c| {
                    if grow {
                        taken[c] < counts[c] - 1
                    } else {
                        taken[c] > 1
                    }
                })
                .map(|c| (c, ideal[c] - taken[c] as f64))
                .fold(None, |best: Option<(usize, f64)>, (c, gap)| match best {
                    Some((_, g)) if (grow && gap <= g) || (!grow && gap >= g) => best,
                    _ => Some((c, gap)),
                })
                .map(|(c, _)| c)
        };
        if total < held {
            let c = pick(true).expect("held ≤ N − classes leaves room");
            taken[c] += 1;
        } else if total > held {
            let c = pick(false).expect("held ≥ classes leaves room");
            taken[c] -= 1;
        } else {
            return Ok(taken);
        }
    }
}

/// One evaluation: the model after `step`'s update on the whole training set and the
/// validation set. Accuracies are `None` for regression; the validation's without one.
/// NaN (JSON null) where the model's outputs hold a NaN.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    pub train_loss: f64,
    pub train_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

/// The rows a `--val-split` held out, so that its split can be rebuilt: the training rows
/// are the others, in their order in the data set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SplitRecord {
    pub train_samples: usize,
    pub val_samples: usize,
    pub val_rows: Vec<usize>,
}

/// A run's evaluation sets, split off the data before training.
pub struct Evaluator {
    evaluation: Evaluation,
    training: Arc<TrainData>,
    validation: Option<Arc<TrainData>>,
    split: Option<SplitRecord>,
}

impl Evaluator {
    /// Splits `data` as `evaluation` asks (from `seed`); the training set is what is left.
    pub fn new(evaluation: &Evaluation, data: Arc<TrainData>, seed: u64) -> Result<Self> {
        let (training, validation, split) = match &evaluation.validation {
            Validation::None => (data, None, None),
            Validation::Data { data: val, .. } => (data, Some(Arc::clone(val)), None),
            Validation::Split(fraction) => {
                let (train_rows, val_rows) = split_rows(&data, *fraction, seed)?;
                let split = SplitRecord {
                    train_samples: train_rows.len(),
                    val_samples: val_rows.len(),
                    val_rows: val_rows.clone(),
                };
                (
                    Arc::new(data.subset(&train_rows)?),
                    Some(Arc::new(data.subset(&val_rows)?)),
                    Some(split),
                )
            }
        };
        Ok(Evaluator {
            evaluation: evaluation.clone(),
            training,
            validation,
            split,
        })
    }

    /// The data the run trains on.
    pub fn training(&self) -> &Arc<TrainData> {
        &self.training
    }

    pub fn split(&self) -> Option<SplitRecord> {
        self.split.clone()
    }

    /// Whether to evaluate after `step`; `last`: the run stops after it.
    pub fn due(&self, step: usize, last: bool) -> bool {
        self.evaluation.due(step, last)
    }

    /// Evaluates the model in `params` (and FP8's scales in `fp8`) on the training and
    /// validation sets. The ones column of `params` is the training batch's again after.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate<B: Backend>(
        &self,
        backend: &B,
        net: &NetworkConfig,
        precision: Precision,
        kind: LossKind,
        params: &mut Parameters<B::Tensor>,
        fp8: Option<&Fp8State>,
        step: usize,
    ) -> Result<EvalRecord> {
        let kept = params.replace_ones(None);
        let mut on =
            |set: &TrainData| evaluate_set(backend, net, precision, kind, params, fp8, set);
        let result = on(&self.training).and_then(|train| {
            let val = self.validation.as_deref().map(&mut on).transpose()?;
            Ok((train, val))
        });
        params.replace_ones(kept);
        let ((train_loss, train_accuracy), val) = result?;
        Ok(EvalRecord {
            step,
            train_loss,
            train_accuracy,
            val_loss: val.map(|(loss, _)| loss),
            val_accuracy: val.and_then(|(_, accuracy)| accuracy),
        })
    }
}

/// The mean loss over `set` and, for cross-entropy, the accuracy, in chunks of at most
/// `net.batch` rows. `params` must have no ones column, or one this function put there.
fn evaluate_set<B: Backend>(
    backend: &B,
    net: &NetworkConfig,
    precision: Precision,
    kind: LossKind,
    params: &mut Parameters<B::Tensor>,
    fp8: Option<&Fp8State>,
    set: &TrainData,
) -> Result<(f64, Option<f64>)> {
    let storage = precision.storage();
    let n = set.samples();
    let outputs = net.widths[net.depth];
    let mut loss_sum = 0.0f64;
    let mut correct = 0usize;
    let mut nan_output = false;
    let mut ones_rows = 0;
    for start in (0..n).step_by(net.batch.max(1)) {
        let rows: Vec<usize> = (start..(start + net.batch).min(n)).collect();
        let (x, y) = set.gather(&rows)?;
        let x = backend.upload(&x.cast(storage))?;
        let y = backend.upload(&y)?;
        if net.has_biases() && rows.len() != ones_rows {
            let ones = HostTensor::from_f32_as(storage, rows.len(), 1, &vec![1.0; rows.len()])?;
            params.replace_ones(Some(backend.upload(&ones)?));
            ones_rows = rows.len();
        }
        // A copy of FP8's state: the scales the next step would use, left as they are.
        let mut scales = fp8.cloned();
        let mut pass = scales.as_mut().map(|s| Fp8Pass::new(s, precision));
        let (_kept_for_backward, output) = steps::forward(
            backend,
            net,
            precision,
            params,
            &x,
            &mut pass,
            &mut |_, _, _| Ok(()),
        )?;
        drop(pass);
        // The loss kernel's row losses, exactly as training's; its gradient goes unused.
        let (_gradient, row_losses) = backend.loss(kind, &output, &y, 1.0, precision)?;
        for l in backend.download(&row_losses)?.to_f32_vec() {
            loss_sum += l as f64;
        }
        if let Targets::Labels(labels) = &set.targets {
            let logits = backend.download(&output)?.to_f32_vec();
            for (row, values) in rows.iter().zip(logits.chunks(outputs)) {
                if values.iter().any(|v| v.is_nan()) {
                    nan_output = true;
                }
                if first_argmax(values) == labels[*row] as usize {
                    correct += 1;
                }
            }
        }
    }
    let loss = kind.mean_loss(loss_sum, Shape::new(n, outputs));
    let accuracy = match set.targets {
        Targets::Labels(_) if nan_output => Some(f64::NAN),
        Targets::Labels(_) => Some(correct as f64 / n as f64),
        Targets::Values(_) => None,
    };
    Ok((loss, accuracy))
}

/// The index of the first largest value, as torch.argmax picks among ties.
pub fn first_argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(labels: Vec<u32>) -> TrainData {
        let n = labels.len();
        TrainData {
            x: HostTensor::from_f32(n, 1, (0..n).map(|i| i as f32).collect()).unwrap(),
            targets: Targets::Labels(labels),
        }
    }

    /// scikit-learn's sizes: test ceil(F·N), train the rest.
    #[test]
    fn a_split_holds_out_ceil_of_the_fraction_as_scikit_learn_does() {
        assert_eq!(val_size(97, 0.25), 25);
        assert_eq!(val_size(100, 0.25), 25);
        assert_eq!(val_size(10, 0.01), 1);
        assert_eq!(val_size(3, 0.5), 2);
    }

    /// Stratified: every class in both parts, each class's share within one sample of
    /// F·count, the same rows from the same seed and others from another, and the training
    /// rows the rest in order.
    #[test]
    fn a_labelled_split_is_stratified_and_drawn_from_the_seed() {
        // Classes of 50, 30 and 17 samples.
        let labels: Vec<u32> = [(0, 50), (1, 30), (2, 17)]
            .iter()
            .flat_map(|&(c, k)| std::iter::repeat_n(c, k))
            .collect();
        let counts: Vec<usize> = (0..3)
            .map(|c| labels.iter().filter(|&&l| l == c).count())
            .collect();
        let data = labelled(labels.clone());
        let (train, val) = split_rows(&data, 0.25, 7).unwrap();
        assert_eq!(val.len(), 25);
        assert_eq!(train.len() + val.len(), 97);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        for c in 0..3u32 {
            let k = val.iter().filter(|&&r| labels[r] == c).count();
            let share = 25.0 * counts[c as usize] as f64 / 97.0;
            assert!((k as f64 - share).abs() < 1.0, "class {c}: {k} vs {share}");
            assert!(train.iter().any(|&r| labels[r] == c));
        }
        assert_eq!(split_rows(&data, 0.25, 7).unwrap().1, val);
        assert_ne!(split_rows(&data, 0.25, 8).unwrap().1, val);
        // A small split still holds every class.
        let (_, small) = split_rows(&data, 0.03, 7).unwrap();
        assert_eq!(small.len(), 3);
        for c in 0..3u32 {
            assert_eq!(small.iter().filter(|&&r| labels[r] == c).count(), 1);
        }
    }

    #[test]
    fn a_split_that_cannot_hold_every_class_in_both_parts_is_refused() {
        let e = split_rows(&labelled(vec![0, 0, 1, 1, 2, 2, 2]), 0.2, 0).unwrap_err();
        assert!(
            e.to_string()
                .contains("at least one sample of each of the 3 classes"),
            "{e}"
        );
        let e = split_rows(&labelled(vec![0, 0, 0, 1]), 0.5, 0).unwrap_err();
        assert!(e.to_string().contains("single sample"), "{e}");
        let e = split_rows(&labelled(vec![0, 1, 0, 1]), 0.9, 0).unwrap_err();
        assert!(e.to_string().contains("leaving none to train on"), "{e}");
    }

    #[test]
    fn largest_remainders_sum_to_the_held_out_size() {
        for held in 3..=20 {
            let taken = stratify(&[10, 7, 6], held).unwrap();
            assert_eq!(taken.iter().sum::<usize>(), held);
            for (k, c) in taken.iter().zip([10, 7, 6]) {
                let share = held as f64 * c as f64 / 23.0;
                assert!(*k >= 1 && *k < c && (*k as f64 - share).abs() < 1.0 + 1e-12);
            }
        }
    }

    #[test]
    fn argmax_takes_the_first_of_equal_largest_values() {
        assert_eq!(first_argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(first_argmax(&[5.0, 5.0]), 0);
        assert_eq!(first_argmax(&[-1.0, -0.5]), 1);
    }
}
