//! Freezing parameters, for the whole run or on a schedule.
//!
//! A frozen parameter must stay bit-identical, which a zero gradient alone does not give:
//! decoupled weight decay and momentum left from earlier steps still move it. So freezing has
//! two parts. The parameter stops requiring a gradient, which also saves its backward pass;
//! and [`Freezing`] puts its value back after every update, whatever the wrapped optimiser
//! (flat buffers included) did to it. This is optax's `multi_transform` with `set_to_zero`
//! for the frozen labels, as a wrapper around any [`Optimizer`].

use crate::error::{Result, TrainError};
use std::collections::BTreeMap;
use tch::{nn::VarStore, Kind, Tensor};
use whetstone_optim::groups::layer_index;
use whetstone_optim::{name_matches, OptimState, Optimizer};

/// Name of the [`Freezing`] step counter in the optimiser state.
const STEP_STATE: &str = "freezing.step";

/// Make every variable of `vs` matching one of `patterns` (see [`name_matches`]) stop requiring
/// a gradient. Call it before building the optimiser, which then never sees those variables
/// (no update, no weight decay, no state). Returns the frozen names, sorted.
///
/// A pattern that matches nothing is an error (a typo would otherwise freeze nothing), and so
/// is freezing every parameter.
///
/// ```
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let _emb = tch::nn::embedding(vs.root() / "embeddings", 10, 4, Default::default());
/// let _lin = tch::nn::linear(vs.root() / "classifier", 4, 2, Default::default());
/// let frozen = whetstone_train::freeze(&vs, &["embeddings".to_string()])?;
/// assert_eq!(frozen, ["embeddings.weight"]);
/// assert!(!vs.variables()["embeddings.weight"].requires_grad());
/// assert!(whetstone_train::freeze(&vs, &["embedings".to_string()]).is_err());
/// # Ok::<(), whetstone_train::TrainError>(())
/// ```
pub fn freeze(vs: &VarStore, patterns: &[String]) -> Result<Vec<String>> {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    if let Some(p) = patterns.iter().find(|p| !vars.keys().any(|n| name_matches(p, n))) {
        let examples: Vec<&str> = vars.keys().map(String::as_str).take(6).collect();
        return Err(TrainError::Config(format!("finetune.freeze pattern `{p}` matches no trainable parameter; names look like {}", examples.join(", "))));
    }
    let frozen: Vec<String> = vars.keys().filter(|n| patterns.iter().any(|p| name_matches(p, n))).cloned().collect();
    if frozen.len() == vars.len() {
        return Err(TrainError::Config(format!("finetune.freeze {patterns:?} freezes every parameter; nothing would train")));
    }
    for name in &frozen {
        let _ = vars[name].set_requires_grad(false);
    }
    Ok(frozen)
}

/// The block a parameter belongs to, counted from the top of a model with `num_layers`
/// encoder layers: 0 for the head (anything outside the embeddings and the layers: the
/// classifier, a final LayerNorm), `1 + (L − 1 − N)` for layer N, `L + 1` for the embeddings.
///
/// ```
/// use whetstone_train::block_depth;
/// assert_eq!(block_depth("classifier.weight", 6), 0);
/// assert_eq!(block_depth("encoder.layer.5.output.dense.weight", 6), 1);
/// assert_eq!(block_depth("encoder.layer.0.output.dense.weight", 6), 6);
/// assert_eq!(block_depth("embeddings.word_embeddings.weight", 6), 7);
/// ```
pub fn block_depth(name: &str, num_layers: usize) -> usize {
    match layer_index(name) {
        Some(n) => num_layers.saturating_sub(n),
        None if name.contains("embed") => num_layers + 1,
        None => 0,
    }
}

/// Which blocks train at each step (steps count from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreezeSchedule {
    /// Steps at the start during which only the head trains.
    pub head_warmup: u64,
    /// Gradual unfreezing: block depth `d` (see [`block_depth`]) trains from step
    /// `d × unfreeze_every` on; 0 disables.
    pub unfreeze_every: u64,
}

impl FreezeSchedule {
    /// The deepest block that trains at `step`; `None` when every block does.
    ///
    /// ```
    /// use whetstone_train::FreezeSchedule;
    /// let ulmfit = FreezeSchedule { head_warmup: 0, unfreeze_every: 10 };
    /// assert_eq!(ulmfit.trainable_depth(9), Some(0)); // the head alone
    /// assert_eq!(ulmfit.trainable_depth(10), Some(1)); // and the top layer
    /// let warmup = FreezeSchedule { head_warmup: 5, unfreeze_every: 0 };
    /// assert_eq!((warmup.trainable_depth(4), warmup.trainable_depth(5)), (Some(0), None));
    /// ```
    pub fn trainable_depth(&self, step: u64) -> Option<usize> {
        if step < self.head_warmup {
            return Some(0);
        }
        (self.unfreeze_every > 0).then(|| usize::try_from(step / self.unfreeze_every).unwrap_or(usize::MAX))
    }
}

