//! FP8 training as Transformer Engine does it: every matmul operand quantised with a scale of
//! its own, activations and weights to E4M3, gradients to E5M2 (the hybrid recipe), the
//! product accumulated in f32 and dequantised by the inverse scales.
//!
//! Quantising x with scale s is `cast(x·s)` with x·s rounded in f32 and the cast saturating
//! (`ops::cast`), exactly TE's cast kernel. The scale comes from the tensor's amax (largest
//! |x|, NaN ignored, ±inf counting as inf) by one of TE's rules ([`Fp8Scaling`]). What each
//! quantisation did (the scale, the amax, how many values saturated at the format's largest
//! finite or flushed to zero) is read off the statistics record of x·s, whose cast report
//! counts exactly those values, and comes back as an [`Fp8Record`] per layer and operand.

use std::collections::VecDeque;

use crate::backend::batch::{StatsBatch, StatsHandle};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::ops::cast::Overflowing;
use crate::precision::Precision;
use crate::stats::StatsRecord;

/// Transformer Engine's default amax history length (`DelayedScaling.amax_history_len`).
pub const DEFAULT_HISTORY: usize = 1024;

/// How each operand's scale is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum Fp8Scaling {
    /// Scale 1: what the formats do to the raw values.
    None,
    /// `DelayedScaling`: step t uses the scale computed after step t − 1 from the largest amax
    /// of the last `history` steps, (448 or 57344)·2^−margin / amax; 1 at the first step; an
    /// amax of 0, inf or NaN keeps the previous scale.
    Delayed { history: usize, margin: i32 },
    /// `Float8CurrentScaling`: each tensor's scale from its own amax, (448 or 57344) / amax;
    /// an amax of 0, inf or NaN gives 1. It needs the amax before the cast, so on a GPU each
    /// quantisation waits for one value.
    Current,
}

impl Default for Fp8Scaling {
    /// Transformer Engine's default recipe.
    fn default() -> Self {
        Fp8Scaling::Delayed {
            history: DEFAULT_HISTORY,
            margin: 0,
        }
    }
}

impl Fp8Scaling {
    pub fn name(self) -> &'static str {
        match self {
            Fp8Scaling::None => "none",
            Fp8Scaling::Delayed { .. } => "delayed",
            Fp8Scaling::Current => "current",
        }
    }

    /// The rule named `none`, `delayed` or `current`, with the history length and margin
    /// delayed scaling takes.
    pub fn parse(name: &str, history: usize, margin: i32) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Fp8Scaling::None),
            "current" => Ok(Fp8Scaling::Current),
            "delayed" => {
                if history == 0 {
                    return Err(Error::InvalidArgument(
                        "--fp8-history must be at least 1 step".into(),
                    ));
                }
                if !(-126..=126).contains(&margin) {
                    return Err(Error::InvalidArgument(format!(
                        "--fp8-margin must lie in −126..=126 (a power of two of f32), not {margin}"
                    )));
                }
                Ok(Fp8Scaling::Delayed { history, margin })
            }
            _ => Err(Error::Parse {
                what: "FP8 scaling",
                value: name.to_string(),
                expected: "none, delayed or current",
            }),
        }
    }
}

/// The matmul operand a scale belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// H^{t−1}, the layer's input (E4M3).
    Input,
    /// W^t (E4M3).
    Weight,
    /// dZ^t = ∂l/∂Z^t (E5M2).
    Gradient,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Input, Role::Weight, Role::Gradient];

    pub fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Weight => "weight",
            Role::Gradient => "gradient",
        }
    }

    /// The format the operand is quantised to in `precision`.
    pub fn format(self, precision: Precision) -> Option<Format> {
        let q = precision.quantised()?;
        Some(match self {
            Role::Input | Role::Weight => q.forward,
            Role::Gradient => q.gradient,
        })
    }
}

/// What one quantisation did.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fp8Record {
    pub layer: usize,
    pub role: Role,
    pub format: Format,
    /// The scale s the operand was multiplied by before the cast.
    pub scale: f32,
    /// The largest |x| before scaling (inf where x holds ±inf; NaNs ignored).
    pub amax: f64,
    /// Values of x·s beyond the format's range, ±inf included, cast to its largest finite.
    pub saturated: u64,
    /// Non-zero values of x·s below half the format's smallest subnormal, cast to zero.
    pub flushed: u64,
    /// Values in the tensor.
    pub count: u64,
}

