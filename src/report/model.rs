//! The line of a table that says which model ran: its activation and whether the activation
//! follows the last layer. A table of numbers from a tanh net read as a ReLU net's misleads,
//! and with `--weights` the activation is the file's, not an option on the command line.

use crate::network::NetworkConfig;

/// "activation tanh, output activation no".
pub fn describe(config: &NetworkConfig) -> String {
    format!(
        "activation {}, output activation {}",
        config.activation,
        if config.output_activation {
            "yes"
        } else {
            "no"
        }
    )
}

/// "model: activation tanh, output activation no" when every run shares it; otherwise each
/// run's, by label: "model: a: activation relu, …; b: activation tanh, …".
pub fn line<'a>(runs: impl IntoIterator<Item = (&'a str, &'a NetworkConfig)>) -> String {
    let mut described: Vec<(&str, String)> = Vec::new();
    for (label, config) in runs {
        let d = describe(config);
        if !described.iter().any(|(l, e)| *l == label && *e == d) {
            described.push((label, d));
        }
    }
    let first = described
        .first()
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    if described.iter().all(|(_, d)| *d == first) {
        format!("model: {first}")
    } else {
        let each: Vec<String> = described
            .iter()
            .map(|(label, d)| format!("{label}: {d}"))
            .collect();
        format!("model: {}", each.join("; "))
    }
}
