//! The `gradstab` command line; each command lives in `src/cli/`.

#[macro_use]
mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::bench::run_bench;
use cli::demo::demo;
use cli::devices::{devices, run_probe};
use cli::run::run_network;
use cli::stats::stats;
use cli::verify::run_verify;
use cli::{Cli, Command};

/// Parses the command line; a bad flag or value is one line on stderr and exit code 2.
fn parse_cli() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line: clap's message and the values it accepts, without the usage block.
            let rendered = e.render().to_string();
            let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("invalid arguments");
            let extra: Vec<&str> = lines
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .collect();
            let line = std::iter::once(first)
                .chain(extra)
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("gradstab: {line} (see gradstab --help)");
            std::process::exit(2);
        }
    }
}

/// A closed pipe (`gradstab presets | head -1`) ends the command quietly, as it ends other Unix
/// tools: Rust ignores SIGPIPE, so that every `println!` after the reader left would panic.
/// Files are written to a temporary name and renamed, so the signal cannot leave half of one.
fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A signal that ends a run (Ctrl-C, `kill`, a closed terminal) removes the temporary file of
/// a write under way, so the destination keeps its old contents and nothing is left beside it.
fn clean_up_on_signal() {
    let handler = || {
        // Held until the process ends, so that no write starts another temporary file.
        let _no_more_writes = gradstab::output::remove_unfinished();
        // 128 + SIGINT, as a shell reports a process ended by Ctrl-C (ctrlc does not say
        // which of SIGINT, SIGTERM and SIGHUP it was).
        std::process::exit(130);
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!("gradstab: warning: no signal handler ({e}); an interrupted write may leave a temporary file");
    }
}

fn list_presets() -> anyhow::Result<ExitCode> {
    for e in gradstab::experiment::presets() {
        out!("{:<18} {}", e.name, e.summary)?;
    }
    out!("\ntraining (gradstab train --preset NAME):")?;
    for name in gradstab::train::presets::NAMES {
        if let Ok(preset) = gradstab::train::presets::preset(name) {
            out!("{:<18} {}", name, preset.conclusion)?;
        }
    }
    out!("\nsweeps (gradstab sweep --preset NAME):")?;
    for name in gradstab::sweep::presets::NAMES {
        if let Ok(preset) = gradstab::sweep::presets::preset(name) {
            out!("{:<20} {}", name, preset.summary)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit codes, one rule for every command: 2 for a command line that cannot run as given (a
/// value out of range, also in the precision it becomes, flags that conflict, a preset that
/// does not exist), 1 for a problem found while running it (an input file, the memory, the
/// device, an output that cannot be written). `before_run`: the error came from reading the
/// command line, where the CLI's own errors are usage errors.
fn exit_code(e: &anyhow::Error, before_run: bool) -> ExitCode {
    // A sweep's point is refused as the command it runs would refuse it.
    fn usage(e: &gradstab::Error) -> bool {
        match e {
            gradstab::Error::InvalidArgument(_) | gradstab::Error::Parse { .. } => true,
            gradstab::Error::SweepPoint { source, .. } => usage(source),
            _ => false,
        }
    }
    match e.downcast_ref::<gradstab::Error>() {
        Some(e) if usage(e) => ExitCode::from(2),
        Some(_) => ExitCode::FAILURE,
        None if before_run => ExitCode::from(2),
        None => ExitCode::FAILURE,
    }
}

/// Prints an error on one line, its control characters escaped: a message may quote a name
/// from a file, which must not rewrite the terminal.
fn print_error(e: &anyhow::Error) {
    eprintln!(
        "gradstab: error: {}",
        gradstab::files::printable(e.to_string())
    );
}

fn refused(e: &anyhow::Error) -> ExitCode {
    print_error(e);
    exit_code(e, true)
}

/// The library's warnings and errors (the `log` facade), one line each on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let kind = match record.level() {
                log::Level::Error => "error",
                _ => "warning",
            };
            eprintln!("gradstab: {kind}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

static STDERR_LOG: StderrLog = StderrLog;

fn main() -> ExitCode {
    end_quietly_on_closed_pipe();
    clean_up_on_signal();
    if log::set_logger(&STDERR_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let cli = parse_cli();
    let result = match cli.command {
        Command::Devices { format } => devices(format),
        Command::Probe { adapter, format } => run_probe(&adapter, format),
        Command::Verify {
            adapter,
            quick,
            format,
        } => run_verify(&adapter, quick, format),
        Command::Stats {
            file,
            adapter,
            backend,
            format,
            histogram,
        } => stats(&file, &adapter, backend, format, histogram),
        Command::Bench {
            adapter,
            backend,
            quick,
            format,
        } => run_bench(&adapter, backend, quick, format),
        Command::Presets => list_presets(),
        Command::Run(args) => {
            match args
                .check_destinations()
                .and_then(|()| Ok(args.options().experiment()?))
            {
                Err(e) => return refused(&e),
                Ok(experiment) => run_network(&args, experiment),
            }
        }
        Command::Train(args) => {
            match args
                .check_destinations()
                .and_then(|()| Ok(args.options().plan()?))
            {
                Err(e) => return refused(&e),
                Ok(plan) => cli::train::train_command(&args, plan),
            }
        }
        Command::Sweep(args) => cli::sweep::sweep(*args),
        Command::Demo {
            adapter,
            backend,
            seed,
        } => demo(&adapter, backend, seed),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`gradstab run | head`) is the reader's choice, not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error(&e);
            exit_code(&e, false)
        }
    }
}
