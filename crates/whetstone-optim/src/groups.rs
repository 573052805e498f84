//! Parameter groups: per-name learning-rate scales, weight decay and betas.
//!
//! Each parameter's settings are resolved in this order:
//! 1. weight decay = the recipe's, or 0 when the name matches a `no_decay` pattern (default
//!    [`crate::NO_DECAY`]: biases and LayerNorm);
//! 2. layer-wise learning-rate decay (Clark et al. 2020, ELECTRA; Bao et al. 2022, BEiT): with
//!    `L` Transformer layers, a parameter of layer `N` (`…layer.N.…`, `layers.N`, `blocks.N`,
//!    `h.N`) gets `lr × decay^(L−1−N)`, embeddings (names containing `embed`) `lr × decay^L`,
//!    everything else (heads, poolers, final norms) `lr × 1`;
//! 3. the explicit `groups`, in order (a later match overrides an earlier one field by field):
//!    `lr_scale` multiplies, `lr` sets an absolute peak rate (scaled by the schedule like the
//!    base rate), `weight_decay` and `betas` replace.
//!
//! Parameters with equal settings form one group; each group is optimised by its own instance
//! of the algorithm (with its own flat buffers) and [`Grouped`] steps them all.

use crate::error::{OptimError, Result};
use crate::optimizer::Optimizer;
use crate::params::{name_matches, Param};
use crate::state::OptimState;
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Tensor};

/// One `groups = [{ pattern = "...", ... }]` entry of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Names to select (see [`crate::name_matches`]: substring, or glob with `*`/`?`).
    pub pattern: String,
    /// Multiply the learning rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_scale: Option<f64>,
    /// Absolute peak learning rate (replaces base lr × scales).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Weight decay for these parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// (β₁, β₂) for algorithms that have them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub betas: Option<(f64, f64)>,
}

/// Parameters that share settings.
#[derive(Debug)]
pub struct ParamGroup {
    /// Multiplier of the step's learning rate.
    pub lr_scale: f64,
    /// Betas override, if any.
    pub betas: Option<(f64, f64)>,
    /// The members (each with its weight decay).
    pub params: Vec<Param>,
}

/// The Transformer layer index in `name`, if any (`encoder.layer.3.…` → 3).
pub fn layer_index(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).find(|w| matches!(w[0], "layer" | "layers" | "blocks" | "h") && w[1].parse::<usize>().is_ok()).and_then(|w| w[1].parse().ok())
}

/// Layer-wise learning-rate decay factor of `name` with `num_layers` layers (see the module docs).
///
/// ```
/// use whetstone_optim::layer_decay_scale;
/// assert_eq!(layer_decay_scale("encoder.layer.5.ffn.weight", 0.5, 6), 1.0);
/// assert_eq!(layer_decay_scale("encoder.layer.4.ffn.weight", 0.5, 6), 0.5);
/// assert_eq!(layer_decay_scale("embeddings.word.weight", 0.5, 6), 0.5f64.powi(6));
/// assert_eq!(layer_decay_scale("classifier.weight", 0.5, 6), 1.0);
/// ```
pub fn layer_decay_scale(name: &str, decay: f64, num_layers: usize) -> f64 {
    match layer_index(name) {
        Some(n) => decay.powi((num_layers.saturating_sub(1 + n)) as i32),
        None if name.contains("embed") => decay.powi(num_layers as i32),
        None => 1.0,
    }
}

