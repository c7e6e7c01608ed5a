//! A sweep's grid: the command it runs, the flags every point shares, and the axes whose
//! cartesian product are its points.
//!
//! Axes name the long flags of `gradstab run` or `gradstab train` (without the dashes), or
//! one of the mean-field theory's variances, which the grid writes as those flags
//! ([`THEORY_AXES`]). Each point is the command line that reproduces it: the shared flags and
//! one value of each axis, so a line of the results can be run again by hand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most points one grid may have: each is at least one run, and a larger grid is a typo
/// (a step of 0.001 for 0.1) rather than a plan.
pub const MAX_POINTS: usize = 1_000_000;

/// The significant digits a generated value (a range's, `lin:`'s, `log:`'s) keeps: 1 + 3·0.1
/// is written 1.3, not 1.3000000000000003, so the flag reads as the user would write it.
const GENERATED_DIGITS: usize = 12;

/// The axes that set the theory's variances instead of naming a flag: weights
/// N(0, σ_w²/fan_in) are `--init kaiming_normal:fan_in:σ_w` (std = gain/√fan_in), biases
/// N(0, σ_b²) are `--bias-std σ_b`.
pub const THEORY_AXES: [&str; 4] = ["sigma-w", "sigma-w2", "sigma-b", "sigma-b2"];

/// The command each point runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepCommand {
    Run,
    Train,
}

impl SweepCommand {
    pub fn name(self) -> &'static str {
        match self {
            SweepCommand::Run => "run",
            SweepCommand::Train => "train",
        }
    }
}

impl FromStr for SweepCommand {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "run" => Ok(SweepCommand::Run),
            "train" => Ok(SweepCommand::Train),
            _ => Err(Error::Parse {
                what: "command",
                value: s.to_string(),
                expected: "run or train",
            }),
        }
    }
}

impl fmt::Display for SweepCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One axis: a flag (or theory variance) and the values it takes, as the flag would read them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    pub name: String,
    pub values: Vec<String>,
}

/// The forms an axis's values take, for error messages.
pub const VALUE_FORMS: &str = "a list A,B,C, a range START:STOP:STEP (STOP included), \
     lin:START:STOP:N or log:START:STOP:N";

impl Axis {
    /// Parses `NAME=VALUES` (the `--grid` flag's form).
    pub fn parse_assignment(s: &str) -> Result<Axis> {
        let (name, values) = s.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "grid {s:?}: expected NAME=VALUES, with VALUES {VALUE_FORMS}"
            ))
        })?;
        Axis::new(name, parse_values(name.trim(), values)?)
    }

    /// An axis of these values; refuses an empty name, no values or an empty value.
    pub fn new(name: &str, values: Vec<String>) -> Result<Axis> {
        let name = name.trim().trim_start_matches("--").to_string();
        if name.is_empty() {
            return Err(Error::InvalidArgument(
                "grid: an axis without a name".into(),
            ));
        }
        if values.is_empty() {
            return Err(Error::InvalidArgument(format!("grid {name}: no values")));
        }
        if values.iter().any(|v| v.trim().is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "grid {name}: an empty value (expected {VALUE_FORMS})"
            )));
        }
        Ok(Axis { name, values })
    }
}

/// The values of `VALUES`: a range or `lin:`/`log:` form when every part is a number, else a
/// comma list (so `leaky_relu:0.1` is one value, not a range).
pub fn parse_values(name: &str, values: &str) -> Result<Vec<String>> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "grid {name}={values}: {why} (expected {VALUE_FORMS})"
        )))
    };
    let parts: Vec<&str> = values.trim().split(':').map(str::trim).collect();
    let numbers: Option<Vec<f64>> = |p: &[&str]| -> Option<Vec<f64>> {
        p.iter()
            .map(|x| x.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect()
    }(match parts.first() {
        Some(&"lin") | Some(&"log") => &parts[1..],
        _ => &parts[..],
    });
    let generated = match (parts.as_slice(), numbers) {
        (["lin" | "log", ..], Some(n)) if n.len() == 3 => {
            let (a, b, count) = (n[0], n[1], n[2]);
            if count < 1.0 || count.fract() != 0.0 {
                return bad("N must be a whole number ≥ 1");
            }
            let count = count as usize;
            if count > MAX_POINTS {
                return bad("too many values");
            }
            let log = parts[0] == "log";
            if log && (a <= 0.0 || b <= 0.0) {
                return bad("log: needs START and STOP above 0");
            }
            (0..count)
                .map(|i| {
                    let t = if count == 1 {
                        0.0
                    } else {
                        i as f64 / (count - 1) as f64
                    };
                    if log {
                        (a.ln() + t * (b.ln() - a.ln())).exp()
                    } else {
                        a + t * (b - a)
                    }
                })
                .map(|v| Generated::Float(v))
                .collect::<Vec<_>>()
        }
        (["lin" | "log", ..], _) => return bad("expected three numbers after lin: or log:"),
        ([_, _, _], Some(n)) => {
            let (a, b, step) = (n[0], n[1], n[2]);
            if step <= 0.0 {
                return bad("STEP must be above 0");
            }
            if b < a {
                return bad("STOP must not be below START");
            }
            let steps = ((b - a) / step * (1.0 + 1e-12) + 1e-9).floor();
            if steps + 1.0 > MAX_POINTS as f64 {
                return bad("too many values");
            }
            let integers = parts.iter().all(|p| p.parse::<i64>().is_ok());
            (0..=steps as usize)
                .map(|i| {
                    if integers {
                        Generated::Integer(
                            parts[0].parse::<i64>().unwrap_or(0)
                                + i as i64 * parts[2].parse::<i64>().unwrap_or(0),
                        )
                    } else {
                        Generated::Float(a + i as f64 * step)
                    }
                })
                .collect()
        }
        _ => {
            return Ok(values.split(',').map(|v| v.trim().to_string()).collect());
        }
    };
    Ok(generated.into_iter().map(|g| g.to_string()).collect())
}