/// An [`Optimizer`] wrapper that keeps the blocks its [`FreezeSchedule`] has not yet unfrozen
/// bit-identical: at the start of each step ([`Optimizer::begin_step`], before the forward
/// pass) they stop requiring a gradient, and after the wrapped optimiser's update their values
/// are put back. Its step counter is part of the
/// optimiser state, so a resumed run freezes and unfreezes at the same steps.
///
/// The wrapped optimiser counts steps for all parameters alike, so a block unfrozen at step
/// t starts from zero moments with Adam's bias correction of step t: its first updates are
/// up to (1 − β₁)/√(1 − β₂) ≈ 3× larger than a fresh Adam's, for about 1/(1 − β₁) steps.
/// A learning-rate warm-up that outlasts the first unfreezing softens this.
#[derive(Debug)]
pub struct Freezing {
    inner: Box<dyn Optimizer>,
    schedule: FreezeSchedule,
    /// Every parameter the schedule manages, with its block depth.
    params: Vec<(String, Tensor, usize)>,
    /// Values of the currently frozen parameters (by index into `params`).
    frozen: BTreeMap<usize, Tensor>,
    step: u64,
}

impl Freezing {
    /// Wrap `inner`, which optimises (some of) the trainable variables of `vs`. Variables
    /// frozen already (by [`freeze`]) stay frozen.
    pub fn new(inner: Box<dyn Optimizer>, vs: &VarStore, schedule: FreezeSchedule) -> Result<Self> {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let num_layers = vars.iter().filter_map(|(n, _)| layer_index(n)).max().map_or(0, |m| m + 1);
        let params: Vec<(String, Tensor, usize)> = vars.into_iter().map(|(n, t)| {
            let d = block_depth(&n, num_layers);
            (n, t, d)
        }).collect();
        if !params.iter().any(|p| p.2 == 0) {
            return Err(TrainError::Config("a head-only warm-up or gradual unfreezing needs a trainable head (a parameter outside the embeddings and encoder layers)".into()));
        }
        Ok(Self { inner, schedule, params, frozen: BTreeMap::new(), step: 0 })
    }

    /// Names of the parameters frozen at the current step.
    pub fn frozen_names(&self) -> Vec<&str> {
        self.frozen.keys().map(|&i| self.params[i].0.as_str()).collect()
    }

    /// Freeze and unfreeze for the coming step.
    fn apply(&mut self) -> Result<()> {
        let limit = self.schedule.trainable_depth(self.step);
        for (i, (_, t, depth)) in self.params.iter().enumerate() {
            let frozen = limit.is_some_and(|d| *depth > d);
            if frozen && !self.frozen.contains_key(&i) {
                self.frozen.insert(i, tch::no_grad(|| t.f_detach_copy())?);
                let _ = t.set_requires_grad(false);
            } else if !frozen && self.frozen.remove(&i).is_some() {
                let _ = t.set_requires_grad(true);
            }
        }
        Ok(())
    }

    /// Forget the frozen values (they are retaken at the next step) and let every managed
    /// parameter require a gradient again.
    fn release(&mut self) {
        for (i, _) in std::mem::take(&mut self.frozen) {
            let _ = self.params[i].1.set_requires_grad(true);
        }
    }
}

impl Optimizer for Freezing {
    fn begin_step(&mut self) -> whetstone_optim::Result<()> {
        self.apply().map_err(|e| whetstone_optim::OptimError::Config(e.to_string()))?;
        self.inner.begin_step()
    }
    fn step(&mut self, lr: f64) -> whetstone_optim::Result<()> {
        // A caller that skipped `begin_step` still freezes the right blocks.
        self.apply().map_err(|e| whetstone_optim::OptimError::Config(e.to_string()))?;
        tch::no_grad(|| -> whetstone_optim::Result<()> {
            for &i in self.frozen.keys() {
                let mut g = self.params[i].1.grad();
                if g.defined() {
                    let _ = g.f_zero_()?;
                }
            }
            Ok(())
        })?;
        self.inner.step(lr)?;
        tch::no_grad(|| -> whetstone_optim::Result<()> {
            for (&i, value) in &self.frozen {
                self.params[i].1.shallow_clone().f_copy_(value)?;
            }
            Ok(())
        })?;
        self.step += 1;
        Ok(())
    }
    fn state(&self) -> OptimState {
        let mut s = self.inner.state();
        s.tensors.push((STEP_STATE.into(), Tensor::from_slice(&[self.step as f64])));
        s
    }
    fn load_state(&mut self, state: &OptimState) -> whetstone_optim::Result<()> {
        let step = state.find(STEP_STATE)?.f_to_kind(Kind::Double)?.f_double_value(&[0])?;
        let tensors = state.tensors.iter().filter(|(n, _)| n != STEP_STATE).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        self.inner.load_state(&OptimState { step: state.step, tensors })?;
        self.release();
        self.step = step as u64;
        Ok(())
    }
    whetstone_optim::forward_to_inner!(inner; params, zero_grad, skipped_steps, eval_mode, train_mode, grad_buffers);
}
