//! Host-side tensors: the values a backend is given and gives back.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::error::{Error, Result};
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
        let data = match dtype {
            DType::F32 => HostData::F32(values.to_vec()),
            DType::F16 => HostData::F16(f16_from_f32_slice(values)),
        };
        Self::new(Shape::new(rows, cols), data)
    }

    pub fn new(shape: Shape, data: HostData) -> Result<Self> {
        if shape.rows == 0 || shape.cols == 0 {
            return Err(Error::ZeroDimension {
                op: "tensor",
                detail: format!("shape {shape}"),
            });
        }
        let len = match &data {
            HostData::F32(v) => v.len(),
            HostData::F16(v) => v.len(),
        };
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
        match self.data {
            HostData::F32(_) => DType::F32,
            HostData::F16(_) => DType::F16,
        }
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

    /// The values as f32: borrowed when stored as f32, widened (exactly) from f16.
    pub fn f32_values(&self) -> std::borrow::Cow<'_, [f32]> {
        match &self.data {
            HostData::F32(v) => std::borrow::Cow::Borrowed(v),
            HostData::F16(v) => std::borrow::Cow::Owned(v.to_f32_vec()),
        }
    }

    /// Takes f32 values, rounding them to `dtype` (to nearest even); f32 values are moved.
    pub fn from_f32_vec_as(
        dtype: DType,
        rows: usize,
        cols: usize,
        values: Vec<f32>,
    ) -> Result<Self> {
        let data = match dtype {
            DType::F32 => HostData::F32(values),
            DType::F16 => HostData::F16(f16_from_f32_slice(&values)),
        };
        Self::new(Shape::new(rows, cols), data)
    }

    /// The values widened to f32 (exact for both storage types).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::F16(v) => v.to_f32_vec(),
        }
    }

    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
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
        let data = match &self.data {
            HostData::F32(v) => HostData::F32(v[start..end].to_vec()),
            HostData::F16(v) => HostData::F16(v[start..end].to_vec()),
        };
        HostTensor::new(Shape::new(1, end - start), data)
    }

    /// The same values rounded to another storage type.
    pub fn cast(&self, dtype: DType) -> HostTensor {
        let data = match (dtype, &self.data) {
            (DType::F32, HostData::F32(v)) => HostData::F32(v.clone()),
            (DType::F16, HostData::F16(v)) => HostData::F16(v.clone()),
            (DType::F32, HostData::F16(v)) => HostData::F32(v.to_f32_vec()),
            (DType::F16, HostData::F32(v)) => HostData::F16(f16_from_f32_slice(v)),
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
