//! Tensors from files a user brings: NumPy `.npy` (f16, f32, f64), `.npz` (every array, as
//! `np.savez` and `np.savez_compressed` write them) and `.safetensors` (every tensor; f16,
//! bf16, f32, f64). A malformed, truncated or unsupported file is an error that names the file
//! and the problem.

use std::path::Path;

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::tensor::HostTensor;

/// The element type as stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileDType {
    F16,
    Bf16,
    F32,
    F64,
    /// Integers (labels), read as f32 where every value is exact (|v| ≤ 2^24).
    I64,
    I32,
}

impl FileDType {
    pub fn name(self) -> &'static str {
        match self {
            FileDType::F16 => "f16",
            FileDType::Bf16 => "bf16",
            FileDType::F32 => "f32",
            FileDType::F64 => "f64",
            FileDType::I64 => "i64",
            FileDType::I32 => "i32",
        }
    }
}

/// One tensor of a file, ready for a backend: f16 stays f16; bf16 widens to f32 exactly; f64
/// narrows to f32, with a note where that changed values in kind.
#[derive(Clone, Debug)]
pub struct FileTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: FileDType,
    /// `None` for a tensor with no elements.
    pub values: Option<HostTensor>,
    pub note: Option<String>,
}

/// A tensor name as it may be printed: control characters (newlines, terminal escape codes)
/// are shown escaped, so a crafted name cannot rewrite the report or the terminal.
fn printable(name: String) -> String {
    if name.chars().any(char::is_control) {
        name.escape_debug().to_string()
    } else {
        name
    }
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// Reads every tensor of a `.npy` or `.safetensors` file.
///
/// Only a regular file is opened: a FIFO would block and a device such as /dev/zero never
/// ends. A file larger than the memory available now is refused before it is read.
pub fn load(path: &Path) -> Result<Vec<FileTensor>> {
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a pipe, socket or device)"
        };
        return Err(file_error(path, format!("{kind}; gradstab reads files")));
    }
    if let Some(available) = crate::host_memory::host_available_bytes() {
        // The file's bytes and its values as f32 (f16 data double) are held at once.
        if meta.len().saturating_mul(3) > available {
            return Err(file_error(
                path,
                format!(
                    "{} is more than a third of the {} of memory available to read it",
                    crate::host_memory::human_bytes(meta.len()),
                    crate::host_memory::human_bytes(available)
                ),
            ));
        }
    }
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    if bytes.is_empty() {
        return Err(file_error(path, "the file is empty"));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("array")
        .to_string();
    match extension.as_str() {
        "npy" => load_npy(path, stem, &bytes).map(|t| vec![t]),
        "npz" => load_npz(path, bytes),
        "safetensors" => load_safetensors(path, &bytes),
        _ if bytes.starts_with(b"\x93NUMPY") => load_npy(path, stem, &bytes).map(|t| vec![t]),
        _ => Err(file_error(
            path,
            "not a .npy, .npz or .safetensors file (gradstab reads those three formats)",
        )),
    }
}

