//! The classifier trait and the model zoo's configuration.

use crate::bilstm::{BiLstm, BiLstmConfig};
use crate::error::{ModelError, Result};
use crate::head::{pool, ClassificationHead, Pooling};
use crate::pretrained::BertCheckpoint;
use crate::textcnn::{TextCnn, TextCnnConfig};
use crate::transformer::{EncoderOutput, TransformerConfig, TransformerEncoder};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Tensor};

/// A model mapping padded token ids to class logits.
pub trait TextClassifier: std::fmt::Debug + Send {
    /// Logits `[B, num_labels]` (f32) for `input_ids` `[B, T]` and `attention_mask` `[B, T]`
    /// (1 = token, 0 = padding). `train` switches dropout on.
    ///
    /// A libtorch error (an id outside the vocabulary, an input longer than the model
    /// accepts, tensors of the wrong shape or on the wrong device) is returned as
    /// [`ModelError::Torch`], not raised as a panic.
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor>;

    /// The model as a [`TransformerClassifier`], for strategies that need its layers (hidden
    /// state distillation, structured pruning); `None` for other architectures.
    fn as_transformer(&self) -> Option<&TransformerClassifier> {
        None
    }
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
    /// exceed the checkpoint's position embeddings.
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

    /// A classifier whose encoder is the pretrained checkpoint in `dir` (Hugging Face BERT
    /// layout) and whose head is fresh, or the checkpoint's own `classifier.*` if it has one.
    /// Shorthand for [`BertCheckpoint::open`] then [`BertCheckpoint::load_classifier`].
    pub fn from_pretrained(p: &nn::Path, dir: &Path, num_labels: i64, pooling: Pooling) -> Result<Self> {
        BertCheckpoint::open(dir)?.load_classifier(p, num_labels, pooling)
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
        let h = self.encoder.forward_t(input_ids, attention_mask, train)?;
        self.logits_from_states(&h, attention_mask, train)
    }

    fn as_transformer(&self) -> Option<&TransformerClassifier> {
        Some(self)
    }
}

/// Any of the built-in classifiers, selected by `kind` in a recipe's `[model]` table.
///
/// ```
/// use whetstone_models::ModelConfig;
/// let c: ModelConfig = serde_json::from_str(r#"{"kind": "textcnn", "embed_dim": 64}"#).unwrap();
/// assert!(matches!(c, ModelConfig::Textcnn(ref t) if t.embed_dim == 64));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    /// BERT-style encoder with a pooled classification head.
    Transformer(TransformerClassifierConfig),
    /// Kim's TextCNN.
    Textcnn(TextCnnConfig),
    /// Bidirectional LSTM.
    Bilstm(BiLstmConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Textcnn(TextCnnConfig::default())
    }
}

/// A recipe's `pretrained` classifier, after checking the recipe's tokenizer and `max_len`
/// fit the checkpoint.
fn build_pretrained(p: &nn::Path, dir: &Path, vocab_size: i64, num_labels: i64, c: &TransformerClassifierConfig) -> Result<TransformerClassifier> {
    let ckpt = BertCheckpoint::open(dir)?;
    let at = dir.display().to_string();
    if ckpt.vocab_size() != vocab_size {
        return Err(ModelError::Pretrained {
            path: at,
            message: format!(
                "the tokenizer has {vocab_size} ids but the checkpoint's vocabulary has {}: use its {} as the tokenizer",
                ckpt.vocab_size(),
                ckpt.tokenizer_path().display()
            ),
        });
    }
    if c.encoder.max_len > ckpt.encoder_config().max_len {
        return Err(ModelError::Pretrained {
            path: at,
            message: format!("max_len {} exceeds the checkpoint's {} position embeddings", c.encoder.max_len, ckpt.encoder_config().max_len),
        });
    }
    ckpt.load_classifier(p, num_labels, c.pooling)
}

impl ModelConfig {
    /// Build the model with its parameters under `p`.
    pub fn build(&self, p: &nn::Path, vocab_size: i64, num_labels: i64) -> Result<Box<dyn TextClassifier>> {
        Ok(match self {
            ModelConfig::Transformer(c) => match &c.pretrained {
                None => Box::new(TransformerClassifier::new(p, vocab_size, num_labels, c)?),
                Some(dir) => Box::new(build_pretrained(p, dir, vocab_size, num_labels, c)?),
            },
            ModelConfig::Textcnn(c) => Box::new(TextCnn::new(p, vocab_size, num_labels, c)?),
            ModelConfig::Bilstm(c) => Box::new(BiLstm::new(p, vocab_size, num_labels, c)?),
        })
    }

    /// Short name of the architecture.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Transformer(_) => "transformer",
            ModelConfig::Textcnn(_) => "textcnn",
            ModelConfig::Bilstm(_) => "bilstm",
        }
    }

    /// Longest input the model accepts (position embeddings), if it has a limit.
    pub fn max_len(&self) -> Option<usize> {
        match self {
            ModelConfig::Transformer(c) => Some(c.encoder.max_len),
            _ => None,
        }
    }
}
