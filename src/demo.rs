//! The demo: a deep ReLU MLP with N(0, 1) weights, run forward in f32 and f16 side by side,
//! showing the layer where f16 first overflows. Each layer multiplies E\[h²\] by width·σ²/2
//! (docs/theory.md), so with width 256 the largest |h| grows about √128 ≈ 11.3 times per
//! layer. It is an ordinary network of `network::NetworkConfig`, run by `network::steps`.

use crate::backend::Backend;
use crate::error::Result;
use crate::init::{Init, InputInit};
use crate::network::steps::{self, Parameters};
use crate::network::NetworkConfig;
use crate::ops::activation::Activation;
use crate::precision::Precision;

#[derive(Clone, Copy, Debug)]
pub struct ChainConfig {
    pub depth: usize,
    pub width: usize,
    pub batch: usize,
    pub weight_std: f64,
    pub seed: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            depth: 20,
            width: 256,
            batch: 64,
            weight_std: 1.0,
            seed: 0,
        }
    }
}

impl ChainConfig {
    /// The network: ReLU, weights N(0, weight_std²), input N(0, 1).
    pub fn network(&self) -> NetworkConfig {
        NetworkConfig {
            activation: Activation::Relu,
            init: Init::Normal {
                std: self.weight_std,
            },
            input: InputInit::Normal { std: 1.0 },
            seed: self.seed,
            ..NetworkConfig::new(self.depth, self.width, self.batch)
        }
    }
}

/// The largest |h| of each layer's output, layers 1..=depth: NaN where the layer holds a NaN,
/// inf where it holds an inf and no NaN.
pub fn relu_chain_max_abs<B: Backend>(
    backend: &B,
    config: &ChainConfig,
    precision: Precision,
) -> Result<Vec<f64>> {
    let network = config.network();
    network.validate()?;
    backend.require(precision)?;
    let params = Parameters::upload(backend, &network, precision)?;
    let input = backend.upload(&network.input_batch(precision.storage())?)?;
    let mut pending = Vec::with_capacity(config.depth);
    steps::forward(
        backend,
        &network,
        precision,
        &params,
        &input,
        &mut None,
        &mut |_, _, h| {
            pending.push(backend.stats_later(h)?);
            Ok(())
        },
    )?;
    // Every layer's record at once: on a GPU, one read after the chain.
    let maxima = backend
        .collect_stats(pending)?
        .iter()
        .map(|s| {
            if s.nan > 0 {
                f64::NAN
            } else if s.pos_inf + s.neg_inf > 0 {
                f64::INFINITY
            } else {
                s.abs_max
            }
        })
        .collect();
    Ok(maxima)
}

/// The first layer (1-based) that overflowed: not finite, or at the format's largest finite
/// value, where a device that saturates overflow (WGSL allows it) leaves it.
pub fn first_overflow_layer(maxima: &[f64], largest_finite: f64) -> Option<usize> {
    maxima
        .iter()
        .position(|m| !m.is_finite() || *m >= largest_finite)
        .map(|i| i + 1)
}
