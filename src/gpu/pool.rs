//! Device buffers kept for reuse. A deep network allocates the same few sizes layer after
//! layer (Z^t, H^t, dZ, dW, the statistics scratch), and creating a buffer costs a driver
//! call and, on a hardware GPU, far more than a 1024-wide layer's kernels; so a buffer whose
//! tensor is dropped goes back here, by its exact size, and the next request of that size
//! takes it. Reuse is safe without waiting: every command goes through the one queue in
//! order, and wgpu orders a later command's writes after an earlier command's reads.
//!
//! A request takes the *oldest* free buffer of its size (by creation number), not the last
//! one given back: then which buffer a tensor gets depends only on which buffers are free, so a
//! second identical pass gets exactly the buffers the first did, and finds its bind groups in
//! the cache (`bind.rs`). (Were the first pass to create a buffer at some request, the oldest
//! free one at that request in the second is that very buffer: every buffer created later is
//! younger.)

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Free buffers kept beyond this many bytes are released instead (sizes a run no longer
/// uses, such as a benchmark's sweep, must not hold device memory forever).
pub const RETAINED_BYTES: u64 = 256 << 20;

/// Storage buffers for tensors and scratch: every one has the same usages, so any free
/// buffer of the right size serves any request.
pub(crate) const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

#[derive(Default)]
pub(crate) struct BufferPool {
    free: Mutex<Free>,
    reused: AtomicU64,
    /// Times the pool let buffers go (a full pool refusing one, or `clear`): the bind-group
    /// cache, which holds the buffers it binds, starts again when this changes, so that a
    /// released buffer is freed rather than kept alive by a cached bind group.
    releases: AtomicU64,
}

#[derive(Default)]
struct Free {
    /// Free buffers of each size by creation number.
    by_size: HashMap<u64, BTreeMap<u64, wgpu::Buffer>>,
    bytes: u64,
    /// The creation number of the next new buffer.
    created: u64,
}

/// A storage buffer and its creation number on this device (the pool's order of reuse).
#[derive(Debug)]
pub(crate) struct StorageBuffer {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) number: u64,
}

impl BufferPool {
    /// The oldest free buffer of exactly `size` bytes, if one is kept.
    pub(crate) fn take(&self, size: u64) -> Option<StorageBuffer> {
        let mut free = self.lock();
        let (number, buffer) = free.by_size.get_mut(&size)?.pop_first()?;
        free.bytes -= size;
        self.reused.fetch_add(1, Ordering::Relaxed);
        Some(StorageBuffer { buffer, number })
    }

    /// The creation number of a buffer created now.
    pub(crate) fn number_new(&self) -> u64 {
        let mut free = self.lock();
        free.created += 1;
        free.created
    }

    /// Keeps `buffer` for the next request of its size, or releases it when the pool already
    /// holds `RETAINED_BYTES`.
    pub(crate) fn give_back(&self, StorageBuffer { buffer, number }: StorageBuffer) {
        let size = buffer.size();
        let mut free = self.lock();
        if free.bytes + size > RETAINED_BYTES {
            self.releases.fetch_add(1, Ordering::Relaxed);
            return;
        }
        free.bytes += size;
        free.by_size.entry(size).or_default().insert(number, buffer);
    }

    /// Releases every free buffer.
    pub(crate) fn clear(&self) {
        let mut free = self.lock();
        free.by_size.clear();
        free.bytes = 0;
        self.releases.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times buffers were let go so far (see `releases`).
    pub(crate) fn releases(&self) -> u64 {
        self.releases.load(Ordering::Relaxed)
    }

    /// Requests served by a kept buffer so far.
    pub(crate) fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    /// Bytes of free buffers held now.
    pub(crate) fn retained_bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("retained_bytes", &self.retained_bytes())
            .field("reused", &self.reused())
            .finish()
    }
}
