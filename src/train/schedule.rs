//! Learning-rate schedules as torch.optim.lr_scheduler computes them: StepLR,
//! CosineAnnealingLR, LinearLR, and SequentialLR over them.
//!
//! PyTorch's `get_lr` is *chainable*: each `scheduler.step()` multiplies or updates the rate
//! the optimizer holds, rather than evaluating a closed form of the step number, and
//! CosineAnnealingLR uses its recursive formula. The rates drift from the closed forms by a
//! few ULPs, so [`LrSchedule::rates`] replays PyTorch's state machine operation for operation
//! in f64 (Python's float), and its rates equal PyTorch's bit for bit: the trigonometry is
//! the same C library's `cos`, and every other operation is one IEEE rounding in both.
//!
//! The schedule advances once per training step: the rate of step s (1-based) is the
//! optimizer's rate after s − 1 calls of `scheduler.step()`, as in a loop that calls
//! `optimizer.step(); scheduler.step()` every step (a step the loss scaler skips included).

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// StepLR's `gamma`.
pub const STEP_GAMMA: f64 = 0.1;
/// LinearLR's `start_factor`, 1/3 as PyTorch writes it (`1.0 / 3`).
pub const LINEAR_START_FACTOR: f64 = 1.0 / 3.0;
/// LinearLR's `end_factor`.
pub const LINEAR_END_FACTOR: f64 = 1.0;
/// LinearLR's `total_iters`.
pub const LINEAR_TOTAL_ITERS: u64 = 5;
/// CosineAnnealingLR's `eta_min`.
pub const COSINE_ETA_MIN: f64 = 0.0;

/// What `--lr-schedule` takes, for messages.
pub const SYNTAX: &str = "step:STEP_SIZE[:GAMMA], cosine[:T_MAX[:ETA_MIN]] or \
    linear[:START[:END[:ITERS]]], or a comma list of them where each after the first starts \
    at @STEP (linear:0.1:1:10,cosine@10)";

/// One of torch.optim.lr_scheduler's schedulers, with its arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheduler {
    /// StepLR: the rate times `gamma` every `step_size` steps.
    Step { step_size: u64, gamma: f64 },
    /// CosineAnnealingLR from the base rate to `eta_min` over `t_max` steps; `None`: the
    /// steps it runs for (the run's steps after its milestone), fixed by `resolved`.
    Cosine { t_max: Option<u64>, eta_min: f64 },
    /// LinearLR: the factor of the base rate from `start_factor` to `end_factor` over
    /// `total_iters` steps.
    Linear {
        start_factor: f64,
        end_factor: f64,
        total_iters: u64,
    },
}

/// One scheduler of a sequence and the step its turn starts at (SequentialLR's milestone;
/// 0 for the first).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    pub scheduler: Scheduler,
    pub milestone: u64,
}

/// A schedule: one scheduler, or SequentialLR over several.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    pub phases: Vec<Phase>,
}

impl Scheduler {
    /// PyTorch's `get_lr` for a `scheduler.step()` (or the first, `initial`, one the
    /// constructor makes): from the optimizer's rate `lr`, with `last_epoch` already advanced.
    fn chained(&self, lr: f64, base_lr: f64, last_epoch: u64, initial: bool) -> f64 {
        match *self {
            Scheduler::Step { step_size, gamma } => {
                if last_epoch == 0 || !last_epoch.is_multiple_of(step_size) {
                    lr
                } else {
                    lr * gamma
                }
            }
            Scheduler::Linear {
                start_factor: start,
                end_factor: end,
                total_iters: total,
            } => {
                if last_epoch == 0 {
                    lr * start
                } else if initial || last_epoch > total {
                    lr
                } else {
                    lr * (1.0
                        + (end - start)
                            / (total as f64 * start + (last_epoch - 1) as f64 * (end - start)))
                }
            }
            Scheduler::Cosine { t_max, eta_min } => {
                let t_max = t_max.expect("resolved before it runs");
                let t = t_max as f64;
                // PyTorch's branch for `_step_count == 1 and last_epoch > 0` serves a
                // scheduler resumed from a checkpoint; a schedule started here never takes it.
                if initial {
                    lr
                } else if (last_epoch as i128 - 1 - t_max as i128).rem_euclid(2 * t_max as i128)
                    == 0
                {
                    // Past the minimum, where the ratio below would divide by 1 + cos(π) = 0.
                    lr + (base_lr - eta_min) * (1.0 - (PI / t).cos()) / 2.0
                } else {
                    (1.0 + (PI * last_epoch as f64 / t).cos())
                        / (1.0 + (PI * (last_epoch - 1) as f64 / t).cos())
                        * (lr - eta_min)
                        + eta_min
                }
            }
        }
    }

