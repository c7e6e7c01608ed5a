//! `gradstab._native`: the library's front door (`gradstab::api`) for Python. Each function
//! turns keyword arguments into the library's options, runs the library with the GIL released,
//! and hands back the library's own report; python/gradstab wraps these in the public API.

mod convert;
mod device;
mod errors;
mod progress;
mod render;
mod run;
mod stats;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The library's notices (the CPU fallback, a preset's unchecked claims) reach Python's
    // `logging`, under the logger "gradstab".
    let _ = pyo3_log::try_init();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<device::Device>()?;
    m.add_function(wrap_pyfunction!(device::devices, m)?)?;
    m.add_function(wrap_pyfunction!(stats::stats_of_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(stats::stats_of_file, m)?)?;
    m.add_class::<stats::StatsReport>()?;
    m.add_function(wrap_pyfunction!(run::run, m)?)?;
    m.add_class::<run::RunReport>()?;
    m.add_function(wrap_pyfunction!(run::presets, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_class::<train::TrainReport>()?;
    Ok(())
}
