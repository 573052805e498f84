//! The model zoo's configuration: which classifier a recipe builds.
//!
//! This module sits above the models and [`crate::pretrained`]: it dispatches to each model's
//! constructor, and to a pretrained checkpoint for a Transformer that names one.

use crate::bilstm::{BiLstm, BiLstmConfig};
use crate::classifier::{TextClassifier, TransformerClassifier, TransformerClassifierConfig};
use crate::error::{ModelError, Result};
use crate::pretrained::BertCheckpoint;
use crate::textcnn::{TextCnn, TextCnnConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn;

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
