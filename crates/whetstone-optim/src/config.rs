//! Choosing an optimiser from a recipe.

use crate::adabelief::{AdaBelief, AdaBeliefConfig};
use crate::adaptive::{Adaptive, AdaptiveConfig};
use crate::adafactor::{Adafactor, AdafactorConfig};
use crate::adagrad::{Adagrad, AdagradConfig};
use crate::adam::{Adam, AdamConfig};
use crate::adamax::{Adamax, AdamaxConfig};
use crate::adamw::{AdamW, AdamWConfig};
use crate::adamw_schedule_free::{ScheduleFreeAdamW, ScheduleFreeAdamWConfig};
use crate::error::{OptimError, Result};
use crate::groups::{param_groups, GroupSpec, Grouped};
use crate::kernel::Kernel;
use crate::lamb::{Lamb, LambConfig};
use crate::lion::{Lion, LionConfig};
use crate::lookahead::{Lookahead, LookaheadConfig};
use crate::nadam::{NAdam, NAdamConfig};
use crate::optimizer::Optimizer;
use crate::params::{Param, NO_DECAY};
use crate::radam::{RAdam, RAdamConfig};
use crate::rmsprop::{Rmsprop, RmspropConfig};
use crate::sgd::{Sgd, SgdConfig};
use crate::skip_nonfinite::SkipNonFinite;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

/// The algorithm and its hyper-parameters (`kind = "..."` in a recipe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Algorithm {
    /// [`Sgd`].
    Sgd(SgdConfig),
    /// [`Adam`] (L2 weight decay).
    Adam(AdamConfig),
    /// [`AdamW`].
    Adamw(AdamWConfig),
    /// [`NAdam`].
    Nadam(NAdamConfig),
    /// [`RAdam`].
    Radam(RAdamConfig),
    /// [`Adagrad`].
    Adagrad(AdagradConfig),
    /// [`Rmsprop`].
    Rmsprop(RmspropConfig),
    /// [`Adamax`].
    Adamax(AdamaxConfig),
    /// [`AdaBelief`].
    Adabelief(AdaBeliefConfig),
    /// [`Lion`].
    Lion(LionConfig),
    /// [`Lamb`].
    Lamb(LambConfig),
    /// [`Adafactor`].
    Adafactor(AdafactorConfig),
    /// [`ScheduleFreeAdamW`].
    #[serde(rename = "schedulefree-adamw")]
    ScheduleFreeAdamw(ScheduleFreeAdamWConfig),
    /// [`Adaptive`], the charter's adaptive optimiser.
    Adaptive(AdaptiveConfig),
}

impl Algorithm {
    /// The same algorithm with (β₁, β₂) replaced; an error for algorithms without betas.
    pub fn with_betas(&self, betas: (f64, f64)) -> Result<Self> {
        let mut a = self.clone();
        match &mut a {
            Algorithm::Adam(c) => c.betas = betas,
            Algorithm::Adamw(c) => c.betas = betas,
            Algorithm::Nadam(c) => c.betas = betas,
            Algorithm::Radam(c) => c.betas = betas,
            Algorithm::Adamax(c) => c.betas = betas,
            Algorithm::Adabelief(c) => c.betas = betas,
            Algorithm::Lion(c) => c.betas = betas,
            Algorithm::Lamb(c) => c.betas = betas,
            Algorithm::ScheduleFreeAdamw(c) => c.betas = betas,
            Algorithm::Adaptive(c) => {
                // An unset β₁min stays unset (no adaptation, whatever β₁max); a set one stays
                // within the new β₁max.
                c.beta1_min = c.beta1_min.map(|b| b.min(betas.0));
                c.betas = betas;
            }
            _ => return Err(OptimError::Config("this algorithm has no betas to set per group".into())),
        }
        Ok(a)
    }

