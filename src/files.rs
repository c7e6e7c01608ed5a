//! Tensors from files a user brings: NumPy `.npy` (floats f16, f32, f64; integers of 1 to 8
//! bytes, as labels), `.npz` (every array, as `np.savez` and `np.savez_compressed` write
//! them) and `.safetensors` (every tensor; f16, bf16, FP8, f32, f64 and integers). A malformed,
//! truncated, oversized or unsupported file is an error that names the file and the problem.
//!
//! Every size a file declares (a header's length, an archive member's size, a shape) is
//! checked against the bytes the file holds and against the memory available before
//! anything of that size is allocated: a file cannot make the reader take more memory than
//! its real contents need.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use half::{bf16, f16};

use crate::format::Format;

use crate::error::{Error, Result};
use crate::host_memory::{host_available_bytes, human_bytes};
use crate::tensor::HostTensor;

/// The element type as stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileDType {
    F16,
    Bf16,
    /// FP8 E4M3FN and E5M2 (safetensors' `F8_E4M3`, `F8_E5M2`), widened to f32 exactly.
    #[serde(rename = "f8_e4m3")]
    F8E4m3,
    #[serde(rename = "f8_e5m2")]
    F8E5m2,
    F32,
    F64,
    /// Integers (labels), read as f32 where every value is exact (|v| ≤ 2^24).
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl FileDType {
    pub fn name(self) -> &'static str {
        match self {
            FileDType::F16 => "f16",
            FileDType::Bf16 => "bf16",
            FileDType::F8E4m3 => "f8_e4m3",
            FileDType::F8E5m2 => "f8_e5m2",
            FileDType::F32 => "f32",
            FileDType::F64 => "f64",
            FileDType::I8 => "i8",
            FileDType::I16 => "i16",
            FileDType::I32 => "i32",
            FileDType::I64 => "i64",
            FileDType::U8 => "u8",
            FileDType::U16 => "u16",
            FileDType::U32 => "u32",
            FileDType::U64 => "u64",
        }
    }

    /// Whether the values are integers (class labels) rather than floats.
    pub fn is_integer(self) -> bool {
        !matches!(
            self,
            FileDType::F16
                | FileDType::Bf16
                | FileDType::F8E4m3
                | FileDType::F8E5m2
                | FileDType::F32
                | FileDType::F64
        )
    }

    /// Bytes per element in the file.
    fn bytes(self) -> usize {
        match self {
            FileDType::I8 | FileDType::U8 | FileDType::F8E4m3 | FileDType::F8E5m2 => 1,
            FileDType::F16 | FileDType::Bf16 | FileDType::I16 | FileDType::U16 => 2,
            FileDType::F32 | FileDType::I32 | FileDType::U32 => 4,
            FileDType::F64 | FileDType::I64 | FileDType::U64 => 8,
        }
    }

    /// Bytes per element once read: f16 stays f16, everything else becomes f32.
    fn held_bytes(self) -> u64 {
        if self == FileDType::F16 {
            2
        } else {
            4
        }
    }
}

/// The NumPy dtypes read, by their type string after the byte-order character ('<', '>',
/// '|' or '='; npyz swaps big-endian data).
const NPY_DTYPES: [(&str, FileDType); 11] = [
    ("f2", FileDType::F16),
    ("f4", FileDType::F32),
    ("f8", FileDType::F64),
    ("i1", FileDType::I8),
    ("i2", FileDType::I16),
    ("i4", FileDType::I32),
    ("i8", FileDType::I64),
    ("u1", FileDType::U8),
    ("u2", FileDType::U16),
    ("u4", FileDType::U32),
    ("u8", FileDType::U64),
];

/// One tensor of a file, ready for a backend: f16 stays f16; bf16 widens to f32 exactly; f64
/// narrows to f32, with a note where that changed values in kind; integers become f32, with a
/// note where one is beyond what f32 holds exactly.
#[derive(Clone, Debug)]
pub struct FileTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: FileDType,
    /// `None` for a tensor with no elements. Row-major, as NumPy and PyTorch show the values,
    /// whatever the order in the file.
    pub values: Option<HostTensor>,
    pub note: Option<String>,
}

