//! Shader templating, the pipeline cache and dispatch: everything a kernel needs from the
//! runtime, and nothing about any particular kernel.
//!
//! Each op family keeps one `.wgsl` file under `shaders/`. A kernel is that file behind a
//! short generated header, which an op family builds from its own Rust constants with
//! [`Header`]: the element types `S` (storage) and `A` (arithmetic), and every constant the
//! shader and the host must agree on. A constant is therefore written once, in Rust; a shader
//! that also defined it would fail to compile (WGSL forbids redefinition), which the naga test
//! checks for every variant.
//!
//! A pipeline is looked up by a [`KernelKey`]: a small `Copy` value that names the variant
//! (an op family's own struct of enums, formats and tile constants), hashed without building
//! anything. Only a miss asks the key for its [`KernelSource`], renders the header's text and
//! compiles it; so a dispatch pays a hash lookup, never a header.

use std::any::TypeId;
use std::collections::HashMap;

use wgpu::util::DeviceExt;

use super::bind::Binding;
use super::device::Device;
pub use super::header::Header;
use crate::error::{Error, Result};

pub use super::header::WORKGROUP_SIZE;

/// Distinct uniform blocks kept before the cache starts again (a benchmark's sweep of sizes
/// makes many; a network's pass a handful).
const UNIFORMS_KEPT: usize = 4096;

/// One compilable kernel: a shader file behind a header, and the entry point to run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelSource {
    /// The file under `shaders/`, for messages.
    pub file: &'static str,
    pub body: &'static str,
    pub header: Header,
    pub entry_point: &'static str,
}

impl KernelSource {
    /// The full WGSL source: `enable f16;` where needed, the header, then the file.
    pub fn source(&self) -> String {
        let enable = if self.header.uses_f16() {
            "enable f16;\n"
        } else {
            ""
        };
        format!("{enable}{}\n{}", self.header.text(), self.body)
    }

    /// Whether compiling this kernel needs `SHADER_F16`.
    pub fn uses_f16(&self) -> bool {
        self.header.uses_f16()
    }
}

/// What names one kernel variant in the pipeline cache: a small value an op family defines
/// (its op, precision, formats, tile constants), cheap to build and hash on every dispatch.
/// Two equal keys must give the same source; `source` is called only on a cache miss. Keys of
/// different types never meet: the cache keeps one map per key type.
pub trait KernelKey: Copy + Eq + std::hash::Hash + std::fmt::Debug + Send + 'static {
    fn source(&self) -> KernelSource;
}

/// A compiled pipeline, with its bind-group layout and a number that names it in the
/// bind-group cache (`bind.rs`).
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) id: u64,
}

/// One dispatch of a multi-kernel submission.
pub struct Dispatch<'a> {
    pub pipeline: &'a Pipeline,
    /// `(binding, range of a buffer)` in group 0; only the bindings the entry point uses
    /// exist in its layout, so each caller names those.
    pub buffers: &'a [(u32, wgpu::BufferBinding<'a>)],
    pub grid: (u32, u32),
}