    /// The recipe name (`kind = "..."`): `"sgd"`, `"adamw"`, `"schedulefree-adamw"`, …
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Sgd(_) => "sgd",
            Algorithm::Adam(_) => "adam",
            Algorithm::Adamw(_) => "adamw",
            Algorithm::Nadam(_) => "nadam",
            Algorithm::Radam(_) => "radam",
            Algorithm::Adagrad(_) => "adagrad",
            Algorithm::Rmsprop(_) => "rmsprop",
            Algorithm::Adamax(_) => "adamax",
            Algorithm::Adabelief(_) => "adabelief",
            Algorithm::Lion(_) => "lion",
            Algorithm::Lamb(_) => "lamb",
            Algorithm::Adafactor(_) => "adafactor",
            Algorithm::ScheduleFreeAdamw(_) => "schedulefree-adamw",
            Algorithm::Adaptive(_) => "adaptive",
        }
    }

    /// Whether `kernel` can run this algorithm's update: [`Kernel::Whetstone`] runs every
    /// algorithm, [`Kernel::TorchFused`] only SGD, Adam and AdamW.
    pub fn supports(&self, kernel: Kernel) -> bool {
        kernel == Kernel::Whetstone || matches!(self, Algorithm::Sgd(_) | Algorithm::Adam(_) | Algorithm::Adamw(_))
    }

    /// [`Algorithm::supports`] as a [`OptimError::Config`] naming `optim.kernel` and the
    /// algorithm.
    ///
    /// ```
    /// use whetstone_optim::{Algorithm, Kernel};
    /// let e = Algorithm::Lion(Default::default()).check_kernel(Kernel::TorchFused).unwrap_err().to_string();
    /// assert!(e.contains("optim.kernel") && e.contains("lion"), "{e}");
    /// ```
    pub fn check_kernel(&self, kernel: Kernel) -> Result<()> {
        if self.supports(kernel) {
            return Ok(());
        }
        Err(OptimError::Config(format!(
            "optim.kernel = \"{kernel}\" is not available for kind = \"{}\": libtorch has fused kernels for sgd, adam and adamw only (use kernel = \"whetstone\")",
            self.name()
        )))
    }

    /// Build the algorithm over `params` (flat buffers where it supports them and `flat`), with
    /// the default [`Kernel`] for SGD, Adam and AdamW.
    pub fn build(&self, params: Vec<Param>, flat: bool) -> Result<Box<dyn Optimizer>> {
        match self {
            Algorithm::Sgd(_) | Algorithm::Adam(_) | Algorithm::Adamw(_) => self.build_with_kernel(params, flat, Kernel::default()),
            _ => self.build_with_kernel(params, flat, Kernel::Whetstone),
        }
    }

    /// Build the algorithm over `params` with the update run by `kernel`; a kernel the
    /// algorithm does not support is an error ([`Algorithm::check_kernel`]).
    pub fn build_with_kernel(&self, params: Vec<Param>, flat: bool, kernel: Kernel) -> Result<Box<dyn Optimizer>> {
        self.check_kernel(kernel)?;
        Ok(match self {
            Algorithm::Sgd(c) => Box::new(Sgd::with_kernel(params, c.clone(), flat, kernel)?),
            Algorithm::Adam(c) => Box::new(Adam::with_kernel(params, c.clone(), flat, kernel)?),
            Algorithm::Adamw(c) => Box::new(AdamW::with_kernel(params, c.clone(), flat, kernel)?),
            Algorithm::Nadam(c) => Box::new(NAdam::with_layout(params, c.clone(), flat)?),
            Algorithm::Radam(c) => Box::new(RAdam::with_layout(params, c.clone(), flat)?),
            Algorithm::Adagrad(c) => Box::new(Adagrad::with_layout(params, c.clone(), flat)?),
            Algorithm::Rmsprop(c) => Box::new(Rmsprop::with_layout(params, c.clone(), flat)?),
            Algorithm::Adamax(c) => Box::new(Adamax::with_layout(params, c.clone(), flat)?),
            Algorithm::Adabelief(c) => Box::new(AdaBelief::with_layout(params, c.clone(), flat)?),
            Algorithm::Lion(c) => Box::new(Lion::with_layout(params, c.clone(), flat)?),
            Algorithm::Lamb(c) => Box::new(Lamb::new(params, c.clone())?),
            Algorithm::Adafactor(c) => Box::new(Adafactor::new(params, c.clone())?),
            Algorithm::ScheduleFreeAdamw(c) => Box::new(ScheduleFreeAdamW::new(params, c.clone())?),
            Algorithm::Adaptive(c) => Box::new(Adaptive::with_layout(params, c.clone(), flat)?),
        })
    }
}

