//! The model a weights file (`weights`, `--weights`) brings beyond its weights: the activation
//! and whether it follows the last layer, which gradstab's own files say in their metadata.
//!
//! One rule for `run` and `train`: what the file says applies unless an option asks for it;
//! an option that asks for something else is refused, never replaced (nor does the file's
//! value silently give way to it); and what neither the file nor an option says is refused
//! with how to say it, because a state dict run with the wrong activation is another model.

use crate::error::{Error, Result};
use crate::network::given::GivenParameters;
use crate::ops::activation::Activation;

fn refuse<T>(message: String) -> Result<T> {
    Err(Error::InvalidArgument(message))
}

/// One setting of the file's model: the file's, or the one `asked` for where the file agrees
/// or says nothing; `None` where neither says it. `show` writes a value as the command line
/// takes it; `flag` and `keyword` are the option's names on the command line and in Python.
fn agree<T: PartialEq + Copy>(
    given: &GivenParameters,
    in_file: Option<T>,
    asked: Option<T>,
    what: &str,
    flag: &str,
    keyword: &str,
    show: impl Fn(T) -> String,
) -> Result<Option<T>> {
    match (in_file, asked) {
        (Some(file), Some(asked)) if file != asked => refuse(format!(
            "{flag} {} refused: {} was saved with {what} {}, and an explicit {flag} is \
             honoured or refused, never replaced; leave out {flag} ({keyword}=) to use the file's",
            show(asked),
            given.source,
            show(file),
        )),
        (file, asked) => Ok(file.or(asked)),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The file's activation and output activation, each agreed with what the options ask for.
fn agreed(
    given: &GivenParameters,
    asked: Option<Activation>,
    asked_output: Option<bool>,
) -> Result<(Option<Activation>, Option<bool>)> {
    let activation = agree(
        given,
        given.activation,
        asked,
        "activation",
        "--activation",
        "activation",
        |a| a.to_string(),
    )?;
    let output = agree(
        given,
        given.output_activation,
        asked_output,
        "output activation",
        "--output-activation",
        "output_activation",
        yes_no,
    )?;
    Ok((activation, output))
}

/// The refusal of a file that does not say its activation, where no option does.
fn missing_activation<T>(given: &GivenParameters) -> Result<T> {
    refuse(format!(
        "{} does not say its activation (a PyTorch state dict holds none): give it, \
         e.g. --activation tanh (Python: activation=\"tanh\")",
        given.source
    ))
}

/// The activation `run` applies to the file's model, and whether it follows the last layer:
/// the file's, or the options' where the file says nothing; a file without an activation needs
/// one given. Where neither the file nor an option says whether the activation follows the
/// last layer, `default_output` (run's default for its loss) applies.
pub fn run_activations(
    given: &GivenParameters,
    asked: Option<Activation>,
    asked_output: Option<bool>,
    default_output: bool,
) -> Result<(Activation, bool)> {
    let (activation, output) = agreed(given, asked, asked_output)?;
    match activation {
        Some(a) => Ok((a, output.unwrap_or(default_output))),
        None => missing_activation(given),
    }
}

/// The activation `train` applies to the file's model, and whether it follows the last layer.
pub fn train_activations(
    given: &GivenParameters,
    asked: Option<Activation>,
    asked_output: Option<bool>,
) -> Result<(Activation, bool)> {
    let (activation, output) = agreed(given, asked, asked_output)?;
    match (activation, output) {
        (Some(a), Some(o)) => Ok((a, o)),
        (None, Some(_)) => missing_activation(given),
        (Some(_), None) => refuse(format!(
            "{} does not say whether the activation follows its last layer: give \
             --output-activation yes or no (Python: output_activation=True or False)",
            given.source
        )),
        (None, None) => refuse(format!(
            "{} does not say its activation or whether it follows the last layer (a PyTorch \
             state dict holds neither): give them, e.g. --activation tanh --output-activation \
             no (Python: activation=\"tanh\", output_activation=False)",
            given.source
        )),
    }
}