impl Device {
    /// The compiled pipeline of the kernel `key` names, compiled on first use.
    pub fn pipeline<K: KernelKey>(&self, key: K) -> Result<Pipeline> {
        let mut cache = self
            .pipelines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cache = &mut *cache;
        let map = cache
            .by_type
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(HashMap::<K, Pipeline>::new()))
            .downcast_mut::<HashMap<K, Pipeline>>()
            .expect("the map of a key type is stored under its TypeId");
        if let Some(p) = map.get(&key) {
            return Ok(p.clone());
        }
        let kernel = key.source();
        if kernel.uses_f16() && !self.shader_f16 {
            return Err(self.missing_f16());
        }
        let label = format!("{} {}", kernel.file, kernel.entry_point);
        let (pipeline, layout) = self.checked(&format!("compiling {}", kernel.file), || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
                });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(kernel.entry_point),
                    compilation_options: Default::default(),
                    cache: None,
                });
            let layout = pipeline.get_bind_group_layout(0);
            (pipeline, layout)
        })?;
        self.traffic.pipeline();
        cache.compiled += 1;
        let pipeline = Pipeline {
            pipeline,
            layout,
            id: cache.compiled,
        };
        map.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A small uniform buffer holding `params`.
    /// Uniforms are never written after creation, so one buffer serves every dispatch with
    /// the same contents; a network's layers repeat a handful of them.
    pub fn uniform<T: bytemuck::Pod>(&self, params: &T) -> wgpu::Buffer {
        let contents = bytemuck::bytes_of(params);
        let mut cache = self.uniforms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(buffer) = cache.get(contents) {
            return buffer.clone();
        }
        if cache.len() >= UNIFORMS_KEPT {
            cache.clear();
            // Cached bind groups hold the uniform buffers they bind.
            self.bind_groups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        self.traffic.buffer();
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        cache.insert(contents.to_vec(), buffer.clone());
        buffer
    }

    /// Lays `groups` workgroups out on a grid: up to the adapter's per-dimension limit along x,
    /// folded into rows along y beyond it. Kernels recover their linear index as
    /// `y · groups_x + x` and skip the padding of the last row.
    pub fn grid(&self, groups: u64, what: &str) -> Result<(u32, u32)> {
        let max = self.grid_limit as u64;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::GridTooLarge {
                what: what.to_string(),
                groups,
                limit: max * max,
                adapter: self.adapter_name(),
            });
        }
        Ok((x as u32, y as u32))
    }

    /// The grid of a one-dimensional kernel over `len` elements.
    pub fn element_grid(&self, len: usize, what: &str) -> Result<(u32, u32)> {
        self.grid((len as u64).div_ceil(WORKGROUP_SIZE as u64), what)
    }

    /// Records one dispatch (submitted with the next flush).
    pub fn dispatch(
        &self,
        pipeline: &Pipeline,
        buffers: &[(u32, &wgpu::Buffer)],
        grid: (u32, u32),
        label: &'static str,
    ) -> Result<()> {
        let bindings = buffers.iter().map(|&(binding, b)| (binding, b, 0, None));
        self.record_dispatch(pipeline, bindings, grid, label)
    }

    /// Records several dispatches in order; each sees the writes of the last (see
    /// `record_dispatch`). They are submitted with the next flush (`batch.rs`).
    pub fn dispatch_all(&self, dispatches: &[Dispatch<'_>], label: &'static str) -> Result<()> {
        for d in dispatches {
            let bindings = d
                .buffers
                .iter()
                .map(|(binding, b)| (*binding, b.buffer, b.offset, b.size));
            self.record_dispatch(d.pipeline, bindings, d.grid, label)?;
        }
        Ok(())
    }

    /// One dispatch into the batch's compute pass, with its (cached) bind group.
    ///
    /// Every dispatch of a batch shares one compute pass: wgpu gives each dispatch of a compute
    /// pass a usage scope of its own and inserts a barrier before it wherever an earlier
    /// dispatch's use conflicts (a write before a read or a write): in the crate wgpu-core
    /// 30.0.2, `command::compute::State::flush_bindings` ("barriers may be needed before each
    /// dispatch if a previous dispatch had a conflicting usage") and `track::skip_barrier`,
    /// which skips one only between read-only uses. So a dispatch sees the
    /// writes of every dispatch recorded before it, as with a pass each.
    fn record_dispatch<'a>(
        &self,
        pipeline: &Pipeline,
        bindings: impl Iterator<Item = Binding<'a>> + Clone,
        grid: (u32, u32),
        label: &'static str,
    ) -> Result<()> {
        let bind_group = self
            .bind_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_create(
                pipeline.id,
                self.pool.releases(),
                bindings,
                label,
                |entries| {
                    let group = self.checked(label, || {
                        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some(label),
                            layout: &pipeline.layout,
                            entries,
                        })
                    })?;
                    self.traffic.bind_group();
                    Ok(group)
                },
            )?;
        self.encode_dispatch(label, |pass| {
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        })
    }
}

/// The byte offset of every member of the WGSL struct `name` in `kernel`, and its size, as
/// naga lays them out: what a host struct that mirrors it must match.
#[cfg(test)]
pub(crate) fn wgsl_struct_layout(kernel: &KernelSource, name: &str) -> (Vec<(String, u32)>, u32) {
    let source = kernel.source();
    let module = naga::front::wgsl::parse_str(&source).expect("the kernel parses");
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).expect("layout");
    let (handle, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{} has a struct {name}", kernel.file));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{name} is a struct");
    };
    assert_eq!(layouter[handle].size, *span);
    let members = members
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
        .collect();
    (members, *span)
}

/// Asserts that a host struct of `size` bytes with the named `fields` (name, offset) mirrors
/// the WGSL struct `name`: the same size, and each named field at the same offset. Padding
/// members (named `_pad…`) need not be listed.
#[cfg(test)]
pub(crate) fn assert_mirrors(
    kernel: &KernelSource,
    name: &str,
    fields: &[(&str, usize)],
    size: usize,
) {
    let (members, span) = wgsl_struct_layout(kernel, name);
    let wgsl: Vec<(String, u32)> = members
        .into_iter()
        .filter(|(n, _)| !n.starts_with("_pad"))
        .collect();
    let host: Vec<(String, u32)> = fields
        .iter()
        .map(|(n, o)| (n.to_string(), *o as u32))
        .collect();
    assert_eq!(
        wgsl, host,
        "{} struct {name}: members and offsets",
        kernel.file
    );
    assert_eq!(span as usize, size, "{} struct {name}: size", kernel.file);
}