/// An optimiser recipe: the algorithm, the base learning rate and weight decay, parameter
/// groups and the wrappers around the update.
///
/// ```
/// use whetstone_optim::{OptimConfig, Optimizer};
/// use tch::{nn, nn::Module, Device, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let lin = nn::linear(vs.root() / "fc", 4, 2, Default::default());
/// let mut opt = OptimConfig::default().build(&vs)?;
/// let loss = lin.forward(&Tensor::ones([3, 4], (tch::Kind::Float, Device::Cpu))).sum(tch::Kind::Float);
/// opt.zero_grad();
/// loss.backward();
/// opt.step(1e-3)?;
/// assert_eq!(opt.state().step, 1);
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
///
/// In a recipe (TOML):
///
/// ```toml
/// [optim]
/// kind = "adamw"            # sgd adam adamw nadam radam adagrad rmsprop adamax adabelief lion lamb adafactor schedulefree-adamw adaptive
/// lr = 3e-4
/// weight_decay = 0.01
/// betas = [0.9, 0.98]       # the algorithm's own fields sit next to `kind`
/// layer_decay = 0.9         # layer-wise lr decay for Transformer layers
/// no_decay = ["bias", "LayerNorm", "layer_norm", "norm.weight"]
/// groups = [{ pattern = "classifier.*", lr_scale = 10.0 }]
/// lookahead = { k = 5, alpha = 0.5 }
/// skip_nonfinite = true
/// kernel = "whetstone"      # or "torch-fused": libtorch's fused kernels (sgd, adam, adamw only)
/// ```
/// (Unknown keys are caught by the recipe loader: serde cannot deny them next to `flatten`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// The algorithm (`kind = "adamw"`, `"sgd"`, …) and its own settings.
    #[serde(flatten)]
    pub algorithm: Algorithm,
    /// Peak learning rate; a schedule multiplies it.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight decay (decoupled for AdamW-style algorithms, L2 for SGD / Adam / …), not applied
    /// to names matching `no_decay`.
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// Name patterns without weight decay (see [`crate::name_matches`]); default [`NO_DECAY`].
    #[serde(default = "default_no_decay")]
    pub no_decay: Vec<String>,
    /// Layer-wise learning-rate decay factor (see [`crate::groups`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_decay: Option<f64>,
    /// Explicit parameter groups, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSpec>,
    /// Wrap the optimiser in [`Lookahead`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<LookaheadConfig>,
    /// Skip steps with non-finite gradients ([`SkipNonFinite`]).
    #[serde(default)]
    pub skip_nonfinite: bool,
    /// Keep each group's parameters in flat buffers (faster; see [`crate::flat`]).
    #[serde(default = "default_flat")]
    pub flat: bool,
    /// Which kernel runs the update (`"whetstone"` or `"torch-fused"`; see [`Kernel`]).
    /// `"torch-fused"` is for `sgd`, `adam` and `adamw` only; with any other kind it is an
    /// error from [`OptimConfig::validate`] and [`OptimConfig::build`].
    #[serde(default)]
    pub kernel: Kernel,
}

fn default_lr() -> f64 {
    1e-3
}
fn default_wd() -> f64 {
    0.01
}
fn default_no_decay() -> Vec<String> {
    NO_DECAY.iter().map(|s| s.to_string()).collect()
}
fn default_flat() -> bool {
    true
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Adamw(AdamWConfig::default()),
            lr: default_lr(),
            weight_decay: default_wd(),
            no_decay: default_no_decay(),
            layer_decay: None,
            groups: Vec::new(),
            lookahead: None,
            skip_nonfinite: false,
            flat: default_flat(),
            kernel: Kernel::default(),
        }
    }
}

