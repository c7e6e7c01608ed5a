//! The backend a call runs on: a GPU, or the CPU backend with the same numeric semantics.

use std::str::FromStr;

use crate::backend::cpu::Cpu;
use crate::backend::gpu::{Gpu, GpuOptions};
use crate::backend::{Backend, BackendInfo};
use crate::error::{Error, Result};
use crate::precision::Precision;

/// Which backend the caller asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The GPU; the CPU, with a notice, when there is no adapter and no GPU was asked for.
    #[default]
    Auto,
    /// The GPU, or an error.
    Gpu,
    /// The CPU backend.
    Cpu,
}

impl BackendChoice {
    /// The names `from_str` takes, as a command line lists them.
    pub const NAMES: [&'static str; 3] = ["auto", "gpu", "cpu"];
}

impl FromStr for BackendChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(Error::Parse {
                what: "backend",
                value: s.to_string(),
                expected: "auto, gpu or cpu",
            }),
        }
    }
}

/// An opened backend.
// One is opened per call and never kept in bulk, so the CPU variant's unused bytes cost
// nothing; boxing the GPU would only add an indirection to every use.
#[allow(clippy::large_enum_variant)]
pub enum Device {
    Gpu(Gpu),
    Cpu(Cpu),
}

/// Evaluates `$body` with `$backend` bound to the device's backend, whichever it is: the
/// backend trait is generic, so each arm is compiled for its own type.
macro_rules! on_device {
    ($device:expr, $backend:ident => $body:expr) => {
        match $device {
            $crate::api::device::Device::Gpu($backend) => $body,
            $crate::api::device::Device::Cpu($backend) => $body,
        }
    };
}
pub(crate) use on_device;

impl Device {
    /// Opens the backend `choice` names. `Auto`: the GPU, or the CPU with a `log::warn!`
    /// notice when there is no adapter and the caller asked for no GPU in any way
    /// (`gpu_requested`: an adapter or a matmul variant was named, by argument or by
    /// environment; the caller decides). `Gpu`: the GPU, or an error saying how to run on the
    /// CPU instead. `Cpu`: the CPU backend.
    pub fn open(
        choice: BackendChoice,
        options: &GpuOptions,
        gpu_requested: bool,
    ) -> Result<Device> {
        if choice == BackendChoice::Cpu {
            return Ok(Device::Cpu(Cpu));
        }
        match Gpu::new(options) {
            Ok(gpu) => Ok(Device::Gpu(gpu)),
            Err(e @ Error::NoAdapter { .. }) if choice == BackendChoice::Auto && !gpu_requested => {
                log::warn!("{e}; running on the CPU backend instead");
                Ok(Device::Cpu(Cpu))
            }
            // A GPU was asked for: honoured or refused, never replaced.
            Err(e @ Error::NoAdapter { .. }) => Err(Error::GpuRequested { cause: Box::new(e) }),
            Err(e) => Err(e),
        }
    }

    /// The CPU backend.
    pub fn cpu() -> Device {
        Device::Cpu(Cpu)
    }

    /// The adapter, backend and driver this device is.
    pub fn info(&self) -> BackendInfo {
        on_device!(self, b => b.info())
    }

    /// Whether this device runs `precision` (a GPU without `SHADER_F16` lacks f16).
    pub fn supports(&self, precision: Precision) -> bool {
        on_device!(self, b => b.supports(precision))
    }

    /// The GPU, if this is one.
    pub fn gpu(&self) -> Option<&Gpu> {
        match self {
            Device::Gpu(gpu) => Some(gpu),
            Device::Cpu(_) => None,
        }
    }
}
