//! Running a [`Chain`] of transforms as an [`Optimizer`], on flat buffers when it can.

use crate::error::{OptimError, Result};
use crate::flat::{self, FlatBucket};
use crate::fused::{self, FusedKind};
use crate::kernel::{self, Kernel, StepTensors, TorchState};
use crate::optimizer::Optimizer;
use crate::params::Param;
use crate::state::OptimState;
use crate::transform::{Chain, StepCtx, TransformState};
use tch::{Device, Kind, Tensor};

/// An optimiser made of a transform chain: `θ ← θ + chain(g)`.
///
/// With `flat = true` and an elementwise chain, the parameters are moved into flat buffers
/// ([`crate::flat`]) and every transform runs once per buffer; Adam, AdamW and SGD then also use
/// a one-pass CPU kernel ([`crate::fused`]). With [`Kernel::TorchFused`]
/// ([`ChainOptimizer::with_kernel`]) the update of a chain with a fused kind is libtorch's fused
/// kernel instead, in both layouts. State is always named per parameter
/// (`"{param}.{buffer}"`), whatever the layout and kernel, so checkpoints move between them.
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
    kernel: Kernel,
    torch_steps: StepTensors,
    torch_checked: bool,
    step: u64,
}

impl ChainOptimizer {
    /// Run `chain` over `params`. `flat` asks for flat buffers (ignored when the chain is not
    /// elementwise).
    pub fn new(params: Vec<Param>, chain: Chain, flat: bool) -> Result<Self> {
        let buckets = if flat && chain.elementwise() && !params.is_empty() { flat::flatten(&params)? } else { Vec::new() };
        let slots: Vec<Tensor> = if buckets.is_empty() { params.iter().map(|p| p.tensor.shallow_clone()).collect() } else { buckets.iter().map(|b| b.param.shallow_clone()).collect() };
        let states = tch::no_grad(|| chain.init(&slots))?;
        Ok(Self { params, chain, buckets, states, fused: None, kernel: Kernel::Whetstone, torch_steps: StepTensors::default(), torch_checked: false, step: 0 })
    }

    /// Use the one-pass kernel `kind` where the buffers allow it. The chain must compute the
    /// same update and keep the buffers the kernel expects (`exp_avg`, `exp_avg_sq`,
    /// `max_exp_avg_sq` / `momentum_buffer`), which the named constructors guarantee.
    ///
    /// With the default [`Kernel::Whetstone`], SGD without momentum (`μ = 0`) runs the chain.
    pub fn with_fused(mut self, kind: FusedKind) -> Self {
        self.fused = Some(kind);
        self
    }

    /// Run the update with `kernel`. [`Kernel::TorchFused`] needs the fused kind set by
    /// [`ChainOptimizer::with_fused`] first (the named Adam, AdamW and SGD do it); without one it
    /// is a [`OptimError::Config`]. The state buffers are checked (disjoint from one another and
    /// from the parameters) before the first update.
    pub fn with_kernel(mut self, kernel: Kernel) -> Result<Self> {
        if kernel == Kernel::TorchFused && self.fused.is_none() {
            return Err(OptimError::Config("optim.kernel = \"torch-fused\" needs an update libtorch has a fused kernel for (Adam, AdamW or SGD); this chain has none (use kernel = \"whetstone\")".into()));
        }
        self.kernel = kernel;
        self.torch_checked = false;
        Ok(self)
    }

    /// The kernel that runs the update.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Whether the parameters live in flat buffers.
    pub fn is_flat(&self) -> bool {
        !self.buckets.is_empty()
    }

    fn find(&self, name: &str) -> Option<&Vec<Tensor>> {
        self.states.iter().flat_map(|s| s.buffers.iter()).find(|(n, _)| n == name).map(|(_, b)| b)
    }

    fn step_fused(&mut self, kind: FusedKind, lr: f64) -> Result<bool> {
        if matches!(kind, FusedKind::Sgd { momentum, .. } if momentum == 0.0) {
            // Plain SGD: whetstone's kernel is for momentum; the chain is one `add_` anyway.
            return Ok(false);
        }
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
        // Flat: every bucket. Per tensor: parameters without a gradient are skipped (their
        // state is untouched).
        let active: Vec<usize> = if self.buckets.is_empty() { (0..self.params.len()).filter(|&i| self.params[i].tensor.grad().defined()).collect() } else { (0..self.buckets.len()).collect() };
        self.step_chain_on(lr, active)
    }

