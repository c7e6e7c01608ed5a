//! A deep MLP run forward and backward on any backend, with the statistics record of every
//! layer's pre-activation, activation, gradient and weight gradient.
//!
//! Layer t computes Z^t = H^{t−1}·W^tᵀ (+ b^t), H^t = act(Z^t) (+ H^{t−1} with residual
//! connections), with W^t of shape [n_t, n_{t−1}] as in PyTorch. Backward starts from an
//! upstream gradient ∂l/∂H^d and applies dZ = dH ⊙ act'(Z), dW = dZᵀ·H^{t−1}, dH^{t−1} = dZ·W.
//!
//! Memory: forward keeps only what backward needs, which is Z^t of every layer (H^{t−1} is
//! recomputed as act(Z^{t−1}), bit for bit), plus H^{t−1} with residual connections. Weights are
//! kept on the device while they fit `KEEP_WEIGHTS_BYTES`; beyond that each layer's weights are
//! drawn again from (seed, layer) when backward needs them.

use std::fmt;
use std::str::FromStr;

use crate::backend::{Backend, MatmulOp};
use crate::error::{Error, Result};
use crate::init::{self, Init, InputInit};
use crate::ops::activation::Activation;
use crate::precision::{DType, Precision};
use crate::stats::StatsRecord;
use crate::tensor::HostTensor;
use crate::theory;

/// Weights up to this size stay on the device between forward and backward.
pub const KEEP_WEIGHTS_BYTES: u64 = 1 << 30;

/// Where backward starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// ∂l/∂H^d ~ N(0, 1): the signal-propagation convention.
    Probe,
    /// l = Σ H^d, so ∂l/∂H^d = 1.
    Sum,
    /// l = mean((H^d − Y)²) against targets Y ~ N(0, 1), as torch.nn.MSELoss.
    Mse,
}

impl FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "probe" => Ok(Loss::Probe),
            "sum" => Ok(Loss::Sum),
            "mse" => Ok(Loss::Mse),
            _ => Err(Error::Parse {
                what: "loss",
                value: s.to_string(),
                expected: "probe, sum or mse",
            }),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::Probe => "probe",
            Loss::Sum => "sum",
            Loss::Mse => "mse",
        })
    }
}

/// Gradient clipping of the weight gradients, with PyTorch's semantics.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", content = "limit", rename_all = "snake_case")]
pub enum Clip {
    /// `clip_grad_norm_(max_norm)`: scale every gradient by min(1, max_norm / (‖g‖ + 1e-6)).
    Norm(f64),
    /// `clip_grad_value_(clip_value)`: clamp every element to [−clip_value, clip_value].
    Value(f64),
}

/// Everything that defines one network and its run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
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
    pub loss: Loss,
    pub clip: Option<Clip>,
    pub seed: u64,
}

