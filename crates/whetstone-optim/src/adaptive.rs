//! The adaptive optimiser: RAdam with decoupled weight decay whose momentum coefficient and
//! learning rate adapt per tensor, online (the charter's "adaptive optimisation strategy that
//! couples the momentum term with dynamic learning-rate adjustment").
//!
//! **Defaults.** Since the fourteenth session (2026-11-30) the momentum adaptation of step 1 is
//! **off by default** (`beta1_min` unset: β₁ stays at `betas.0`): one coupling off at a time,
//! on two held-out tasks, the learning-rate multiplier (step 4) carried the whole gain and the
//! β₁ adaptation added nothing measurable; the multiplier-only design then passed its own pre-registered held-out
//! task (WNUT-16 NER, `reports/optim-notes.md`). The momentum still couples to the learning rate
//! through the multiplier, whose signal is the alignment of each gradient with the previous
//! momentum step. [`AdaptiveConfig::momentum_adaptive`] gives the earlier defaults, with β₁
//! adapting as below.
//!
//! # Update rule
//!
//! For each parameter tensor θ with gradient g at step t (cos(a, b) = ⟨a, b⟩ / (‖a‖‖b‖), 0 when
//! either is zero; every quantity with a subscript i below is per tensor):
//!
//! 1. **Alignment-driven momentum** (a). Before the moments move, measure how the new gradient
//!    agrees with the momentum buffer and smooth it:
//!    `c̄ ← ρ c̄ + (1−ρ) cos(g, m)`, then
//!    `β₁,ₜ = β₁max − (β₁max − β₁min) · (1 − clamp(1 + c̄/c_ref, 0, 1))`.
//!    Agreeing (or uncorrelated, c̄ ≥ 0) directions keep the full β₁max; persistent
//!    disagreement (c̄ → −c_ref, the gradient flipping sign against its own average) lowers β₁
//!    linearly to β₁min. *Why:* heavy momentum accelerates along consistent directions but
//!    overshoots and rings in high-curvature ones; there a sign-flipping gradient is exactly what
//!    the cosine sees, and a shorter memory damps the oscillation. Only the negative side moves
//!    β₁, because minibatch noise makes c̄ small and positive almost everywhere and lowering β₁
//!    there only adds noise.
//!
//! 2. **Moments with a varying β₁**: `m ← β₁,ₜ m + (1−β₁,ₜ) g`, `v ← β₂ v + (1−β₂) g²`, and the
//!    bias correction uses the product of the β₁ actually used, `m̂ = m / (1 − Πₛ β₁,ₛ)`
//!    (the weight of the zero initialisation is exactly `Πₛ β₁,ₛ`; with a fixed β₁ this is
//!    Adam's `1 − β₁ᵗ`).
//!
//!    **Nesterov look-ahead** (`nesterov`, default on; Dozat 2016, as NAdam and optax's
//!    `scale_by_adam(nesterov=True)`): the step below uses
//!    `m̂ = β₁,ₜ m / (1 − Πₛβ₁,ₛ · β₁,ₜ) + (1 − β₁,ₜ) g / (1 − Πₛβ₁,ₛ)`, the momentum as it will be
//!    after one more step with this gradient, in place of `m / (1 − Πₛβ₁,ₛ)`. *Why:* it weights
//!    the newest gradient more, so a direction that stops paying off is dropped a step sooner.
//!    Measured (`reports/optim.md`, row `adaptive-no-nesterov`): on sms-spam it trained at every
//!    learning rate of the grid (1e-4 … 1e-2), where the version without it collapsed to the
//!    majority class at 3e-3 and 1e-2, once the hypergradient had raised the rate further.
//!
//! 3. **Variance rectification instead of warmup** (c) (Liu et al. 2020):
//!    `ρ∞ = 2/(1−β₂) − 1`, `ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ)`; when `ρₜ > 5`,
//!    `rₜ = √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ))` and `d = rₜ · m̂ · √(1−β₂ᵗ)/(√v + ε)`,
//!    else (the first 5 steps) `d = 0`: the moments accumulate but nothing moves.
//!    *Why:* the adaptive denominator is estimated from a handful of samples at the start;
//!    rectification shrinks the step while its variance is large, which is what a hand-tuned
//!    warmup approximates, with no warmup length to choose. torch's RAdam instead takes
//!    un-normalised momentum-SGD steps `d = m̂` there (`degenerate_to_sgd = true` here); at a
//!    learning rate sized for normalised steps that is a step of η·‖g‖, which blew up the
//!    ill-conditioned quadratic of `tests/adaptive.rs` (curvature 1000, η = 0.05) in the first
//!    step, so the default follows the official RAdam's `degenerated_to_sgd=False`.
//!
//! 4. **Hypergradient learning-rate multiplier** (b) (Baydin et al. 2018, "Online Learning Rate
//!    Adaptation with Hypergradient Descent"): the derivative of the loss with respect to the
//!    previous step's learning rate is `−⟨gₜ, dₜ₋₁⟩`, so a gradient that still points along the
//!    previous direction says the step was too short, one that points back says it was too
//!    long. The signal is made scale-free in two stages, so that one meta-rate fits every tensor,
//!    loss scale and batch size:
//!    - `hₜ = cos(g, dₜ₋₁)`, where `dₜ₋₁` is the previous step's direction (`m/(√v+ε)` when it
//!      was rectified, `m` before), computed from the state before this step's moment update,
//!      so no extra buffer is kept;
//!    - (default, `hyper_norm`) `h̄ ← ρ h̄ + (1−ρ) hₜ`, `s ← ρ s + (1−ρ) hₜ²`, and the signal is
//!      `h̄/√s`: an Adam-style step on log α. Minibatch noise makes the raw cosine small (a few
//!      hundredths) even when its sign is consistent, so a raw step of `μ·hₜ` moves log α by
//!      only ~0.001 per step and cannot correct a learning rate within a short run; the
//!      normalised signal moves it by up to μ per step when the sign is consistent, and by
//!      a random walk of ~μ·√(1−ρ) per step when it is noise.
//!
//!    Then `log αᵢ ← clamp(log αᵢ + μ · signal, −ln κ, ln κ)`. *Why bounded:* the multiplier may
//!    only correct the learning rate within a factor κ of the one given, so a noisy
//!    hypergradient can never run away, while a learning rate set up to κ× too large or too
//!    small is pulled back towards a working one. *Measured* (`reports/optim.md`, the
//!    `adaptive-v1` rows are the raw-cosine version with μ = 0.02): normalising is what widened
//!    the range of learning rates that train — on sms-spam the raw version stays at the
//!    majority class at 1e-4, the normalised one reaches 99.6% validation accuracy.
//!
//! 5. **Step with decoupled weight decay** (d) (Loshchilov & Hutter 2019):
//!    `θ ← θ − η (αᵢ d + λθ)`, with η the scheduled learning rate. The decay is not scaled by
//!    αᵢ: it regularises at the rate the user chose, whatever the adaptation does.
//!
//! With `beta1_min == betas.0`, `hyper_lr == 0`, `degenerate_to_sgd` and no Nesterov ([`AdaptiveConfig::fixed`])
//! the update is exactly torch's RAdam with decoupled weight decay ([`crate::RAdam`], `decoupled_weight_decay = true`); `tests/adaptive.rs` checks
//! it to 1e-12 in float64.
//!
//! State per parameter (so a checkpoint resumes bit-exactly): `exp_avg`, `exp_avg_sq`, and
//! one-element float64 tensors `cos_ema` (c̄), `beta1` (the β₁ of the last step),
//! `beta1_prod` (Πβ₁), `log_lr_mult` (log α), and `hyper_ema`, `hyper_sq_ema` (h̄, s).
//!
//! # Two implementations of the same update
//!
//! The per-tensor cosines make the update non-elementwise, but only through five sums per tensor
//! (⟨g,m⟩, ‖g‖², ‖m‖², ⟨g,d⟩, ‖d‖²). When every parameter is a CPU float32 / float64 tensor
//! ([`Adaptive::new`], or [`Adaptive::with_layout`] with `flat = true`), the parameters live in
//! flat buffers ([`crate::flat`]) and a step is two passes over each buffer
//! ([`crate::adaptive_kernel`]): one reads g, m, v and returns every tensor's sums, then the
//! per-tensor scalars above are advanced on the host by the same float64 code as below
//! ([`AdaptiveConfig`]'s `advance`), and the second pass updates θ, m and v with them. No tensor op
//! and no host read per tensor; measured at about AdamW's cost (`reports/optim-notes.md`).
//! Otherwise (CUDA, half precision, `flat = false`) the transform [`ScaleByAdaptive`] runs one
//! tensor at a time with tensor ops. The two agree to float rounding (the sums are accumulated
//! in float64 in a different order; `tests/adaptive.rs` checks them against each other), and
//! keep the same state under the same names, so a checkpoint of one loads into the other.

