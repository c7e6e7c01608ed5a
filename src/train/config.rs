//! What one training run is, and everything checked before it allocates.

use super::data::{batches_per_epoch, Task};
use super::eval::{Evaluation, EvaluationJson};
use super::scaler::LossScale;
use super::schedule::LrSchedule;
use crate::backend::Backend;
use crate::checked::{f32_for, shown, Use};
use crate::error::{Error, Result};
use crate::network::config::NetworkJson;
use crate::network::memory::MemoryLimits;
use crate::network::NetworkConfig;
use crate::ops::loss::LossKind;
use crate::ops::optimizer::OptimizerConfig;
use crate::precision::Precision;

/// Everything that defines one training run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The model: depth, widths, activation, initialiser, biases, residual connections,
    /// clipping and seed; `batch` is the minibatch size.
    pub network: NetworkConfig,
    pub task: Task,
    /// Samples in the data set of a built-in task.
    pub samples: usize,
    pub shuffle: bool,
    /// Leave out each epoch's short last batch (DataLoader's `drop_last`); without it an
    /// epoch ends with a batch of the remaining samples.
    pub drop_last: bool,
    /// Optimizer steps: batches taken epoch after epoch, an epoch being
    /// `steps_per_epoch()` of them (`--epochs E` sets E of those).
    pub steps: usize,
    /// Keep the full statistics records every this many steps (and at the first and last);
    /// 0: at the first and last only.
    pub record_every: usize,
    pub optimizer: OptimizerConfig,
    /// The base learning rate: every step's without a schedule.
    pub lr: f64,
    /// torch.optim.lr_scheduler's rates from `lr`, one per step; `None`: `lr` throughout.
    pub lr_schedule: Option<LrSchedule>,
    pub precision: Precision,
    pub loss_scale: LossScale,
    /// The validation set and when to evaluate (`eval.rs`); the default: no evaluation.
    pub evaluation: Evaluation,
}

/// A training run's JSON: its fields, with the network as it ran (no `run` probe loss) and the
/// loss its task trains.
#[derive(serde::Serialize)]
struct TrainConfigJson<'a> {
    network: NetworkJson<'a>,
    task: &'a Task,
    loss: LossKind,
    samples: usize,
    shuffle: bool,
    drop_last: bool,
    steps_per_epoch: usize,
    steps: usize,
    record_every: usize,
    optimizer: &'a OptimizerConfig,
    lr: f64,
    /// Every argument written out, a cosine's default T_MAX resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    lr_schedule: Option<LrSchedule>,
    precision: &'static str,
    loss_scale: LossScale,
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluation: Option<EvaluationJson<'a>>,
}

impl serde::Serialize for TrainConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        TrainConfigJson {
            network: self.network.json(None),
            task: &self.task,
            loss: self.task.loss(),
            samples: self.data_samples(),
            shuffle: self.shuffle,
            drop_last: self.drop_last,
            steps_per_epoch: self.steps_per_epoch(),
            steps: self.steps,
            record_every: self.record_every,
            optimizer: &self.optimizer,
            lr: self.lr,
            lr_schedule: self.lr_schedule.as_ref().map(|s| s.resolved(self.steps)),
            precision: self.precision.name(),
            loss_scale: self.loss_scale,
            evaluation: self.evaluation.json(self.data_samples()),
        }
        .serialize(s)
    }
}

impl TrainConfig {
    /// Whether `step` records every layer's full statistics: the first and the last, and
    /// every `record_every`-th.
    pub fn records_in_full(&self, step: usize) -> bool {
        step == 1
            || step == self.steps
            // is_multiple_of(0) holds for step 0 only: record_every = 0 adds no steps.
            || step.is_multiple_of(self.record_every)
    }