/// A name as it may be printed to a terminal or a table: control characters (newlines,
/// terminal escape codes) are shown escaped, so a crafted name cannot rewrite the report or
/// the terminal. A [`FileTensor`] keeps its name as the file has it, which the JSON carries
/// unchanged; tables, CSV and messages print it through this.
pub fn printable(name: impl Into<String>) -> String {
    let name = name.into();
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
        source: None,
    }
}

/// What reading one file may hold in memory. The file's bytes, an archive's members
/// decompressed, and the values they become are held at once, so each may take at most a
/// third of the memory available when reading starts.
struct Budget {
    available: Option<u64>,
    /// Decompressed bytes of an archive's members, declared so far.
    members: u64,
    /// Bytes of the values read so far.
    values: u64,
}

impl Budget {
    fn now() -> Self {
        Budget {
            available: host_available_bytes(),
            members: 0,
            values: 0,
        }
    }

    /// Refuses `bytes` of `what` beyond a third of the memory available.
    fn check(&self, path: &Path, bytes: u64, what: &str) -> Result<()> {
        match self.available {
            Some(available) if bytes.saturating_mul(3) > available => Err(file_error(
                path,
                format!(
                    "{what} ({}) would take more than a third of the {} of memory available to read it",
                    human_bytes(bytes),
                    human_bytes(available)
                ),
            )),
            _ => Ok(()),
        }
    }

    fn add_members(&mut self, path: &Path, bytes: u64) -> Result<()> {
        self.members = self.members.saturating_add(bytes);
        self.check(path, self.members, "the archive's members decompressed")
    }

    /// Counts `elements` values of `dtype` before they are read.
    fn add_values(&mut self, path: &Path, elements: usize, dtype: FileDType) -> Result<()> {
        let bytes = (elements as u64).saturating_mul(dtype.held_bytes());
        self.values = self.values.saturating_add(bytes);
        self.check(path, self.values, "its values")
    }
}

/// Reads every tensor of a `.npy`, `.npz` or `.safetensors` file.
///
/// Only a regular file is opened: a FIFO would block and a device such as /dev/zero never
/// ends. A file larger than a third of the memory available now is refused before it is read.
pub fn load(path: &Path) -> Result<Vec<FileTensor>> {
    load_with_metadata(path).map(|(tensors, _)| tensors)
}

/// [`load`], with the string metadata a safetensors file carries in its header
/// (`__metadata__`); empty for NumPy files, which have none.
pub fn load_with_metadata(path: &Path) -> Result<(Vec<FileTensor>, BTreeMap<String, String>)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a pipe, socket or device)"
        };
        return Err(file_error(path, format!("{kind}; gradstab reads files")));
    }
    let mut budget = Budget::now();
    budget.check(path, meta.len(), "the file")?;
    // At most the size checked: a file that grows meanwhile is not read past it.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(meta.len()).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
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
        "npy" => load_npy(path, stem, &bytes, &mut budget).map(|t| (vec![t], BTreeMap::new())),
        "npz" => load_npz(path, &bytes, &mut budget).map(|t| (t, BTreeMap::new())),
        "safetensors" => load_safetensors(path, &bytes, &mut budget),
        _ if bytes.starts_with(b"\x93NUMPY") => {
            load_npy(path, stem, &bytes, &mut budget).map(|t| (vec![t], BTreeMap::new()))
        }
        _ => Err(file_error(
            path,
            "not a .npy, .npz or .safetensors file (gradstab reads those three formats)",
        )),
    }
}

/// Deflate's largest expansion: a 258-byte match coded in two bits.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// An archive member where it lies in the file.
struct Member {
    name: String,
    /// From its local header to the end of its data.
    span: std::ops::Range<u64>,
}