impl NetworkConfig {
    /// A ReLU net with He initialisation and an N(0, 1) input.
    pub fn new(depth: usize, width: usize, batch: usize) -> Self {
        NetworkConfig {
            depth,
            widths: vec![width; depth + 1],
            batch,
            activation: Activation::Relu,
            init: Init::KaimingNormal {
                mode: init::FanMode::FanIn,
                gain: None,
            },
            input: InputInit::Normal { std: 1.0 },
            bias_std: 0.0,
            residual: false,
            loss: Loss::Probe,
            clip: None,
            seed: 0,
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

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.depth == 0 || self.batch == 0 {
            return bad("depth and batch must be at least 1".into());
        }
        if self.widths.len() != self.depth + 1 || self.widths.contains(&0) {
            return bad(format!(
                "need depth + 1 = {} widths of at least 1, got {:?}",
                self.depth + 1,
                self.widths
            ));
        }
        if self.residual && self.widths.windows(2).any(|w| w[0] != w[1]) {
            return bad("residual connections need every width equal".into());
        }
        if !(self.bias_std >= 0.0 && self.bias_std.is_finite()) {
            return bad(format!(
                "bias std must be finite and ≥ 0, got {}",
                self.bias_std
            ));
        }
        if let Some(Clip::Norm(l) | Clip::Value(l)) = self.clip {
            if !(l > 0.0 && l.is_finite()) {
                return bad(format!("a clipping limit must be finite and > 0, got {l}"));
            }
        }
        Ok(())
    }

    /// W^t, [n_t, n_{t−1}], from (seed, t) alone.
    pub fn weight(&self, t: usize, dtype: DType) -> Result<HostTensor> {
        let (n_in, n_out) = (self.widths[t - 1], self.widths[t]);
        let mut rng = init::stream(self.seed, init::WEIGHTS, t);
        let w = self.init.sample(n_in, n_out, &self.activation, &mut rng);
        HostTensor::from_f32_as(dtype, n_out, n_in, &w)
    }

    /// b^t as a [1, n_t] row, or `None` without biases.
    pub fn bias(&self, t: usize, dtype: DType) -> Result<Option<HostTensor>> {
        if self.bias_std == 0.0 {
            return Ok(None);
        }
        let mut rng = init::stream(self.seed, init::BIASES, t);
        let b = InputInit::Normal { std: self.bias_std }.sample(self.widths[t], &mut rng);
        HostTensor::from_f32_as(dtype, 1, self.widths[t], &b).map(Some)
    }

    pub fn input_batch(&self, dtype: DType) -> Result<HostTensor> {
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
        self.weight_bytes(dtype) <= KEEP_WEIGHTS_BYTES
    }

    /// The most device memory a run holds at once, in bytes: the kept tensors (Z^t of every
    /// layer, H^{t−1} too with residual connections, the weights while they fit
    /// `KEEP_WEIGHTS_BYTES`) plus the working set of the widest layer (a weight and its
    /// gradient, and a few activations). It grows linearly with depth · width · batch, plus
    /// depth · width² while weights are kept.
    pub fn device_memory_bytes(&self, dtype: DType) -> u64 {
        let b = dtype.size_bytes();
        let acts: u64 = self.widths[1..]
            .iter()
            .map(|&n| (self.batch * n) as u64)
            .sum();
        let kept = acts * b * if self.residual { 2 } else { 1 };
        let weights = if self.keeps_weights(dtype) {
            self.weight_bytes(dtype)
        } else {
            0
        };
        let widest = *self.widths.iter().max().unwrap() as u64;
        let working = (2 * widest * widest + 8 * self.batch as u64 * widest) * b;
        kept + weights + working
    }
}

/// The theory beside one layer's measurements.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TheoryPoint {
    /// q^t; `None` for layer 0.
    pub pre_activation_second_moment: Option<f64>,
    pub grad_second_moment: f64,
}

/// The records of one layer. Layer 0 is the input: its activation is the input batch and its
/// gradient the input gradient; it has no pre-activation or weight.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerRecord {
    pub layer: usize,
    pub pre_activation: Option<StatsRecord>,
    pub activation: Option<StatsRecord>,
    pub grad_activation: Option<StatsRecord>,
    pub grad_weight: Option<StatsRecord>,
    pub theory: TheoryPoint,
}

/// Where one precision first ran into trouble.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// The first layer whose pre-activation or activation holds a NaN or ±inf.
    pub first_nonfinite_forward: Option<usize>,
    /// Counting down from the top, the first layer whose gradient or weight gradient does.
    pub first_nonfinite_backward: Option<usize>,
    /// The first layer whose pre-activation or activation holds a subnormal value.
    pub first_subnormal: Option<usize>,
    /// Counting down from the top, the first layer whose gradient or weight gradient does.
    pub first_subnormal_backward: Option<usize>,
    /// Counting down from the top, the first layer whose gradient is exactly zero everywhere.
    pub first_all_zero_grad: Option<usize>,
    /// E[(∂l/∂H^0)²] / E[(∂l/∂H^d)²]: how much of the gradient reaches the bottom.
    pub grad_second_moment_ratio: f64,
}

/// One run of one precision.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunRecord {
    pub precision: String,
    pub layers: Vec<LayerRecord>,
    pub summary: Summary,
    /// ‖(dW^1, …, dW^d)‖ before clipping by norm.
    pub grad_norm_before_clip: Option<f64>,
    /// The factor clipping by norm applied (1 when the norm was within the limit).
    pub clip_coefficient: Option<f64>,
}

fn nonfinite(r: &Option<StatsRecord>) -> bool {
    r.as_ref()
        .is_some_and(|s| s.nan + s.pos_inf + s.neg_inf > 0)
}

fn summarise(layers: &[LayerRecord]) -> Summary {
    let d = layers.len() - 1;
    let first_nonfinite_forward = layers
        .iter()
        .find(|l| nonfinite(&l.pre_activation) || nonfinite(&l.activation))
        .map(|l| l.layer);
    let first_nonfinite_backward = layers
        .iter()
        .rev()
        .find(|l| nonfinite(&l.grad_activation) || nonfinite(&l.grad_weight))
        .map(|l| l.layer);
    let has_subnormal = |r: &Option<StatsRecord>| r.as_ref().is_some_and(|s| s.subnormal > 0);
    let first_subnormal = layers
        .iter()
        .find(|l| has_subnormal(&l.pre_activation) || has_subnormal(&l.activation))
        .map(|l| l.layer);
    let first_subnormal_backward = layers
        .iter()
        .rev()
        .find(|l| has_subnormal(&l.grad_activation) || has_subnormal(&l.grad_weight))
        .map(|l| l.layer);
    let first_all_zero_grad = layers
        .iter()
        .rev()
        .find(|l| {
            l.grad_activation
                .as_ref()
                .is_some_and(|s| s.zero == s.count)
        })
        .map(|l| l.layer);
    let moment = |t: usize| {
        layers[t].grad_activation.as_ref().map_or(f64::NAN, |s| {
            if s.finite() == s.count {
                s.second_moment()
            } else {
                f64::NAN
            }
        })
    };
    Summary {
        first_nonfinite_forward,
        first_nonfinite_backward,
        first_subnormal,
        first_subnormal_backward,
        first_all_zero_grad,
        grad_second_moment_ratio: moment(0) / moment(d),
    }
}

