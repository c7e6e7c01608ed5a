//! The library's errors as Python exceptions, with the library's messages: the classes live in
//! python/gradstab/_errors.py, so that each is also the built-in exception a caller expects
//! (a bad argument is a `ValueError`, a missing file a `FileNotFoundError`).

use pyo3::prelude::*;

/// The Python class of `e` (a subclass of `gradstab.GradstabError`).
fn class_name(e: &gradstab::Error) -> &'static str {
    use gradstab::Error as E;
    match e {
        E::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => "FileNotFound",
            std::io::ErrorKind::PermissionDenied => "PermissionDenied",
            _ => "FileError",
        },
        E::File { .. } => "FileError",
        E::WontFit(_) | E::TooLarge { .. } | E::GridTooLarge { .. } => "WontFit",
        E::NoAdapter { .. }
        | E::AdapterNotFound { .. }
        | E::MissingFeature { .. }
        | E::DeviceRequest { .. }
        | E::Gpu { .. } => "DeviceError",
        _ => "InvalidArgument",
    }
}

/// `e` as an exception of its class, its message the library's.
pub fn to_py(e: gradstab::Error) -> PyErr {
    Python::attach(|py| {
        let message = e.to_string();
        match py
            .import("gradstab._errors")
            .and_then(|m| m.getattr(class_name(&e)))
        {
            Ok(class) => PyErr::from_value(match class.call1((message.clone(),)) {
                Ok(instance) => instance,
                Err(err) => return err,
            }),
            Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
        }
    })
}

/// A bad keyword argument, refused as the library refuses one.
pub fn invalid(message: impl Into<String>) -> PyErr {
    to_py(gradstab::Error::InvalidArgument(message.into()))
}

/// Runs `f`, turning a library error into its exception and a panic (a bug) into a
/// `RuntimeError` that says so, instead of the `PanicException` that would end a notebook's
/// cell as an uncatchable `BaseException`.
pub fn guarded<T>(f: impl FnOnce() -> gradstab::Result<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(to_py),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "gradstab internal error (a bug, please report it): {what}"
            )))
        }
    }
}