/// Every array of an `.npz` archive, named as NumPy names them (`x` for `x.npy`).
///
/// Refused before anything is decompressed: two entries of one name (one would shadow the
/// other), entries whose bytes overlap (a zip bomb lets many entries share one member's
/// data), and members declaring more bytes than their compressed data can hold or than the
/// memory budget allows. Each member is read through a reader bounded by its declared size.
fn load_npz(path: &Path, bytes: &[u8], budget: &mut Budget) -> Result<Vec<FileTensor>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        Error::file_caused_by(path, format!("not a valid .npz (zip) archive: {e}"), e)
    })?;
    let central_directory = archive.central_directory_start();
    refuse_duplicate_names(path, bytes, central_directory, archive.len())?;
    let mut members = Vec::new();
    let mut arrays = Vec::new();
    for i in 0..archive.len() {
        let member = archive.by_index_raw(i).map_err(|e| {
            Error::file_caused_by(
                path,
                format!("unreadable member {i} of the archive: {e}"),
                e,
            )
        })?;
        let name = member.name().to_string();
        let end = member.data_start().saturating_add(member.compressed_size());
        if end > central_directory {
            return Err(file_error(
                path,
                format!("member {name} runs past the archive's data: the archive is truncated or malformed"),
            ));
        }
        members.push(Member {
            name: name.clone(),
            span: member.header_start()..end,
        });
        if !name.ends_with(".npy") {
            continue;
        }
        budget.add_members(path, member.size())?;
        let most = match member.compression() {
            zip::CompressionMethod::Stored => member.compressed_size(),
            _ => member.compressed_size().saturating_mul(DEFLATE_MAX_RATIO),
        };
        if member.size() > most {
            return Err(file_error(
                path,
                format!(
                    "member {name} declares {} bytes, more than its {} compressed bytes can hold",
                    member.size(),
                    member.compressed_size()
                ),
            ));
        }
        arrays.push((i, name, member.size()));
    }
    members.sort_by_key(|m| m.span.start);
    for pair in members.windows(2) {
        if pair[1].span.start < pair[0].span.end {
            return Err(file_error(
                path,
                format!(
                    "members {} and {} overlap in the file (as in a zip bomb): the archive is malformed",
                    pair[0].name, pair[1].name
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for (i, name, declared) in arrays {
        let member = archive.by_index(i).map_err(|e| {
            Error::file_caused_by(path, format!("member {name} is unreadable: {e}"), e)
        })?;
        let mut data = Vec::new();
        // One byte more than declared, to tell a member that holds more.
        member
            .take(declared.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| {
                Error::file_caused_by(path, format!("member {name} is unreadable: {e}"), e)
            })?;
        if data.len() as u64 != declared {
            let more = if data.len() as u64 > declared {
                "more"
            } else {
                "fewer"
            };
            return Err(file_error(
                path,
                format!(
                    "member {name} decompresses to {more} bytes than the {declared} it declares"
                ),
            ));
        }
        let array = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        out.push(load_npy(path, array, &data, budget)?);
    }
    if out.is_empty() {
        return Err(file_error(path, "the archive holds no .npy arrays"));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Refuses an archive whose central directory lists one name twice. The zip crate keeps only
/// the last entry of a name (`names` of them remain), so the entries are counted here, where
/// they are listed: from `directory`, the start of the central directory, 46 fixed bytes each
/// (the name's, extra field's and comment's lengths at 28, 30 and 32) and then those fields.
fn refuse_duplicate_names(
    path: &Path,
    bytes: &[u8],
    directory: u64,
    distinct: usize,
) -> Result<()> {
    let mut names = Vec::new();
    let mut at = usize::try_from(directory).unwrap_or(usize::MAX);
    while let Some(entry) = bytes.get(at..at.saturating_add(46)) {
        if entry[..4] != *b"PK\x01\x02" {
            break;
        }
        let length = |i: usize| u16::from_le_bytes([entry[i], entry[i + 1]]) as usize;
        let Some(name) = bytes.get(at + 46..at + 46 + length(28)) else {
            break;
        };
        names.push(String::from_utf8_lossy(name));
        at += 46 + length(28) + length(30) + length(32);
    }
    if names.len() <= distinct {
        return Ok(());
    }
    names.sort();
    let problem = match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => format!(
            "two entries are named {}: one would shadow the other",
            printable(pair[0].to_string())
        ),
        None => format!(
            "the archive lists {} entries under {distinct} distinct names: one would shadow another",
            names.len()
        ),
    };
    Err(file_error(path, problem))
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
    .map_err(|e| Error::file_caused_by(path, e.to_string(), e))
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

    /// The values of a Fortran-ordered array of `shape`, in row-major order.
    fn row_major(self, shape: &[usize]) -> Self {
        match self {
            HostTensorValues::F16(v) => HostTensorValues::F16(row_major(&v, shape)),
            HostTensorValues::F32(v) => HostTensorValues::F32(row_major(&v, shape)),
        }
    }
}

/// Values stored column-major (NumPy's `fortran_order`, as `A.T` of a C array is saved) in
/// row-major order, as NumPy shows them: element (i_0, …, i_{k−1}) lies in the file at
/// Σ i_j·s_j with s_0 = 1 and s_j = s_{j−1}·n_{j−1}.
fn row_major<T: Copy>(values: &[T], shape: &[usize]) -> Vec<T> {
    let strides: Vec<usize> = shape
        .iter()
        .scan(1, |stride, &n| {
            let this = *stride;
            *stride *= n;
            Some(this)
        })
        .collect();
    let mut index = vec![0; shape.len()];
    // Where `index` lies in the file.
    let mut at = 0;
    let mut out = Vec::with_capacity(values.len());
    for _ in 0..values.len() {
        out.push(values[at]);
        // The next index in row-major order: the last axis counts fastest.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            at += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
            at -= strides[axis] * shape[axis];
        }
    }
    out
}

/// f64 → f32, noting values whose kind the narrowing changed (the statistics of f64 values are
/// those of the f32 values a GPU can hold).
pub fn narrow_f64(values: &[f64]) -> (Vec<f32>, Option<String>) {
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

/// Integers (labels) as f32, noting the first one f32 does not hold exactly (|v| > 2^24).
fn integers_as_f32<T: Copy + Into<i128>>(values: &[T]) -> (Vec<f32>, Option<String>) {
    let note = values
        .iter()
        .map(|&v| v.into())
        .find(|v: &i128| v.unsigned_abs() > 1 << 24)
        .map(|v| format!("holds the integer {v}, beyond the ±2^24 that f32 holds exactly"));
    (values.iter().map(|&v| v.into() as f32).collect(), note)
}

/// Where the data of a .npy file start, as its preamble declares: after the magic, the
/// version, the header length (2 bytes in version 1, 4 after) and the header. `None` where
/// the file is too short to hold a preamble.
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

/// Reads a .npy array of `dtype` with npyz.
fn npy_values(
    npy: npyz::NpyFile<&[u8]>,
    dtype: FileDType,
) -> std::io::Result<(HostTensorValues, Option<String>)> {
    use HostTensorValues::{F16, F32};
    let ints = |(v, note)| Ok((F32(v), note));
    match dtype {
        FileDType::F16 => Ok((F16(npy.into_vec::<f16>()?), None)),
        FileDType::F32 => Ok((F32(npy.into_vec::<f32>()?), None)),
        FileDType::F64 => {
            let (v, note) = narrow_f64(&npy.into_vec::<f64>()?);
            Ok((F32(v), note))
        }
        FileDType::I8 => ints(integers_as_f32(&npy.into_vec::<i8>()?)),
        FileDType::I16 => ints(integers_as_f32(&npy.into_vec::<i16>()?)),
        FileDType::I32 => ints(integers_as_f32(&npy.into_vec::<i32>()?)),
        FileDType::I64 => ints(integers_as_f32(&npy.into_vec::<i64>()?)),
        FileDType::U8 => ints(integers_as_f32(&npy.into_vec::<u8>()?)),
        FileDType::U16 => ints(integers_as_f32(&npy.into_vec::<u16>()?)),
        FileDType::U32 => ints(integers_as_f32(&npy.into_vec::<u32>()?)),
        FileDType::U64 => ints(integers_as_f32(&npy.into_vec::<u64>()?)),
        FileDType::Bf16 | FileDType::F8E4m3 | FileDType::F8E5m2 => {
            unreachable!("NumPy has no bf16 or FP8 dtype")
        }
    }
}

fn load_npy(path: &Path, name: String, bytes: &[u8], budget: &mut Budget) -> Result<FileTensor> {
    // The header's length, checked against the file before the parser allocates it.
    let data_offset = npy_data_offset(bytes);
    if let Some(offset) = data_offset.filter(|&o| o > bytes.len()) {
        return Err(file_error(
            path,
            format!(
                "the .npy preamble declares a header ending at byte {offset}, but the file holds {} bytes",
                bytes.len()
            ),
        ));
    }
    let npy = npyz::NpyFile::new(bytes)
        .map_err(|e| Error::file_caused_by(path, format!("not a valid .npy header: {e}"), e))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let type_str = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        npyz::DType::Record(_) => {
            return Err(file_error(
                path,
                "a structured (record) dtype: gradstab reads plain float and integer arrays",
            ))
        }
        npyz::DType::Array(..) => {
            return Err(file_error(
                path,
                "a subarray dtype: gradstab reads plain float and integer arrays",
            ))
        }
    };
    let Some(&(_, dtype)) = NPY_DTYPES.iter().find(|(t, _)| *t == &type_str[1..]) else {
        return Err(file_error(
            path,
            format!(
                "unsupported dtype '{type_str}': gradstab reads floats ('<f2', '<f4', '<f8') and \
                 integers ('<i1' … '<i8', '<u1' … '<u8')"
            ),
        ));
    };
    // A shape whose product overflows cannot describe data in any file.
    let too_many = || {
        file_error(
            path,
            format!("the header's shape {shape:?} has more elements than any file holds"),
        )
    };
    let expected_len = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_many)?;
    let declared = expected_len
        .checked_mul(dtype.bytes())
        .ok_or_else(too_many)?;
    // npyz has parsed the header, so the preamble was there.
    let data = bytes.len() - data_offset.unwrap_or(bytes.len());
    if data != declared {
        let problem = if data > declared {
            "the header and the data disagree"
        } else {
            "the data are truncated"
        };
        return Err(file_error(
            path,
            format!(
                "the data hold {data} bytes, but the header's shape {shape:?} of {type_str} \
                 declares {declared}: {problem}"
            ),
        ));
    }
    budget.add_values(path, expected_len, dtype)?;
    let fortran = npy.order() == npyz::Order::Fortran;
    let (values, note) = npy_values(npy, dtype)
        .map_err(|e| Error::file_caused_by(path, format!("the data are unreadable ({e})"), e))?;
    let values = if fortran && shape.len() > 1 {
        values.row_major(&shape)
    } else {
        values
    };
    Ok(FileTensor {
        name,
        shape,
        dtype,
        values: as_tensor(path, values)?,
        note,
    })
}

/// The element type of a safetensors dtype gradstab reads.
fn safetensors_dtype(dtype: safetensors::Dtype) -> Option<FileDType> {
    use safetensors::Dtype as D;
    Some(match dtype {
        D::F16 => FileDType::F16,
        D::BF16 => FileDType::Bf16,
        D::F8_E4M3 => FileDType::F8E4m3,
        D::F8_E5M2 => FileDType::F8E5m2,
        D::F32 => FileDType::F32,
        D::F64 => FileDType::F64,
        D::I8 => FileDType::I8,
        D::I16 => FileDType::I16,
        D::I32 => FileDType::I32,
        D::I64 => FileDType::I64,
        D::U8 => FileDType::U8,
        D::U16 => FileDType::U16,
        D::U32 => FileDType::U32,
        D::U64 => FileDType::U64,
        _ => return None,
    })
}

/// The values of one safetensors tensor (little-endian, row-major).
fn safetensors_values(dtype: FileDType, data: &[u8]) -> (HostTensorValues, Option<String>) {
    use HostTensorValues::{F16, F32};
    fn each<const N: usize, T>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        data.chunks_exact(N)
            .map(|b| f(b.try_into().expect("chunks of N bytes")))
            .collect()
    }
    let ints = |(v, note)| (F32(v), note);
    match dtype {
        FileDType::F16 => (F16(each(data, f16::from_le_bytes)), None),
        FileDType::Bf16 => (F32(each(data, |b| bf16::from_le_bytes(b).to_f32())), None),
        FileDType::F8E4m3 => (F32(each(data, |[b]| Format::E4m3.decode(b as u32))), None),
        FileDType::F8E5m2 => (F32(each(data, |[b]| Format::E5m2.decode(b as u32))), None),
        FileDType::F32 => (F32(each(data, f32::from_le_bytes)), None),
        FileDType::F64 => {
            let (v, note) = narrow_f64(&each(data, f64::from_le_bytes));
            (F32(v), note)
        }
        FileDType::I8 => ints(integers_as_f32(&each(data, i8::from_le_bytes))),
        FileDType::I16 => ints(integers_as_f32(&each(data, i16::from_le_bytes))),
        FileDType::I32 => ints(integers_as_f32(&each(data, i32::from_le_bytes))),
        FileDType::I64 => ints(integers_as_f32(&each(data, i64::from_le_bytes))),
        FileDType::U8 => ints(integers_as_f32(&each(data, u8::from_le_bytes))),
        FileDType::U16 => ints(integers_as_f32(&each(data, u16::from_le_bytes))),
        FileDType::U32 => ints(integers_as_f32(&each(data, u32::from_le_bytes))),
        FileDType::U64 => ints(integers_as_f32(&each(data, u64::from_le_bytes))),
    }
}

/// The first key a JSON object lists twice, which a parser keeps the last of silently.
fn repeated_key(json: &[u8]) -> Option<String> {
    use serde::de::{IgnoredAny, MapAccess, Visitor};
    struct Repeated(Option<String>);
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Repeated;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Repeated, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut repeated = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if !seen.insert(key.clone()) {
                    repeated.get_or_insert(key);
                }
            }
            Ok(Repeated(repeated))
        }
    }
    impl<'de> serde::Deserialize<'de> for Repeated {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            d.deserialize_map(Keys)
        }
    }
    serde_json::from_slice::<Repeated>(json).ok()?.0
}