impl OptimConfig {
    /// Check every setting without any parameters: the learning rate, weight decay, layer
    /// decay, each group's overrides, lookahead, and the algorithm's own hyper-parameters (the
    /// checks its constructor makes). Messages name the recipe key (`optim.lr`,
    /// `optim.groups[0].lr_scale`, …). Non-finite values are refused.
    ///
    /// ```
    /// use whetstone_optim::OptimConfig;
    /// assert!(OptimConfig::default().validate().is_ok());
    /// let e = OptimConfig { weight_decay: f64::NAN, ..Default::default() }.validate().unwrap_err();
    /// assert!(e.to_string().contains("optim.weight_decay"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(OptimError::Config(m));
        self.algorithm.check_kernel(self.kernel)?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("optim.lr must be a positive number, got {}", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!("optim.weight_decay must be >= 0, got {}", self.weight_decay));
        }
        if let Some(d) = self.layer_decay {
            if !(d > 0.0 && d <= 1.0) {
                return bad(format!("optim.layer_decay must be in (0, 1], got {d}"));
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            let key = |k: &str| format!("optim.groups[{i}].{k}");
            if g.pattern.trim().is_empty() {
                return bad(format!("{} is empty", key("pattern")));
            }
            if let Some(v) = g.lr_scale {
                if !(v >= 0.0 && v.is_finite()) {
                    return bad(format!("{} must be >= 0, got {v}", key("lr_scale")));
                }
            }
            if let Some(v) = g.lr {
                if !(v > 0.0 && v.is_finite()) {
                    return bad(format!("{} must be a positive number, got {v}", key("lr")));
                }
            }
            if let Some(v) = g.weight_decay {
                if !(v >= 0.0 && v.is_finite()) {
                    return bad(format!("{} must be >= 0, got {v}", key("weight_decay")));
                }
            }
            if let Some(b) = g.betas {
                self.algorithm.with_betas(b).map_err(|e| OptimError::Config(format!("{}: {e}", key("betas"))))?.build_with_kernel(Vec::new(), false, self.kernel).map_err(|e| OptimError::Config(format!("{}: {e}", key("betas"))))?;
            }
        }
        if let Some(la) = &self.lookahead {
            if la.k == 0 || !(0.0..=1.0).contains(&la.alpha) {
                return bad(format!("optim.lookahead needs k >= 1 and alpha in [0, 1], got k = {}, alpha = {}", la.k, la.alpha));
            }
        }
        // The algorithm's own checks (betas, eps, momentum, …), over no parameters.
        self.algorithm.build_with_kernel(Vec::new(), self.flat, self.kernel).map_err(|e| OptimError::Config(format!("optim: {e}")))?;
        Ok(())
    }

    /// Build the optimiser over the trainable variables of `vs`.
    pub fn build(&self, vs: &VarStore) -> Result<Box<dyn Optimizer>> {
        self.algorithm.check_kernel(self.kernel)?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(OptimError::Config(format!("lr must be a positive number, got {}", self.lr)));
        }
        if self.weight_decay < 0.0 {
            return Err(OptimError::Config(format!("weight_decay must be >= 0, got {}", self.weight_decay)));
        }
        let groups = param_groups(vs, self.lr, self.weight_decay, &self.no_decay, self.layer_decay, &self.groups)?;
        let mut opt: Box<dyn Optimizer> = if groups.len() == 1 && groups[0].lr_scale == 1.0 && groups[0].betas.is_none() {
            let g = groups.into_iter().next().ok_or_else(|| OptimError::Config("no parameters".into()))?;
            self.algorithm.build_with_kernel(g.params, self.flat, self.kernel)?
        } else if groups.is_empty() {
            self.algorithm.build_with_kernel(Vec::new(), self.flat, self.kernel)?
        } else {
            let mut built = Vec::new();
            for g in groups {
                let alg = match g.betas {
                    Some(b) => self.algorithm.with_betas(b)?,
                    None => self.algorithm.clone(),
                };
                let names = g.params.iter().map(|p| p.name.clone()).collect();
                built.push((g.lr_scale, names, alg.build_with_kernel(g.params, self.flat, self.kernel)?));
            }
            Box::new(Grouped::new(built))
        };
        if let Some(la) = &self.lookahead {
            opt = Box::new(Lookahead::new(opt, la.clone())?);
        }
        if self.skip_nonfinite {
            opt = Box::new(SkipNonFinite::new(opt));
        }
        Ok(opt)
    }
}
