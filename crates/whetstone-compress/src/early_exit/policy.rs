//! When to stop: confidence, entropy or patience, and inference that stops there.

use super::heads::ExitHeads;
use crate::error::{CompressError, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use whetstone_models::{TransformerClassifier, TransformerEncoder};

/// The rule deciding, after each layer, whether the prediction is final.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum ExitPolicy {
    /// Exit when the highest class probability is at least this (0 exits after layer 1; above
    /// 1 never exits early).
    Confidence(f64),
    /// Exit when the entropy of the class distribution (nats) is at most this (DeeBERT).
    Entropy(f64),
    /// Exit when this many consecutive exits after the first agreed with it on the class
    /// (PABEE; 0 exits after layer 1).
    Patience(usize),
}

impl std::fmt::Display for ExitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitPolicy::Confidence(t) => write!(f, "confidence ≥ {t}"),
            ExitPolicy::Entropy(t) => write!(f, "entropy ≤ {t}"),
            ExitPolicy::Patience(p) => write!(f, "patience {p}"),
        }
    }
}

/// Where state is kept while deciding, one example at a time.
#[derive(Debug, Default)]
struct Tracker {
    last: Option<usize>,
    agreeing: usize,
}

impl ExitPolicy {
    /// Whether to stop after seeing class probabilities `probs` at the current exit.
    fn stop(&self, probs: &[f32], t: &mut Tracker) -> bool {
        let argmax = probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        match *self {
            ExitPolicy::Confidence(th) => probs.iter().cloned().fold(0.0f32, f32::max) as f64 >= th,
            ExitPolicy::Entropy(th) => -probs.iter().filter(|&&p| p > 0.0).map(|&p| (p as f64) * (p as f64).ln()).sum::<f64>() <= th,
            ExitPolicy::Patience(p) => {
                t.agreeing = if t.last == Some(argmax) { t.agreeing + 1 } else { 0 };
                t.last = Some(argmax);
                t.agreeing >= p
            }
        }
    }

    /// The exit (1-based layer) this policy takes for one example, given its class probabilities
    /// at every exit in order (the last entry is the model's own classifier).
    ///
    /// ```
    /// use whetstone_compress::ExitPolicy;
    /// let probs = vec![vec![0.6f32, 0.4], vec![0.2, 0.8], vec![0.1, 0.9]];
    /// assert_eq!(ExitPolicy::Confidence(0.0).decide(&probs), 1);
    /// assert_eq!(ExitPolicy::Confidence(0.75).decide(&probs), 2);
    /// assert_eq!(ExitPolicy::Confidence(1.5).decide(&probs), 3);
    /// assert_eq!(ExitPolicy::Patience(1).decide(&probs), 3); // layer 2 changed its mind
    /// ```
    pub fn decide(&self, probs_per_exit: &[Vec<f32>]) -> usize {
        let mut t = Tracker::default();
        for (i, p) in probs_per_exit.iter().enumerate() {
            if self.stop(p, &mut t) {
                return i + 1;
            }
        }
        probs_per_exit.len()
    }
}

/// A Transformer classifier with internal classifiers, run layer by layer and stopped early.
#[derive(Debug)]
pub struct EarlyExit<'a> {
    model: &'a TransformerClassifier,
    heads: &'a ExitHeads,
}

fn probs_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let p = logits.f_softmax(-1, Kind::Float)?.f_to_device(tch::Device::Cpu)?;
    let (b, c) = p.size2()?;
    let flat = Vec::<f32>::try_from(&p.f_reshape([-1])?)?;
    Ok((0..b as usize).map(|r| flat[r * c as usize..(r + 1) * c as usize].to_vec()).collect())
}

impl<'a> EarlyExit<'a> {
    /// Pair `model` with its exits (one fewer than its layers).
    pub fn new(model: &'a TransformerClassifier, heads: &'a ExitHeads) -> Result<Self> {
        let layers = model.encoder().config().layers;
        if heads.len() + 1 != layers {
            return Err(CompressError::Config(format!("{} internal exits for a {layers}-layer model: build them with ExitHeads::new on this model", heads.len())));
        }
        Ok(Self { model, heads })
    }

    /// Number of layers (= exits, the last being the model's classifier).
    pub fn layers(&self) -> usize {
        self.heads.len() + 1
    }

    /// The logits of every exit `[B, labels]`, computing all layers (for evaluating policies).
    pub fn all_exit_logits(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Vec<Tensor>> {
        tch::no_grad(|| {
            let (logits, out) = self.model.forward_detailed(input_ids, attention_mask, false, false)?;
            let mut all = (0..self.heads.len()).map(|i| self.heads.logits(i, &out.hidden_states[i + 1], attention_mask, false)).collect::<Result<Vec<_>>>()?;
            all.push(logits);
            Ok(all)
        })
    }

    /// Run layer by layer and return the logits of the exit `policy` takes, with that exit
    /// (1-based layer). A batch stops only when every example may stop.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, policy: ExitPolicy) -> Result<(Tensor, usize)> {
        tch::no_grad(|| {
            let enc = self.model.encoder();
            let keep = TransformerEncoder::attention_keep(attention_mask)?;
            let mut x = enc.embeddings().forward_t(input_ids, false)?;
            let b = input_ids.size()[0] as usize;
            let mut trackers: Vec<Tracker> = (0..b).map(|_| Tracker::default()).collect();
            let layers = enc.layers();
            for (i, layer) in layers.iter().enumerate() {
                x = layer.forward_t(&x, &keep, false)?;
                if i + 1 == layers.len() {
                    break;
                }
                let logits = self.heads.logits(i, &x, attention_mask, false)?;
                let rows = probs_rows(&logits)?;
                let mut all = true;
                for (r, t) in rows.iter().zip(trackers.iter_mut()) {
                    all &= policy.stop(r, t);
                }
                if all {
                    return Ok((logits, i + 1));
                }
            }
            let x = enc.finish(x)?;
            Ok((self.model.logits_from_states(&x, attention_mask, false)?, layers.len()))
        })
    }
}
