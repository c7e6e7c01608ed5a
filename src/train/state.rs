//! The parts of a training run in progress that the trainer (run.rs) holds and a checkpoint
//! (checkpoint.rs) saves and sets again: shared here so that neither file imports the other's
//! internals back.

use std::time::Duration;

use super::config::TrainConfig;
use super::data::{Batches, TrainData};
use super::record::StepRecord;
use super::scaler::Scaler;
use crate::backend::Backend;
use crate::network::fp8::Fp8State;
use crate::network::steps::Parameters;

/// The optimizer's tensors for one parameter.
pub(super) struct Slot<T> {
    /// The f32 master in mixed precision (the model's f16 copy lives in `Parameters`).
    pub(super) master: Option<T>,
    pub(super) first: Option<T>,
    pub(super) second: Option<T>,
}

/// What a checkpoint saves of a run in progress and sets again on resuming
/// (train/checkpoint.rs): every part of its state, borrowed.
pub(super) struct TrainerState<'t, B: Backend> {
    pub(super) backend: &'t B,
    pub(super) config: &'t TrainConfig,
    pub(super) data: &'t TrainData,
    pub(super) batches: &'t mut Batches,
    pub(super) params: &'t mut Parameters<B::Tensor>,
    pub(super) weight_slots: &'t mut [Slot<B::Tensor>],
    /// Index t for layer t (index 0 unused).
    pub(super) bias_slots: &'t mut [Option<Slot<B::Tensor>>],
    pub(super) weight_norms: &'t mut [f64],
    pub(super) scaler: &'t mut Scaler,
    pub(super) optimizer_steps: &'t mut u64,
    pub(super) records: &'t mut Vec<StepRecord>,
    pub(super) diverged_at: Option<usize>,
    pub(super) fp8: Option<&'t mut Fp8State>,
    /// The host time in steps, and the wall time of every session before this one.
    pub(super) in_steps: &'t mut Duration,
    pub(super) wall_before: &'t mut Duration,
    /// The wall time of this session's steps so far.
    pub(super) wall_now: Duration,
}
