//! Shared test helpers: the GPU (mandatory in CI), seeded random tensors and comparisons.
#![allow(dead_code)]

use gradstab::gpu::probe::{probe, ProbeReport};
use gradstab::{Backend, DType, Gpu, GpuOptions, HostTensor, MatmulOp, Precision};
use rand::{Rng, SeedableRng};

/// Set to 1 (as `.ci/run` does) to make a missing adapter a test failure instead of a skip.
pub const REQUIRE_GPU_ENV: &str = "GRADSTAB_REQUIRE_GPU";

/// The GPU of `GRADSTAB_ADAPTER` (or the best one). Without an adapter this returns `None`
/// after printing a notice, or panics when `GRADSTAB_REQUIRE_GPU=1`.
pub fn gpu(test: &str) -> Option<Gpu> {
    match Gpu::new(&GpuOptions::from_env()) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            if std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: {REQUIRE_GPU_ENV}=1 but no GPU: {e}");
            }
            eprintln!("SKIPPED {test}: no GPU adapter ({e}); set {REQUIRE_GPU_ENV}=1 to make this a failure");
            None
        }
    }
}

/// A GPU with `SHADER_F16` and its probe report, or `None` as for [`gpu`].
pub fn gpu_with_probe(test: &str) -> Option<(Gpu, ProbeReport)> {
    let gpu = gpu(test)?;
    let report = probe(&gpu).expect("probe runs");
    Some((gpu, report))
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// N(0, std²) values, rounded to `dtype`.
pub fn normal_tensor(
    rng: &mut impl Rng,
    dtype: DType,
    rows: usize,
    cols: usize,
    std: f32,
) -> HostTensor {
    gradstab::verify::normal_tensor(rng, dtype, rows, cols, std).unwrap()
}

/// `op(A)·op(B)` on any backend, from host tensors to a host tensor.
pub fn matmul_on<B: Backend>(
    backend: &B,
    a: &HostTensor,
    b: &HostTensor,
    op: MatmulOp,
    precision: Precision,
) -> HostTensor {
    let (a, b) = (backend.upload(a).unwrap(), backend.upload(b).unwrap());
    backend
        .download(&backend.matmul(&a, &b, op, precision).unwrap())
        .unwrap()
}
