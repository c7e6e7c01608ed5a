//! CPU reference of shaders/cast.wgsl.

use super::Overflowing;
use crate::error::Result;
use crate::format::Format;
use crate::tensor::{HostData, HostTensor};

/// `x` cast to `format` (already checked to be a packed one).
pub fn run(x: &HostTensor, format: Format, overflowing: Overflowing) -> Result<HostTensor> {
    let values = x.f32_values();
    let data = match format {
        Format::Bf16 => HostData::Bf16(
            values
                .iter()
                .map(|&v| half::bf16::from_bits(overflowing.encode(format, v) as u16))
                .collect(),
        ),
        _ => HostData::Fp8 {
            format,
            bits: values
                .iter()
                .map(|&v| overflowing.encode(format, v) as u8)
                .collect(),
        },
    };
    HostTensor::new(x.shape(), data)
}
