//! Checkpoints: a run's whole state in one safetensors file, written every `--checkpoint-every`
//! steps and at the end, from which `--resume` goes on so that N steps and a resume of the rest
//! give the same bits as an uninterrupted run.
//!
//! The file (format [`FORMAT_VERSION`]):
//!
//! - `model.<name>`: the model's parameters in its storage type under their state-dict names
//!   ('model.0.weight', 'model.0.bias', …; the names they were loaded with), so that
//!   `model.load_state_dict({k[6:]: v for k, v in f.items() if k.startswith("model.")})`
//!   takes them;
//! - `master.<name>`: the f32 master weights of mixed precision;
//! - `optimizer.state.<i>.momentum_buffer` (SGD with momentum), `.exp_avg`, `.exp_avg_sq` and
//!   `.step` (Adam, AdamW): torch.optim's `state_dict()["state"]`, `i` the parameter's index in
//!   `model.parameters()` (each layer's weight, then its bias);
//! - `fp8.<layer>.<input|weight|gradient>.scale` and `.amax_history` (oldest first): the scale
//!   each FP8 operand quantises with next, and the delayed rule's amaxes;
//! - `data.order` (int64): the current epoch's order of the samples;
//! - `gradstab.records` (uint8): every step's record so far, in CBOR (which keeps the inf and
//!   NaN that JSON writes as null), so that the resumed run reports steps 1 to N.
//!
//! and in its metadata: `gradstab.checkpoint` (the format version), `gradstab.version`, the
//! activation as `--save-weights` writes it, `gradstab.config` (the run's configuration, the
//! JSON of the report) and `gradstab.state` (JSON: the label, the step reached, the optimizer's
//! step count, the loss scaler's scale and growth tracker, the data's fingerprint, epoch and
//! position, the parameters' names and the time spent so far).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use safetensors::tensor::{Dtype, TensorView};

use super::config::TrainConfig;
use super::data::{Targets, Task, TrainData};
use super::eval::{Evaluation, Validation};
use super::record::StepRecord;
use super::scaler::{LossScale, Scaler};
use super::schedule::LrSchedule;
use super::state::{Slot, TrainerState};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::init::{Init, InputInit};
use crate::network::config::Clip;
use crate::network::fp8::{Fp8Scaling, Role};
use crate::network::given::{
    GivenParameters, LayerNames, META_ACTIVATION, META_OUTPUT_ACTIVATION, META_VERSION,
};
use crate::network::NetworkConfig;
use crate::ops::activation::Activation;
use crate::ops::optimizer::{OptimizerConfig, OptimizerKind};
use crate::output::{self, Destination};
use crate::precision::{DType, Precision};
use crate::tensor::{HostData, HostTensor, Shape};

/// The layout written; a file of another is refused, naming both.
pub const FORMAT_VERSION: u32 = 1;
/// The metadata key of the format version: a file without it is no checkpoint.
pub const META_FORMAT: &str = "gradstab.checkpoint";
const META_STATE: &str = "gradstab.state";
const META_CONFIG: &str = "gradstab.config";
const RECORDS: &str = "gradstab.records";
const ORDER: &str = "data.order";

/// Where a run writes its checkpoints: every `every` steps, and at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPlan {
    pub path: PathBuf,
    /// `None`: at the end only.
    pub every: Option<usize>,
}

impl CheckpointPlan {
    /// Refuses a destination a checkpoint cannot replace whole: standard output, a directory,
    /// a device or FIFO, a directory that does not exist.
    pub fn check(&self) -> Result<()> {
        check_destination(&self.path)
    }
}

fn check_destination(path: &Path) -> Result<()> {
    match output::resolve(path)? {
        Destination::File(_) => output::check_destination(path),
        _ => Err(file_error(
            path,
            "not a regular file: a checkpoint replaces its file whole (a temporary file \
             renamed over it), which only a regular file allows",
        )),
    }
}

/// How a run starts and what it saves: from a checkpoint or from the beginning, and where its
/// checkpoints go.
#[derive(Clone, Debug, Default)]
pub struct Checkpointing {
    pub resume: Option<Arc<Checkpoint>>,
    pub save: Option<CheckpointPlan>,
}

