//! `gradstab sweep`: a grid of `run` or `train` points (from flags, a TOML file or a preset),
//! one shard of it run and appended to a JSON-lines file; `sweep merge` and `sweep plot`.
//!
//! The library has the grid, the shards, the file and the runner (`gradstab::sweep`); this
//! face turns each point's command line into options with the very parser of `gradstab run`
//! and `gradstab train`, so an axis can be any of their flags.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use gradstab::api::run::run_experiment;
use gradstab::api::train::TrainOptions;
use gradstab::api::{train_plan, BackendChoice, Device, RunOptions};
use gradstab::experiment::Experiment;
use gradstab::report::sweep_plot::{self, Diagram};
use gradstab::sweep::grid::THEORY_AXES;
use gradstab::sweep::presets;
use gradstab::sweep::runner::cores;
use gradstab::sweep::{
    outcome, results, run_points, Axis, Grid, Jobs, Point, PointResult, ResultsFile, Shard,
    SweepCommand,
};
use gradstab::train::record::Claim;

use super::args::{backend_parser, parse_with, AdapterArg, Bar};
use super::run::RunArgs;
use super::train::TrainArgs;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct SweepArgs {
    #[command(subcommand)]
    action: Option<SweepAction>,
    #[command(flatten)]
    run: SweepRunArgs,
}