use crate::adaptive_flat::FusedAdaptive;
use crate::chain_optimizer::{check_betas, check_eps, ChainOptimizer};
use crate::error::{OptimError, Result};
use crate::optimizer::Optimizer;
use crate::params::Param;
use crate::state::OptimState;
use crate::transform::ema_sq_;
use crate::transform::{add_decayed_weights, chain, scale_by_learning_rate, Chain, StepCtx, Transform, TransformState};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Hyper-parameters of [`Adaptive`]. The defaults are RAdam's for the moments except β₂ = 0.99
/// (see `betas`), and those of the module docs for the adaptation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveConfig {
    /// (β₁max, β₂): β₁ in agreeing directions, and the second-moment decay (default
    /// (0.9, 0.99): with RAdam's 0.999 the rectifier is still 0.31 at step 200, a far longer
    /// "warmup" than short fine-tuning runs can afford; 0.99 reaches 0.63 at step 100 and 0.82 at
    /// step 200, and measured better, `reports/optim.md`).
    pub betas: (f64, f64),
    /// β₁min: the momentum coefficient under persistent oscillation. Unset (the default), β₁
    /// stays at `betas.0` whatever `betas` is: the momentum adaptation is off. A value below
    /// `betas.0` turns it on (0.5 in [`AdaptiveConfig::momentum_adaptive`]); equal to it, off.
    pub beta1_min: Option<f64>,
    /// ρ: decay of the moving average of cos(g, m) (default 0.9, about ten steps of memory).
    pub cos_decay: f64,
    /// c_ref: smoothed cosine at which β₁ reaches β₁min (default 0.3).
    pub cos_ref: f64,
    /// μ: meta learning rate of the log learning-rate multiplier: per unit of normalised
    /// signal with `hyper_norm`, per unit cosine without (default 0.05; 0 turns the
    /// hypergradient off).
    pub hyper_lr: f64,
    /// κ: the multiplier stays in [1/κ, κ] (default 10).
    pub max_lr_mult: f64,
    /// ε, added to √v (as in RAdam; default 1e-8).
    pub eps: f64,
    /// While the variance is unrectifiable (ρₜ ≤ 5), step with momentum SGD as torch's RAdam
    /// (`true`) or not at all (`false`, default; see the module docs).
    pub degenerate_to_sgd: bool,
    /// Nesterov momentum (Dozat 2016, as optax's `scale_by_adam(nesterov=True)`): the step uses
    /// `β₁,ₜ m̂' + (1−β₁,ₜ) ĝ`, the momentum looked one step ahead, instead of `m̂` (default true;
    /// it widened the range of learning rates that train, `reports/optim.md`).
    pub nesterov: bool,
    /// Normalise the hypergradient signal by its running RMS before it moves log α (an
    /// Adam-style step on log α, with the moving averages of `cos_decay`): a consistent signal
    /// then moves log α by about μ per step whatever its size (default true; false is the
    /// first design, `adaptive-v1` in `reports/optim.md`).
    pub hyper_norm: bool,
    /// How the smoothed cosine c̄ sets β₁ (default [`MomentumRule::Oscillation`]).
    pub momentum_rule: MomentumRule,
}

