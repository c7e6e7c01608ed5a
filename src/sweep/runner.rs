//! Runs a shard's points and appends each result as it finishes: one point at a time on every
//! core, or several points at once, each on one core.
//!
//! Which is faster depends on the point's size: a small network's matmuls are too short to
//! split across cores (the threads spend more time meeting than computing), so small points
//! run side by side; a large one splits well and would need memory for each copy, so large
//! points run one at a time. `Jobs::Auto` chooses by the largest matmul of a point
//! (BENCHMARKS.md, "Sweeps", measured both ways).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};

use super::grid::Point;
use super::results::{PointResult, ResultsFile};

/// A point whose largest matmul has at least this many multiply-adds runs alone on every
/// core; a smaller one runs beside others, one core each. Between 64³ and 256³ both ways
/// reach the same throughput on the CPU backend (BENCHMARKS.md, "Sweeps").
pub const PARALLEL_POINTS_BELOW_MACS: u64 = 1 << 24;

/// How many points run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jobs {
    /// Chosen by the points' size and the device (`Jobs::resolve`).
    Auto,
    /// Exactly this many (≥ 1).
    Exactly(usize),
}

impl Jobs {
    /// The number of points to run at once: `Exactly` as asked; `Auto` one at a time on a
    /// GPU (one device, which a point fills) or for large points, else one per core.
    pub fn resolve(self, on_gpu: bool, largest_matmul_macs: u64, cores: usize) -> usize {
        match self {
            Jobs::Exactly(n) => n,
            Jobs::Auto if on_gpu || largest_matmul_macs >= PARALLEL_POINTS_BELOW_MACS => 1,
            Jobs::Auto => cores.max(1),
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
