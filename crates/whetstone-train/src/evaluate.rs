//! Batched inference over an encoded split.

use crate::context::EvalContext;
use crate::error::Result;
use crate::objective::Validation;
use serde_json::json;
use tch::{Device, Kind, Tensor};
use whetstone_data::{make_batch, BucketBatcher, Encoded};
use whetstone_models::TextClassifier;
use whetstone_torch_ext::Precision;

/// Predictions for every example of a split, in the split's order.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// Arg-max class per example.
    pub preds: Vec<i64>,
    /// Softmax probabilities per example.
    pub probs: Vec<Vec<f32>>,
    /// Mean cross-entropy against the gold labels.
    pub loss: f64,
}

/// Run `model` over `enc` in length-sorted batches (little padding) without gradients.
pub fn predict(model: &dyn TextClassifier, enc: &Encoded, batch_size: usize, device: Device) -> Result<Predictions> {
    let n = enc.ids.len();
    let lengths: Vec<usize> = enc.ids.iter().map(Vec::len).collect();
    let order = BucketBatcher::new(batch_size, 1).eval_order(&lengths);
    let mut preds = vec![0i64; n];
    let mut probs = vec![Vec::new(); n];
    let mut loss_sum = 0.0;
    tch::no_grad(|| -> Result<()> {
        for idx in &order {
            let batch = make_batch(enc, idx, device)?;
            let logits = model.forward_t(&batch.input_ids, &batch.attention_mask, false)?.f_to_kind(Kind::Float)?;
            let loss = logits.f_cross_entropy_loss::<Tensor>(&batch.labels, None, tch::Reduction::Sum, -100, 0.0)?;
            loss_sum += loss.f_double_value(&[])?;
            let p = logits.f_softmax(-1, Kind::Float)?.f_to_device(Device::Cpu)?;
            let c = p.size()[1] as usize;
            let flat = Vec::<f32>::try_from(p.f_flatten(0, -1)?)?;
            for (row, &i) in idx.iter().enumerate() {
                let pr = flat[row * c..(row + 1) * c].to_vec();
                preds[i] = argmax(&pr);
                probs[i] = pr;
            }
        }
        Ok(())
    })?;
    Ok(Predictions { preds, probs, loss: if n == 0 { 0.0 } else { loss_sum / n as f64 } })
}

/// [`predict`] with the forward passes in `precision` (an autocast region on the calling
/// thread; fp32 is plain [`predict`]). Probabilities and the loss are computed in float32.
pub fn predict_in(precision: Precision, model: &dyn TextClassifier, enc: &Encoded, batch_size: usize, device: Device) -> Result<Predictions> {
    let _amp = precision.region(device)?;
    predict(model, enc, batch_size, device)
}

fn argmax(v: &[f32]) -> i64 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as i64
}

/// Classification validation (the default of [`crate::Objective::validate`]): predict `valid`
/// and score it with the run's metric.
pub fn classify(cx: &EvalContext<'_>, valid: &Encoded) -> Result<Validation> {
    let p = predict(cx.model, valid, cx.batch_size, cx.device)?;
    // Without class names, the classes are named by their ids.
    let numbered: Vec<String>;
    let names = if cx.label_names.is_empty() {
        numbered = (0..p.probs.first().map_or(0, Vec::len)).map(|c| c.to_string()).collect();
        &numbered
    } else {
        cx.label_names
    };
    let report = whetstone_eval::classification_report(&valid.labels, &p.preds, names)?;
    let metric = report.metric(cx.metric).unwrap_or(report.accuracy);
    let record = json!({"loss": p.loss, "accuracy": report.accuracy, "macro_f1": report.macro_f1, "mcc": report.mcc});
    Ok(Validation {
        metric,
        summary: format!("valid loss {:.4}  {} {metric:.4}", p.loss, cx.metric),
        record: record.as_object().cloned().unwrap_or_default(),
    })
}