/// A weight kept on the device, or made again for this use.
enum Kept<'a, T> {
    Borrowed(&'a T),
    Owned(T),
}

impl<T> Kept<'_, T> {
    fn get(&self) -> &T {
        match self {
            Kept::Borrowed(t) => t,
            Kept::Owned(t) => t,
        }
    }
}

/// The tensors a run needs before the timer starts: the input, the upstream gradient or the
/// targets, and the weights and biases where they are kept.
pub struct Prepared<T> {
    input: T,
    upstream: Option<T>,
    targets: Option<T>,
    weights: Option<Vec<T>>,
    biases: Vec<Option<T>>,
    ones: Option<T>,
}

/// Draws and uploads everything a run of `config` in `precision` needs up front.
pub fn prepare<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
) -> Result<Prepared<B::Tensor>> {
    config.validate()?;
    let dtype = precision.storage();
    let d = config.depth;
    let top = (config.batch, config.widths[d]);
    let draw = |purpose: u64, values: InputInit| -> Result<B::Tensor> {
        let mut rng = init::stream(config.seed, purpose, 0);
        let v = values.sample(top.0 * top.1, &mut rng);
        backend.upload(&HostTensor::from_f32_as(dtype, top.0, top.1, &v)?)
    };
    let upstream = match config.loss {
        Loss::Probe => Some(draw(init::UPSTREAM, InputInit::Normal { std: 1.0 })?),
        Loss::Sum => Some(draw(init::UPSTREAM, InputInit::Constant { value: 1.0 })?),
        Loss::Mse => None,
    };
    let targets = match config.loss {
        Loss::Mse => Some(draw(init::TARGETS, InputInit::Normal { std: 1.0 })?),
        _ => None,
    };
    let weights = if config.keeps_weights(dtype) {
        Some(
            (1..=d)
                .map(|t| backend.upload(&config.weight(t, dtype)?))
                .collect::<Result<Vec<_>>>()?,
        )
    } else {
        None
    };
    let mut biases = vec![None];
    for t in 1..=d {
        biases.push(match config.bias(t, dtype)? {
            Some(b) => Some(backend.upload(&b)?),
            None => None,
        });
    }
    let ones = if config.bias_std > 0.0 {
        Some(backend.upload(&HostTensor::from_f32_as(
            dtype,
            config.batch,
            1,
            &vec![1.0; config.batch],
        )?)?)
    } else {
        None
    };
    Ok(Prepared {
        input: backend.upload(&config.input_batch(dtype)?)?,
        upstream,
        targets,
        weights,
        biases,
        ones,
    })
}

/// Runs `config` forward and backward in `precision`, recording every layer. `progress` is
/// told (steps done, steps in all) after every layer of either pass.
pub fn run<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RunRecord> {
    let prepared = prepare(backend, config, precision)?;
    run_prepared(backend, config, precision, &prepared, progress)
}

