//! What a long-running call (`run_experiment`, `train_runs`) tells its caller as it goes, and
//! how the caller stops it: a progress callback that returns an error (`Error::Interrupted`
//! for a Ctrl-C) ends the call with that error at the next layer or step.

use crate::error::Result;

/// Progress through a whole call: `done` of `total` units (layers for a run, optimizer steps
/// for training), the current one labelled `label` (a variant and precision, or a training
/// run's label). `done` never decreases and reaches `total` at the end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub label: &'a str,
    /// In training, the mean loss of the step just done (unscaled, as its `StepRecord`
    /// has it); `None` where there is no loss (a run's layers, or before a first step).
    pub loss: Option<f64>,
}

/// A progress callback that ignores every report and never stops the call.
pub fn ignore(_: Progress) -> Result<()> {
    Ok(())
}
