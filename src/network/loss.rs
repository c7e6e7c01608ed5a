//! Where `run`'s backward pass starts: the loss, as the command line names it.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

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
    /// l = mean over rows of −log softmax(H^d)\[label\], as F.cross_entropy, against the
    /// integer labels y of `--data`; H^d are the logits.
    CrossEntropy,
}

impl FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "probe" => Ok(Loss::Probe),
            "sum" => Ok(Loss::Sum),
            "mse" => Ok(Loss::Mse),
            "cross-entropy" | "cross_entropy" => Ok(Loss::CrossEntropy),
            _ => Err(Error::Parse {
                what: "loss",
                value: s.to_string(),
                expected: "probe, sum, mse or cross-entropy",
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
            Loss::CrossEntropy => "cross-entropy",
        })
    }
}
