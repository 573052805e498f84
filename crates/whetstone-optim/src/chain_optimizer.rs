//! Running a [`Chain`] of transforms as an [`Optimizer`], on flat buffers when it can.

use crate::error::{OptimError, Result};
use crate::flat::{self, FlatBucket};
use crate::fused::{self, FusedKind};
use crate::optimizer::Optimizer;
use crate::params::Param;
use crate::state::OptimState;
use crate::transform::{Chain, StepCtx, TransformState};
use tch::{Kind, Tensor};

/// An optimiser made of a transform chain: `θ ← θ + chain(g)`.
///
/// With `flat = true` and an elementwise chain, the parameters are moved into flat buffers
/// ([`crate::flat`]) and every transform runs once per buffer; Adam, AdamW and SGD then also use
/// a one-pass CPU kernel ([`crate::fused`]). State is always named per parameter
/// (`"{param}.{buffer}"`), whatever the layout, so checkpoints move between layouts.
///
/// ```
/// use whetstone_optim::{named_params, ChainOptimizer, Optimizer, NO_DECAY};
/// use whetstone_optim::transform::{chain, scale_by_rms, trace, scale_by_learning_rate};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let my_rmsprop_momentum = chain(vec![scale_by_rms(0.99, 1e-8, false), trace(0.9, 0.0, false), scale_by_learning_rate()]);
/// let mut opt = ChainOptimizer::new(named_params(&vs, 0.0, NO_DECAY), my_rmsprop_momentum, true)?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct ChainOptimizer {
    params: Vec<Param>,
    chain: Chain,
    buckets: Vec<FlatBucket>,
    states: Vec<TransformState>,
    fused: Option<FusedKind>,
    step: u64,
}

impl ChainOptimizer {
    /// Run `chain` over `params`. `flat` asks for flat buffers (ignored when the chain is not
    /// elementwise).
    pub fn new(params: Vec<Param>, chain: Chain, flat: bool) -> Result<Self> {
        let buckets = if flat && chain.elementwise() && !params.is_empty() { flat::flatten(&params)? } else { Vec::new() };
        let slots: Vec<Tensor> = if buckets.is_empty() { params.iter().map(|p| p.tensor.shallow_clone()).collect() } else { buckets.iter().map(|b| b.param.shallow_clone()).collect() };
        let states = tch::no_grad(|| chain.init(&slots))?;
        Ok(Self { params, chain, buckets, states, fused: None, step: 0 })
    }

    /// Use the one-pass kernel `kind` where the buffers allow it. The chain must compute the
    /// same update and keep the buffers the kernel expects (`exp_avg`, `exp_avg_sq`,
    /// `max_exp_avg_sq` / `momentum_buffer`), which the named constructors guarantee.
    pub fn with_fused(mut self, kind: FusedKind) -> Self {
        self.fused = Some(kind);
        self
    }

    /// Whether the parameters live in flat buffers.
    pub fn is_flat(&self) -> bool {
        !self.buckets.is_empty()
    }

    fn find(&self, name: &str) -> Option<&Vec<Tensor>> {
        self.states.iter().flat_map(|s| s.buffers.iter()).find(|(n, _)| n == name).map(|(_, b)| b)
    }

    fn step_fused(&mut self, kind: FusedKind, lr: f64) -> Result<bool> {
        if !self.buckets.iter().all(|b| fused::supported(&b.param) && fused::supported(&b.grad)) {
            return Ok(false);
        }
        for (i, b) in self.buckets.iter().enumerate() {
            match kind {
                FusedKind::Adam { amsgrad, .. } => {
                    let m = self.find("exp_avg").ok_or_else(|| OptimError::State("fused adam needs `exp_avg`".into()))?;
                    let v = self.find("exp_avg_sq").ok_or_else(|| OptimError::State("fused adam needs `exp_avg_sq`".into()))?;
                    let mx = if amsgrad { Some(&self.find("max_exp_avg_sq").ok_or_else(|| OptimError::State("fused adam needs `max_exp_avg_sq`".into()))?[i]) } else { None };
                    fused::adam(kind, &b.param, &b.grad, &m[i], &v[i], mx, lr, b.weight_decay, self.step)?;
                }
                FusedKind::Sgd { .. } => {
                    let buf = self.find("momentum_buffer").ok_or_else(|| OptimError::State("fused sgd needs `momentum_buffer`".into()))?;
                    fused::sgd(kind, &b.param, &b.grad, &buf[i], lr, b.weight_decay, self.step)?;
                }
            }
        }
        Ok(true)
    }

    fn step_chain(&mut self, lr: f64) -> Result<()> {
        if !self.buckets.is_empty() {
            let params: Vec<Tensor> = self.buckets.iter().map(|b| b.param.shallow_clone()).collect();
            let wd: Vec<f64> = self.buckets.iter().map(|b| b.weight_decay).collect();
            let mut updates: Vec<Tensor> = self.buckets.iter().map(|b| b.grad.shallow_clone()).collect();
            let ctx = StepCtx { params: &params, weight_decay: &wd, lr, step: self.step };
            self.chain.update(&mut updates, &mut self.states, &ctx)?;
            for (p, u) in params.iter().zip(&updates) {
                let _ = p.shallow_clone().f_add_(u)?;
            }
            return Ok(());
        }
        // Per tensor: parameters without a gradient are skipped (their state is untouched).
        let active: Vec<usize> = (0..self.params.len()).filter(|&i| self.params[i].tensor.grad().defined()).collect();
        if active.is_empty() {
            return Ok(());
        }
        let params: Vec<Tensor> = active.iter().map(|&i| self.params[i].tensor.shallow_clone()).collect();
        let wd: Vec<f64> = active.iter().map(|&i| self.params[i].weight_decay).collect();
        let mut updates: Vec<Tensor> = active.iter().map(|&i| self.params[i].tensor.grad()).collect();
        let ctx = StepCtx { params: &params, weight_decay: &wd, lr, step: self.step };
        if active.len() == self.params.len() {
            self.chain.update(&mut updates, &mut self.states, &ctx)?;
        } else {
            let mut sub: Vec<TransformState> = self.states.iter().map(|s| s.subset(&active)).collect();
            self.chain.update(&mut updates, &mut sub, &ctx)?;
            for (s, t) in self.states.iter_mut().zip(sub) {
                s.scalars = t.scalars;
            }
        }
        for (p, u) in params.iter().zip(&updates) {
            let _ = p.shallow_clone().f_add_(u)?;
        }
        Ok(())
    }

