//! `--save-weights`: the trained weights as the state dict of a PyTorch `nn.Sequential` of
//! `nn.Linear` layers with parameter-free activations between them ('0.weight', '0.bias',
//! '2.weight', …), in safetensors, so `model.load_state_dict(safetensors.torch.load_file(F))`
//! takes them and `--weights` reads them back exactly. The activation, which a state dict
//! has no place for, goes in the file's metadata (`__metadata__`, which PyTorch ignores), so
//! `--weights` runs the model that was trained, not a ReLU net of its weights.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use super::FinalWeights;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::network::given::{LayerNames, META_ACTIVATION, META_OUTPUT_ACTIVATION, META_VERSION};
use crate::tensor::{HostData, HostTensor};

/// The little-endian bytes and dtype of a tensor as safetensors stores it.
fn bytes_of(t: &HostTensor) -> (Dtype, Vec<u8>) {
    let dtype = match t.data() {
        HostData::F32(_) => Dtype::F32,
        HostData::F16(_) => Dtype::F16,
        HostData::Bf16(_) => Dtype::BF16,
        HostData::Fp8 {
            format: Format::E5m2,
            ..
        } => Dtype::F8_E5M2,
        HostData::Fp8 { .. } => Dtype::F8_E4M3,
    };
    (dtype, t.data().to_le_bytes())
}

/// Writes `weights` to `path`, whole or not at all, under the names they came with or, without
/// any, an `nn.Sequential`'s.
pub fn save(weights: &FinalWeights, path: &Path) -> Result<()> {
    save_named(weights, weights.names.as_deref(), path)
}

/// [`save`] under `names` (one per layer, a bias name where the layer has a bias), such as
/// the names of the PyTorch model the weights came from.
pub fn save_named(weights: &FinalWeights, names: Option<&[LayerNames]>, path: &Path) -> Result<()> {
    if let Some(names) = names {
        let fits = names.len() == weights.weights.len()
            && names
                .iter()
                .zip(&weights.biases)
                .all(|(n, b)| n.bias.is_some() == b.is_some());
        if !fits {
            return Err(Error::InvalidArgument(format!(
                "{} layer names for {} layers: one weight name per layer, and a bias name where the layer has a bias",
                names.len(),
                weights.weights.len()
            )));
        }
    }
    let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, w) in weights.weights.iter().enumerate() {
        // nn.Sequential numbers its modules: Linear at 0, the activation at 1, Linear at 2, …
        let index = 2 * i;
        let (weight_name, bias_name) = match names {
            Some(names) => (names[i].weight.clone(), names[i].bias.clone()),
            None => (format!("{index}.weight"), Some(format!("{index}.bias"))),
        };
        let (dtype, bytes) = bytes_of(w);
        entries.push((
            weight_name,
            dtype,
            vec![w.shape().rows, w.shape().cols],
            bytes,
        ));
        if let (Some(b), Some(name)) = (&weights.biases[i], bias_name) {
            let (dtype, bytes) = bytes_of(b);
            entries.push((name, dtype, vec![b.len()], bytes));
        }
    }
    let views = entries
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::InvalidArgument(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        (META_ACTIVATION.to_string(), weights.activation.to_string()),
        (
            META_OUTPUT_ACTIVATION.to_string(),
            weights.output_activation.to_string(),
        ),
        (
            META_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]);
    let serialized = safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| {
        Error::file_caused_by(path, format!("cannot serialize the weights: {e}"), e)
    })?;
    crate::output::write_atomically(path, |out| out.write_all(&serialized))
}
