//! `--save-weights`: the trained weights as the state dict of a PyTorch `nn.Sequential` of
//! `nn.Linear` layers with parameter-free activations between them ('0.weight', '0.bias',
//! '2.weight', …), in safetensors, so `model.load_state_dict(safetensors.torch.load_file(F))`
//! takes them and `--weights` reads them back exactly.

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use super::FinalWeights;
use crate::error::{Error, Result};
use crate::format::Format;
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

/// Writes `weights` to `path`, whole or not at all.
pub fn save(weights: &FinalWeights, path: &Path) -> Result<()> {
    let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, w) in weights.weights.iter().enumerate() {
        // nn.Sequential numbers its modules: Linear at 0, the activation at 1, Linear at 2, …
        let index = 2 * i;
        let (dtype, bytes) = bytes_of(w);
        entries.push((
            format!("{index}.weight"),
            dtype,
            vec![w.shape().rows, w.shape().cols],
            bytes,
        ));
        if let Some(b) = &weights.biases[i] {
            let (dtype, bytes) = bytes_of(b);
            entries.push((format!("{index}.bias"), dtype, vec![b.len()], bytes));
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
    let serialized = safetensors::tensor::serialize(views, None).map_err(|e| {
        Error::file_caused_by(path, format!("cannot serialize the weights: {e}"), e)
    })?;
    crate::output::write_atomically(path, |out| out.write_all(&serialized))
}
