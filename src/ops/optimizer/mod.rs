//! One optimizer step of one parameter tensor with PyTorch's update rules (shaders/
//! optimizer.wgsl and its CPU reference): SGD with momentum, Nesterov and weight decay, Adam
//! and AdamW. The host computes the per-step scalars in f64 as torch.optim does in Python
//! (bias corrections, the step size), and the kernel the per-element rule.

pub mod cpu;
pub mod gpu;

use std::fmt;
use std::str::FromStr;

use crate::checked::{f32_for, Use};
use crate::error::{Error, Result};
use crate::precision::{DType, Precision};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    AdamW,
}

impl OptimizerKind {
    pub const ALL: [OptimizerKind; 3] = [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }
}

impl FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            _ => Err(Error::Parse {
                what: "optimizer",
                value: s.to_string(),
                expected: "sgd, adam or adamw",
            }),
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An optimizer and its hyperparameters, with torch.optim's defaults.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    /// SGD's momentum (0: plain SGD).
    pub momentum: f64,
    /// SGD's Nesterov momentum (needs momentum > 0).
    pub nesterov: bool,
    /// L2 penalty added to the gradient (SGD, Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
}

impl OptimizerConfig {
    /// torch.optim's defaults for `kind`: SGD without momentum or decay; Adam with betas
    /// (0.9, 0.999), eps 1e-8, no decay; AdamW the same with weight decay 0.01.
    pub fn new(kind: OptimizerKind) -> Self {
        OptimizerConfig {
            kind,
            momentum: 0.0,
            nesterov: false,
            weight_decay: if kind == OptimizerKind::AdamW {
                0.01
            } else {
                0.0
            },
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }

    /// The same checks torch.optim makes in its constructors.
    pub fn validate(&self, lr: f64) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        f32_for("--lr", lr, Use::NonNegative)?;
        f32_for("--weight-decay", self.weight_decay, Use::NonNegative)?;
        // AdamW's decay factor 1 − lr·λ is an f32 too.
        if !((1.0 - lr * self.weight_decay) as f32).is_finite() {
            return bad(format!(
                "--lr {lr} with --weight-decay {}: their product is beyond f32's range",
                self.weight_decay
            ));
        }
        match self.kind {
            OptimizerKind::Sgd => {
                f32_for("--momentum", self.momentum, Use::NonNegative)?;
                if self.nesterov && self.momentum == 0.0 {
                    return bad("Nesterov momentum requires a momentum > 0".into());
                }
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                let (b1, b2) = self.betas;
                if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
                    return bad(format!("--betas {b1},{b2}: each must be in [0, 1)"));
                }
                f32_for("--eps", self.eps, Use::NonNegative)?;
            }
        }
        if self.kind != OptimizerKind::Sgd && (self.momentum != 0.0 || self.nesterov) {
            return bad(format!(
                "--momentum and --nesterov are SGD's; {} has --betas",
                self.kind
            ));
        }
        Ok(())
    }

    /// Optimizer state tensors per parameter: SGD's momentum buffer, Adam's two moments.
    pub fn state_tensors(&self) -> usize {
        match self.kind {
            OptimizerKind::Sgd if self.momentum == 0.0 => 0,
            OptimizerKind::Sgd => 1,
            OptimizerKind::Adam | OptimizerKind::AdamW => 2,
        }
    }
}

/// Where the master weights and the optimizer state live: in the storage format in pure f16 and
/// bf16 (`model.half()`, `model.bfloat16()`), f32 otherwise (mixed precision keeps f32
/// masters beside the narrow model).
pub fn master_dtype(precision: Precision) -> DType {
    precision.master()
}

/// Whether the model's weights are a separate narrow copy of f32 masters.
pub fn has_model_copy(precision: Precision) -> bool {
    precision.master() != precision.storage()
}

