//! What a user brings instead of drawing: the weights of a PyTorch `nn.Sequential` of
//! `nn.Linear` layers and parameter-free activations, as `safetensors.torch.save_file(
//! model.state_dict(), FILE)` writes them, and a data set (`x`, and `y`: float targets for an
//! MSE loss, integer labels for cross-entropy) in a `.safetensors` or `.npz` file.
//!
//! A state dict names each linear layer by its index in the `Sequential` (`0.weight`,
//! `0.bias`, `2.weight`, …, with activations at the indices between), optionally behind a
//! common prefix (`net.0.weight`). Layers are taken in index order; biases are optional.
//!
//! A state dict holds no activations. The file gradstab writes (`--save-weights`) says them
//! in its safetensors metadata ([`META_ACTIVATION`], [`META_OUTPUT_ACTIVATION`]), so the model
//! comes back whole; a plain PyTorch state dict leaves them to whoever loads it.

use std::collections::BTreeMap;
use std::path::Path;

use super::loss::Loss;
use crate::error::{Error, Result};
use crate::files::{self, FileTensor};
use crate::ops::activation::Activation;
use crate::tensor::{HostTensor, Shape};

/// Weights W^t `[n_t, n_{t−1}]` and optional biases b^t `[1, n_t]`, in f32 as given.
#[derive(Clone, Debug, PartialEq)]
pub struct GivenParameters {
    /// The file they came from.
    pub source: String,
    pub weights: Vec<HostTensor>,
    pub biases: Vec<Option<HostTensor>>,
    /// Each layer's parameter names in the file ('0.weight', 'model.2.bias', …), which a
    /// save of the trained model writes again.
    pub names: Vec<LayerNames>,
    /// The activation between the layers, where the file says it ([`META_ACTIVATION`]).
    pub activation: Option<Activation>,
    /// Whether the activation follows the last layer too, where the file says it.
    pub output_activation: Option<bool>,
}

/// The safetensors metadata key of the activation, in its `Display` / `FromStr` form.
pub const META_ACTIVATION: &str = "gradstab.activation";
/// The metadata key of whether the activation follows the last layer: "true" or "false".
pub const META_OUTPUT_ACTIVATION: &str = "gradstab.output_activation";
/// The metadata key of the gradstab version that wrote the file.
pub const META_VERSION: &str = "gradstab.version";

/// The state-dict names of one layer's weight and bias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerNames {
    pub weight: String,
    pub bias: Option<String>,
}

impl GivenParameters {
    /// Parameters under an `nn.Sequential`'s own names: Linear layers at 0, 2, 4, … with
    /// an activation between them.
    pub fn sequential(
        source: impl Into<String>,
        weights: Vec<HostTensor>,
        biases: Vec<Option<HostTensor>>,
    ) -> Self {
        let names = biases
            .iter()
            .enumerate()
            .map(|(i, b)| LayerNames {
                weight: format!("{}.weight", 2 * i),
                bias: b.as_ref().map(|_| format!("{}.bias", 2 * i)),
            })
            .collect();
        GivenParameters {
            source: source.into(),
            weights,
            biases,
            names,
            activation: None,
            output_activation: None,
        }
    }

    /// n_0, n_1, …, n_d.
    pub fn widths(&self) -> Vec<usize> {
        let mut widths = vec![self.weights[0].shape().cols];
        widths.extend(self.weights.iter().map(|w| w.shape().rows));
        widths
    }

    pub fn depth(&self) -> usize {
        self.weights.len()
    }
}

/// The input batch `x` `[N, n_0]` and what the loss takes of `y`: float targets `[N, n_d]`
/// for MSE, or integer class labels `[N]` for cross-entropy.
#[derive(Clone, Debug, PartialEq)]
pub struct GivenData {
    pub source: String,
    pub x: HostTensor,
    /// Float targets (MSE).
    pub y: Option<HostTensor>,
    /// Class labels (cross-entropy).
    pub labels: Option<Vec<u32>>,
    /// Whether the file has a `y` that this loss does not read (the probe and sum losses),
    /// which the caller says it ignored.
    pub y_ignored: bool,
}

pub(crate) fn problem(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: what.to_string(),
        source: None,
    }
}

/// A file tensor as an f32 matrix of `rows × cols`; f16, bf16 and f64 are converted (f16 and
/// bf16 exactly). Weights and data must be finite: a NaN or inf given would be measured as
/// if the network had made it (`gradstab stats FILE` shows where they are).
pub(crate) fn matrix(path: &Path, t: &FileTensor, rows: usize, cols: usize) -> Result<HostTensor> {
    let values = t
        .values
        .as_ref()
        .ok_or_else(|| problem(path, format!("tensor '{}' has no elements", t.name)))?;
    if let Some(note) = &t.note {
        return Err(problem(path, format!("tensor '{}': {note}", t.name)));
    }
    let values = values.to_f32_vec();
    let non_finite = values.iter().filter(|v| !v.is_finite()).count();
    if non_finite > 0 {
        return Err(problem(
            path,
            format!(
                "'{}' holds {non_finite} non-finite values (NaN or inf): gradstab takes finite \
                 weights and data",
                t.name
            ),
        ));
    }
    HostTensor::from_f32(rows, cols, values)
}

