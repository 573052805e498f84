//! Learning-rate schedules: plain functions of the step, as in optax and nanoGPT; see [`Schedule`].

mod decay;
mod one_cycle;
mod plateau;
mod scheduler;

pub use one_cycle::{Anneal, OneCycle};
pub use plateau::{Plateau, PlateauConfig, PlateauMode, PlateauState, ThresholdMode};
pub use scheduler::Scheduler;

use crate::error::{OptimError, Result};
use serde::{Deserialize, Serialize};

/// A multiplier on the base learning rate as a function of the step, as in optax and nanoGPT.
///
/// `step` is the number of optimiser steps already taken, so `factor(t, total)` is the multiplier for update
/// `t + 1`; this is PyTorch's convention too (the learning rate of update `t + 1` is the one set
/// after `t` calls to `scheduler.step()`). `total` is the run's number of optimiser steps, from
/// the trainer; schedules that do not need it ignore it.
///
/// Recipes write a schedule as a `[schedule]` table whose `kind` names the variant:
///
/// ```toml
/// [schedule]            # nanoGPT: 100 warmup steps, then cosine down to 10% of the peak
/// kind = "warmup"
/// warmup_steps = 100
/// then = { kind = "cosine", min_ratio = 0.1 }
/// ```
///
/// | `kind` | multiplier at step `t` of `T` | PyTorch / Hugging Face counterpart |
/// |---|---|---|
/// | `constant` | 1 | — |
/// | `warmup` | `s + (1 − s)·t/w` for `t < w`, then `then` at `(t − w, T − w)` | `SequentialLR([LinearLR, X], [w])` |
/// | `warmup-linear`, `-cosine`, `-constant` | `warmup` with `s = 0` and `then` = linear / cosine / constant | `get_{linear,cosine,constant}_schedule_with_warmup` |
/// | `linear` | `a + (b − a)·min(t, T)/T` | `LinearLR` |
/// | `cosine` | `m + (1 − m)(1 + cos(π·min(t, T)/T))/2` | `CosineAnnealingLR` |
/// | `polynomial` | `(1 − e)(1 − min(t, T)/T)^p + e` | `PolynomialLR`, `get_polynomial_decay_schedule_with_warmup` |
/// | `step` | `γ^⌊t/n⌋` | `StepLR` |
/// | `multi-step` | `γ^#{milestones ≤ t}` | `MultiStepLR` |
/// | `exponential` | `γ^t` | `ExponentialLR` |
/// | `inverse-sqrt` | `t/w` for `t < w`, then `√(τ/(t − w + τ))` | fairseq `inverse_sqrt`, `get_inverse_sqrt_schedule` |
/// | `one-cycle` | see [`OneCycle`] | `OneCycleLR` |
/// | `reduce-on-plateau` | 1 here; the multiplier lives in a [`Plateau`] | `ReduceLROnPlateau` |
///
/// Past `T`, the decays hold their final value (PyTorch's `CosineAnnealingLR` would rise again
/// and `OneCycleLR` would raise an error).
///
/// Reduce-on-plateau cannot be a function of the step: it reacts to validation metrics. Its
/// stateful half is [`Plateau`]; [`Scheduler`] pairs any schedule with the plateau it contains, so a
/// trainer calls `scheduler.factor(step, total)` before each update and
/// `scheduler.observe(metric)` after each evaluation.
///
/// Warmup is linear from `start_factor` (0 unless given) at step 0 to 1 at step `w`, as in
/// Hugging Face's `get_linear_schedule_with_warmup`. `w` is `warmup_steps` when given, else
/// `warmup_ratio × total` rounded.
///
/// ```
/// use whetstone_optim::Schedule;
/// let s = Schedule::WarmupLinear { warmup_steps: Some(10), warmup_ratio: 0.0 };
/// assert_eq!(s.factor(5, 110), 0.5);
/// assert_eq!(s.factor(10, 110), 1.0);
/// assert_eq!(s.factor(60, 110), 0.5);
/// assert_eq!(s.factor(110, 110), 0.0);
///
/// // Warmup composes with any schedule: 10 steps up, then a step decay.
/// let s: Schedule = toml::from_str(r#"
///     kind = "warmup"
///     warmup_steps = 10
///     then = { kind = "step", step_size = 30, gamma = 0.5 }
/// "#).unwrap();
/// assert_eq!(s.factor(5, 1000), 0.5);
/// assert_eq!(s.factor(10 + 30, 1000), 0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// Linear warmup, then linear decay to 0 at the last step (`warmup` then `linear`).
    WarmupLinear {
        /// Warmup length; overrides `warmup_ratio`.
        #[serde(default)]
        warmup_steps: Option<u64>,
        /// Warmup length as a fraction of the run (default 0).
        #[serde(default)]
        warmup_ratio: f64,
    },
    /// Linear warmup, then a half-cosine down to `min_ratio` × the base rate.
    WarmupCosine {
        /// Warmup length; overrides `warmup_ratio`.
        #[serde(default)]
        warmup_steps: Option<u64>,
        /// Warmup length as a fraction of the run (default 0).
        #[serde(default)]
        warmup_ratio: f64,
        /// Final multiplier (default 0).
        #[serde(default)]
        min_ratio: f64,
    },
    /// Linear warmup, then the base rate.
    WarmupConstant {
        /// Warmup length; overrides `warmup_ratio`.
        #[serde(default)]
        warmup_steps: Option<u64>,
        /// Warmup length as a fraction of the run (default 0).
        #[serde(default)]
        warmup_ratio: f64,
    },
    /// Linear warmup from `start_factor` to 1, then `then` (default `constant`), which sees
    /// the step and the total counted from the end of the warmup.
    Warmup {
        /// Warmup length; overrides `warmup_ratio`.
        #[serde(default)]
        warmup_steps: Option<u64>,
        /// Warmup length as a fraction of the run (default 0).
        #[serde(default)]
        warmup_ratio: f64,
        /// Multiplier at step 0 (default 0, as Hugging Face; `LinearLR`'s `start_factor`).
        #[serde(default)]
        start_factor: f64,
        /// The schedule after the warmup.
        #[serde(default = "constant")]
        then: Box<Schedule>,
    },
    /// From `start_factor` to `end_factor` linearly over the run (`LinearLR` with
    /// `total_iters = total`).
    Linear {
        /// Multiplier at step 0 (default 1).
        #[serde(default = "one")]
        start_factor: f64,
        /// Multiplier at the last step and after (default 0).
        #[serde(default)]
        end_factor: f64,
    },
    /// A half-cosine from 1 down to `min_ratio` over the run (SGDR without restarts,
    /// Loshchilov & Hutter 2017; `CosineAnnealingLR` with `T_max = total`).
    Cosine {
        /// Final multiplier (default 0).
        #[serde(default)]
        min_ratio: f64,
    },
    /// `(1 − end)·(1 − t/T)^power + end`: Hugging Face's polynomial decay, `PolynomialLR` when
    /// `end_factor = 0`.
    Polynomial {
        /// Exponent (default 1: linear).
        #[serde(default = "one")]
        power: f64,
        /// Final multiplier (default 0; Hugging Face's `lr_end / lr_init`).
        #[serde(default)]
        end_factor: f64,
    },
    /// Multiply by `gamma` every `step_size` steps (`StepLR`).
    Step {
        /// Steps between decays.
        step_size: u64,
        /// Decay per period (default 0.1).
        #[serde(default = "tenth")]
        gamma: f64,
    },
    /// Multiply by `gamma` at each milestone step (`MultiStepLR`).
    MultiStep {
        /// Steps at which the rate decays; a repeated milestone decays twice.
        milestones: Vec<u64>,
        /// Decay per milestone (default 0.1).
        #[serde(default = "tenth")]
        gamma: f64,
    },
    /// Multiply by `gamma` every step (`ExponentialLR`).
    Exponential {
        /// Decay per step.
        gamma: f64,
    },
    /// The Transformer schedule (Vaswani et al. 2017, §5.3) normalised to peak at 1: linear
    /// warmup from 0, then decay with the inverse square root of the step, exactly as
    /// fairseq's `inverse_sqrt` (with `warmup_init_lr = 0`) and Hugging Face's
    /// `get_inverse_sqrt_schedule`.
    InverseSqrt {
        /// Warmup length `w`.
        warmup_steps: u64,
        /// Decay time-scale `τ` (default `w`, or 10 000 when `w = 0`, as Hugging Face).
        #[serde(default)]
        timescale: Option<u64>,
    },
    /// The 1cycle policy (Smith & Topin 2018), as `OneCycleLR`.
    OneCycle(OneCycle),
    /// Divide the rate when a validation metric stops improving (`ReduceLROnPlateau`).
    /// [`Schedule::factor`] is 1 for this kind; the reduction comes from [`Scheduler::observe`].
    ReduceOnPlateau(PlateauConfig),
}