    /// Everything checked before anything is drawn or allocated.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        let net = &self.network;
        net.validate()?;
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if self.data_samples() == 0 {
            return bad("the data set needs at least one sample".into());
        }
        let training = match &self.task {
            Task::File { data, .. } => Some(&**data),
            _ => None,
        };
        self.evaluation.validate(
            self.data_samples(),
            net.widths[0],
            net.widths[net.depth],
            training,
        )?;
        // A split trains on what it leaves.
        let samples = self.train_samples();
        let of_the_data = if samples < self.data_samples() {
            "training samples --val-split leaves"
        } else {
            "samples of the data set"
        };
        if net.batch > samples && self.drop_last {
            return bad(format!(
                "--drop-last with --batch {} larger than the {samples} {of_the_data} \
                 leaves no batch to train on",
                net.batch
            ));
        }
        if net.batch > samples {
            return bad(format!(
                "--batch {} exceeds the {samples} {of_the_data}",
                net.batch
            ));
        }
        self.optimizer.validate(self.lr)?;
        if let Some(schedule) = &self.lr_schedule {
            schedule.validate()?;
            // A rate the schedule reaches must be an f32 the kernel can use; one that
            // underflows to 0 is what PyTorch's kernels make of it too.
            if let Some(r) = self
                .rates()
                .into_iter()
                .find(|r| !(r.is_finite() && (*r as f32).is_finite() && *r >= 0.0))
            {
                return bad(format!(
                    "--lr-schedule {schedule} from --lr {} reaches a rate of {}, beyond f32's range",
                    shown(self.lr),
                    shown(r)
                ));
            }
        }
        match self.loss_scale {
            LossScale::Dynamic(d) => d.validate()?,
            LossScale::Static { scale } => {
                f32_for("--loss-scale static:S", scale, Use::Divisor)?;
            }
            _ => {}
        }
        if self.precision == Precision::F16 && self.loss_scale != LossScale::None {
            // GradScaler refuses too ("Attempting to unscale FP16 gradients"): unscaling in
            // f16 would lose what the scale saved. Mixed precision is f16acc32.
            return bad(
                "loss scaling needs f32 master weights: use --precision f16acc32 (mixed \
                 precision); pure f16 trains without a loss scale, as PyTorch's GradScaler \
                 refuses FP16 gradients"
                    .into(),
            );
        }
        match &self.task {
            Task::Teacher { depth, width } | Task::Classify { depth, width } => {
                if *depth == 0 || *width == 0 {
                    return bad("the teacher needs a depth and width of at least 1".into());
                }
                if matches!(self.task, Task::Classify { .. }) && net.widths[net.depth] < 2 {
                    return bad("--task classify needs at least 2 outputs (classes)".into());
                }
            }
            Task::File { source, data } => {
                if data.x.shape().cols != net.widths[0] {
                    return bad(format!(
                        "x of {source} has {} columns, but the network takes {} inputs",
                        data.x.shape().cols,
                        net.widths[0]
                    ));
                }
                data.check_outputs(net.widths[net.depth], source)?;
            }
        }
        Ok(())
    }

    /// The learning rate of each step, 1 to `steps`.
    pub fn rates(&self) -> Vec<f64> {
        match &self.lr_schedule {
            Some(schedule) => schedule.rates(self.lr, self.steps),
            None => vec![self.lr; self.steps],
        }
    }

    /// Optimizer steps per pass over the training data: ceil(samples / batch), or floor with
    /// `drop_last`.
    pub fn steps_per_epoch(&self) -> usize {
        batches_per_epoch(self.train_samples(), self.network.batch, self.drop_last)
    }

    /// Samples trained on: the data set's, less those a `--val-split` holds out.
    pub fn train_samples(&self) -> usize {
        let all = self.data_samples();
        all - self.evaluation.held_out(all).min(all)
    }

    /// Samples in the data set.
    pub fn data_samples(&self) -> usize {
        match &self.task {
            Task::File { data, .. } => data.samples(),
            _ => self.samples,
        }
    }
}

/// Checks `config` against `backend` and memory, allocating nothing.
pub fn check<B: Backend>(backend: &B, config: &TrainConfig) -> Result<()> {
    config.validate()?;
    backend.require(config.precision)?;
    MemoryLimits::new(
        backend.max_tensor_len(config.precision.storage()),
        backend.device_memory_is_host(),
        config.network.max_memory_bytes,
    )
    .check(&config.memory_estimate(backend.tensors_on_host()))
}