/// The largest |x| of a record as Transformer Engine's amax kernels see it: NaN ignored
/// (`fmaxf`), ±inf making it inf.
fn amax_of(r: &StatsRecord) -> f64 {
    if r.pos_inf + r.neg_inf > 0 {
        f64::INFINITY
    } else if r.count == r.nan {
        0.0
    } else {
        r.abs_max
    }
}

/// `Float8CurrentScaling`'s scale (`compute_scale_from_amax`): max / amax rounded once in f32,
/// 1 for an amax of 0, inf or NaN, the largest f32 for an infinite quotient.
pub fn current_scale(format: Format, amax: f32) -> f32 {
    if amax == 0.0 || !amax.is_finite() {
        return 1.0;
    }
    let scale = format.spec().max_finite() as f32 / amax;
    if scale.is_infinite() {
        f32::MAX
    } else {
        scale
    }
}

/// `DelayedScaling`'s update as its fused CUDA kernel computes it (`scaled_max = max · 2^−margin`,
/// then `scaled_max / amax`, in f32): the previous scale for an amax of 0, inf or NaN, the
/// largest f32 for an infinite quotient. (TE's unfused Python path divides by 2^margin after
/// the quotient; the two differ only where one of them leaves f32's range.)
pub fn delayed_scale(format: Format, margin: i32, amax: f32, previous: f32) -> f32 {
    if !(amax.is_finite() && amax > 0.0) {
        return previous;
    }
    let scaled_max = format.spec().max_finite() as f32 * 2f32.powi(-margin);
    let scale = scaled_max / amax;
    if scale.is_infinite() {
        f32::MAX
    } else {
        scale
    }
}

/// The scales of every layer's operands across steps: the delayed rule's amax histories and
/// the scale each operand uses next.
#[derive(Clone, Debug)]
pub struct Fp8State {
    scaling: Fp8Scaling,
    /// Per layer (index t − 1) and role: the scale the next quantisation uses.
    next: Vec<[f32; 3]>,
    /// Per layer and role: the amaxes of past steps, newest last.
    history: Vec<[VecDeque<f32>; 3]>,
    /// Per layer and role: the scale this step quantised with, for the backward pass's second
    /// use of an operand.
    used: Vec<[Option<f32>; 3]>,
}

impl Fp8State {
    pub fn new(scaling: Fp8Scaling, depth: usize) -> Self {
        Fp8State {
            scaling,
            next: vec![[1.0; 3]; depth],
            history: (0..depth).map(|_| Default::default()).collect(),
            used: vec![[None; 3]; depth],
        }
    }

    pub fn scaling(&self) -> Fp8Scaling {
        self.scaling
    }

    /// Layer t's `role` operand (t from 1): the scale its next quantisation uses and the
    /// amaxes of past steps, oldest first (what a checkpoint saves).
    pub fn operand(&self, t: usize, role: Role) -> (f32, Vec<f32>) {
        let r = role as usize;
        (
            self.next[t - 1][r],
            self.history[t - 1][r].iter().copied().collect(),
        )
    }

    /// Sets what [`operand`](Self::operand) gives (a checkpoint's, read back).
    pub fn set_operand(&mut self, t: usize, role: Role, next: f32, history: Vec<f32>) {
        let r = role as usize;
        self.next[t - 1][r] = next;
        self.history[t - 1][r] = history.into();
    }
}

/// One pass's quantisations: the persistent state, and the records started so far.
pub struct Fp8Pass<'s, P> {
    state: &'s mut Fp8State,
    precision: Precision,
    batch: StatsBatch<P>,
    /// Per quantisation: the layer, role and scale, and the handles of the records of x and
    /// (where the scale is not 1) of x·s.
    pending: Vec<(usize, Role, f32, StatsHandle, Option<StatsHandle>)>,
}

impl<'s, P> Fp8Pass<'s, P> {
    pub fn new(state: &'s mut Fp8State, precision: Precision) -> Self {
        for used in &mut state.used {
            *used = [None; 3];
        }
        Fp8Pass {
            state,
            precision,
            batch: StatsBatch::default(),
            pending: Vec::new(),
        }
    }

