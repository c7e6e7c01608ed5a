//! `gradstab.stats`: the statistics of an array the caller holds, or of a file's tensors.

use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;

use gradstab::format::Format;
use gradstab::report::TensorReport;
use gradstab::{BackendInfo, HostView};

use crate::device::Device;
use crate::errors::{guarded, invalid};
use crate::render;

/// Statistics of tensors, with the device that reduced them.
#[pyclass(module = "gradstab", frozen)]
pub struct StatsReport {
    file: Option<String>,
    device: BackendInfo,
    tensors: Vec<TensorReport>,
}

#[pymethods]
impl StatsReport {
    /// The report as `gradstab stats --format json` writes it (without "file" for arrays).
    fn json(&self) -> PyResult<String> {
        let mut value = serde_json::json!({
            "device": self.device,
            "tensors": self.tensors,
        });
        if let Some(file) = &self.file {
            value["file"] = serde_json::Value::String(file.clone());
        }
        Ok(value.to_string())
    }

    /// One row per tensor, as `gradstab stats --format csv` writes it.
    fn csv(&self) -> PyResult<String> {
        render::text(|out| gradstab::report::stats_csv(out, &self.tensors))
    }

    /// The terminal table of `gradstab stats`.
    #[pyo3(signature = (histogram=false))]
    fn table(&self, histogram: bool) -> PyResult<String> {
        render::text(|out| gradstab::report::stats_table(out, &self.tensors, histogram))
    }
}

/// The values of a C-contiguous NumPy array, borrowed, in the storage format `format` names:
/// float32, float16, float64 (narrowed to f32, with a note), or the bits of bf16 (uint16 or
/// int16) and of FP8 (uint8).
enum Values<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    F16(PyReadonlyArrayDyn<'py, half::f16>),
    Bf16Bits(PyReadonlyArrayDyn<'py, u16>),
    Bf16BitsSigned(PyReadonlyArrayDyn<'py, i16>),
    Bits8(Format, PyReadonlyArrayDyn<'py, u8>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

fn values<'py>(array: &Bound<'py, PyAny>, format: &str) -> PyResult<Values<'py>> {
    let wrong = |expected: &str| {
        invalid(format!(
            "format '{format}' reads an array of {expected}, got {}",
            array
                .getattr("dtype")
                .map_or_else(|_| array.get_type().to_string(), |d| d.to_string())
        ))
    };
    Ok(match format {
        "f32" => Values::F32(array.extract().map_err(|_| wrong("float32"))?),
        "f16" => Values::F16(array.extract().map_err(|_| wrong("float16"))?),
        "f64" => Values::F64(array.extract().map_err(|_| wrong("float64"))?),
        "bf16" => match array.extract() {
            Ok(bits) => Values::Bf16Bits(bits),
            Err(_) => Values::Bf16BitsSigned(
                array
                    .extract()
                    .map_err(|_| wrong("uint16 or int16 bf16 bits"))?,
            ),
        },
        "e4m3" | "e5m2" => Values::Bits8(
            if format == "e4m3" {
                Format::E4m3
            } else {
                Format::E5m2
            },
            array.extract().map_err(|_| wrong("uint8 FP8 bits"))?,
        ),
        other => {
            return Err(invalid(format!(
                "format '{other}': expected f32, f16, f64, bf16, e4m3 or e5m2"
            )))
        }
    })
}

/// Borrows a contiguous array's memory; a strided one is refused (the Python layer makes it
/// contiguous first, which copies only then).
fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArrayDyn<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        invalid(
            "the array is not C-contiguous and aligned (gradstab.stats copies such an array first)",
        )
    })
}

/// The statistics of arrays, each given as (array, format, name, dtype to show), as one report
/// of one tensor each, reduced on `device` without a copy on the host (except float64,
/// narrowed to f32).
#[pyfunction]
pub fn stats_of_arrays(
    py: Python<'_>,
    device: &Device,
    arrays: Vec<(Bound<'_, PyAny>, String, String, String)>,
) -> PyResult<StatsReport> {
    let backend = &device.inner;
    let mut tensors = Vec::with_capacity(arrays.len());
    for (array, format, name, dtype) in arrays {
        let values = values(&array, &format)?;
        let shape: Vec<usize> = array.getattr("shape")?.extract()?;
        let narrowed;
        let mut note = None;
        let view = match &values {
            Values::F32(a) => HostView::F32(slice(a)?),
            Values::F16(a) => HostView::F16(slice(a)?),
            Values::Bf16Bits(a) => HostView::Bf16(bytemuck::cast_slice(slice(a)?)),
            Values::Bf16BitsSigned(a) => HostView::Bf16(bytemuck::cast_slice(slice(a)?)),
            Values::Bits8(format, a) => HostView::Fp8 {
                format: *format,
                bits: slice(a)?,
            },
            Values::F64(a) => {
                let (v, n) = gradstab::files::narrow_f64(slice(a)?);
                narrowed = v;
                note = n;
                HostView::F32(&narrowed)
            }
        };
        values_len_matches(&view, &shape)?;
        let stats = py.detach(|| {
            guarded(|| {
                if view.is_empty() {
                    Ok(None)
                } else {
                    gradstab::api::stats::view_stats(backend, view).map(Some)
                }
            })
        })?;
        tensors.push(TensorReport {
            name,
            shape,
            dtype,
            note,
            stats,
        });
    }
    Ok(StatsReport {
        file: None,
        device: backend.info(),
        tensors,
    })
}

fn values_len_matches(view: &HostView<'_>, shape: &[usize]) -> PyResult<()> {
    let len: usize = shape.iter().product();
    if len != view.len() {
        return Err(invalid(format!(
            "an array of shape {shape:?} with {} values",
            view.len()
        )));
    }
    Ok(())
}

/// The statistics of every tensor of a .npy, .npz or .safetensors file, as `gradstab stats`.
#[pyfunction]
pub fn stats_of_file(
    py: Python<'_>,
    device: &Device,
    path: std::path::PathBuf,
) -> PyResult<StatsReport> {
    let backend = &device.inner;
    let tensors = py.detach(|| {
        guarded(|| {
            let tensors = gradstab::files::load(&path)?;
            gradstab::api::file_stats(backend, &tensors)
        })
    })?;
    Ok(StatsReport {
        file: Some(path.display().to_string()),
        device: backend.info(),
        tensors,
    })
}