impl Checkpointing {
    /// After a step that did not end the run: a checkpoint where the plan says.
    pub(super) fn after_step<B: Backend>(
        &self,
        state: TrainerState<'_, B>,
        label: &str,
    ) -> Result<()> {
        match &self.save {
            Some(CheckpointPlan {
                path,
                every: Some(k),
            }) if state.records.len().is_multiple_of(*k) => write(state, label, path),
            _ => Ok(()),
        }
    }

    /// At the end of the run: its checkpoint, so that it can be extended; none for a run
    /// that diverged, whose last checkpoint (if any) is kept.
    pub(super) fn at_end<B: Backend>(&self, state: TrainerState<'_, B>, label: &str) -> Result<()> {
        let Some(plan) = &self.save else {
            return Ok(());
        };
        if let Some(step) = state.diverged_at {
            log::warn!(
                "no checkpoint written at the end: the run diverged (loss inf or NaN) at step \
                 {step}; {} keeps the last one written before it, if any",
                plan.path.display()
            );
            return Ok(());
        }
        write(state, label, &plan.path)
    }
}

/// The scaler's running state, as `GradScaler.state_dict()` has it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct ScalerState {
    scale: f32,
    growth_tracker: u64,
}

/// Where the minibatches stand.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct DataState {
    /// [`fingerprint`] of the data set: a resume on other data is refused.
    fingerprint: String,
    samples: usize,
    /// [`fingerprint`] of a `--val-data` set: a resume that evaluates on another is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    val_fingerprint: Option<String>,
    /// The epoch being taken, from 0 (its order is `data.order`); later ones are drawn from
    /// the seed.
    epoch: usize,
    /// Samples of that order the batches so far took.
    taken: usize,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct NamesJson {
    weight: String,
    bias: Option<String>,
}

/// The metadata `gradstab.state`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    /// The run's label in the report.
    label: String,
    /// Steps run and recorded.
    step: usize,
    /// Updates the optimizer made: `step` less those the loss scaler skipped (Adam's `step`).
    optimizer_steps: u64,
    scaler: ScalerState,
    data: DataState,
    /// Each layer's state-dict names.
    parameters: Vec<NamesJson>,
    /// Wall seconds of the steps so far, and host seconds inside them (the summary's timing).
    wall_seconds: f64,
    step_seconds: f64,
}

/// A tensor as the file holds it.
#[derive(Clone, Debug)]
struct Stored {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
        source: None,
    }
}

fn safetensors_dtype(dtype: DType) -> Result<Dtype> {
    match dtype {
        DType::F32 => Ok(Dtype::F32),
        DType::F16 => Ok(Dtype::F16),
        DType::Bf16 => Ok(Dtype::BF16),
        other => Err(Error::InvalidArgument(format!(
            "a checkpoint holds f32, f16 and bf16 parameters, not {other:?}"
        ))),
    }
}

/// The shape a parameter has in a state dict: a bias is a vector.
fn file_shape(shape: Shape, bias: bool) -> Vec<usize> {
    if bias {
        vec![shape.len()]
    } else {
        vec![shape.rows, shape.cols]
    }
}

/// FNV-1a (64 bits) of the data set as it trains: its inputs' and targets' shapes and bits.
/// It tells another data set from this one by mistake, not by design.
pub fn fingerprint(data: &TrainData) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let x = &data.x;
    feed(&(x.shape().rows as u64).to_le_bytes());
    feed(&(x.shape().cols as u64).to_le_bytes());
    for v in x.to_f32_vec() {
        feed(&v.to_bits().to_le_bytes());
    }
    match &data.targets {
        Targets::Values(y) => {
            feed(b"values");
            feed(&(y.shape().cols as u64).to_le_bytes());
            for v in y.to_f32_vec() {
                feed(&v.to_bits().to_le_bytes());
            }
        }
        Targets::Labels(labels) => {
            feed(b"labels");
            for l in labels {
                feed(&l.to_le_bytes());
            }
        }
    }
    format!("fnv1a64:{hash:016x}")
}

/// The data set a checkpoint fingerprints: a file's as the run was given it (before a
/// `--val-split` holds rows out, as a resume reads it again), or the built-in task's as the
/// run trains on it (drawn again from the seed).
fn given_data<'d>(config: &'d TrainConfig, trained: &'d TrainData) -> &'d TrainData {
    match &config.task {
        Task::File { data, .. } => data,
        _ => trained,
    }
}

