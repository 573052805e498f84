//! The classifier trait and the model zoo's configuration.

use crate::bilstm::{BiLstm, BiLstmConfig};
use crate::error::Result;
use crate::head::{pool, ClassificationHead, Pooling};
use crate::textcnn::{TextCnn, TextCnnConfig};
use crate::transformer::{TransformerConfig, TransformerEncoder};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// A model mapping padded token ids to class logits.
pub trait TextClassifier: std::fmt::Debug + Send {
    /// Logits `[B, num_labels]` (f32) for `input_ids` `[B, T]` and `attention_mask` `[B, T]`
    /// (1 = token, 0 = padding). `train` switches dropout on.
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor;
}

/// A Transformer encoder, pooling and a classification head.
#[derive(Debug)]
pub struct TransformerClassifier {
    encoder: TransformerEncoder,
    head: ClassificationHead,
    pooling: Pooling,
}

/// Configuration of [`TransformerClassifier`]: the encoder's shape plus the pooling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TransformerClassifierConfig {
    /// Encoder shape.
    #[serde(flatten)]
    pub encoder: TransformerConfig,
    /// How token states become the sentence vector.
    pub pooling: Pooling,
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
}

impl TextClassifier for TransformerClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let h = self.encoder.forward_t(input_ids, attention_mask, train);
        self.head.forward_t(&pool(&h, attention_mask, self.pooling), train)
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

impl ModelConfig {
    /// Build the model with its parameters under `p`.
    pub fn build(&self, p: &nn::Path, vocab_size: i64, num_labels: i64) -> Result<Box<dyn TextClassifier>> {
        Ok(match self {
            ModelConfig::Transformer(c) => Box::new(TransformerClassifier::new(p, vocab_size, num_labels, c)?),
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