fn constant() -> Box<Schedule> {
    Box::new(Schedule::Constant)
}
fn one() -> f64 {
    1.0
}
fn tenth() -> f64 {
    0.1
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::WarmupLinear { warmup_steps: None, warmup_ratio: 0.06 }
    }
}

fn warmup_len(steps: Option<u64>, ratio: f64, total: u64) -> u64 {
    steps.unwrap_or_else(|| (ratio * total as f64).round() as u64)
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(OptimError::Config(format!("schedule: {}", msg())))
    }
}

fn in_unit(name: &str, v: f64) -> Result<()> {
    check((0.0..=1.0).contains(&v), || format!("{name} must be in [0, 1], got {v}"))
}

impl Schedule {
    /// Check every setting is in range (so that [`Schedule::factor`] is finite).
    pub fn validate(&self) -> Result<()> {
        match self {
            Schedule::Constant => Ok(()),
            Schedule::WarmupLinear { warmup_ratio, .. } | Schedule::WarmupConstant { warmup_ratio, .. } => in_unit("warmup_ratio", *warmup_ratio),
            Schedule::WarmupCosine { warmup_ratio, min_ratio, .. } => {
                in_unit("warmup_ratio", *warmup_ratio)?;
                in_unit("min_ratio", *min_ratio)
            }
            Schedule::Warmup { warmup_ratio, start_factor, then, .. } => {
                in_unit("warmup_ratio", *warmup_ratio)?;
                in_unit("start_factor", *start_factor)?;
                then.validate()
            }
            Schedule::Linear { start_factor, end_factor } => {
                check(start_factor.is_finite() && end_factor.is_finite() && *start_factor >= 0.0 && *end_factor >= 0.0, || {
                    format!("linear start_factor and end_factor must be finite and >= 0, got {start_factor} and {end_factor}")
                })
            }
            Schedule::Cosine { min_ratio } => in_unit("min_ratio", *min_ratio),
            Schedule::Polynomial { power, end_factor } => {
                check(power.is_finite() && *power >= 0.0, || format!("polynomial power must be finite and >= 0, got {power}"))?;
                in_unit("end_factor", *end_factor)
            }
            Schedule::Step { step_size, gamma } => {
                check(*step_size > 0, || "step step_size must be > 0".into())?;
                positive("gamma", *gamma)
            }
            Schedule::MultiStep { gamma, .. } | Schedule::Exponential { gamma } => positive("gamma", *gamma),
            Schedule::InverseSqrt { timescale, .. } => check(*timescale != Some(0), || "inverse-sqrt timescale must be > 0".into()),
            Schedule::OneCycle(c) => c.validate(),
            Schedule::ReduceOnPlateau(c) => c.validate(),
        }
    }