/// Each layer's state-dict names: those the weights were loaded with, or an `nn.Sequential`'s.
fn layer_names<T>(config: &TrainConfig, bias_slots: &[Option<Slot<T>>]) -> Vec<LayerNames> {
    match &config.network.given_parameters {
        Some(given) => given.names.clone(),
        None => (1..=config.network.depth)
            .map(|t| LayerNames {
                weight: format!("{}.weight", 2 * (t - 1)),
                bias: bias_slots[t]
                    .is_some()
                    .then(|| format!("{}.bias", 2 * (t - 1))),
            })
            .collect(),
    }
}

/// The names of one parameter's optimizer state, as torch.optim's `state_dict` has them.
fn state_names(kind: OptimizerKind) -> [&'static str; 2] {
    match kind {
        OptimizerKind::Sgd => ["momentum_buffer", ""],
        OptimizerKind::Adam | OptimizerKind::AdamW => ["exp_avg", "exp_avg_sq"],
    }
}

fn fp8_key(t: usize, role: Role, what: &str) -> String {
    format!("fp8.{t}.{}.{what}", role.name())
}

/// Writes the run's state to `path`, whole or not at all.
pub(super) fn write<B: Backend>(
    state: TrainerState<'_, B>,
    label: &str,
    path: &Path,
) -> Result<()> {
    check_destination(path)?;
    let (backend, config, data) = (state.backend, state.config, state.data);
    let names = layer_names(config, state.bias_slots);
    let mut tensors: Vec<(String, Stored)> = Vec::new();
    let put = |tensors: &mut Vec<(String, Stored)>,
               name: String,
               tensor: &HostTensor,
               bias: bool|
     -> Result<()> {
        tensors.push((
            name,
            Stored {
                dtype: safetensors_dtype(tensor.dtype())?,
                shape: file_shape(tensor.shape(), bias),
                bytes: tensor.data().to_le_bytes(),
            },
        ));
        Ok(())
    };
    let [first_name, second_name] = state_names(config.optimizer.kind);
    let adam = config.optimizer.kind != OptimizerKind::Sgd;
    let mut index = 0;
    for (t, layer) in (1..=config.network.depth).zip(&names) {
        let weight = state
            .params
            .kept_weight(t)
            .expect("training keeps its weights");
        let mut parameters = vec![(
            &layer.weight,
            false,
            &state.weight_slots[t - 1],
            backend.download(weight)?,
        )];
        if let (Some(name), Some(slot)) = (&layer.bias, &state.bias_slots[t]) {
            let model = state.params.bias_mut(t).expect("a bias slot has a bias");
            parameters.push((name, true, slot, backend.download(model)?));
        }
        for (name, bias, slot, model) in parameters {
            put(&mut tensors, format!("model.{name}"), &model, bias)?;
            if let Some(master) = &slot.master {
                put(
                    &mut tensors,
                    format!("master.{name}"),
                    &backend.download(master)?,
                    bias,
                )?;
            }
            if let Some(first) = &slot.first {
                let key = format!("optimizer.state.{index}.{first_name}");
                put(&mut tensors, key, &backend.download(first)?, bias)?;
            }
            if let Some(second) = &slot.second {
                let key = format!("optimizer.state.{index}.{second_name}");
                put(&mut tensors, key, &backend.download(second)?, bias)?;
            }
            if adam {
                // torch.optim keeps Adam's step per parameter, an f32 scalar tensor.
                let step = HostTensor::from_f32(1, 1, vec![*state.optimizer_steps as f32])?;
                tensors.push((
                    format!("optimizer.state.{index}.step"),
                    Stored {
                        dtype: Dtype::F32,
                        shape: vec![],
                        bytes: step.data().to_le_bytes(),
                    },
                ));
            }
            index += 1;
        }
    }
    if let Some(fp8) = &state.fp8 {
        for t in 1..=config.network.depth {
            for role in Role::ALL {
                let (next, history) = fp8.operand(t, role);
                let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect();
                tensors.push((
                    fp8_key(t, role, "scale"),
                    Stored {
                        dtype: Dtype::F32,
                        shape: vec![],
                        bytes: f32_bytes(&[next]),
                    },
                ));
                tensors.push((
                    fp8_key(t, role, "amax_history"),
                    Stored {
                        dtype: Dtype::F32,
                        shape: vec![history.len()],
                        bytes: f32_bytes(&history),
                    },
                ));
            }
        }
    }
    let (epoch, order, taken) = state.batches.position();
    tensors.push((
        ORDER.to_string(),
        Stored {
            dtype: Dtype::I64,
            shape: vec![order.len()],
            bytes: order
                .iter()
                .flat_map(|&i| (i as i64).to_le_bytes())
                .collect(),
        },
    ));
    let mut records = Vec::new();
    ciborium::into_writer(&*state.records, &mut records)
        .map_err(|e| Error::InvalidArgument(format!("the step records: {e}")))?;
    tensors.push((
        RECORDS.to_string(),
        Stored {
            dtype: Dtype::U8,
            shape: vec![records.len()],
            bytes: records,
        },
    ));

    let meta = State {
        label: label.to_string(),
        step: state.records.len(),
        optimizer_steps: *state.optimizer_steps,
        scaler: ScalerState {
            scale: state.scaler.scale(),
            growth_tracker: state.scaler.growth_tracker(),
        },
        data: DataState {
            fingerprint: fingerprint(given_data(config, data)),
            samples: given_data(config, data).samples(),
            val_fingerprint: match &config.evaluation.validation {
                Validation::Data { data, .. } => Some(fingerprint(data)),
                _ => None,
            },
            epoch,
            taken,
        },
        parameters: names
            .iter()
            .map(|n| NamesJson {
                weight: n.weight.clone(),
                bias: n.bias.clone(),
            })
            .collect(),
        wall_seconds: (*state.wall_before + state.wall_now).as_secs_f64(),
        step_seconds: state.in_steps.as_secs_f64(),
    };
    let metadata = HashMap::from([
        (META_FORMAT.to_string(), FORMAT_VERSION.to_string()),
        (
            META_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            META_ACTIVATION.to_string(),
            config.network.activation.to_string(),
        ),
        (
            META_OUTPUT_ACTIVATION.to_string(),
            config.network.output_activation.to_string(),
        ),
        (META_STATE.to_string(), json(&meta)?),
        (META_CONFIG.to_string(), json(config)?),
    ]);
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::InvalidArgument(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let serialized = safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| {
        Error::file_caused_by(path, format!("cannot serialize the checkpoint: {e}"), e)
    })?;
    output::write_atomically(path, |out| out.write_all(&serialized))
}

