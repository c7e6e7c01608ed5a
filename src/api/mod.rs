//! The front door of the library: what the command line and the Python binding both call.
//!
//! Each face only parses its own arguments into these options, calls one function here and
//! reports the result. Every default, range check and conflict between options lives in
//! these modules (or in the types they build), so both faces refuse and default alike.
//!
//! - `device`: the backend to run on (`Device::open`, with the CPU fallback and its notice);
//! - `run`: `RunOptions` → `Experiment` → `run_experiment` → `RunReport`;
//! - `train`: `TrainOptions` → `TrainPreset` → `train_runs` → `TrainOutcome`, or with
//!   checkpoints `TrainOptions::plan` → `TrainPlan` → `train_plan`;
//! - `plan`: `TrainOptions::plan`, the runs with their checkpoints, and a resumed run (the
//!   checkpoint's, and the options that contradict it);
//! - `given`: the activations a weights file brings, against those the options ask for;
//! - `stats`: the statistics of a file's tensors, or of one tensor in memory;
//! - `progress`: what the long-running calls tell their caller as they go.

pub mod checks;
pub mod device;
pub mod given;
pub mod plan;
pub mod progress;
pub mod run;
pub mod stats;
pub mod train;

pub use device::{BackendChoice, Device};
pub use plan::{train_plan, TrainPlan};
pub use progress::Progress;
pub use run::{run_experiment, RunOptions};
pub use stats::{file_stats, tensor_stats};
pub use train::{train_runs, TaskKind, TrainOptions, TrainOutcome};
