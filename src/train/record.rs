//! What a training run found, step by step and layer by layer, and its summary.

use super::eval::{EvalRecord, SplitRecord};
use crate::backend::BackendInfo;
use crate::network::fp8::Fp8Record;
use crate::stats::StatsRecord;

/// One layer at one step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerStep {
    pub layer: usize,
    /// ‖∂l/∂W^t‖ of the unscaled gradient (before clipping).
    pub grad_norm: f64,
    /// ‖W^t‖ after the step (the master weights in mixed precision).
    pub weight_norm: f64,
    /// ‖ΔW^t‖ / ‖W^t‖, with W^t before the step; 0 on a skipped step.
    pub update_ratio: f64,
    /// Fractions of ∂l/∂W^t's values, as backward stored them (scaled, in the model's
    /// storage type), that are zero, subnormal, or inf or NaN.
    pub grad_zero_fraction: f64,
    pub grad_subnormal_fraction: f64,
    pub grad_non_finite_fraction: f64,
    /// The fraction of the layer's weights this step left exactly as they were (1 on a
    /// skipped step): in pure bf16 or f16, updates below half a unit in the last place of the
    /// weight are lost.
    pub unchanged_fraction: f64,
}

/// The full statistics records of one layer, kept every `--record-every` steps.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerSnapshot {
    pub layer: usize,
    pub pre_activation: StatsRecord,
    pub activation: StatsRecord,
    /// ∂l/∂H^t as backward stored it (times the loss scale).
    pub grad_activation: StatsRecord,
    /// ∂l/∂W^t as backward stored it (times the loss scale).
    pub grad_weight: StatsRecord,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub step: usize,
    /// The pass over the data this step's batch belongs to, from 1.
    pub epoch: usize,
    /// Samples in this step's batch: `batch`, or fewer in an epoch's short last batch.
    pub batch: usize,
    /// The mean loss of this step's minibatch (over its own samples, short or not), before the update (unscaled).
    pub loss: f64,
    /// The factor the loss was multiplied by for backward (1 without loss scaling).
    pub loss_scale: f64,
    /// The learning rate of this step (the schedule's, or the run's `lr`), in f64 as
    /// PyTorch's param_group holds it; the optimizer's kernel reads it rounded to f32.
    pub lr: f64,
    /// Whether the update was skipped because a gradient held an inf or NaN.
    pub skipped: bool,
    pub layers: Vec<LayerStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Vec<LayerSnapshot>>,
    /// In FP8, what quantising each layer's matmul operands did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fp8: Vec<Fp8Record>,
    /// The evaluation after this step's update, where one was due (`--eval-every`, the last
    /// step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalRecord>,
    /// Where this step's time went: host seconds on the CPU backend, device seconds of each
    /// phase's kernels on a GPU with timestamp queries; `None` (`null`) on a GPU without,
    /// whose work runs asynchronously, where a host clock would not measure it. Timing, not a
    /// result.
    #[serde(default)]
    pub time: Option<StepTime>,
}

/// Seconds of one step's phases: on the CPU backend the host's, where every operation
/// finishes before it returns, so that the host clock measures the work itself; on a GPU with
/// timestamp queries the device's, summed over each phase's compute passes (`Backend::phase`).
/// The parts are disjoint and together at most the step's time (what is left is the
/// bookkeeping between them: the batch's rows, building the record; on a GPU, copies and the
/// device's idle time too).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepTime {
    /// Gathering and uploading the batch (where it changes), forward and the loss.
    pub forward_s: f64,
    /// Backward: every layer's gradients (and the gradient clipping by value of `run`).
    pub backward_s: f64,
    /// The optimizer's update of every parameter; 0 on a skipped step.
    pub optimizer_s: f64,
    /// The records: every gradient's census (the full record on `--record-every` steps),
    /// the loss's, and the census of every update and weight after the step.
    pub records_s: f64,
}

impl StepTime {
    /// The phases of several steps added up.
    pub fn total<'a>(times: impl IntoIterator<Item = &'a StepTime>) -> StepTime {
        times
            .into_iter()
            .fold(StepTime::default(), |a, t| StepTime {
                forward_s: a.forward_s + t.forward_s,
                backward_s: a.backward_s + t.backward_s,
                optimizer_s: a.optimizer_s + t.optimizer_s,
                records_s: a.records_s + t.records_s,
            })
    }

    pub fn sum(&self) -> f64 {
        self.forward_s + self.backward_s + self.optimizer_s + self.records_s
    }
}

