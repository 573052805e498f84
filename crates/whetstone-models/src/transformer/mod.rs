//! A BERT-compatible Transformer encoder.
//!
//! Parameter names match Hugging Face BERT checkpoints without a `bert.` prefix
//! (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, …), so such
//! checkpoints load without renaming.

mod attention;
mod config;
mod embeddings;
mod layer;

pub use config::TransformerConfig;
pub use embeddings::Embeddings;
pub use layer::EncoderLayer;

use crate::error::Result;
use tch::{nn, Tensor};

fn linear_init(c: &TransformerConfig) -> nn::LinearConfig {
    nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: c.init_std }, bs_init: Some(nn::Init::Const(0.0)), bias: true }
}

fn layer_norm(p: &nn::Path, h: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![h], nn::LayerNormConfig { eps, ..Default::default() })
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
        let layers = (0..config.layers).map(|i| EncoderLayer::new(&(&enc / "layer" / i), config)).collect();
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

    /// Token states `[B, T, hidden]` for `input_ids` `[B, T]` and `attention_mask` `[B, T]`
    /// (1 = token, 0 = padding; padded keys get no attention).
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let keep = attention_mask.ne(0).unsqueeze(1).unsqueeze(1);
        let mut x = self.embeddings.forward_t(input_ids, train);
        for layer in &self.layers {
            x = layer.forward_t(&x, &keep, train);
        }
        match &self.final_norm {
            Some(n) => x.apply(n),
            None => x,
        }
    }
}
