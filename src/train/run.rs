//! The training loop: each step's forward, loss, backward, loss scaling, clipping and
//! optimizer step, with one wait for the device to read the step's records and one more for
//! the updates' norms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::Checkpointing;
use super::config::TrainConfig;
use super::data::{self, Batches};
use super::eval::Evaluator;
use super::record::{
    EpochRecord, LayerSnapshot, LayerStep, StepRecord, StepTime, TrainRun, TrainSummary,
};
use super::scaler::Scaler;
use super::state::{Slot, TrainerState};
use crate::backend::batch::{CensusHandle, StatsBatch, StatsHandle};
use crate::backend::{Backend, Phase, StepCensus};
use crate::error::Result;
use crate::network::fp8::{Fp8Pass, Fp8State};
use crate::network::given::LayerNames;
use crate::network::steps::{self, LayerGradients, Parameters};
use crate::network::Clip;
use crate::ops::activation::Activation;
use crate::ops::loss::LossKind;
use crate::ops::optimizer::{self, has_model_copy, master_dtype, StepScalars, StepTensors};
use crate::precision::DType;
use crate::stats::{Census, StatsRecord};
use crate::tensor::{HostTensor, Shape};

/// A step's phases: on the device's clock where the backend times its device (a GPU with
/// timestamp queries: the kernels' time in each phase, `Backend::phase_seconds`), else the
/// host's (`host`) where every operation finishes before it returns (the CPU); `None`
/// otherwise, where the host clock would charge the device's time to whichever phase waited.
/// Ends the step's phases.
fn step_time<B: Backend>(backend: &B, host: StepTime) -> Result<Option<StepTime>> {
    Ok(match backend.phase_seconds()? {
        Some(device) => Some(StepTime {
            forward_s: device[Phase::Forward.index()],
            backward_s: device[Phase::Backward.index()],
            optimizer_s: device[Phase::Optimizer.index()],
            records_s: device[Phase::Records.index()],
        }),
        None => backend.tensors_on_host().then_some(host),
    })
}

fn zeros_like(dtype: DType, rows: usize, cols: usize) -> Result<HostTensor> {
    HostTensor::from_f32_as(dtype, rows, cols, &vec![0.0; rows * cols])
}

impl<T> Slot<T> {
    fn new<B: Backend<Tensor = T>>(
        backend: &B,
        config: &TrainConfig,
        initial: &HostTensor,
    ) -> Result<Self> {
        let master = master_dtype(config.precision);
        let (rows, cols) = (initial.shape().rows, initial.shape().cols);
        let state = |used: bool| -> Result<Option<T>> {
            if used {
                Ok(Some(backend.upload(&zeros_like(master, rows, cols)?)?))
            } else {
                Ok(None)
            }
        };
        let n = config.optimizer.state_tensors();
        Ok(Slot {
            master: if has_model_copy(config.precision) {
                Some(backend.upload(&initial.cast(DType::F32))?)
            } else {
                None
            },
            first: state(n >= 1)?,
            second: state(n >= 2)?,
        })
    }
}

/// The trained weights, as the state dict `--save-weights` writes.
pub struct FinalWeights {
    pub weights: Vec<HostTensor>,
    pub biases: Vec<Option<HostTensor>>,
    /// The names the weights came with (`--weights`), which a save keeps; `None`: an
    /// `nn.Sequential`'s own, '0.weight', '2.weight', …
    pub names: Option<Vec<LayerNames>>,
    /// The model's activation and whether it follows the last layer, which a save writes
    /// beside the weights so that the model comes back whole.
    pub activation: Activation,
    pub output_activation: bool,
}

/// A run's record, and its final weights where asked for.
pub struct TrainOutcome {
    pub run: TrainRun,
    pub weights: Option<FinalWeights>,
}

/// Trains `config` on `backend`, telling `progress` each finished step and its loss (none
/// before a first step).
pub fn run_training<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    label: &str,
    want_weights: bool,
    progress: &mut dyn FnMut(usize, Option<f64>) -> Result<()>,
) -> Result<TrainOutcome> {
    let none = Checkpointing::default();
    run_training_with(backend, config, label, want_weights, &none, progress)
}

