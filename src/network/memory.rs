//! What a run needs in memory, decided before anything is allocated: an estimate of the host
//! and device bytes of a run, and the limits it must fit (the host's available memory, the
//! device's largest buffer, and a budget the user may set with `--max-memory`). A run that
//! cannot fit is refused in milliseconds, instead of failing after minutes of work or taking
//! the machine's memory with it.

use super::config::NetworkConfig;
use super::record::LayerRecord;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::host_memory::{host_available_bytes, human_bytes};
use crate::precision::Precision;

/// Bytes a run of one configuration in one precision needs at most, computed in u128 and
/// saturated, so that no width or depth can overflow the estimate itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Host memory: the records, the weights drawn for one layer, and on the CPU backend
    /// every tensor as well.
    pub host_bytes: u64,
    /// Device memory (0 on the CPU backend, whose tensors are host memory).
    pub device_bytes: u64,
    /// Elements of the largest single tensor (a weight or an activation); u128, so that an
    /// absurd width is counted exactly in the refusal (each dimension up to 2^48).
    pub largest_tensor: u128,
    /// What makes the largest part of the estimate smaller, for the refusal ("--steps
    /// smaller").
    pub smaller: &'static str,
}

/// What makes a network's own memory smaller.
pub const NETWORK_FLAGS: &str = "--depth, --width or --batch smaller";

/// What a run must fit.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryLimits {
    /// Host memory available now (`MemAvailable`), when the system says.
    pub host_available: Option<u64>,
    /// Device memory the backend can offer, when known (a CPU adapter's is host memory).
    pub device_available: Option<u64>,
    /// The most elements one tensor of the run's storage type may hold.
    pub max_tensor: u64,
    /// A budget the user set (`--max-memory`), for host and device alike.
    pub budget: Option<u64>,
}

const BUDGET: &str = "budget of --max-memory";

/// A byte count as a `u64`, the largest where it is more.
pub fn saturate(x: u128) -> u64 {
    x.min(u64::MAX as u128) as u64
}

/// A count (a width, a batch, a number of steps) as an estimate uses it: capped at 2^48, far
/// beyond any machine's memory, so that a product of three counts and a few constants cannot
/// overflow u128, and a run with a capped count is still refused.
pub fn counted(n: usize) -> u128 {
    (n as u128).min(1 << 48)
}

impl NetworkConfig {
    /// What a run of this network in `precision` needs; `tensors_on_host` for the CPU backend.
    pub fn memory_estimate(&self, precision: Precision, tensors_on_host: bool) -> MemoryEstimate {
        let b = precision.storage().size_bytes() as u128;
        let batch = counted(self.batch);
        let widest = counted(self.widths.iter().copied().max().unwrap_or(0));
        let weights: u128 = self
            .widths
            .windows(2)
            .map(|w| counted(w[0]) * counted(w[1]))
            .sum();
        let activations: u128 = self.widths[1..].iter().map(|&n| batch * counted(n)).sum();
        let kept_weights = if weights * b <= self.keep_weights_bytes as u128 {
            weights * b
        } else {
            0
        };
        // The most a run holds at once: the kept tensors (Z^t of every layer, and H^{t−1} with
        // residual connections), the weights while they fit `keep_weights_bytes`, and the
        // widest layer's working set (a weight and its gradient, and a few activations). It
        // grows with depth · width · batch, plus depth · width² while weights are kept.
        let residual = if self.residual { 2 } else { 1 };
        let mut tensors = activations * b * residual
            + kept_weights
            + (2 * widest * widest + 8 * batch * widest) * b;
        if let Some(q) = precision.quantised() {
            // A matmul's quantised operands (one byte a value: a weight and two activations
            // in backward), and the scaled f32 copy of the largest one on its way to the cast.
            let fp8 = q.forward.size_bytes().max(q.gradient.size_bytes()) as u128;
            tensors +=
                (widest * widest + 2 * batch * widest) * fp8 + widest * widest.max(batch) * b;
        }
        // On the host: each layer's records (four statistics, each with an exponent
        // histogram of up to 256 counts on the heap), and one layer's weights drawn as f32
        // (orthogonal works in f64, twice as much) before they are rounded and uploaded.
        let per_layer = std::mem::size_of::<LayerRecord>() as u128 + 4 * 256 * 8;
        let records = counted(self.depth) * per_layer;
        let draw = widest * widest * 8 + batch * widest * 4 * 2;
        let host = records + draw + if tensors_on_host { tensors } else { 0 };
        MemoryEstimate {
            host_bytes: saturate(host),
            device_bytes: if tensors_on_host {
                0
            } else {
                saturate(tensors)
            },
            largest_tensor: widest * widest.max(batch),
            smaller: NETWORK_FLAGS,
        }
    }
}

impl MemoryLimits {
    /// The limits of a backend whose one tensor holds at most `max_tensor` elements; the host's
    /// available memory is read from the system, and a CPU adapter's device memory is the
    /// host's.
    pub fn new(max_tensor: usize, device_is_host_memory: bool, budget: Option<u64>) -> Self {
        let host_available = host_available_bytes();
        MemoryLimits {
            host_available,
            device_available: if device_is_host_memory {
                host_available
            } else {
                None
            },
            max_tensor: max_tensor as u64,
            budget,
        }
    }

