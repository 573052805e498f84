//! One training phase of a compression run, on whetstone's one training loop.

use crate::error::Result;
use std::path::Path;
use tch::{nn::VarStore, Device};
use whetstone_data::Encoded;
use whetstone_models::TextClassifier;
use whetstone_optim::{AdamW, AdamWConfig, Optimizer, Param, Schedule};
use whetstone_train::{FitSummary, Objective, TrainConfig, Trainer};

/// What a phase trains and how long.
pub struct Phase<'a> {
    /// The model being trained.
    pub model: &'a dyn TextClassifier,
    /// Its store (checkpointed; the best weights go to `model.safetensors` in `dir`).
    pub vs: &'a VarStore,
    /// The loss.
    pub objective: Box<dyn Objective>,
    /// Epochs over `train`.
    pub epochs: u64,
    /// Peak learning rate (10% warm-up, then linear decay).
    pub lr: f64,
    /// Examples per batch.
    pub batch_size: usize,
    /// Seed of data order and dropout.
    pub seed: u64,
    /// Device of the batches.
    pub device: Device,
    /// Class names for validation reports.
    pub label_names: Vec<String>,
    /// No progress output.
    pub quiet: bool,
}

/// AdamW over `params` (weight decay 0.01 except biases and LayerNorms, already set in them).
pub fn adamw(params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(AdamW::with_layout(params, AdamWConfig::default(), false)?))
}

impl Phase<'_> {
    /// Train with `optim` in `dir`. With an empty `valid` the last weights are kept; otherwise
    /// the best by validation accuracy.
    pub fn run(self, optim: Box<dyn Optimizer>, train: &Encoded, valid: &Encoded, dir: &Path) -> Result<FitSummary> {
        let config = TrainConfig { epochs: self.epochs, batch_size: self.batch_size, log_every: 50, ..Default::default() };
        let mut trainer = Trainer {
            model: self.model,
            vs: self.vs,
            optim,
            objective: self.objective,
            schedule: Schedule::WarmupLinear { warmup_steps: None, warmup_ratio: 0.1 },
            lr: self.lr,
            config,
            seed: self.seed,
            device: self.device,
            run_dir: dir.to_path_buf(),
            label_names: self.label_names,
            quiet: self.quiet,
        };
        Ok(trainer.fit(train, valid, false)?)
    }
}