/// [`run_training`], going on from `checkpoints.resume` where it is given and writing
/// `checkpoints.save` on the way (train/checkpoint.rs).
pub fn run_training_with<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    label: &str,
    want_weights: bool,
    checkpoints: &Checkpointing,
    progress: &mut dyn FnMut(usize, Option<f64>) -> Result<()>,
) -> Result<TrainOutcome> {
    let mut trainer = Trainer::new(backend, config)?;
    if let Some(checkpoint) = &checkpoints.resume {
        checkpoint.restore(trainer.state())?;
    }
    let mut tell = |trainer: &Trainer<B>| {
        progress(
            trainer.steps_done(),
            trainer.records().last().map(|r| r.loss),
        )
    };
    while trainer.step()? {
        tell(&trainer)?;
        checkpoints.after_step(trainer.state(), label)?;
    }
    tell(&trainer)?;
    checkpoints.at_end(trainer.state(), label)?;
    trainer.finish(label, want_weights)
}

/// A training run in progress: the model, the optimizer's state, the loss scale and the
/// records so far.
pub struct Trainer<'a, B: Backend> {
    backend: &'a B,
    config: &'a TrainConfig,
    data: Arc<data::TrainData>,
    batches: Batches,
    /// The last batch uploaded, kept while every step takes the same rows.
    fixed_batch: Option<(B::Tensor, B::Tensor)>,
    /// The rows of the last batch, and the epoch it belongs to.
    batch_rows: usize,
    epoch: usize,
    /// The rows of the ones column that broadcasts biases: the batch's, changed for an
    /// epoch's short last batch and back.
    ones_rows: usize,
    params: Parameters<B::Tensor>,
    weight_slots: Vec<Slot<B::Tensor>>,
    /// Index t for layer t (index 0 unused).
    bias_slots: Vec<Option<Slot<B::Tensor>>>,
    /// ‖W^t‖ now, at index t − 1.
    weight_norms: Vec<f64>,
    scaler: Scaler,
    optimizer_steps: u64,
    /// The learning rate of each step (index 0 is step 1), the schedule's or the base rate.
    rates: Vec<f64>,
    records: Vec<StepRecord>,
    diverged_at: Option<usize>,
    /// In FP8, every operand's scale and amax history across steps.
    fp8: Option<Fp8State>,
    /// When the first step started and the last one ended (host clock), and the time spent
    /// in steps: the summary's timing.
    first_started: Option<Instant>,
    last_ended: Option<Instant>,
    in_steps: Duration,
    /// The wall time of the steps before a resumed checkpoint.
    wall_before: Duration,
    /// The training and validation sets an evaluation runs over.
    evaluator: Evaluator,
}

impl<'a, B: Backend> Trainer<'a, B> {
    /// Checks `config`, draws the data and the model, and uploads them with zeroed optimizer
    /// state.
    pub fn new(backend: &'a B, config: &'a TrainConfig) -> Result<Self> {
        super::config::check(backend, config)?;
        let net = &config.network;
        let storage = config.precision.storage();
        let d = net.depth;
        let all = data::teacher_data(
            &config.task,
            config.samples,
            net.widths[0],
            net.widths[d],
            net.seed,
        )?;
        // A --val-split holds its rows out: the run trains on the rest.
        let evaluator = Evaluator::new(&config.evaluation, all, net.seed)?;
        let data = Arc::clone(evaluator.training());
        let batches = Batches::new(
            data.samples(),
            net.batch,
            config.shuffle,
            config.drop_last,
            net.seed,
        );

        // The model in its storage type, and the optimizer's tensors beside it.
        let mut weights = Vec::with_capacity(d);
        let mut biases = vec![None];
        let mut weight_slots = Vec::with_capacity(d);
        let mut bias_slots: Vec<Option<Slot<B::Tensor>>> = vec![None];
        for t in 1..=d {
            let w = net.weight(t, DType::F32)?;
            weights.push(backend.upload(&w.cast(storage))?);
            weight_slots.push(Slot::new(backend, config, &w)?);
            match net.bias(t, DType::F32)? {
                Some(b) => {
                    biases.push(Some(backend.upload(&b.cast(storage))?));
                    bias_slots.push(Some(Slot::new(backend, config, &b)?));
                }
                None => {
                    biases.push(None);
                    bias_slots.push(None);
                }
            }
        }
        let ones = if net.has_biases() {
            Some(backend.upload(&HostTensor::from_f32_as(
                storage,
                net.batch,
                1,
                &vec![1.0; net.batch],
            )?)?)
        } else {
            None
        };
        let params = Parameters::from_parts(weights, biases, ones);

        // ‖W^t‖ before the first step.
        let masters: Vec<&B::Tensor> = (1..=d)
            .map(|t| {
                weight_slots[t - 1]
                    .master
                    .as_ref()
                    .unwrap_or_else(|| params.kept_weight(t).expect("training keeps its weights"))
            })
            .collect();
        let weight_norms = backend.norms(&masters)?;
        drop(masters);
        Ok(Trainer {
            backend,
            config,
            data,
            batches,
            fixed_batch: None,
            batch_rows: net.batch,
            epoch: 1,
            ones_rows: net.batch,
            params,
            weight_slots,
            bias_slots,
            weight_norms,
            scaler: Scaler::new(config.loss_scale),
            optimizer_steps: 0,
            rates: config.rates(),
            records: Vec::new(),
            diverged_at: None,
            fp8: config
                .precision
                .quantised()
                .map(|_| Fp8State::new(net.fp8_scaling, d)),
            first_started: None,
            last_ended: None,
            in_steps: Duration::ZERO,
            wall_before: Duration::ZERO,
            evaluator,
        })
    }