/// A metadata value's JSON.
fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// The network of a run's configuration as its JSON writes it (`NetworkConfig::json`).
#[derive(serde::Deserialize)]
struct NetworkRead {
    depth: usize,
    widths: Vec<usize>,
    batch: usize,
    activation: Activation,
    init: Option<Init>,
    input: Option<InputInit>,
    bias_std: f64,
    residual: bool,
    output_activation: bool,
    linear_bias: bool,
    clip: Option<Clip>,
    fp8_scaling: Fp8Scaling,
    seed: u64,
    weights_file: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TaskRead {
    Teacher { depth: usize, width: usize },
    Classify { depth: usize, width: usize },
    File { data_file: String },
}

/// A run's configuration as its JSON writes it; the fields derived from others (the loss,
/// the steps per epoch) are left out.
#[derive(serde::Deserialize)]
struct ConfigRead {
    network: NetworkRead,
    task: TaskRead,
    samples: usize,
    shuffle: bool,
    drop_last: bool,
    steps: usize,
    record_every: usize,
    optimizer: OptimizerConfig,
    lr: f64,
    lr_schedule: Option<LrSchedule>,
    precision: String,
    loss_scale: LossScale,
    /// Absent where the run evaluated nothing.
    #[serde(default)]
    evaluation: Option<EvaluationRead>,
}

/// A run's evaluation as its JSON config writes it (`eval::EvaluationJson`).
#[derive(serde::Deserialize)]
struct EvaluationRead {
    #[serde(default)]
    val_split: Option<f64>,
    #[serde(default)]
    val_data_file: Option<String>,
    eval_every: Option<usize>,
}

/// A checkpoint read back: everything a resumed run needs, checked as far as it can be
/// without the run.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    state: State,
    /// The configuration's JSON as written, which the rebuilt configuration must write again.
    config_json: String,
    tensors: BTreeMap<String, Stored>,
    records: Vec<StepRecord>,
}

