//! Timing a piece of work the way every benchmark here does: one warm-up, then the best of a
//! few runs, each waiting until the device has finished.

use std::time::Instant;

use crate::error::Result;

/// The best time, in seconds, of `repeats` runs of `f` after one warm-up, with `wait` (the
/// device's or the backend's synchronisation) inside each timed run.
pub fn best_time(
    repeats: usize,
    mut f: impl FnMut() -> Result<()>,
    mut wait: impl FnMut() -> Result<()>,
) -> Result<f64> {
    f()?;
    wait()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        wait()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}
