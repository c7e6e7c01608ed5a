//! A deep MLP run forward and backward on any backend, with the statistics record of every
//! layer's pre-activation, activation, gradient and weight gradient beside what theory
//! predicts. `config.rs` says what the network is, `steps.rs` computes it, `record.rs` holds
//! what a run found; `run` here composes the steps and records each layer.

pub mod config;
pub mod fp8;
pub mod given;
pub mod loss;
pub mod memory;
pub mod record;
pub mod steps;

pub use config::{Clip, NetworkConfig, KEEP_WEIGHTS_BYTES};
pub use fp8::{Fp8Record, Fp8Scaling, Fp8State};
pub use given::{load_data, load_parameters, GivenData, GivenParameters};
pub use loss::Loss;
pub use record::{Crossed, LayerRecord, RunRecord, Summary, TheoryPoint};
pub use steps::{LossStart, Parameters};

use crate::backend::Backend;
use crate::error::Result;
use crate::precision::Precision;
use crate::tensor::HostTensor;
use crate::theory;
use fp8::Fp8Pass;

/// The tensors a run needs before the timer starts: the input, where backward starts, and the
/// weights and biases.
pub struct Prepared<T> {
    input: T,
    start: LossStart<T>,
    params: Parameters<T>,
}

/// Everything a run of `config` in `precision` on `backend` needs, checked before anything is
/// drawn or allocated: a valid network, a precision the backend computes, memory enough, and a
/// clipping limit that does not round to zero.
pub fn check<B: Backend>(backend: &B, config: &NetworkConfig, precision: Precision) -> Result<()> {
    config.validate()?;
    backend.require(precision)?;
    memory::check_fits(backend, config, precision)?;
    if let Some(Clip::Value(limit) | Clip::Norm(limit)) = config.clip {
        // Clamping to ±0, or scaling to a norm of 0, would zero every gradient: a request that
        // cannot mean what it says.
        let rounded = precision
            .storage()
            .round(precision.arithmetic().round(limit));
        if rounded == 0.0 {
            let flag = match config.clip {
                Some(Clip::Value(_)) => "--clip-value",
                _ => "--clip-norm",
            };
            return Err(crate::error::Error::InvalidArgument(format!(
                "{flag} {limit:e} rounds to 0 in {}, which would zero every gradient; \
                 its smallest positive value is {:e}",
                precision.storage(),
                precision.storage().subnormal_half_spacing() * 2.0
            )));
        }
    }
    Ok(())
}

/// Draws and uploads everything a run of `config` in `precision` needs up front.
pub fn prepare<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
) -> Result<Prepared<B::Tensor>> {
    check(backend, config, precision)?;
    let dtype = precision.storage();
    let start = match (config.upstream_gradient(dtype)?, config.targets(dtype)?) {
        (Some(upstream), _) => LossStart::Upstream(backend.upload(&upstream)?),
        (None, Some(labels)) if config.loss == Loss::CrossEntropy => {
            LossStart::CrossEntropyLabels(backend.upload(&labels)?)
        }
        (None, Some(targets)) => LossStart::MseTargets(backend.upload(&targets)?),
        (None, None) => unreachable!("every loss has an upstream gradient or targets"),
    };
    let params = Parameters::upload(backend, config, precision)?;
    Ok(Prepared {
        input: backend.upload(&config.input_batch(dtype)?)?,
        start,
        params,
    })
}

/// What one forward and backward pass hands out, tensor by tensor, as it goes.
pub trait PassObserver<T> {
    /// H^0, the input batch.
    fn input(&mut self, x: &T) -> Result<()>;
    /// Z^t and H^t, after layer t of forward.
    fn forward(&mut self, t: usize, z: &T, h: &T) -> Result<()>;
    /// ∂l/∂H^t: first t = d, then after each layer of backward t − 1.
    fn grad_activation(&mut self, t: usize, g: &T) -> Result<()>;
    /// ∂l/∂W^t after layer t of backward, clipped by value where asked.
    fn grad_weight(&mut self, t: usize, dw: &T) -> Result<()>;
    /// ∂l/∂W^t again, after clipping by norm scaled it (only when the factor is below 1,
    /// or NaN).
    fn clipped_grad_weight(&mut self, t: usize, dw: &T) -> Result<()> {
        self.grad_weight(t, dw)
    }
}

/// What clipping by norm found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClipOutcome {
    /// ‖(dW^1, …, dW^d)‖ before clipping by norm.
    pub grad_norm_before_clip: Option<f64>,
    /// The factor clipping by norm applied (1 when the norm was within the limit).
    pub clip_coefficient: Option<f64>,
}