/// How the smoothed alignment c̄ = EMA(cos(g, m)) sets β₁ (step 1 of the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MomentumRule {
    /// β₁max unless the gradient persistently opposes the momentum: c̄ ≤ −c_ref gives β₁min.
    #[default]
    Oscillation,
    /// β₁ must be earned by agreement: β₁min at c̄ ≤ 0 (noise or oscillation), rising
    /// linearly to β₁max at c̄ ≥ c_ref.
    Agreement,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.99), beta1_min: None, cos_decay: 0.9, cos_ref: 0.3, hyper_lr: 0.05, max_lr_mult: 10.0, eps: 1e-8, degenerate_to_sgd: false, nesterov: true, hyper_norm: true, momentum_rule: MomentumRule::Oscillation }
    }
}

impl AdaptiveConfig {
    /// The defaults up to the fourteenth session: the same, with β₁ adapting between 0.9 and
    /// β₁min = 0.5 (step 1 of the module docs). `reports/optim.md` and the earlier sections of
    /// `reports/optim-notes.md` measured this configuration.
    pub fn momentum_adaptive() -> Self {
        Self { beta1_min: Some(0.5), ..Default::default() }
    }

    /// Whether β₁ adapts (step 1): β₁min set, and below β₁max.
    pub fn adapts_momentum(&self) -> bool {
        self.beta1_min.is_some_and(|b| b < self.betas.0)
    }

