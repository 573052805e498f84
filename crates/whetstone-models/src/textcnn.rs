//! TextCNN (Kim 2014, "Convolutional Neural Networks for Sentence Classification").

use crate::capability::EmbeddingInput;
use crate::classifier::TextClassifier;
use crate::error::{ModelError, Result};
use crate::ops;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Configuration of [`TextCnn`]. Defaults follow Kim's CNN-rand: windows 3/4/5, 100 maps each, dropout 0.5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextCnnConfig {
    /// Word-embedding width.
    pub embed_dim: usize,
    /// Convolution window sizes (in tokens).
    pub kernel_sizes: Vec<usize>,
    /// Feature maps per window size.
    pub channels: usize,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// Word vectors start uniform in `[-init_range, init_range]` (Kim's 0.25: about the
    /// variance of pre-trained word2vec vectors).
    pub init_range: f64,
}

impl Default for TextCnnConfig {
    fn default() -> Self {
        Self { embed_dim: 300, kernel_sizes: vec![3, 4, 5], channels: 100, dropout: 0.5, init_range: 0.25 }
    }
}

/// Embeddings, parallel 1-D convolutions with ReLU, max-over-time pooling, dropout, linear.
///
/// Padding never influences the output: padded embeddings are zeroed and convolution windows that
/// lie wholly past the end of a sentence are excluded from the max, so a sentence gets the same
/// logits alone or in a padded batch.
#[derive(Debug)]
pub struct TextCnn {
    embedding: nn::Embedding,
    convs: Vec<(nn::Conv1D, i64)>,
    classifier: nn::Linear,
    dropout: f64,
}

impl TextCnn {
    /// Build under `p` (`embedding`, `convs.{i}`, `classifier`).
    pub fn new(p: &nn::Path, vocab_size: i64, num_labels: i64, c: &TextCnnConfig) -> Result<Self> {
        if c.kernel_sizes.is_empty() || c.kernel_sizes.contains(&0) || c.channels == 0 || c.embed_dim == 0 {
            return Err(ModelError::Config("textcnn needs non-empty kernel_sizes > 0, channels > 0 and embed_dim > 0".into()));
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(ModelError::Config(format!("textcnn dropout must be in [0, 1), got {}", c.dropout)));
        }
        let e = c.embed_dim as i64;
        let init = nn::EmbeddingConfig { ws_init: nn::Init::Uniform { lo: -c.init_range, up: c.init_range }, ..Default::default() };
        let embedding = nn::embedding(p / "embedding", vocab_size, e, init);
        let convs = c
            .kernel_sizes
            .iter()
            .enumerate()
            .map(|(i, &k)| (nn::conv1d(p / "convs" / i, e, c.channels as i64, k as i64, Default::default()), k as i64))
            .collect();
        let classifier = nn::linear(p / "classifier", (c.channels * c.kernel_sizes.len()) as i64, num_labels, Default::default());
        Ok(Self { embedding, convs, classifier, dropout: c.dropout })
    }
}

impl TextCnn {
    /// Logits from word embeddings `[B, T, E]` (zeroed at padding here).
    fn logits(&self, words: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let max_k = self.convs.iter().map(|(_, k)| *k).max().unwrap_or(1);
        let (_, t, _) = words.size3()?;
        // Windows need at least max_k positions: right-pad short batches with masked positions.
        let (x, mask) = if t < max_k {
            let extra = max_k - t;
            (words.f_constant_pad_nd([0, 0, 0, extra])?, attention_mask.f_constant_pad_nd([0, extra])?)
        } else {
            (words.shallow_clone(), attention_mask.shallow_clone())
        };
        let m = mask.f_to_kind(Kind::Float)?;
        let x = x.f_mul(&m.f_unsqueeze(-1)?)?;
        let x = x.f_transpose(1, 2)?; // [B, E, T]
        let lens = m.f_sum_dim_intlist(1, false, Kind::Int64)?; // [B]
        let pooled = self
            .convs
            .iter()
            .map(|(conv, k)| -> Result<Tensor> {
                let y = ops::conv1d(&x, conv)?.f_relu()?; // [B, C, T-k+1]
                let n = y.size()[2];
                // A window starting at s is valid when it starts inside the sentence
                // (s < max(len - k + 1, 1)); the others are pure padding.
                let valid_n = lens.f_sub_scalar(*k - 1)?.f_clamp_min(1)?;
                let pos = Tensor::f_arange(n, (Kind::Int64, y.device()))?.f_unsqueeze(0)?;
                let invalid = pos.f_ge_tensor(&valid_n.f_unsqueeze(1)?)?.f_unsqueeze(1)?;
                Ok(y.f_masked_fill(&invalid, f64::NEG_INFINITY)?.f_amax(2, false)?)
            })
            .collect::<Result<Vec<Tensor>>>()?;
        ops::linear(&Tensor::f_cat(&pooled, 1)?.f_dropout(self.dropout, train)?, &self.classifier)
    }
}

impl TextClassifier for TextCnn {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_embedded(&self.embed(input_ids, train)?, attention_mask, train)
    }

    fn kind(&self) -> &'static str {
        "textcnn"
    }

    fn embedding_input(&self) -> Option<&dyn EmbeddingInput> {
        Some(self)
    }
}

impl EmbeddingInput for TextCnn {
    fn word_embeddings(&self) -> &Tensor {
        &self.embedding.ws
    }

    fn embed(&self, input_ids: &Tensor, _train: bool) -> Result<Tensor> {
        ops::embedding(input_ids, &self.embedding)
    }

    fn forward_embedded(&self, embeddings: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.logits(embeddings, attention_mask, train)
    }
}
