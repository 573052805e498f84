//! An optimiser wrapper that keeps pruned weights at zero, and optionally prunes gradually
//! (magnitude or movement scores on the cubic schedule).

use super::magnitude::{top_score_masks, Scope};
use super::mask::{apply_bound, MaskSet, MASK_PREFIX};
use super::schedule::CubicSchedule;
use crate::error::{CompressError, Result};
use tch::{Kind, Tensor};
use whetstone_optim::{OptimError, OptimState, Optimizer};

/// Prefix of movement scores (and of the Fisher criterion's squared gradients) in optimiser
/// state (`movement_score.{param}`).
pub const SCORE_PREFIX: &str = "movement_score.";
/// Name of the wrapper's step counter in optimiser state.
const STEP_KEY: &str = "masked.step";

/// What ranks weights when the masks are recomputed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Criterion {
    /// |W| (Zhu & Gupta 2017).
    Magnitude,
    /// Hard movement pruning (Sanh et al. 2020, "Movement Pruning"): keep the top of the
    /// accumulated score S = −Σₜ W·∂L/∂W, i.e. weights moving away from zero.
    MovementHard,
    /// Soft movement pruning: keep weights whose accumulated score exceeds `threshold`
    /// (the sparsity then follows from training rather than the schedule).
    MovementSoft {
        /// Score threshold τ.
        threshold: f64,
    },
    /// Second-order (oBERT-style, Kurtić et al. 2022) saliency with a diagonal empirical
    /// Fisher: keep the top of w²·F/2, where F accumulates the squared gradients ∂L/∂W of the
    /// steps since the previous mask update (squared mini-batch gradients, a cheap stand-in
    /// for oBERT's per-example ones; the window restarts at every update).
    Fisher,
}

impl Criterion {
    /// Whether the criterion ranks by scores accumulated from gradients.
    fn accumulates(&self) -> bool {
        !matches!(self, Criterion::Magnitude)
    }
}

/// Gradual pruning inside [`Masked`]: recompute the masks on `schedule`'s update steps.
#[derive(Debug, Clone, Copy)]
pub struct GradualPruning {
    /// How weights are ranked.
    pub criterion: Criterion,
    /// When and to which sparsity.
    pub schedule: CubicSchedule,
    /// Global or per-layer ranking.
    pub scope: Scope,
}

/// Wraps an optimiser so that masks are re-applied (in place) after every step; with
/// [`GradualPruning`] the masks are also recomputed on the schedule, from magnitudes or from
/// movement scores accumulated before each step.
///
/// The masks are also re-applied after [`Optimizer::eval_mode`] and [`Optimizer::train_mode`]
/// and after [`Optimizer::load_state`]: an optimiser whose evaluation weights differ from its
/// training point (schedule-free AdamW swaps in its average) would otherwise bring pruned
/// weights back for validation, into the best model, or into the next forward pass.
///
/// Its [`Optimizer::state`] holds the inner state plus the masks (`mask.{param}`), movement
/// scores (`movement_score.{param}`) and its step count, so a trainer checkpoint carries them and
/// [`Optimizer::load_state`] restores them.
///
/// ```
/// use whetstone_compress::{magnitude_masks, Masked, ParamSelector, Scope};
/// use whetstone_optim::{named_params, AdamW, AdamWConfig, Optimizer, NO_DECAY};
/// use tch::{nn, Device, Kind};
/// let vs = nn::VarStore::new(Device::Cpu);
/// let lin = nn::linear(vs.root() / "dense", 8, 4, Default::default());
/// let opt = AdamW::new(named_params(&vs, 0.0, NO_DECAY), AdamWConfig::default())?;
/// let selected = ParamSelector::default().select_vs(&vs)?;
/// let masks = magnitude_masks(&selected, 0.75, Scope::Global)?;
/// let mut opt = Masked::new(opt, masks, &vs)?;
/// lin.ws.sum(Kind::Float).backward();
/// opt.step(1e-2)?;
/// assert_eq!(lin.ws.eq(0.0).sum(Kind::Int64).int64_value(&[]), 24);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Masked<O: Optimizer> {
    inner: O,
    /// (name, parameter, mask) with the mask on the parameter's device and kind.
    bound: Vec<(String, Tensor, Tensor)>,
    /// Movement scores, one per bound parameter (empty unless a movement criterion is used).
    scores: Vec<Tensor>,
    gradual: Option<GradualPruning>,
    step: u64,
}

