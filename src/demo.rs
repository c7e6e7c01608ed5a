//! The demo: a deep ReLU chain with N(0, 1) weights, run in f32 and f16 side by side, showing
//! the layer where f16 first overflows. Each layer multiplies E[h²] by width·σ²/2 (THEORY.md §7),
//! so with width 256 the largest |h| grows about √128 ≈ 11.3 times per layer.

use rand::SeedableRng;

use crate::backend::{Backend, MatmulOp};
use crate::error::Result;
use crate::ops::activation::Activation;
use crate::precision::Precision;
use crate::verify::normal_tensor;

#[derive(Clone, Copy, Debug)]
pub struct ChainConfig {
    pub depth: usize,
    pub width: usize,
    pub batch: usize,
    pub weight_std: f32,
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

/// The largest |h| of each layer's output (NaN where the layer holds a NaN), layers 1..=depth.
pub fn relu_chain_max_abs<B: Backend>(
    backend: &B,
    config: &ChainConfig,
    precision: Precision,
) -> Result<Vec<f64>> {
    let dtype = precision.storage();
    // One seeded stream for the input and every weight: both precisions see the same numbers.
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let input = normal_tensor(&mut rng, dtype, config.batch, config.width, 1.0)?;
    let mut h = backend.upload(&input)?;
    let mut maxima = Vec::with_capacity(config.depth);
    for _ in 0..config.depth {
        // W is [n_out, n_in] as in PyTorch, so Z = H · Wᵀ.
        let w = normal_tensor(
            &mut rng,
            dtype,
            config.width,
            config.width,
            config.weight_std,
        )?;
        let z = backend.matmul(
            &h,
            &backend.upload(&w)?,
            MatmulOp::new(false, true),
            precision,
        )?;
        h = backend.activation(Activation::Relu, &z, precision)?;
        let values = backend.download(&h)?.to_f64_vec();
        let max = values.iter().fold(0.0f64, |m, &v| {
            if v.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(v.abs())
            }
        });
        maxima.push(max);
    }
    Ok(maxima)
}

/// The first layer (1-based) whose largest |h| is not finite.
pub fn first_nonfinite_layer(maxima: &[f64]) -> Option<usize> {
    maxima.iter().position(|m| !m.is_finite()).map(|i| i + 1)
}