    /// Every part of the run's state, for a checkpoint to save or set.
    pub(super) fn state(&mut self) -> TrainerState<'_, B> {
        let wall_now = match (self.first_started, self.last_ended) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        };
        TrainerState {
            backend: self.backend,
            config: self.config,
            data: &self.data,
            batches: &mut self.batches,
            params: &mut self.params,
            weight_slots: &mut self.weight_slots,
            bias_slots: &mut self.bias_slots,
            weight_norms: &mut self.weight_norms,
            scaler: &mut self.scaler,
            optimizer_steps: &mut self.optimizer_steps,
            records: &mut self.records,
            diverged_at: self.diverged_at,
            fp8: self.fp8.as_mut(),
            in_steps: &mut self.in_steps,
            wall_before: &mut self.wall_before,
            wall_now,
        }
    }

    /// Steps recorded so far.
    pub fn steps_done(&self) -> usize {
        self.records.len()
    }

    /// The records so far.
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// Runs the next step; false once every step has run or the loss has turned inf or NaN.
    pub fn step(&mut self) -> Result<bool> {
        let step = self.records.len() + 1;
        if step > self.config.steps || self.diverged_at.is_some() {
            return Ok(false);
        }
        let started = Instant::now();
        self.first_started.get_or_insert(started);
        // Every step ends in a wait for the device's records, so this is the device's time
        // too, not only the host's submission.
        let record = self.run_step(step)?;
        let ended = Instant::now();
        self.in_steps += ended - started;
        self.last_ended = Some(ended);
        self.records.push(record);
        let more = step < self.config.steps && self.diverged_at.is_none();
        // After the update: the weights a save would write.
        if self.evaluator.due(step, !more) {
            let eval = self.evaluator.evaluate(
                self.backend,
                &self.config.network,
                self.config.precision,
                self.config.task.loss(),
                &mut self.params,
                self.fp8.as_ref(),
                step,
            )?;
            self.records.last_mut().expect("just pushed").eval = Some(eval);
        }
        Ok(more)
    }

    fn run_step(&mut self, step: usize) -> Result<StepRecord> {
        let backend = self.backend;
        let config = self.config;
        let net = &config.network;
        let p = config.precision;
        let d = net.depth;
        let kind = config.task.loss();
        let snapshot_now = config.records_in_full(step);
        // The phases' host time (`StepTime`): `records` gathers the time of every record
        // started inside forward and backward, which their own phases leave out.
        let started = Instant::now();
        let mut records = Duration::ZERO;
        // On a GPU with timestamp queries, the device's clock times the same phases: each
        // phase tags the kernels it starts (`step_time`).
        backend.phase(Some(Phase::Forward));
        // Every step takes its batch, so that the epoch counts on where the whole set is one
        // batch (each step a pass); only a batch that changes is gathered and uploaded.
        let rows = self.batches.next_rows();
        self.epoch = self.batches.epoch();
        if self.fixed_batch.is_none() || !self.batches.is_fixed() {
            self.batch_rows = rows.len();
            let (x, y) = self.data.gather(&rows)?;
            self.fixed_batch = Some((backend.upload(&x.cast(p.storage()))?, backend.upload(&y)?));
            if net.has_biases() && rows.len() != self.ones_rows {
                let ones =
                    HostTensor::from_f32_as(p.storage(), rows.len(), 1, &vec![1.0; rows.len()])?;
                self.params.set_ones(backend.upload(&ones)?);
                self.ones_rows = rows.len();
            }
        }
        let (epoch, batch_rows) = (self.epoch, self.batch_rows);
        let (x, y) = self.fixed_batch.as_ref().expect("just uploaded");
        let params = &mut self.params;
        let scaler = &mut self.scaler;
        // Forward, the loss, backward: every record started, none waited for; each found
        // again by its handle, per layer.
        let mut batch = StatsBatch::default();
        // Z^t, H^t and ∂l/∂H^t of a snapshot step, at index t.
        let mut z_records = vec![None; d + 1];
        let mut h_records = vec![None; d + 1];
        let mut grad_h_records = vec![None; d + 1];
        let mut fp8 = self.fp8.as_mut().map(|state| Fp8Pass::new(state, p));
        let (pass, output) =
            steps::forward(backend, net, p, &*params, x, &mut fp8, &mut |t, z, h| {
                if snapshot_now {
                    let clock = Instant::now();
                    backend.phase(Some(Phase::Records));
                    z_records[t] = Some(batch.start(backend, z)?);
                    h_records[t] = Some(batch.start(backend, h)?);
                    backend.phase(Some(Phase::Forward));
                    records += clock.elapsed();
                }
                Ok(())
            })?;
        let output_shape = backend.shape(&output);
        let coefficient = kind.gradient_coefficient(output_shape, scaler.scale() as f64);
        let (grad_output, row_loss) = backend.loss(kind, &output, y, coefficient, p)?;
        drop(output);
        let forward_done = Instant::now();
        backend.phase(Some(Phase::Records));
        let loss_handle = batch.start(backend, &row_loss)?;
        if snapshot_now {
            grad_h_records[d] = Some(batch.start(backend, &grad_output)?);
        }
        let backward_started = Instant::now();
        let forward_s = (forward_done - started).saturating_sub(records);
        records += backward_started - forward_done;
        let records_before_backward = records;
        backend.phase(Some(Phase::Backward));
        let mut grads: Vec<Option<LayerGradients<B::Tensor>>> = (0..=d).map(|_| None).collect();
        // Each weight gradient's census, and on a snapshot step its full record too: the
        // step's numbers come from the census on every step, so that they do not depend on
        // which steps report in full (a run resumed from a checkpoint taken at its end, whose
        // last step did, gives the numbers of the run that went on).
        let mut weight_grad_records: Vec<Option<CensusHandle>> = vec![None; d + 1];
        let mut weight_grad_full: Vec<Option<StatsHandle>> = vec![None; d + 1];
        let mut bias_grad_records = vec![None; d + 1];
        steps::backward(
            backend,
            net,
            p,
            &*params,
            x,
            pass,
            grad_output,
            &mut fp8,
            &mut |t, g, g_prev| {
                let clock = Instant::now();
                backend.phase(Some(Phase::Records));
                weight_grad_records[t] = Some(batch.start_census(backend, &g.weight)?);
                if snapshot_now {
                    weight_grad_full[t] = Some(batch.start(backend, &g.weight)?);
                }
                if let Some(b) = &g.bias {
                    bias_grad_records[t] = Some(batch.start_census(backend, b)?);
                }
                if snapshot_now && t > 1 {
                    grad_h_records[t - 1] = Some(batch.start(backend, g_prev)?);
                }
                backend.phase(Some(Phase::Backward));
                records += clock.elapsed();
                grads[t] = Some(g);
                Ok(())
            },
        )?;
        let backward_s = backward_started
            .elapsed()
            .saturating_sub(records - records_before_backward);
        let records_started = Instant::now();
        backend.phase(Some(Phase::Records));
        // The operands' records, which also move delayed scaling on to the next step.
        let fp8_records = match fp8 {
            Some(q) => q.finish(backend)?,
            None => Vec::new(),
        };
        let found = batch.collect(backend)?;
        let record = |handle: &Option<StatsHandle>| -> StatsRecord {
            found.get(handle.expect("started for every layer")).clone()
        };
        let loss_record = found.get(loss_handle).clone();
        // Index t − 1 for layer t.
        let weight_grads: Vec<Census> = weight_grad_records[1..]
            .iter()
            .map(|h| found.census(h.expect("started for every layer")))
            .collect();
        let bias_grads: Vec<Census> = bias_grad_records[1..]
            .iter()
            .flatten()
            .map(|h: &CensusHandle| found.census(*h))
            .collect();

        let loss = mean_loss(kind, &loss_record, output_shape);
        let inv_scale = scaler.inv_scale() as f64;
        let found_inf = weight_grads
            .iter()
            .chain(&bias_grads)
            .any(|r| r.finite() != r.count);
        let snapshot = snapshot_now.then(|| {
            (1..=d)
                .map(|t| LayerSnapshot {
                    layer: t,
                    pre_activation: record(&z_records[t]),
                    activation: record(&h_records[t]),
                    grad_activation: record(&grad_h_records[t]),
                    grad_weight: record(&weight_grad_full[t]),
                })
                .collect()
        });
        let layer_steps = |norms: &[f64], ratios: &[f64], unchanged: &[f64]| -> Vec<LayerStep> {
            (1..=d)
                .map(|t| {
                    let g = &weight_grads[t - 1];
                    let n = g.count.max(1) as f64;
                    LayerStep {
                        layer: t,
                        grad_norm: g.l2_norm * inv_scale,
                        weight_norm: norms[t - 1],
                        update_ratio: ratios[t - 1],
                        grad_zero_fraction: g.zero as f64 / n,
                        grad_subnormal_fraction: g.subnormal as f64 / n,
                        grad_non_finite_fraction: (g.count - g.finite()) as f64 / n,
                        unchanged_fraction: unchanged[t - 1],
                    }
                })
                .collect()
        };
        let loss_scale = scaler.scale() as f64;
        // A skipped step still advances the schedule, as `scheduler.step()` does after a
        // `scaler.step(optimizer)` that skipped the update.
        let lr = self.rates[step - 1];

        // A loss of inf or NaN ends the run; a scaled step with inf or NaN gradients is
        // skipped and backs the scale off. Neither updates a weight.
        let diverged = !loss.is_finite();
        if diverged || (found_inf && scaler.skips_non_finite()) {
            if diverged {
                self.diverged_at = Some(step);
            } else {
                scaler.update(true);
            }
            return Ok(StepRecord {
                step,
                epoch,
                batch: batch_rows,
                loss,
                loss_scale,
                lr,
                skipped: true,
                layers: layer_steps(&self.weight_norms, &vec![0.0; d], &vec![1.0; d]),
                snapshot,
                fp8: fp8_records,
                eval: None,
                time: step_time(
                    backend,
                    StepTime {
                        forward_s: forward_s.as_secs_f64(),
                        backward_s: backward_s.as_secs_f64(),
                        optimizer_s: 0.0,
                        records_s: (records + records_started.elapsed()).as_secs_f64(),
                    },
                )?,
            });
        }

        // Unscale, clip, step: one kernel per parameter tensor.
        let clip_coefficient = match net.clip {
            Some(Clip::Norm(max_norm)) => {
                let squares: f64 = weight_grads
                    .iter()
                    .chain(&bias_grads)
                    .map(|r| r.l2_norm * r.l2_norm)
                    .sum();
                steps::clip_norm_coefficient(squares.sqrt() * inv_scale, max_norm)
            }
            _ => 1.0,
        };
        let clip_value = match net.clip {
            Some(Clip::Value(limit)) => Some(limit),
            _ => None,
        };
        records += records_started.elapsed();
        let optimizer_started = Instant::now();
        backend.phase(Some(Phase::Optimizer));
        self.optimizer_steps += 1;
        let scalars = StepScalars {
            lr,
            step: self.optimizer_steps,
            grad_scale: scaler.inv_scale() as f64,
            clip_value,
            clip_coefficient,
        };
        // ‖ΔW^t‖, how many weights ΔW^t left unchanged, and the new ‖W^t‖ of every layer,
        // in one wait: their censuses, not full records, which the step starts (on the CPU,
        // takes as it computes ΔW, which it never stores). A bias's step starts none.
        let mut batch = StatsBatch::default();
        let mut handles = Vec::with_capacity(d);
        for (t, g) in grads.iter_mut().enumerate().skip(1) {
            let g = g.take().expect("backward handed every layer");
            let slot = &mut self.weight_slots[t - 1];
            let model = params.weight_mut(t).expect("training keeps its weights");
            let census = step_one(backend, config, &scalars, &g.weight, slot, model)?;
            handles.push((
                batch.add_census(census.update),
                batch.add_census(census.weight),
            ));
            if let (Some(db), Some(slot)) = (&g.bias, self.bias_slots[t].as_mut()) {
                let model = params.bias_mut(t).expect("a bias slot has a bias");
                step_one(backend, config, &scalars, db, slot, model)?;
            }
        }
        let optimizer_s = optimizer_started.elapsed();
        let records_started = Instant::now();
        backend.phase(Some(Phase::Records));
        let found = batch.collect(backend)?;
        let mut ratios = vec![0.0; d];
        let mut unchanged = vec![0.0; d];
        for (t, (delta, weight)) in (1..=d).zip(handles) {
            let delta = found.census(delta);
            ratios[t - 1] = delta.l2_norm / self.weight_norms[t - 1];
            unchanged[t - 1] = delta.zero as f64 / delta.count.max(1) as f64;
            self.weight_norms[t - 1] = found.census(weight).l2_norm;
        }
        scaler.update(found_inf);
        let layers = layer_steps(&self.weight_norms, &ratios, &unchanged);
        records += records_started.elapsed();
        let time = step_time(
            backend,
            StepTime {
                forward_s: forward_s.as_secs_f64(),
                backward_s: backward_s.as_secs_f64(),
                optimizer_s: optimizer_s.as_secs_f64(),
                records_s: records.as_secs_f64(),
            },
        )?;
        Ok(StepRecord {
            step,
            epoch,
            batch: batch_rows,
            loss,
            loss_scale,
            lr,
            skipped: false,
            layers,
            snapshot,
            fp8: fp8_records,
            eval: None,
            time,
        })
    }

    /// The run's record, and its final weights (downloaded) where `want_weights`.
    pub fn finish(mut self, label: &str, want_weights: bool) -> Result<TrainOutcome> {
        let backend = self.backend;
        let net = &self.config.network;
        let d = net.depth;
        let weights = if want_weights {
            let mut w = Vec::with_capacity(d);
            let mut b = vec![];
            for t in 1..=d {
                let master = match &self.weight_slots[t - 1].master {
                    Some(m) => backend.download(m)?,
                    None => backend.download(self.params.weight_mut(t).expect("kept"))?,
                };
                w.push(master);
                b.push(match (&self.bias_slots[t], self.params.bias_mut(t)) {
                    (
                        Some(Slot {
                            master: Some(m), ..
                        }),
                        _,
                    ) => Some(backend.download(m)?),
                    (_, Some(model)) => Some(backend.download(model)?),
                    _ => None,
                });
            }
            Some(FinalWeights {
                weights: w,
                biases: b,
                names: self
                    .config
                    .network
                    .given_parameters
                    .as_ref()
                    .map(|given| given.names.clone()),
                activation: self.config.network.activation,
                output_activation: self.config.network.output_activation,
            })
        } else {
            None
        };
        let mut summary = summarize(
            &self.records,
            self.diverged_at,
            self.scaler.scale() as f64,
            d,
            self.data.baseline_loss(net.widths[d]),
        );
        (summary.wall_seconds, summary.seconds_per_step) = self.timing();
        // Totals where every step has its phases (none on a GPU).
        let times: Option<Vec<&StepTime>> = self.records.iter().map(|r| r.time.as_ref()).collect();
        summary.time = times.filter(|t| !t.is_empty()).map(StepTime::total);
        summary.final_eval = self.records.last().and_then(|r| r.eval.clone());
        Ok(TrainOutcome {
            run: TrainRun {
                label: label.to_string(),
                config: self.config.clone(),
                summary,
                split: self.evaluator.split(),
                epochs: EpochRecord::of(&self.records),
                steps: self.records,
            },
            weights,
        })
    }

    /// The wall seconds of the steps so far and their mean seconds per step (0 and 0 before
    /// a first step), a resumed run's earlier sessions included.
    fn timing(&self) -> (f64, f64) {
        let now = match (self.first_started, self.last_ended) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        };
        match self.records.len() {
            0 => (0.0, 0.0),
            // A resumed run's steps include those before its checkpoint, and their time.
            steps => (
                (self.wall_before + now).as_secs_f64(),
                self.in_steps.as_secs_f64() / steps as f64,
            ),
        }
    }
}