    /// PyTorch's `_get_closed_form_lr` at `last_epoch` 0, which SequentialLR's switch at a
    /// milestone (`_update_lr(0)`) computes, each operation as torch writes it.
    fn at_milestone(&self, base_lr: f64) -> f64 {
        let last_epoch = 0u64;
        match *self {
            Scheduler::Step { step_size, gamma } => {
                base_lr * gamma.powf((last_epoch / step_size) as f64)
            }
            Scheduler::Linear {
                start_factor: start,
                end_factor: end,
                total_iters: total,
            } => base_lr * (start + (end - start) * total.min(last_epoch) as f64 / total as f64),
            Scheduler::Cosine { t_max, eta_min } => {
                let t = t_max.expect("resolved before it runs") as f64;
                eta_min + (base_lr - eta_min) * (1.0 + (PI * last_epoch as f64 / t).cos()) / 2.0
            }
        }
    }

    /// The checks PyTorch makes, and those it leaves to a division by zero or a negative rate.
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("lr_schedule {m}")));
        match *self {
            Scheduler::Step { step_size, gamma } => {
                if step_size == 0 {
                    return bad("step: STEP_SIZE 0: expected a whole number ≥ 1".into());
                }
                if !(gamma.is_finite() && gamma >= 0.0) {
                    return bad(format!("step: GAMMA {gamma}: expected a finite number ≥ 0"));
                }
            }
            Scheduler::Cosine { t_max, eta_min } => {
                if t_max == Some(0) {
                    return bad("cosine: T_MAX 0: expected a whole number ≥ 1".into());
                }
                if !(eta_min.is_finite() && eta_min >= 0.0) {
                    return bad(format!(
                        "cosine: ETA_MIN {eta_min}: expected a finite number ≥ 0"
                    ));
                }
            }
            Scheduler::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                // LinearLR's own two checks.
                if !(start_factor > 0.0 && start_factor <= 1.0) {
                    return bad(format!(
                        "linear: START {start_factor}: expected a number in (0, 1]"
                    ));
                }
                if !(0.0..=1.0).contains(&end_factor) {
                    return bad(format!(
                        "linear: END {end_factor}: expected a number in [0, 1]"
                    ));
                }
                if total_iters == 0 {
                    return bad("linear: ITERS 0: expected a whole number ≥ 1".into());
                }
            }
        }
        Ok(())
    }
}

impl LrSchedule {
    /// The schedule with every cosine's `T_MAX` fixed: the steps it runs for, from its
    /// milestone to the run's last step (at least 1).
    pub fn resolved(&self, steps: usize) -> LrSchedule {
        let phases = self
            .phases
            .iter()
            .map(|p| match p.scheduler {
                Scheduler::Cosine {
                    t_max: None,
                    eta_min,
                } => Phase {
                    scheduler: Scheduler::Cosine {
                        t_max: Some((steps as u64).saturating_sub(p.milestone).max(1)),
                        eta_min,
                    },
                    ..*p
                },
                _ => *p,
            })
            .collect();
        LrSchedule { phases }
    }

