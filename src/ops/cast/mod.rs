//! Casting a tensor to a narrower format: each value rounded to nearest (ties to even) into
//! the format, with the overflow rule of its row of the format table, or saturating, as FP8
//! quantisation does (Transformer Engine casts with CUDA's `__NV_SATFINITE`: a value beyond the
//! range, and ±inf, becomes the largest finite of its sign; NaN stays NaN).
//!
//! The cast is exact arithmetic on bits, so both backends give the same bits: the CPU through
//! `Format::encode`, the GPU through the WGSL generated from the same row (`gpu::codec`).

pub mod cpu;
pub mod gpu;

use crate::error::{Error, Result};
use crate::format::Format;

/// How values beyond the target's range are cast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overflowing {
    /// As the format's row says (`Tensor.to`).
    AsFormat,
    /// To the largest finite of the value's sign (FP8 quantisation).
    Saturate,
}

impl Overflowing {
    /// The pattern `x` is cast to.
    pub fn encode(self, format: Format, x: f32) -> u32 {
        match self {
            Overflowing::AsFormat => format.encode(x),
            Overflowing::Saturate => format.encode_saturating(x),
        }
    }
}

/// A cast goes to a format that is stored packed (bf16, FP8): the formats WGSL holds natively
/// are the storage formats of the precisions themselves.
pub fn check_target(format: Format) -> Result<()> {
    if format.native_wgsl().is_some() {
        return Err(Error::InvalidArgument(format!(
            "a cast goes to bf16, e4m3 or e5m2, not to {format}"
        )));
    }
    Ok(())
}
