//! Host-side tensors: the values a backend is given and gives back.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::format::Format;
use crate::precision::DType;

/// A 2-D shape `[rows, cols]`, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub rows: usize,
    pub cols: usize,
}

impl Shape {
    pub fn new(rows: usize, cols: usize) -> Self {
        Shape { rows, cols }
    }

    pub fn len(self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", self.rows, self.cols)
    }
}

/// The values of a host tensor in their storage type.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
    /// An FP8 format's bit patterns, one byte each.
    Fp8 {
        format: Format,
        bits: Vec<u8>,
    },
}

impl HostData {
    /// f32 values rounded to `dtype` (to nearest even, as `Tensor.to` does); f32 values are
    /// moved.
    pub fn from_f32_vec(dtype: DType, values: Vec<f32>) -> HostData {
        match dtype {
            Format::F32 => HostData::F32(values),
            Format::F16 => HostData::F16(f16_from_f32_slice(&values)),
            Format::Bf16 => HostData::Bf16(values.iter().map(|&x| bf16_from_f32(x)).collect()),
            format @ (Format::E4m3 | Format::E5m2) => HostData::Fp8 {
                format,
                bits: values.iter().map(|&x| format.encode(x) as u8).collect(),
            },
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => Format::F32,
            HostData::F16(_) => Format::F16,
            HostData::Bf16(_) => Format::Bf16,
            HostData::Fp8 { format, .. } => *format,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::F16(v) => v.len(),
            HostData::Bf16(v) => v.len(),
            HostData::Fp8 { bits, .. } => bits.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values widened to f32, exactly.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            HostData::F32(v) => v.clone(),
            HostData::F16(v) => v.to_f32_vec(),
            HostData::Bf16(v) => v.to_f32_vec(),
            HostData::Fp8 { format, bits } => {
                bits.iter().map(|&b| format.decode(b as u32)).collect()
            }
        }
    }

    /// The stored bit pattern of value `i`, in the low bits.
    pub fn bits(&self, i: usize) -> u32 {
        match self {
            HostData::F32(v) => v[i].to_bits(),
            HostData::F16(v) => v[i].to_bits() as u32,
            HostData::Bf16(v) => v[i].to_bits() as u32,
            HostData::Fp8 { bits, .. } => bits[i] as u32,
        }
    }

    /// The values as stored, little-endian, as a device buffer and a safetensors file hold them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            HostData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostData::Bf16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostData::Fp8 { bits, .. } => bits.clone(),
        }
    }

    /// `len` values of `dtype` from little-endian bytes (at least `len · size` of them).
    pub fn from_le_bytes(dtype: DType, len: usize, bytes: &[u8]) -> HostData {
        let words = |size: usize| bytes[..len * size].chunks_exact(size);
        match dtype {
            Format::F32 => HostData::F32(
                words(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            Format::F16 => {
                HostData::F16(words(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect())
            }
            Format::Bf16 => HostData::Bf16(
                words(2)
                    .map(|b| bf16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            ),
            format @ (Format::E4m3 | Format::E5m2) => HostData::Fp8 {
                format,
                bits: bytes[..len].to_vec(),
            },
        }
    }

    /// The values, borrowed.
    pub fn view(&self) -> HostView<'_> {
        match self {
            HostData::F32(v) => HostView::F32(v),
            HostData::F16(v) => HostView::F16(v),
            HostData::Bf16(v) => HostView::Bf16(v),
            HostData::Fp8 { format, bits } => HostView::Fp8 {
                format: *format,
                bits,
            },
        }
    }
}

/// Values a caller holds (a NumPy array, a PyTorch tensor's memory), borrowed in their storage
/// type, so that their statistics are reduced without a copy on the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HostView<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
    /// An FP8 format's bit patterns, one byte each.
    Fp8 {
        format: Format,
        bits: &'a [u8],
    },
}

impl<'a> HostView<'a> {
    pub fn dtype(&self) -> DType {
        match self {
            HostView::F32(_) => Format::F32,
            HostView::F16(_) => Format::F16,
            HostView::Bf16(_) => Format::Bf16,
            HostView::Fp8 { format, .. } => *format,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostView::F32(v) => v.len(),
            HostView::F16(v) => v.len(),
            HostView::Bf16(v) => v.len(),
            HostView::Fp8 { bits, .. } => bits.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values `start..end`, still borrowed.
    pub fn slice(&self, start: usize, end: usize) -> HostView<'a> {
        match *self {
            HostView::F32(v) => HostView::F32(&v[start..end]),
            HostView::F16(v) => HostView::F16(&v[start..end]),
            HostView::Bf16(v) => HostView::Bf16(&v[start..end]),
            HostView::Fp8 { format, bits } => HostView::Fp8 {
                format,
                bits: &bits[start..end],
            },
        }
    }

    /// The values as stored, as a device buffer holds them: little-endian, which on a
    /// little-endian host is the memory itself (borrowed).
    pub fn le_bytes(&self) -> std::borrow::Cow<'a, [u8]> {
        use std::borrow::Cow;
        if cfg!(target_endian = "little") {
            return Cow::Borrowed(match *self {
                HostView::F32(v) => bytemuck::cast_slice(v),
                HostView::F16(v) => bytemuck::cast_slice(v),
                HostView::Bf16(v) => bytemuck::cast_slice(v),
                HostView::Fp8 { bits, .. } => bits,
            });
        }
        Cow::Owned(match *self {
            HostView::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostView::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostView::Bf16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostView::Fp8 { bits, .. } => bits.to_vec(),
        })
    }

    /// The values copied into an owned 1 × len tensor.
    pub fn to_tensor(&self) -> Result<HostTensor> {
        let data = match *self {
            HostView::F32(v) => HostData::F32(v.to_vec()),
            HostView::F16(v) => HostData::F16(v.to_vec()),
            HostView::Bf16(v) => HostData::Bf16(v.to_vec()),
            HostView::Fp8 { format, bits } => HostData::Fp8 {
                format,
                bits: bits.to_vec(),
            },
        };
        HostTensor::new(Shape::new(1, self.len()), data)
    }
}

/// A 2-D tensor in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    shape: Shape,
    data: HostData,
}