/// One forward and backward pass of `config` with the tensors of `prepare`: forward, the
/// loss gradient, backward, and clipping as PyTorch's `clip_grad_value_` and
/// `clip_grad_norm_` do it, handing every tensor to `observer`.
pub fn pass<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
    prepared: &Prepared<B::Tensor>,
    observer: &mut dyn PassObserver<B::Tensor>,
) -> Result<(ClipOutcome, Vec<Fp8Record>)> {
    let Prepared {
        input,
        start,
        params,
    } = prepared;
    // One pass is the first step of any FP8 scaling rule: delayed scaling's scales are 1.
    let mut state = Fp8State::new(config.fp8_scaling, config.depth);
    let mut fp8 = precision
        .quantised()
        .map(|_| Fp8Pass::new(&mut state, precision));
    observer.input(input)?;
    let (forward_pass, output) = steps::forward(
        backend,
        config,
        precision,
        params,
        input,
        &mut fp8,
        &mut |t, z, h| observer.forward(t, z, h),
    )?;
    let grad_output = steps::loss_gradient(backend, precision, &output, start)?;
    drop(output);
    observer.grad_activation(config.depth, &grad_output)?;

    // Clipping by value applies to each weight gradient as it comes; clipping by norm needs
    // their joint norm first, so it keeps them all.
    let max_norm = match config.clip {
        Some(Clip::Norm(max_norm)) => Some(max_norm),
        _ => None,
    };
    let mut kept: Vec<(usize, B::Tensor)> = Vec::new();
    let mut norms: Vec<B::PendingStats> = Vec::new();
    steps::backward(
        backend,
        config,
        precision,
        params,
        input,
        forward_pass,
        grad_output,
        &mut fp8,
        &mut |t, grads, g_prev| {
            let dw = grads.weight;
            let dw = match config.clip {
                Some(Clip::Value(limit)) => steps::clip_value(backend, &dw, limit, precision)?,
                _ => dw,
            };
            observer.grad_weight(t, &dw)?;
            if max_norm.is_some() {
                norms.push(backend.stats_later(&dw)?);
                kept.push((t, dw));
            }
            observer.grad_activation(t - 1, g_prev)
        },
    )?;

    let fp8_records = match fp8 {
        Some(q) => q.finish(backend)?,
        None => Vec::new(),
    };
    let Some(max_norm) = max_norm else {
        return Ok((ClipOutcome::default(), fp8_records));
    };
    // The joint norm needs every layer's: one read after backward, not one per layer.
    let norm = backend
        .collect_stats(norms)?
        .iter()
        .map(|r| r.l2_norm.powi(2))
        .sum::<f64>()
        .sqrt();
    let coefficient = steps::clip_norm_coefficient(norm, max_norm);
    // Below 1, or NaN from a NaN norm: PyTorch scales by it either way.
    if coefficient < 1.0 || coefficient.is_nan() {
        let (layers, grads): (Vec<usize>, Vec<B::Tensor>) = kept.into_iter().unzip();
        let clipped = steps::scale_all(backend, &grads, coefficient, precision)?;
        for (t, dw) in layers.into_iter().zip(&clipped) {
            observer.clipped_grad_weight(t, dw)?;
        }
    }
    let clip = ClipOutcome {
        grad_norm_before_clip: Some(norm),
        clip_coefficient: Some(coefficient),
    };
    Ok((clip, fp8_records))
}

/// Runs `config` forward and backward in `precision`, recording every layer. `progress` is
/// told (steps done, steps in all) after every layer of either pass.
pub fn run<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
    progress: &mut dyn FnMut(usize, usize) -> Result<()>,
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
    progress: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<RunRecord> {
    let mut recorder = Recorder {
        backend,
        pending: Vec::new(),
        progress,
        depth: config.depth,
    };
    let (clip, fp8) = pass(backend, config, precision, prepared, &mut recorder)?;
    // Every record of the pass comes back at once: on a GPU, one read.
    let (slots, pending): (Vec<Slot>, Vec<B::PendingStats>) = recorder.pending.into_iter().unzip();
    let mut layers = empty_records(config);
    for (slot, record) in slots.into_iter().zip(backend.collect_stats(pending)?) {
        let layer = &mut layers[slot.layer];
        let field = match slot.tensor {
            Recorded::PreActivation => &mut layer.pre_activation,
            Recorded::Activation => &mut layer.activation,
            Recorded::GradActivation => &mut layer.grad_activation,
            Recorded::GradWeight => &mut layer.grad_weight,
        };
        // A weight gradient clipped by norm is recorded twice; the later record wins.
        *field = Some(record);
    }
    Ok(RunRecord {
        precision: precision.name().to_string(),
        storage: precision.storage(),
        summary: record::summarise(&layers),
        layers,
        grad_norm_before_clip: clip.grad_norm_before_clip,
        clip_coefficient: clip.clip_coefficient,
        fp8,
    })
}