/// A value a range or `lin:`/`log:` form made.
enum Generated {
    Integer(i64),
    Float(f64),
}

impl fmt::Display for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Generated::Integer(i) => write!(f, "{i}"),
            Generated::Float(v) => {
                // Rounded to GENERATED_DIGITS significant digits, then written in Rust's
                // shortest form that reads back to that rounded value.
                let rounded: f64 = format!("{:.*e}", GENERATED_DIGITS - 1, v)
                    .parse()
                    .unwrap_or(v);
                write!(f, "{rounded}")
            }
        }
    }
}

/// A whole sweep: what it runs, the flags every point shares and its axes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub command: SweepCommand,
    /// Flags every point shares, as `gradstab run` or `train` reads them.
    pub flags: Vec<String>,
    pub axes: Vec<Axis>,
}

/// One point of a grid: its index and each axis's value.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub index: usize,
    /// (axis, value) in the grid's axis order.
    pub values: Vec<(String, String)>,
}

impl Grid {
    /// A grid; refuses an axis named twice, two axes for one quantity (sigma-w and
    /// sigma-w2), an axis the shared flags set too, and more than `MAX_POINTS` points.
    pub fn new(command: SweepCommand, flags: Vec<String>, axes: Vec<Axis>) -> Result<Grid> {
        let refuse = |m: String| Err(Error::InvalidArgument(m));
        for (i, axis) in axes.iter().enumerate() {
            if axes[..i].iter().any(|a| a.name == axis.name) {
                return refuse(format!("grid: the axis {} is given twice", axis.name));
            }
            for flag in flags_set_by(&axis.name) {
                if let Some(other) = axes[..i]
                    .iter()
                    .find(|a| flags_set_by(&a.name).contains(&flag))
                {
                    return refuse(format!(
                        "grid: the axes {} and {} both set --{flag}",
                        other.name, axis.name
                    ));
                }
                if flags.iter().any(|f| names_flag(f, flag)) {
                    return refuse(format!(
                        "grid: the axis {} sets --{flag}, which the shared flags set too",
                        axis.name
                    ));
                }
            }
        }
        let grid = Grid {
            command,
            flags,
            axes,
        };
        grid.len()?;
        Ok(grid)
    }