impl HostTensor {
    pub fn from_f32(rows: usize, cols: usize, values: Vec<f32>) -> Result<Self> {
        Self::new(Shape::new(rows, cols), HostData::F32(values))
    }

    pub fn from_f16(rows: usize, cols: usize, values: Vec<f16>) -> Result<Self> {
        Self::new(Shape::new(rows, cols), HostData::F16(values))
    }

    /// Rounds f32 values to the given storage type (round to nearest even).
    pub fn from_f32_as(dtype: DType, rows: usize, cols: usize, values: &[f32]) -> Result<Self> {
        Self::from_f32_vec_as(dtype, rows, cols, values.to_vec())
    }

    pub fn new(shape: Shape, data: HostData) -> Result<Self> {
        if shape.rows == 0 || shape.cols == 0 {
            return Err(Error::ZeroDimension {
                op: "tensor",
                detail: format!("shape {shape}"),
            });
        }
        let len = data.len();
        if len != shape.len() {
            return Err(Error::ShapeMismatch {
                op: "tensor",
                detail: format!("shape {shape} holds {} values, got {len}", shape.len()),
            });
        }
        Ok(HostTensor { shape, data })
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn data(&self) -> &HostData {
        &self.data
    }

    pub fn into_data(self) -> HostData {
        self.data
    }

    pub fn len(&self) -> usize {
        self.shape.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shape.is_empty()
    }

    /// The values as f32: borrowed when stored as f32, widened (exactly) otherwise.
    pub fn f32_values(&self) -> std::borrow::Cow<'_, [f32]> {
        match &self.data {
            HostData::F32(v) => std::borrow::Cow::Borrowed(v),
            other => std::borrow::Cow::Owned(other.to_f32_vec()),
        }
    }

    /// The values as f32, moved out where stored as f32 (no copy) and widened otherwise, for
    /// an update in place that puts them back with `from_f32_vec_as`: until then an f32
    /// tensor holds no values.
    pub(crate) fn take_f32_vec(&mut self) -> Vec<f32> {
        match &mut self.data {
            HostData::F32(v) => std::mem::take(v),
            other => other.to_f32_vec(),
        }
    }

    /// Takes f32 values, rounding them to `dtype` (to nearest even); f32 values are moved.
    pub fn from_f32_vec_as(
        dtype: DType,
        rows: usize,
        cols: usize,
        values: Vec<f32>,
    ) -> Result<Self> {
        Self::new(
            Shape::new(rows, cols),
            HostData::from_f32_vec(dtype, values),
        )
    }

    /// The values widened to f32 (exact for every storage type).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.data.to_f32_vec()
    }

    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            other => other.to_f32_vec().into_iter().map(f64::from).collect(),
        }
    }

    /// Values `start..end` of the row-major data as a 1 × (end − start) tensor.
    pub fn slice(&self, start: usize, end: usize) -> Result<HostTensor> {
        if start >= end || end > self.len() {
            return Err(Error::InvalidArgument(format!(
                "slice {start}..{end} of a tensor of {} values",
                self.len()
            )));
        }
        self.data.view().slice(start, end).to_tensor()
    }

    /// The same values rounded to another storage type.
    pub fn cast(&self, dtype: DType) -> HostTensor {
        let data = if dtype == self.dtype() {
            self.data.clone()
        } else {
            HostData::from_f32_vec(dtype, self.to_f32_vec())
        };
        HostTensor {
            shape: self.shape,
            data,
        }
    }
}

/// Rounds f32 values to f16 (to nearest even), with the F16C instructions where the CPU has them.
pub fn f16_from_f32_slice(values: &[f32]) -> Vec<f16> {
    let mut out = vec![f16::ZERO; values.len()];
    out.convert_from_f32_slice(values);
    out
}

/// Rounds an f32 to bf16 as the format table does (to nearest even; NaN to bf16's NaN of the
/// same sign). `half`'s rounding is the same for every other value (tests/formats.rs checks
/// every pattern) and several times faster than the table's general routine; only its NaN
/// keeps the payload, which the GPU's generated cast does not.
pub fn bf16_from_f32(x: f32) -> bf16 {
    if x.is_nan() {
        bf16::from_bits(Format::Bf16.encode(x) as u16)
    } else {
        bf16::from_f32(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_bf16_rounding_is_the_format_tables_bit_for_bit() {
        // Every bf16 pattern's neighbourhood (ties and the values either side of them), and a
        // sweep of all f32: NaNs included, where both give the format's NaN of the sign.
        let patterns = (0..1u32 << 16).flat_map(|b| {
            let x = b << 16;
            [x, x | 0x8000, x | 0x7fff, x | 0x8001, x.wrapping_sub(1)]
        });
        for bits in patterns.chain((0..=u32::MAX).step_by(65_521)) {
            let x = f32::from_bits(bits);
            assert_eq!(
                bf16_from_f32(x).to_bits() as u32,
                Format::Bf16.encode(x),
                "{bits:#010x}"
            );
        }
    }
}
