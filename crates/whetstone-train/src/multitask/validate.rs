//! Per-task validation: each task's head scored on its own validation set.

use crate::error::{Result, TrainError};
use tch::{Device, Kind, Tensor};
use whetstone_data::conll::{make_token_batch, IGNORE_INDEX};
use whetstone_data::{make_batch, BucketBatcher, Encoded, TokenEncoded};
use whetstone_eval::entities::{entity_scores, EntityScores};
use whetstone_eval::{classification_report, ClassificationReport};
use whetstone_models::MultiHead;

/// A task's held-out data (validation or test) with its class or tag names.
#[derive(Debug, Clone)]
pub enum TaskEval {
    /// Sequence classification: examples, and class names in id order.
    Sequence { data: Encoded, labels: Vec<String> },
    /// Token classification: sentences, and tag names in id order.
    Token { data: TokenEncoded, tags: Vec<String> },
}

/// A task's scores on held-out data.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum TaskScores {
    /// Accuracy, macro-F1, MCC, per class.
    Sequence(ClassificationReport),
    /// Entity-level precision, recall and F1 (seqeval default mode), per type.
    Token(EntityScores),
}

impl TaskScores {
    /// The metric `name`: `accuracy`, `macro_f1`, `mcc` for a sequence task; `entity_f1`
    /// (also `f1`), `precision`, `recall` for a token task.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match self {
            TaskScores::Sequence(r) => r.metric(name),
            TaskScores::Token(s) => match name {
                "entity_f1" | "f1" => Some(s.f1),
                "precision" => Some(s.precision),
                "recall" => Some(s.recall),
                _ => None,
            },
        }
    }

    /// One line for a terminal.
    pub fn summary(&self) -> String {
        match self {
            TaskScores::Sequence(r) => r.summary(),
            TaskScores::Token(s) => format!("entity P {:.4}  R {:.4}  F1 {:.4}  ({} entities)", s.precision, s.recall, s.f1, s.support),
        }
    }
}

/// Score task `task`'s head on `data` (no gradients, length-sorted batches), with its mean loss.
pub fn score_task(model: &dyn MultiHead, task: usize, data: &TaskEval, batch_size: usize, device: Device) -> Result<(TaskScores, f64)> {
    match data {
        TaskEval::Sequence { data, labels } => {
            let order = BucketBatcher::new(batch_size, 1).eval_order(&data.lengths());
            let mut preds = vec![0i64; data.len()];
            let mut loss = 0.0;
            tch::no_grad(|| -> Result<()> {
                for idx in &order {
                    let b = make_batch(data, idx, device)?;
                    let logits = model.forward_task(task, &b.input_ids, &b.attention_mask, false)?.f_to_kind(Kind::Float)?;
                    loss += logits.f_cross_entropy_loss::<Tensor>(&b.labels, None, tch::Reduction::Sum, IGNORE_INDEX, 0.0)?.f_double_value(&[])?;
                    let p = Vec::<i64>::try_from(logits.f_argmax(-1, false)?.f_to_device(Device::Cpu)?)?;
                    for (row, &i) in idx.iter().enumerate() {
                        preds[i] = p[row];
                    }
                }
                Ok(())
            })?;
            let report = classification_report(&data.labels, &preds, labels)?;
            Ok((TaskScores::Sequence(report), loss / data.len().max(1) as f64))
        }
        TaskEval::Token { data, tags } => {
            let order = BucketBatcher::new(batch_size, 1).eval_order(&data.lengths());
            let (mut gold, mut pred) = (vec![Vec::new(); data.len()], vec![Vec::new(); data.len()]);
            let (mut loss, mut tokens) = (0.0, 0usize);
            let name = |id: i64| tags.get(id as usize).cloned().ok_or_else(|| TrainError::Config(format!("tag id {id} is outside the {} tags", tags.len())));
            tch::no_grad(|| -> Result<()> {
                for idx in &order {
                    let b = make_token_batch(data, idx, device)?;
                    let logits = model.forward_task(task, &b.input_ids, &b.attention_mask, false)?.f_to_kind(Kind::Float)?;
                    let c = *logits.size().last().unwrap_or(&1);
                    loss += logits.f_view([-1, c])?.f_cross_entropy_loss::<Tensor>(&b.labels.f_view([-1])?, None, tch::Reduction::Sum, IGNORE_INDEX, 0.0)?.f_double_value(&[])?;
                    let p = Vec::<i64>::try_from(logits.f_argmax(-1, false)?.f_flatten(0, -1)?.f_to_device(Device::Cpu)?)?;
                    let t = b.input_ids.size()[1] as usize;
                    for (row, &i) in idx.iter().enumerate() {
                        for (pos, &g) in data.labels[i].iter().enumerate() {
                            if g != IGNORE_INDEX {
                                gold[i].push(name(g)?);
                                pred[i].push(name(p[row * t + pos])?);
                                tokens += 1;
                            }
                        }
                    }
                }
                Ok(())
            })?;
            Ok((TaskScores::Token(entity_scores(&gold, &pred)?), loss / tokens.max(1) as f64))
        }
    }
}
