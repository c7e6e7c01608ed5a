//! What a long-running call (`run_experiment`, `train_runs`) tells its caller as it goes.

/// Progress through a whole call: `done` of `total` units (layers for a run, optimizer steps
/// for training), the current one labelled `label` (a variant and precision, or a training
/// run's label). `done` never decreases and reaches `total` at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub label: &'a str,
}

/// A progress callback that ignores every report.
pub fn ignore(_: Progress) {}
