//! Rendering results for people and for scripts: `files` for `gradstab stats`, `run` for the
//! table, CSV and JSON of `gradstab run`, `plot` for its SVG, `train_plot` for those of
//! `gradstab train`, `sweep_plot` for a sweep's phase diagram, which share `style` (how series differ), `axes` (ranges and tick
//! labels), `frame` (a chart's axes laid out), `heat` (a heat map's colours) and `legend`;
//! `model` for the line that names each table's activation; `timing` for how they print a
//! duration; `columns` for the CSV columns of a statistics record, which both CSV outputs share.

pub mod axes;
pub mod columns;
pub mod files;
mod frame;
mod heat;
mod legend;
pub mod model;
pub mod plot;
pub mod run;
pub mod style;
pub mod sweep_plot;
pub mod timing;
pub mod train;
pub mod train_plot;

pub use columns::{record_fields, RECORD_COLUMNS};
pub use files::{histogram_bars, stats_csv, stats_table, TensorReport};