    /// Each scheduler's arguments and the milestones' order.
    pub fn validate(&self) -> Result<()> {
        let Some(first) = self.phases.first() else {
            return Err(Error::InvalidArgument(
                "lr_schedule: expected at least one scheduler".into(),
            ));
        };
        if first.milestone != 0 {
            return Err(Error::InvalidArgument(format!(
                "lr_schedule: the first scheduler starts at step 0, not @{}",
                first.milestone
            )));
        }
        for pair in self.phases.windows(2) {
            if pair[1].milestone <= pair[0].milestone {
                return Err(Error::InvalidArgument(format!(
                    "lr_schedule: milestone @{} after @{}: each must be later than the one \
                     before, and the second at least @1",
                    pair[1].milestone, pair[0].milestone
                )));
            }
        }
        self.phases.iter().try_for_each(|p| p.scheduler.validate())
    }

    /// The rate of each of `steps` steps from the base rate `base_lr`, as SequentialLR (or the
    /// one scheduler alone, which SequentialLR reproduces) leaves it in the optimizer before
    /// each `optimizer.step()`. Call on a valid schedule.
    pub fn rates(&self, base_lr: f64, steps: usize) -> Vec<f64> {
        let schedule = self.resolved(steps);
        let phases = &schedule.phases;
        // Each scheduler's `last_epoch`. SequentialLR's constructor resets the rate to the base
        // rate, undoes every scheduler's initial step and makes the first one's again.
        let mut last_epochs = vec![0u64; phases.len()];
        let mut lr = phases[0].scheduler.chained(base_lr, base_lr, 0, true);
        let mut rates = Vec::with_capacity(steps);
        let mut epoch = 0u64;
        for _ in 0..steps {
            rates.push(lr);
            // SequentialLR.step(): the scheduler whose turn it is (bisect_right of the
            // milestones) steps, or starts with its closed form at its milestone.
            epoch += 1;
            let idx = phases.iter().filter(|p| p.milestone <= epoch).count() - 1;
            let phase = &phases[idx];
            if idx > 0 && phase.milestone == epoch {
                last_epochs[idx] = 0;
                lr = phase.scheduler.at_milestone(base_lr);
            } else {
                last_epochs[idx] += 1;
                lr = phase
                    .scheduler
                    .chained(lr, base_lr, last_epochs[idx], false);
            }
        }
        rates
    }
}

impl FromStr for LrSchedule {
    type Err = Error;

    /// `NAME[:ARG…][@MILESTONE]`, comma-separated; an empty argument keeps its default
    /// (`linear::0.5` ends at half the base rate from the default start).
    fn from_str(s: &str) -> Result<Self> {
        let parse_error = || Error::Parse {
            what: "lr schedule",
            value: s.to_string(),
            expected: SYNTAX,
        };
        let mut phases = Vec::new();
        for item in s.split(',') {
            let (body, milestone) = match item.split_once('@') {
                Some((body, m)) => (body, m.trim().parse::<u64>().map_err(|_| parse_error())?),
                None if phases.is_empty() => (item, 0),
                // Every scheduler after the first needs the step it starts at.
                None => return Err(parse_error()),
            };
            let mut parts = body.trim().split(':').map(str::trim);
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            let args: Vec<&str> = parts.collect();
            let arg = |i: usize| args.get(i).copied().filter(|a| !a.is_empty());
            let float = |i: usize, default: f64| -> Result<f64> {
                arg(i).map_or(Ok(default), |a| a.parse().map_err(|_| parse_error()))
            };
            let whole = |i: usize| -> Result<Option<u64>> {
                arg(i)
                    .map(|a| a.parse().map_err(|_| parse_error()))
                    .transpose()
            };
            let (scheduler, arity) = match name.as_str() {
                "step" => (
                    Scheduler::Step {
                        // StepLR has no default step size.
                        step_size: whole(0)?.ok_or_else(parse_error)?,
                        gamma: float(1, STEP_GAMMA)?,
                    },
                    2,
                ),
                "cosine" => (
                    Scheduler::Cosine {
                        t_max: whole(0)?,
                        eta_min: float(1, COSINE_ETA_MIN)?,
                    },
                    2,
                ),
                "linear" => (
                    Scheduler::Linear {
                        start_factor: float(0, LINEAR_START_FACTOR)?,
                        end_factor: float(1, LINEAR_END_FACTOR)?,
                        total_iters: whole(2)?.unwrap_or(LINEAR_TOTAL_ITERS),
                    },
                    3,
                ),
                _ => return Err(parse_error()),
            };
            if args.len() > arity {
                return Err(parse_error());
            }
            phases.push(Phase {
                scheduler,
                milestone,
            });
        }
        let schedule = LrSchedule { phases };
        schedule.validate()?;
        Ok(schedule)
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Scheduler::Step { step_size, gamma } => write!(f, "step:{step_size}:{gamma}"),
            Scheduler::Cosine { t_max, eta_min } => match t_max {
                Some(t) => write!(f, "cosine:{t}:{eta_min}"),
                None => write!(f, "cosine::{eta_min}"),
            },
            Scheduler::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => write!(f, "linear:{start_factor}:{end_factor}:{total_iters}"),
        }
    }
}

