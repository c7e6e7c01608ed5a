//! Loss scaling: none, a static factor, or dynamic scaling exactly as
//! `torch.amp.GradScaler` does it (its `_amp_update_scale_`): the scale starts at
//! `init_scale`, a step whose gradients hold any inf or NaN is skipped and the scale
//! multiplied by `backoff_factor`, and after `growth_interval` steps in a row without one
//! the scale is multiplied by `growth_factor`. The scale is an f32, as GradScaler's tensor.

use std::fmt;
use std::str::FromStr;

use crate::checked::{f32_between, f32_for, Use};
use crate::error::{Error, Result};

/// GradScaler's settings, with its defaults.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DynamicScaling {
    pub init_scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: u64,
}

impl Default for DynamicScaling {
    fn default() -> Self {
        DynamicScaling {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossScale {
    None,
    /// A fixed factor; a step with inf or NaN gradients is skipped, the factor kept.
    Static {
        scale: f64,
    },
    Dynamic(DynamicScaling),
}

impl FromStr for LossScale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Parse {
            what: "loss scale",
            value: s.to_string(),
            expected: "none, static:S (S > 0) or dynamic",
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(LossScale::None),
            "dynamic" => Ok(LossScale::Dynamic(DynamicScaling::default())),
            other => {
                let value = other.strip_prefix("static:").ok_or_else(bad)?;
                let scale: f64 = value.parse().map_err(|_| bad())?;
                match f32_for("--loss-scale static:S", scale, Use::Divisor) {
                    Ok(_) => Ok(LossScale::Static { scale }),
                    Err(_) if scale.is_nan() || scale <= 0.0 => Err(bad()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

impl fmt::Display for LossScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossScale::None => f.write_str("none"),
            LossScale::Static { scale } => write!(f, "static:{scale}"),
            LossScale::Dynamic(_) => f.write_str("dynamic"),
        }
    }
}

impl DynamicScaling {
    /// GradScaler's constructor checks, and one of ours: a growth interval of at least 1.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        f32_for("--init-scale", self.init_scale, Use::Divisor)?;
        f32_between(
            "--growth-factor",
            self.growth_factor,
            1.0,
            f64::INFINITY,
            false,
        )?;
        f32_between("--backoff-factor", self.backoff_factor, 0.0, 1.0, false)?;
        if self.growth_interval == 0 {
            return bad("--growth-interval must be at least 1".into());
        }
        Ok(())
    }
}

/// The running state of a loss scale.
#[derive(Clone, Debug)]
pub struct Scaler {
    mode: LossScale,
    scale: f32,
    growth_tracker: u64,
}

impl Scaler {
    pub fn new(mode: LossScale) -> Self {
        let scale = match mode {
            LossScale::None => 1.0,
            LossScale::Static { scale } => scale as f32,
            LossScale::Dynamic(d) => d.init_scale as f32,
        };
        Scaler {
            mode,
            scale,
            growth_tracker: 0,
        }
    }

    /// The factor the loss is multiplied by this step.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Whether a step with non-finite gradients is skipped (any scaling), or applied as
    /// plain PyTorch without a scaler would apply it.
    pub fn skips_non_finite(&self) -> bool {
        self.mode != LossScale::None
    }

    /// The factor that unscales the gradients: 1/scale in f32, as GradScaler's
    /// `scale.double().reciprocal().float()`.
    pub fn inv_scale(&self) -> f32 {
        (1.0 / self.scale as f64) as f32
    }

    /// The steps in a row without an inf or NaN since the scale last changed (GradScaler's
    /// `_growth_tracker`); 0 without dynamic scaling.
    pub fn growth_tracker(&self) -> u64 {
        self.growth_tracker
    }

    /// A scaler of `mode` that goes on from `scale` and `growth_tracker`, as
    /// `GradScaler.load_state_dict` does (a checkpoint's).
    pub fn resumed(mode: LossScale, scale: f32, growth_tracker: u64) -> Self {
        Scaler {
            mode,
            scale,
            growth_tracker,
        }
    }

    /// After a step: `found_inf` when any gradient held an inf or NaN.
    pub fn update(&mut self, found_inf: bool) {
        let LossScale::Dynamic(d) = self.mode else {
            return;
        };
        if found_inf {
            self.scale *= d.backoff_factor as f32;
            self.growth_tracker = 0;
        } else {
            let successful = self.growth_tracker + 1;
            if successful == d.growth_interval {
                let grown = self.scale * d.growth_factor as f32;
                // GradScaler keeps the old scale where the grown one would be inf.
                if grown.is_finite() {
                    self.scale = grown;
                }
                self.growth_tracker = 0;
            } else {
                self.growth_tracker = successful;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_scales_parse_and_display() {
        assert_eq!("none".parse::<LossScale>().unwrap(), LossScale::None);
        assert_eq!(
            " Dynamic ".parse::<LossScale>().unwrap(),
            LossScale::Dynamic(DynamicScaling::default())
        );
        assert_eq!(
            "static:1024".parse::<LossScale>().unwrap(),
            LossScale::Static { scale: 1024.0 }
        );
        // The largest f32 is the largest scale; 0, negatives, inf and NaN are refused.
        assert!("static:3.4e38".parse::<LossScale>().is_ok());
        for bad in [
            "static:0",
            "static:-2",
            "static:1e39",
            "static:inf",
            "static:nan",
            "static",
            "1024",
            "",
        ] {
            assert!(bad.parse::<LossScale>().is_err(), "{bad}");
        }
        for s in ["none", "dynamic", "static:1024"] {
            assert_eq!(s.parse::<LossScale>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn dynamic_scaling_settings_are_checked() {
        DynamicScaling::default().validate().unwrap();
        let d = DynamicScaling::default();
        let bad = [
            DynamicScaling {
                init_scale: 0.0,
                ..d
            },
            DynamicScaling {
                init_scale: 1e39,
                ..d
            },
            DynamicScaling {
                growth_factor: 1.0,
                ..d
            },
            DynamicScaling {
                growth_factor: f64::INFINITY,
                ..d
            },
            DynamicScaling {
                backoff_factor: 1.0,
                ..d
            },
            DynamicScaling {
                backoff_factor: 0.0,
                ..d
            },
            DynamicScaling {
                growth_interval: 0,
                ..d
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
    }

    #[test]
    fn a_grown_scale_that_would_be_inf_is_kept() {
        let mut s = Scaler::new(LossScale::Dynamic(DynamicScaling {
            init_scale: f32::MAX as f64,
            growth_interval: 1,
            ..DynamicScaling::default()
        }));
        s.update(false);
        assert_eq!(s.scale(), f32::MAX);
        assert_eq!(s.inv_scale(), (1.0 / f32::MAX as f64) as f32);
    }
}