    /// The multiplier for `step` (0-based, steps already taken) out of `total` steps.
    pub fn factor(&self, step: u64, total: u64) -> f64 {
        let warm = |ws: &Option<u64>, wr: f64| warmup_len(*ws, wr, total);
        match self {
            Schedule::Constant | Schedule::ReduceOnPlateau(_) => 1.0,
            Schedule::WarmupLinear { warmup_steps, warmup_ratio } => {
                decay::warmup(step, total, warm(warmup_steps, *warmup_ratio), 0.0, |t, n| decay::linear(t, n, 1.0, 0.0))
            }
            Schedule::WarmupCosine { warmup_steps, warmup_ratio, min_ratio } => {
                decay::warmup(step, total, warm(warmup_steps, *warmup_ratio), 0.0, |t, n| decay::cosine(t, n, *min_ratio))
            }
            Schedule::WarmupConstant { warmup_steps, warmup_ratio } => decay::warmup(step, total, warm(warmup_steps, *warmup_ratio), 0.0, |_, _| 1.0),
            Schedule::Warmup { warmup_steps, warmup_ratio, start_factor, then } => {
                decay::warmup(step, total, warm(warmup_steps, *warmup_ratio), *start_factor, |t, n| then.factor(t, n))
            }
            Schedule::Linear { start_factor, end_factor } => decay::linear(step, total, *start_factor, *end_factor),
            Schedule::Cosine { min_ratio } => decay::cosine(step, total, *min_ratio),
            Schedule::Polynomial { power, end_factor } => decay::polynomial(step, total, *power, *end_factor),
            Schedule::Step { step_size, gamma } => gamma.powf((step / (*step_size).max(1)) as f64),
            Schedule::MultiStep { milestones, gamma } => gamma.powf(milestones.iter().filter(|&&m| m <= step).count() as f64),
            Schedule::Exponential { gamma } => gamma.powf(step as f64),
            Schedule::InverseSqrt { warmup_steps, timescale } => decay::inverse_sqrt(step, *warmup_steps, *timescale),
            Schedule::OneCycle(c) => c.factor(step, total),
        }
    }

    /// The reduce-on-plateau settings in this schedule (itself, or what follows its warmup).
    pub fn plateau(&self) -> Option<&PlateauConfig> {
        match self {
            Schedule::ReduceOnPlateau(c) => Some(c),
            Schedule::Warmup { then, .. } => then.plateau(),
            _ => None,
        }
    }
}

fn positive(name: &str, v: f64) -> Result<()> {
    check(v.is_finite() && v > 0.0, || format!("{name} must be finite and > 0, got {v}"))
}
