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

use crate::error::{Error, Result};

/// One bound range: `(binding, buffer, offset, size)`, `None` meaning to the buffer's end.
pub(crate) type Binding<'a> = (u32, &'a wgpu::Buffer, u64, Option<NonZeroU64>);

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

impl BindGroups {
    /// The cached bind group of pipeline number `pipeline` over `bindings`, or the one
    /// `create` makes from their entries (then kept). `pool_releases` is the pool's count of
    /// releases now: when it moved, the cache starts again.
    pub(crate) fn get_or_create<'a>(
        &mut self,
        pipeline: u64,
        pool_releases: u64,
        bindings: impl Iterator<Item = Binding<'a>> + Clone,
        label: &str,
        create: impl FnOnce(&[wgpu::BindGroupEntry]) -> Result<wgpu::BindGroup>,
    ) -> Result<wgpu::BindGroup> {
        let mut entries: [Option<Entry>; MAX_BINDINGS] = Default::default();
        for (count, (binding, buffer, offset, size)) in bindings.clone().enumerate() {
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
        }
        let key = Key { pipeline, entries };
        if self.pool_releases != pool_releases || self.by_key.len() >= BIND_GROUPS_KEPT {
            self.clear();
            self.pool_releases = pool_releases;
        }
        if let Some(group) = self.by_key.get(&key) {
            return Ok(group.clone());
        }
        let descriptors: Vec<wgpu::BindGroupEntry> = bindings
            .map(|(binding, buffer, offset, size)| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size,
                }),
            })
            .collect();
        let group = create(&descriptors)?;
        self.by_key.insert(key, group.clone());
        Ok(group)
    }
}
