//! The wgpu runtime: adapters, the device, its buffers, shader templating, the pipeline cache
//! and dispatch, and the two measurements of the device itself (`probe`, `roofline`). It knows
//! no op family: each family under `src/ops/` brings its own shader and host code and uses
//! this runtime, and `src/backend/gpu.rs` puts them together as a `Backend`.

mod adapter;
mod batch;
mod bind;
mod buffer;
pub mod codec;
#[cfg(test)]
mod codec_tests;
mod device;
#[cfg(test)]
mod dispatch_tests;
mod header;
mod kernel;
mod pass_timer;
mod pool;
pub mod probe;
pub mod roofline;
mod timestamps;

pub use adapter::{list_adapters, AdapterSummary, ADAPTER_ENV};
pub use batch::COMMANDS_PER_SUBMISSION;
pub use buffer::GpuTensor;
pub use codec::Access;
pub use device::{Device, DeviceOptions, Traffic, VALIDATE_ENV};
#[cfg(test)]
pub(crate) use kernel::assert_mirrors;
pub use kernel::{Dispatch, Header, KernelKey, KernelSource, Pipeline, WORKGROUP_SIZE};
pub use pool::RETAINED_BYTES;
