//! Keyword arguments into the library's option types: strings through the library's own
//! parsers (the forms the command line takes), numbers range-checked with a message that
//! names the argument.

use std::str::FromStr;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::errors::{invalid, to_py};

/// A string argument parsed as the command line parses it.
pub fn parsed<T: FromStr<Err = gradstab::Error>>(value: Option<&str>) -> PyResult<Option<T>> {
    value.map(|s| s.parse().map_err(to_py)).transpose()
}

/// A whole number ≥ `min` (an `int` or anything with `__index__`, such as a NumPy integer; a
/// float, bool or string is refused).
pub fn whole(name: &str, value: Option<&Bound<'_, PyAny>>, min: u64) -> PyResult<Option<u64>> {
    let Some(value) = value else { return Ok(None) };
    let bad = || {
        invalid(format!(
            "{name}: expected a whole number ≥ {min}, got {value}"
        ))
    };
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(bad());
    }
    // Anything with `__index__` is a whole number: an int, a NumPy integer, a 0-d tensor.
    let index = value.call_method0("__index__").map_err(|_| bad())?;
    match index.extract::<u64>() {
        Ok(v) if v >= min => Ok(Some(v)),
        _ => Err(bad()),
    }
}

/// [`whole`] as a `usize`.
pub fn count(name: &str, value: Option<&Bound<'_, PyAny>>, min: u64) -> PyResult<Option<usize>> {
    whole(name, value, min)?
        .map(|v| usize::try_from(v).map_err(|_| invalid(format!("{name}: {v} is too large"))))
        .transpose()
}

/// A number (int or float, not bool).
pub fn number(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    let Some(value) = value else { return Ok(None) };
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(invalid(format!("{name}: expected a number, got {value}")));
    }
    value
        .extract::<f64>()
        .map(Some)
        .map_err(|_| invalid(format!("{name}: expected a number, got {value}")))
}

/// One item or a sequence of them (a string is one item, never a sequence of characters).
pub fn items<'py>(value: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
    if value.is_instance_of::<PyString>() {
        return vec![value.clone()];
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list.iter().collect();
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return tuple.iter().collect();
    }
    vec![value.clone()]
}

/// Widths: one int, or a sequence of ints (input first), or the command line's "64,32,10".
pub fn widths(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<usize>>> {
    let Some(value) = value else { return Ok(None) };
    if let Ok(text) = value.extract::<String>() {
        return text
            .split(',')
            .map(|w| match w.trim().parse::<usize>() {
                Ok(w) if w >= 1 => Ok(w),
                _ => Err(invalid(format!(
                    "width: expected whole numbers ≥ 1, got '{text}'"
                ))),
            })
            .collect::<PyResult<Vec<_>>>()
            .map(Some);
    }
    let list = items(value);
    if list.is_empty() {
        return Err(invalid("width: expected at least one width"));
    }
    list.iter()
        .map(|w| Ok(count("width", Some(w), 1)?.expect("given")))
        .collect::<PyResult<Vec<_>>>()
        .map(Some)
}

/// Precisions: "f16", "f32,f16" or a sequence of names.
pub fn precisions(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<gradstab::Precision>>> {
    let Some(value) = value else { return Ok(None) };
    let mut names = Vec::new();
    for item in items(value) {
        let name: String = item.extract().map_err(|_| {
            invalid(format!(
                "precision: expected names such as 'f16', got {item}"
            ))
        })?;
        names.push(name);
    }
    gradstab::precision::parse_precision_list(&names.join(","))
        .map(Some)
        .map_err(to_py)
}

/// A size in bytes: an int, or the command line's "512M", "8G".
pub fn bytes(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    let Some(value) = value else { return Ok(None) };
    if let Ok(text) = value.extract::<String>() {
        return gradstab::host_memory::parse_bytes(&text)
            .map(Some)
            .map_err(to_py);
    }
    whole(name, Some(value), 1)
}
