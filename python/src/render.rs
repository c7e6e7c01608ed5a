//! Reports as text for Python: the command line's JSON, CSV and tables, rendered in memory.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// `value` as the command line's JSON.
pub fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// What `write` writes, as text (a report's CSV or table).
pub fn text<E: std::fmt::Display>(
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> PyResult<String> {
    let mut out = Vec::new();
    write(&mut out).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    String::from_utf8(out).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}
