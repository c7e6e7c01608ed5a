//! Commands recorded but not yet submitted. Every kernel is encoded into one open command
//! encoder, which goes to the queue when it holds `PASSES_PER_SUBMISSION` compute passes or
//! when the host needs a result (a read, an upload, a wait). A deep network's pass is then a
//! few dozen submissions instead of one per kernel, and the host never waits inside it.
//!
//! Ordering is what makes this safe: commands of one encoder run in the order they were
//! recorded, with the barriers wgpu inserts between passes, and submissions run in order.
//! The one exception is `Queue::write_buffer`, which takes effect before the *next*
//! submission's commands; so an upload first submits what is pending (`flush`), lest it
//! overwrite a buffer that an earlier, still-unsubmitted command reads.

use super::device::{Device, Pending};
use crate::error::Result;

/// Compute passes recorded before the encoder is submitted without being asked: enough to
/// keep submissions rare, few enough that the device starts on a long pass early.
pub const PASSES_PER_SUBMISSION: usize = 64;

impl Device {
    /// Records `passes` compute passes (or copies) with `record`, submitting first when the
    /// open encoder is full.
    pub(crate) fn encode(
        &self,
        label: &str,
        passes: usize,
        record: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.passes + passes > PASSES_PER_SUBMISSION && pending.encoder.is_some() {
            self.submit(&mut pending)?;
        }
        let encoder = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("gradstab commands"),
                })
        });
        self.checked(label, || record(encoder))?;
        pending.passes += passes;
        pending.last = label.to_string();
        Ok(())
    }

    /// Submits everything recorded so far (nothing when nothing is pending).
    pub fn flush(&self) -> Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.submit(&mut pending)
    }

    fn submit(&self, pending: &mut Pending) -> Result<()> {
        let Some(encoder) = pending.encoder.take() else {
            return Ok(());
        };
        let passes = std::mem::take(&mut pending.passes);
        let last = std::mem::take(&mut pending.last);
        // Errors inside a recorded pass surface when the encoder finishes.
        self.checked(
            &format!("{last} (submitted with the {passes} passes recorded before it)"),
            || {
                self.traffic.submission();
                self.queue.submit([encoder.finish()]);
            },
        )
    }
}
