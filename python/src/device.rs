//! `gradstab.Device`: an opened backend, kept by Python and shared by every call.

use pyo3::prelude::*;

use gradstab::api::{BackendChoice, Device as Backend};
use gradstab::GpuOptions;

use crate::convert::parsed;
use crate::errors::{guarded, to_py};

/// An opened backend: the GPU, or the CPU backend with the same numeric semantics.
#[pyclass(module = "gradstab", frozen)]
pub struct Device {
    pub inner: Backend,
}

#[pymethods]
impl Device {
    /// Opens `backend` ("auto", "gpu" or "cpu"). Like the command line, the environment's
    /// GRADSTAB_ADAPTER and GRADSTAB_MATMUL_VARIANT apply, and `adapter` and
    /// `matmul_variant` override them. "auto" falls back to the CPU (with a logged notice)
    /// only when no adapter exists and no GPU was asked for in any way.
    #[new]
    #[pyo3(signature = (backend=None, adapter=None, matmul_variant=None))]
    fn new(
        py: Python<'_>,
        backend: Option<&str>,
        adapter: Option<String>,
        matmul_variant: Option<&str>,
    ) -> PyResult<Self> {
        let choice: BackendChoice = parsed(backend)?.unwrap_or_default();
        let mut options = GpuOptions::from_env().map_err(to_py)?;
        let env_set = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
        let requested = adapter.is_some()
            || matmul_variant.is_some()
            || env_set(gradstab::gpu::ADAPTER_ENV)
            || env_set(gradstab::ops::matmul::autotune::VARIANT_ENV);
        if let Some(a) = adapter {
            options.adapter = Some(a);
        }
        if let Some(v) = parsed(matmul_variant)? {
            options.matmul_variant = Some(v);
        }
        let inner = py.detach(|| guarded(|| Backend::open(choice, &options, requested)))?;
        Ok(Device { inner })
    }

    /// "gpu" or "cpu".
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner {
            Backend::Gpu(_) => "gpu",
            Backend::Cpu(_) => "cpu",
        }
    }

    /// The adapter, backend and driver, as the command line's JSON reports them.
    fn info_json(&self) -> PyResult<String> {
        crate::render::json(&self.inner.info())
    }

    fn __repr__(&self) -> String {
        let info = self.inner.info();
        format!("<gradstab.Device {} ({})>", info.adapter, self.kind())
    }
}

/// Every GPU adapter, as `gradstab devices --format json` lists them.
#[pyfunction]
pub fn devices(py: Python<'_>) -> PyResult<String> {
    let adapters = py.detach(gradstab::gpu::list_adapters);
    crate::render::json(&adapters)
}