/// What one step of one tensor needs besides the tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepScalars {
    pub lr: f64,
    /// The optimizer's step count t ≥ 1 (steps skipped by the loss scaler do not count).
    pub step: u64,
    /// Multiplies the gradient first: 1/loss scale.
    pub grad_scale: f64,
    /// clip_grad_value_'s limit.
    pub clip_value: Option<f64>,
    /// clip_grad_norm_'s factor, min(1, max_norm/(‖g‖ + 1e-6)), 1 without clipping.
    pub clip_coefficient: f64,
}

/// The uniform block of shaders/optimizer.wgsl, which the CPU reference reads too.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len: u32,
    pub groups_x: u32,
    pub flags: u32,
    pub _pad0: u32,
    pub lr: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    pub decoupled_decay: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub eps: f32,
    pub step_size: f32,
    pub bias_correction2_sqrt: f32,
    pub grad_scale: f32,
    pub clip_value: f32,
    pub clip_coefficient: f32,
    pub _pad1: u32,
    pub _pad2: u32,
    pub _pad3: u32,
}

pub const FIRST_STEP: u32 = 1;
pub const NESTEROV: u32 = 2;
pub const CLIP_VALUE: u32 = 4;
pub const WRITE_MODEL: u32 = 8;

impl Params {
    /// The scalars of one step, computed in f64 as torch.optim computes them in Python, then
    /// rounded to f32 as PyTorch's kernels read a Python float.
    pub fn new(
        config: &OptimizerConfig,
        s: &StepScalars,
        len: usize,
        precision: Precision,
    ) -> Self {
        let (b1, b2) = config.betas;
        let t = s.step as i32;
        let bias_correction1 = 1.0 - b1.powi(t);
        let bias_correction2 = 1.0 - b2.powi(t);
        let mut flags = 0;
        if s.step == 1 {
            flags |= FIRST_STEP;
        }
        if config.nesterov {
            flags |= NESTEROV;
        }
        if s.clip_value.is_some() {
            flags |= CLIP_VALUE;
        }
        if has_model_copy(precision) {
            flags |= WRITE_MODEL;
        }
        Params {
            len: len as u32,
            groups_x: 0,
            flags,
            _pad0: 0,
            lr: s.lr as f32,
            weight_decay: config.weight_decay as f32,
            momentum: config.momentum as f32,
            decoupled_decay: (1.0 - s.lr * config.weight_decay) as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            eps: config.eps as f32,
            step_size: (s.lr / bias_correction1) as f32,
            bias_correction2_sqrt: bias_correction2.sqrt() as f32,
            grad_scale: s.grad_scale as f32,
            clip_value: s.clip_value.unwrap_or(0.0) as f32,
            clip_coefficient: s.clip_coefficient as f32,
            _pad1: 0,
            _pad2: 0,
            _pad3: 0,
        }
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// The tensors of one step: the gradient (as backward left it), the master weights, the
/// state, and the model's f16 copy in mixed precision, all of one shape.
pub struct StepTensors<'a, T> {
    pub grad: &'a T,
    pub param: &'a mut T,
    /// SGD's momentum buffer or Adam's exp_avg.
    pub first_moment: Option<&'a mut T>,
    /// Adam's exp_avg_sq.
    pub second_moment: Option<&'a mut T>,
    pub model: Option<&'a mut T>,
}

impl<'a, T> StepTensors<'a, T> {
    /// Runs `step` on these tensors and hands back its result and the weights, which a
    /// caller censuses once the step has left them.
    pub fn step_then_param<R>(self, step: impl FnOnce(StepTensors<'_, T>) -> R) -> (R, &'a mut T) {
        let StepTensors {
            grad,
            param,
            first_moment,
            second_moment,
            model,
        } = self;
        let result = step(StepTensors {
            grad,
            param: &mut *param,
            first_moment,
            second_moment,
            model,
        });
        (result, param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_display_as_given() {
        for kind in OptimizerKind::ALL {
            assert_eq!(kind.name().parse::<OptimizerKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(
            OptimizerKind::ALL.map(OptimizerKind::name),
            ["sgd", "adam", "adamw"]
        );
        assert_eq!(
            " AdamW ".parse::<OptimizerKind>().unwrap(),
            OptimizerKind::AdamW
        );
        assert!("rmsprop".parse::<OptimizerKind>().is_err());
    }

    #[test]
    fn validation_refuses_what_torch_optim_refuses() {
        let sgd = OptimizerConfig::new(OptimizerKind::Sgd);
        sgd.validate(0.0).unwrap();
        for lr in [-1e-3, f64::INFINITY, f64::NAN] {
            assert!(sgd.validate(lr).is_err(), "lr {lr}");
        }
        let bad_sgd = [
            OptimizerConfig {
                momentum: -0.1,
                ..sgd
            },
            OptimizerConfig {
                nesterov: true,
                ..sgd
            },
            OptimizerConfig {
                weight_decay: -1.0,
                ..sgd
            },
        ];
        for c in bad_sgd {
            assert!(c.validate(0.1).is_err(), "{c:?}");
        }
        OptimizerConfig {
            nesterov: true,
            momentum: 0.9,
            ..sgd
        }
        .validate(0.1)
        .unwrap();
        let adam = OptimizerConfig::new(OptimizerKind::Adam);
        adam.validate(1e-3).unwrap();
        let bad_adam = [
            OptimizerConfig {
                betas: (1.0, 0.999),
                ..adam
            },
            OptimizerConfig {
                betas: (0.9, -0.1),
                ..adam
            },
            OptimizerConfig { eps: -1e-8, ..adam },
            OptimizerConfig {
                momentum: 0.9,
                ..adam
            },
        ];
        for c in bad_adam {
            assert!(c.validate(1e-3).is_err(), "{c:?}");
        }
        // torch.optim's defaults.
        assert_eq!(
            OptimizerConfig::new(OptimizerKind::AdamW).weight_decay,
            0.01
        );
        assert_eq!(adam.weight_decay, 0.0);
        assert_eq!((adam.betas, adam.eps), ((0.9, 0.999), 1e-8));
    }

    #[test]
    fn step_scalars_are_torch_optims() {
        let adam = OptimizerConfig {
            weight_decay: 0.1,
            ..OptimizerConfig::new(OptimizerKind::AdamW)
        };
        let s = StepScalars {
            lr: 0.01,
            step: 3,
            grad_scale: 0.5,
            clip_value: Some(2.0),
            clip_coefficient: 0.25,
        };
        let p = Params::new(&adam, &s, 7, Precision::F16Accumulate32);
        assert_eq!(p.len, 7);
        assert_eq!(p.step_size, (0.01 / (1.0 - 0.9f64.powi(3))) as f32);
        assert_eq!(
            p.bias_correction2_sqrt,
            (1.0 - 0.999f64.powi(3)).sqrt() as f32
        );
        assert_eq!(p.decoupled_decay, (1.0 - 0.01 * 0.1) as f32);
        assert_eq!(
            (p.one_minus_beta1, p.one_minus_beta2),
            (0.1f64 as f32, (1.0 - 0.999f64) as f32)
        );
        assert_eq!(
            (p.grad_scale, p.clip_value, p.clip_coefficient),
            (0.5, 2.0, 0.25)
        );
        assert!(p.has(CLIP_VALUE) && p.has(WRITE_MODEL) && !p.has(FIRST_STEP) && !p.has(NESTEROV));
        let first = Params::new(
            &adam,
            &StepScalars {
                step: 1,
                clip_value: None,
                ..s
            },
            7,
            Precision::F32,
        );
        assert!(first.has(FIRST_STEP) && !first.has(CLIP_VALUE) && !first.has(WRITE_MODEL));
        assert_eq!(master_dtype(Precision::F16), DType::F16);
        assert_eq!(master_dtype(Precision::F16Accumulate32), DType::F32);
        assert_eq!(OptimizerConfig::new(OptimizerKind::Sgd).state_tensors(), 0);
        assert_eq!(
            OptimizerConfig {
                momentum: 0.5,
                ..OptimizerConfig::new(OptimizerKind::Sgd)
            }
            .state_tensors(),
            1
        );
        assert_eq!(adam.state_tensors(), 2);
    }
}
