//! The classifier trait, the capability look-ups, and the Transformer classifier.
//!
//! [`TransformerClassifier`] lives here, next to the trait, because the transitional
//! [`TextClassifier::as_transformer`] names it; [`crate::pretrained`] builds it and
//! [`crate::ModelConfig`] (in `config.rs`) dispatches to both, so the dependencies between
//! these modules go one way: `classifier` ← `pretrained` ← `config`.

use crate::capability::{EmbeddingInput, LayerOutputs, LayerUnits, Structured};
use crate::multitask::MultiHead;
use crate::error::{ModelError, Result};
use crate::head::{pool, ClassificationHead, Pooling};
use crate::transformer::{EncoderOutput, TransformerConfig, TransformerEncoder};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// A model mapping padded token ids to class logits.
///
/// Beyond `forward_t`, a model may offer capabilities (see [`crate::capability`]) that some
/// strategies need; the provided methods say it has none, and a model that has one
/// overrides the method to return itself.
pub trait TextClassifier: std::fmt::Debug + Send {
    /// Logits `[B, num_labels]` (f32) for `input_ids` `[B, T]` and `attention_mask` `[B, T]`
    /// (1 = token, 0 = padding). `train` switches dropout on.
    ///
    /// A libtorch error (an id outside the vocabulary, an input longer than the model
    /// accepts, tensors of the wrong shape or on the wrong device) is returned as
    /// [`ModelError::Torch`], not raised as a panic.
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor>;

    /// Short name of the architecture, used in error messages: `"transformer"`,
    /// `"textcnn"`, `"bilstm"` for the built-in models, `"model"` unless overridden.
    fn kind(&self) -> &'static str {
        "model"
    }

    /// The model's input embeddings and forward pass from them (adversarial training,
    /// mixup), if it has them. See [`require_embedding_input`].
    fn embedding_input(&self) -> Option<&dyn EmbeddingInput> {
        None
    }

    /// The model's per-layer hidden states and attentions (distillation, early exits), if it
    /// has them. See [`require_layer_outputs`].
    fn layer_outputs(&self) -> Option<&dyn LayerOutputs> {
        None
    }

    /// The model's prunable heads and neurons (structured pruning), if it has them. See
    /// [`require_structured`].
    fn structured(&self) -> Option<&dyn Structured> {
        None
    }

    /// The model's Transformer encoder, for strategies that drive it directly (masked-LM
    /// pretraining ties its decoder to the encoder's word embeddings). See
    /// [`require_transformer_encoder`].
    fn transformer_encoder(&self) -> Option<&TransformerEncoder> {
        None
    }

    /// The model's task heads over a shared encoder (multi-task learning), if it has several.
    /// See [`require_multi_head`].
    fn multi_head(&self) -> Option<&dyn MultiHead> {
        None
    }

    /// The model as the concrete [`TransformerClassifier`]; `None` for other architectures.
    ///
    /// A last resort, for code that needs the concrete Transformer itself (physically
    /// resizing or rebuilding it, int8 conversion, its MLM head): strategies should ask for
    /// a capability instead ([`Self::embedding_input`], [`Self::layer_outputs`],
    /// [`Self::structured`]), which any model can implement.
    fn as_transformer(&self) -> Option<&TransformerClassifier> {
        None
    }
}

/// The model's [`EmbeddingInput`], or an error saying that `needed_by` (e.g. `"FGM"`)
/// needs it and this kind of model does not provide it.
pub fn require_embedding_input<'a>(model: &'a dyn TextClassifier, needed_by: &str) -> Result<&'a dyn EmbeddingInput> {
    model.embedding_input().ok_or_else(|| missing(model, "input embeddings (embed / forward_embedded)", needed_by))
}

