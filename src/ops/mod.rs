//! The primitive operations, one family per folder. Each folder keeps the op's definition and
//! error bound (`mod.rs`), its CPU reference (`cpu.rs`) and the host code of its WGSL kernel
//! (`gpu.rs`) side by side, so a reader sees both sides of the numeric contract at once. The
//! host code uses the wgpu runtime of `src/gpu/`; the backends of `src/backend/` call both.

pub mod activation;
pub mod bounds;
pub mod cast;
pub mod checks;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod reduce;

pub use bounds::{gamma, result_distance};
