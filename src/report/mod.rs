//! Rendering results for people and for scripts: `files` for `gradstab stats`, `run` for the
//! table, CSV and JSON of `gradstab run`, `plot` for its SVG.

pub mod files;
pub mod plot;
pub mod run;

pub use files::{histogram_bars, stats_csv, stats_table, TensorReport};