    /// The number of points.
    pub fn len(&self) -> Result<usize> {
        self.axes
            .iter()
            .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
            .filter(|&n| n <= MAX_POINTS)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "grid: more than {MAX_POINTS} points; a step too fine?"
                ))
            })
    }

    /// Point `index`: the first axis varies slowest, as nested loops in the axes' order.
    pub fn point(&self, index: usize) -> Point {
        let mut rest = index;
        let mut values = vec![(String::new(), String::new()); self.axes.len()];
        for (slot, axis) in values.iter_mut().zip(&self.axes).rev() {
            let n = axis.values.len();
            *slot = (axis.name.clone(), axis.values[rest % n].clone());
            rest /= n;
        }
        Point { index, values }
    }

    /// The command line of `point`: the shared flags, then each axis as its flag.
    /// `is_switch` says which flags take no value (`--residual`): those axes take
    /// true or false, and false leaves the flag out.
    pub fn flags_of(&self, point: &Point, is_switch: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let mut flags = self.flags.clone();
        for (name, value) in &point.values {
            flags.extend(axis_flags(name, value, &is_switch)?);
        }
        Ok(flags)
    }

    /// A fingerprint of the grid (FNV-1a of its JSON): lines of one sweep carry it, and a
    /// results file or a merge refuses lines of another.
    pub fn id(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// The flags an axis sets.
fn flags_set_by(name: &str) -> Vec<&str> {
    match name {
        "sigma-w" | "sigma-w2" => vec!["init"],
        "sigma-b" | "sigma-b2" => vec!["bias-std"],
        other => vec![other],
    }
}

/// Whether the command-line word `word` is the flag `--flag` (or `--flag=…`).
fn names_flag(word: &str, flag: &str) -> bool {
    word.strip_prefix("--")
        .map(|w| w.split('=').next() == Some(flag))
        .unwrap_or(false)
}

/// The flags one axis value stands for.
fn axis_flags(name: &str, value: &str, is_switch: &impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let number = || -> Result<f64> {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("grid {name}={value}: expected a number ≥ 0"))
            })
    };
    let std = match name {
        "sigma-w" | "sigma-b" => Some(number()?),
        "sigma-w2" | "sigma-b2" => Some(number()?.sqrt()),
        _ => None,
    };
    Ok(match (name, std) {
        ("sigma-w" | "sigma-w2", Some(s)) => {
            vec!["--init".into(), format!("kaiming_normal:fan_in:{s}")]
        }
        (_, Some(s)) => vec!["--bias-std".into(), s.to_string()],
        _ if is_switch(name) => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" => vec![format!("--{name}")],
            "false" | "no" => vec![],
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "grid {name}={value}: --{name} takes no value; its axis takes true or false"
                )))
            }
        },
        _ => vec![format!("--{name}"), value.to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &str) -> Vec<String> {
        parse_values("x", s).unwrap()
    }

    #[test]
    fn ranges_include_their_stop_and_read_as_written() {
        assert_eq!(values("1:4:0.5"), ["1", "1.5", "2", "2.5", "3", "3.5", "4"]);
        assert_eq!(values("0.1:0.5:0.1"), ["0.1", "0.2", "0.3", "0.4", "0.5"]);
        assert_eq!(values("10:100:30"), ["10", "40", "70", "100"]);
        assert_eq!(values("10:99:30"), ["10", "40", "70"]);
        assert_eq!(values("lin:1:2:3"), ["1", "1.5", "2"]);
        assert_eq!(values("log:0.001:0.1:3"), ["0.001", "0.01", "0.1"]);
        assert_eq!(values("relu, tanh"), ["relu", "tanh"]);
        assert_eq!(values("leaky_relu:0.1"), ["leaky_relu:0.1"]);
        for bad in [
            "1:0:1",
            "1:2:0",
            "lin:1:2:0",
            "log:0:1:3",
            "lin:1:2",
            "1:1000000000:0.0001",
        ] {
            assert!(parse_values("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn points_run_first_axis_slowest_and_write_theory_axes_as_flags() {
        let grid = Grid::new(
            SweepCommand::Train,
            vec!["--activation".into(), "tanh".into()],
            vec![
                Axis::new("sigma-w2", values("1:4:3")).unwrap(),
                Axis::new("depth", values("2,3,5")).unwrap(),
                Axis::new("residual", values("false,true")).unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(grid.len().unwrap(), 12);
        let p = grid.point(7);
        assert_eq!(
            p.values,
            [("sigma-w2", "4"), ("depth", "2"), ("residual", "true")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let flags = grid.flags_of(&p, |f| f == "residual").unwrap();
        assert_eq!(
            flags,
            [
                "--activation",
                "tanh",
                "--init",
                "kaiming_normal:fan_in:2",
                "--depth",
                "2",
                "--residual"
            ]
        );
        assert!(!grid
            .flags_of(&grid.point(0), |f| f == "residual")
            .unwrap()
            .contains(&"--residual".to_string()));
    }

    #[test]
    fn grids_refuse_what_two_sources_would_set() {
        let axis = |n: &str| Axis::new(n, vec!["1".into()]).unwrap();
        let run = SweepCommand::Run;
        assert!(Grid::new(run, vec![], vec![axis("depth"), axis("depth")]).is_err());
        assert!(Grid::new(run, vec![], vec![axis("sigma-w"), axis("sigma-w2")]).is_err());
        assert!(Grid::new(run, vec![], vec![axis("init"), axis("sigma-w")]).is_err());
        assert!(Grid::new(run, vec!["--init=he".into()], vec![axis("sigma-w")]).is_err());
        assert!(Grid::new(run, vec!["--depth".into(), "3".into()], vec![axis("depth")]).is_err());
        let many = Axis::new("a", vec!["1".into(); 1001]).unwrap();
        assert!(Grid::new(
            run,
            vec![],
            vec![
                many.clone(),
                Axis {
                    name: "b".into(),
                    ..many
                }
            ]
        )
        .is_err());
    }
}
