//! The command line: its arguments, shared by every command, and one module per command.

/// `println!` that hands back the error of a failed write (a full disk, `/dev/full`) instead
/// of panicking on it.
macro_rules! out {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(
            &mut std::io::stdout(),
            format_args!("{}\n", format_args!($($arg)*)),
        )
    };
}

pub(crate) mod args;
pub(crate) mod bench;
pub(crate) mod demo;
pub(crate) mod devices;
pub(crate) mod run;
pub(crate) mod stats;
pub(crate) mod sweep;
pub(crate) mod train;
pub(crate) mod verify;

use clap::{Parser, Subcommand};

use gradstab::api::BackendChoice;

use args::{backend_parser, AdapterArg, Format, StatsFormat};
use run::RunArgs;

#[derive(Parser)]
#[command(
    name = "gradstab",
    version,
    about = "Make the numerical (in)stability of deep networks visible on real GPU hardware"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Every GPU adapter with its backend, type, driver, f16 support and key limits.
    Devices {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Measure what the device does at the edges of f32 and f16 (subnormals, fma, overflow, NaN).
    Probe {
        #[command(flatten)]
        adapter: AdapterArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Check every kernel on the device against the CPU reference; non-zero exit on any failure.
    Verify {
        #[command(flatten)]
        adapter: AdapterArg,
        /// Leave out the shapes whose dispatch grids need folding (slow on software GPUs).
        #[arg(long)]
        quick: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Statistics of every tensor in a .npy, .npz or .safetensors file, and what a cast to
    /// f16, bf16, e4m3 or e5m2 would do to it.
    Stats {
        /// A .npy, .npz or .safetensors file (f16, bf16, FP8, f32, f64 and integer tensors).
        file: std::path::PathBuf,
        #[command(flatten)]
        adapter: AdapterArg,
        /// gpu or cpu; default (auto): the GPU, or the CPU with a notice when there is no adapter.
        #[arg(long, value_parser = backend_parser())]
        backend: Option<BackendChoice>,
        #[arg(long, value_enum, default_value = "table")]
        format: StatsFormat,
        /// Print each tensor's exponent histogram as text bars.
        #[arg(long)]
        histogram: bool,
    },
    /// Measure the device: its roofline (peak FMA throughput, copy bandwidth), then each kernel's
    /// achieved throughput and share of that peak.
    Bench {
        #[command(flatten)]
        adapter: AdapterArg,
        /// gpu (default) or cpu: the CPU backend's kernels in every precision.
        #[arg(long, value_parser = backend_parser())]
        backend: Option<BackendChoice>,
        /// Tiny sizes: seconds even on a software GPU (for CI and smoke tests).
        #[arg(long)]
        quick: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// List the presets (the lecture's experiments), one line each.
    Presets,
    /// Run a deep MLP forward and backward and record every layer, beside the theory.
    Run(Box<RunArgs>),
    /// Train a deep MLP and record, at every step, the loss, the loss scale and every
    /// layer's gradient, weight and update; `--preset` runs one of the training experiments.
    Train(Box<train::TrainArgs>),
    /// Run `run` or `train` over a grid of their options (sharded over processes, Slurm job
    /// arrays or Kubernetes Indexed Jobs), one JSON line per point; `sweep merge` combines
    /// shards, `sweep plot` draws a phase diagram.
    Sweep(Box<sweep::SweepArgs>),
    /// A 20-layer ReLU MLP with N(0, 1) weights in f32 and f16: where does f16 overflow?
    Demo {
        #[command(flatten)]
        adapter: AdapterArg,
        /// gpu or cpu; default (auto): the GPU, or the CPU with a notice when there is no adapter.
        #[arg(long, value_parser = backend_parser())]
        backend: Option<BackendChoice>,
        /// The seed of the weights and the input (default 0).
        #[arg(long, allow_negative_numbers = true)]
        seed: Option<u64>,
    },
}