/// The 2-D shape of a tensor, or an error naming it.
pub(crate) fn two_dimensional(path: &Path, t: &FileTensor, role: &str) -> Result<(usize, usize)> {
    match t.shape[..] {
        [rows, cols] if rows > 0 && cols > 0 => Ok((rows, cols)),
        _ => Err(problem(
            path,
            format!(
                "'{}' has shape {:?}, but {role} must be a non-empty 2-D matrix",
                t.name, t.shape
            ),
        )),
    }
}

/// What gradstab runs, for the messages that refuse anything else.
const RUNS_LINEAR: &str = "gradstab runs nn.Linear layers with activations between them (the \
     state dict of an nn.Sequential: '0.weight', '0.bias', '2.weight', …)";

/// The activation and output activation a file's metadata names, each where it names it.
fn activations_of(
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<(Option<Activation>, Option<bool>)> {
    let activation = match metadata.get(META_ACTIVATION) {
        None => None,
        Some(a) => Some(
            a.parse::<Activation>()
                .map_err(|e| problem(path, format!("metadata '{META_ACTIVATION}': {e}")))?,
        ),
    };
    let output_activation = match metadata.get(META_OUTPUT_ACTIVATION).map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(problem(
                path,
                format!(
                    "metadata '{META_OUTPUT_ACTIVATION}' is '{}': expected true or false",
                    files::printable(other)
                ),
            ))
        }
    };
    Ok((activation, output_activation))
}

/// Refuses a tensor of a module gradstab does not run (a normalisation layer, a convolution,
/// anything but nn.Linear), by name: run without it, the model would not be the one given.
fn refuse_other_modules(path: &Path, t: &FileTensor) -> Result<()> {
    let name = files::printable(&t.name);
    let kind = t.name.rsplit('.').next().unwrap_or("");
    let what = match kind {
        "running_mean" | "running_var" | "num_batches_tracked" => {
            format!("'{name}' is a BatchNorm buffer")
        }
        "weight" if t.shape.len() == 1 => format!(
            "'{name}' has shape {:?}: a 1-D weight is a normalisation layer's (LayerNorm, \
             BatchNorm), not an nn.Linear's [outputs, inputs]",
            t.shape
        ),
        "weight" if t.shape.len() > 2 => format!(
            "'{name}' has shape {:?}: a weight of more than 2 dimensions is a convolution's, \
             not an nn.Linear's [outputs, inputs]",
            t.shape
        ),
        _ => return Ok(()),
    };
    Err(problem(path, format!("{what}; {RUNS_LINEAR}")))
}

/// Reads the weights and biases of an `nn.Sequential` state dict, and the activations where
/// the file's metadata names them.
pub fn load_parameters(path: &Path) -> Result<GivenParameters> {
    let (tensors, metadata) = files::load_with_metadata(path)?;
    let (activation, output_activation) = activations_of(path, &metadata)?;
    for t in &tensors {
        refuse_other_modules(path, t)?;
    }
    // index → (weight, bias), keyed by the module index before `.weight` / `.bias`.
    let mut layers: BTreeMap<usize, (Option<&FileTensor>, Option<&FileTensor>)> = BTreeMap::new();
    let mut prefix: Option<String> = None;
    for t in &tensors {
        let unexpected = || {
            problem(
                path,
                format!(
                    "'{}' is not a parameter of an nn.Linear layer; {RUNS_LINEAR}",
                    files::printable(&t.name)
                ),
            )
        };
        let (head, kind) = t.name.rsplit_once('.').ok_or_else(unexpected)?;
        let (before, index) = match head.rsplit_once('.') {
            Some((before, index)) => (before.to_string(), index),
            None => (String::new(), head),
        };
        let index: usize = index.parse().map_err(|_| unexpected())?;
        match &prefix {
            None => prefix = Some(before),
            Some(p) if *p == before => {}
            Some(p) => {
                return Err(problem(
                    path,
                    format!("'{}' does not share the prefix '{p}' of the others", t.name),
                ))
            }
        }
        let slot = layers.entry(index).or_default();
        let place = match kind {
            "weight" => &mut slot.0,
            "bias" => &mut slot.1,
            _ => return Err(unexpected()),
        };
        // '0.weight' and '00.weight' name one parameter: neither may silently win.
        if let Some(other) = place.replace(t) {
            return Err(problem(
                path,
                format!(
                    "'{}' and '{}' both name the {kind} of layer {index}",
                    other.name, t.name
                ),
            ));
        }
    }
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    let mut names = Vec::new();
    for (index, (weight, bias)) in &layers {
        let Some(weight) = weight else {
            return Err(problem(
                path,
                format!("missing layer: '{index}.bias' has no '{index}.weight'"),
            ));
        };
        for t in [Some(weight), bias.as_ref()].into_iter().flatten() {
            if t.dtype.is_integer() {
                return Err(problem(
                    path,
                    format!(
                        "'{}' is an integer tensor ({}); nn.Linear parameters are f16, bf16, f32 or f64",
                        t.name,
                        t.dtype.name()
                    ),
                ));
            }
        }
        let (rows, cols) = two_dimensional(path, weight, "an nn.Linear weight")?;
        if let Some(previous) = weights.last() {
            let previous: &HostTensor = previous;
            if previous.shape().rows != cols {
                return Err(problem(
                    path,
                    format!(
                        "mismatched widths: '{}' is {rows}×{cols} but the layer before it has {} outputs",
                        weight.name,
                        previous.shape().rows
                    ),
                ));
            }
        }
        weights.push(matrix(path, weight, rows, cols)?);
        names.push(LayerNames {
            weight: weight.name.clone(),
            bias: bias.map(|b| b.name.clone()),
        });
        biases.push(match bias {
            None => None,
            Some(b) => {
                if b.shape != [rows] {
                    return Err(problem(
                        path,
                        format!(
                            "'{}' has shape {:?}, but its layer has {rows} outputs",
                            b.name, b.shape
                        ),
                    ));
                }
                Some(matrix(path, b, 1, rows)?)
            }
        });
    }
    if weights.is_empty() {
        return Err(problem(path, "the state dict holds no nn.Linear weight"));
    }
    Ok(GivenParameters {
        source: path.display().to_string(),
        weights,
        biases,
        names,
        activation,
        output_activation,
    })
}

