//! A model seen through a perturbation of its input embeddings.

use crate::context::StepContext;
use crate::error::{Result, TrainError};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;
use whetstone_models::{require_embedding_input, EmbeddingInput, TextClassifier};

/// `model` with `delta` `[B, T, dim]` added to its token embeddings:
/// `forward_t(ids, mask, train) = forward_embedded(embed(ids, train) + delta, mask, train)`.
///
/// It is itself an [`EmbeddingInput`] whose `embed` adds `delta`, so an inner objective that
/// works on embeddings (mixup, cutoff) sees the perturbed ones. It offers no other capability:
/// an inner objective that needs per-layer outputs (intermediate-layer distillation) gets a
/// clear error naming the "perturbed" model.
///
/// Adding a zero `delta` changes nothing: `x + 0 = x` exactly, so a clean pass through a
/// `Perturbed` model with `delta = 0` is bit-identical to the plain forward pass.
pub(crate) struct Perturbed<'a> {
    model: &'a dyn TextClassifier,
    embeddings: &'a dyn EmbeddingInput,
    delta: Tensor,
}

// SAFETY: `TextClassifier: Send` lets owned models move into objectives. A `Perturbed` only
// borrows the model: it is built by this crate's strategies on the stack of one backward pass
// and lent to the inner objective as `&dyn TextClassifier`, which cannot cross threads in safe
// code (`TextClassifier` is not `Sync`). No `Perturbed` is ever moved to another thread, and
// none can be built outside this crate.
unsafe impl Send for Perturbed<'_> {}

impl std::fmt::Debug for Perturbed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Perturbed").field("model", &self.model).field("delta", &self.delta.size()).finish()
    }
}

impl<'a> Perturbed<'a> {
    /// `model` with `delta` added to its embeddings; `needed_by` names the strategy in the
    /// error when the model has no [`EmbeddingInput`].
    pub(crate) fn new(model: &'a dyn TextClassifier, delta: Tensor, needed_by: &str) -> Result<Self> {
        let embeddings = require_embedding_input(model, needed_by)?;
        Ok(Self { model, embeddings, delta })
    }
}

impl TextClassifier for Perturbed<'_> {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> whetstone_models::Result<Tensor> {
        self.forward_embedded(&self.embed(input_ids, train)?, attention_mask, train)
    }

    fn kind(&self) -> &'static str {
        "perturbed"
    }

    fn embedding_input(&self) -> Option<&dyn EmbeddingInput> {
        Some(self)
    }
}

impl EmbeddingInput for Perturbed<'_> {
    fn word_embeddings(&self) -> &Tensor {
        self.embeddings.word_embeddings()
    }

    fn embed(&self, input_ids: &Tensor, train: bool) -> whetstone_models::Result<Tensor> {
        let e = self.embeddings.embed(input_ids, train)?;
        if e.size() != self.delta.size() {
            return Err(whetstone_models::ModelError::Config(format!(
                "an embedding perturbation of shape {:?} does not fit the {} model's embeddings {:?}",
                self.delta.size(),
                self.model.kind(),
                e.size()
            )));
        }
        Ok(e.f_add(&self.delta)?)
    }

    fn forward_embedded(&self, embeddings: &Tensor, attention_mask: &Tensor, train: bool) -> whetstone_models::Result<Tensor> {
        self.embeddings.forward_embedded(embeddings, attention_mask, train)
    }
}

/// Run `f` (an inner objective's pass) on `cx`'s model with `delta` added to its embeddings,
/// with the step's Rust-side random stream at `replay`: every pass of one micro-batch replays
/// the same stream, so an inner objective that draws from it (mixup's pairing, cutoff's
/// positions) perturbs the same example in each pass. Dropout (torch's generator) differs
/// between passes, as in the reference implementations.
pub(crate) fn with_delta<R>(cx: &mut StepContext<'_>, delta: &Tensor, replay: &ChaCha8Rng, needed_by: &str, f: impl FnOnce(&mut StepContext<'_>) -> Result<R>) -> Result<R> {
    let perturbed = Perturbed::new(cx.model, delta.shallow_clone(), needed_by)?;
    *cx.rng() = replay.clone();
    cx.with_model(&perturbed, f)
}

/// The gradient that the last backward left on `delta`, or an error when the inner
/// objective's loss does not depend on the model's input embeddings.
pub(crate) fn grad_of(delta: &Tensor, strategy: &str) -> Result<Tensor> {
    let g = delta.grad();
    if !g.defined() {
        return Err(TrainError::Config(format!(
            "{strategy}: the inner objective's loss does not depend on the model's input embeddings (it does not call the model's forward pass)"
        )));
    }
    Ok(g)
}
