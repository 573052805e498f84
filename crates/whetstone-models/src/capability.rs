//! Capabilities a [`TextClassifier`](crate::TextClassifier) may offer beyond `forward_t`,
//! for training and compression strategies that need to see inside the model.
//!
//! * [`EmbeddingInput`]: the input embeddings and a forward pass from them, for adversarial
//!   perturbation (FGM, PGD, FreeLB) and embedding mixup. Every built-in model has it.
//! * [`LayerOutputs`]: every layer's hidden states and attention probabilities, for
//!   intermediate-layer distillation and early exits. The Transformer has it.
//! * [`Structured`]: attention heads and feed-forward neurons by parameter name, for
//!   structured pruning. The Transformer has it.
//!
//! A model announces what it has through [`TextClassifier::embedding_input`],
//! [`TextClassifier::layer_outputs`] and [`TextClassifier::structured`]; a strategy asks
//! for what it needs when it is built, with [`require_embedding_input`],
//! [`require_layer_outputs`] or [`require_structured`], and gets a
//! [`ModelError::Capability`] naming the model and the capability if it is missing, rather
//! than a panic or a NaN in the middle of training.
//!
//! [`TextClassifier`]: crate::TextClassifier
//! [`TextClassifier::embedding_input`]: crate::TextClassifier::embedding_input
//! [`TextClassifier::layer_outputs`]: crate::TextClassifier::layer_outputs
//! [`TextClassifier::structured`]: crate::TextClassifier::structured
//! [`require_embedding_input`]: crate::require_embedding_input
//! [`require_layer_outputs`]: crate::require_layer_outputs
//! [`require_structured`]: crate::require_structured
//! [`ModelError::Capability`]: crate::ModelError::Capability

use crate::error::Result;
use crate::transformer::EncoderOutput;
use tch::Tensor;

/// A model whose forward pass starts from token embeddings that can be taken out, changed
/// and fed back: for adversarial training on the embeddings (FGM, PGD, FreeLB) and mixup.
///
/// `forward_embedded(&embed(ids, train)?, mask, train)` is `forward_t(ids, mask, train)`,
/// bit for bit (with the same random state for dropout).
pub trait EmbeddingInput {
    /// The trainable word-embedding matrix `[vocab, dim]` (the variable itself, so its
    /// gradient is the one an optimiser sees).
    fn word_embeddings(&self) -> &Tensor;

    /// The token embeddings `[B, T, dim]` of `input_ids` `[B, T]` that the forward pass
    /// feeds on: the rows of [`Self::word_embeddings`] only. For the Transformer, position
    /// and token-type embeddings, the embedding LayerNorm and its dropout are added inside
    /// [`Self::forward_embedded`], so perturbing this tensor is the usual perturbation of
    /// the word embeddings. An id outside the vocabulary is an error.
    fn embed(&self, input_ids: &Tensor, train: bool) -> Result<Tensor>;

    /// Logits `[B, num_labels]` from token embeddings `[B, T, dim]` (as [`Self::embed`] gives
    /// them, possibly perturbed or mixed) and `attention_mask` `[B, T]`.
    fn forward_embedded(&self, embeddings: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor>;
}

/// A layered encoder whose intermediate states can be read: for hidden-state, attention and
/// embedding distillation (TinyBERT, MiniLM-style) and early exits.
pub trait LayerOutputs {
    /// Number of encoder layers.
    fn num_layers(&self) -> usize;

    /// Width of the hidden states.
    fn hidden_size(&self) -> usize;

    /// Attention heads of each layer, in order (they differ between layers after structured
    /// pruning).
    fn attention_heads(&self) -> Vec<usize>;

    /// The logits with every hidden state (`num_layers + 1`: the embedding output, then each
    /// layer's) and, with `output_attentions`, each layer's attention probabilities
    /// `[B, heads, T, T]`. The logits are those of `forward_t`, up to rounding when
    /// attentions are computed explicitly.
    fn forward_detailed(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool, output_attentions: bool) -> Result<(Tensor, EncoderOutput)>;

    /// Logits `[B, num_labels]` from final token states `[B, T, hidden]` (as
    /// [`EncoderOutput::last`]): the model's pooling and classification head.
    fn logits_from_states(&self, states: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor>;
}

/// Parameter names and sizes of one Transformer layer's prunable units.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerUnits {
    /// Attention heads in the layer.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Feed-forward neurons in the layer.
    pub ffn: usize,
    /// Prefixes (without `.weight` / `.bias`) of the query, key and value projections, whose
    /// output rows are grouped per head.
    pub qkv: [String; 3],
    /// Prefix of the attention output projection, whose input columns are grouped per head.
    pub attention_out: String,
    /// Prefix of the feed-forward input projection (one output row per neuron).
    pub ffn_in: String,
    /// Prefix of the feed-forward output projection (one input column per neuron).
    pub ffn_out: String,
}

/// A model whose attention heads and feed-forward neurons can be ranked and removed.
///
/// Implemented for whetstone's [`TransformerClassifier`](crate::TransformerClassifier) (BERT
/// names); another architecture implements it by naming its projections.
pub trait Structured {
    /// The prunable units of each layer, in order.
    fn layer_units(&self) -> Vec<LayerUnits>;
}