    /// Live views of every state buffer and scalar, named as in [`OptimState`].
    fn named_views(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for s in &self.states {
            for (name, bufs) in &s.buffers {
                if self.buckets.is_empty() {
                    for (p, b) in self.params.iter().zip(bufs).filter(|(_, b)| b.defined()) {
                        out.push((format!("{}.{name}", p.name), b.shallow_clone()));
                    }
                } else {
                    for (bucket, b) in self.buckets.iter().zip(bufs) {
                        for (j, (i, _, _)) in bucket.members.iter().enumerate() {
                            out.push((format!("{}.{name}", self.params[*i].name), bucket.member_view(b, j)?));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Optimizer for ChainOptimizer {
    fn step(&mut self, lr: f64) -> Result<()> {
        if !self.buckets.is_empty() && !flat::still_bound(&self.buckets, &self.params) {
            return Err(OptimError::State("a parameter or its gradient no longer lives in the optimiser's flat buffer (was it replaced, e.g. by set_data or a dtype change?)".into()));
        }
        self.step += 1;
        tch::no_grad(|| -> Result<()> {
            if let (Some(kind), false) = (self.fused, self.buckets.is_empty()) {
                if self.step_fused(kind, lr)? {
                    return Ok(());
                }
            }
            self.step_chain(lr)
        })
    }

    fn params(&self) -> Vec<&Tensor> {
        self.params.iter().map(|p| &p.tensor).collect()
    }

    fn zero_grad(&mut self) {
        // `zero_grad` cannot return an error, and a gradient left unzeroed would silently
        // corrupt the next step, so a libtorch failure panics (`zero_`, as the trait's default
        // does) instead of being dropped. The returned tensor is only a handle to `g`.
        if self.buckets.is_empty() {
            for p in &self.params {
                let mut g = p.tensor.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
        } else {
            for b in &self.buckets {
                let _ = b.grad.shallow_clone().zero_();
            }
        }
    }

    fn state(&self) -> OptimState {
        // `state` cannot return an error; an empty state in its place would be a checkpoint that
        // silently drops the buffers, so a failure (narrowing the flat buffers) panics instead.
        let views = self.named_views().expect("views of the optimiser's flat state buffers");
        let mut tensors: Vec<(String, Tensor)> = views.into_iter().map(|(n, t)| (n, t.copy())).collect();
        for s in &self.states {
            for (n, v) in &s.scalars {
                tensors.push((n.clone(), Tensor::from_slice(&[*v])));
            }
        }
        OptimState { step: self.step, tensors }
    }

    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        let views = self.named_views()?;
        tch::no_grad(|| -> Result<()> {
            for (name, mut view) in views {
                let saved = state.find(&name)?;
                if saved.size() != view.size() {
                    return Err(OptimError::State(format!("buffer `{name}` has shape {:?}, expected {:?}", saved.size(), view.size())));
                }
                view.f_copy_(saved)?;
            }
            Ok(())
        })?;
        for s in &mut self.states {
            for (n, v) in &mut s.scalars {
                *v = state.find(n)?.f_to_kind(Kind::Double)?.f_double_value(&[0])?;
            }
        }
        self.step = state.step;
        Ok(())
    }
}

/// A named optimiser: a newtype over [`ChainOptimizer`] that forwards [`Optimizer`].
macro_rules! named_optimizer {
    ($name:ident) => {
        impl $crate::optimizer::Optimizer for $name {
            fn step(&mut self, lr: f64) -> $crate::error::Result<()> {
                self.0.step(lr)
            }
            fn params(&self) -> Vec<&tch::Tensor> {
                self.0.params()
            }
            fn zero_grad(&mut self) {
                self.0.zero_grad()
            }
            fn state(&self) -> $crate::state::OptimState {
                self.0.state()
            }
            fn load_state(&mut self, state: &$crate::state::OptimState) -> $crate::error::Result<()> {
                self.0.load_state(state)
            }
        }

        impl $name {
            /// The underlying chain optimiser.
            pub fn inner(&self) -> &$crate::chain_optimizer::ChainOptimizer {
                &self.0
            }
            /// Unwrap into the underlying chain optimiser.
            pub fn into_inner(self) -> $crate::chain_optimizer::ChainOptimizer {
                self.0
            }
        }
    };
}
pub(crate) use named_optimizer;

/// Check β ∈ [0, 1) pairs.
pub(crate) fn check_betas(what: &str, (b1, b2): (f64, f64)) -> Result<()> {
    if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
        return Err(OptimError::Config(format!("{what} betas must be in [0, 1), got ({b1}, {b2})")));
    }
    Ok(())
}

/// Check ε ≥ 0.
pub(crate) fn check_eps(what: &str, eps: f64) -> Result<()> {
    // NaN fails this test too.
    if eps.is_nan() || eps < 0.0 {
        return Err(OptimError::Config(format!("{what} eps must be >= 0, got {eps}")));
    }
    Ok(())
}
