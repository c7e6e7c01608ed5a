//! Which part of a grid one process runs: `--shard I/N`, or the index a cluster engine gives
//! each task of a job array (Slurm) or each pod of an Indexed Job (Kubernetes).
//!
//! Shard I of N runs the points whose index is I modulo N: neighbouring points (a depth axis
//! last, say) differ most in cost, so dealing them round-robin evens the shards out.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::InvalidArgument(format!(
                "shard {index}/{count}: expected I/N with 0 ≤ I < N"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether point `index` is this shard's.
    pub fn holds(&self, index: usize) -> bool {
        index % self.count == self.index
    }

    /// The shard a cluster engine's variables name, if any: Slurm's array task (its ID with
    /// SLURM_ARRAY_TASK_COUNT, or with SLURM_ARRAY_TASK_MIN and _MAX for an array that does
    /// not start at 0), then Kubernetes' JOB_COMPLETION_INDEX, whose Job's completions the
    /// caller passes as `count` (no variable holds it). `count` given with Slurm must agree.
    pub fn from_environment(
        var: impl Fn(&str) -> Option<String>,
        count: Option<usize>,
    ) -> Result<Option<Shard>> {
        let number = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    Error::InvalidArgument(format!("{name}={v:?}: expected a whole number ≥ 0"))
                }),
            }
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?;
            let (index, tasks) = match (
                number("SLURM_ARRAY_TASK_COUNT")?,
                min,
                number("SLURM_ARRAY_TASK_MAX")?,
            ) {
                (Some(n), Some(min), _) => (id.checked_sub(min), Some(n)),
                (Some(n), None, _) => (Some(id), Some(n)),
                (None, Some(min), Some(max)) => {
                    (id.checked_sub(min), max.checked_sub(min).map(|d| d + 1))
                }
                _ => (Some(id), None),
            };
            let (Some(index), Some(tasks)) = (index, tasks) else {
                return Err(Error::InvalidArgument(format!(
                    "SLURM_ARRAY_TASK_ID={id} without SLURM_ARRAY_TASK_COUNT (or _MIN and _MAX) \
                     that place it: give --shard I/N"
                )));
            };
            if let Some(c) = count.filter(|&c| c != tasks) {
                return Err(Error::InvalidArgument(format!(
                    "--shards {c}, but the Slurm array has {tasks} tasks"
                )));
            }
            return Shard::new(index, tasks).map(Some);
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let Some(count) = count else {
                return Err(Error::InvalidArgument(format!(
                    "JOB_COMPLETION_INDEX={index}: give the Job's completions as --shards N"
                )));
            };
            return Shard::new(index, count).map(Some);
        }
        match count {
            Some(c) => Err(Error::InvalidArgument(format!(
                "--shards {c} without a Slurm array task or JOB_COMPLETION_INDEX: give --shard I/{c}"
            ))),
            None => Ok(None),
        }
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::Parse {
            what: "shard",
            value: s.to_string(),
            expected: "I/N, 0 ≤ I < N",
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n).map_err(|_| bad())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn cluster_variables_name_the_shard() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(
            Shard::from_environment(env(&slurm), None).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        // --array=5-8: IDs 5..8, four tasks.
        let offset = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
        ];
        assert_eq!(
            Shard::from_environment(env(&offset), None).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        let k8s = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(
            Shard::from_environment(env(&k8s), Some(4)).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        assert!(Shard::from_environment(env(&k8s), None).is_err());
        assert!(Shard::from_environment(env(&k8s), Some(3)).is_err());
        assert!(Shard::from_environment(env(&slurm), Some(3)).is_err());
        assert!(Shard::from_environment(env(&[("SLURM_ARRAY_TASK_ID", "1")]), None).is_err());
        assert!(Shard::from_environment(env(&[]), Some(2)).is_err());
        assert_eq!(Shard::from_environment(env(&[]), None).unwrap(), None);
    }

    #[test]
    fn shards_partition_the_points() {
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for index in 0..20 {
            assert_eq!(shards.iter().filter(|s| s.holds(index)).count(), 1);
        }
        for bad in ["3/3", "1/0", "a/2", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
