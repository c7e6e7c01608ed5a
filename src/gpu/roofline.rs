//! The device's own roofline, measured rather than taken from a data sheet: peak multiply-add
//! throughput per arithmetic type and copy bandwidth (shaders/roofline.wgsl). `gradstab bench`
//! reports every kernel against these two figures.

use super::device::Device;
use super::kernel::{Header, KernelKey, KernelSource, WORKGROUP_SIZE};
use crate::error::Result;
use crate::precision::DType;
use crate::tensor::Shape;

/// Floating-point operations per thread and iteration of `fma_peak`: 4 chains of vec4 fma.
const FLOPS_PER_ITERATION: f64 = 4.0 * 4.0 * 2.0;
/// Bytes moved per copied vec4<f32> word: 16 read and 16 written.
const BYTES_PER_WORD: f64 = 32.0;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    iterations: u32,
    len: u32,
    groups_x: u32,
    _pad: u32,
}

/// A roofline kernel (`fma_peak` or `copy`) for arithmetic in `dtype`.
/// The pipeline-cache key of [`kernel`]: built and hashed on every dispatch, rendered only on
/// a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(DType, &'static str);

impl KernelKey for Key {
    fn source(&self) -> KernelSource {
        kernel(self.0, self.1)
    }
}

pub fn kernel(dtype: DType, entry_point: &'static str) -> KernelSource {
    KernelSource {
        file: "roofline.wgsl",
        body: include_str!("../../shaders/roofline.wgsl"),
        header: Header::new().element_types(dtype, dtype),
        entry_point,
    }
}

/// Every roofline kernel, for the naga test.
pub fn kernels() -> Vec<KernelSource> {
    [DType::F32, DType::F16]
        .into_iter()
        .flat_map(|d| ["fma_peak", "copy"].map(|e| kernel(d, e)))
        .collect()
}

/// The best time of `repeats` runs of `f` after one warm-up, each waited for.
pub fn best_time(gpu: &Device, repeats: usize, f: impl FnMut() -> Result<()>) -> Result<f64> {
    crate::timing::best_time(repeats, f, || gpu.wait_idle())
}

/// Peak FMA throughput in `dtype` arithmetic, GFLOP/s, from `workgroups` workgroups that each
/// run `iterations` steps.
pub fn fma_peak(
    gpu: &Device,
    dtype: DType,
    workgroups: u64,
    iterations: u32,
    repeats: usize,
) -> Result<f64> {
    let grid = gpu.grid(workgroups, "roofline")?;
    let sink = gpu.alloc(Shape::new(1024, 4), dtype, "roofline sink")?;
    let params = gpu.uniform(&Params {
        iterations,
        len: 1024,
        groups_x: grid.0,
        _pad: 0,
    });
    let pipeline = gpu.pipeline(Key(dtype, "fma_peak"))?;
    let seconds = best_time(gpu, repeats, || {
        gpu.dispatch(
            &pipeline,
            &[(2, &params), (3, &sink.buffer)],
            grid,
            "fma peak",
        )
    })?;
    let threads = grid.0 as f64 * grid.1 as f64 * WORKGROUP_SIZE as f64;
    Ok(threads * iterations as f64 * FLOPS_PER_ITERATION / seconds / 1e9)
}

/// Copy bandwidth over `words` `vec4<f32>` words, GB/s of bytes read plus bytes written.
pub fn copy_bandwidth(gpu: &Device, words: usize, repeats: usize) -> Result<f64> {
    let grid = gpu.element_grid(words, "roofline")?;
    let src = gpu.alloc(Shape::new(words, 4), DType::F32, "copy source")?;
    let dst = gpu.alloc(Shape::new(words, 4), DType::F32, "copy destination")?;
    let params = gpu.uniform(&Params {
        iterations: 0,
        len: words as u32,
        groups_x: grid.0,
        _pad: 0,
    });
    let pipeline = gpu.pipeline(Key(DType::F32, "copy"))?;
    let seconds = best_time(gpu, repeats, || {
        gpu.dispatch(
            &pipeline,
            &[(0, &src.buffer), (1, &dst.buffer), (2, &params)],
            grid,
            "copy",
        )
    })?;
    Ok(BYTES_PER_WORD * words as f64 / seconds / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::kernel::assert_mirrors;
    use std::mem::{offset_of, size_of};

    #[test]
    fn params_mirror_the_shader() {
        assert_mirrors(
            &kernel(DType::F32, "copy"),
            "Params",
            &[
                ("iterations", offset_of!(Params, iterations)),
                ("len", offset_of!(Params, len)),
                ("groups_x", offset_of!(Params, groups_x)),
            ],
            size_of::<Params>(),
        );
    }
}
