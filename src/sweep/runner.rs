//! Runs a shard's points and appends each result as it finishes: several points at once,
//! each on one core, or one point at a time on every core.
//!
//! On the CPU backend, points side by side reach more points per second than one point split
//! over the cores, at every size measured (BENCHMARKS.md, "Sweeps": from width 32 to a 1024 ×
//! 1024 × 128 matmul): a point's matmuls never split perfectly, and its fixed costs (records,
//! allocations) do not split at all. What limits them is memory: `Jobs::Auto` runs as many as
//! there are cores and as fit in the host's available memory together. On a GPU, points run
//! one at a time: the device is one, and a point fills it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};

use super::grid::Point;
use super::results::{PointResult, ResultsFile};

/// How many points run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jobs {
    /// Chosen by the device, the cores and memory (`Jobs::resolve`).
    Auto,
    /// Exactly this many (≥ 1).
    Exactly(usize),
}

impl Jobs {
    /// The number of points to run at once: `Exactly` as asked; `Auto` one on a GPU, else one
    /// per core, no more than fit in `available` host bytes at `point_bytes` each (the largest
    /// point's estimate), and at least one (whose own check refuses it if it cannot fit).
    pub fn resolve(
        self,
        on_gpu: bool,
        point_bytes: u64,
        available: Option<u64>,
        cores: usize,
    ) -> usize {
        match self {
            Jobs::Exactly(n) => n,
            Jobs::Auto if on_gpu => 1,
            Jobs::Auto => {
                let fit = match available {
                    Some(bytes) => (bytes / point_bytes.max(1)) as usize,
                    None => cores,
                };
                cores.min(fit).max(1)
            }
        }
    }
}

/// The cores this process may use: its CPU affinity, and no more than a Slurm task was given.
pub fn cores() -> usize {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slurm = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    slurm.map_or(available, |n| n.min(available))
}

/// What a shard's run did.
#[derive(Clone, Copy, Debug)]
pub struct RunSummary {
    /// Points run now.
    pub ran: usize,
    /// Points of the shard the file already held.
    pub skipped: usize,
    pub jobs: usize,
    pub seconds: f64,
}

impl RunSummary {
    pub fn points_per_second(&self) -> f64 {
        self.ran as f64 / self.seconds
    }
}

/// Runs each of `points` the file does not hold through `run`, `jobs` at a time, appending
/// each result as it finishes and telling `done` (points finished, of how many). The first
/// error stops handing out points; those finished stay in the file, so a second call resumes.
pub fn run_points(
    points: &[Point],
    jobs: usize,
    out: &mut ResultsFile,
    run: &(dyn Fn(&Point) -> Result<PointResult> + Sync),
    done: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<RunSummary> {
    if jobs == 0 {
        return Err(Error::InvalidArgument("jobs 0: expected at least 1".into()));
    }
    let todo: Vec<&Point> = points.iter().filter(|p| !out.has(p.index)).collect();
    let skipped = points.len() - todo.len();
    let started = Instant::now();
    let jobs = jobs.min(todo.len()).max(1);
    let total = todo.len();
    let finish = |out: &mut ResultsFile,
                  done: &mut dyn FnMut(usize, usize),
                  finished: &mut usize,
                  result: Result<PointResult>,
                  point: &Point|
     -> Result<()> {
        let result = result.map_err(|e| Error::SweepPoint {
            index: point.index,
            source: Box::new(e),
        })?;
        out.append(&result)?;
        *finished += 1;
        done(*finished, total);
        Ok(())
    };
    if jobs == 1 {
        let mut finished = 0;
        for point in &todo {
            finish(out, done, &mut finished, run(point), point)?;
        }
    } else {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let shared = Mutex::new((out, done, 0usize, None::<Error>));
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    // Each worker's kernels on its own core: a point's rayon work stays in
                    // this one-thread pool instead of spreading over the cores the other
                    // workers use.
                    let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
                        Ok(pool) => pool,
                        Err(e) => {
                            failed.store(true, Ordering::SeqCst);
                            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                            s.3.get_or_insert(Error::InvalidArgument(format!(
                                "a worker thread pool: {e}"
                            )));
                            return;
                        }
                    };
                    while !failed.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(point) = todo.get(i) else { break };
                        let result = pool.install(|| run(point));
                        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                        let (out, done, finished, error) = &mut *s;
                        if let Err(e) = finish(out, *done, finished, result, point) {
                            failed.store(true, Ordering::SeqCst);
                            error.get_or_insert(e);
                        }
                    }
                });
            }
        });
        let (_, _, _, error) = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = error {
            return Err(e);
        }
    }
    Ok(RunSummary {
        ran: total,
        skipped,
        jobs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_runs_a_point_per_core_as_memory_allows() {
        const GIB: u64 = 1 << 30;
        assert_eq!(Jobs::Auto.resolve(false, GIB, Some(16 * GIB), 8), 8);
        assert_eq!(Jobs::Auto.resolve(false, 5 * GIB, Some(16 * GIB), 8), 3);
        // One that does not fit at all still runs alone, to be refused by its own check.
        assert_eq!(Jobs::Auto.resolve(false, 32 * GIB, Some(16 * GIB), 8), 1);
        assert_eq!(Jobs::Auto.resolve(false, GIB, None, 4), 4);
        assert_eq!(Jobs::Auto.resolve(true, 1, Some(16 * GIB), 8), 1);
        assert_eq!(Jobs::Exactly(5).resolve(true, 32 * GIB, Some(GIB), 2), 5);
    }
}