impl Checkpoint {
    /// Reads a checkpoint: a regular file holding safetensors of this format version.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(file_error(
                path,
                "not a regular file (a directory, pipe or device): a checkpoint is a file",
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (file, metadata) =
            crate::files::read_safetensors(path, &bytes, " (truncated, or not a checkpoint)")?;
        let Some(format) = metadata.get(META_FORMAT) else {
            return Err(file_error(
                path,
                format!(
                    "not a gradstab checkpoint: its metadata has no '{META_FORMAT}' (a state \
                     dict is read with --weights)"
                ),
            ));
        };
        let written_by = metadata.get(META_VERSION).map_or("?", String::as_str);
        if format.trim() != FORMAT_VERSION.to_string() {
            return Err(file_error(
                path,
                format!(
                    "checkpoint format {format} (written by gradstab {written_by}); this gradstab \
                     {} reads format {FORMAT_VERSION}",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        let field = |key: &str| {
            metadata.get(key).ok_or_else(|| {
                file_error(path, format!("the checkpoint's metadata has no '{key}'"))
            })
        };
        let state: State = serde_json::from_str(field(META_STATE)?).map_err(|e| {
            file_error(
                path,
                format!("the checkpoint's '{META_STATE}' does not read: {e}"),
            )
        })?;
        let config_json = field(META_CONFIG)?.clone();
        let tensors: BTreeMap<String, Stored> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                (
                    name,
                    Stored {
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        bytes: view.data().to_vec(),
                    },
                )
            })
            .collect();
        let records: Vec<StepRecord> = match tensors.get(RECORDS) {
            Some(t) if t.dtype == Dtype::U8 => ciborium::from_reader(&t.bytes[..])
                .map_err(|e| file_error(path, format!("its step records do not read: {e}")))?,
            _ => return Err(file_error(path, format!("no uint8 tensor '{RECORDS}'"))),
        };
        let numbered = records.iter().enumerate().all(|(i, r)| r.step == i + 1);
        if records.len() != state.step || !numbered {
            return Err(file_error(
                path,
                format!(
                    "it holds {} step records for step {}: the records are steps 1 to the step \
                     reached",
                    records.len(),
                    state.step
                ),
            ));
        }
        let checkpoint = Checkpoint {
            path: path.to_path_buf(),
            state,
            config_json,
            tensors,
            records,
        };
        // The configuration must read back now, not only once the data are at hand.
        checkpoint.read_config()?;
        Ok(checkpoint)
    }

    /// The steps run before the checkpoint.
    pub fn step(&self) -> usize {
        self.state.step
    }

    /// The run's label in the report.
    pub fn label(&self) -> &str {
        &self.state.label
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The records of the steps run.
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// The data file the run trained on, where it trained on one: what `config` needs read.
    /// The validation file the checkpoint's run evaluated on (`--val-data`), if any.
    pub fn val_data_file(&self) -> Option<String> {
        self.read_config()
            .ok()
            .and_then(|c| c.evaluation)
            .and_then(|e| e.val_data_file)
    }

    pub fn data_file(&self) -> Option<String> {
        match self.read_config() {
            Ok(ConfigRead {
                task: TaskRead::File { data_file },
                ..
            }) => Some(data_file),
            _ => None,
        }
    }

    fn problem(&self, problem: impl std::fmt::Display) -> Error {
        file_error(&self.path, problem)
    }

    fn read_config(&self) -> Result<ConfigRead> {
        serde_json::from_str(&self.config_json).map_err(|e| {
            self.problem(format!(
                "its configuration ('{META_CONFIG}') does not read: {e}"
            ))
        })
    }

    /// The run's configuration as it was written (its steps those it was to run then), with
    /// `data` (the data set of a run on a file; `None` for a built-in task) checked against the
    /// fingerprint.
    pub fn config(
        &self,
        data: Option<Arc<TrainData>>,
        val_data: Option<Arc<TrainData>>,
    ) -> Result<TrainConfig> {
        let read = self.read_config()?;
        let net = &read.network;
        let precision: Precision = read
            .precision
            .parse()
            .map_err(|e| self.problem(format!("its precision: {e}")))?;
        let mut network = NetworkConfig {
            activation: net.activation,
            bias_std: net.bias_std,
            residual: net.residual,
            output_activation: net.output_activation,
            linear_bias: net.linear_bias,
            clip: net.clip,
            fp8_scaling: net.fp8_scaling,
            seed: net.seed,
            ..NetworkConfig::new(net.depth, 1, net.batch)
        }
        .with_widths(&net.widths)
        .map_err(|e| self.problem(format!("its widths: {e}")))?;
        if let Some(init) = net.init {
            network.init = init;
        }
        if let Some(input) = net.input {
            network.input = input;
        }
        if let Some(source) = &net.weights_file {
            // The run started from a file: the network's shape, biases and names are the
            // file's, which the checkpoint's model has.
            let given = self.given_parameters(source, &network)?;
            network = network.with_given_parameters(given);
        }
        let task = match read.task {
            TaskRead::Teacher { depth, width } => Task::Teacher { depth, width },
            TaskRead::Classify { depth, width } => Task::Classify { depth, width },
            TaskRead::File { data_file } => Task::File {
                source: data_file,
                data: data.clone().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "the checkpoint's run trained on a data file: give its data to resume \
                         ({})",
                        self.path.display()
                    ))
                })?,
            },
        };
        let evaluation = match read.evaluation {
            None => Evaluation::default(),
            Some(e) => Evaluation {
                validation: match (e.val_split, e.val_data_file) {
                    (Some(fraction), _) => Validation::Split(fraction),
                    (None, Some(source)) => Validation::Data {
                        data: val_data.ok_or_else(|| {
                            Error::InvalidArgument(format!(
                                "the checkpoint's run evaluated on a validation file: give it \
                                 to resume ({})",
                                self.path.display()
                            ))
                        })?,
                        source,
                    },
                    (None, None) => Validation::None,
                },
                every: e.eval_every,
            },
        };
        let config = TrainConfig {
            network,
            task,
            samples: read.samples,
            shuffle: read.shuffle,
            drop_last: read.drop_last,
            steps: read.steps,
            record_every: read.record_every,
            optimizer: read.optimizer,
            lr: read.lr,
            lr_schedule: read.lr_schedule,
            precision,
            loss_scale: read.loss_scale,
            evaluation,
        };
        // Other data first: they would rebuild another configuration (another loss, another
        // number of samples), which the check below would blame on the file.
        if let (Task::File { .. }, Some(data)) = (&config.task, &data) {
            self.check_data(data)?;
        }
        if let Validation::Data { data, source } = &config.evaluation.validation {
            self.check_val_data(data, source)?;
        }
        // What was rebuilt must say what was written, bit for bit.
        let again = serde_json::to_string(&config).map_err(|e| self.problem(e))?;
        if again != self.config_json {
            return Err(self.problem(format!(
                "its configuration does not read back as written (a file edited by hand, or \
                 written by another version): wrote {}, reads {again}",
                self.config_json
            )));
        }
        Ok(config)
    }

    /// Refuses a validation set other than the one the run evaluated on (`source`), where the
    /// checkpoint has its fingerprint.
    fn check_val_data(&self, data: &TrainData, source: &str) -> Result<()> {
        let Some(had) = &self.state.data.val_fingerprint else {
            return Ok(());
        };
        let found = fingerprint(data);
        if found != *had {
            return Err(Error::InvalidArgument(format!(
                "these are not the validation data the checkpoint's run evaluated on ({source}, \
                 fingerprint {had}): {} samples, fingerprint {found} ({})",
                data.samples(),
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Refuses a data set other than the one the run trained on.
    fn check_data(&self, data: &TrainData) -> Result<()> {
        let found = fingerprint(data);
        if found != self.state.data.fingerprint {
            return Err(Error::InvalidArgument(format!(
                "these are not the data the checkpoint's run trained on ({} samples, \
                 fingerprint {}): {} samples, fingerprint {found} ({})",
                self.state.data.samples,
                self.state.data.fingerprint,
                data.samples(),
                self.path.display()
            )));
        }
        Ok(())
    }

    /// The checkpoint's model as the parameters a run from `source` was given: the shapes,
    /// biases and names the configuration takes from them.
    fn given_parameters(&self, source: &str, network: &NetworkConfig) -> Result<GivenParameters> {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        let mut names = Vec::new();
        for n in &self.state.parameters {
            let read = |name: &str| -> Result<HostTensor> {
                let t = self.stored(&format!("model.{name}"))?;
                let shape = match t.shape[..] {
                    [rows, cols] => Shape::new(rows, cols),
                    [n] => Shape::new(1, n),
                    _ => return Err(self.problem(format!("model.{name} has shape {:?}", t.shape))),
                };
                Ok(self
                    .tensor(&format!("model.{name}"), t, shape)?
                    .cast(DType::F32))
            };
            weights.push(read(&n.weight)?);
            biases.push(n.bias.as_deref().map(read).transpose()?);
            names.push(LayerNames {
                weight: n.weight.clone(),
                bias: n.bias.clone(),
            });
        }
        if weights.is_empty() {
            return Err(self.problem("it names no parameters"));
        }
        Ok(GivenParameters {
            source: source.to_string(),
            weights,
            biases,
            names,
            activation: Some(network.activation),
            output_activation: Some(network.output_activation),
        })
    }

    fn stored(&self, name: &str) -> Result<&Stored> {
        self.tensors
            .get(name)
            .ok_or_else(|| self.problem(format!("it has no tensor '{name}'")))
    }

    /// A stored tensor as a host tensor of `shape`.
    fn tensor(&self, name: &str, t: &Stored, shape: Shape) -> Result<HostTensor> {
        let dtype = match t.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::Bf16,
            other => return Err(self.problem(format!("tensor '{name}' has dtype {other:?}"))),
        };
        if t.bytes.len() as u64 != shape.len() as u64 * dtype.size_bytes() {
            return Err(self.problem(format!(
                "tensor '{name}' holds {} bytes, not {} values of {dtype:?}",
                t.bytes.len(),
                shape.len()
            )));
        }
        HostTensor::new(shape, HostData::from_le_bytes(dtype, shape.len(), &t.bytes))
    }

    /// The tensor `name`, which must have `dtype` and the shape of `like` (a bias as a
    /// vector), for `backend`.
    fn upload<B: Backend>(
        &self,
        backend: &B,
        used: &mut BTreeSet<String>,
        name: &str,
        like: &B::Tensor,
        bias: bool,
    ) -> Result<B::Tensor> {
        let t = self.stored(name)?;
        let shape = backend.shape(like);
        let want = (
            safetensors_dtype(backend.dtype(like))?,
            file_shape(shape, bias),
        );
        if (t.dtype, &t.shape) != (want.0, &want.1) {
            return Err(self.problem(format!(
                "tensor '{name}' is {:?} {:?}, but the run holds it as {:?} {:?}",
                t.dtype, t.shape, want.0, want.1
            )));
        }
        used.insert(name.to_string());
        backend.upload(&self.tensor(name, t, shape)?)
    }

    /// Sets a trainer just built from this checkpoint's configuration (its steps may differ)
    /// to the state the checkpoint saved.
    pub(super) fn restore<B: Backend>(&self, state: TrainerState<'_, B>) -> Result<()> {
        let config = state.config;
        let mut as_written = config.clone();
        as_written.steps = self.read_config()?.steps;
        let json = serde_json::to_string(&as_written).map_err(|e| self.problem(e))?;
        if json != self.config_json {
            return Err(Error::InvalidArgument(format!(
                "the run to resume is not the checkpoint's: its configuration {json}, the \
                 checkpoint's {} ({})",
                self.config_json,
                self.path.display()
            )));
        }
        if config.steps < self.state.step {
            return Err(Error::InvalidArgument(format!(
                "steps {} is before the checkpoint's step {}: a resumed run goes on from it",
                config.steps, self.state.step
            )));
        }
        self.check_data(given_data(config, state.data))?;
        let backend = state.backend;
        let names = &self.state.parameters;
        if names.len() != config.network.depth {
            return Err(self.problem(format!(
                "it names {} layers for a network of {}",
                names.len(),
                config.network.depth
            )));
        }
        let mut used = BTreeSet::from([RECORDS.to_string(), ORDER.to_string()]);
        let [first_name, second_name] = state_names(config.optimizer.kind);
        let mut index = 0;
        for t in 1..=config.network.depth {
            let layer = &names[t - 1];
            for bias in [false, true] {
                let (name, slot, model) = if bias {
                    match (&layer.bias, state.bias_slots[t].as_mut()) {
                        (Some(name), Some(slot)) => {
                            (name, slot, state.params.bias_mut(t).expect("a bias slot"))
                        }
                        (None, None) => continue,
                        _ => {
                            return Err(self.problem(format!(
                                "layer {t}'s bias is not the run's: the checkpoint has {}",
                                layer.bias.as_deref().unwrap_or("none")
                            )))
                        }
                    }
                } else {
                    (
                        &layer.weight,
                        &mut state.weight_slots[t - 1],
                        state
                            .params
                            .weight_mut(t)
                            .expect("training keeps its weights"),
                    )
                };
                let key = format!("model.{name}");
                *model = self.upload(backend, &mut used, &key, model, bias)?;
                let Slot {
                    master,
                    first,
                    second,
                } = slot;
                if let Some(m) = master {
                    *m = self.upload(backend, &mut used, &format!("master.{name}"), m, bias)?;
                }
                for (tensor, what) in [(first, first_name), (second, second_name)] {
                    if let Some(s) = tensor {
                        let key = format!("optimizer.state.{index}.{what}");
                        *s = self.upload(backend, &mut used, &key, s, bias)?;
                    }
                }
                if config.optimizer.kind != OptimizerKind::Sgd {
                    let key = format!("optimizer.state.{index}.step");
                    let step = self.stored(&key)?;
                    let written = self.tensor(&key, step, Shape::new(1, 1))?.to_f32_vec()[0];
                    if written != self.state.optimizer_steps as f32 {
                        return Err(self.problem(format!(
                            "{key} is {written}, but the optimizer took {} steps",
                            self.state.optimizer_steps
                        )));
                    }
                    used.insert(key);
                }
                index += 1;
            }
        }
        if let Some(fp8) = state.fp8 {
            for t in 1..=config.network.depth {
                for role in Role::ALL {
                    let mut floats = |what: &str| -> Result<Vec<f32>> {
                        let key = fp8_key(t, role, what);
                        let s = self.stored(&key)?;
                        let len = s.shape.iter().product::<usize>();
                        used.insert(key.clone());
                        Ok(self.tensor(&key, s, Shape::new(1, len))?.to_f32_vec())
                    };
                    let next = floats("scale")?;
                    let history = floats("amax_history")?;
                    let [next] = next[..] else {
                        return Err(self.problem(format!(
                            "{} holds {} values, not one",
                            fp8_key(t, role, "scale"),
                            next.len()
                        )));
                    };
                    fp8.set_operand(t, role, next, history);
                }
            }
        }
        if let Some(extra) = self.tensors.keys().find(|k| !used.contains(*k)) {
            return Err(self.problem(format!(
                "it holds '{extra}', which the run has no place for"
            )));
        }

        let order = self.stored(ORDER)?;
        if order.dtype != Dtype::I64 || order.bytes.len() % 8 != 0 {
            return Err(self.problem(format!("'{ORDER}' is not an int64 vector")));
        }
        let order: Vec<usize> = order
            .bytes
            .chunks_exact(8)
            // A negative index becomes one no order has, which `resume` refuses.
            .map(|b| usize::try_from(i64::from_le_bytes(b.try_into().expect("8 bytes"))))
            .map(|i| i.unwrap_or(usize::MAX))
            .collect();
        let data = &self.state.data;
        state
            .batches
            .resume(data.epoch, order, data.taken)
            .map_err(|e| self.problem(e))?;
        *state.scaler = Scaler::resumed(
            config.loss_scale,
            self.state.scaler.scale,
            self.state.scaler.growth_tracker,
        );
        *state.optimizer_steps = self.state.optimizer_steps;
        // ‖W^t‖ now is what the last step recorded after its update.
        if let Some(last) = self.records.last() {
            if last.layers.len() != state.weight_norms.len() {
                return Err(self.problem("its records have another number of layers"));
            }
            for (norm, layer) in state.weight_norms.iter_mut().zip(&last.layers) {
                *norm = layer.weight_norm;
            }
        }
        *state.records = self.records.clone();
        // The checkpoint's last step ended the run that wrote it, which took its full
        // statistics and evaluated there for that alone; a run that goes on past it is the
        // uninterrupted run, which did neither there unless its own rules say so.
        if config.steps > self.state.step {
            if let Some(last) = state.records.last_mut() {
                if !config.records_in_full(last.step) {
                    last.snapshot = None;
                }
                if !config.evaluation.due(last.step, false) {
                    last.eval = None;
                }
            }
        }
        *state.in_steps = Duration::from_secs_f64(self.state.step_seconds.max(0.0));
        *state.wall_before = Duration::from_secs_f64(self.state.wall_seconds.max(0.0));
        Ok(())
    }
}