/// The model's [`LayerOutputs`], or an error saying that `needed_by` (e.g. `"hidden-state
/// distillation"`) needs them and this kind of model does not provide them.
pub fn require_layer_outputs<'a>(model: &'a dyn TextClassifier, needed_by: &str) -> Result<&'a dyn LayerOutputs> {
    model.layer_outputs().ok_or_else(|| missing(model, "per-layer outputs (hidden states and attentions)", needed_by))
}

/// The model's [`Structured`] view, or an error saying that `needed_by` (e.g. `"structured
/// pruning"`) needs it and this kind of model does not provide it.
pub fn require_structured<'a>(model: &'a dyn TextClassifier, needed_by: &str) -> Result<&'a dyn Structured> {
    model.structured().ok_or_else(|| missing(model, "prunable structure (attention heads and feed-forward neurons)", needed_by))
}

/// The model's Transformer encoder, or an error saying that `needed_by` (e.g. `"masked-LM
/// pretraining"`) needs one and this kind of model has none.
pub fn require_transformer_encoder<'a>(model: &'a dyn TextClassifier, needed_by: &str) -> Result<&'a TransformerEncoder> {
    model.transformer_encoder().ok_or_else(|| missing(model, "a Transformer encoder", needed_by))
}

/// The model's [`MultiHead`] view, or an error saying that `needed_by` (e.g. `"multi-task
/// learning"`) needs one head per task and this kind of model has a single head.
pub fn require_multi_head<'a>(model: &'a dyn TextClassifier, needed_by: &str) -> Result<&'a dyn MultiHead> {
    model.multi_head().ok_or_else(|| missing(model, "one head per task (a multi-task model)", needed_by))
}

fn missing(model: &dyn TextClassifier, capability: &'static str, needed_by: &str) -> ModelError {
    ModelError::Capability { model: model.kind(), capability, needed_by: needed_by.to_string() }
}

/// A Transformer encoder, pooling and a classification head.
#[derive(Debug)]
pub struct TransformerClassifier {
    encoder: TransformerEncoder,
    head: ClassificationHead,
    pooling: Pooling,
}

/// Configuration of [`TransformerClassifier`]: the encoder's shape plus the pooling, or a
/// pretrained checkpoint folder to start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TransformerClassifierConfig {
    /// Encoder shape.
    #[serde(flatten)]
    pub encoder: TransformerConfig,
    /// How token states become the sentence vector.
    pub pooling: Pooling,
    /// A Hugging Face BERT checkpoint folder (see [`crate::pretrained`]) whose encoder to
    /// start from, with a fresh head. Its `config.json` then sets the encoder's shape and
    /// dropout, and the encoder fields here are unused except `max_len`, which must not
    /// exceed the checkpoint's position embeddings. Read by [`crate::ModelConfig::build`];
    /// [`TransformerClassifier::new`] ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<std::path::PathBuf>,
}

impl TransformerClassifier {
    /// Encoder at the root of `p` (BERT names), head at `p / "classifier"`.
    pub fn new(p: &nn::Path, vocab_size: i64, num_labels: i64, c: &TransformerClassifierConfig) -> Result<Self> {
        let encoder = TransformerEncoder::new(p, vocab_size, &c.encoder)?;
        let head = ClassificationHead::new(p, c.encoder.hidden as i64, num_labels, c.encoder.dropout, Some(c.encoder.init_std));
        Ok(Self { encoder, head, pooling: c.pooling })
    }

    /// The encoder.
    pub fn encoder(&self) -> &TransformerEncoder {
        &self.encoder
    }

    /// The classification head.
    pub fn head(&self) -> &ClassificationHead {
        &self.head
    }

    /// How token states are pooled before the head.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Logits `[B, num_labels]` from final token states `[B, T, hidden]`: pooling, then the head.
    pub fn logits_from_states(&self, states: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.head.forward_t(&pool(states, attention_mask, self.pooling)?, train)
    }