    /// β₁min in force: the one set, else β₁max (no adaptation).
    pub fn beta1_floor(&self) -> f64 {
        self.beta1_min.unwrap_or(self.betas.0)
    }

    /// Both adaptations off and torch's early momentum-SGD steps: exactly RAdam with decoupled
    /// weight decay.
    pub fn fixed(betas: (f64, f64), eps: f64) -> Self {
        Self { betas, beta1_min: None, hyper_lr: 0.0, eps, degenerate_to_sgd: true, nesterov: false, ..Default::default() }
    }

    /// The chain: `scale_by_adaptive → add_decayed_weights → scale_by_learning_rate`.
    pub fn chain(&self) -> Chain {
        chain(vec![Box::new(ScaleByAdaptive { config: self.clone() }), add_decayed_weights(), scale_by_learning_rate()])
    }

    fn validate(&self) -> Result<()> {
        check_betas("adaptive", self.betas)?;
        check_eps("adaptive", self.eps)?;
        let bad = |m: String| Err(OptimError::Config(m));
        if let Some(b) = self.beta1_min.filter(|b| !(0.0..=self.betas.0).contains(b)) {
            return bad(format!("adaptive beta1_min must be in [0, betas.0 = {}], got {b}", self.betas.0));
        }
        if !(0.0..1.0).contains(&self.cos_decay) {
            return bad(format!("adaptive cos_decay must be in [0, 1), got {}", self.cos_decay));
        }
        if !(self.cos_ref > 0.0 && self.cos_ref <= 1.0) {
            return bad(format!("adaptive cos_ref must be in (0, 1], got {}", self.cos_ref));
        }
        if !(self.hyper_lr >= 0.0 && self.hyper_lr.is_finite()) {
            return bad(format!("adaptive hyper_lr must be >= 0, got {}", self.hyper_lr));
        }
        if !(self.max_lr_mult >= 1.0 && self.max_lr_mult.is_finite()) {
            return bad(format!("adaptive max_lr_mult must be >= 1, got {}", self.max_lr_mult));
        }
        Ok(())
    }

    /// β₁ for a smoothed cosine c̄ (step 1 of the module docs).
    pub fn beta1_for(&self, cos_ema: f64) -> f64 {
        let keep = match self.momentum_rule {
            MomentumRule::Oscillation => (1.0 + cos_ema / self.cos_ref).clamp(0.0, 1.0),
            MomentumRule::Agreement => (cos_ema / self.cos_ref).clamp(0.0, 1.0),
        };
        self.betas.0 - (self.betas.0 - self.beta1_floor()) * (1.0 - keep)
    }
}

/// The adaptive scaling (steps 1–4 of the module docs); per tensor, not elementwise.
#[derive(Debug, Clone)]
pub struct ScaleByAdaptive {
    /// The hyper-parameters.
    pub config: AdaptiveConfig,
}

