//! A sweep written as a TOML file:
//!
//! ```toml
//! command = "train"             # or "run"
//! [options]                     # shared by every point, as the command's flags
//! activation = "tanh"
//! steps = 300
//! shuffle = true                # a flag without a value: true gives it, false leaves it out
//! [grid]                        # the axes, in this order (the first varies slowest)
//! sigma-w2 = "1:4:0.25"         # a range, lin:/log: form or comma list, as --grid takes
//! depth = [10, 20, 40, 100]     # or an array of values
//! ```

use serde::Deserialize;

use crate::error::{Error, Result};

use super::grid::{parse_values, Axis, Grid, SweepCommand};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    command: String,
    #[serde(default)]
    options: toml::Table,
    #[serde(default)]
    grid: toml::Table,
}

fn text(name: &str, value: &toml::Value) -> Result<String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) => Ok(items
            .iter()
            .map(|v| text(name, v))
            .collect::<Result<Vec<_>>>()?
            .join(",")),
        other => Err(Error::InvalidArgument(format!(
            "{name} = {other}: expected a string, a number, true or false"
        ))),
    }
}

/// The grid a sweep file describes; `extra_axes` (the command line's `--grid`) come after its
/// own and `extra_flags` (after `--`) after its options.
pub fn parse(source: &str, extra_axes: Vec<Axis>, extra_flags: Vec<String>) -> Result<Grid> {
    let file: SweepFile = toml::from_str(source)
        .map_err(|e| Error::InvalidArgument(format!("sweep file: {}", e.to_string().trim())))?;
    let command: SweepCommand = file.command.parse()?;
    let mut flags = Vec::new();
    for (name, value) in &file.options {
        match value {
            toml::Value::Boolean(true) => flags.push(format!("--{name}")),
            toml::Value::Boolean(false) => {}
            _ => {
                flags.push(format!("--{name}"));
                flags.push(text(name, value)?);
            }
        }
    }
    flags.extend(extra_flags);
    let mut axes = Vec::new();
    for (name, value) in &file.grid {
        let values = match value {
            toml::Value::Array(items) => items
                .iter()
                .map(|v| text(name, v))
                .collect::<Result<Vec<_>>>()?,
            toml::Value::String(s) => parse_values(name, s)?,
            single => vec![text(name, single)?],
        };
        axes.push(Axis::new(name, values)?);
    }
    axes.extend(extra_axes);
    Grid::new(command, flags, axes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_as_the_flags_would() {
        let grid = parse(
            "command = \"train\"\n[options]\nactivation = \"tanh\"\nsteps = 30\nshuffle = true\ndrop-last = false\n\
             [grid]\nsigma-w2 = \"1:2:0.5\"\ndepth = [10, 20]\nlr = 0.1\n",
            vec![],
            vec!["--seed".into(), "3".into()],
        )
        .unwrap();
        assert_eq!(grid.command, SweepCommand::Train);
        assert_eq!(
            grid.flags,
            [
                "--activation",
                "tanh",
                "--steps",
                "30",
                "--shuffle",
                "--seed",
                "3"
            ]
        );
        let names: Vec<&str> = grid.axes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["sigma-w2", "depth", "lr"]);
        assert_eq!(grid.axes[0].values, ["1", "1.5", "2"]);
        assert_eq!(grid.len().unwrap(), 6);
        assert!(parse("command = \"fly\"", vec![], vec![]).is_err());
        assert!(parse("command = \"run\"\nspeed = 3", vec![], vec![]).is_err());
        assert!(parse("command = \"run\"\n[grid]\ndepth = []", vec![], vec![]).is_err());
    }
}