    /// The chain over the slots `active` (flat buckets, or parameters with a gradient).
    fn step_chain_on(&mut self, lr: f64, active: Vec<usize>) -> Result<()> {
        if active.is_empty() {
            return Ok(());
        }
        let (params, wd, mut updates, n_slots): (Vec<Tensor>, Vec<f64>, Vec<Tensor>, usize) = if self.buckets.is_empty() {
            (
                active.iter().map(|&i| self.params[i].tensor.shallow_clone()).collect(),
                active.iter().map(|&i| self.params[i].weight_decay).collect(),
                active.iter().map(|&i| self.params[i].tensor.grad()).collect(),
                self.params.len(),
            )
        } else {
            (
                active.iter().map(|&i| self.buckets[i].param.shallow_clone()).collect(),
                active.iter().map(|&i| self.buckets[i].weight_decay).collect(),
                active.iter().map(|&i| self.buckets[i].grad.shallow_clone()).collect(),
                self.buckets.len(),
            )
        };
        let ctx = StepCtx { params: &params, weight_decay: &wd, lr, step: self.step };
        if active.len() == n_slots {
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

    /// The state lists the kernel of `kind` needs, for slots `idx`.
    fn torch_state(&self, kind: FusedKind, idx: &[usize]) -> Result<TorchState> {
        let get = |name: &str| -> Result<Vec<Tensor>> {
            let bufs = self.find(name).ok_or_else(|| OptimError::State(format!("the torch-fused kernel needs the state buffer `{name}`, which this chain does not keep")))?;
            idx.iter().map(|&i| bufs.get(i).map(Tensor::shallow_clone).ok_or_else(|| OptimError::State(format!("state buffer `{name}` has no slot {i}")))).collect()
        };
        let mut st = TorchState::default();
        match kind {
            FusedKind::Adam { amsgrad, .. } => {
                st.exp_avgs = get("exp_avg")?;
                st.exp_avg_sqs = get("exp_avg_sq")?;
                if amsgrad {
                    st.max_exp_avg_sqs = get("max_exp_avg_sq")?;
                }
            }
            FusedKind::Sgd { momentum, .. } => {
                if momentum != 0.0 {
                    st.momentum_buffers = get("momentum_buffer")?;
                }
            }
        }
        Ok(st)
    }

    /// Before the first torch-fused update: every state buffer the kernel writes is disjoint in
    /// memory from the others, the parameters and the gradients.
    fn check_torch_buffers(&self, kind: FusedKind) -> Result<()> {
        let slots: Vec<(String, Tensor)> = if self.buckets.is_empty() {
            self.params.iter().flat_map(|p| [(p.name.clone(), p.tensor.shallow_clone()), (format!("{}.grad", p.name), p.tensor.grad())]).collect()
        } else {
            self.buckets.iter().enumerate().flat_map(|(i, b)| [(format!("flat buffer {i}"), b.param.shallow_clone()), (format!("flat gradient {i}"), b.grad.shallow_clone())]).collect()
        };
        let slot_name = |i: usize| if self.buckets.is_empty() { self.params.get(i).map_or_else(|| format!("slot {i}"), |p| p.name.clone()) } else { format!("flat buffer {i}") };
        let mut state: Vec<(String, Tensor)> = Vec::new();
        for name in kernel::state_names(kind) {
            let bufs = self.find(name).ok_or_else(|| OptimError::State(format!("the torch-fused kernel needs the state buffer `{name}`, which this chain does not keep")))?;
            state.extend(bufs.iter().enumerate().map(|(i, b)| (format!("{}.{name}", slot_name(i)), b.shallow_clone())));
        }
        let slots: Vec<(&str, &Tensor)> = slots.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let state: Vec<(&str, &Tensor)> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
        kernel::check_disjoint(&slots, &state)
    }

    /// One update with libtorch's fused kernel: one call per flat bucket, or per tensor one
    /// call per (weight decay, dtype, device). Per tensor, parameters without a gradient are
    /// skipped, and any the kernel cannot take (not contiguous, not floating point) run the
    /// chain, which computes the same update; so do buckets and parameters the kernel gets
    /// wrong (CPU SGD in float16 / bfloat16, see [`kernel::torch_handles`]).
    fn step_torch(&mut self, kind: FusedKind, lr: f64) -> Result<()> {
        if !self.torch_checked {
            self.check_torch_buffers(kind)?;
            self.torch_checked = true;
        }
        let first = self.step == 1;
        if !self.buckets.is_empty() {
            let (mut rest, mut devices) = (Vec::new(), Vec::new());
            for (i, b) in self.buckets.iter().enumerate() {
                if kernel::torch_handles(kind, &b.param) {
                    devices.push(b.param.device());
                } else {
                    rest.push(i);
                }
            }
            self.torch_steps.fill(devices, self.step)?;
            for (i, b) in self.buckets.iter().enumerate().filter(|(i, _)| !rest.contains(i)) {
                let st = self.torch_state(kind, &[i])?;
                let steps = self.torch_steps.list(b.param.device(), 1)?;
                kernel::torch_step(kind, std::slice::from_ref(&b.param), std::slice::from_ref(&b.grad), &st, &steps, lr, b.weight_decay, first)?;
            }
            return self.step_chain_on(lr, rest);
        }
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.tensor.grad()).collect();
        let mut calls: Vec<((u64, Kind, Device), Vec<usize>)> = Vec::new();
        let mut rest = Vec::new();
        for (i, (p, g)) in self.params.iter().zip(&grads).enumerate() {
            if !g.defined() {
                continue;
            }
            let t = &p.tensor;
            let state_ok = kernel::state_names(kind).iter().all(|n| self.find(n).and_then(|b| b.get(i)).is_some_and(kernel::torch_supported));
            if kernel::torch_supported(t) && kernel::torch_handles(kind, t) && state_ok && !g.is_sparse() && !g.is_mkldnn() {
                let key = (p.weight_decay.to_bits(), t.kind(), t.device());
                match calls.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, idx)) => idx.push(i),
                    None => calls.push((key, vec![i])),
                }
            } else {
                rest.push(i);
            }
        }
        self.torch_steps.fill(calls.iter().map(|((_, _, d), _)| *d), self.step)?;
        for ((wd, _, device), idx) in &calls {
            let params: Vec<Tensor> = idx.iter().map(|&i| self.params[i].tensor.shallow_clone()).collect();
            // Read only: a non-contiguous gradient is copied, a contiguous one is not.
            let grads: Vec<Tensor> = idx.iter().map(|&i| grads[i].f_contiguous()).collect::<std::result::Result<_, _>>()?;
            let st = self.torch_state(kind, idx)?;
            let steps = self.torch_steps.list(*device, idx.len())?;
            kernel::torch_step(kind, &params, &grads, &st, &steps, lr, f64::from_bits(*wd), first)?;
        }
        if !rest.is_empty() {
            self.step_chain_on(lr, rest)?;
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
    fn grad_buffers(&self) -> Result<Vec<Tensor>> {
        if !self.buckets.is_empty() && flat::still_bound(&self.buckets, &self.params) {
            return Ok(self.buckets.iter().map(|b| b.grad.shallow_clone()).collect());
        }
        let params: Vec<&Tensor> = self.params.iter().map(|p| &p.tensor).collect();
        flat::define_grads(&params)?;
        Ok(params.iter().filter(|p| p.requires_grad()).map(|p| p.grad()).collect())
    }

    fn step(&mut self, lr: f64) -> Result<()> {
        if !self.buckets.is_empty() && !flat::still_bound(&self.buckets, &self.params) {
            return Err(OptimError::State("a parameter or its gradient no longer lives in the optimiser's flat buffer (was it replaced, e.g. by set_data or a dtype change?)".into()));
        }
        self.step += 1;
        tch::no_grad(|| -> Result<()> {
            match (self.kernel, self.fused) {
                (Kernel::TorchFused, Some(kind)) => return self.step_torch(kind, lr),
                (Kernel::TorchFused, None) => return Err(OptimError::Config("optim.kernel = \"torch-fused\" without a fused update kind".into())),
                (Kernel::Whetstone, Some(kind)) if !self.buckets.is_empty() => {
                    if self.step_fused(kind, lr)? {
                        return Ok(());
                    }
                }
                (Kernel::Whetstone, _) => {}
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
