//! What every command shares: output formats, the backend and adapter choice, the device they
//! open, the progress bar, and the parsers of values more than one command takes.

use clap::builder::{
    PossibleValuesParser, RangedI64ValueParser, RangedU64ValueParser, TypedValueParser,
};
use clap::ValueEnum;

use gradstab::api::checks::MAX_DEPTH;
use gradstab::api::{BackendChoice, Device, Progress};
use gradstab::ops::matmul::MatmulVariant;
use gradstab::{GpuOptions, Precision};

/// Parses a flag's value with the library's `FromStr`, whose error names the accepted forms.
pub(crate) fn parse_with<T: std::str::FromStr<Err = gradstab::Error>>(
    s: &str,
) -> Result<T, String> {
    s.parse().map_err(|e: gradstab::Error| e.to_string())
}

/// A flag's yes or no (`--output-activation yes`), which run and train share.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub(crate) enum YesNo {
    Yes,
    No,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StatsFormat {
    Table,
    Json,
    Csv,
}

/// `--backend`: the library's names, listed by clap when a value is not one of them.
pub(crate) fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    PossibleValuesParser::new(BackendChoice::NAMES)
        .try_map(|name| name.parse::<BackendChoice>().map_err(|e| e.to_string()))
}

/// A whole number ≥ 1 (a batch, a count of samples or steps), up to the largest `usize`:
/// a huge count is the memory estimate's to refuse, with what to make smaller.
pub(crate) fn at_least_one() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..)
}

/// A number of layers, 1 to the library's `MAX_DEPTH`; read as i64, so that clap's refusal
/// of -3 names the range rather than the minus sign.
pub(crate) fn depth_range() -> RangedI64ValueParser<usize> {
    RangedI64ValueParser::new().range(1..=MAX_DEPTH as i64)
}

#[derive(clap::Args)]
pub(crate) struct AdapterArg {
    /// The adapter's number in `gradstab devices`, or the first whose "name (Backend)"
    /// contains this (case-insensitive); default: the best one, or GRADSTAB_ADAPTER. An
    /// adapter asked for and not found is an error.
    #[arg(long, value_name = "#|NAME")]
    pub(crate) adapter: Option<String>,
    /// Use this matmul variant instead of the autotuned one: tile64-shared, tile32-shared or
    /// tile64-direct (also GRADSTAB_MATMUL_VARIANT).
    #[arg(long, value_parser = parse_with::<MatmulVariant>)]
    pub(crate) matmul_variant: Option<MatmulVariant>,
}

impl AdapterArg {
    /// The environment's options (`GpuOptions::from_env`), with the flags over them.
    pub(crate) fn options(&self) -> gradstab::Result<GpuOptions> {
        let mut options = GpuOptions::from_env()?;
        if let Some(a) = &self.adapter {
            options.adapter = Some(a.clone());
        }
        if let Some(v) = self.matmul_variant {
            options.matmul_variant = Some(v);
        }
        Ok(options)
    }

    /// Whether an adapter or a matmul variant was named, by flag or environment variable:
    /// such a request is honoured or refused, never replaced by the CPU.
    fn names_a_gpu(&self) -> bool {
        let set = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
        self.adapter.is_some()
            || self.matmul_variant.is_some()
            || set(gradstab::gpu::ADAPTER_ENV)
            || set(gradstab::ops::matmul::autotune::VARIANT_ENV)
    }

    /// The device `backend` asks for (default: the GPU, or the CPU with a notice).
    pub(crate) fn open(&self, backend: Option<BackendChoice>) -> anyhow::Result<Device> {
        Ok(Device::open(
            backend.unwrap_or_default(),
            &self.options()?,
            self.names_a_gpu(),
        )?)
    }
}

/// A progress bar on stderr (hidden when `quiet`) and the callback that moves it: the label
/// and, in training, the latest loss, then `done/total` and the rate, as
/// `f32 sgd lr=0.01  loss 0.0312  72/100  340 steps/s`.
pub(crate) struct Bar(indicatif::ProgressBar);

/// The bar's line; `{rate}` is [`rate`] of indicatif's own estimate of units per second.
const BAR_TEMPLATE: &str = "{msg}  {pos}/{len}  {rate}";

impl Bar {
    /// `unit`: what `done` counts (steps, layers), for the rate.
    pub(crate) fn new(quiet: bool, unit: &'static str) -> Bar {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
        };
        let style = indicatif::ProgressStyle::with_template(BAR_TEMPLATE)
            .expect("the bar's template is valid")
            .with_key(
                "rate",
                move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate(state.per_sec(), unit));
                },
            );
        bar.set_style(style);
        Bar(bar)
    }

    pub(crate) fn show(&self, p: Progress) -> gradstab::Result<()> {
        self.0.set_length(p.total as u64);
        let message = message(p.label, p.loss);
        if self.0.message() != message {
            self.0.set_message(message);
        }
        self.0.set_position(p.done as u64);
        Ok(())
    }

    pub(crate) fn finish(self) {
        self.0.finish_and_clear();
    }
}

/// The bar's message: the label, and the loss where there is one, in four significant
/// digits (plain where readable, scientific otherwise, as the tables print numbers).
fn message(label: &str, loss: Option<f64>) -> String {
    match loss {
        None => label.to_string(),
        Some(l) if l.is_finite() && l != 0.0 && !(1e-3..1e4).contains(&l.abs()) => {
            format!("{label}  loss {l:.3e}")
        }
        // Below 1: four decimals (0.0312).
        Some(l) if l.is_finite() && l.abs() < 1.0 && l != 0.0 => format!("{label}  loss {l:.4}"),
        Some(l) => format!("{label}  loss {}", four_digits(l)),
    }
}

