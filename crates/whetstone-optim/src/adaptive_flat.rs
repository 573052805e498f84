//! The adaptive optimiser on flat buffers: per bucket, one pass for every tensor's sums, the
//! per-tensor scalars on the host, one pass for the update ([`crate::adaptive_kernel`]).

use crate::adaptive::{cos_from, rectifier, rho, AdaptiveConfig, SCALARS};
use crate::adaptive_kernel::{self as kernel, Direction, SegmentStep, StepArgs, Wanted};
use crate::error::{OptimError, Result};
use crate::flat::{self, FlatBucket};
use crate::optimizer::Optimizer;
use crate::params::Param;
use crate::state::OptimState;
use tch::{Device, Kind, Tensor};

/// [`crate::Adaptive`] over flat CPU buffers.
#[derive(Debug)]
pub(crate) struct FusedAdaptive {
    config: AdaptiveConfig,
    params: Vec<Param>,
    buckets: Vec<FlatBucket>,
    /// `exp_avg` and `exp_avg_sq`, one flat buffer per bucket, laid out like its parameters.
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// The per-tensor scalars ([`SCALARS`]), by parameter index.
    scalars: Vec<[f64; 6]>,
    step: u64,
}

/// `(offset, len)` of each member of `b`.
fn segments(b: &FlatBucket) -> Vec<(usize, usize)> {
    b.members.iter().map(|(_, off, shape)| (*off as usize, shape.iter().product::<i64>() as usize)).collect()
}

impl FusedAdaptive {
    /// Whether the kernel can run on `params`: at least one, all CPU float32 / float64.
    pub fn supports(params: &[Param]) -> bool {
        !params.is_empty() && params.iter().all(|p| p.tensor.device() == Device::Cpu && matches!(p.tensor.kind(), Kind::Float | Kind::Double))
    }

    /// Moves `params` into flat buffers (see [`crate::flat`] for what that changes).
    pub fn new(params: Vec<Param>, config: AdaptiveConfig) -> Result<Self> {
        let buckets = flat::flatten(&params)?;
        let zeros = |b: &FlatBucket| b.param.f_zeros_like();
        let exp_avg = buckets.iter().map(zeros).collect::<std::result::Result<Vec<_>, _>>()?;
        let exp_avg_sq = buckets.iter().map(zeros).collect::<std::result::Result<Vec<_>, _>>()?;
        let scalars = vec![config.scalar_init(); params.len()];
        Ok(Self { config, params, buckets, exp_avg, exp_avg_sq, scalars, step: 0 })
    }

    /// (β₁, α) of the parameter `name`.
    pub fn adaptation(&self, name: &str) -> Option<(f64, f64)> {
        let i = self.params.iter().position(|p| p.name == name)?;
        Some((self.scalars[i][1], self.scalars[i][3].exp()))
    }

    /// Live views of the moment buffers, named as in [`OptimState`].
    fn moment_views(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (k, b) in self.buckets.iter().enumerate() {
            for (j, (i, _, _)) in b.members.iter().enumerate() {
                let name = &self.params[*i].name;
                out.push((format!("{name}.exp_avg"), b.member_view(&self.exp_avg[k], j)?));
                out.push((format!("{name}.exp_avg_sq"), b.member_view(&self.exp_avg_sq[k], j)?));
            }
        }
        Ok(out)
    }