/// A safetensors file parsed, and its metadata: refused where it is not valid (`why_not`
/// adds a likely reason to the message) or its header lists a name twice. The crate bounds
/// the header's length by the file and checks that the tensors' data offsets tile the data
/// exactly, with no overlap or gap.
pub(crate) fn read_safetensors<'a>(
    path: &Path,
    bytes: &'a [u8],
    why_not: &str,
) -> Result<(safetensors::SafeTensors<'a>, BTreeMap<String, String>)> {
    let invalid = |e: safetensors::SafeTensorError| {
        Error::file_caused_by(
            path,
            format!("not a valid safetensors file{why_not}: {e}"),
            e,
        )
    };
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(invalid)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // The crate has checked the header's length against the file.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    if let Some(name) = repeated_key(&bytes[8..8 + header_len]) {
        return Err(file_error(
            path,
            format!(
                "the header lists '{}' twice: one would shadow the other",
                printable(name)
            ),
        ));
    }
    Ok((file, metadata))
}

/// Every tensor of a safetensors file. The crate bounds the header's length by the file and
/// checks that the tensors' data offsets tile the data exactly, with no overlap or gap.
fn load_safetensors(
    path: &Path,
    bytes: &[u8],
    budget: &mut Budget,
) -> Result<(Vec<FileTensor>, BTreeMap<String, String>)> {
    let (file, metadata) = read_safetensors(path, bytes, "")?;
    let mut tensors = file.tensors();
    // The header's order is not preserved by the crate; sort by name for a stable report.
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (name, view) in tensors {
        let Some(dtype) = safetensors_dtype(view.dtype()) else {
            return Err(file_error(
                path,
                format!(
                    "tensor '{}' has dtype {:?}: gradstab reads f16, bf16, FP8 (E4M3, E5M2), f32, f64 and integer tensors",
                    printable(name),
                    view.dtype()
                ),
            ));
        };
        budget.add_values(path, view.shape().iter().product(), dtype)?;
        let (values, note) = safetensors_values(dtype, view.data());
        out.push(FileTensor {
            name,
            shape: view.shape().to_vec(),
            dtype,
            values: as_tensor(path, values)?,
            note,
        });
    }
    if out.is_empty() {
        return Err(file_error(path, "the file holds no tensors"));
    }
    Ok((out, metadata))
}
