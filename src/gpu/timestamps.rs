//! Device time of tagged work, from timestamp queries: a caller tags what it records next
//! (`Device::time_passes_as`), every compute pass recorded under a tag writes a timestamp at
//! its beginning and at its end, and `Device::timed_seconds` adds each pass's duration to its
//! tag. A change of tag ends the open pass, so that no pass holds two tags' dispatches.
//!
//! What this measures is the device's time inside compute passes: the dispatches, and the
//! barriers between them. Copies (uploads, read-backs) lie outside passes and are not counted;
//! nor is the time the device sits idle between submissions, waiting for the host. Passes of
//! one queue run one after another, so on an adapter that does not overlap consecutive passes
//! the tags' times add up to at most the host's time around the work.
//!
//! Only `Features::TIMESTAMP_QUERY` is needed (timestamps at a pass's beginning and end, not
//! inside it); a device opened without it times nothing, and `timed_seconds` says `None`.

use super::device::{Device, Pending};
use crate::error::Result;

impl Device {
    /// Whether the device writes timestamps, so that tagged passes are timed.
    pub fn times_passes(&self) -> bool {
        self.lock_pending().timer.is_some()
    }

    /// Tags the work recorded from now on (`None`: untimed). A new tag ends the open pass.
    pub fn time_passes_as(&self, tag: Option<usize>) {
        let mut pending = self.lock_pending();
        if pending.tag != tag {
            pending.pass = None;
            pending.tag = tag;
        }
    }

    /// The device seconds of the passes recorded under each tag (index = tag) since the last
    /// call, read back in one read after submitting what is pending; `None` without timestamp
    /// queries. Ends the open pass, and the tagging (`time_passes_as(None)`).
    pub fn timed_seconds(&self) -> Result<Option<Vec<f64>>> {
        self.time_passes_as(None);
        if !self.times_passes() {
            return Ok(None);
        }
        self.read_timestamps()?;
        let mut pending = self.lock_pending();
        let timer = pending.timer.as_mut().expect("checked above");
        Ok(Some(std::mem::take(&mut timer.seconds)))
    }

    /// Resolves the timestamps written so far, reads them back and adds them to the timer's
    /// seconds, emptying the set. Called with the pending commands unlocked.
    pub(crate) fn read_timestamps(&self) -> Result<()> {
        let (set, resolved, queries) = {
            let mut guard = self.lock_pending();
            let pending: &mut Pending = &mut guard;
            let Some(timer) = pending.timer.as_ref() else {
                return Ok(());
            };
            let queries = 2 * timer.tags.len() as u32;
            if queries == 0 {
                return Ok(());
            }
            (timer.set.clone(), timer.resolved.clone(), queries)
        };
        self.encode("timestamp resolve", 1, |encoder| {
            encoder.resolve_query_set(&set, 0..queries, &resolved, 0);
        })?;
        let bytes = self.read_buffer(&resolved, queries as u64 * 8)?;
        let ticks: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let mut pending = self.lock_pending();
        pending.timer.as_mut().expect("checked above").add(&ticks);
        Ok(())
    }
}