    fn update(&mut self, lr: f64) -> Result<()> {
        let c = &self.config;
        let (_, b2) = c.betas;
        let t = self.step as f64;
        let (rho_inf, rho_t) = rho(b2, t).ok_or_else(|| OptimError::State("adaptive: step count must start at 1".into()))?;
        let prev_rectified = rho(b2, t - 1.0).is_some_and(|(_, r)| r > 5.0);
        let direction = if rho_t > 5.0 {
            Direction::Rectified { rect: rectifier(rho_inf, rho_t), sqrt_bc2: (1.0 - b2.powf(t)).sqrt() }
        } else if c.degenerate_to_sgd {
            Direction::Momentum
        } else {
            Direction::Zero
        };
        let (need_gm, need_gd) = c.needs(t, prev_rectified);
        for (k, b) in self.buckets.iter().enumerate() {
            let segs = segments(b);
            let (m, v) = (&self.exp_avg[k], &self.exp_avg_sq[k]);
            let sums = if need_gm || need_gd { kernel::dots(&b.grad, m, v, &segs, c.eps, Wanted { gm: need_gm, d: need_gd })? } else { vec![[0.0; 5]; segs.len()] };
            let mut steps = Vec::with_capacity(segs.len());
            for (j, (i, _, _)) in b.members.iter().enumerate() {
                let [gm, gg, mm, gd, dd] = sums[j];
                let (b1, prod, lm) = c.advance(&mut self.scalars[*i], t, prev_rectified, || Ok(cos_from(gm, gg, mm)), || Ok(cos_from(gd, gg, dd)))?;
                steps.push(SegmentStep { beta1: b1, beta1_prod: prod, mult: (lm != 0.0).then(|| lm.exp()) });
            }
            let args = StepArgs { beta2: b2, eps: c.eps, nesterov: c.nesterov, direction, lr, weight_decay: b.weight_decay };
            kernel::update(&b.param, &b.grad, m, v, &segs, &steps, &args)?;
        }
        Ok(())
    }
}

impl Optimizer for FusedAdaptive {
    fn step(&mut self, lr: f64) -> Result<()> {
        if !flat::still_bound(&self.buckets, &self.params) {
            return Err(OptimError::State("a parameter or its gradient no longer lives in the optimiser's flat buffer (was it replaced, e.g. by set_data or a dtype change?)".into()));
        }
        self.step += 1;
        tch::no_grad(|| self.update(lr))
    }

    fn params(&self) -> Vec<&Tensor> {
        self.params.iter().map(|p| &p.tensor).collect()
    }

    fn zero_grad(&mut self) {
        // As `ChainOptimizer::zero_grad`: a failure here would silently corrupt the next step,
        // so it panics inside `zero_` instead of being dropped.
        for b in &self.buckets {
            let _ = b.grad.shallow_clone().zero_();
        }
    }

    fn grad_buffers(&self) -> Result<Vec<Tensor>> {
        if flat::still_bound(&self.buckets, &self.params) {
            return Ok(self.buckets.iter().map(|b| b.grad.shallow_clone()).collect());
        }
        let params: Vec<&Tensor> = self.params.iter().map(|p| &p.tensor).collect();
        flat::define_grads(&params)?;
        Ok(params.iter().filter(|p| p.requires_grad()).map(|p| p.grad()).collect())
    }

    fn state(&self) -> OptimState {
        // As `ChainOptimizer::state`: narrowing the flat buffers cannot fail for buffers this
        // optimiser built, and an empty state would be a checkpoint that silently drops them.
        let mut tensors: Vec<(String, Tensor)> = self.moment_views().expect("views of the optimiser's flat state buffers").into_iter().map(|(n, t)| (n, t.copy())).collect();
        for (p, s) in self.params.iter().zip(&self.scalars) {
            for (name, v) in SCALARS.iter().zip(s) {
                tensors.push((format!("{}.{name}", p.name), Tensor::from_slice(&[*v])));
            }
        }
        OptimState { step: self.step, tensors }
    }

    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        // Read everything before writing anything, so a bad state leaves this one untouched.
        let mut scalars = self.scalars.clone();
        for (p, s) in self.params.iter().zip(scalars.iter_mut()) {
            for (name, v) in SCALARS.iter().zip(s.iter_mut()) {
                let t = state.find(&format!("{}.{name}", p.name))?;
                if t.numel() != 1 {
                    return Err(OptimError::State(format!("buffer `{}.{name}` has {} elements, expected 1", p.name, t.numel())));
                }
                *v = t.f_to_kind(Kind::Double)?.f_double_value(&[0])?;
            }
        }
        let views = self.moment_views()?;
        for (name, view) in &views {
            let saved = state.find(name)?;
            if saved.size() != view.size() {
                return Err(OptimError::State(format!("buffer `{name}` has shape {:?}, expected {:?}", saved.size(), view.size())));
            }
        }
        tch::no_grad(|| -> Result<()> {
            for (name, mut view) in views {
                view.f_copy_(state.find(&name)?)?;
            }
            Ok(())
        })?;
        self.scalars = scalars;
        self.step = state.step;
        Ok(())
    }
}
