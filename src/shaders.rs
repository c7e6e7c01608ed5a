//! Every kernel the library can compile: what the naga test validates, variant by variant.

use crate::gpu::{probe, roofline, KernelSource};
use crate::ops::{activation, cast, elementwise, loss, matmul, optimizer, reduce};
use crate::precision::DType;

pub fn all() -> Vec<KernelSource> {
    let mut all = matmul::gpu::kernels();
    all.extend(activation::gpu::kernels());
    all.extend(elementwise::gpu::kernels());
    all.extend(reduce::gpu::kernels());
    all.extend(loss::gpu::kernels());
    all.extend(optimizer::gpu::kernels());
    all.extend(cast::gpu::kernels());
    all.extend([DType::F32, DType::F16].map(probe::kernel));
    all.extend(roofline::kernels());
    all
}
