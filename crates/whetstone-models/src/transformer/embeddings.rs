use super::TransformerConfig;
use tch::{nn, Kind, Tensor};

/// Word + position + token-type embeddings, then LayerNorm and dropout (BERT's `embeddings.*`).
#[derive(Debug)]
pub struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    pub fn new(p: &nn::Path, vocab_size: i64, c: &TransformerConfig) -> Self {
        let init = nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: c.init_std }, ..Default::default() };
        let h = c.hidden as i64;
        Self {
            word: nn::embedding(p / "word_embeddings", vocab_size, h, init),
            position: nn::embedding(p / "position_embeddings", c.max_len as i64, h, init),
            token_type: nn::embedding(p / "token_type_embeddings", c.type_vocab_size as i64, h, init),
            norm: super::layer_norm(&(p / "LayerNorm"), h, c.layer_norm_eps),
            dropout: c.dropout,
        }
    }

    /// The word-embedding matrix `[vocab, hidden]` (tied to an MLM decoder later).
    pub fn word_weight(&self) -> &Tensor {
        &self.word.ws
    }

    /// Parameters with BERT names relative to `embeddings`.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            ("word_embeddings.weight".to_string(), self.word.ws.shallow_clone()),
            ("position_embeddings.weight".to_string(), self.position.ws.shallow_clone()),
            ("token_type_embeddings.weight".to_string(), self.token_type.ws.shallow_clone()),
        ];
        out.extend(super::layer_norm_parameters("LayerNorm", &self.norm));
        out
    }

    pub fn forward_t(&self, input_ids: &Tensor, train: bool) -> Tensor {
        let t = input_ids.size()[1];
        let pos = Tensor::arange(t, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let x = input_ids.apply(&self.word) + pos.apply(&self.position) + input_ids.zeros_like().apply(&self.token_type);
        x.apply(&self.norm).dropout(self.dropout, train)
    }
}
