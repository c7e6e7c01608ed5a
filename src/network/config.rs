//! The configuration of a deep MLP and its run: widths, activation, initialiser, input, bias,
//! residual connections, loss and clipping, and the weights, biases and inputs a seed draws
//! for it. Same seed, same numbers, on every backend.

use super::fp8::Fp8Scaling;
use std::sync::Arc;

use super::given::{GivenData, GivenParameters};
use super::loss::Loss;
use crate::checked::{f32_for, Use};
use crate::error::{Error, Result};
use crate::init::{self, Init, InputInit};
use crate::ops::activation::Activation;
use crate::precision::DType;
use crate::tensor::HostTensor;
use crate::theory::{MeanFieldNetwork, TopGradient};

/// Weights up to this size stay on the device between forward and backward, by default.
pub const KEEP_WEIGHTS_BYTES: u64 = 1 << 30;

/// Gradient clipping of the weight gradients, with PyTorch's semantics.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "limit", rename_all = "snake_case")]
pub enum Clip {
    /// `clip_grad_norm_(max_norm)`: scale every gradient by min(1, max_norm / (‖g‖ + 1e-6)).
    Norm(f64),
    /// `clip_grad_value_(clip_value)`: clamp every element to [−clip_value, clip_value].
    Value(f64),
}

/// Everything that defines one network and its run. Its JSON ([`NetworkConfig::json`])
/// describes the network that ran: what a file decided is taken from the file.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    pub depth: usize,
    /// n_0 (the input width), n_1, …, n_depth.
    pub widths: Vec<usize>,
    pub batch: usize,
    pub activation: Activation,
    pub init: Init,
    pub input: InputInit,
    /// Biases are drawn from N(0, bias_std²); 0 means no bias.
    pub bias_std: f64,
    pub residual: bool,
    /// Whether the activation follows the last layer too: the lecture's h^t = σ(W^t h^{t−1})
    /// at every layer (`run`), or a linear head as in a PyTorch regression or classification
    /// model (`train`'s default).
    pub output_activation: bool,
    /// Biases drawn as `nn.Linear` draws them, U(−1/√n_{t−1}, 1/√n_{t−1}) (`train --bias`),
    /// instead of from N(0, bias_std²).
    pub linear_bias: bool,
    pub loss: Loss,
    pub clip: Option<Clip>,
    /// How FP8 chooses each operand's scale (used by the `fp8` precision only).
    pub fp8_scaling: Fp8Scaling,
    pub seed: u64,
    /// Weights up to this many bytes stay on the device between forward and backward; beyond
    /// it each layer's are drawn again from (seed, layer) when backward needs them. Both give
    /// the same bits; only memory differs. `KEEP_WEIGHTS_BYTES` by default.
    pub keep_weights_bytes: u64,
    /// A memory budget for host and device (`--max-memory`); a run that needs more is refused
    /// before it allocates. `None`: only what the machine and the device have.
    pub max_memory_bytes: Option<u64>,
    /// Weights and biases from a PyTorch state dict instead of the initialiser (`--weights`);
    /// the JSON names the file.
    pub given_parameters: Option<Arc<GivenParameters>>,
    /// The input batch (and MSE targets or cross-entropy labels) from a file instead of drawn
    /// (`--data`).
    pub given_data: Option<Arc<GivenData>>,
}

/// The JSON of a network: the fields of [`NetworkConfig`], with what a file decided taken
/// from the file: no initialiser where the weights are given, no drawn input where the data
/// are, biases where the file has them.
#[derive(serde::Serialize)]
pub struct NetworkJson<'a> {
    depth: usize,
    widths: &'a [usize],
    batch: usize,
    activation: Activation,
    /// `null` where the weights came from a file.
    init: Option<Init>,
    /// `null` where the input batch came from a file.
    input: Option<InputInit>,
    bias_std: f64,
    residual: bool,
    output_activation: bool,
    /// nn.Linear biases: drawn as `nn.Linear` draws them, or a file's.
    linear_bias: bool,
    /// `run`'s loss; a training run's loss is its task's, which its own JSON gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    loss: Option<Loss>,
    clip: Option<Clip>,
    fp8_scaling: Fp8Scaling,
    seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    weights_file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_file: Option<&'a str>,
}

impl serde::Serialize for NetworkConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.json(Some(self.loss)).serialize(s)
    }
}