/// Which tensor of a layer a record describes.
#[derive(Clone, Copy)]
enum Recorded {
    PreActivation,
    Activation,
    GradActivation,
    GradWeight,
}

#[derive(Clone, Copy)]
struct Slot {
    layer: usize,
    tensor: Recorded,
}

/// Starts the statistics record of every tensor a pass hands out; none is waited for until
/// the pass is over.
struct Recorder<'a, B: Backend> {
    backend: &'a B,
    pending: Vec<(Slot, B::PendingStats)>,
    progress: &'a mut dyn FnMut(usize, usize) -> Result<()>,
    depth: usize,
}

impl<B: Backend> Recorder<'_, B> {
    fn record(&mut self, layer: usize, tensor: Recorded, x: &B::Tensor) -> Result<()> {
        let pending = self.backend.stats_later(x)?;
        self.pending.push((Slot { layer, tensor }, pending));
        Ok(())
    }
}

impl<B: Backend> PassObserver<B::Tensor> for Recorder<'_, B> {
    fn input(&mut self, x: &B::Tensor) -> Result<()> {
        self.record(0, Recorded::Activation, x)
    }

    fn forward(&mut self, t: usize, z: &B::Tensor, h: &B::Tensor) -> Result<()> {
        self.record(t, Recorded::PreActivation, z)?;
        self.record(t, Recorded::Activation, h)?;
        (self.progress)(t, 2 * self.depth)?;
        Ok(())
    }

    fn grad_activation(&mut self, t: usize, g: &B::Tensor) -> Result<()> {
        self.record(t, Recorded::GradActivation, g)?;
        if t < self.depth {
            // Backward has finished layer t + 1.
            (self.progress)(2 * self.depth - t, 2 * self.depth)?;
        }
        Ok(())
    }

    fn grad_weight(&mut self, t: usize, dw: &B::Tensor) -> Result<()> {
        self.record(t, Recorded::GradWeight, dw)
    }
}

/// Every tensor of one pass, downloaded: for comparing a backend value by value with a
/// reference (small networks only).
#[derive(Clone, Debug)]
pub struct Trace {
    /// Z^t at index t (index 0: `None`).
    pub pre_activation: Vec<Option<HostTensor>>,
    /// H^t at index t; index 0 is the input.
    pub activation: Vec<HostTensor>,
    /// ∂l/∂H^t at index t.
    pub grad_activation: Vec<HostTensor>,
    /// ∂l/∂W^t at index t after clipping (index 0: `None`).
    pub grad_weight: Vec<Option<HostTensor>>,
    pub clip: ClipOutcome,
}

/// Runs `config` forward and backward in `precision` and downloads every tensor.
pub fn trace<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
) -> Result<Trace> {
    struct Downloader<'a, B> {
        backend: &'a B,
        trace: Trace,
    }
    impl<B: Backend> PassObserver<B::Tensor> for Downloader<'_, B> {
        fn input(&mut self, x: &B::Tensor) -> Result<()> {
            self.trace.activation[0] = self.backend.download(x)?;
            Ok(())
        }
        fn forward(&mut self, t: usize, z: &B::Tensor, h: &B::Tensor) -> Result<()> {
            self.trace.pre_activation[t] = Some(self.backend.download(z)?);
            self.trace.activation[t] = self.backend.download(h)?;
            Ok(())
        }
        fn grad_activation(&mut self, t: usize, g: &B::Tensor) -> Result<()> {
            self.trace.grad_activation[t] = self.backend.download(g)?;
            Ok(())
        }
        fn grad_weight(&mut self, t: usize, dw: &B::Tensor) -> Result<()> {
            self.trace.grad_weight[t] = Some(self.backend.download(dw)?);
            Ok(())
        }
    }
    let prepared = prepare(backend, config, precision)?;
    let empty = HostTensor::from_f32(1, 1, vec![0.0])?;
    let d = config.depth;
    let mut downloader = Downloader {
        backend,
        trace: Trace {
            pre_activation: vec![None; d + 1],
            activation: vec![empty.clone(); d + 1],
            grad_activation: vec![empty; d + 1],
            grad_weight: vec![None; d + 1],
            clip: ClipOutcome::default(),
        },
    };
    downloader.trace.clip = pass(backend, config, precision, &prepared, &mut downloader)?.0;
    Ok(downloader.trace)
}

/// One record per layer 0..=depth, with the theory filled in and no measurements yet.
fn empty_records(config: &NetworkConfig) -> Vec<LayerRecord> {
    let prediction = theory::predict(&config.mean_field());
    (0..=config.depth)
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
        .collect()
}
