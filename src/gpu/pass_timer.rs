//! The query set that times compute passes (`timestamps.rs` reads it): where each pass's two
//! timestamps go, which tag each pass has, and the sum of the passes' durations by tag.

/// The most timestamps one query set holds (wgpu's `QUERY_SET_MAX_QUERIES`): two per pass.
/// A step with more tagged passes reads what it has when the set fills and starts again.
const QUERIES: u32 = wgpu::QUERY_SET_MAX_QUERIES;

/// The query set of a device with timestamp queries, and the passes written into it since the
/// last read.
pub(crate) struct PassTimer {
    pub(super) set: wgpu::QuerySet,
    /// Where the set is resolved to, as u64 ticks, for `read_ranges` to copy back.
    pub(super) resolved: wgpu::Buffer,
    /// Nanoseconds per tick (`Queue::get_timestamp_period`).
    period_ns: f64,
    /// The tag of pass i, whose timestamps are queries 2i (beginning) and 2i + 1 (end).
    pub(super) tags: Vec<usize>,
    /// Seconds per tag of the passes read before the set last filled.
    pub(super) seconds: Vec<f64>,
}

impl PassTimer {
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> PassTimer {
        PassTimer {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("gradstab pass timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES,
            }),
            resolved: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("gradstab resolved timestamps"),
                size: QUERIES as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            period_ns: queue.get_timestamp_period() as f64,
            tags: Vec::new(),
            seconds: Vec::new(),
        }
    }

    /// Whether another pass's two timestamps fit in the set.
    pub(crate) fn full(&self) -> bool {
        2 * (self.tags.len() as u32 + 1) > QUERIES
    }

    /// The timestamp writes of a new pass tagged `tag`.
    pub(crate) fn begin_pass(&mut self, tag: usize) -> wgpu::ComputePassTimestampWrites<'_> {
        let pass = self.tags.len() as u32;
        self.tags.push(tag);
        wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * pass),
            end_of_pass_write_index: Some(2 * pass + 1),
        }
    }

    /// Adds the passes' durations, from their resolved ticks, to `seconds` by tag.
    pub(super) fn add(&mut self, ticks: &[u64]) {
        add_passes(&mut self.seconds, &self.tags, ticks, self.period_ns);
        self.tags.clear();
    }
}

/// Adds the duration of pass i, tagged `tags[i]`, from its ticks `ticks[2i]` (beginning) and
/// `ticks[2i + 1]` (end) at `period_ns` nanoseconds a tick, to `seconds[tags[i]]`.
fn add_passes(seconds: &mut Vec<f64>, tags: &[usize], ticks: &[u64], period_ns: f64) {
    for (pass, &tag) in tags.iter().enumerate() {
        let (begin, end) = (ticks[2 * pass], ticks[2 * pass + 1]);
        if seconds.len() <= tag {
            seconds.resize(tag + 1, 0.0);
        }
        // A timestamp counter may wrap, or (on some drivers) step back across a pass
        // boundary: such a pass counts as no time rather than as 2^64 ticks.
        seconds[tag] += end.saturating_sub(begin) as f64 * period_ns * 1e-9;
    }
}

#[cfg(test)]
mod tests {
    use super::add_passes;

    /// Each pass's ticks, times the period, go to its own tag; a pass whose end precedes its
    /// beginning counts as none.
    #[test]
    fn passes_add_up_by_tag_in_seconds() {
        let mut seconds = vec![1.0];
        let tags = [0, 3, 0, 2];
        let ticks = [10, 30, 100, 104, 200, 260, 500, 400];
        add_passes(&mut seconds, &tags, &ticks, 2.5);
        // 2.5 ns a tick: 20 + 60 ticks are 200 ns, 4 ticks 10 ns; each product and sum is
        // within a few ulps of the exact value.
        let expected = [1.0 + 200e-9, 0.0, 0.0, 10e-9];
        assert_eq!(seconds.len(), expected.len());
        for (got, want) in seconds.iter().zip(expected) {
            assert!(
                (got - want).abs() <= 4.0 * f64::EPSILON * want,
                "{seconds:?}"
            );
        }
    }
}
