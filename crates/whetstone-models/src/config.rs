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

/// The largest size any one dimension of a model may have (it becomes an `i64` in libtorch,
/// and anything near this is far beyond memory anyway).
pub const MAX_DIM: usize = 1 << 31;

/// About how many parameters a Transformer encoder of shape `e` has with a vocabulary of
/// `vocab_size` ids (embeddings, per-layer attention, feed-forward and LayerNorms), without
/// allocating anything. Saturates instead of overflowing.
pub fn transformer_encoder_parameters(e: &crate::TransformerConfig, vocab_size: usize) -> u128 {
    let n = |v: usize| v as u128;
    let h = n(e.hidden);
    let emb = n(vocab_size).saturating_add(n(e.max_len)).saturating_add(n(e.type_vocab_size)).saturating_mul(h).saturating_add(2 * h);
    let head_dim = n(e.head_dim());
    let layer = |heads: usize, ffn: usize| {
        let (a, f) = (n(heads).saturating_mul(head_dim), n(ffn));
        // q, k, v and the output projection; the feed-forward block; two LayerNorms.
        let attn = a.saturating_mul(h).saturating_mul(4).saturating_add(3 * a + h);
        let ffn = f.saturating_mul(h).saturating_mul(2).saturating_add(f + h);
        attn.saturating_add(ffn).saturating_add(4 * h)
    };
    let layers = if e.layer_shapes.is_empty() {
        layer(e.heads, e.ffn).saturating_mul(n(e.layers))
    } else {
        e.layer_shapes.iter().fold(0u128, |acc, s| acc.saturating_add(layer(s.heads, s.ffn)))
    };
    emb.saturating_add(layers)
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

    /// Check every setting of the `[model]` table, naming its key (`model.hidden`, …): sizes
    /// that are zero or do not fit the `i64` libtorch takes, heads that do not divide the
    /// width, dropouts outside `[0, 1)`, non-finite initialisation scales. A `pretrained`
    /// Transformer takes its shape from the checkpoint, so only `model.max_len` is checked.
    ///
    /// ```
    /// use whetstone_models::{ModelConfig, TextCnnConfig};
    /// let bad = ModelConfig::Textcnn(TextCnnConfig { dropout: f64::NAN, ..Default::default() });
    /// assert!(bad.validate().unwrap_err().to_string().contains("model.dropout"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Config(m));
        let dims: Vec<(&str, usize)> = match self {
            ModelConfig::Transformer(c) if c.pretrained.is_some() => vec![("max_len", c.encoder.max_len)],
            ModelConfig::Transformer(c) => {
                let e = &c.encoder;
                vec![("layers", e.layers), ("hidden", e.hidden), ("heads", e.heads), ("ffn", e.ffn), ("max_len", e.max_len), ("type_vocab_size", e.type_vocab_size)]
            }
            ModelConfig::Textcnn(c) => {
                let mut d = vec![("embed_dim", c.embed_dim), ("channels", c.channels)];
                d.extend(c.kernel_sizes.iter().map(|&k| ("kernel_sizes", k)));
                d
            }
            ModelConfig::Bilstm(c) => vec![("embed_dim", c.embed_dim), ("hidden", c.hidden), ("layers", c.layers)],
        };
        for (key, v) in dims {
            if v == 0 {
                return bad(format!("model.{key} must be > 0"));
            }
            if v > MAX_DIM {
                return bad(format!("model.{key} = {v} is too large (at most {MAX_DIM})"));
            }
        }
        let unit = |key: &str, p: f64| if (0.0..1.0).contains(&p) { Ok(()) } else { bad(format!("model.{key} must be in [0, 1), got {p}")) };
        match self {
            ModelConfig::Transformer(c) => {
                if c.pretrained.is_some() {
                    return Ok(());
                }
                let e = &c.encoder;
                if e.hidden % e.heads != 0 {
                    return bad(format!("model.hidden ({}) must be divisible by model.heads ({})", e.hidden, e.heads));
                }
                unit("dropout", e.dropout)?;
                unit("attention_dropout", e.attention_dropout)?;
                if !(e.layer_norm_eps > 0.0 && e.layer_norm_eps.is_finite()) {
                    return bad(format!("model.layer_norm_eps must be a positive number, got {}", e.layer_norm_eps));
                }
                if !(e.init_std >= 0.0 && e.init_std.is_finite()) {
                    return bad(format!("model.init_std must be >= 0, got {}", e.init_std));
                }
                if let Some(i) = e.layer_shapes.iter().position(|s| s.heads > e.heads || s.ffn > MAX_DIM) {
                    return bad(format!("model.layer_shapes[{i}] keeps more heads than model.heads ({}) or too many ffn neurons", e.heads));
                }
                e.validate()
            }
            ModelConfig::Textcnn(c) => {
                unit("dropout", c.dropout)?;
                if !(c.init_range >= 0.0 && c.init_range.is_finite()) {
                    return bad(format!("model.init_range must be >= 0, got {}", c.init_range));
                }
                Ok(())
            }
            ModelConfig::Bilstm(c) => unit("dropout", c.dropout),
        }
    }

    /// About how many parameters the model has with a vocabulary of `vocab_size` ids and
    /// `num_labels` classes, computed from the configuration alone (nothing is allocated), so
    /// that a shape too large for memory is refused before it is built. Saturates instead of
    /// overflowing. `None` for a `pretrained` Transformer, whose shape is the checkpoint's.
    ///
    /// ```
    /// use whetstone_models::{ModelConfig, TextCnnConfig};
    /// let c = ModelConfig::Textcnn(TextCnnConfig { embed_dim: 10, kernel_sizes: vec![3], channels: 4, ..Default::default() });
    /// // embeddings 100×10, conv 4×10×3 + 4, classifier 4×2 + 2
    /// assert_eq!(c.estimated_parameters(100, 2), Some(1000 + 124 + 10));
    /// ```
    pub fn estimated_parameters(&self, vocab_size: usize, num_labels: usize) -> Option<u128> {
        let n = |v: usize| v as u128;
        let (v, l) = (n(vocab_size), n(num_labels));
        Some(match self {
            ModelConfig::Transformer(c) if c.pretrained.is_some() => return None,
            ModelConfig::Transformer(c) => transformer_encoder_parameters(&c.encoder, vocab_size).saturating_add(n(c.encoder.hidden) * l + l),
            ModelConfig::Textcnn(c) => {
                let (e, ch) = (n(c.embed_dim), n(c.channels));
                let convs = c.kernel_sizes.iter().fold(0u128, |acc, &k| acc.saturating_add(n(k).saturating_mul(e).saturating_mul(ch).saturating_add(ch)));
                v.saturating_mul(e).saturating_add(convs).saturating_add(ch.saturating_mul(n(c.kernel_sizes.len())).saturating_mul(l).saturating_add(l))
            }
            ModelConfig::Bilstm(c) => {
                let (e, h) = (n(c.embed_dim), n(c.hidden));
                // Two directions × (4h × (input + h) weights + 8h biases); the first layer reads
                // the embeddings, the others both directions of the layer below.
                let layer = |input: u128| (8 * h).saturating_mul(input.saturating_add(h)).saturating_add(16 * h);
                let layers = layer(e).saturating_add(layer(2 * h).saturating_mul(n(c.layers.saturating_sub(1))));
                v.saturating_mul(e).saturating_add(layers).saturating_add(2 * h * l + l)
            }
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