/// Every array of an `.npz` archive, named as NumPy names them (`x` for `x.npy`).
fn load_npz(path: &Path, bytes: Vec<u8>) -> Result<Vec<FileTensor>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| file_error(path, format!("not a valid .npz (zip) archive: {e}")))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut member = archive
            .by_index(i)
            .map_err(|e| file_error(path, format!("unreadable member {i} of the archive: {e}")))?;
        let Some(name) = member.name().strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut member, &mut data)
            .map_err(|e| file_error(path, format!("member {name}.npy is unreadable: {e}")))?;
        out.push(load_npy(path, name, &data)?);
    }
    if out.is_empty() {
        return Err(file_error(path, "the archive holds no .npy arrays"));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Flattens values to a 1 × n tensor (statistics are over the whole tensor).
fn as_tensor(path: &Path, values: HostTensorValues) -> Result<Option<HostTensor>> {
    let len = values.len();
    if len == 0 {
        return Ok(None);
    }
    match values {
        HostTensorValues::F16(v) => HostTensor::from_f16(1, len, v),
        HostTensorValues::F32(v) => HostTensor::from_f32(1, len, v),
    }
    .map(Some)
    .map_err(|e| file_error(path, e))
}

enum HostTensorValues {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl HostTensorValues {
    fn len(&self) -> usize {
        match self {
            HostTensorValues::F16(v) => v.len(),
            HostTensorValues::F32(v) => v.len(),
        }
    }
}

/// f64 → f32, noting values whose kind the narrowing changed.
fn narrow_f64(values: &[f64]) -> (Vec<f32>, Option<String>) {
    let narrowed: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let overflowed = values
        .iter()
        .zip(&narrowed)
        .filter(|(a, b)| a.is_finite() && b.is_infinite())
        .count();
    let zeroed = values
        .iter()
        .zip(&narrowed)
        .filter(|(a, b)| **a != 0.0 && **b == 0.0)
        .count();
    let note = (overflowed + zeroed > 0).then(|| {
        format!(
            "analysed as f32: {overflowed} values beyond f32's range became inf, {zeroed} became 0"
        )
    });
    (narrowed, note)
}

/// Where the data of a .npy file start: after the magic, the version, the header length (2
/// bytes in version 1, 4 after) and the header.
fn npy_data_offset(bytes: &[u8]) -> Option<usize> {
    let len = |at: usize, n: usize| -> Option<usize> {
        let b = bytes.get(at..at + n)?;
        Some(b.iter().rev().fold(0usize, |acc, &x| acc << 8 | x as usize))
    };
    match bytes.get(6)? {
        1 => Some(10 + len(8, 2)?),
        _ => Some(12 + len(8, 4)?),
    }
}

fn load_npy(path: &Path, name: String, bytes: &[u8]) -> Result<FileTensor> {
    let npy = npyz::NpyFile::new(bytes)
        .map_err(|e| file_error(path, format!("not a valid .npy header: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let type_str = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        npyz::DType::Record(_) => {
            return Err(file_error(
                path,
                "a structured (record) dtype: gradstab reads plain f16, f32 and f64 arrays",
            ))
        }
        npyz::DType::Array(..) => {
            return Err(file_error(
                path,
                "a subarray dtype: gradstab reads plain f16, f32 and f64 arrays",
            ))
        }
    };
    // A shape whose product overflows cannot describe data in any file.
    let expected_len = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            file_error(
                path,
                format!("the header's shape {shape:?} has more elements than any file holds"),
            )
        })?;
    let item_bytes = match &type_str[1..] {
        "f2" => 2,
        "f4" => 4,
        "f8" => 8,
        _ => 0,
    };
    if item_bytes > 0 {
        let data_bytes = npy_data_offset(bytes).map(|o| bytes.len().saturating_sub(o));
        let declared = expected_len.checked_mul(item_bytes);
        if let (Some(data), Some(declared)) = (data_bytes, declared) {
            if data > declared {
                return Err(file_error(
                    path,
                    format!(
                        "the data hold {data} bytes, but the header's shape {shape:?} of \
                         {type_str} declares {declared}: the header and the data disagree"
                    ),
                ));
            }
        }
    }
    let truncated =
        |e: std::io::Error| file_error(path, format!("the data are truncated or unreadable ({e})"));
    let (dtype, values, note) = match &type_str[1..] {
        "f2" => (FileDType::F16, HostTensorValues::F16(npy.into_vec::<f16>().map_err(truncated)?), None),
        "f4" => (FileDType::F32, HostTensorValues::F32(npy.into_vec::<f32>().map_err(truncated)?), None),
        "f8" => {
            let (v, note) = narrow_f64(&npy.into_vec::<f64>().map_err(truncated)?);
            (FileDType::F64, HostTensorValues::F32(v), note)
        }
        _ => {
            return Err(file_error(
                path,
                format!("unsupported dtype '{type_str}': gradstab reads f16 ('<f2'), f32 ('<f4') and f64 ('<f8') arrays"),
            ))
        }
    };
    if values.len() != expected_len {
        return Err(file_error(
            path,
            format!(
                "the header promises {expected_len} values but the data hold {}",
                values.len()
            ),
        ));
    }
    Ok(FileTensor {
        name: printable(name),
        shape,
        dtype,
        values: as_tensor(path, values)?,
        note,
    })
}

fn load_safetensors(path: &Path, bytes: &[u8]) -> Result<Vec<FileTensor>> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| file_error(path, format!("not a valid safetensors file: {e}")))?;
    let mut tensors = file.tensors();
    // The header's order is not preserved by the crate; sort by name for a stable report.
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    let mut notes: Vec<(String, Option<String>)> = Vec::new();
    for (name, view) in tensors {
        let data = view.data();
        let (dtype, values) = match view.dtype() {
            safetensors::Dtype::F16 => (
                FileDType::F16,
                HostTensorValues::F16(data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect()),
            ),
            safetensors::Dtype::BF16 => (
                FileDType::Bf16,
                HostTensorValues::F32(
                    data.chunks_exact(2)
                        .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect(),
                ),
            ),
            safetensors::Dtype::F32 => (
                FileDType::F32,
                HostTensorValues::F32(
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
            ),
            safetensors::Dtype::F64 => {
                let wide: Vec<f64> = data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect();
                let (v, note) = narrow_f64(&wide);
                notes.push((name.clone(), note));
                (FileDType::F64, HostTensorValues::F32(v))
            }
            safetensors::Dtype::I64 | safetensors::Dtype::I32 => {
                let wide: Vec<i64> = if view.dtype() == safetensors::Dtype::I64 {
                    data.chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect()
                } else {
                    data.chunks_exact(4)
                        .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64)
                        .collect()
                };
                if let Some(v) = wide.iter().find(|v| v.unsigned_abs() > 1 << 24) {
                    notes.push((
                        name.clone(),
                        Some(format!("holds the integer {v}, beyond the ±2^24 that f32 holds exactly")),
                    ));
                }
                let dtype = if view.dtype() == safetensors::Dtype::I64 {
                    FileDType::I64
                } else {
                    FileDType::I32
                };
                (dtype, HostTensorValues::F32(wide.iter().map(|&v| v as f32).collect()))
            }
            other => {
                return Err(file_error(
                    path,
                    format!("tensor '{name}' has dtype {other:?}: gradstab reads f16, bf16, f32, f64, i32 and i64 tensors"),
                ))
            }
        };
        let note = notes
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, note)| note.clone());
        out.push(FileTensor {
            name: printable(name),
            shape: view.shape().to_vec(),
            dtype,
            values: as_tensor(path, values)?,
            note,
        });
    }
    if out.is_empty() {
        return Err(file_error(path, "the file holds no tensors"));
    }
    Ok(out)
}
