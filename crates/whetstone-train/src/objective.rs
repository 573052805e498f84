//! What the training loop minimises. Strategies (distillation, adversarial training, multi-task)
//! plug in here, around the one loop, rather than copying it.

use tch::{Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::TextClassifier;

/// A training objective: the loss of one batch.
pub trait Objective: Send {
    /// Mean loss over the batch (a scalar with a graph back to the model's parameters).
    fn loss(&mut self, model: &dyn TextClassifier, batch: &Batch) -> Tensor;
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