    /// Ok when `estimate` fits every limit; otherwise one line with the estimate, the limit
    /// and what changes it.
    pub fn check(&self, estimate: &MemoryEstimate) -> Result<()> {
        let refuse = |what: &str, need: u64, limit: u64, source: &str| {
            Err(Error::WontFit(format!(
                "this run needs about {} of {what}, more than the {} {source}; make {}{}",
                human_bytes(need),
                human_bytes(limit),
                estimate.smaller,
                if source == BUDGET {
                    " or raise --max-memory"
                } else {
                    ""
                }
            )))
        };
        if estimate.largest_tensor > self.max_tensor as u128 {
            return Err(Error::WontFit(format!(
                "one tensor of this run holds {} values, more than the {} that one buffer of \
                 this backend can hold; make --width or --batch smaller",
                estimate.largest_tensor, self.max_tensor
            )));
        }
        if let Some(budget) = self.budget {
            if estimate.host_bytes > budget {
                return refuse("host memory", estimate.host_bytes, budget, BUDGET);
            }
            if estimate.device_bytes > budget {
                return refuse("device memory", estimate.device_bytes, budget, BUDGET);
            }
        }
        if let Some(available) = self.host_available {
            if estimate.host_bytes > available {
                return refuse(
                    "host memory",
                    estimate.host_bytes,
                    available,
                    "available on this machine",
                );
            }
        }
        if let Some(available) = self.device_available {
            // A CPU adapter's device memory is the same host memory: both together must fit.
            let both = estimate.device_bytes.saturating_add(estimate.host_bytes);
            if estimate.device_bytes > 0 && both > available {
                return refuse(
                    "host and device memory together",
                    both,
                    available,
                    "available on this machine (a CPU adapter's device memory is host memory)",
                );
            }
        }
        Ok(())
    }
}

/// Ok when a run of `config` in `precision` fits `backend`, the host and the config's
/// `max_memory_bytes`; otherwise the one-line refusal. Allocates nothing.
pub fn check_fits<B: Backend>(
    backend: &B,
    config: &NetworkConfig,
    precision: Precision,
) -> Result<()> {
    let estimate = config.memory_estimate(precision, backend.tensors_on_host());
    MemoryLimits::new(
        backend.max_tensor_len(precision.storage()),
        backend.device_memory_is_host(),
        config.max_memory_bytes,
    )
    .check(&estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_what_a_run_holds() {
        let config = NetworkConfig::new(10, 64, 8);
        let on_device = config.memory_estimate(Precision::F32, false);
        // Z of 10 layers, 10 kept 64×64 weights, and one layer's working set, in 4 bytes.
        let tensors = (10 * 8 * 64 + 10 * 64 * 64 + 2 * 64 * 64 + 8 * 8 * 64) * 4;
        assert_eq!(on_device.device_bytes, tensors);
        assert_eq!(on_device.largest_tensor, 64 * 64);
        let on_host = config.memory_estimate(Precision::F32, true);
        assert_eq!(on_host.device_bytes, 0);
        assert_eq!(on_host.host_bytes, on_device.host_bytes + tensors);
        // f16 halves the tensors; residual connections keep H^{t−1} too.
        let f16 = config.memory_estimate(Precision::F16, false).device_bytes;
        assert_eq!(f16, tensors / 2);
        // bf16 as f16; fp8 keeps f32 tensors, plus a matmul's quantised operands (a weight and
        // two activations, one byte each) and the scaled f32 copy of the largest.
        let bf16 = config.memory_estimate(Precision::Bf16, false).device_bytes;
        assert_eq!(bf16, tensors / 2);
        let fp8 = config.memory_estimate(Precision::Fp8, false).device_bytes;
        assert_eq!(fp8 - tensors, (64 * 64 + 2 * 8 * 64) + 64 * 64 * 4);
        let residual = NetworkConfig {
            residual: true,
            ..config.clone()
        };
        let extra = residual.memory_estimate(Precision::F32, false).device_bytes - tensors;
        assert_eq!(extra, 10 * 8 * 64 * 4);
        // Weights beyond keep_weights_bytes are drawn again, not kept.
        let redrawn = NetworkConfig {
            keep_weights_bytes: 0,
            ..config
        };
        let saved = tensors - redrawn.memory_estimate(Precision::F32, false).device_bytes;
        assert_eq!(saved, 10 * 64 * 64 * 4);
    }

    #[test]
    fn limits_refuse_what_does_not_fit_and_only_that() {
        let estimate = MemoryEstimate {
            host_bytes: 1000,
            device_bytes: 5000,
            largest_tensor: 100,
            smaller: "--steps smaller",
        };
        let limits = |host, device, max_tensor, budget| MemoryLimits {
            host_available: host,
            device_available: device,
            max_tensor,
            budget,
        };
        assert!(limits(None, None, 100, None).check(&estimate).is_ok());
        assert!(limits(None, None, 99, None).check(&estimate).is_err());
        assert!(limits(Some(1000), None, 100, None).check(&estimate).is_ok());
        assert!(limits(Some(999), None, 100, None).check(&estimate).is_err());
        // A CPU adapter's device memory is the host's: both must fit together.
        assert!(limits(None, Some(6000), 100, None).check(&estimate).is_ok());
        assert!(limits(None, Some(5999), 100, None)
            .check(&estimate)
            .is_err());
        assert!(limits(None, None, 100, Some(5000)).check(&estimate).is_ok());
        let err = limits(None, None, 100, Some(4999))
            .check(&estimate)
            .unwrap_err();
        assert!(err.to_string().contains("--max-memory"), "{err}");
        assert!(err.to_string().contains("make --steps smaller"), "{err}");
    }
}
