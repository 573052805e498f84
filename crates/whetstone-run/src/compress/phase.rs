//! One training phase of a compression run, on whetstone's one training loop.

use whetstone_compress::Result;
use std::path::Path;
use tch::{nn::VarStore, Device};
use whetstone_data::{BucketedSource, Encoded};
use whetstone_models::TextClassifier;
use whetstone_optim::{Optimizer, Schedule};
use whetstone_train::{FitSummary, Objective, Silent, TrainConfig, Trainer};

/// What a phase trains and how: any objective, any optimiser (built from any
/// [`whetstone_optim::OptimConfig`] by [`whetstone_compress::build_optimizer`], possibly wrapped, e.g.
/// by [`whetstone_compress::Masked`]), any schedule and the loop's settings.
pub struct Phase<'a> {
    /// The model being trained.
    pub model: &'a dyn TextClassifier,
    /// Its store (checkpointed; the best weights go to `model.safetensors` in the phase's folder).
    pub vs: &'a VarStore,
    /// The training strategy.
    pub objective: Box<dyn Objective>,
    /// The optimiser.
    pub optim: Box<dyn Optimizer>,
    /// Peak learning rate; the schedule multiplies it.
    pub lr: f64,
    /// Precision of the forward passes.
    pub precision: whetstone_train::Precision,
    /// The learning-rate schedule, over the phase's steps.
    pub schedule: Schedule,
    /// Epochs, batch size, clipping, validation cadence, …
    pub train: TrainConfig,
    /// Seed of data order and dropout.
    pub seed: u64,
    /// Device of the batches.
    pub device: Device,
    /// Class names for validation reports.
    pub label_names: Vec<String>,
    /// No progress output.
    pub quiet: bool,
}

impl Phase<'_> {
    /// Train on `train` in length-bucketed batches, in `dir`. With an empty `valid` the last
    /// weights are kept; otherwise the best by the objective's validation (for
    /// classification, `train.metric`).
    ///
    /// A phase is not resumable: the trainer's checkpoint is removed from `dir` once it has
    /// finished ([`Trainer::keep_checkpoint`]), so that a compressed run folder holds the model,
    /// not a training state several times its size.
    pub fn run(self, train: &Encoded, valid: &Encoded, dir: &Path) -> Result<FitSummary> {
        let source = BucketedSource::new(train, self.train.batch_size, self.train.bucket_factor);
        let mut trainer = Trainer::new(self.model, self.vs, self.optim, self.lr, dir)
            .objective(self.objective)
            .schedule(self.schedule)
            .config(self.train)
            .seed(self.seed)
            .device(self.device)
            .precision(self.precision)
            .label_names(self.label_names)
            .keep_checkpoint(false);
        if self.quiet {
            trainer = trainer.observer(Silent);
        }
        Ok(trainer.fit(&source, valid, false)?)
    }
}