impl NetworkConfig {
    /// What the JSON says of this network, with `loss` where the loss is the network's own.
    pub fn json(&self, loss: Option<Loss>) -> NetworkJson<'_> {
        let weights = self.given_parameters.as_deref();
        let data = self.given_data.as_deref();
        NetworkJson {
            depth: self.depth,
            widths: &self.widths,
            batch: self.batch,
            activation: self.activation,
            init: weights.is_none().then_some(self.init),
            input: data.is_none().then_some(self.input),
            bias_std: self.bias_std,
            residual: self.residual,
            output_activation: self.output_activation,
            linear_bias: match weights {
                Some(_) => self.has_biases(),
                None => self.linear_bias,
            },
            loss,
            clip: self.clip,
            fp8_scaling: self.fp8_scaling,
            seed: self.seed,
            weights_file: weights.map(|g| g.source.as_str()),
            data_file: data.map(|g| g.source.as_str()),
        }
    }

    /// A ReLU net with He initialisation and an N(0, 1) input.
    pub fn new(depth: usize, width: usize, batch: usize) -> Self {
        NetworkConfig {
            depth,
            widths: vec![width; depth + 1],
            batch,
            activation: Activation::Relu,
            init: Init::KaimingNormal {
                mode: init::FanMode::FanIn,
                gain: init::Gain::PyTorchDefault,
            },
            input: InputInit::Normal { std: 1.0 },
            bias_std: 0.0,
            residual: false,
            output_activation: true,
            linear_bias: false,
            loss: Loss::Probe,
            clip: None,
            fp8_scaling: Fp8Scaling::default(),
            seed: 0,
            keep_weights_bytes: KEEP_WEIGHTS_BYTES,
            max_memory_bytes: None,
            given_parameters: None,
            given_data: None,
        }
    }

    /// Sets the widths from one width or a list: `[w]` for every layer, or n_0 … n_depth.
    pub fn with_widths(mut self, widths: &[usize]) -> Result<Self> {
        self.widths = match widths.len() {
            1 => vec![widths[0]; self.depth + 1],
            n if n == self.depth + 1 => widths.to_vec(),
            n => {
                return Err(Error::InvalidArgument(format!(
                    "--width takes one width or depth + 1 = {} widths (input, then each layer), got {n}",
                    self.depth + 1
                )))
            }
        };
        Ok(self)
    }

    /// Starts from given weights and biases: depth and widths come from them.
    pub fn with_given_parameters(mut self, given: GivenParameters) -> Self {
        self.depth = given.depth();
        self.widths = given.widths();
        self.bias_std = 0.0;
        self.linear_bias = false;
        self.given_parameters = Some(Arc::new(given));
        self
    }

    /// Runs on a given input batch (and targets): the batch size comes from it.
    pub fn with_given_data(mut self, given: GivenData) -> Self {
        self.batch = given.batch();
        self.given_data = Some(Arc::new(given));
        self
    }

    /// Whether any layer adds a bias.
    pub fn has_biases(&self) -> bool {
        match &self.given_parameters {
            Some(g) => g.biases.iter().any(Option::is_some),
            None => self.bias_std > 0.0 || self.linear_bias,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.depth == 0 || self.batch == 0 {
            return bad("depth and batch must be at least 1".into());
        }
        if Some(self.widths.len()) != self.depth.checked_add(1) || self.widths.contains(&0) {
            return bad(format!(
                "need depth + 1 = {} widths of at least 1, got {:?}",
                self.depth + 1,
                self.widths
            ));
        }
        if self.residual && self.widths.windows(2).any(|w| w[0] != w[1]) {
            return bad("residual connections need every width equal".into());
        }
        f32_for("--bias-std", self.bias_std, Use::NonNegative)?;
        match self.clip {
            Some(Clip::Norm(l)) => _ = f32_for("--clip-norm", l, Use::Positive)?,
            Some(Clip::Value(l)) => _ = f32_for("--clip-value", l, Use::Positive)?,
            None => {}
        }
        if let Some(g) = &self.given_parameters {
            if g.widths() != self.widths {
                return bad(format!(
                    "the weights of {} have widths {:?}, not {:?}",
                    g.source,
                    g.widths(),
                    self.widths
                ));
            }
            if self.bias_std != 0.0 || self.linear_bias {
                return bad(
                    "given weights bring their own biases; --bias-std and --bias do not apply"
                        .into(),
                );
            }
        }
        if let Some(data) = &self.given_data {
            let x = data.x.shape();
            if x.rows != self.batch || x.cols != self.widths[0] {
                return bad(format!(
                    "x of {} is {x}, but the network takes {} inputs in a batch of {}",
                    data.source, self.widths[0], self.batch
                ));
            }
            let outputs = self.widths[self.depth];
            match (&data.y, self.loss) {
                (Some(y), Loss::Mse) if y.shape().cols != outputs => {
                    return bad(format!(
                        "y of {} is {}, but the network has {outputs} outputs",
                        data.source,
                        y.shape()
                    ))
                }
                (None, Loss::Mse) => {
                    return bad(format!(
                        "--loss mse needs targets: {} has x but no float y",
                        data.source
                    ))
                }
                _ => {}
            }
            if self.loss == Loss::CrossEntropy {
                let Some(labels) = &data.labels else {
                    return bad(format!(
                        "--loss cross-entropy needs labels: {} has x but no integer y [N]",
                        data.source
                    ));
                };
                check_labels(labels, outputs, &data.source)?;
            }
        } else if self.loss == Loss::CrossEntropy {
            return bad(
                "--loss cross-entropy needs labels: give --data FILE with x and integer y [N]"
                    .into(),
            );
        }
        Ok(())
    }

    /// W^t, [n_t, n_{t−1}]: as given, or drawn from (seed, t) alone.
    pub fn weight(&self, t: usize, dtype: DType) -> Result<HostTensor> {
        if let Some(g) = &self.given_parameters {
            return Ok(g.weights[t - 1].cast(dtype));
        }
        let (n_in, n_out) = (self.widths[t - 1], self.widths[t]);
        let mut rng = init::stream(self.seed, init::WEIGHTS, t);
        let w = self.init.sample(n_in, n_out, &self.activation, &mut rng);
        HostTensor::from_f32_as(dtype, n_out, n_in, &w)
    }

    /// b^t as a [1, n_t] row, or `None` without biases.
    pub fn bias(&self, t: usize, dtype: DType) -> Result<Option<HostTensor>> {
        if let Some(g) = &self.given_parameters {
            return Ok(g.biases[t - 1].as_ref().map(|b| b.cast(dtype)));
        }
        let values = if self.linear_bias {
            InputInit::Uniform {
                bound: 1.0 / (self.widths[t - 1] as f64).sqrt(),
            }
        } else if self.bias_std > 0.0 {
            InputInit::Normal { std: self.bias_std }
        } else {
            return Ok(None);
        };
        let mut rng = init::stream(self.seed, init::BIASES, t);
        let b = values.sample(self.widths[t], &mut rng);
        HostTensor::from_f32_as(dtype, 1, self.widths[t], &b).map(Some)
    }

    /// ∂l/∂H^d as the loss gives it outright: N(0, 1) for the probe, ones for the sum, `None`
    /// for MSE and cross-entropy (whose gradients depend on the output).
    pub fn upstream_gradient(&self, dtype: DType) -> Result<Option<HostTensor>> {
        let values = match self.loss {
            Loss::Probe => InputInit::Normal { std: 1.0 },
            Loss::Sum => InputInit::Constant { value: 1.0 },
            Loss::Mse | Loss::CrossEntropy => return Ok(None),
        };
        self.top_draw(init::UPSTREAM, values, dtype).map(Some)
    }

    /// The targets Y of the MSE loss, given or drawn from N(0, 1), in `dtype`; the labels of
    /// cross-entropy as a [batch, 1] f32 column (the loss kernel's targets, exact integers
    /// below 2^24); `None` for the other losses.
    pub fn targets(&self, dtype: DType) -> Result<Option<HostTensor>> {
        if self.loss == Loss::CrossEntropy {
            let labels = self
                .given_data
                .as_ref()
                .and_then(|d| d.labels.as_ref())
                .ok_or_else(|| {
                    Error::InvalidArgument("--loss cross-entropy needs labels from --data".into())
                })?;
            let column = labels.iter().map(|&l| l as f32).collect();
            return HostTensor::from_f32(labels.len(), 1, column).map(Some);
        }
        if let (Loss::Mse, Some(y)) = (
            self.loss,
            self.given_data.as_ref().and_then(|d| d.y.as_ref()),
        ) {
            return Ok(Some(y.cast(dtype)));
        }
        match self.loss {
            Loss::Mse => self
                .top_draw(init::TARGETS, InputInit::Normal { std: 1.0 }, dtype)
                .map(Some),
            _ => Ok(None),
        }
    }

    /// A [batch, n_d] tensor drawn from (seed, purpose).
    fn top_draw(&self, purpose: u64, values: InputInit, dtype: DType) -> Result<HostTensor> {
        let (rows, cols) = (self.batch, self.widths[self.depth]);
        let mut rng = init::stream(self.seed, purpose, 0);
        let v = values.sample(rows * cols, &mut rng);
        HostTensor::from_f32_as(dtype, rows, cols, &v)
    }

    /// The input batch H^0: given, or drawn from (seed).
    pub fn input_batch(&self, dtype: DType) -> Result<HostTensor> {
        if let Some(data) = &self.given_data {
            return Ok(data.x.cast(dtype));
        }
        let mut rng = init::stream(self.seed, init::INPUT, 0);
        let x = self.input.sample(self.batch * self.widths[0], &mut rng);
        HostTensor::from_f32_as(dtype, self.batch, self.widths[0], &x)
    }

    /// Bytes of all weights in `dtype`.
    pub fn weight_bytes(&self, dtype: DType) -> u64 {
        self.widths
            .windows(2)
            .map(|w| (w[0] * w[1]) as u64)
            .sum::<u64>()
            * dtype.size_bytes()
    }

    pub fn keeps_weights(&self, dtype: DType) -> bool {
        self.weight_bytes(dtype) <= self.keep_weights_bytes
    }

    /// What the mean-field theory needs of this network, as plain values: the second moment
    /// of the weights this initialiser draws for each layer, the input's, and where backward
    /// starts.
    pub fn mean_field(&self) -> MeanFieldNetwork {
        MeanFieldNetwork {
            widths: self.widths.clone(),
            activation: self.activation,
            weight_second_moments: match &self.given_parameters {
                Some(g) => g.weights.iter().map(mean_square).collect(),
                None => self
                    .widths
                    .windows(2)
                    .map(|w| self.init.second_moment(w[0], w[1], &self.activation))
                    .collect(),
            },
            input_second_moment: match &self.given_data {
                Some(data) => mean_square(&data.x),
                None => self.input.second_moment(),
            },
            bias_variances: match &self.given_parameters {
                Some(g) => g
                    .biases
                    .iter()
                    .map(|b| b.as_ref().map_or(0.0, mean_square))
                    .collect(),
                None if self.linear_bias => {
                    // U(−a, a) with a = 1/√n_{t−1} has variance a²/3.
                    self.widths[..self.depth]
                        .iter()
                        .map(|&n| 1.0 / (3.0 * n as f64))
                        .collect()
                }
                None => vec![self.bias_std * self.bias_std; self.depth],
            },
            residual: self.residual,
            output_activation: self.output_activation,
            top_gradient: match self.loss {
                Loss::Probe | Loss::Sum => TopGradient::Unit,
                Loss::Mse => TopGradient::MseAgainstStandardNormal {
                    elements: (self.batch * self.widths[self.depth]) as f64,
                },
                Loss::CrossEntropy => TopGradient::CrossEntropy {
                    rows: self.batch as f64,
                    classes: self.widths[self.depth] as f64,
                },
            },
        }
    }
}

/// Labels for a network of `outputs` logits: each a class, 0..outputs, and at least two
/// classes to tell apart (with one output the gradient is 0 whatever the model).
fn check_labels(labels: &[u32], outputs: usize, source: &str) -> Result<()> {
    if outputs < 2 {
        return Err(Error::InvalidArgument(format!(
            "--loss cross-entropy needs at least two classes, but the network has {outputs} output"
        )));
    }
    if let Some((row, l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= outputs)
    {
        return Err(Error::InvalidArgument(format!(
            "{source} has the label {l} (row {row}), but the network has {outputs} outputs (classes 0..{})",
            outputs - 1
        )));
    }
    Ok(())
}

/// E[x²] over a tensor's values.
fn mean_square(t: &HostTensor) -> f64 {
    let v = t.to_f64_vec();
    v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64
}