impl<O: Optimizer> Masked<O> {
    /// Keep `masks` applied to the variables of `vs` (applied once now).
    pub fn new(inner: O, masks: MaskSet, vs: &tch::nn::VarStore) -> Result<Self> {
        let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        Self::with_params(inner, masks, &named)
    }

    /// As [`Masked::new`] over explicit named parameters (e.g. a model's `named_parameters()`).
    pub fn with_params(inner: O, masks: MaskSet, named: &[(String, Tensor)]) -> Result<Self> {
        let bound = masks.bind(named)?;
        apply_bound(&bound)?;
        Ok(Self { inner, bound, scores: Vec::new(), gradual: None, step: 0 })
    }

    /// Prune `params` gradually: start from all-ones masks over them and recompute the masks on
    /// `pruning.schedule`'s update steps.
    pub fn gradual(inner: O, params: &[(String, Tensor)], pruning: GradualPruning) -> Result<Self> {
        pruning.schedule.validate()?;
        let mut ones = MaskSet::default();
        for (n, p) in params {
            ones.insert(n.clone(), p.f_ones_like()?)?;
        }
        let mut me = Self::with_params(inner, ones, params)?;
        if pruning.criterion.accumulates() {
            me.scores = me.bound.iter().map(|(_, p, _)| p.f_zeros_like()).collect::<std::result::Result<_, _>>()?;
        }
        me.gradual = Some(pruning);
        // Movement and Fisher scores are all zero before the first step (soft movement would
        // keep none of the weights, and they could never move again): only magnitude masks are
        // computed at step 0, the others from the first update step after it.
        if pruning.schedule.is_update_step(0) && pruning.criterion == Criterion::Magnitude {
            me.recompute(0)?;
        }
        Ok(me)
    }

    /// The current masks.
    pub fn masks(&self) -> Result<MaskSet> {
        let mut set = MaskSet::default();
        for (n, _, m) in &self.bound {
            set.insert(n.clone(), m.shallow_clone())?;
        }
        Ok(set)
    }

    /// The wrapped optimiser.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// Fraction of masked-out weights.
    pub fn sparsity(&self) -> Result<f64> {
        let (mut z, mut n) = (0i64, 0i64);
        for (_, _, m) in &self.bound {
            z += m.f_eq(0.0)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
            n += m.numel() as i64;
        }
        Ok(if n == 0 { 0.0 } else { z as f64 / n as f64 })
    }

    fn accumulate_scores(&mut self) -> Result<()> {
        let fisher = self.gradual.is_some_and(|g| g.criterion == Criterion::Fisher);
        tch::no_grad(|| -> Result<()> {
            for ((_, p, _), s) in self.bound.iter().zip(self.scores.iter_mut()) {
                let g = p.grad();
                if g.defined() {
                    let _ = if fisher { s.f_add_(&g.f_square()?)? } else { s.f_sub_(&p.f_mul(&g)?)? };
                }
            }
            Ok(())
        })
    }

