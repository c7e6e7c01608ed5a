//! Bind groups kept for reuse. A network's layers bind the same few buffers to the same few
//! pipelines step after step (the pool hands a dropped tensor's buffer to the next tensor of
//! its size, and uniforms are cached by contents), so a bind group is created once per
//! pipeline and set of bound buffer ranges, and found again by them.
//!
//! A cached bind group names buffers, not tensors: when the pool hands a buffer to another
//! tensor, the bind group binds that tensor, which is what the dispatch asks for. What must
//! never happen is a bind group of a *freed* buffer serving a new buffer that compares equal
//! to it. wgpu compares buffers by the address of their handle, which a new buffer may take
//! once the old one is gone; so each key holds the buffers themselves (a clone of each
//! handle), which keeps their addresses taken for as long as the entry exists. The cost is
//! that a cached entry keeps its buffers alive: the cache therefore starts again whenever
//! the pool lets a buffer go (`BufferPool::releases`), when the uniform cache starts again,
//! on `Device::release_kept_buffers`, and when it holds `BIND_GROUPS_KEPT` entries.

use std::collections::HashMap;
use std::num::NonZeroU64;

use super::device::Device;
use super::kernel::{Binding, Pipeline};
use crate::error::{Error, Result};

/// Bindings one bind group can have here (the optimizer, the widest kernel, has seven).
pub(crate) const MAX_BINDINGS: usize = 8;

/// Bind groups kept before the cache starts again: a deep network's pass needs a few per
/// layer; a sweep of sizes would otherwise grow it without end.
const BIND_GROUPS_KEPT: usize = 4096;

/// One bound range, holding its buffer (see the module's note).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    binding: u32,
    buffer: wgpu::Buffer,
    offset: u64,
    size: Option<NonZeroU64>,
}

/// A pipeline (by its number, unique on the device) and its bindings, in the caller's order.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    pipeline: u64,
    entries: [Option<Entry>; MAX_BINDINGS],
}

#[derive(Default)]
pub(crate) struct BindGroups {
    by_key: HashMap<Key, wgpu::BindGroup>,
    /// The pool's `releases` when the cache last started again.
    pool_releases: u64,
}

impl BindGroups {
    /// Drops every cached bind group, and with them the buffers only they held.
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
    }
}

impl Device {
    /// The bind group of `pipeline` over `bindings`: a cached one, or a new one.
    pub(crate) fn bind_group<'a>(
        &self,
        pipeline: &Pipeline,
        bindings: impl Iterator<Item = Binding<'a>> + Clone,
        label: &'static str,
    ) -> Result<wgpu::BindGroup> {
        let mut entries: [Option<Entry>; MAX_BINDINGS] = Default::default();
        let mut count = 0;
        for (binding, buffer, offset, size) in bindings.clone() {
            let slot = entries.get_mut(count).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{label}: a kernel binds at most {MAX_BINDINGS} buffers here"
                ))
            })?;
            *slot = Some(Entry {
                binding,
                buffer: buffer.clone(),
                offset,
                size,
            });
            count += 1;
        }
        let key = Key {
            pipeline: pipeline.id,
            entries,
        };
        let mut cache = self.bind_groups.lock().unwrap_or_else(|p| p.into_inner());
        let releases = self.pool.releases();
        if cache.pool_releases != releases || cache.by_key.len() >= BIND_GROUPS_KEPT {
            cache.clear();
            cache.pool_releases = releases;
        }
        if let Some(group) = cache.by_key.get(&key) {
            return Ok(group.clone());
        }
        let mut descriptors: [Option<wgpu::BindGroupEntry>; MAX_BINDINGS] = Default::default();
        for (slot, (binding, buffer, offset, size)) in descriptors.iter_mut().zip(bindings) {
            *slot = Some(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size,
                }),
            });
        }
        let descriptors: Vec<wgpu::BindGroupEntry> = descriptors.into_iter().flatten().collect();
        let group = self.checked(label, || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &pipeline.layout,
                entries: &descriptors,
            })
        })?;
        self.traffic.bind_group();
        cache.by_key.insert(key, group.clone());
        Ok(group)
    }
}