/// One optimizer step of one parameter: the master (or the model itself) updated in place,
/// the model's f16 copy rounded from it in mixed precision. Returns the censuses of
/// W_new − W_old and of the new master (or model), started.
fn step_one<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    scalars: &StepScalars,
    grad: &B::Tensor,
    slot: &mut Slot<B::Tensor>,
    model: &mut B::Tensor,
) -> Result<StepCensus<B::PendingStats>> {
    let len = backend.shape(grad).len();
    let params = optimizer::Params::new(&config.optimizer, scalars, len, config.precision);
    let (param, model) = match slot.master.as_mut() {
        Some(master) => (master, Some(model)),
        None => (model, None),
    };
    backend.optimizer_step_census(
        config.optimizer.kind,
        &params,
        StepTensors {
            grad,
            param,
            first_moment: slot.first.as_mut(),
            second_moment: slot.second.as_mut(),
            model,
        },
        config.precision,
    )
}

/// The mean loss from the record of the row losses: NaN where a row's loss is NaN, inf
/// where one is inf.
fn mean_loss(kind: LossKind, rows: &StatsRecord, output: Shape) -> f64 {
    if rows.nan > 0 || (rows.pos_inf > 0 && rows.neg_inf > 0) {
        return f64::NAN;
    }
    if rows.pos_inf > 0 {
        return f64::INFINITY;
    }
    if rows.neg_inf > 0 {
        return f64::NEG_INFINITY;
    }
    kind.mean_loss(rows.mean * rows.count as f64, output)
}