/// `run` with the tensors of `prepare`: the part worth timing.
pub fn run_prepared<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
    prepared: &Prepared<B::Tensor>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RunRecord> {
    let d = config.depth;
    let dtype = precision.storage();
    let act = config.activation;
    let steps = 2 * d;
    let prediction = theory::predict(config);
    let mut layers: Vec<LayerRecord> = (0..=d)
        .map(|t| LayerRecord {
            layer: t,
            pre_activation: None,
            activation: None,
            grad_activation: None,
            grad_weight: None,
            theory: TheoryPoint {
                pre_activation_second_moment: (t > 0)
                    .then(|| prediction.pre_activation_second_moment[t]),
                grad_second_moment: prediction.grad_second_moment[t],
            },
        })
        .collect();
    let weight = |t: usize| -> Result<Kept<'_, B::Tensor>> {
        Ok(match &prepared.weights {
            Some(w) => Kept::Borrowed(&w[t - 1]),
            None => Kept::Owned(backend.upload(&config.weight(t, dtype)?)?),
        })
    };

    // Forward: keep Z^t (and H^{t−1} with residual connections).
    layers[0].activation = Some(backend.stats(&prepared.input)?);
    let mut zs: Vec<Option<B::Tensor>> = (0..=d).map(|_| None).collect();
    let mut kept_h: Vec<Option<B::Tensor>> = (0..=d).map(|_| None).collect();
    let mut h: Option<B::Tensor> = None;
    for t in 1..=d {
        let h_prev = h.as_ref().unwrap_or(&prepared.input);
        let mut z = backend.matmul(
            h_prev,
            weight(t)?.get(),
            MatmulOp::new(false, true),
            precision,
        )?;
        if let (Some(b), Some(ones)) = (&prepared.biases[t], &prepared.ones) {
            let broadcast = backend.matmul(ones, b, MatmulOp::default(), precision)?;
            z = backend.axpy(1.0, &broadcast, &z, precision)?;
        }
        let a = backend.activation(act, &z, precision)?;
        let h_new = if config.residual {
            backend.axpy(1.0, &a, h_prev, precision)?
        } else {
            a
        };
        layers[t].pre_activation = Some(backend.stats(&z)?);
        layers[t].activation = Some(backend.stats(&h_new)?);
        zs[t] = Some(z);
        // H^{t−1} is needed again only with residual connections (otherwise it is act(Z^{t−1})).
        let previous = h.replace(h_new);
        if config.residual {
            kept_h[t - 1] = previous;
        }
        progress(t, steps);
    }

    // Backward from ∂l/∂H^d.
    let top = h.expect("depth ≥ 1");
    let mut g = match (&prepared.upstream, &prepared.targets) {
        (Some(u), _) => backend.scale(u, 1.0, precision)?,
        (None, Some(y)) => {
            let numel = (config.batch * config.widths[d]) as f32;
            let diff = backend.axpy(-1.0, y, &top, precision)?;
            backend.scale(&diff, 2.0 / numel, precision)?
        }
        (None, None) => unreachable!("prepare sets one of them"),
    };
    drop(top);
    layers[d].grad_activation = Some(backend.stats(&g)?);
    let clip_norm = matches!(config.clip, Some(Clip::Norm(_)));
    let mut kept_grads: Vec<Option<B::Tensor>> = (0..=d).map(|_| None).collect();
    let mut norm_squared = 0.0f64;
    for t in (1..=d).rev() {
        let z = zs[t].take().expect("kept by forward");
        let derivative = backend.activation_derivative(act, &z, precision)?;
        let dz = backend.hadamard(&g, &derivative, precision)?;
        drop((z, derivative));
        let h_prev_owned;
        let h_prev = if t == 1 {
            &prepared.input
        } else if config.residual {
            kept_h[t - 1].as_ref().expect("kept by forward")
        } else {
            h_prev_owned = backend.activation(act, zs[t - 1].as_ref().expect("kept"), precision)?;
            &h_prev_owned
        };
        let mut dw = backend.matmul(&dz, h_prev, MatmulOp::new(true, false), precision)?;
        let mut g_prev = backend.matmul(&dz, weight(t)?.get(), MatmulOp::default(), precision)?;
        if config.residual {
            g_prev = backend.axpy(1.0, &g, &g_prev, precision)?;
        }
        if let Some(Clip::Value(limit)) = config.clip {
            dw = backend.clamp_abs(&dw, limit as f32, precision)?;
        }
        let dw_stats = backend.stats(&dw)?;
        norm_squared += dw_stats.l2_norm * dw_stats.l2_norm;
        layers[t].grad_weight = Some(dw_stats);
        if clip_norm {
            kept_grads[t] = Some(dw);
        }
        layers[t - 1].grad_activation = Some(backend.stats(&g_prev)?);
        kept_h[t - 1] = None;
        g = g_prev;
        progress(d + (d - t + 1), steps);
    }

    // clip_grad_norm_: one factor for every weight gradient, from their joint norm.
    let (mut grad_norm_before_clip, mut clip_coefficient) = (None, None);
    if let Some(Clip::Norm(max_norm)) = config.clip {
        let norm = norm_squared.sqrt();
        let coefficient = (max_norm / (norm + 1e-6)).min(1.0);
        grad_norm_before_clip = Some(norm);
        clip_coefficient = Some(coefficient);
        if coefficient < 1.0 {
            for t in 1..=d {
                let dw = kept_grads[t].take().expect("kept for clipping");
                let clipped = backend.scale(&dw, coefficient as f32, precision)?;
                layers[t].grad_weight = Some(backend.stats(&clipped)?);
            }
        }
    }
    Ok(RunRecord {
        precision: precision.name().to_string(),
        summary: summarise(&layers),
        layers,
        grad_norm_before_clip,
        clip_coefficient,
    })
}
