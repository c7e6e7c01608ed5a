//! The training losses (shaders/loss.wgsl and its CPU reference): torch.nn.MSELoss and
//! torch.nn.CrossEntropyLoss with mean reduction, each giving every row's loss and the
//! gradient of the (scaled) mean loss with respect to the network's output.

pub mod cpu;
pub mod gpu;

use crate::error::{Error, Result};
use crate::precision::DType;
use crate::tensor::Shape;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// mean((out − y)²) over every element, as torch.nn.MSELoss.
    Mse,
    /// mean over rows of −log softmax(out)\[label\], as torch.nn.CrossEntropyLoss.
    CrossEntropy,
}

impl LossKind {
    pub const ALL: [LossKind; 2] = [LossKind::Mse, LossKind::CrossEntropy];

    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::CrossEntropy => "cross_entropy",
        }
    }

    /// The factor of the output gradient: (2/numel)·scale for MSE (MSELoss's backward
    /// multiplies out − y by 2/numel times the incoming gradient, here the loss scale), and
    /// scale/rows for cross-entropy. Rounded to f32 once, as PyTorch's scalar tensor is.
    pub fn gradient_coefficient(self, output: Shape, scale: f64) -> f32 {
        match self {
            LossKind::Mse => (2.0 / output.len() as f64) as f32 * scale as f32,
            LossKind::CrossEntropy => (1.0 / output.rows as f64) as f32 * scale as f32,
        }
    }

    /// The mean loss from the sum of the row losses.
    pub fn mean_loss(self, row_loss_sum: f64, output: Shape) -> f64 {
        match self {
            LossKind::Mse => row_loss_sum / output.len() as f64,
            LossKind::CrossEntropy => row_loss_sum / output.rows as f64,
        }
    }

    /// The targets' shape: one value per output for MSE, one label per row for cross-entropy.
    pub fn target_shape(self, output: Shape) -> Shape {
        match self {
            LossKind::Mse => output,
            LossKind::CrossEntropy => Shape::new(output.rows, 1),
        }
    }
}

/// The targets of `kind` for an output of shape `output`: f32, of `target_shape`.
pub fn check_targets(kind: LossKind, output: Shape, targets: Shape, dtype: DType) -> Result<()> {
    if dtype != DType::F32 {
        return Err(Error::InvalidArgument(format!(
            "loss targets are f32, got {dtype}"
        )));
    }
    let expected = kind.target_shape(output);
    if targets != expected {
        return Err(Error::ShapeMismatch {
            op: "loss",
            detail: format!(
                "{} of an output {output} needs targets {expected}, got {targets}",
                kind.name()
            ),
        });
    }
    Ok(())
}
