//! What a strategy may reach during a step or a validation.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn::VarStore, Device};
use whetstone_models::TextClassifier;

/// What an [`crate::Objective`] sees during one optimiser step.
pub struct StepContext<'a> {
    /// The model being trained.
    pub model: &'a dyn TextClassifier,
    /// Its variables (the trainable ones are `vs.trainable_variables()`).
    pub vs: &'a VarStore,
    /// Optimiser steps completed before this one.
    pub step: u64,
    /// The current epoch (0-based).
    pub epoch: u64,
    /// Where batches and the model live.
    pub device: Device,
    /// The seed of this step's random streams, fixed by the run's seed and the step.
    pub seed: u64,
    rng: ChaCha8Rng,
}

impl<'a> StepContext<'a> {
    /// The context of step `step` (torch's generator is reseeded from `seed` by the loop).
    pub fn new(model: &'a dyn TextClassifier, vs: &'a VarStore, step: u64, epoch: u64, device: Device, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Self { model, vs, step, epoch, device, seed, rng }
    }

    /// A Rust-side random stream fixed by `(run seed, step)`: resumable like torch's.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Run `f` with a context whose model is `model` (everything else, the random stream
    /// included, is this context's): for decorators that run their inner objective on a
    /// changed model, such as adversarial training on perturbed embeddings
    /// ([`crate::adversarial`]). The random stream continues where `f` left it.
    pub fn with_model<R>(&mut self, model: &dyn TextClassifier, f: impl FnOnce(&mut StepContext<'_>) -> R) -> R {
        let mut sub = StepContext { model, vs: self.vs, step: self.step, epoch: self.epoch, device: self.device, seed: self.seed, rng: self.rng.clone() };
        let out = f(&mut sub);
        self.rng = sub.rng;
        out
    }
}

/// What an [`crate::Objective`] sees when it validates.
pub struct EvalContext<'a> {
    /// The model, with the weights to score (an optimiser's evaluation weights where they differ).
    pub model: &'a dyn TextClassifier,
    /// Its variables.
    pub vs: &'a VarStore,
    /// Where the model lives.
    pub device: Device,
    /// Examples per evaluation batch.
    pub batch_size: usize,
    /// The run's metric for classification (`accuracy`, `macro_f1` or `mcc`).
    pub metric: &'a str,
    /// Class names, for reports.
    pub label_names: &'a [String],
}
