//! The one way a test runs the `gradstab` binary: `cli(args)`, then what the test needs
//! (`.env`, `.stdout`, …), then `.output()` or `.spawn()`. Every run gets the same environment:
//!
//! - standard input is empty (`Stdio::null`), unless the test gives another: a test never
//!   reads the terminal it was started from;
//! - `XDG_RUNTIME_DIR`, when the test process has none, is a private directory: lavapipe
//!   prints a warning about it on every device it opens, which would break every check that
//!   stderr holds one line;
//! - of the `GRADSTAB_*` variables, only those the binary reads to choose its GPU pass on
//!   ([`PASSED_ON`]), so that it runs on the adapter, matmul variant and autotune cache that
//!   `common::gpu` opens in this process through `GpuOptions::from_env`. The others are the
//!   test harness's (`GRADSTAB_REQUIRE_GPU`, `GRADSTAB_TEST_WITHOUT_F16`) or unknown, and are
//!   removed; a test that means to set one says so with `.env`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use gradstab::gpu::ADAPTER_ENV;
use gradstab::ops::matmul::autotune::{CACHE_DIR_ENV, VARIANT_ENV};

/// The `GRADSTAB_*` variables a run of the binary inherits from the test's environment.
pub const PASSED_ON: [&str; 3] = [ADAPTER_ENV, VARIANT_ENV, CACHE_DIR_ENV];

/// A run of the binary being set up; see the module's documentation for what every run gets.
pub struct Cli {
    /// A program (and its first arguments) that runs the binary, such as `sh -c '…'`.
    wrapper: Option<(OsString, Vec<OsString>)>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    removed: Vec<OsString>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

/// `gradstab ARGS`.
pub fn cli<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Cli {
    Cli {
        wrapper: None,
        args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
        envs: Vec::new(),
        removed: Vec::new(),
        stdin: None,
        stdout: None,
        stderr: None,
    }
}

impl Cli {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets a variable for this run, over what the common environment says.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Removes a variable from this run's environment (one the test process may have
    /// inherited, such as a scheduler's).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.removed.push(key.as_ref().to_owned());
        self
    }

    /// Sets each variable of `vars`, as [`Cli::env`].
    pub fn envs(self, vars: &[(&str, &str)]) -> Self {
        vars.iter().fold(self, |cli, (k, v)| cli.env(k, v))
    }

    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }

    pub fn stdout(mut self, stdout: impl Into<Stdio>) -> Self {
        self.stdout = Some(stdout.into());
        self
    }

    pub fn stderr(mut self, stderr: impl Into<Stdio>) -> Self {
        self.stderr = Some(stderr.into());
        self
    }

    /// Runs the binary as the last argument of `program ARGS…`, the run's own arguments after
    /// it: `through("sh", ["-c", "ulimit -v 1048576 && exec \"$0\" \"$@\""])` runs it in a
    /// bounded address space.
    pub fn through<S: AsRef<OsStr>>(
        mut self,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        let args = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self.wrapper = Some((program.as_ref().to_owned(), args));
        self
    }

    /// Runs it to the end, its standard output and error captured unless the test chose
    /// otherwise.
    pub fn output(self) -> Output {
        self.command().output().expect("the binary runs")
    }

    /// Starts it; standard output and error are inherited unless the test chose otherwise.
    pub fn spawn(self) -> Child {
        self.command().spawn().expect("the binary starts")
    }

    fn command(self) -> Command {
        let binary = env!("CARGO_BIN_EXE_gradstab");
        let mut command = match self.wrapper {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.args(self.args);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("GRADSTAB_") && !PASSED_ON.contains(&name.as_ref()) {
                command.env_remove(&key);
            }
        }
        if std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|d| d.is_empty()) {
            command.env("XDG_RUNTIME_DIR", private_runtime_dir());
        }
        for key in self.removed {
            command.env_remove(key);
        }
        command.envs(self.envs);
        command.stdin(self.stdin.unwrap_or(Stdio::null()));
        if let Some(stdout) = self.stdout {
            command.stdout(stdout);
        }
        if let Some(stderr) = self.stderr {
            command.stderr(stderr);
        }
        command
    }
}

/// One `XDG_RUNTIME_DIR` for every run of this test process: a directory of its own, readable
/// by its owner only, as the XDG specification asks of it.
fn private_runtime_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gradstab-xdg-runtime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a private XDG_RUNTIME_DIR");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .expect("XDG_RUNTIME_DIR made private");
        }
        dir
    })
}
