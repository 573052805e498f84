//! Composable gradient transformations, as in optax: each is an `init` that makes explicit
//! state and an `update` that turns gradients into updates. [`chain`] composes them, and
//! [`crate::ChainOptimizer`] runs a chain as an [`crate::Optimizer`].
//!
//! An update pipeline starts from the gradients and ends with [`scale_by_learning_rate`], whose
//! output is *added* to the parameters. AdamW, for instance, is
//! `chain([scale_by_adam(..), add_decayed_weights(), scale_by_learning_rate()])`:
//! `θ ← θ − η(m̂/(√v̂+ε) + λθ)`, the same as torch's `θ(1−ηλ) − η m̂/(√v̂+ε)`.
//!
//! The transforms work on *slots*: one tensor per parameter, or one flat buffer per group of
//! parameters when [`Transform::elementwise`] holds for the whole chain (see
//! [`crate::ChainOptimizer`]). Buffers must be updated in place, because a step over a subset
//! of slots (parameters without a gradient are skipped, as torch skips them) hands the
//! transform shallow copies.
//!
//! ```
//! use whetstone_optim::transform::{chain, scale_by_adam, add_decayed_weights, scale_by_learning_rate, clip_by_value};
//! let my_adamw = chain(vec![clip_by_value(1.0), scale_by_adam((0.9, 0.999), 1e-8, false), add_decayed_weights(), scale_by_learning_rate()]);
//! # let _ = my_adamw;
//! ```

mod clip;
mod decay;
mod moments;
mod momentum;

pub use clip::{clip_by_global_norm, clip_by_value, ClipByGlobalNorm, ClipByValue};
pub use decay::{add_decayed_weights, add_l2_decay, scale_by_learning_rate, scale_by_trust_ratio, AddDecayedWeights, AddL2Decay, ScaleByLearningRate, ScaleByTrustRatio};
pub use moments::{scale_by_adam, scale_by_belief, scale_by_rms, ScaleByAdam, ScaleByBelief, ScaleByRms};
pub use momentum::{scale_by_sign_momentum, trace, ScaleBySignMomentum, Trace};

use crate::error::{OptimError, Result};
use tch::Tensor;

/// What a transform may read besides the gradients.
#[derive(Debug)]
pub struct StepCtx<'a> {
    /// The parameters, one per slot (before this step's update).
    pub params: &'a [Tensor],
    /// Weight decay of each slot (0 where it is masked off, e.g. biases).
    pub weight_decay: &'a [f64],
    /// Learning rate of this step (already multiplied by the group's scale).
    pub lr: f64,
    /// 1-based index of this update.
    pub step: u64,
}

/// Explicit state of one transform: named per-slot buffers and named scalars.
#[derive(Debug, Default)]
pub struct TransformState {
    /// `(buffer name, one tensor per slot)`; e.g. `("exp_avg", [..])`. Saved as `"{param}.{name}"`.
    pub buffers: Vec<(String, Vec<Tensor>)>,
    /// Scalars carried between steps; saved as one-element float64 tensors.
    pub scalars: Vec<(String, f64)>,
}

impl TransformState {
    /// A state with one zero-filled buffer per name, shaped like each slot.
    pub fn zeros(names: &[&str], params: &[Tensor]) -> Result<Self> {
        let mut buffers = Vec::new();
        for n in names {
            buffers.push((n.to_string(), params.iter().map(|p| p.f_zeros_like()).collect::<std::result::Result<Vec<_>, _>>()?));
        }
        Ok(Self { buffers, scalars: Vec::new() })
    }

    /// The buffers called `name` (one per slot).
    pub fn buf(&mut self, name: &str) -> Result<&mut Vec<Tensor>> {
        self.buffers.iter_mut().find(|(n, _)| n == name).map(|(_, b)| b).ok_or_else(|| OptimError::State(format!("transform buffer `{name}` is missing")))
    }

    /// Two buffer lists at once.
    pub fn buf2(&mut self, a: &str, b: &str) -> Result<(&mut Vec<Tensor>, &mut Vec<Tensor>)> {
        let ia = self.index(a)?;
        let ib = self.index(b)?;
        if ia == ib {
            return Err(OptimError::State(format!("buffer `{a}` asked for twice")));
        }
        let (lo, hi) = (ia.min(ib), ia.max(ib));
        let (left, right) = self.buffers.split_at_mut(hi);
        let (x, y) = (&mut left[lo].1, &mut right[0].1);
        Ok(if ia < ib { (x, y) } else { (y, x) })
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.buffers.iter().position(|(n, _)| n == name).ok_or_else(|| OptimError::State(format!("transform buffer `{name}` is missing")))
    }

    /// The scalar `name`.
    pub fn scalar(&mut self, name: &str) -> Result<&mut f64> {
        self.scalars.iter_mut().find(|(n, _)| n == name).map(|(_, v)| v).ok_or_else(|| OptimError::State(format!("transform scalar `{name}` is missing")))
    }

    /// The same state restricted to the slots in `keep` (buffers are shallow copies, so in-place
    /// updates reach the originals).
    pub fn subset(&self, keep: &[usize]) -> Self {
        let buffers = self.buffers.iter().map(|(n, b)| (n.clone(), keep.iter().map(|&i| b[i].shallow_clone()).collect())).collect();
        Self { buffers, scalars: self.scalars.clone() }
    }
}

/// One gradient transformation: state in, updates in place.
pub trait Transform: std::fmt::Debug + Send {
    /// Make the state for `params` (one tensor per slot).
    fn init(&self, params: &[Tensor]) -> Result<TransformState>;
    /// Turn `updates` (the gradients, or the previous transform's output) into new updates.
    /// Updates are replaced by new tensors, never changed in place (they may alias a state
    /// buffer or a gradient); state buffers are changed in place.
    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()>;
    /// True when the transform treats every element alike, so slots may be flat buffers of
    /// many parameters. Per-tensor norms (trust ratio, Adafactor) make it false.
    fn elementwise(&self) -> bool {
        true
    }
}

/// Transforms applied one after another; the state is the list of their states.
#[derive(Debug)]
pub struct Chain {
    /// The parts, in order.
    pub parts: Vec<Box<dyn Transform>>,
}

/// Compose transforms left to right.
pub fn chain(parts: Vec<Box<dyn Transform>>) -> Chain {
    Chain { parts }
}

impl Chain {
    /// State of every part.
    pub fn init(&self, params: &[Tensor]) -> Result<Vec<TransformState>> {
        let states = self.parts.iter().map(|t| t.init(params)).collect::<Result<Vec<_>>>()?;
        let mut names: Vec<&str> = states.iter().flat_map(|s| s.buffers.iter().map(|(n, _)| n.as_str()).chain(s.scalars.iter().map(|(n, _)| n.as_str()))).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(OptimError::Config(format!("two transforms of the chain both keep state `{}`", w[0])));
        }
        Ok(states)
    }

    /// Run every part.
    pub fn update(&self, updates: &mut [Tensor], states: &mut [TransformState], ctx: &StepCtx) -> Result<()> {
        for (t, s) in self.parts.iter().zip(states.iter_mut()) {
            t.update(updates, s, ctx)?;
        }
        Ok(())
    }

    /// Whether every part is elementwise.
    pub fn elementwise(&self) -> bool {
        self.parts.iter().all(|t| t.elementwise())
    }
}

pub(crate) use moments::ema_sq_;

/// A named scalar for [`TransformState::scalars`].
pub(crate) fn scalar_state(name: &str, value: f64) -> (String, f64) {
    (name.to_string(), value)
}