/// Split the trainable variables of `vs` into groups (see the module docs).
pub fn param_groups(vs: &VarStore, base_lr: f64, weight_decay: f64, no_decay: &[String], layer_decay: Option<f64>, specs: &[GroupSpec]) -> Result<Vec<ParamGroup>> {
    let nd: Vec<&str> = no_decay.iter().map(String::as_str).collect();
    let params = crate::params::named_params(vs, weight_decay, &nd);
    let num_layers = params.iter().filter_map(|p| layer_index(&p.name)).max().map_or(0, |m| m + 1);
    if let Some(d) = layer_decay {
        if !(d > 0.0 && d <= 1.0) {
            return Err(OptimError::Config(format!("layer_decay must be in (0, 1], got {d}")));
        }
    }
    let mut groups: Vec<ParamGroup> = Vec::new();
    for mut p in params {
        let mut scale = layer_decay.map_or(1.0, |d| layer_decay_scale(&p.name, d, num_layers));
        let mut betas = None;
        for s in specs.iter().filter(|s| name_matches(&s.pattern, &p.name)) {
            if let Some(k) = s.lr_scale {
                scale *= k;
            }
            if let Some(lr) = s.lr {
                scale = lr / base_lr;
            }
            if let Some(wd) = s.weight_decay {
                p.weight_decay = wd;
            }
            if s.betas.is_some() {
                betas = s.betas;
            }
        }
        if !(scale >= 0.0 && scale.is_finite()) || p.weight_decay < 0.0 {
            return Err(OptimError::Config(format!("parameter `{}` gets lr scale {scale} and weight decay {}", p.name, p.weight_decay)));
        }
        match groups.iter_mut().find(|g| g.lr_scale == scale && g.betas == betas) {
            Some(g) => g.params.push(p),
            None => groups.push(ParamGroup { lr_scale: scale, betas, params: vec![p] }),
        }
    }
    Ok(groups)
}

/// Several optimisers, one per parameter group, stepped together with `lr × lr_scale`.
/// State names of parameters are unique already; other names (scalars such as
/// `nadam.mu_product`) are prefixed `groups.{i}.`.
#[derive(Debug)]
pub struct Grouped {
    groups: Vec<(f64, Vec<String>, Box<dyn Optimizer>)>,
}

impl Grouped {
    /// `(lr scale, member names, optimiser)` per group.
    pub fn new(groups: Vec<(f64, Vec<String>, Box<dyn Optimizer>)>) -> Self {
        Self { groups }
    }

    /// The learning-rate scale of each group.
    pub fn lr_scales(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.0).collect()
    }
}

fn owned_by(names: &[String], key: &str) -> bool {
    names.iter().any(|n| key.len() > n.len() && key.starts_with(n.as_str()) && key.as_bytes()[n.len()] == b'.')
}

impl Optimizer for Grouped {
    fn step(&mut self, lr: f64) -> Result<()> {
        for (scale, _, opt) in &mut self.groups {
            opt.step(lr * *scale)?;
        }
        Ok(())
    }
    fn params(&self) -> Vec<&Tensor> {
        self.groups.iter().flat_map(|g| g.2.params()).collect()
    }
    fn begin_step(&mut self) -> Result<()> {
        self.groups.iter_mut().try_for_each(|g| g.2.begin_step())
    }
    fn zero_grad(&mut self) {
        for g in &mut self.groups {
            g.2.zero_grad();
        }
    }
    fn state(&self) -> OptimState {
        let mut tensors = Vec::new();
        let mut step = 0;
        for (i, (_, names, opt)) in self.groups.iter().enumerate() {
            let s = opt.state();
            step = step.max(s.step);
            for (n, t) in s.tensors {
                let n = if owned_by(names, &n) { n } else { format!("groups.{i}.{n}") };
                tensors.push((n, t));
            }
        }
        OptimState { step, tensors }
    }
    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        for (i, (_, names, opt)) in self.groups.iter_mut().enumerate() {
            let prefix = format!("groups.{i}.");
            let tensors = state
                .tensors
                .iter()
                .filter_map(|(n, t)| {
                    if let Some(rest) = n.strip_prefix(&prefix) {
                        Some((rest.to_string(), t.shallow_clone()))
                    } else if owned_by(names, n) {
                        Some((n.clone(), t.shallow_clone()))
                    } else {
                        None
                    }
                })
                .collect();
            opt.load_state(&OptimState { step: state.step, tensors })?;
        }
        Ok(())
    }
    fn skipped_steps(&self) -> u64 {
        self.groups.iter().map(|g| g.2.skipped_steps()).max().unwrap_or(0)
    }
    fn eval_mode(&mut self) -> Result<()> {
        self.groups.iter_mut().try_for_each(|g| g.2.eval_mode())
    }
    fn train_mode(&mut self) -> Result<()> {
        self.groups.iter_mut().try_for_each(|g| g.2.train_mode())
    }
}