#[derive(Subcommand)]
enum SweepAction {
    /// Combine shards' results into one file, checking that every point is there exactly once.
    Merge {
        /// The shards' results files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The merged file (points sorted by index).
        #[arg(long)]
        out: PathBuf,
    },
    /// Draw one outcome over two axes as a heat map (SVG), with the theory's curves.
    Plot {
        /// A results file holding the whole grid (merged, or one unsharded sweep).
        file: PathBuf,
        /// The horizontal axis (sigma-w2, say).
        #[arg(long)]
        x: String,
        /// The vertical axis (depth, say).
        #[arg(long)]
        y: String,
        /// The outcome to colour: log10_grad_ratio, val_accuracy, final_loss, …
        #[arg(long)]
        value: String,
        /// Another axis's value, where the sweep has more than two: NAME=VALUE (repeatable).
        #[arg(long = "where", value_name = "NAME=VALUE")]
        fixed: Vec<String>,
        /// Overlay the mean-field theory: the χ₁ = 1 boundary and the depth 6 ξ_c, for the
        /// sweep's activation and σ_b² (the x axis must be sigma-w2 or sigma-w).
        #[arg(long)]
        theory: bool,
        #[arg(long, value_name = "FILE.svg")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct SweepRunArgs {
    /// A sweep preset: phase-diagram-static (the gradient's growth, no training) or
    /// phase-diagram (trained); each about 20 s on two cores.
    #[arg(long, conflicts_with_all = ["config", "command", "grid", "flags"])]
    preset: Option<String>,
    /// A sweep written as TOML: command, [options] and [grid] (docs/sweeps.md).
    #[arg(long, value_name = "FILE.toml", conflicts_with = "command")]
    config: Option<PathBuf>,
    /// The command each point runs: run or train.
    #[arg(long, value_parser = parse_with::<SweepCommand>)]
    command: Option<SweepCommand>,
    /// An axis: NAME=VALUES, NAME a flag of the command (depth, lr, activation, …) or
    /// sigma-w, sigma-w2, sigma-b, sigma-b2; VALUES A,B,C, START:STOP:STEP, lin:A:B:N or
    /// log:A:B:N. Repeatable; the first varies slowest.
    #[arg(long = "grid", value_name = "NAME=VALUES")]
    grid: Vec<String>,
    /// The results file: one JSON line per point, appended as each finishes; a sweep
    /// restarted on it runs only the points it lacks. `-` writes to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run shard I of N (0-based): the points whose index is I modulo N. Without it, a Slurm
    /// array task or JOB_COMPLETION_INDEX (with --shards) names the shard.
    #[arg(long, value_parser = parse_with::<Shard>, conflicts_with = "shards")]
    shard: Option<Shard>,
    /// The number of shards, with Kubernetes' JOB_COMPLETION_INDEX (the Job's completions).
    #[arg(long, value_parser = super::args::at_least_one(), allow_negative_numbers = true)]
    shards: Option<usize>,
    /// Points run at once (default: on the CPU one per core, as many as fit in memory; on a
    /// GPU one).
    #[arg(long, value_parser = super::args::at_least_one(), allow_negative_numbers = true)]
    jobs: Option<usize>,
    /// Print the shard's points and their command lines; run nothing.
    #[arg(long)]
    list: bool,
    /// gpu or cpu; default (auto): the GPU, or the CPU with a notice when there is no adapter.
    #[arg(long, value_parser = backend_parser())]
    backend: Option<BackendChoice>,
    #[command(flatten)]
    adapter: AdapterArg,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// The flags every point shares, after `--`: gradstab run's or train's.
    #[arg(last = true, value_name = "FLAGS")]
    flags: Vec<String>,
}

/// Flags of `run` and `train` that a sweep owns: where output goes and on what it runs, or
/// that would make one point several runs or files.
const SWEEP_OWNS: [&str; 13] = [
    "out",
    "format",
    "plot",
    "heatmap",
    "quiet",
    "backend",
    "adapter",
    "matmul-variant",
    "save-weights",
    "checkpoint",
    "checkpoint-every",
    "resume",
    "preset",
];

/// One point's command line, parsed by the command's own parser.
#[derive(Parser)]
#[command(name = "gradstab run")]
struct RunPoint {
    #[command(flatten)]
    args: RunArgs,
}

#[derive(Parser)]
#[command(name = "gradstab train")]
struct TrainPoint {
    #[command(flatten)]
    args: TrainArgs,
}

/// A point ready to run: what it runs, and its largest matmul (for `Jobs::Auto`).
enum Planned {
    Run(Experiment),
    Train(Box<gradstab::api::TrainPlan>),
}

impl Planned {
    /// The host memory the point needs at most, as its run checks it (on the CPU backend).
    fn host_bytes(&self) -> u64 {
        match self {
            Planned::Run(e) => e
                .variants
                .iter()
                .flat_map(|(_, c)| {
                    e.precisions
                        .iter()
                        .map(|&p| c.memory_estimate(p, true).host_bytes)
                })
                .max()
                .unwrap_or(0),
            Planned::Train(p) => p
                .runs
                .runs
                .iter()
                .map(|(_, c)| c.memory_estimate(true).host_bytes)
                .max()
                .unwrap_or(0),
        }
    }
}

/// The long flags of `command` and whether each takes a value.
fn command_flags(command: SweepCommand) -> Vec<(String, bool)> {
    let cmd = match command {
        SweepCommand::Run => RunPoint::command(),
        SweepCommand::Train => TrainPoint::command(),
    };
    cmd.get_arguments()
        .filter_map(|a| Some((a.get_long()?.to_string(), a.get_action().takes_values())))
        .collect()
}

/// Refuses an axis or shared flag that is not the command's, or that the sweep owns.
fn check_names(grid: &Grid) -> anyhow::Result<()> {
    let known = command_flags(grid.command);
    let refuse = |what: String| Err(gradstab::Error::InvalidArgument(what).into());
    let check = |name: &str, what: &str| -> anyhow::Result<()> {
        if SWEEP_OWNS.contains(&name) {
            return refuse(format!(
                "{what} --{name}: a sweep sets it for every point (give it to `gradstab sweep` where it has one)"
            ));
        }
        if !known.iter().any(|(n, _)| n == name) && !THEORY_AXES.contains(&name) {
            return refuse(format!(
                "{what} {name}: not a flag of `gradstab {}` (see gradstab {} --help)",
                grid.command, grid.command
            ));
        }
        Ok(())
    };
    for axis in &grid.axes {
        check(&axis.name, "grid axis")?;
    }
    for word in &grid.flags {
        if let Some(name) = word.strip_prefix("--") {
            check(name.split('=').next().unwrap_or(name), "shared flag")?;
        }
    }
    Ok(())
}

impl SweepRunArgs {
    /// The grid these arguments ask for, its claims where it is a preset.
    fn grid(&self) -> anyhow::Result<(Grid, Option<presets::Claims>)> {
        let axes = self
            .grid
            .iter()
            .map(|g| Axis::parse_assignment(g))
            .collect::<gradstab::Result<Vec<_>>>()?;
        let grid = match (&self.preset, &self.config, self.command) {
            (Some(name), _, _) => {
                let preset = presets::preset(name)?;
                return Ok((preset.grid, Some(preset.claims)));
            }
            (None, Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot be read", path.display()))?;
                gradstab::sweep::config::parse(&text, axes, self.flags.clone())?
            }
            (None, None, Some(command)) => Grid::new(command, self.flags.clone(), axes)?,
            (None, None, None) => return Err(gradstab::Error::InvalidArgument(
                "sweep: give --preset, --config FILE.toml or --command run|train with --grid axes"
                    .into(),
            )
            .into()),
        };
        Ok((grid, None))
    }
}

/// A point's command line parsed and its options checked: every point is, before any runs.
fn plan_point(
    grid: &Grid,
    point: &Point,
    switches: &[String],
) -> gradstab::Result<(Vec<String>, Planned)> {
    let flags = grid.flags_of(point, |name| switches.iter().any(|s| s == name))?;
    let argv = std::iter::once(format!("gradstab {}", grid.command)).chain(flags.iter().cloned());
    let usage = |e: clap::Error| {
        let first = e
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        gradstab::Error::InvalidArgument(format!(
            "{} ({})",
            first.trim_start_matches("error: "),
            flags.join(" ")
        ))
    };
    let planned = match grid.command {
        SweepCommand::Run => {
            let args = RunPoint::try_parse_from(argv).map_err(usage)?.args;
            let experiment = RunOptions::experiment(&args.options())?;
            outcome::check_one_run(
                experiment.variants.len() * experiment.precisions.len(),
                "run",
            )?;
            Planned::Run(experiment)
        }
        SweepCommand::Train => {
            let args = TrainPoint::try_parse_from(argv).map_err(usage)?.args;
            let plan = TrainOptions::plan(&args.options())?;
            outcome::check_one_run(plan.runs.runs.len(), "training run")?;
            Planned::Train(Box::new(plan))
        }
    };
    Ok((flags, planned))
}

fn run_point(
    device: &Device,
    grid: &Grid,
    id: &str,
    of: usize,
    point: &Point,
    flags: &[String],
    planned: &Planned,
) -> gradstab::Result<PointResult> {
    let started = Instant::now();
    let (config, outcome) = match planned {
        Planned::Run(experiment) => {
            let report = run_experiment(device, experiment, None, &mut |_| Ok(()))?;
            let (config, outcome) = outcome::of_run(&report)?;
            (config, serde_json::to_value(outcome))
        }
        Planned::Train(plan) => {
            let trained = train_plan(device, plan, None, false, &mut |_| Ok(()))?;
            let (config, outcome) = outcome::of_train(&trained.report)?;
            (config, serde_json::to_value(outcome))
        }
    };
    Ok(PointResult {
        sweep: id.to_string(),
        index: point.index,
        of,
        point: point
            .values
            .iter()
            .map(|(name, value)| (name.clone(), PointResult::json_value(value)))
            .collect(),
        command: grid.command,
        flags: flags.to_vec(),
        config,
        outcome: outcome.map_err(|e| gradstab::Error::InvalidArgument(e.to_string()))?,
        seconds: started.elapsed().as_secs_f64(),
        device: device.info().adapter,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Prints claims, one line each; whether all hold.
fn print_claims(claims: &[Claim]) -> anyhow::Result<bool> {
    for c in claims {
        let mark = if c.holds { "holds" } else { "FAILS" };
        out!("claim {mark}: {} ({})", c.claim, c.measured)?;
    }
    Ok(claims.iter().all(|c| c.holds))
}

pub(crate) fn sweep(args: SweepArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(SweepAction::Merge { files, out }) => merge(&files, &out),
        Some(SweepAction::Plot {
            file,
            x,
            y,
            value,
            fixed,
            theory,
            out,
        }) => plot(&file, &x, &y, &value, &fixed, theory, &out),
        None => run_sweep(&args.run),
    }
}

fn run_sweep(args: &SweepRunArgs) -> anyhow::Result<ExitCode> {
    let (grid, claims) = args.grid()?;
    check_names(&grid)?;
    let of = grid.point_count()?;
    let shard = match args.shard {
        Some(s) => s,
        None => {
            Shard::from_environment(|v| std::env::var(v).ok(), args.shards)?.unwrap_or(Shard::ALL)
        }
    };
    let switches: Vec<String> = command_flags(grid.command)
        .into_iter()
        .filter(|(_, takes)| !takes)
        .map(|(n, _)| n)
        .collect();
    let points: Vec<Point> = (0..of)
        .filter(|&i| shard.holds(i))
        .map(|i| grid.point(i))
        .collect();
    let mut planned = Vec::with_capacity(points.len());
    for point in &points {
        let p = plan_point(&grid, point, &switches).map_err(|e| gradstab::Error::SweepPoint {
            index: point.index,
            source: Box::new(e),
        })?;
        planned.push(p);
    }
    if args.list {
        for (point, (flags, _)) in points.iter().zip(&planned) {
            out!(
                "{}\tgradstab {} {}",
                point.index,
                grid.command,
                flags.join(" ")
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(out) = &args.out else {
        return Err(gradstab::Error::InvalidArgument(
            "sweep: give --out FILE.jsonl, where each point's line goes (or --list)".into(),
        )
        .into());
    };
    let id = grid.id();
    let mut file = ResultsFile::open(out, &id, of)?;
    let device = args.adapter.open(args.backend)?;
    let on_gpu = !device.info().backend.eq_ignore_ascii_case("cpu");
    let point_bytes = planned
        .iter()
        .map(|(_, p)| p.host_bytes())
        .max()
        .unwrap_or(0);
    let jobs = args.jobs.map_or(Jobs::Auto, Jobs::Exactly).resolve(
        on_gpu,
        point_bytes,
        gradstab::host_memory::host_available_bytes(),
        cores(),
    );
    let bar = Bar::new(args.quiet, "points");
    let label = format!("shard {shard} of sweep {id}");
    // `points` ascend by index and `planned` follows them: a point's plan by binary search,
    // not a scan per point (a grid may have a million).
    let by_index = |p: &Point| {
        points
            .binary_search_by_key(&p.index, |q| q.index)
            .ok()
            .map(|i| &planned[i])
    };
    let summary = run_points(
        &points,
        jobs,
        &mut file,
        &|point| {
            let (flags, plan) = by_index(point).expect("every point is planned");
            run_point(&device, &grid, &id, of, point, flags, plan)
        },
        &mut |done, total| {
            let _ = bar.show(gradstab::api::Progress {
                done,
                total,
                label: &label,
                loss: None,
            });
        },
    )?;
    bar.finish();
    let rate = if summary.ran > 0 {
        format!(
            "; {:.2} points/s, {} at a time",
            summary.points_per_second(),
            summary.jobs
        )
    } else {
        String::new()
    };
    eprintln!(
        "gradstab: sweep {id}, shard {shard}: {} points run, {} already in {} ({} of {of} in the shard){rate}",
        summary.ran,
        summary.skipped,
        out.display(),
        points.len(),
    );
    // The claims of a preset are about the whole grid: checked once a file holds all of it.
    if let (Some(claims), Ok(all)) = (claims, results::read(out)) {
        if all.len() == of && shard == Shard::ALL && !print_claims(&claims(&all))? {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn merge(files: &[PathBuf], out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let inputs: Vec<(&str, &std::path::Path)> =
        files.iter().map(|f| ("a shard", f.as_path())).collect();
    gradstab::output::check_outputs(&inputs, &[("--out", out)], |_| None)?;
    let merged = results::merge(files)?;
    gradstab::output::write_atomically(out, |w| {
        for r in &merged {
            writeln!(
                w,
                "{}",
                serde_json::to_string(r).map_err(std::io::Error::other)?
            )?;
        }
        Ok(())
    })?;
    eprintln!(
        "gradstab: {} points merged into {}",
        merged.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn plot(
    file: &std::path::Path,
    x: &str,
    y: &str,
    value: &str,
    fixed: &[String],
    theory: bool,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    gradstab::output::check_outputs(&[("the results", file)], &[("--out", out)], |_| Some("svg"))?;
    let fixed: Vec<(String, String)> = fixed
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                .ok_or_else(|| {
                    gradstab::Error::InvalidArgument(format!("--where {f}: expected NAME=VALUE"))
                })
        })
        .collect::<gradstab::Result<_>>()?;
    let results = results::read(file)?;
    let diagram = Diagram {
        x,
        y,
        value,
        fixed: &fixed,
    };
    let overlay = if theory {
        Some(gradstab::sweep::theory::overlay(&results, x)?)
    } else {
        None
    };
    sweep_plot::svg(&results, &diagram, overlay.as_ref(), out)?;
    Ok(ExitCode::SUCCESS)
}
