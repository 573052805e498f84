//! Robust accuracy of a finished run: under an embedding-space PGD attack
//! ([`whetstone_train::adversarial::evaluate_under_pgd`]) and under a greedy WordNet
//! synonym-substitution attack ([`whetstone_augment::synonym_attack`], TextFooler-style with
//! a budget of k words per sentence).

use crate::run::LoadedRun;
use serde::Serialize;
use whetstone_augment::{split_words, synonym_attack, StopWords, Verdict, WordNet};
use whetstone_data::{encode, Split};
use whetstone_train::adversarial::{evaluate_under_pgd, PgdAttack};
use whetstone_train::{predict_in, Result, TrainError};

/// Accuracy of a run on one split, clean and under an attack.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttackReport {
    /// `pgd` or `synonym`.
    pub attack: String,
    /// The attack's settings, in words (e.g. `ε 0.5, 10 steps`).
    pub settings: String,
    /// Examples attacked.
    pub examples: usize,
    /// Accuracy without the attack on those examples.
    pub clean_accuracy: f64,
    /// Accuracy under the attack.
    pub robust_accuracy: f64,
    /// Words substituted per attacked sentence (synonym attack only).
    pub mean_substitutions: Option<f64>,
    /// Model queries per example (synonym attack only).
    pub queries_per_example: Option<f64>,
}

/// The first `max` examples of `split` (all when `max` is 0 or larger than the split).
pub fn head(split: &Split, max: usize) -> Split {
    let n = if max == 0 { split.len() } else { max.min(split.len()) };
    Split { texts: split.texts[..n].to_vec(), labels: split.labels[..n].to_vec() }
}

/// The mean L2 norm of a sentence's token embeddings (its `[T, dim]` word embeddings, real
/// tokens only) over `split`: the scale against which an embedding-space ε is large or small.
pub fn mean_embedding_norm(run: &LoadedRun, split: &Split) -> Result<f64> {
    let emb = whetstone_models::require_embedding_input(run.model.as_ref(), "the embedding norm")?;
    let enc = encode(&run.tokenizer, split, run.max_len())?;
    if enc.ids.is_empty() {
        return Err(TrainError::Config("the embedding norm needs at least one example".into()));
    }
    let total = tch::no_grad(|| -> Result<f64> {
        let mut total = 0.0;
        for ids in &enc.ids {
            let t = tch::Tensor::from_slice(ids).f_unsqueeze(0)?.f_to_device(run.device)?;
            let e = emb.embed(&t, false)?;
            total += e.f_to_kind(tch::Kind::Double)?.f_norm()?.f_double_value(&[])?;
        }
        Ok(total)
    })?;
    Ok(total / enc.ids.len() as f64)
}

/// Accuracy of `run` on `split` clean and under the embedding-space PGD `attack`, in the run's
/// precision. An error when the model has no input embeddings.
pub fn pgd_report(run: &LoadedRun, split: &Split, attack: &PgdAttack) -> Result<AttackReport> {
    let enc = encode(&run.tokenizer, split, run.max_len())?;
    let r = evaluate_under_pgd(run.model.as_ref(), &enc, attack, run.recipe.train.eval_batch_size, run.device, run.precision)?;
    Ok(AttackReport {
        attack: "pgd".into(),
        settings: format!("L2 ε {} per sentence, {} steps of α {:.3}", attack.epsilon, attack.steps, attack.step_size()),
        examples: split.len(),
        clean_accuracy: r.clean_accuracy,
        robust_accuracy: r.robust_accuracy,
        mean_substitutions: None,
        queries_per_example: None,
    })
}

/// Accuracy of `run` on `split` clean and under the greedy synonym-substitution attack that
/// may change `budget` words per sentence (stop words never), with synonyms from `wordnet`.
/// A sentence the model gets wrong counts as wrong under attack; one it gets right counts as
/// robust unless the attack flips it.
pub fn synonym_report(run: &LoadedRun, split: &Split, budget: usize, wordnet: &WordNet) -> Result<AttackReport> {
    if split.is_empty() {
        return Err(TrainError::Config("the synonym attack needs at least one example".into()));
    }
    let stop = StopWords::english();
    let (mut clean, mut robust, mut substituted, mut queries) = (0usize, 0usize, 0usize, 0usize);
    for (text, &label) in split.texts.iter().zip(&split.labels) {
        let words = split_words(text);
        let mut failure: Option<TrainError> = None;
        let mut score = |sentences: &[String]| -> whetstone_augment::Result<Vec<Verdict>> {
            match verdicts(run, sentences, label) {
                Ok(v) => Ok(v),
                Err(e) => {
                    let msg = e.to_string();
                    failure = Some(e);
                    Err(whetstone_augment::AugmentError::InvalidArgument(msg))
                }
            }
        };
        let out = synonym_attack(&words, budget, wordnet, &stop, &mut score);
        if let Some(e) = failure {
            return Err(e);
        }
        let out = out.map_err(|e| TrainError::Strategy(Box::new(e)))?;
        clean += usize::from(out.original.correct);
        robust += usize::from(out.last.correct);
        substituted += out.substitutions.len();
        queries += out.queries;
    }
    let n = split.len() as f64;
    Ok(AttackReport {
        attack: "synonym".into(),
        settings: format!("greedy WordNet substitution, at most {budget} words per sentence"),
        examples: split.len(),
        clean_accuracy: clean as f64 / n,
        robust_accuracy: robust as f64 / n,
        mean_substitutions: Some(substituted as f64 / n),
        queries_per_example: Some(queries as f64 / n),
    })
}

/// The run's verdict on each sentence for the true class `label`.
fn verdicts(run: &LoadedRun, sentences: &[String], label: i64) -> Result<Vec<Verdict>> {
    let split = Split { texts: sentences.to_vec(), labels: vec![label; sentences.len()] };
    let enc = encode(&run.tokenizer, &split, run.max_len())?;
    let p = predict_in(run.precision, run.model.as_ref(), &enc, run.recipe.train.eval_batch_size, run.device)?;
    Ok(p.preds.iter().zip(&p.probs).map(|(&pred, probs)| Verdict { true_prob: probs.get(label as usize).copied().unwrap_or(0.0), correct: pred == label }).collect())
}