/// A run in one line.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainSummary {
    /// The loss of a model that ignores its input: mean(y²) of the data set for MSE (its
    /// output zero), ln(classes) for cross-entropy (its logits equal). A run that ends
    /// below it has learned something about the task.
    pub baseline_loss: f64,
    pub start_loss: f64,
    pub final_loss: f64,
    pub min_loss: f64,
    /// The first step whose loss was inf or NaN; the run stops there.
    pub diverged_at: Option<usize>,
    pub steps_run: usize,
    pub skipped_steps: usize,
    pub final_loss_scale: f64,
    /// The mean of ‖ΔW‖/‖W‖ over the applied steps, per layer (index 0 is layer 1).
    pub mean_update_ratio: Vec<f64>,
    /// Host seconds from the start of the first step to the end of the last, each step
    /// ending after the device finished it (its records read back); the progress callback
    /// between steps included, building the model and reading back its weights not. Timing,
    /// not a result: it differs from one run of the same configuration to the next.
    pub wall_seconds: f64,
    /// The mean host seconds of one step (forward, loss, backward, optimizer step and the
    /// reads of their records), the progress callback not included: at most
    /// `wall_seconds / steps_run`.
    pub seconds_per_step: f64,
    /// The steps' phases added up ([`StepTime`]): `null` where the steps' are (on a GPU
    /// without timestamp queries).
    pub time: Option<StepTime>,
    /// The evaluation after the last step; `null` for a run that evaluates nothing.
    pub final_eval: Option<EvalRecord>,
}

impl TrainSummary {
    /// Whether the run ended finite and below `fraction` of the baseline loss.
    pub fn trained_below(&self, fraction: f64) -> bool {
        self.diverged_at.is_none() && self.final_loss < fraction * self.baseline_loss
    }

    /// Mean update ratio of the first, middle and last layers.
    pub fn update_ratios_first_middle_last(&self) -> [f64; 3] {
        let r = &self.mean_update_ratio;
        let n = r.len();
        [r[0], r[n.saturating_sub(1) / 2], r[n - 1]]
    }
}

/// One pass over the data.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochRecord {
    /// From 1.
    pub epoch: usize,
    /// The steps of this epoch that ran (fewer than an epoch's in a run that stopped inside
    /// it).
    pub steps: usize,
    /// The mean of those steps' losses, as a PyTorch loop's `running_loss / len(loader)`
    /// gives it (each batch's mean counts once, a short batch's too).
    pub mean_loss: f64,
}

impl EpochRecord {
    /// The epochs of `steps`, in order.
    pub fn of(steps: &[StepRecord]) -> Vec<EpochRecord> {
        let mut epochs: Vec<EpochRecord> = Vec::new();
        for s in steps {
            match epochs.last_mut() {
                Some(e) if e.epoch == s.epoch => {
                    e.steps += 1;
                    e.mean_loss += s.loss;
                }
                _ => epochs.push(EpochRecord {
                    epoch: s.epoch,
                    steps: 1,
                    mean_loss: s.loss,
                }),
            }
        }
        for e in &mut epochs {
            e.mean_loss /= e.steps as f64;
        }
        epochs
    }
}

/// One training run: what it was, its summary and every step.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainRun {
    pub label: String,
    pub config: super::config::TrainConfig,
    pub summary: TrainSummary,
    /// The rows a `--val-split` held out for validation (the others trained, in order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitRecord>,
    /// The mean loss of each epoch.
    pub epochs: Vec<EpochRecord>,
    pub steps: Vec<StepRecord>,
}

/// Every run of one `gradstab train`, with the device they ran on.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainReport {
    /// gradstab's version, as in `gradstab run`'s JSON.
    pub version: String,
    pub preset: Option<String>,
    /// The preset's claim in one line.
    pub conclusion: Option<String>,
    /// The claim's parts, each checked against these runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<Claim>,
    pub device: BackendInfo,
    pub runs: Vec<TrainRun>,
}

/// One checkable part of a preset's claim, and what these runs measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Claim {
    pub claim: String,
    pub holds: bool,
    pub measured: String,
}
