//! What one point found: the few numbers a phase diagram plots, taken from the full report of
//! its run or training (which a sweep does not keep: a thousand reports would be gigabytes).

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::report::run::RunReport;
use crate::train::record::TrainReport;

/// The outcome of a `run` point: where the passes first crossed a format's edge, and how much
/// gradient reaches the bottom, measured and as the mean-field theory predicts.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    pub precision: String,
    /// E[(∂l/∂H^0)²] / E[(∂l/∂H^d)²] measured.
    pub grad_ratio: f64,
    /// log10 of `grad_ratio` (what a diagram colours: the ratio spans hundreds of decades).
    pub log10_grad_ratio: f64,
    /// The same ratio as the theory predicts it for this network.
    pub theory_grad_ratio: f64,
    pub log10_theory_grad_ratio: f64,
    pub first_nonfinite_forward: Option<usize>,
    pub first_nonfinite_backward: Option<usize>,
    pub first_subnormal: Option<usize>,
    pub first_subnormal_backward: Option<usize>,
    pub first_all_zero_grad: Option<usize>,
}

/// The outcome of a `train` point: its losses, whether it diverged, and its last evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct TrainOutcome {
    pub precision: String,
    /// The loss of a model that ignores its input (outputs zero for MSE, equal logits for
    /// cross-entropy): a run that ends above it learned nothing.
    pub baseline_loss: f64,
    pub start_loss: f64,
    pub final_loss: f64,
    /// The lowest loss of any step.
    pub min_loss: f64,
    /// final_loss / baseline_loss.
    pub final_loss_ratio: f64,
    pub diverged: bool,
    pub diverged_at: Option<usize>,
    pub steps_run: usize,
    pub skipped_steps: usize,
    pub train_loss: Option<f64>,
    pub train_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

/// Refuses a point whose flags make other than one run (a list of precisions or learning
/// rates): checked before a sweep starts, and again on each report.
pub fn check_one_run(runs: usize, command: &str) -> Result<()> {
    match runs {
        1 => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "a sweep point is one {command}, but its flags make {runs} (a list of precisions or \
             learning rates?): put the list on an axis instead"
        ))),
    }
}

fn one<'a, T>(runs: &'a [T], command: &str) -> Result<&'a T> {
    check_one_run(runs.len(), command)?;
    Ok(&runs[0])
}

/// The outcome of a `run` point, and its configuration as the report writes it.
pub fn of_run(report: &RunReport) -> Result<(Value, RunOutcome)> {
    let run = one(&report.runs, "run")?;
    let summary = &run.record.summary;
    let layers = &run.record.layers;
    let theory = match (layers.first(), layers.last()) {
        (Some(bottom), Some(top)) => {
            bottom.theory.grad_second_moment / top.theory.grad_second_moment
        }
        _ => f64::NAN,
    };
    let config =
        serde_json::to_value(&run.config).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok((
        config,
        RunOutcome {
            precision: run.record.precision.clone(),
            grad_ratio: summary.grad_second_moment_ratio,
            log10_grad_ratio: summary.grad_second_moment_ratio.log10(),
            theory_grad_ratio: theory,
            log10_theory_grad_ratio: theory.log10(),
            first_nonfinite_forward: summary.first_nonfinite_forward,
            first_nonfinite_backward: summary.first_nonfinite_backward,
            first_subnormal: summary.first_subnormal,
            first_subnormal_backward: summary.first_subnormal_backward,
            first_all_zero_grad: summary.first_all_zero_grad,
        },
    ))
}

/// The outcome of a `train` point, and its configuration as the report writes it.
pub fn of_train(report: &TrainReport) -> Result<(Value, TrainOutcome)> {
    let run = one(&report.runs, "training run")?;
    let s = &run.summary;
    let eval = s.final_eval.as_ref();
    let config =
        serde_json::to_value(&run.config).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok((
        config,
        TrainOutcome {
            precision: run.config.precision.to_string(),
            baseline_loss: s.baseline_loss,
            start_loss: s.start_loss,
            final_loss: s.final_loss,
            min_loss: s.min_loss,
            final_loss_ratio: s.final_loss / s.baseline_loss,
            diverged: s.diverged_at.is_some(),
            diverged_at: s.diverged_at,
            steps_run: s.steps_run,
            skipped_steps: s.skipped_steps,
            train_loss: eval.map(|e| e.train_loss),
            train_accuracy: eval.and_then(|e| e.train_accuracy),
            val_loss: eval.and_then(|e| e.val_loss),
            val_accuracy: eval.and_then(|e| e.val_accuracy),
        },
    ))
}