    /// The logits with every hidden state (and, with `output_attentions`, the attention
    /// probabilities) of the encoder; see [`TransformerEncoder::forward_hidden_states`].
    pub fn forward_detailed(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool, output_attentions: bool) -> Result<(Tensor, EncoderOutput)> {
        let out = self.encoder.forward_hidden_states(input_ids, attention_mask, train, output_attentions)?;
        Ok((self.logits_from_states(&out.last, attention_mask, train)?, out))
    }

    /// Every parameter with its name in the store the model was built at the root of:
    /// the encoder's BERT names, then `classifier.{weight,bias}`. The tensors share storage.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = self.encoder.named_parameters();
        out.extend(self.head.named_parameters());
        out
    }
}

impl TextClassifier for TransformerClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_embedded(&self.embed(input_ids, train)?, attention_mask, train)
    }

    fn kind(&self) -> &'static str {
        "transformer"
    }

    fn embedding_input(&self) -> Option<&dyn EmbeddingInput> {
        Some(self)
    }

    fn layer_outputs(&self) -> Option<&dyn LayerOutputs> {
        Some(self)
    }

    fn structured(&self) -> Option<&dyn Structured> {
        Some(self)
    }

    fn transformer_encoder(&self) -> Option<&TransformerEncoder> {
        Some(&self.encoder)
    }

    fn as_transformer(&self) -> Option<&TransformerClassifier> {
        Some(self)
    }
}

/// A bare encoder is a model the training loop can drive (masked-LM pretraining trains one
/// with no classification head at all). It has no logits: [`TextClassifier::forward_t`] is an
/// error saying so, and an objective that classifies fails with that error on its first batch.
impl TextClassifier for TransformerEncoder {
    fn forward_t(&self, _input_ids: &Tensor, _attention_mask: &Tensor, _train: bool) -> Result<Tensor> {
        Err(missing(self, "a classification head (logits)", "classification"))
    }

    fn kind(&self) -> &'static str {
        "transformer encoder"
    }

    fn transformer_encoder(&self) -> Option<&TransformerEncoder> {
        Some(self)
    }
}

/// The word embeddings alone are taken out; positions, token types, the embedding
/// LayerNorm and dropout are applied in `forward_embedded`.
impl EmbeddingInput for TransformerClassifier {
    fn word_embeddings(&self) -> &Tensor {
        self.encoder.embeddings().word_weight()
    }

    fn embed(&self, input_ids: &Tensor, _train: bool) -> Result<Tensor> {
        self.encoder.embeddings().words(input_ids)
    }

    fn forward_embedded(&self, embeddings: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.encoder.forward_words(embeddings, attention_mask, train)?;
        self.logits_from_states(&h, attention_mask, train)
    }
}

impl LayerOutputs for TransformerClassifier {
    fn num_layers(&self) -> usize {
        self.encoder.layers().len()
    }

    fn hidden_size(&self) -> usize {
        self.encoder.config().hidden
    }

    fn attention_heads(&self) -> Vec<usize> {
        self.encoder.layers().iter().map(|l| l.shape().heads).collect()
    }

    fn forward_detailed(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool, output_attentions: bool) -> Result<(Tensor, EncoderOutput)> {
        TransformerClassifier::forward_detailed(self, input_ids, attention_mask, train, output_attentions)
    }

    fn logits_from_states(&self, states: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        TransformerClassifier::logits_from_states(self, states, attention_mask, train)
    }
}

/// BERT names: `encoder.layer.{i}.attention.self.{query,key,value}`, …
impl Structured for TransformerClassifier {
    fn layer_units(&self) -> Vec<LayerUnits> {
        let c = self.encoder.config();
        self.encoder
            .layers()
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let p = format!("encoder.layer.{i}");
                let shape = layer.shape();
                LayerUnits {
                    heads: shape.heads,
                    head_dim: c.head_dim(),
                    ffn: shape.ffn,
                    qkv: ["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}")),
                    attention_out: format!("{p}.attention.output.dense"),
                    ffn_in: format!("{p}.intermediate.dense"),
                    ffn_out: format!("{p}.output.dense"),
                }
            })
            .collect()
    }
}
