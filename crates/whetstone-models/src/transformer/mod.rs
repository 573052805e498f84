//! A BERT-compatible Transformer encoder.
//!
//! Parameter names match Hugging Face BERT checkpoints without a `bert.` prefix
//! (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, …), so such
//! checkpoints load without renaming.

mod attention;
mod config;
mod embeddings;
mod layer;
mod mlm_head;

pub use config::{LayerShape, TransformerConfig};
pub use embeddings::Embeddings;
pub use layer::EncoderLayer;
pub use mlm_head::MlmHead;

use crate::error::Result;
use tch::{nn, Tensor};

fn linear_init(c: &TransformerConfig) -> nn::LinearConfig {
    nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: c.init_std }, bs_init: Some(nn::Init::Const(0.0)), bias: true }
}

fn layer_norm(p: &nn::Path, h: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![h], nn::LayerNormConfig { eps, ..Default::default() })
}

/// `prefix.weight` and `prefix.bias` of a linear layer.
fn linear_parameters(prefix: &str, l: &nn::Linear) -> Vec<(String, Tensor)> {
    let mut out = vec![(format!("{prefix}.weight"), l.ws.shallow_clone())];
    out.extend(l.bs.as_ref().map(|b| (format!("{prefix}.bias"), b.shallow_clone())));
    out
}

/// `prefix.weight` and `prefix.bias` of a LayerNorm.
fn layer_norm_parameters(prefix: &str, n: &nn::LayerNorm) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    out.extend(n.ws.as_ref().map(|w| (format!("{prefix}.weight"), w.shallow_clone())));
    out.extend(n.bs.as_ref().map(|b| (format!("{prefix}.bias"), b.shallow_clone())));
    out
}

/// Every intermediate state of an encoder pass ([`TransformerEncoder::forward_hidden_states`]),
/// as Hugging Face's `output_hidden_states` / `output_attentions` give them.
#[derive(Debug)]
pub struct EncoderOutput {
    /// `layers + 1` states `[B, T, hidden]`: the embedding output, then each layer's output.
    pub hidden_states: Vec<Tensor>,
    /// Attention probabilities `[B, heads, T, T]` of each layer, when requested (else empty).
    pub attentions: Vec<Tensor>,
    /// The encoder's output: the last hidden state, after the final LayerNorm with pre-LN.
    pub last: Tensor,
}

/// Embeddings followed by `layers` encoder blocks.
#[derive(Debug)]
pub struct TransformerEncoder {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    /// Final LayerNorm, present only with pre-LN (`encoder.LayerNorm`).
    final_norm: Option<nn::LayerNorm>,
    config: TransformerConfig,
}

impl TransformerEncoder {
    /// Build the encoder with parameters under `p` (use the store root for BERT names).
    pub fn new(p: &nn::Path, vocab_size: i64, config: &TransformerConfig) -> Result<Self> {
        config.validate()?;
        let enc = p / "encoder";
        let layers = (0..config.layers).map(|i| EncoderLayer::new(&(&enc / "layer" / i), config, config.layer_shape(i))).collect();
        let final_norm = config.pre_norm.then(|| layer_norm(&(&enc / "LayerNorm"), config.hidden as i64, config.layer_norm_eps));
        Ok(Self { embeddings: Embeddings::new(&(p / "embeddings"), vocab_size, config), layers, final_norm, config: config.clone() })
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// The embedding layer.
    pub fn embeddings(&self) -> &Embeddings {
        &self.embeddings
    }

    /// The encoder blocks, in order.
    pub fn layers(&self) -> &[EncoderLayer] {
        &self.layers
    }

    /// The key mask `[B, 1, 1, T]` (true = may be attended to) the blocks take, from an
    /// `attention_mask` `[B, T]` (1 = token, 0 = padding).
    pub fn attention_keep(attention_mask: &Tensor) -> Result<Tensor> {
        Ok(attention_mask.f_ne(0)?.f_unsqueeze(1)?.f_unsqueeze(1)?)
    }

    /// The final LayerNorm (pre-LN only), applied to the last block's output; identity otherwise.
    pub fn finish(&self, x: Tensor) -> Result<Tensor> {
        match &self.final_norm {
            Some(n) => crate::ops::layer_norm(&x, n, self.config.layer_norm_eps),
            None => Ok(x),
        }
    }

    /// Number of rows of the word-embedding matrix.
    pub fn vocab_size(&self) -> i64 {
        self.embeddings.word_weight().size()[0]
    }

    /// Every parameter with its Hugging Face BERT name (no `bert.` prefix), in model order.
    ///
    /// The tensors share storage with the model, so this is what checkpoint export writes
    /// and what pretrained loading copies into, whatever path the encoder was built under.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> =
            self.embeddings.named_parameters().into_iter().map(|(n, t)| (format!("embeddings.{n}"), t)).collect();
        for (i, layer) in self.layers.iter().enumerate() {
            out.extend(layer.named_parameters().into_iter().map(|(n, t)| (format!("encoder.layer.{i}.{n}"), t)));
        }
        if let Some(norm) = &self.final_norm {
            out.extend(layer_norm_parameters("encoder.LayerNorm", norm));
        }
        out
    }

    /// Token states `[B, T, hidden]` for `input_ids` `[B, T]` and `attention_mask` `[B, T]`
    /// (1 = token, 0 = padding; padded keys get no attention). An id outside the vocabulary,
    /// an input longer than `max_len` or a mask of another shape is an error.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_words(&self.embeddings.words(input_ids)?, attention_mask, train)
    }

    /// As [`Self::forward_t`] from the word embeddings `[B, T, hidden]` of the input
    /// ([`Embeddings::words`]), e.g. perturbed ones; positions, token types and the embedding
    /// LayerNorm are added here. `forward_words(words(ids))` is `forward_t(ids)`, bit for bit.
    pub fn forward_words(&self, words: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let keep = Self::attention_keep(attention_mask)?;
        let mut x = self.embeddings.forward_words(words, train)?;
        for layer in &self.layers {
            x = layer.forward_t(&x, &keep, train)?;
        }
        self.finish(x)
    }

    /// As [`Self::forward_t`], keeping every layer's output and, with `output_attentions`,
    /// the attention probabilities (computed explicitly instead of with the fused kernel).
    pub fn forward_hidden_states(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool, output_attentions: bool) -> Result<EncoderOutput> {
        let keep = Self::attention_keep(attention_mask)?;
        let mut x = self.embeddings.forward_t(input_ids, train)?;
        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        let mut attentions = Vec::new();
        for layer in &self.layers {
            let y = if output_attentions {
                let (y, p) = layer.forward_with_probs(&x, &keep, train)?;
                attentions.push(p);
                y
            } else {
                layer.forward_t(&x, &keep, train)?
            };
            hidden_states.push(std::mem::replace(&mut x, y));
        }
        let last = self.finish(x.shallow_clone())?;
        hidden_states.push(x);
        Ok(EncoderOutput { hidden_states, attentions, last })
    }
}