/// Every argument written out, in the syntax `from_str` reads back to the same bits.
impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.phases.iter().enumerate() {
            if i > 0 {
                write!(f, ",{}@{}", p.scheduler, p.milestone)?;
            } else {
                write!(f, "{}", p.scheduler)?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for LrSchedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The written form read back (a checkpoint's configuration).
impl<'de> serde::Deserialize<'de> for LrSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(spec: &str, base_lr: f64, steps: usize) -> Vec<f64> {
        spec.parse::<LrSchedule>().unwrap().rates(base_lr, steps)
    }

    /// StepLR multiplies the optimizer's rate (chainable): 0.3·0.1·0.1 is 0.003, one ULP
    /// from the closed form 0.3·0.1² = 0.0030000000000000005.
    #[test]
    fn step_multiplies_the_rate_every_step_size_steps() {
        assert_eq!(
            rates("step:2:0.5", 0.1, 6),
            [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
        );
        let chained = rates("step:1", 0.3, 3);
        assert_eq!(chained, [0.3, 0.3 * 0.1, 0.3 * 0.1 * 0.1]);
        assert_eq!(chained[2], 0.003);
        assert_ne!(chained[2], 0.3 * 0.1f64.powi(2));
    }

    /// LinearLR: start·base, then each step the rate times
    /// 1 + (end − start)/(total·start + (epoch − 1)(end − start)), constant after total.
    #[test]
    fn linear_scales_the_rate_by_torchs_ratio_then_holds() {
        let r = rates("linear:0.5:1:2", 1.0, 5);
        let second = 0.5 * (1.0 + 0.5 / (2.0 * 0.5 + 0.0 * 0.5));
        let third = second * (1.0 + 0.5 / (2.0 * 0.5 + 1.0 * 0.5));
        assert_eq!(second, 0.75);
        assert_eq!(r, [0.5, second, third, third, third]);
        // The defaults: start 1/3, end 1, over 5 steps.
        let d = rates("linear", 0.06, 7);
        assert_eq!(d[0], 0.06 * (1.0 / 3.0));
        let (start, end) = (1.0 / 3.0, 1.0);
        assert_eq!(d[1], d[0] * (1.0 + (end - start) / (5.0 * start)));
        assert_eq!(d[5], d[6]);
        assert!((d[5] - 0.06).abs() <= 4.0 * f64::EPSILON * 0.06, "{}", d[5]);
    }

    /// CosineAnnealingLR's recursion, and its step past the minimum (T_max + 1), where
    /// PyTorch adds (base − eta_min)(1 − cos(π/T))/2 instead of dividing by 1 + cos(π) = 0.
    #[test]
    fn cosine_follows_the_recursion_and_turns_past_the_minimum() {
        let (base, eta) = (0.5, 0.125);
        let r = rates("cosine:4:0.125", base, 7);
        let c = |k: f64| (PI * k / 4.0).cos();
        let mut want = vec![base];
        for k in 1..=4 {
            let k = k as f64;
            let prev = *want.last().unwrap();
            want.push((1.0 + c(k)) / (1.0 + c(k - 1.0)) * (prev - eta) + eta);
        }
        let at_min = want[4];
        want.push(at_min + (base - eta) * (1.0 - (PI / 4.0).cos()) / 2.0);
        let k = 6.0;
        want.push((1.0 + c(k)) / (1.0 + c(k - 1.0)) * (want[5] - eta) + eta);
        assert_eq!(r, want);
        // Within rounding of the closed form eta + (base − eta)(1 + cos(πk/T))/2.
        for (k, rate) in r.iter().enumerate() {
            let closed = eta + (base - eta) * (1.0 + c(k as f64)) / 2.0;
            assert!(
                (rate - closed).abs() <= 8.0 * f64::EPSILON * base,
                "{k}: {rate}"
            );
        }
        // Without T_MAX, the run's steps.
        assert_eq!(rates("cosine", 0.5, 9), rates("cosine:9", 0.5, 9));
    }

    /// SequentialLR: the second scheduler takes over after `milestone` steps, from its closed
    /// form at 0 (the base rate for StepLR), whatever the first left.
    #[test]
    fn a_sequence_switches_at_its_milestone_from_the_closed_form() {
        let r = rates("linear:0.5:1:2,step:1:0.5@3", 1.0, 6);
        let linear = rates("linear:0.5:1:2", 1.0, 3);
        assert_eq!(r[..3], linear[..]);
        assert_eq!(r[3..], [1.0, 0.5, 0.25]);
        // A cosine after a warm-up anneals over the steps left.
        let s: LrSchedule = "linear:0.1:1:10,cosine@10".parse().unwrap();
        assert_eq!(
            s.resolved(100).to_string(),
            "linear:0.1:1:10,cosine:90:0@10"
        );
        let r = s.resolved(100).rates(0.2, 12);
        // The cosine's closed form at 0: eta + (base − eta)·2/2.
        assert_eq!(r[10], 0.2);
        assert_eq!(r[11], (1.0 + (PI / 90.0).cos()) / (1.0 + 0f64.cos()) * 0.2);
    }

    #[test]
    fn specs_parse_with_defaults_and_print_back_to_the_same_bits() {
        let s: LrSchedule = " Linear::0.5 , Step:3@4 ,cosine::0.01@9".parse().unwrap();
        assert_eq!(
            s.phases,
            [
                Phase {
                    scheduler: Scheduler::Linear {
                        start_factor: LINEAR_START_FACTOR,
                        end_factor: 0.5,
                        total_iters: LINEAR_TOTAL_ITERS
                    },
                    milestone: 0
                },
                Phase {
                    scheduler: Scheduler::Step {
                        step_size: 3,
                        gamma: STEP_GAMMA
                    },
                    milestone: 4
                },
                Phase {
                    scheduler: Scheduler::Cosine {
                        t_max: None,
                        eta_min: 0.01
                    },
                    milestone: 9
                },
            ]
        );
        for spec in [s.clone(), s.resolved(20)] {
            assert_eq!(spec.to_string().parse::<LrSchedule>().unwrap(), spec);
        }
    }

    #[test]
    fn bad_specs_are_refused_in_one_line() {
        for spec in [
            "",
            "exp",
            "step",
            "step:0.5",
            "step:2:x",
            "cosine:1:2:3",
            "linear:1:1:1:1",
            "linear,cosine",
            "linear,cosine@x",
        ] {
            let e = spec.parse::<LrSchedule>().unwrap_err();
            assert!(matches!(e, Error::Parse { .. }), "{spec}: {e}");
        }
        for spec in [
            "step:0",
            "step:2:-1",
            "step:2:inf",
            "cosine:0",
            "cosine:5:-0.1",
            "linear:0",
            "linear:1.5",
            "linear:0.5:1.5",
            "linear:0.5:1:0",
            "cosine@3",
            "linear,cosine@5,step:1@5",
            "linear,cosine@5,step:1@4",
        ] {
            let e = spec.parse::<LrSchedule>().unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{spec}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