/// A number of at least 1 (or 0, inf, NaN) in four significant digits: 12.35, 1235.
fn four_digits(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let integer_digits = (v.abs().log10().floor() as i32 + 1).max(1);
    let decimals = (4 - integer_digits).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Units per second, whole: "340 steps/s"; below 10 per second, one decimal: "2.5 steps/s".
fn rate(per_sec: f64, unit: &str) -> String {
    if per_sec < 10.0 {
        format!("{per_sec:.1} {unit}/s")
    } else {
        format!("{per_sec:.0} {unit}/s")
    }
}

pub(crate) fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// The paths of the flags that were given, with their flags.
pub(crate) fn given<'a, const N: usize>(
    flags: [(&'a str, &'a Option<std::path::PathBuf>); N],
) -> Vec<(&'a str, &'a std::path::Path)> {
    flags
        .into_iter()
        .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
        .collect()
}

/// Writes what `render` produces to `out`, whole or not at all, or to standard output.
pub(crate) fn write_output(
    out: Option<&std::path::Path>,
    render: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    match out {
        Some(path) => gradstab::output::write_atomically(path, render)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            render(&mut stdout)?;
            std::io::Write::flush(&mut stdout)?;
        }
    }
    Ok(())
}

/// The FP8 scaling flags of `run` and `train`; the library checks them against the
/// precisions and fills in Transformer Engine's defaults.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct Fp8Args {
    /// How --precision fp8 scales each matmul operand before its cast: delayed (Transformer
    /// Engine's default: from the amax of past steps), current (from the tensor's own amax)
    /// or none.
    #[arg(long, value_name = "none|delayed|current")]
    pub(crate) fp8_scaling: Option<String>,
    /// Steps of amax history delayed scaling takes the maximum over (default 1024).
    #[arg(long, value_parser = at_least_one(), allow_negative_numbers = true)]
    pub(crate) fp8_history: Option<usize>,
    /// Delayed scaling's margin: each scale is divided by 2^margin (default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) fp8_margin: Option<i32>,
}

/// A byte count such as 8G.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemorySize(pub(crate) u64);

impl std::str::FromStr for MemorySize {
    type Err = gradstab::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        gradstab::host_memory::parse_bytes(s).map(MemorySize)
    }
}

/// Biases are drawn as f32: a larger standard deviation would only draw infinities.
pub(crate) fn parse_bias_std(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=f32::MAX as f64).contains(&v) => Ok(v),
        _ => Err("expected a number from 0 to 3.4e38 (biases are drawn as f32)".into()),
    }
}

/// A comma-separated list parsed as one value (clap would read a `Vec` as repeated values).
#[derive(Clone, Debug)]
pub(crate) struct Widths(pub(crate) Vec<usize>);

#[derive(Clone, Debug)]
pub(crate) struct PrecisionList(pub(crate) Vec<Precision>);

/// Lists take hyphen values: clap reads -1,2 as a flag, not a number.
pub(crate) fn parse_widths(s: &str) -> Result<Widths, String> {
    let widths: Result<Vec<usize>, _> = s.split(',').map(|w| w.trim().parse::<usize>()).collect();
    match widths {
        Ok(w) if !w.is_empty() && !w.contains(&0) => Ok(Widths(w)),
        _ => Err("expected whole numbers ≥ 1 separated by commas".into()),
    }
}

pub(crate) fn parse_precisions(s: &str) -> Result<PrecisionList, String> {
    gradstab::precision::parse_precision_list(s)
        .map(PrecisionList)
        .map_err(|e| e.to_string())
}

pub(crate) fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err("expected a finite number > 0".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bar's line, as the template puts its parts together, for a training step.
    #[test]
    fn the_bar_shows_the_label_the_loss_and_the_rate() {
        assert_eq!(message("f32 sgd lr=0.01", None), "f32 sgd lr=0.01");
        assert_eq!(
            message("f32 sgd lr=0.01", Some(0.03125)),
            "f32 sgd lr=0.01  loss 0.0312"
        );
        assert_eq!(message("r", Some(2.0)), "r  loss 2.000");
        assert_eq!(message("r", Some(123.456)), "r  loss 123.5");
        assert_eq!(message("r", Some(2.5e-5)), "r  loss 2.500e-5");
        assert_eq!(message("r", Some(0.0)), "r  loss 0");
        assert_eq!(message("r", Some(f64::NAN)), "r  loss NaN");
        assert_eq!(message("r", Some(f64::INFINITY)), "r  loss inf");
        assert_eq!(rate(340.4, "steps"), "340 steps/s");
        assert_eq!(rate(2.46, "layers"), "2.5 layers/s");
        // The template indicatif parses, with the key it is given.
        assert_eq!(BAR_TEMPLATE, "{msg}  {pos}/{len}  {rate}");
        let line = BAR_TEMPLATE
            .replace("{msg}", &message("f32 sgd lr=0.01", Some(0.0312)))
            .replace("{pos}", "72")
            .replace("{len}", "100")
            .replace("{rate}", &rate(340.0, "steps"));
        assert_eq!(line, "f32 sgd lr=0.01  loss 0.0312  72/100  340 steps/s");
        // Bar::new builds the style from the template (a bad one would panic here).
        Bar::new(true, "steps").finish();
    }
}
