//! The masked-language-model loss as a trainer [`Objective`].

use crate::context::{EvalContext, StepContext};
use crate::error::Result;
use crate::objective::{Objective, Validation};
use serde_json::json;
use tch::{Device, Kind, Reduction, Tensor};
use whetstone_data::{make_batch, Batch, BucketBatcher, Encoded, Masker};
use whetstone_models::{MlmHead, TextClassifier, TransformerEncoder};

/// Masked-LM loss of a Transformer encoder (a bare [`TransformerEncoder`], or a classifier's) through a tied [`MlmHead`].
///
/// A classifier's own head takes no part. The loss is cross-entropy over the masked
/// positions only; only their states go through the vocabulary projection, which saves about
/// 85 % of the decoder's work. A model that is not a Transformer is an error naming its kind.
#[derive(Debug)]
pub struct MlmObjective {
    /// The head (its variables live in the model's `VarStore`, so they train and checkpoint).
    pub head: MlmHead,
    /// Draws the masks.
    pub masker: Masker,
    /// Seed of the masks drawn for validation, the same at every evaluation.
    pub eval_seed: i64,
}

/// Masked-LM quality on a set of windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlmScore {
    /// Mean cross-entropy per masked token (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Share of masked tokens whose original id is the top prediction.
    pub accuracy: f64,
    /// Masked tokens scored.
    pub tokens: u64,
}

impl MlmScore {
    /// Reads the fields [`MlmObjective`]'s validation record holds.
    pub fn from_record(record: &serde_json::Map<String, serde_json::Value>) -> Self {
        let f = |k: &str| record.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        Self { loss: f("mlm_loss"), perplexity: f("perplexity"), accuracy: f("mlm_accuracy"), tokens: record.get("masked_tokens").and_then(serde_json::Value::as_u64).unwrap_or(0) }
    }
}

impl MlmObjective {
    /// Summed loss, masked-token count and correct top-1 predictions of one batch.
    fn batch_loss(&self, encoder: &TransformerEncoder, batch: &Batch, train: bool) -> Result<(Tensor, i64, Tensor)> {
        let m = self.masker.mask(&batch.input_ids, &batch.attention_mask);
        let states = encoder.forward_t(&m.input_ids, &batch.attention_mask, train)?;
        let hidden = states.size()[2];
        let idx = m.masked.f_flatten(0, -1)?.f_nonzero()?.f_squeeze_dim(1)?;
        let picked = states.f_reshape([-1, hidden])?.f_index_select(0, &idx)?;
        let labels = m.labels.f_flatten(0, -1)?.f_index_select(0, &idx)?;
        let logits = self.head.forward(&picked, encoder)?.f_to_kind(Kind::Float)?;
        let loss_sum = logits.f_cross_entropy_loss::<Tensor>(&labels, None, Reduction::Sum, -100, 0.0)?;
        let correct = logits.f_argmax(-1, false)?.f_eq_tensor(&labels)?.f_sum(Kind::Int64)?;
        Ok((loss_sum, idx.size()[0], correct))
    }

    /// Masked-LM loss, perplexity and accuracy of `encoder` on `data` (no dropout, masks
    /// drawn from `eval_seed`, so two calls on the same weights agree exactly).
    pub fn score(&self, encoder: &TransformerEncoder, data: &Encoded, batch_size: usize, device: Device) -> Result<MlmScore> {
        tch::manual_seed(self.eval_seed);
        let order = BucketBatcher::new(batch_size.max(1), 1).eval_order(&data.lengths());
        let (mut loss, mut tokens, mut correct) = (0.0, 0u64, 0u64);
        tch::no_grad(|| -> Result<()> {
            for idx in &order {
                let batch = make_batch(data, idx, device)?;
                let (l, n, c) = self.batch_loss(encoder, &batch, false)?;
                loss += l.f_double_value(&[])?;
                tokens += n as u64;
                correct += c.f_int64_value(&[])? as u64;
            }
            Ok(())
        })?;
        let loss = loss / tokens.max(1) as f64;
        Ok(MlmScore { loss, perplexity: loss.exp(), accuracy: correct as f64 / tokens.max(1) as f64, tokens })
    }
}

/// The encoder of a Transformer model, or an error saying masked-LM needs one.
fn encoder_of(model: &dyn TextClassifier) -> Result<&TransformerEncoder> {
    Ok(whetstone_models::require_transformer_encoder(model, "masked-LM pretraining")?)
}

impl Objective for MlmObjective {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        let (sum, n, _) = self.batch_loss(encoder_of(cx.model)?, batch, true)?;
        Ok(sum.f_div_scalar(n.max(1) as f64)?)
    }

    /// Masked-LM loss and perplexity of the validation windows (no classifier involved).
    fn validate(&mut self, cx: &EvalContext<'_>, valid: &Encoded) -> Result<Validation> {
        let s = self.score(encoder_of(cx.model)?, valid, cx.batch_size, cx.device)?;
        let record = json!({"mlm_loss": s.loss, "perplexity": s.perplexity, "mlm_accuracy": s.accuracy, "masked_tokens": s.tokens});
        Ok(Validation {
            metric: -s.loss,
            summary: format!("valid MLM loss {:.4}  perplexity {:.2}  masked-token accuracy {:.4}", s.loss, s.perplexity, s.accuracy),
            record: record.as_object().cloned().unwrap_or_default(),
        })
    }
}