/// State names of the per-tensor scalars, in the order of the arrays [`AdaptiveConfig::advance`]
/// works on.
pub(crate) const SCALARS: [&str; 6] = ["cos_ema", "beta1", "beta1_prod", "log_lr_mult", "hyper_ema", "hyper_sq_ema"];

fn scalar_slot(v: f64) -> Tensor {
    Tensor::from_slice(&[v]).to_device(Device::Cpu)
}

fn get(t: &Tensor) -> Result<f64> {
    Ok(t.f_double_value(&[0])?)
}

fn set(t: &Tensor, v: f64) -> Result<()> {
    let _ = t.shallow_clone().f_fill_(v)?;
    Ok(())
}

/// cos(a, b) accumulated in float64; 0 when either is zero.
fn cosine(a: &Tensor, b: &Tensor) -> Result<f64> {
    let dot = a.f_mul(b)?.f_sum(Kind::Double)?.f_double_value(&[])?;
    let na = a.f_mul(a)?.f_sum(Kind::Double)?.f_double_value(&[])?;
    let nb = b.f_mul(b)?.f_sum(Kind::Double)?.f_double_value(&[])?;
    Ok(cos_from(dot, na, nb))
}

/// The cosine from ⟨a, b⟩, ‖a‖² and ‖b‖²: 0 when either norm is zero or the result is not
/// finite, else clamped to [−1, 1].
pub(crate) fn cos_from(dot: f64, na: f64, nb: f64) -> f64 {
    let c = if na > 0.0 && nb > 0.0 { dot / (na.sqrt() * nb.sqrt()) } else { 0.0 };
    if c.is_finite() {
        c.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// RAdam's ρₜ for step `t` (`None` at t = 0).
pub(crate) fn rho(b2: f64, t: f64) -> Option<(f64, f64)> {
    if t < 1.0 {
        return None;
    }
    let rho_inf = 2.0 / (1.0 - b2) - 1.0;
    Some((rho_inf, rho_inf - 2.0 * t * b2.powf(t) / (1.0 - b2.powf(t))))
}

/// The rectifier rₜ (step 3), defined for ρₜ > 4.
pub(crate) fn rectifier(rho_inf: f64, rho_t: f64) -> f64 {
    ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt()
}

impl AdaptiveConfig {
    /// The per-tensor scalars ([`SCALARS`]) before the first step.
    pub(crate) fn scalar_init(&self) -> [f64; 6] {
        [0.0, self.betas.0, 1.0, 0.0, 0.0, 0.0]
    }

    /// Which cosines step `t` reads: (cos(g, m), cos(g, d_prev)).
    pub(crate) fn needs(&self, t: f64, prev_rectified: bool) -> (bool, bool) {
        if t <= 1.0 {
            return (false, false);
        }
        let adapt_lr = self.hyper_lr > 0.0;
        (self.adapts_momentum() || (adapt_lr && !prev_rectified && self.degenerate_to_sgd), adapt_lr && prev_rectified)
    }

    /// Steps 1 and 4, and the β₁ product of step 2, for one tensor at step `t`: advances its
    /// scalars `s` (ordered as [`SCALARS`]) and returns (β₁, Πβ₁, log α) for its update.
    /// `cos_gm` and `cos_gd` give cos(g, m) and cos(g, d_prev) of the state before this step;
    /// each is called only when [`AdaptiveConfig::needs`] says the step reads it.
    pub(crate) fn advance(&self, s: &mut [f64; 6], t: f64, prev_rectified: bool, cos_gm: impl FnOnce() -> Result<f64>, cos_gd: impl FnOnce() -> Result<f64>) -> Result<(f64, f64, f64)> {
        let [cos_ema, beta1, beta1_prod, log_mult, hyper_ema, hyper_sq_ema] = s;
        let ln_kappa = self.max_lr_mult.ln();
        let (need_gm, _) = self.needs(t, prev_rectified);
        let gm = if need_gm { Some(cos_gm()?) } else { None };
        let mut b1 = *beta1;
        let mut lm = *log_mult;
        if t > 1.0 {
            if self.adapts_momentum() {
                let ce = self.cos_decay * *cos_ema + (1.0 - self.cos_decay) * gm.unwrap_or(0.0);
                *cos_ema = ce;
                b1 = self.beta1_for(ce);
            }
            if self.hyper_lr > 0.0 {
                let h = if prev_rectified {
                    cos_gd()?
                } else if self.degenerate_to_sgd {
                    gm.unwrap_or(0.0)
                } else {
                    0.0 // no step was taken
                };
                let signal = if self.hyper_norm {
                    let mean = self.cos_decay * *hyper_ema + (1.0 - self.cos_decay) * h;
                    let sq = self.cos_decay * *hyper_sq_ema + (1.0 - self.cos_decay) * h * h;
                    *hyper_ema = mean;
                    *hyper_sq_ema = sq;
                    if sq > 0.0 {
                        mean / sq.sqrt()
                    } else {
                        0.0
                    }
                } else {
                    h
                };
                lm = (lm + self.hyper_lr * signal).clamp(-ln_kappa, ln_kappa);
                *log_mult = lm;
            }
        }
        *beta1 = b1;
        let prod = *beta1_prod * b1;
        *beta1_prod = prod;
        Ok((b1, prod, lm))
    }
}

impl Transform for ScaleByAdaptive {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        let mut s = TransformState::zeros(&["exp_avg", "exp_avg_sq"], params)?;
        let init = self.config.scalar_init();
        for (name, v) in SCALARS.iter().zip(init) {
            s.buffers.push((name.to_string(), params.iter().map(|_| scalar_slot(v)).collect()));
        }
        Ok(s)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let c = &self.config;
        let (_, b2) = c.betas;
        let t = ctx.step as f64;
        let bc2 = 1.0 - b2.powf(t);
        let (rho_inf, rho_t) = rho(b2, t).ok_or_else(|| OptimError::State("adaptive: step count must start at 1".into()))?;
        let prev_rectified = rho(b2, t - 1.0).is_some_and(|(_, r)| r > 5.0);
        let scalars: Vec<Vec<Tensor>> = SCALARS.iter().map(|n| Ok(state.buf(n)?.iter().map(Tensor::shallow_clone).collect())).collect::<Result<_>>()?;
        let (ms, vs) = state.buf2("exp_avg", "exp_avg_sq")?;
        for (i, u) in updates.iter_mut().enumerate() {
            let (m, v) = (&mut ms[i], &mut vs[i]);
            // (1), (4) and the β₁ product of (2): read the alignment of g with the state left by
            // the previous step, and advance this tensor's scalars.
            let mut s = [0.0; 6];
            for (x, slot) in s.iter_mut().zip(&scalars) {
                *x = get(&slot[i])?;
            }
            let gd = || {
                let mut d = v.f_sqrt()?;
                let _ = d.f_add_scalar_(c.eps)?;
                cosine(u, &m.f_div(&d)?)
            };
            let (b1, prod, lm) = c.advance(&mut s, t, prev_rectified, || cosine(u, m), gd)?;
            for (x, slot) in s.iter().zip(&scalars) {
                set(&slot[i], *x)?;
            }
            // (2): moments, bias correction by the product of the β₁ used.
            let _ = m.f_lerp_(&*u, 1.0 - b1)?;
            ema_sq_(v, u, b2)?;
            let m_hat = if c.nesterov {
                // β₁ m / (1 − Πβ₁·β₁) + (1 − β₁) g / (1 − Πβ₁): the next step's bias-corrected
                // momentum with this gradient, assuming β₁ stays.
                m.f_mul_scalar(b1 / (1.0 - prod * b1))?.f_add(&u.f_mul_scalar((1.0 - b1) / (1.0 - prod))?)?
            } else {
                m.f_div_scalar(1.0 - prod)?
            };
            // (3): rectified adaptive step; while ρₜ ≤ 5, none or momentum SGD (as RAdam).
            let d = if rho_t > 5.0 {
                let rect = rectifier(rho_inf, rho_t);
                let mut den = v.f_sqrt()?;
                let _ = den.f_add_scalar_(c.eps)?;
                let adaptive = den.f_reciprocal()?.f_mul_scalar(bc2.sqrt())?;
                m_hat.f_mul(&adaptive)?.f_mul_scalar(rect)?
            } else if c.degenerate_to_sgd {
                m_hat
            } else {
                m_hat.f_zeros_like()?
            };
            *u = if lm == 0.0 { d } else { d.f_mul_scalar(lm.exp())? };
        }
        Ok(())
    }

    fn elementwise(&self) -> bool {
        false
    }
}

/// The adaptive optimiser (see the [module docs](self) for the update rule).
///
/// ```
/// use whetstone_optim::{named_params, Adaptive, AdaptiveConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Adaptive::new(named_params(&vs, 0.01, NO_DECAY), AdaptiveConfig::default())?;
/// assert!(opt.is_fused()); // CPU float32: flat buffers and the two-pass kernel
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?; // no warmup needed: rectification handles the first steps
/// let (beta1, lr_mult) = opt.adaptation("weight").unwrap();
/// assert!((0.5..=0.9).contains(&beta1) && (0.1..=10.0).contains(&lr_mult));
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
///
/// In a recipe: `kind = "adaptive"` with the fields of [`AdaptiveConfig`] next to it.
#[derive(Debug)]
pub struct Adaptive(Layout);

#[derive(Debug)]
enum Layout {
    /// [`ScaleByAdaptive`] one tensor at a time.
    PerTensor(ChainOptimizer),
    /// Flat buffers and the two-pass CPU kernel.
    Fused(FusedAdaptive),
}

impl Adaptive {
    /// The adaptive optimiser over `params`: fused on flat buffers when every parameter is a
    /// CPU float32 / float64 tensor, else one tensor at a time.
    pub fn new(params: Vec<Param>, config: AdaptiveConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }

    /// As [`Adaptive::new`]; `flat = false` forces the per-tensor tensor-op implementation
    /// (the one CUDA and half precision always use).
    pub fn with_layout(params: Vec<Param>, config: AdaptiveConfig, flat: bool) -> Result<Self> {
        config.validate()?;
        if flat && FusedAdaptive::supports(&params) {
            return Ok(Self(Layout::Fused(FusedAdaptive::new(params, config)?)));
        }
        Ok(Self(Layout::PerTensor(ChainOptimizer::new(params, config.chain(), false)?)))
    }

    /// Whether the update runs fused on flat buffers.
    pub fn is_fused(&self) -> bool {
        matches!(self.0, Layout::Fused(_))
    }

    /// The current (β₁, learning-rate multiplier α) of the parameter `name` (for diagnostics;
    /// per tensor it reads a copy of the whole state).
    pub fn adaptation(&self, name: &str) -> Option<(f64, f64)> {
        match &self.0 {
            Layout::Fused(f) => f.adaptation(name),
            Layout::PerTensor(c) => {
                let s = c.state();
                let b1 = s.find(&format!("{name}.beta1")).ok()?.f_double_value(&[0]).ok()?;
                let lm = s.find(&format!("{name}.log_lr_mult")).ok()?.f_double_value(&[0]).ok()?;
                Some((b1, lm.exp()))
            }
        }
    }
}

macro_rules! each_layout {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Layout::PerTensor($o) => $e,
            Layout::Fused($o) => $e,
        }
    };
}

impl Optimizer for Adaptive {
    fn step(&mut self, lr: f64) -> Result<()> {
        each_layout!(&mut self.0, o => o.step(lr))
    }
    fn params(&self) -> Vec<&Tensor> {
        each_layout!(&self.0, o => o.params())
    }
    fn zero_grad(&mut self) {
        each_layout!(&mut self.0, o => o.zero_grad())
    }
    fn grad_buffers(&self) -> Result<Vec<Tensor>> {
        each_layout!(&self.0, o => o.grad_buffers())
    }
    fn state(&self) -> OptimState {
        each_layout!(&self.0, o => o.state())
    }
    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        each_layout!(&mut self.0, o => o.load_state(state))
    }
}
