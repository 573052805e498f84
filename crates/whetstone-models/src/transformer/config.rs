use crate::error::{ModelError, Result};
use serde::{Deserialize, Serialize};

/// Shape of a BERT-style Transformer encoder. Field names follow Hugging Face's `BertConfig`
/// where one exists, so a `config.json` maps onto it directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerConfig {
    /// Number of encoder layers.
    pub layers: usize,
    /// Width of the token states.
    pub hidden: usize,
    /// Attention heads; must divide `hidden`.
    pub heads: usize,
    /// Width of the feed-forward block (BERT uses 4 × hidden).
    pub ffn: usize,
    /// Longest sequence the position embeddings cover.
    pub max_len: usize,
    /// Token-type (segment) vocabulary; BERT uses 2.
    pub type_vocab_size: usize,
    /// Dropout on embeddings, attention output and feed-forward output.
    pub dropout: f64,
    /// Dropout on attention probabilities.
    pub attention_dropout: f64,
    /// Pre-LayerNorm (Xiong et al. 2020: stabler from scratch) instead of BERT's post-LayerNorm.
    pub pre_norm: bool,
    /// LayerNorm epsilon (BERT: 1e-12).
    pub layer_norm_eps: f64,
    /// Standard deviation of the normal initialisation (BERT: 0.02).
    pub init_std: f64,
    /// Per-layer attention heads and feed-forward widths, for encoders whose heads and neurons
    /// were structurally pruned (Michel et al. 2019). Empty (the default) means every layer has
    /// `heads` and `ffn`; otherwise one entry per layer. A head keeps the width
    /// `hidden / heads` of the unpruned model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layer_shapes: Vec<LayerShape>,
}

/// Attention heads and feed-forward width of one encoder layer (see
/// [`TransformerConfig::layer_shapes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerShape {
    /// Attention heads kept in this layer (at least 1).
    pub heads: usize,
    /// Feed-forward neurons kept in this layer (at least 1).
    pub ffn: usize,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        Self {
            layers: 2,
            hidden: 128,
            heads: 2,
            ffn: 512,
            max_len: 512,
            type_vocab_size: 2,
            dropout: 0.1,
            attention_dropout: 0.1,
            pre_norm: false,
            layer_norm_eps: 1e-12,
            init_std: 0.02,
            layer_shapes: Vec::new(),
        }
    }
}

impl TransformerConfig {
    /// Width of one attention head: `hidden / heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    /// Heads and feed-forward width of layer `i`: its [`Self::layer_shapes`] entry, or the
    /// uniform `heads` and `ffn`.
    pub fn layer_shape(&self, i: usize) -> LayerShape {
        self.layer_shapes.get(i).copied().unwrap_or(LayerShape { heads: self.heads, ffn: self.ffn })
    }

    /// True when every layer has the uniform `heads` and `ffn`.
    pub fn is_uniform(&self) -> bool {
        (0..self.layers).all(|i| self.layer_shape(i) == LayerShape { heads: self.heads, ffn: self.ffn })
    }

    /// Check the shape is consistent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.layers == 0 || self.hidden == 0 || self.heads == 0 || self.ffn == 0 || self.max_len == 0 {
            return bad("transformer layers, hidden, heads, ffn and max_len must all be > 0".into());
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(format!("transformer hidden ({}) must be divisible by heads ({})", self.hidden, self.heads));
        }
        for (name, p) in [("dropout", self.dropout), ("attention_dropout", self.attention_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("transformer {name} must be in [0, 1), got {p}"));
            }
        }
        if !self.layer_shapes.is_empty() {
            if self.layer_shapes.len() != self.layers {
                return bad(format!("transformer layer_shapes has {} entries for {} layers", self.layer_shapes.len(), self.layers));
            }
            if let Some(i) = self.layer_shapes.iter().position(|s| s.heads == 0 || s.ffn == 0) {
                return bad(format!("transformer layer_shapes[{i}] must keep at least one head and one ffn neuron"));
            }
        }
        Ok(())
    }
}
