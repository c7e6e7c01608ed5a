//! gradstab: measure the numerical (in)stability of deep networks on real GPU hardware.
//!
//! The crate runs the primitives of a deep MLP (matmul with transposes, activations and their
//! derivatives, elementwise products) as WGSL compute kernels through wgpu in `f32`, `f16` and
//! mixed precision, and the same primitives on a CPU backend with the same numeric semantics,
//! which validates every GPU result. docs/design.md describes the layout; dependencies run one
//! way, from the command line down to the wgpu runtime:
//!
//! `cli` → `api` → `experiment`, `report` → `network` → `backend` → `ops` → `gpu`, with `theory`,
//! `init`, `stats`, `tensor`, `precision`, `format` and `error` underneath.

pub mod api;
pub mod backend;
pub mod bench;
pub mod checked;
pub mod demo;
pub mod error;
pub mod experiment;
pub mod files;
pub mod format;
pub mod gpu;
pub mod host_memory;
pub mod init;
pub mod network;
pub mod ops;
pub mod output;
pub mod precision;
pub mod report;
pub mod shaders;
pub mod stats;
pub mod sweep;
pub mod tensor;
pub mod theory;
pub mod timing;
pub mod train;
pub mod verify;

pub use backend::cpu::Cpu;
pub use backend::gpu::{Gpu, GpuOptions};
pub use backend::{Backend, BackendInfo};
pub use error::{Error, Result};
pub use gpu::GpuTensor;
pub use ops::activation::Activation;
pub use ops::elementwise::ElementwiseOp;
pub use ops::matmul::MatmulOp;
pub use precision::{DType, Precision};
pub use tensor::{HostData, HostTensor, HostView, Shape};
