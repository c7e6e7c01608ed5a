//! Commands recorded but not yet submitted. Every kernel is recorded into one compute pass of
//! one open command encoder, which goes to the queue when it holds
//! `COMMANDS_PER_SUBMISSION` commands or when the host needs a result (a read, an upload, a
//! wait). A deep network's pass is then a handful of submissions instead of one per kernel,
//! the host never waits inside it, and it opens no pass per kernel.
//!
//! Ordering is what makes this safe: commands of one encoder run in the order they were
//! recorded, with the barriers wgpu inserts between dispatches of a pass (`kernel.rs`,
//! `record_dispatch`) and between passes, and submissions run in order. The one exception is
//! `Queue::write_buffer`, which takes effect before the *next* submission's commands; so an
//! upload first submits what is pending (`flush`), lest it overwrite a buffer that an
//! earlier, still-unsubmitted command reads.
//!
//! Errors: a dispatch is recorded outside any error scope (pushing and popping scopes costs
//! more than the dispatch). wgpu keeps an error raised inside a pass with the encoder and
//! raises it when the encoder is finished, which `submit` does inside error scopes; so it
//! becomes an `Err` naming the last command of the submission. Set `GRADSTAB_GPU_VALIDATE=1`
//! (`device::VALIDATE_ENV`) to submit each dispatch alone, so that the error names its kernel.

use super::device::{Device, Pending};
use crate::error::Result;

/// Commands (dispatches and copies) recorded before the encoder is submitted without being
/// asked. Larger batches cost the host less (lavapipe wakes its queue thread once per
/// submission); the bound keeps each submission's device time short (a driver's watchdog times
/// whole submissions) and lets the device start on a long pass before all of it is recorded.
/// A buffer dropped and not kept by the pool lives until its submission ends, so the bound
/// also caps what a batch holds beyond the pool.
pub const COMMANDS_PER_SUBMISSION: usize = 256;

impl Device {
    /// Records one dispatch with `record` into the batch's open compute pass, opening it (and
    /// the encoder) when none is, and submitting first when the batch is full.
    pub(crate) fn encode_dispatch(
        &self,
        label: &'static str,
        record: impl FnOnce(&mut wgpu::ComputePass<'static>),
    ) -> Result<()> {
        let mut guard = self.lock_pending();
        if guard.commands >= COMMANDS_PER_SUBMISSION {
            self.submit(&mut guard)?;
        }
        // A timed pass about to open with no room left for its timestamps: read those written.
        if guard.pass.is_none()
            && guard.tag.is_some()
            && guard.timer.as_ref().is_some_and(|t| t.full())
        {
            drop(guard);
            self.read_timestamps()?;
            guard = self.lock_pending();
        }
        let pending = &mut *guard;
        let encoder = pending.encoder.get_or_insert_with(|| self.new_encoder());
        let pass = match &mut pending.pass {
            Some(pass) => pass,
            None => {
                let timestamp_writes = match (pending.tag, pending.timer.as_mut()) {
                    (Some(tag), Some(timer)) => Some(timer.begin_pass(tag)),
                    _ => None,
                };
                pending.pass.insert(
                    encoder
                        .begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: Some("gradstab kernels"),
                            timestamp_writes,
                        })
                        .forget_lifetime(),
                )
            }
        };
        record(pass);
        pending.commands += 1;
        pending.last = label;
        if self.validate_each_dispatch {
            self.submit(pending)?;
        }
        Ok(())
    }

    /// Records `commands` copies (or clears) with `record` on the encoder itself, after ending
    /// the open compute pass (an encoder records nothing else while a pass is open), submitting
    /// first when the batch is full.
    pub(crate) fn encode(
        &self,
        label: &'static str,
        commands: usize,
        record: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<()> {
        let mut guard = self.lock_pending();
        if guard.commands + commands > COMMANDS_PER_SUBMISSION {
            self.submit(&mut guard)?;
        }
        let pending = &mut *guard;
        pending.pass = None;
        let encoder = pending.encoder.get_or_insert_with(|| self.new_encoder());
        self.checked(label, || record(encoder))?;
        pending.commands += commands;
        pending.last = label;
        Ok(())
    }

    fn new_encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gradstab commands"),
            })
    }

    /// Submits everything recorded so far (nothing when nothing is pending).
    pub fn flush(&self) -> Result<()> {
        let mut pending = self.lock_pending();
        self.submit(&mut pending)
    }

    fn submit(&self, pending: &mut Pending) -> Result<()> {
        let Some(encoder) = pending.encoder.take() else {
            return Ok(());
        };
        let pass = pending.pass.take();
        let commands = std::mem::take(&mut pending.commands);
        let last = std::mem::take(&mut pending.last);
        // Errors inside a recorded pass surface when it ends and the encoder finishes.
        self.checked(
            &format!("{last} (submitted with the {commands} commands recorded before it)"),
            || {
                drop(pass);
                self.traffic.submission();
                self.queue.submit([encoder.finish()]);
            },
        )
    }
}