/// Reads `x` and what `loss` takes of `y` from a `.safetensors` or `.npz` file: float
/// targets for MSE, integer labels for cross-entropy; the probe and sum losses take no `y`,
/// so whatever `y` is there (any dtype or shape) is not read, only noted (`y_ignored`).
pub fn load_data(path: &Path, loss: Loss) -> Result<GivenData> {
    let tensors = files::load(path)?;
    let find = |name: &str| tensors.iter().find(|t| t.name == name);
    let x = find("x").ok_or_else(|| {
        problem(
            path,
            "no tensor 'x': --data reads the input batch x [N, inputs] and, for --loss mse, the \
             targets y [N, outputs], for --loss cross-entropy the labels y [N]",
        )
    })?;
    let (n, inputs) = two_dimensional(path, x, "the input batch x")?;
    let mut data = GivenData {
        source: path.display().to_string(),
        x: matrix(path, x, n, inputs)?,
        y: None,
        labels: None,
        y_ignored: false,
    };
    let Some(y) = find("y") else {
        // Refused by `NetworkConfig::validate` where the loss needs targets, in one place.
        return Ok(data);
    };
    match loss {
        Loss::Probe | Loss::Sum => data.y_ignored = true,
        // Labels are not MSE targets: validate says what MSE needs.
        Loss::Mse if y.dtype.is_integer() => {}
        Loss::Mse => {
            let (rows, cols) = two_dimensional(path, y, "the targets y")?;
            if rows != n {
                return Err(problem(
                    path,
                    format!("x has {n} rows but y has {rows}: one target row per input"),
                ));
            }
            data.y = Some(matrix(path, y, rows, cols)?);
        }
        Loss::CrossEntropy => data.labels = Some(labels(path, y, n)?),
    }
    Ok(data)
}

/// Class labels from an integer `y` of shape `[n]`, as `F.cross_entropy` takes them: each ≥ 0
/// (whether each is below the network's outputs is for the network to check).
pub(crate) fn labels(path: &Path, y: &FileTensor, n: usize) -> Result<Vec<u32>> {
    if !y.dtype.is_integer() {
        return Err(problem(
            path,
            format!(
                "y is {}: cross-entropy takes integer class labels y [N] (int64, as torch.long)",
                y.dtype.name()
            ),
        ));
    }
    let [rows] = y.shape[..] else {
        return Err(problem(
            path,
            format!("integer y must be [N] labels, got shape {:?}", y.shape),
        ));
    };
    if rows != n {
        return Err(problem(
            path,
            format!("x has {n} rows but y has {rows} labels"),
        ));
    }
    let values = matrix(path, y, rows, 1)?.to_f32_vec();
    if let Some(v) = values.iter().find(|&&v| v < 0.0) {
        return Err(problem(
            path,
            format!("y holds the label {v}; labels are ≥ 0"),
        ));
    }
    Ok(values.iter().map(|&v| v as u32).collect())
}

impl GivenData {
    pub fn batch(&self) -> usize {
        self.x.shape().rows
    }

    pub fn input_shape(&self) -> Shape {
        self.x.shape()
    }
}