    /// `x` quantised as layer t's `role` operand, with its scale. The first quantisation of an
    /// operand in a pass chooses the scale and is recorded; a later one (backward's second use
    /// of an input or weight) reuses it, and gives the same bits.
    pub fn quantise<B>(
        &mut self,
        backend: &B,
        x: &B::Tensor,
        t: usize,
        role: Role,
    ) -> Result<(B::Tensor, f32)>
    where
        B: Backend<PendingStats = P>,
    {
        let format = role.format(self.precision).ok_or_else(|| {
            Error::InvalidArgument(format!("{} quantises no operand", self.precision))
        })?;
        let r = role as usize;
        let (scale, record) = match self.state.used[t - 1][r] {
            Some(scale) => (scale, false),
            None => {
                let scale = match self.state.scaling {
                    Fp8Scaling::None => 1.0,
                    Fp8Scaling::Delayed { .. } => self.state.next[t - 1][r],
                    Fp8Scaling::Current => {
                        current_scale(format, amax_of(&backend.stats(x)?) as f32)
                    }
                };
                self.state.used[t - 1][r] = Some(scale);
                (scale, true)
            }
        };
        let scaled = if scale == 1.0 {
            None
        } else {
            Some(backend.scale(x, scale, self.precision)?)
        };
        let y = scaled.as_ref().unwrap_or(x);
        if record {
            let of_x = self.batch.start(backend, x)?;
            let of_y = match &scaled {
                Some(y) => Some(self.batch.start(backend, y)?),
                None => None,
            };
            self.pending.push((t, role, scale, of_x, of_y));
        }
        Ok((backend.cast(y, format, Overflowing::Saturate)?, scale))
    }

    /// Waits for the pass's records, and moves the delayed rule on by one step.
    pub fn finish<B>(self, backend: &B) -> Result<Vec<Fp8Record>>
    where
        B: Backend<PendingStats = P>,
    {
        let found = self.batch.collect(backend)?;
        let mut records = Vec::new();
        for (t, role, scale, x, scaled) in self.pending {
            // With scale 1, x·s is x.
            let (of_x, of_y) = (found.get(x), found.get(scaled.unwrap_or(x)));
            let format = role.format(self.precision).expect("checked when quantised");
            let cast = of_y.cast.of(format);
            records.push(Fp8Record {
                layer: t,
                role,
                format,
                scale,
                amax: amax_of(of_x),
                saturated: cast.overflow + of_y.pos_inf + of_y.neg_inf,
                flushed: cast.zero,
                count: of_x.count,
            });
        }
        if let Fp8Scaling::Delayed { history, margin } = self.state.scaling {
            for r in &records {
                let (i, k) = (r.layer - 1, r.role as usize);
                let h = &mut self.state.history[i][k];
                h.push_back(r.amax as f32);
                while h.len() > history {
                    h.pop_front();
                }
                // `fmaxf` over the window: a NaN amax is ignored.
                let amax = h.iter().fold(0.0f32, |m, &a| m.max(a));
                self.state.next[i][k] =
                    delayed_scale(r.format, margin, amax, self.state.next[i][k]);
            }
        }
        records.sort_by_key(|r| (r.layer, r.role as usize));
        Ok(records)
    }
}

/// (1/s_a)·(1/s_b) in f32, the factor a product of operands quantised with s_a and s_b is
/// dequantised by, as TE's GEMM takes each operand's `scale_inv`.
pub fn out_scale(scale_a: f32, scale_b: f32) -> f32 {
    (1.0 / scale_a) * (1.0 / scale_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_follow_transformer_engines_formulas() {
        assert_eq!(current_scale(Format::E4m3, 2.0), 224.0);
        assert_eq!(current_scale(Format::E5m2, 57344.0), 1.0);
        assert_eq!(current_scale(Format::E4m3, 0.0), 1.0);
        assert_eq!(current_scale(Format::E4m3, f32::INFINITY), 1.0);
        assert_eq!(current_scale(Format::E4m3, f32::NAN), 1.0);
        assert_eq!(current_scale(Format::E4m3, 1e-45), f32::MAX);
        assert_eq!(delayed_scale(Format::E4m3, 1, 2.0, 5.0), 112.0);
        assert_eq!(delayed_scale(Format::E4m3, 0, 0.0, 5.0), 5.0);
        assert_eq!(delayed_scale(Format::E4m3, 0, f32::NAN, 5.0), 5.0);
        assert_eq!(delayed_scale(Format::E5m2, 0, 3.0, 5.0), 57344.0f32 / 3.0);
    }

    #[test]
    fn the_rule_names_parse_and_bad_ones_are_refused() {
        assert_eq!(Fp8Scaling::parse("none", 1, 0).unwrap(), Fp8Scaling::None);
        assert_eq!(
            Fp8Scaling::parse("Delayed", 16, 2).unwrap(),
            Fp8Scaling::Delayed {
                history: 16,
                margin: 2
            }
        );
        assert!(Fp8Scaling::parse("delayed", 0, 0).is_err());
        assert!(Fp8Scaling::parse("delayed", 4, 200).is_err());
        assert!(Fp8Scaling::parse("fast", 4, 0).is_err());
    }
}
