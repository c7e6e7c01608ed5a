//! Training a deep MLP: minibatches of a task, forward, the loss, backward, loss scaling,
//! clipping and an optimizer step, on any backend, recording the loss and every layer's
//! gradient and update at every step. `config.rs` says what a run is, `data.rs` what it
//! trains on, `eval.rs` the held-out evaluation, `scaler.rs` how the loss is scaled, `schedule.rs` the learning rate of each step, `run.rs` the steps (made of
//! `network::steps` and the loss and optimizer ops), `record.rs` what a run found,
//! `memory.rs` what it holds, `presets.rs` the experiments (`format_presets.rs` those on
//! number formats) and `weights.rs` the state dict
//! it saves.
//!
//! Precision: `f32`; `f16`, PyTorch's `model.half()` (weights, gradients and optimizer
//! state in f16, every op rounded to f16); `f16acc32`, mixed precision (f16 weights and
//! matmuls with f32 accumulation for forward and backward, f32 master weights and optimizer
//! state, the f16 weights rounded from the masters after each step).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod format_presets;
pub mod memory;
pub mod presets;
pub mod record;
pub mod run;
pub mod scaler;
pub mod schedule;
pub mod state;
pub mod weights;

pub use checkpoint::{Checkpoint, CheckpointPlan, Checkpointing};
pub use config::{check, TrainConfig};
pub use data::{Batches, Targets, Task, TrainData};
pub use eval::{EvalRecord, Evaluation, SplitRecord, Validation};
pub use record::{
    Claim, LayerSnapshot, LayerStep, StepRecord, StepTime, TrainReport, TrainRun, TrainSummary,
};
pub use run::{run_training, run_training_with, FinalWeights, TrainOutcome};
pub use scaler::{DynamicScaling, LossScale, Scaler};
pub use schedule::LrSchedule;
