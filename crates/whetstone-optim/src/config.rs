//! Choosing an optimiser from a recipe.

use crate::adamw::{AdamW, AdamWConfig};
use crate::error::{OptimError, Result};
use crate::optimizer::Optimizer;
use crate::params::{named_params, NO_DECAY};
use crate::sgd::{Sgd, SgdConfig};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

/// The algorithm and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Algorithm {
    /// [`AdamW`].
    Adamw(AdamWConfig),
    /// [`Sgd`].
    Sgd(SgdConfig),
}

/// An optimiser recipe: the algorithm, the base learning rate and weight decay.
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
/// (Unknown keys are caught by the recipe loader: serde cannot deny them next to `flatten`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// The algorithm (`kind = "adamw"` or `"sgd"`) and its own settings.
    #[serde(flatten)]
    pub algorithm: Algorithm,
    /// Peak learning rate; a schedule multiplies it.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight decay (decoupled for AdamW, L2 for SGD), not applied to biases and LayerNorm.
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
}

fn default_lr() -> f64 {
    1e-3
}
fn default_wd() -> f64 {
    0.01
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self { algorithm: Algorithm::Adamw(AdamWConfig::default()), lr: default_lr(), weight_decay: default_wd() }
    }
}

impl OptimConfig {
    /// Build the optimiser over the trainable variables of `vs`.
    pub fn build(&self, vs: &VarStore) -> Result<Box<dyn Optimizer>> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(OptimError::Config(format!("lr must be a positive number, got {}", self.lr)));
        }
        if self.weight_decay < 0.0 {
            return Err(OptimError::Config(format!("weight_decay must be >= 0, got {}", self.weight_decay)));
        }
        let params = named_params(vs, self.weight_decay, NO_DECAY);
        Ok(match &self.algorithm {
            Algorithm::Adamw(c) => Box::new(AdamW::new(params, c.clone())?),
            Algorithm::Sgd(c) => Box::new(Sgd::new(params, c.clone())?),
        })
    }
}