    fn recompute(&mut self, step: u64) -> Result<()> {
        let Some(pruning) = self.gradual else { return Ok(()) };
        let sparsity = pruning.schedule.sparsity_at(step);
        let scores: Vec<(String, Tensor)> = match pruning.criterion {
            Criterion::Magnitude => self.bound.iter().map(|(n, p, _)| Ok((n.clone(), p.f_abs()?))).collect::<Result<_>>()?,
            // w²·F/2 (the constant does not change the ranking).
            Criterion::Fisher => self.bound.iter().zip(&self.scores).map(|((n, p, _), f)| Ok((n.clone(), p.f_square()?.f_mul(f)?))).collect::<Result<_>>()?,
            _ => self.bound.iter().zip(&self.scores).map(|((n, _, _), s)| (n.clone(), s.shallow_clone())).collect(),
        };
        let masks = match pruning.criterion {
            Criterion::MovementSoft { threshold } => {
                let mut set = MaskSet::default();
                for (n, s) in &scores {
                    set.insert(n.clone(), s.f_gt(threshold)?)?;
                }
                set
            }
            _ => top_score_masks(&scores, sparsity, pruning.scope)?,
        };
        tch::no_grad(|| -> Result<()> {
            for (n, _, m) in &mut self.bound {
                m.f_copy_(masks.get(n).ok_or_else(|| CompressError::Masks(format!("no new mask for `{n}`")))?)?;
            }
            // The Fisher window restarts at every mask update.
            if pruning.criterion == Criterion::Fisher {
                for s in &mut self.scores {
                    let _ = s.f_zero_()?;
                }
            }
            Ok(())
        })
    }
}

fn to_optim(e: CompressError) -> OptimError {
    match e {
        CompressError::Optim(e) => e,
        CompressError::Torch(e) => OptimError::Torch(e),
        other => OptimError::State(other.to_string()),
    }
}

impl<O: Optimizer> Optimizer for Masked<O> {
    fn step(&mut self, lr: f64) -> whetstone_optim::Result<()> {
        if !self.scores.is_empty() {
            self.accumulate_scores().map_err(to_optim)?;
        }
        self.inner.step(lr)?;
        self.step += 1;
        if self.gradual.is_some_and(|g| g.schedule.is_update_step(self.step)) {
            self.recompute(self.step).map_err(to_optim)?;
        }
        apply_bound(&self.bound).map_err(to_optim)
    }
    fn state(&self) -> OptimState {
        let mut s = self.inner.state();
        for (n, _, m) in &self.bound {
            s.tensors.push((format!("{MASK_PREFIX}{n}"), m.to_device(tch::Device::Cpu).copy()));
        }
        for ((n, _, _), sc) in self.bound.iter().zip(&self.scores) {
            s.tensors.push((format!("{SCORE_PREFIX}{n}"), sc.to_device(tch::Device::Cpu).copy()));
        }
        s.tensors.push((STEP_KEY.into(), Tensor::from_slice(&[self.step as f64])));
        s
    }
    fn load_state(&mut self, state: &OptimState) -> whetstone_optim::Result<()> {
        self.inner.load_state(state)?;
        tch::no_grad(|| -> whetstone_optim::Result<()> {
            for (n, _, m) in &mut self.bound {
                m.f_copy_(&state.take(&format!("{MASK_PREFIX}{n}"), m)?)?;
            }
            for ((n, _, _), sc) in self.bound.iter().zip(self.scores.iter_mut()) {
                sc.f_copy_(&state.take(&format!("{SCORE_PREFIX}{n}"), sc)?)?;
            }
            Ok(())
        })?;
        self.step = state.find(STEP_KEY)?.f_double_value(&[0])? as u64;
        apply_bound(&self.bound).map_err(to_optim)
    }
    fn eval_mode(&mut self) -> whetstone_optim::Result<()> {
        self.inner.eval_mode()?;
        apply_bound(&self.bound).map_err(to_optim)
    }
    fn train_mode(&mut self) -> whetstone_optim::Result<()> {
        self.inner.train_mode()?;
        apply_bound(&self.bound).map_err(to_optim)
    }
    whetstone_optim::forward_to_inner!(inner; params, begin_step, zero_grad, skipped_steps, grad_buffers);
}
