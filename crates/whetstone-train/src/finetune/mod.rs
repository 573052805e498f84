//! Fine-tuning a pretrained encoder: the `[finetune]` table of a recipe.
//!
//! Each utility is a small piece around the one [`crate::Trainer`] loop, not a loop of its own:
//!
//! * [`reinit_top_layers`]: re-initialise the top k encoder layers before training, with the
//!   model's own initialisation (Zhang et al. 2021, "Revisiting few-sample BERT fine-tuning":
//!   the top layers of a pretrained BERT are specialised to its pretraining task and transfer
//!   worse than fresh ones).
//! * [`freeze`]: parameters matching a name pattern never train; they get no gradient and the
//!   optimiser never sees them.
//! * [`Freezing`], an [`Optimizer`] wrapper driven by a [`FreezeSchedule`]: a head-only
//!   warm-up (train only the classifier for the first N steps, so that a random head does not
//!   send large gradients into the pretrained encoder; Kumar et al. 2022, "linear probing then
//!   fine-tuning"), or gradual unfreezing (Howard & Ruder 2018, ULMFiT: start with the head,
//!   then unfreeze one more block from the top down every N steps, embeddings last).
//!
//! Two more fine-tuning tools live where they belong: layer-wise learning-rate decay is
//! `[optim] layer_decay` (see [`whetstone_optim::groups`]), and the pooling (`mean`, `cls` or
//! `max`) is `[model] pooling`, for pretrained and fresh encoders alike.
//!
//! ```
//! use whetstone_train::FinetuneConfig;
//! let f: FinetuneConfig = toml::from_str(r#"
//!     freeze = ["embeddings"]     # name patterns frozen for the whole run (default none)
//!     head_warmup_steps = 100     # train only the head first (default 0; or head_warmup_epochs)
//!     reinit_layers = 1           # re-initialise the top encoder layer (default 0)
//! "#).unwrap();
//! assert_eq!(f.head_warmup_steps, 100);
//! assert!(toml::from_str::<FinetuneConfig>("unfreeze_every = 3").is_err()); // unknown keys are rejected
//! ```

mod freeze;
mod reinit;

pub use freeze::{block_depth, freeze, FreezeSchedule, Freezing};
pub use reinit::reinit_top_layers;

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use whetstone_optim::Optimizer;

/// The `[finetune]` table of a recipe. Every field defaults to "off".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneConfig {
    /// Parameter-name patterns frozen for the whole run: a substring (`"embeddings"`) or a glob
    /// with `*` / `?` (`"encoder.layer.0.*"`), matched as the optimiser's `groups` are
    /// (default none).
    pub freeze: Vec<String>,
    /// Train only the head (every parameter outside the embeddings and the encoder layers)
    /// for this many optimiser steps, then everything (default 0: off).
    pub head_warmup_steps: u64,
    /// The head-only warm-up in epochs instead of steps (default 0: off).
    pub head_warmup_epochs: u64,
    /// Gradual unfreezing: only the head trains for the first N steps, then the top encoder
    /// layer joins, then the next one every N steps, the embeddings last (default 0: off).
    pub unfreeze_every_steps: u64,
    /// Gradual unfreezing counted in epochs (ULMFiT unfreezes one layer per epoch; default 0: off).
    pub unfreeze_every_epochs: u64,
    /// Re-initialise the top k encoder layers before training (default 0).
    pub reinit_layers: usize,
}

impl FinetuneConfig {
    /// Check that at most one freeze schedule is set.
    pub fn validate(&self) -> Result<()> {
        let set: Vec<&str> = [
            ("head_warmup_steps", self.head_warmup_steps),
            ("head_warmup_epochs", self.head_warmup_epochs),
            ("unfreeze_every_steps", self.unfreeze_every_steps),
            ("unfreeze_every_epochs", self.unfreeze_every_epochs),
        ]
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, _)| k)
        .collect();
        if set.len() > 1 {
            return Err(TrainError::Config(format!(
                "finetune.{} are alternatives (gradual unfreezing already starts with the head alone); set one",
                set.join(" and finetune.")
            )));
        }
        if let Some(p) = self.freeze.iter().find(|p| p.trim().is_empty()) {
            return Err(TrainError::Config(format!("finetune.freeze: empty pattern `{p}`")));
        }
        Ok(())
    }

    /// The freeze schedule in steps, given the steps in an epoch; `None` when no schedule is set.
    pub fn schedule(&self, steps_per_epoch: u64) -> Option<FreezeSchedule> {
        let steps = |s: u64, e: u64| if s > 0 { s } else { e * steps_per_epoch };
        let head_warmup = steps(self.head_warmup_steps, self.head_warmup_epochs);
        let unfreeze_every = steps(self.unfreeze_every_steps, self.unfreeze_every_epochs);
        (head_warmup > 0 || unfreeze_every > 0).then_some(FreezeSchedule { head_warmup, unfreeze_every })
    }

    /// What happens to the model before the optimiser is built: re-initialise the top
    /// `reinit_layers` (with N(0, `init_std`²), the encoder's initialisation; `None` for a model
    /// that is not a Transformer) and freeze the `freeze` patterns. Returns one line per action.
    pub fn prepare(&self, vs: &VarStore, init_std: Option<f64>, seed: u64) -> Result<Vec<String>> {
        self.validate()?;
        let mut done = Vec::new();
        if self.reinit_layers > 0 {
            let std = init_std.ok_or_else(|| TrainError::Config("finetune.reinit_layers needs a Transformer encoder".into()))?;
            let names = reinit_top_layers(vs, self.reinit_layers, std, seed)?;
            done.push(format!("re-initialised the top {} encoder layer(s): {} tensors, weights N(0, {std}²)", self.reinit_layers, names.len()));
        }
        if !self.freeze.is_empty() {
            let names = freeze(vs, &self.freeze)?;
            let count: i64 = vs.variables().iter().filter(|(n, _)| names.contains(n)).map(|(_, t)| t.numel() as i64).sum();
            done.push(format!("froze {} tensors ({count} parameters) matching {:?}", names.len(), self.freeze));
        }
        Ok(done)
    }

    /// `optim` wrapped in [`Freezing`] when a head-only warm-up or gradual unfreezing is set
    /// (`steps_per_epoch` turns epochs into steps), else `optim` itself.
    pub fn wrap_optimizer(&self, optim: Box<dyn Optimizer>, vs: &VarStore, steps_per_epoch: u64) -> Result<Box<dyn Optimizer>> {
        self.validate()?;
        Ok(match self.schedule(steps_per_epoch) {
            Some(s) => Box::new(Freezing::new(optim, vs, s)?),
            None => optim,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_alternatives_and_epochs_become_steps() {
        let f = FinetuneConfig { head_warmup_epochs: 1, unfreeze_every_steps: 5, ..Default::default() };
        let e = f.validate().unwrap_err().to_string();
        assert!(e.contains("finetune.head_warmup_epochs and finetune.unfreeze_every_steps"), "{e}");
        let f = FinetuneConfig { unfreeze_every_epochs: 2, ..Default::default() };
        assert_eq!(f.schedule(7), Some(FreezeSchedule { head_warmup: 0, unfreeze_every: 14 }));
        assert_eq!(FinetuneConfig::default().schedule(7), None);
    }
}