fn summarize(
    records: &[StepRecord],
    diverged_at: Option<usize>,
    final_loss_scale: f64,
    depth: usize,
    baseline_loss: f64,
) -> TrainSummary {
    let applied: Vec<&StepRecord> = records.iter().filter(|r| !r.skipped).collect();
    let mean_update_ratio = (0..depth)
        .map(|i| {
            if applied.is_empty() {
                0.0
            } else {
                applied
                    .iter()
                    .map(|r| r.layers[i].update_ratio)
                    .sum::<f64>()
                    / applied.len() as f64
            }
        })
        .collect();
    TrainSummary {
        baseline_loss,
        start_loss: records.first().map_or(f64::NAN, |r| r.loss),
        final_loss: records.last().map_or(f64::NAN, |r| r.loss),
        min_loss: records
            .iter()
            .map(|r| r.loss)
            .filter(|l| l.is_finite())
            .fold(f64::INFINITY, f64::min),
        diverged_at,
        steps_run: records.len(),
        // The step where the loss turned inf or NaN is not one the scaler skipped.
        skipped_steps: records
            .iter()
            .filter(|r| r.skipped && Some(r.step) != diverged_at)
            .count(),
        final_loss_scale,
        mean_update_ratio,
        // The trainer's clock fills these in.
        wall_seconds: 0.0,
        seconds_per_step: 0.0,
        time: None,
        final_eval: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::reduce::cpu::reference;

    /// The mean of row losses, and what one inf or NaN row makes of it: NaN for a NaN or for
    /// +inf beside −inf (their sum), ±inf for infinities of one sign.
    #[test]
    fn the_mean_loss_is_the_rows_mean_or_what_a_non_finite_row_makes_it() {
        let mean = |rows: &[f32]| {
            let record = reference(&HostTensor::from_f32(rows.len(), 1, rows.to_vec()).unwrap());
            // Cross-entropy: the mean over rows, whatever the number of classes.
            mean_loss(LossKind::CrossEntropy, &record, Shape::new(rows.len(), 5))
        };
        let (inf, nan) = (f32::INFINITY, f32::NAN);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        // MSE: the sum of the rows' squared errors over every output.
        let record = reference(&HostTensor::from_f32(2, 1, vec![3.0, 5.0]).unwrap());
        assert_eq!(mean_loss(LossKind::Mse, &record, Shape::new(2, 4)), 1.0);
        assert!(mean(&[1.0, nan, 2.0]).is_nan());
        assert!(mean(&[inf, 1.0, -inf]).is_nan());
        assert!(mean(&[inf, nan]).is_nan());
        assert_eq!(mean(&[1.0, inf]), f64::INFINITY);
        assert_eq!(mean(&[-inf, 1.0]), f64::NEG_INFINITY);
    }
}
