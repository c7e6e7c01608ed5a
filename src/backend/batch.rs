//! Statistics records started one by one and collected in one wait, each found again by the
//! handle its start returned, not by its place in the queue: a caller that starts records in
//! a loop, some only on some steps, cannot read one tensor's record as another's.

use super::Backend;
use crate::error::Result;
use crate::stats::{Census, StatsRecord};

/// Where a record will be, once collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsHandle(usize);

/// Where a census will be, once collected: a handle of its own type, so that no caller reads
/// the moments or histogram a backend's census may leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CensusHandle(usize);

/// The records started so far, none waited for.
pub struct StatsBatch<P> {
    pending: Vec<P>,
}

impl<P> Default for StatsBatch<P> {
    fn default() -> Self {
        StatsBatch {
            pending: Vec::new(),
        }
    }
}

impl<P> StatsBatch<P> {
    /// Starts the record of `x` on `backend`.
    pub fn start<B: Backend<PendingStats = P>>(
        &mut self,
        backend: &B,
        x: &B::Tensor,
    ) -> Result<StatsHandle> {
        self.pending.push(backend.stats_later(x)?);
        Ok(StatsHandle(self.pending.len() - 1))
    }

    /// Starts the census of `x` (counts and norm only, `Backend::census_later`) on `backend`,
    /// collected in the same wait as the records.
    pub fn start_census<B: Backend<PendingStats = P>>(
        &mut self,
        backend: &B,
        x: &B::Tensor,
    ) -> Result<CensusHandle> {
        self.pending.push(backend.census_later(x)?);
        Ok(CensusHandle(self.pending.len() - 1))
    }

    /// A census already started (`Backend::census_later`, `Backend::optimizer_step_census`),
    /// collected in the same wait as the records.
    pub fn add_census(&mut self, pending: P) -> CensusHandle {
        self.pending.push(pending);
        CensusHandle(self.pending.len() - 1)
    }

    /// Every record, in one wait (one read on a GPU).
    pub fn collect<B: Backend<PendingStats = P>>(self, backend: &B) -> Result<Collected> {
        Ok(Collected(backend.collect_stats(self.pending)?))
    }
}

/// The records of a batch, by handle.
pub struct Collected(Vec<StatsRecord>);

impl Collected {
    pub fn get(&self, handle: StatsHandle) -> &StatsRecord {
        &self.0[handle.0]
    }

    pub fn census(&self, handle: CensusHandle) -> Census {
        Census::of(&self.0[handle.0])
    }
}
