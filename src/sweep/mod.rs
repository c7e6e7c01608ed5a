//! Sweeps: one command (`run` or `train`) over a grid of its options, sharded over processes
//! or cluster tasks, each point's outcome one JSON line, drawn as a phase diagram.
//!
//! - `grid`: the axes, their values, the points and the command line of each;
//! - `config`: a grid written as a TOML file;
//! - `shard`: which points one process runs (`--shard I/N`, Slurm's array task, Kubernetes'
//!   completion index);
//! - `results`: the JSON-lines file, appended point by point, resumed, merged;
//! - `outcome`: the numbers a point keeps from its report;
//! - `runner`: the points run one at a time on every core or side by side;
//! - `theory`: the mean-field theory of the points (their activation, σ_w² and σ_b²);
//! - `presets`: the phase diagrams of Schoenholz et al., with the claims they check;
//!
//! `report::sweep_plot` draws a results file as a heat map over two axes, with the theory's
//! curves.
//!
//! The library turns a point into a command line (`Grid::flags_of`); the command line's own
//! parser turns that into `RunOptions` or `TrainOptions`, so an axis can be any flag and a
//! result's `flags` reproduce its point by hand.

pub mod config;
pub mod grid;
pub mod outcome;
pub mod presets;
pub mod results;
pub mod runner;
pub mod shard;
pub mod theory;

pub use grid::{Axis, Grid, Point, SweepCommand};
pub use results::{PointResult, ResultsFile};
pub use runner::{run_points, Jobs, RunSummary};
pub use shard::Shard;
