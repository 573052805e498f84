//! What the training loop minimises. Strategies (distillation, adversarial training, multi-task)
//! plug in here, around the one loop, rather than copying it.

use tch::{Device, Kind, Tensor};
use whetstone_data::{Batch, Encoded};
use whetstone_models::TextClassifier;

/// A training objective: the loss of one batch.
pub trait Objective: Send {
    /// Mean loss over the batch (a scalar with a graph back to the model's parameters).
    fn loss(&mut self, model: &dyn TextClassifier, batch: &Batch) -> Tensor;

    /// Validation for objectives that are not classification (masked-LM pretraining, …).
    /// `None` (the default) lets the trainer classify `valid` and score the predictions.
    fn validate(&mut self, _model: &dyn TextClassifier, _valid: &Encoded, _batch_size: usize, _device: Device) -> Option<crate::Result<Validation>> {
        None
    }
}

/// What [`Objective::validate`] measured.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The number that selects the best checkpoint; higher is better (e.g. minus the loss).
    pub metric: f64,
    /// How to print it, e.g. `perplexity 41.2`.
    pub summary: String,
    /// Fields for the metrics log's `valid` record (the trainer adds `split`, `step`, `epoch`).
    pub record: serde_json::Map<String, serde_json::Value>,
}

/// Cross-entropy of the model's logits against the gold labels, with optional label smoothing.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy {
    /// Label smoothing ε (Szegedy et al. 2016); 0 disables.
    pub label_smoothing: f64,
}

impl Objective for CrossEntropy {
    fn loss(&mut self, model: &dyn TextClassifier, batch: &Batch) -> Tensor {
        let logits = model.forward_t(&batch.input_ids, &batch.attention_mask, true);
        logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(&batch.labels, None, tch::Reduction::Mean, -100, self.label_smoothing)
    }
}
